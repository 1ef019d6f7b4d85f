// Command kube-local runs a real, single-node Kubernetes control plane on loopback for
// sso-operator's tests and local demo: an embedded etcd, kube-apiserver (RBAC on) and the
// garbage-collector and namespace controllers of kube-controller-manager, all in one process.
//
// Subcommands:
//
//	kube-local serve --dir DIR [--port 16443] [--etcd-port 12379] [--node-ip IP [--node-name NAME]]
//	                 [--authentication-config FILE]
//	    Runs the control plane in the foreground until SIGINT/SIGTERM. Writes DIR/admin.kubeconfig
//	    and, once /readyz answers ok, DIR/ready. With --node-ip (tests/kube/up --node), also the
//	    node's credentials and kubeconfigs, the controllers, volume provisioner and cluster DNS
//	    its workloads need, and the API server's endpoint for pods on IP. With
//	    --authentication-config, kube-apiserver also accepts the JWTs of the issuers in FILE (an
//	    AuthenticationConfiguration, apiserver.config.k8s.io/v1), re-reading it when it changes.
//	kube-local sa-kubeconfig --kubeconfig ADMIN --namespace NS --name SA --out FILE [--duration 24h]
//	    Writes a kubeconfig that authenticates as the ServiceAccount NS/SA (TokenRequest API).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "sa-kubeconfig":
		err = saKubeconfig(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kube-local: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kube-local serve --dir DIR [--port N] [--etcd-port N] [--node-ip IP [--node-name NAME]] [--authentication-config FILE]")
	fmt.Fprintln(os.Stderr, "       kube-local sa-kubeconfig --kubeconfig ADMIN --namespace NS --name SA --out FILE [--duration D]")
	os.Exit(2)
}
