package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// saKubeconfig writes a kubeconfig that authenticates as a ServiceAccount, so that a process
// can be run with exactly the RBAC permissions granted to that ServiceAccount.
func saKubeconfig(args []string) error {
	fs := flag.NewFlagSet("sa-kubeconfig", flag.ExitOnError)
	admin := fs.String("kubeconfig", "", "admin kubeconfig")
	namespace := fs.String("namespace", "", "ServiceAccount namespace")
	name := fs.String("name", "", "ServiceAccount name")
	out := fs.String("out", "", "path of the kubeconfig to write")
	duration := fs.Duration("duration", 24*time.Hour, "token lifetime")
	_ = fs.Parse(args)
	if *admin == "" || *namespace == "" || *name == "" || *out == "" {
		return errors.New("--kubeconfig, --namespace, --name and --out are required")
	}
	loaded, err := clientcmd.LoadFromFile(*admin)
	if err != nil {
		return err
	}
	restCfg, err := clientcmd.NewDefaultClientConfig(*loaded, nil).ClientConfig()
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	seconds := int64(duration.Seconds())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := client.CoreV1().ServiceAccounts(*namespace).CreateToken(ctx, *name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds}},
		metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("request a token for ServiceAccount %s/%s: %w", *namespace, *name, err)
	}
	cluster := loaded.Clusters[loaded.Contexts[loaded.CurrentContext].Cluster]
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kube-local"] = &clientcmdapi.Cluster{Server: cluster.Server, CertificateAuthorityData: cluster.CertificateAuthorityData}
	user := "system:serviceaccount:" + *namespace + ":" + *name
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["kube-local"] = &clientcmdapi.Context{Cluster: "kube-local", AuthInfo: user, Namespace: *namespace}
	cfg.CurrentContext = "kube-local"
	return clientcmd.WriteToFile(*cfg, *out)
}
