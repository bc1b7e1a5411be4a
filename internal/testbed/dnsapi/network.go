// Package dnsapi emulates, on loopback, the HTTP APIs of the DNS providers
// cert-manager's DNS-01 blocks name, so tests run lego's real provider code
// against them: Cloudflare, DigitalOcean, AWS Route 53, Google Cloud DNS
// (with Google's OAuth token endpoint) and acme-dns.
//
// # What an emulator is
//
// Each emulator serves only the endpoints lego v4.35.2's provider calls
// (each file names the lego source it follows), checks the credentials as
// the real service does (a bearer token, an AWS Signature V4, a Google
// service account's signed JWT, acme-dns's X-Api-User and X-Api-Key),
// answers a refused credential with the service's own status and error
// shape, and publishes the TXT records it holds into a DNS the CA's
// validation queries (testbed.ACME.SetTXT). Records, Served and Refused let
// a test see what the API did.
//
// # How lego reaches it
//
// A Network is one TLS listener that serves any number of host names (each
// emulator registers the real API host, "api.cloudflare.com") with
// certificates from its own CA. Network.Transport dials every registered
// host to that listener and trusts that CA, and refuses any other host: a
// client handed that transport talks to the emulators with the real URLs,
// and can reach nothing else.
package dnsapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/certsync/certsync/internal/testbed"
)

// DNS is where an emulator publishes the TXT records its API holds: the
// DNS server the CA validates against (*testbed.ACME).
type DNS interface {
	// SetTXT makes values the whole TXT set of fqdn; none removes it.
	SetTXT(fqdn string, values []string)
}

var _ DNS = (*testbed.ACME)(nil)

// Network serves the emulators' host names over HTTPS on one loopback
// listener.
type Network struct {
	addr  string
	roots *x509.CertPool

	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey

	mu    sync.Mutex
	hosts map[string]http.Handler
	certs map[string]*tls.Certificate
}

// Start starts an empty network; emulators add their hosts to it.
func Start(t testbed.TB) *Network {
	t.Helper()
	n := &Network{hosts: map[string]http.Handler{}, certs: map[string]*tls.Certificate{}}
	var err error
	if n.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatalf("dnsapi CA key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "certsync dnsapi test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &n.caKey.PublicKey, n.caKey)
	if err != nil {
		t.Fatalf("dnsapi CA: %v", err)
	}
	if n.caCert, err = x509.ParseCertificate(der); err != nil {
		t.Fatalf("dnsapi CA: %v", err)
	}
	n.roots = x509.NewCertPool()
	n.roots.AddCert(n.caCert)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dnsapi listen: %v", err)
	}
	n.addr = ln.Addr().String()
	srv := &http.Server{
		Handler:           http.HandlerFunc(n.serve),
		TLSConfig:         &tls.Config{GetCertificate: n.certificate},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return n
}

// Handle serves host (a name, no port) with h.
func (n *Network) Handle(host string, h http.Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.hosts[strings.ToLower(host)] = h
}

// Transport reaches the network's hosts, and only them, trusting its CA.
// Each call returns a new transport (lego's clients may wrap it).
func (n *Network) Transport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if !n.has(host) {
				return nil, fmt.Errorf("dnsapi: %s is not on the test network", host)
			}
			return d.DialContext(ctx, "tcp", n.addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: n.roots},
		TLSHandshakeTimeout: 5 * time.Second,
	}
}

func (n *Network) has(host string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.hosts[strings.ToLower(host)]
	return ok
}

func (n *Network) serve(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	n.mu.Lock()
	h := n.hosts[strings.ToLower(host)]
	n.mu.Unlock()
	if h == nil {
		http.Error(w, "no such host on the test network", http.StatusMisdirectedRequest)
		return
	}
	h.ServeHTTP(w, r)
}

// certificate issues (once per name) a leaf for the name the client asks.
func (n *Network) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(hello.ServerName)
	if !n.has(name) {
		return nil, fmt.Errorf("dnsapi: no host %q", name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if c, ok := n.certs[name]; ok {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, n.caCert, &key.PublicKey, n.caKey)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	n.certs[name] = c
	return c, nil
}
