package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// pki holds the paths of the certificates and keys the control plane uses. Everything is
// generated once per state directory and reused on restart, so kubeconfigs stay valid; a
// certificate is issued again only when the names it must cover change.
type pki struct {
	caCert, caKey           string
	servingCert, servingKey string
	adminCert, adminKey     string
	saKey, saPub            string
}

// nodePKI holds the credentials of the node components (tests/kube/up --node): each runs
// under its own identity, authorized by the API server's built-in roles.
type nodePKI struct {
	kubeletClientCert, kubeletClientKey       string // system:node:NAME in system:nodes (Node authorizer)
	kubeletServingCert, kubeletServingKey     string // the kubelet's HTTPS endpoint (logs, exec)
	apiserverKubeletCert, apiserverKubeletKey string // the API server's client certificate towards kubelets
	proxyCert, proxyKey                       string // system:kube-proxy (system:node-proxier)
	schedulerCert, schedulerKey               string // system:kube-scheduler
}

func pkiPaths(dir string) pki {
	p := filepath.Join(dir, "pki")
	return pki{
		caCert: filepath.Join(p, "ca.crt"), caKey: filepath.Join(p, "ca.key"),
		servingCert: filepath.Join(p, "apiserver.crt"), servingKey: filepath.Join(p, "apiserver.key"),
		adminCert: filepath.Join(p, "admin.crt"), adminKey: filepath.Join(p, "admin.key"),
		saKey: filepath.Join(p, "sa.key"), saPub: filepath.Join(p, "sa.pub"),
	}
}

func nodePKIPaths(dir string) nodePKI {
	p := func(name string) string { return filepath.Join(dir, "pki", name) }
	return nodePKI{
		kubeletClientCert: p("kubelet-client.crt"), kubeletClientKey: p("kubelet-client.key"),
		kubeletServingCert: p("kubelet.crt"), kubeletServingKey: p("kubelet.key"),
		apiserverKubeletCert: p("apiserver-kubelet-client.crt"), apiserverKubeletKey: p("apiserver-kubelet-client.key"),
		proxyCert: p("kube-proxy.crt"), proxyKey: p("kube-proxy.key"),
		schedulerCert: p("kube-scheduler.crt"), schedulerKey: p("kube-scheduler.key"),
	}
}

// issuer signs leaf certificates with the cluster's CA.
type issuer struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// ensurePKI creates (or loads) the CA and the control plane's certificates. extraServingIPs
// are added to the API server's certificate (the node's address and the `kubernetes`
// Service's ClusterIP, which pods use).
func ensurePKI(dir string, extraServingIPs []net.IP) (pki, issuer, error) {
	p := pkiPaths(dir)
	if err := os.MkdirAll(filepath.Dir(p.caCert), 0o700); err != nil {
		return p, issuer{}, err
	}
	ca, err := ensureCA(p.caCert, p.caKey)
	if err != nil {
		return p, ca, err
	}
	ips := append([]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, extraServingIPs...)
	if err := ca.ensureLeaf(p.servingCert, p.servingKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: ips,
	}); err != nil {
		return p, ca, err
	}
	if err := ca.ensureLeaf(p.adminCert, p.adminKey, clientTemplate("kube-local-admin", "system:masters")); err != nil {
		return p, ca, err
	}
	if _, err := os.Stat(p.saPub); err == nil {
		return p, ca, nil
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return p, ca, err
	}
	if err := writeKey(p.saKey, saKey); err != nil {
		return p, ca, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return p, ca, err
	}
	return p, ca, os.WriteFile(p.saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600)
}

// ensureNodePKI issues the node components' certificates.
func ensureNodePKI(dir string, ca issuer, nodeName string, nodeIP net.IP) (nodePKI, error) {
	n := nodePKIPaths(dir)
	leaves := []struct {
		cert, key string
		tmpl      *x509.Certificate
	}{
		{n.kubeletClientCert, n.kubeletClientKey, clientTemplate("system:node:"+nodeName, "system:nodes")},
		{n.kubeletServingCert, n.kubeletServingKey, &x509.Certificate{
			Subject:     pkix.Name{CommonName: nodeName},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:    []string{nodeName},
			IPAddresses: []net.IP{nodeIP},
		}},
		{n.apiserverKubeletCert, n.apiserverKubeletKey, clientTemplate("kube-apiserver-kubelet-client", "system:masters")},
		{n.proxyCert, n.proxyKey, clientTemplate("system:kube-proxy", "")},
		{n.schedulerCert, n.schedulerKey, clientTemplate("system:kube-scheduler", "")},
	}
	for _, l := range leaves {
		if err := ca.ensureLeaf(l.cert, l.key, l.tmpl); err != nil {
			return n, err
		}
	}
	return n, nil
}

func clientTemplate(user, group string) *x509.Certificate {
	subject := pkix.Name{CommonName: user}
	if group != "" {
		subject.Organization = []string{group}
	}
	return &x509.Certificate{Subject: subject, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
}

func ensureCA(certPath, keyPath string) (issuer, error) {
	if cert, key, err := loadPair(certPath, keyPath); err == nil {
		return issuer{cert, key}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return issuer{}, err
	}
	now := time.Now().Add(-time.Hour)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return issuer{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kube-local-ca"},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return issuer{}, err
	}
	cert, _ := x509.ParseCertificate(der)
	if err := writeCert(certPath, der); err != nil {
		return issuer{}, err
	}
	return issuer{cert, key}, writeKey(keyPath, key)
}

// ensureLeaf issues a certificate unless one with the same subject and names exists.
func (ca issuer) ensureLeaf(certPath, keyPath string, tmpl *x509.Certificate) error {
	if cert, _, err := loadPair(certPath, keyPath); err == nil &&
		cert.Subject.String() == tmpl.Subject.String() &&
		slices.Equal(cert.DNSNames, tmpl.DNSNames) &&
		slices.EqualFunc(cert.IPAddresses, tmpl.IPAddresses, func(a, b net.IP) bool { return a.Equal(b) }) {
		return nil
	}
	now := time.Now().Add(-time.Hour)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = now
	tmpl.NotAfter = now.Add(5 * 365 * 24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return err
	}
	if err := writeCert(certPath, der); err != nil {
		return err
	}
	return writeKey(keyPath, key)
}

func loadPair(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("%s or %s is not PEM", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s holds no signing key", keyPath)
	}
	return cert, signer, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func writeCert(path string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}
