// Command smoke is the workload of tests/kube/node-smoke: a static HTTP server, run from an
// image built from scratch, that shows what a pod on the local node can do.
//
//	GET /healthz   200 "ok" (the readiness probe)
//	GET /whoami    the identity the API server sees for the pod's in-cluster configuration
//	               (a SelfSubjectReview through the `kubernetes` Service)
//	GET /lookup?name=NAME   the addresses NAME resolves to (the pod's DNS configuration)
//	GET /dial?address=HOST:PORT   whether a TCP connection to HOST:PORT opens from the pod
//	GET /data      the content of $DATA_DIR/started, written at start (a PersistentVolume)
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func main() {
	dataDir := os.Getenv("DATA_DIR")
	if dataDir != "" {
		line := fmt.Sprintf("started %s as uid %d\n", os.Getenv("HOSTNAME"), os.Getuid())
		f, err := os.OpenFile(filepath.Join(dataDir, "started"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatalf("write to the volume: %v", err)
		}
		_, _ = f.WriteString(line)
		_ = f.Close()
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	http.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "%s via %s\n", review.Status.UserInfo.Username, cfg.Host)
	})
	http.HandleFunc("/lookup", func(w http.ResponseWriter, r *http.Request) {
		addrs, err := net.DefaultResolver.LookupHost(r.Context(), r.URL.Query().Get("name"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		fmt.Fprintln(w, strings.Join(addrs, " "))
	})
	http.HandleFunc("/dial", func(w http.ResponseWriter, r *http.Request) {
		c, err := net.DialTimeout("tcp", r.URL.Query().Get("address"), 5*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		_ = c.Close()
		fmt.Fprintln(w, "connected")
	})
	http.HandleFunc("/data", func(w http.ResponseWriter, _ *http.Request) {
		b, err := os.ReadFile(filepath.Join(dataDir, "started"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(b)
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}
