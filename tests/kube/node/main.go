// Command kube-node runs the node side of the local cluster that tests/kube/up --node starts:
// the upstream kubelet, kube-proxy and kube-scheduler commands, built from the same
// k8s.io/kubernetes module as kube-local (one multi-call binary keeps the build and link
// cached in one place), plus a cleanup command that tears pods down through the CRI.
//
//	kube-node kubelet ARGS...     the kubelet (flags as upstream's kubelet)
//	kube-node proxy ARGS...       kube-proxy (flags as upstream's kube-proxy)
//	kube-node scheduler ARGS...   kube-scheduler (flags as upstream's kube-scheduler)
//	kube-node cleanup ENDPOINT    stops and removes every pod sandbox of the CRI runtime at
//	                              ENDPOINT (unix:///path/to/containerd.sock), which releases
//	                              their network (CNI DEL) and mounts
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace/noop"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	remote "k8s.io/cri-client/pkg"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	name, args := os.Args[1], os.Args[2:]
	var cmd *cobra.Command
	switch name {
	case "kubelet":
		cmd = kubeletapp.NewKubeletCommand(context.Background())
	case "proxy":
		cmd = proxyapp.NewProxyCommand()
	case "scheduler":
		cmd = schedulerapp.NewSchedulerCommand()
	case "cleanup":
		if len(args) != 1 {
			usage()
		}
		if err := cleanup(args[0]); err != nil {
			fmt.Fprintf(os.Stderr, "kube-node cleanup: %v\n", err)
			os.Exit(1)
		}
		return
	default:
		usage()
	}
	cmd.SetArgs(args)
	os.Exit(cli.Run(cmd))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kube-node kubelet|proxy|scheduler ARGS... | kube-node cleanup unix:///path/to/cri.sock")
	os.Exit(2)
}

// cleanup removes every pod sandbox (and with it its containers) of a CRI runtime, the way
// the kubelet would when pods are deleted, so that the runtime can stop without leaving
// network namespaces, veth pairs, IP leases or mounts behind.
func cleanup(endpoint string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs, err := remote.NewRemoteRuntimeService(ctx, endpoint, 10*time.Second, noop.NewTracerProvider(), false)
	if err != nil {
		return err
	}
	sandboxes, err := rs.ListPodSandbox(ctx, nil)
	if err != nil {
		return err
	}
	for _, s := range sandboxes {
		if err := rs.StopPodSandbox(ctx, s.Id); err != nil {
			return fmt.Errorf("stop pod sandbox %s (%s/%s): %w", s.Id, s.Metadata.Namespace, s.Metadata.Name, err)
		}
		if err := rs.RemovePodSandbox(ctx, s.Id); err != nil {
			return fmt.Errorf("remove pod sandbox %s (%s/%s): %w", s.Id, s.Metadata.Namespace, s.Metadata.Name, err)
		}
	}
	fmt.Fprintf(os.Stderr, "kube-node cleanup: removed %d pod sandboxes\n", len(sandboxes))
	return nil
}
