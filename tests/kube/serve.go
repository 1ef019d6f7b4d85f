package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	"k8s.io/kubernetes/cmd/kube-controller-manager/names"
)

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "", "state directory (etcd data, certificates, kubeconfigs)")
	port := fs.Int("port", 16443, "kube-apiserver secure port on 127.0.0.1")
	etcdPort := fs.Int("etcd-port", 12379, "etcd client port on 127.0.0.1 (the peer port is the next one)")
	nodeIPFlag := fs.String("node-ip", "", "with a node (tests/kube/up --node): the node's address, on the pod network's bridge; "+
		"enables the node's credentials, its controllers and the API server's endpoint for pods")
	nodeName := fs.String("node-name", "kube-local-node", "with --node-ip: the name the kubelet registers")
	authnConfig := fs.String("authentication-config", "", "an AuthenticationConfiguration file (apiserver.config.k8s.io/v1, "+
		"structured authentication: JWT issuers such as an OpenID Provider) for kube-apiserver; re-read when it changes")
	_ = fs.Parse(args)
	var node *nodeConfig
	if *nodeIPFlag != "" {
		ip := net.ParseIP(*nodeIPFlag)
		if ip == nil || ip.To4() == nil {
			return fmt.Errorf("--node-ip %q is not an IPv4 address", *nodeIPFlag)
		}
		node = &nodeConfig{name: *nodeName, ip: ip}
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	if *authnConfig != "" {
		abs, err := filepath.Abs(*authnConfig)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("--authentication-config: %w", err)
		}
		*authnConfig = abs
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(*dir, "ready"))
	for _, p := range []int{*port, *etcdPort, *etcdPort + 1} {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return fmt.Errorf("port %d on 127.0.0.1 is taken (is another kube-local running? stop it with tests/kube/down): %w", p, err)
		}
		_ = l.Close()
	}

	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("v", "0")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var extraIPs []net.IP
	if node != nil {
		extraIPs = []net.IP{node.ip, kubernetesServiceIP}
	}
	certs, ca, err := ensurePKI(*dir, extraIPs)
	if err != nil {
		return fmt.Errorf("generate certificates: %w", err)
	}
	if node != nil {
		if node.certs, err = ensureNodePKI(*dir, ca, node.name, node.ip); err != nil {
			return fmt.Errorf("generate the node's certificates: %w", err)
		}
	}

	etcd, err := startEtcd(*dir, *etcdPort)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	defer etcd.Close()

	errc := make(chan error, 4)
	go func() {
		errc <- runAPIServer(ctx, *dir, *port, *etcdPort, certs, node, *authnConfig)
	}()

	server := fmt.Sprintf("https://127.0.0.1:%d", *port)
	if err := waitReady(ctx, server, certs, errc); err != nil {
		return err
	}
	adminKubeconfig := filepath.Join(*dir, "admin.kubeconfig")
	if err := writeAdminKubeconfig(adminKubeconfig, server, certs); err != nil {
		return err
	}

	if node != nil {
		if err := writeNodeKubeconfigs(*dir, server, certs, node.certs); err != nil {
			return err
		}
		// Pods reach the API server through the `kubernetes` Service, whose endpoint is the
		// node's address: forward it to the loopback listener.
		go forward(ctx, net.JoinHostPort(node.ip.String(), strconv.Itoa(*port)), net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	}

	go func() {
		errc <- runControllers(ctx, adminKubeconfig, certs, node != nil)
	}()
	if node != nil {
		go func() {
			errc <- runLocalVolumes(ctx, adminKubeconfig, filepath.Join(*dir, "volumes"), node.name)
		}()
		go func() {
			errc <- runClusterDNS(ctx, adminKubeconfig, net.JoinHostPort(node.ip.String(), "53"))
		}()
	}

	if err := os.WriteFile(filepath.Join(*dir, "ready"), []byte(server+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "kube-local: ready at %s, admin kubeconfig %s\n", server, adminKubeconfig)

	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "kube-local: shutting down")
		// Give the servers a moment to close listeners before etcd goes away.
		time.Sleep(500 * time.Millisecond)
		return nil
	case err := <-errc:
		if err == nil {
			err = errors.New("a control-plane component stopped unexpectedly")
		}
		return err
	}
}

func startEtcd(dir string, port int) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "kube-local"
	cfg.Dir = filepath.Join(dir, "etcd")
	client := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	peer := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1))}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	// A throw-away test cluster: durability across power loss is not worth the fsync cost.
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("etcd did not become ready within 60s")
	}
}

// runAPIServer runs kube-apiserver until ctx ends. authnConfig, when not empty, is the path of
// an AuthenticationConfiguration file (--authentication-config; the legacy --oidc-* flags are
// never set, they exclude each other).
func runAPIServer(ctx context.Context, dir string, port, etcdPort int, certs pki, node *nodeConfig, authnConfig string) error {
	s := apiserveroptions.NewServerRunOptions()
	named := s.Flags()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range named.FlagSets {
		fs.AddFlagSet(f)
	}
	args := []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(etcdPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + certs.servingCert,
		"--tls-private-key-file=" + certs.servingKey,
		"--client-ca-file=" + certs.caCert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + certs.saPub,
		"--service-account-signing-key-file=" + certs.saKey,
		"--api-audiences=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--cert-dir=" + filepath.Join(dir, "pki"),
	}
	if authnConfig != "" {
		args = append(args, "--authentication-config="+authnConfig)
	}
	if node == nil {
		// Without a node nothing routes Service addresses: no endpoint for `kubernetes`.
		args = append(args, "--authorization-mode=RBAC", "--endpoint-reconciler-type=none")
	} else {
		args = append(args,
			"--authorization-mode=Node,RBAC",
			"--enable-admission-plugins=NodeRestriction",
			"--advertise-address="+node.ip.String(),
			"--kubelet-certificate-authority="+certs.caCert,
			"--kubelet-client-certificate="+node.certs.apiserverKubeletCert,
			"--kubelet-client-key="+node.certs.apiserverKubeletKey,
			"--kubelet-preferred-address-types=InternalIP",
		)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	completed, err := s.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return fmt.Errorf("kube-apiserver options: %v", errs)
	}
	return apiserverapp.Run(ctx, completed)
}

// runControllers runs the parts of kube-controller-manager that tests rely on: the garbage
// collector (ownerReference cascades) and the namespace controller (namespace deletion) and,
// with a node, those that turn Deployments, Services and PersistentVolumeClaims into running,
// reachable pods with volumes.
func runControllers(ctx context.Context, kubeconfig string, certs pki, withNode bool) error {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	known := kcmapp.KnownControllers()
	disabled := kcmapp.ControllersDisabledByDefault()
	aliases := kcmapp.ControllerAliases()
	named := s.Flags(known, disabled, aliases)
	s.ParsedFlags = &named
	fs := pflag.NewFlagSet("kube-controller-manager", pflag.ContinueOnError)
	for _, f := range named.FlagSets {
		fs.AddFlagSet(f)
	}
	controllers := []string{names.GarbageCollectorController, names.NamespaceController}
	if withNode {
		controllers = append(controllers, nodeControllers...)
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=" + strings.Join(controllers, ","),
		"--leader-elect=false",
		"--secure-port=0",
		"--concurrent-gc-syncs=5",
		"--concurrent-namespace-syncs=5",
	}
	if withNode {
		args = append(args,
			"--service-account-private-key-file="+certs.saKey,
			"--root-ca-file="+certs.caCert,
			// A single node: do not evict its pods while it restarts.
			"--node-monitor-grace-period=2m",
		)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	c, err := s.Config(ctx, known, disabled, aliases)
	if err != nil {
		return err
	}
	return kcmapp.Run(ctx, c.Complete())
}

func waitReady(ctx context.Context, server string, certs pki, errc <-chan error) error {
	ca, err := os.ReadFile(certs.caCert)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(certs.adminCert, certs.adminKey)
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		}},
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-errc:
			return fmt.Errorf("kube-apiserver stopped: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		resp, err := client.Get(server + "/readyz")
		if err != nil {
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}
	return errors.New("kube-apiserver did not become ready within 3 minutes")
}

func writeAdminKubeconfig(path, server string, certs pki) error {
	return writeKubeconfig(path, server, certs.caCert, certs.adminCert, certs.adminKey, "kube-local-admin")
}

// writeKubeconfig writes a kubeconfig that authenticates with a client certificate.
func writeKubeconfig(path, server, caPath, certPath, keyPath, user string) error {
	ca, err := os.ReadFile(caPath)
	if err != nil {
		return err
	}
	crt, err := os.ReadFile(certPath)
	if err != nil {
		return err
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kube-local"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts["kube-local"] = &clientcmdapi.Context{Cluster: "kube-local", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "kube-local"
	return clientcmd.WriteToFile(*cfg, path)
}
