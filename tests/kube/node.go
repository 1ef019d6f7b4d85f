package main

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"time"

	"k8s.io/kubernetes/cmd/kube-controller-manager/names"
)

// serviceCIDR is the range of Service ClusterIPs; kubernetesServiceIP is the first address,
// which the API server gives to the `kubernetes` Service that in-cluster clients use.
const serviceCIDR = "10.96.0.0/16"

var kubernetesServiceIP = net.ParseIP("10.96.0.1")

// nodeConfig describes the single node of tests/kube/up --node.
type nodeConfig struct {
	name  string
	ip    net.IP
	certs nodePKI
}

// nodeControllers are the kube-controller-manager controllers that a node's workloads need,
// beyond the garbage collector and namespace controllers that always run.
var nodeControllers = []string{
	names.DeploymentController,
	names.ReplicaSetController,
	names.StatefulSetController,
	names.JobController,
	names.DisruptionController,
	names.EndpointsController,
	names.EndpointSliceController,
	// The `default` ServiceAccount of each namespace, and the kube-root-ca.crt ConfigMap that
	// projected service account token volumes include.
	names.ServiceAccountController,
	names.ServiceAccountTokenController,
	names.RootCACertificatePublisherController,
	// Removes the not-ready taint once the kubelet reports Ready.
	names.NodeLifecycleController,
	names.PodGarbageCollectorController,
	names.PersistentVolumeBinderController,
	names.PersistentVolumeClaimProtectionController,
	names.PersistentVolumeProtectionController,
	names.ClusterRoleAggregationController,
}

// writeNodeKubeconfigs writes the kubeconfigs of the kubelet, kube-proxy and the scheduler,
// each with its own client certificate.
func writeNodeKubeconfigs(dir, server string, certs pki, n nodePKI) error {
	for _, k := range []struct{ file, cert, key, user string }{
		{"kubelet.kubeconfig", n.kubeletClientCert, n.kubeletClientKey, "kubelet"},
		{"kube-proxy.kubeconfig", n.proxyCert, n.proxyKey, "kube-proxy"},
		{"kube-scheduler.kubeconfig", n.schedulerCert, n.schedulerKey, "kube-scheduler"},
	} {
		if err := writeKubeconfig(filepath.Join(dir, k.file), server, certs.caCert, k.cert, k.key, k.user); err != nil {
			return err
		}
	}
	return nil
}

// forward relays TCP connections accepted on listen to target until ctx ends. The listen
// address belongs to the node's bridge, which tests/kube/node-up may create after the control
// plane started: binding is retried until it succeeds.
func forward(ctx context.Context, listen, target string) {
	var l net.Listener
	for {
		var err error
		if l, err = net.Listen("tcp", listen); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	go func() {
		<-ctx.Done()
		_ = l.Close()
	}()
	for {
		in, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer in.Close()
			out, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer out.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
			go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
			<-done
		}()
	}
}
