package main

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersdiscoveryv1 "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// clusterDomain is the DNS domain of Services (the kubelet's clusterDomain).
const clusterDomain = "cluster.local."

// clusterDNS answers the cluster's DNS names on the node's address, as kube-dns/CoreDNS do
// for the records workloads use: SERVICE.NAMESPACE.svc.cluster.local is the Service's
// ClusterIP, or the ready endpoints' addresses of a headless Service. Other names are
// forwarded to the host's resolver.
type clusterDNS struct {
	services  listerscorev1.ServiceLister
	slices    listersdiscoveryv1.EndpointSliceLister
	upstreams []string
}

// runClusterDNS serves DNS on addr (UDP and TCP) until ctx ends. Binding is retried until the
// node's bridge, which holds the address, exists.
func runClusterDNS(ctx context.Context, kubeconfig, addr string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
	d := &clusterDNS{
		services: factory.Core().V1().Services().Lister(),
		slices:   factory.Discovery().V1().EndpointSlices().Lister(),
	}
	if rc, err := dns.ClientConfigFromFile("/etc/resolv.conf"); err == nil {
		for _, s := range rc.Servers {
			d.upstreams = append(d.upstreams, net.JoinHostPort(s, rc.Port))
		}
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	var udp net.PacketConn
	var tcp net.Listener
	for {
		if udp, err = net.ListenPacket("udp", addr); err == nil {
			if tcp, err = net.Listen("tcp", addr); err == nil {
				break
			}
			_ = udp.Close()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	servers := []*dns.Server{{PacketConn: udp, Handler: d}, {Listener: tcp, Handler: d}}
	for _, s := range servers {
		go func() {
			if err := s.ActivateAndServe(); err != nil {
				klog.ErrorS(err, "cluster DNS stopped", "address", addr)
			}
		}()
	}
	<-ctx.Done()
	for _, s := range servers {
		_ = s.Shutdown()
	}
	return nil
}

// ServeDNS answers one query.
func (d *clusterDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		reply := new(dns.Msg)
		_ = w.WriteMsg(reply.SetRcode(req, dns.RcodeFormatError))
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if !dns.IsSubDomain(clusterDomain, name) {
		_ = w.WriteMsg(d.forward(w, req))
		return
	}
	reply := new(dns.Msg)
	reply.SetReply(req)
	reply.Authoritative = true
	ips, found := d.lookup(strings.TrimSuffix(name, "."+clusterDomain))
	if !found {
		reply.Rcode = dns.RcodeNameError
		_ = w.WriteMsg(reply)
		return
	}
	if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
		for _, ip := range ips {
			reply.Answer = append(reply.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
				A:   ip,
			})
		}
	}
	_ = w.WriteMsg(reply)
}

// lookup resolves SERVICE.NAMESPACE.svc (the cluster domain removed).
func (d *clusterDNS) lookup(name string) ([]net.IP, bool) {
	parts := strings.Split(name, ".")
	if len(parts) != 3 || parts[2] != "svc" {
		return nil, false
	}
	svc, err := d.services.Services(parts[1]).Get(parts[0])
	if err != nil {
		return nil, false
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		var ips []net.IP
		for _, s := range svc.Spec.ClusterIPs {
			if ip := net.ParseIP(s).To4(); ip != nil {
				ips = append(ips, ip)
			}
		}
		return ips, true
	}
	slices, _ := d.slices.EndpointSlices(parts[1]).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name}))
	var ips []net.IP
	for _, s := range slices {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				if ip := net.ParseIP(a).To4(); ip != nil {
					ips = append(ips, ip)
				}
			}
		}
	}
	return ips, true
}

// forward relays a query for a name outside the cluster to the host's resolver.
func (d *clusterDNS) forward(w dns.ResponseWriter, req *dns.Msg) *dns.Msg {
	network := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	for _, upstream := range d.upstreams {
		if reply, _, err := c.Exchange(req, upstream); err == nil {
			return reply
		}
	}
	return new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
}
