package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
)

var now = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

func key(t *testing.T, alg string, size int) crypto.Signer {
	t.Helper()
	k, err := pki.GenerateKey(declared.KeySpec{Algorithm: alg, Size: size})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// request is what the reconciler sends for a Certificate.
func request(t *testing.T, k crypto.Signer, cn string, isCA bool, d time.Duration, dns ...string) issuer.Request {
	t.Helper()
	csr, err := pki.CSR(&declared.Certificate{CommonName: cn, DNSNames: dns, IsCA: isCA}, k)
	if err != nil {
		t.Fatal(err)
	}
	return issuer.Request{Name: "ns/" + cn, CSR: csr, DNSNames: dns, Duration: d, IsCA: isCA, Signer: k, KeyUsage: defaultUsage(isCA)}
}

// secrets is an issuer.SecretGetter over Secrets in memory, failing as
// the reconciler's does.
type secrets map[string]map[string][]byte

func (s secrets) SecretKey(_ context.Context, ns, name, k string) ([]byte, error) {
	data, ok := s[ns+"/"+name]
	if !ok {
		return nil, fmt.Errorf("%w: Secret %s/%s is not in the repository", issuer.ErrPermanent, ns, name)
	}
	v, ok := data[k]
	if !ok {
		return nil, fmt.Errorf("%w: Secret %s/%s has no key %q", issuer.ErrPermanent, ns, name, k)
	}
	return v, nil
}

// tlsSecret is the Secret certsync commits for a certificate.
func tlsSecret(t *testing.T, c *issuer.Certificate, k crypto.Signer) map[string][]byte {
	t.Helper()
	keyPEM, err := pki.MarshalKey(k, "PKCS1")
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{"tls.crt": c.ChainPEM, "tls.key": keyPEM, "ca.crt": c.CAPEM}
}

func parse(t *testing.T, pemBytes []byte) []*x509.Certificate {
	t.Helper()
	certs, err := pki.ParseChain(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

// verify checks the chain as a TLS client would: ca.crt is the only root,
// the rest of tls.crt the intermediates.
func verify(t *testing.T, got *issuer.Certificate, dnsName string) {
	t.Helper()
	chain := parse(t, got.ChainPEM)
	if !bytes.Equal(chain[0].Raw, got.Leaf.Raw) {
		t.Fatal("tls.crt does not start with the leaf")
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range parse(t, got.CAPEM) {
		roots.AddCert(c)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := got.Leaf.Verify(x509.VerifyOptions{DNSName: dnsName, Roots: roots, Intermediates: inter, CurrentTime: now.Add(time.Hour)}); err != nil {
		t.Fatalf("chain does not verify: %v", err)
	}
}

// root is a self-signed CA valid for a year, and its committed Secret.
func root(t *testing.T, alg string, size int) (*issuer.Certificate, crypto.Signer) {
	t.Helper()
	k := key(t, alg, size)
	c, err := NewSelfSigned(SelfSignedConfig{Issuer: "ClusterIssuer/selfsigned", Clock: clock}).Issue(context.Background(), request(t, k, "Example Root CA", true, 365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func checkCommon(t *testing.T, leaf *x509.Certificate, isCA bool, dns []string) {
	t.Helper()
	if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %s is not a positive 128-bit number", leaf.SerialNumber)
	}
	if !leaf.BasicConstraintsValid || leaf.IsCA != isCA {
		t.Errorf("basic constraints valid %v, isCA %v; want isCA %v", leaf.BasicConstraintsValid, leaf.IsCA, isCA)
	}
	want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	if isCA {
		want |= x509.KeyUsageCertSign
	}
	if leaf.KeyUsage != want || len(leaf.ExtKeyUsage) != 0 {
		t.Errorf("key usage %b ext %v, want %b and no extended usage (cert-manager's defaults)", leaf.KeyUsage, leaf.ExtKeyUsage, want)
	}
	if len(leaf.SubjectKeyId) != 20 {
		t.Errorf("subject key identifier %x", leaf.SubjectKeyId)
	}
	if !slices.Equal(leaf.DNSNames, dns) {
		t.Errorf("dnsNames %v, want %v", leaf.DNSNames, dns)
	}
}

func TestSelfSigned(t *testing.T) {
	tests := []struct {
		name     string
		alg      string
		size     int
		cn       string
		isCA     bool
		duration time.Duration
		dns      []string
		wantLife time.Duration
		wantSig  x509.SignatureAlgorithm
	}{
		{name: "root CA, RSA", alg: declared.RSA, size: 2048, cn: "Example Root CA", isCA: true, duration: 10 * 365 * 24 * time.Hour,
			wantLife: 10 * 365 * 24 * time.Hour, wantSig: x509.SHA256WithRSA},
		{name: "root CA, P-384", alg: declared.ECDSA, size: 384, cn: "Example Root CA", isCA: true, duration: time.Hour,
			wantLife: time.Hour, wantSig: x509.ECDSAWithSHA384},
		{name: "leaf, default duration", alg: declared.ECDSA, size: 256, cn: "web.example.com", dns: []string{"web.example.com"},
			wantLife: DefaultDuration, wantSig: x509.ECDSAWithSHA256},
		{name: "leaf, RSA-3072, dnsNames only", alg: declared.RSA, size: 3072, dns: []string{"a.example.com", "b.example.com"},
			wantLife: DefaultDuration, wantSig: x509.SHA384WithRSA},
		{name: "leaf, Ed25519", alg: declared.Ed25519, cn: "ed.example.com", dns: []string{"ed.example.com"},
			wantLife: DefaultDuration, wantSig: x509.PureEd25519},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := key(t, tt.alg, tt.size)
			iss := NewSelfSigned(SelfSignedConfig{Issuer: "ClusterIssuer/selfsigned", CRLDistributionPoints: []string{"http://crl.example.com/root.crl"}, Clock: clock})
			got, err := iss.Issue(context.Background(), request(t, k, tt.cn, tt.isCA, tt.duration, tt.dns...))
			if err != nil {
				t.Fatal(err)
			}
			leaf := got.Leaf
			checkCommon(t, leaf, tt.isCA, tt.dns)
			if !bytes.Equal(got.ChainPEM, got.CAPEM) || len(parse(t, got.ChainPEM)) != 1 {
				t.Error("a self-signed certificate is its own tls.crt and ca.crt")
			}
			if leaf.Subject.CommonName != tt.cn || !selfSigned(leaf) {
				t.Errorf("subject %q issuer %q: not self-signed", leaf.Subject, leaf.Issuer)
			}
			if !leaf.NotBefore.Equal(now) || leaf.NotAfter.Sub(leaf.NotBefore) != tt.wantLife {
				t.Errorf("valid %s – %s, want %s from %s", leaf.NotBefore, leaf.NotAfter, tt.wantLife, now)
			}
			if leaf.SignatureAlgorithm != tt.wantSig {
				t.Errorf("signature %s, want %s", leaf.SignatureAlgorithm, tt.wantSig)
			}
			if !slices.Equal(leaf.CRLDistributionPoints, []string{"http://crl.example.com/root.crl"}) {
				t.Errorf("CRL distribution points %v", leaf.CRLDistributionPoints)
			}
			if !pki.KeyMatches(leaf, k) {
				t.Error("not the request's key")
			}
			if len(tt.dns) > 0 {
				verify(t, got, tt.dns[0])
			}
		})
	}
}

func TestSelfSignedRefuses(t *testing.T) {
	k, other := key(t, declared.ECDSA, 256), key(t, declared.ECDSA, 256)
	noSigner := request(t, k, "a", false, 0, "a.example.com")
	noSigner.Signer = nil
	wrongSigner := request(t, k, "a", false, 0, "a.example.com")
	wrongSigner.Signer = other
	badCSR := request(t, k, "a", false, 0, "a.example.com")
	badCSR.CSR.Signature[len(badCSR.CSR.Signature)-1] ^= 1
	for name, req := range map[string]issuer.Request{"no signer": noSigner, "another key": wrongSigner, "a CSR whose signature fails": badCSR} {
		t.Run(name, func(t *testing.T) {
			_, err := NewSelfSigned(SelfSignedConfig{Issuer: "ClusterIssuer/selfsigned"}).Issue(context.Background(), req)
			if !errors.Is(err, issuer.ErrPermanent) {
				t.Fatalf("err = %v, want a permanent error", err)
			}
		})
	}
}

func TestCA(t *testing.T) {
	rsaRoot, rsaRootKey := root(t, declared.RSA, 2048)
	ecRoot, ecRootKey := root(t, declared.ECDSA, 384)
	rootCert := parse(t, rsaRoot.ChainPEM)[0]

	// An intermediate signed by the RSA root, committed as certsync
	// commits it: tls.crt without the root, ca.crt the root.
	interKey := key(t, declared.ECDSA, 256)
	rootIssuer, err := New(context.Background(), Config{Issuer: "ClusterIssuer/root-ca", Namespace: "cert-manager", SecretName: "root-ca",
		Secrets: secrets{"cert-manager/root-ca": tlsSecret(t, rsaRoot, rsaRootKey)}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := rootIssuer.Issue(context.Background(), request(t, interKey, "Example Intermediate CA", true, 180*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	store := secrets{
		"cert-manager/root-ca":  tlsSecret(t, rsaRoot, rsaRootKey),
		"cert-manager/ec-root":  tlsSecret(t, ecRoot, ecRootKey),
		"cert-manager/inter-ca": tlsSecret(t, inter, interKey),
		// A CA Secret made by hand without ca.crt: the root alone.
		"shop/bare-root": func() map[string][]byte { m := tlsSecret(t, rsaRoot, rsaRootKey); delete(m, "ca.crt"); return m }(),
	}
	tests := []struct {
		name      string
		ns, sec   string
		isCA      bool
		duration  time.Duration
		wantLife  time.Duration // notAfter − now
		wantChain int           // certificates in tls.crt
		wantSig   x509.SignatureAlgorithm
	}{
		{name: "leaf, default duration", ns: "cert-manager", sec: "root-ca", wantLife: DefaultDuration, wantChain: 1, wantSig: x509.SHA256WithRSA},
		{name: "leaf capped at the CA's notAfter", ns: "cert-manager", sec: "root-ca", duration: 2 * 365 * 24 * time.Hour,
			wantLife: 365 * 24 * time.Hour, wantChain: 1, wantSig: x509.SHA256WithRSA},
		{name: "leaf of a P-384 CA", ns: "cert-manager", sec: "ec-root", duration: 24 * time.Hour, wantLife: 24 * time.Hour, wantChain: 1, wantSig: x509.ECDSAWithSHA384},
		{name: "leaf of an intermediate: the intermediate is in tls.crt", ns: "cert-manager", sec: "inter-ca", wantLife: DefaultDuration, wantChain: 2, wantSig: x509.ECDSAWithSHA256},
		{name: "leaf capped at the intermediate's notAfter", ns: "cert-manager", sec: "inter-ca", duration: 300 * 24 * time.Hour,
			wantLife: 180 * 24 * time.Hour, wantChain: 2, wantSig: x509.ECDSAWithSHA256},
		{name: "another intermediate (isCA)", ns: "cert-manager", sec: "root-ca", isCA: true, duration: 24 * time.Hour, wantLife: 24 * time.Hour, wantChain: 1, wantSig: x509.SHA256WithRSA},
		{name: "a CA Secret without ca.crt", ns: "shop", sec: "bare-root", wantLife: DefaultDuration, wantChain: 1, wantSig: x509.SHA256WithRSA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, err := New(context.Background(), Config{Issuer: "Issuer/x", Namespace: tt.ns, SecretName: tt.sec, Secrets: store, Clock: clock,
				CRLDistributionPoints: []string{"http://crl.example.com/ca.crl"}, OCSPServers: []string{"http://ocsp.example.com"}, IssuingCertificateURLs: []string{"http://ca.example.com/ca.crt"}})
			if err != nil {
				t.Fatal(err)
			}
			dns := []string{"web.example.com", "www.example.com"}
			got, err := iss.Issue(context.Background(), request(t, key(t, declared.RSA, 2048), "web.example.com", tt.isCA, tt.duration, dns...))
			if err != nil {
				t.Fatal(err)
			}
			leaf := got.Leaf
			checkCommon(t, leaf, tt.isCA, dns)
			verify(t, got, "www.example.com")
			if n := len(parse(t, got.ChainPEM)); n != tt.wantChain {
				t.Errorf("tls.crt has %d certificates, want %d", n, tt.wantChain)
			}
			if ca := parse(t, got.CAPEM); len(ca) != 1 || !selfSigned(ca[0]) {
				t.Error("ca.crt is not the self-signed root")
			}
			if tt.sec != "ec-root" && !bytes.Equal(parse(t, got.CAPEM)[0].Raw, rootCert.Raw) {
				t.Error("ca.crt is not the RSA root")
			}
			signer := parse(t, store[tt.ns+"/"+tt.sec]["tls.crt"])[0]
			if !bytes.Equal(leaf.AuthorityKeyId, signer.SubjectKeyId) || leaf.CheckSignatureFrom(signer) != nil {
				t.Error("not signed by the CA of the Secret (authority key identifier or signature)")
			}
			if leaf.Subject.CommonName != "web.example.com" || leaf.Issuer.CommonName != signer.Subject.CommonName {
				t.Errorf("subject %q issuer %q", leaf.Subject, leaf.Issuer)
			}
			if !leaf.NotBefore.Equal(now) || leaf.NotAfter.Sub(now) != tt.wantLife {
				t.Errorf("valid %s – %s, want %s from %s", leaf.NotBefore, leaf.NotAfter, tt.wantLife, now)
			}
			if leaf.SignatureAlgorithm != tt.wantSig {
				t.Errorf("signature %s, want %s", leaf.SignatureAlgorithm, tt.wantSig)
			}
			if !slices.Equal(leaf.OCSPServer, []string{"http://ocsp.example.com"}) || !slices.Equal(leaf.IssuingCertificateURL, []string{"http://ca.example.com/ca.crt"}) ||
				!slices.Equal(leaf.CRLDistributionPoints, []string{"http://crl.example.com/ca.crl"}) {
				t.Errorf("URLs: OCSP %v, issuing %v, CRL %v", leaf.OCSPServer, leaf.IssuingCertificateURL, leaf.CRLDistributionPoints)
			}
		})
	}
}

// transient is a Secret reader that is away.
type transient struct{}

func (transient) SecretKey(context.Context, string, string, string) ([]byte, error) {
	return nil, errors.New("the API server is unreachable")
}

func TestCARefuses(t *testing.T) {
	rootCA, rootKey := root(t, declared.RSA, 2048)
	leafKey := key(t, declared.ECDSA, 256)
	leaf, err := NewSelfSigned(SelfSignedConfig{Clock: clock}).Issue(context.Background(), request(t, leafKey, "not a CA", false, 0, "leaf.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	good := tlsSecret(t, rootCA, rootKey)
	with := func(k string, v []byte) map[string][]byte {
		m := tlsSecret(t, rootCA, rootKey)
		m[k] = v
		return m
	}
	otherKey, _ := pki.MarshalKey(key(t, declared.RSA, 2048), "PKCS1")
	tests := []struct {
		name      string
		secrets   issuer.SecretGetter
		at        time.Time // of the order; zero: now
		permanent bool
		want      string
	}{
		{name: "no such Secret", secrets: secrets{}, permanent: true, want: "Secret cert-manager/root-ca is not in the repository"},
		{name: "no tls.key", secrets: secrets{"cert-manager/root-ca": {"tls.crt": good["tls.crt"]}}, permanent: true, want: `no key "tls.key"`},
		{name: "a malformed key", secrets: secrets{"cert-manager/root-ca": with("tls.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{0, 0, 0}}))}, permanent: true, want: "tls.key: parse RSA PRIVATE KEY: malformed key"},
		{name: "no certificate", secrets: secrets{"cert-manager/root-ca": with("tls.crt", []byte("junk"))}, permanent: true, want: "tls.crt: no certificate"},
		{name: "a key of another certificate", secrets: secrets{"cert-manager/root-ca": with("tls.key", otherKey)}, permanent: true, want: "tls.key is not the key of the first certificate in tls.crt"},
		{name: "not a CA", secrets: secrets{"cert-manager/root-ca": tlsSecret(t, leaf, leafKey)}, permanent: true, want: "is not a CA: issue it with isCA: true"},
		{name: "an expired CA", secrets: secrets{"cert-manager/root-ca": good}, at: now.Add(366 * 24 * time.Hour), permanent: true, want: "expired at 2027-11-01T12:00:00Z: renew it first"},
		{name: "the Secret store is away", secrets: transient{}, want: "unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := now
			if !tt.at.IsZero() {
				at = tt.at
			}
			cfg := Config{Issuer: "ClusterIssuer/root-ca", Namespace: "cert-manager", SecretName: "root-ca", Secrets: tt.secrets, Clock: func() time.Time { return at }}
			iss, err := New(context.Background(), cfg)
			if err == nil {
				_, err = iss.Issue(context.Background(), request(t, key(t, declared.ECDSA, 256), "x", false, 0, "x.example.com"))
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, issuer.ErrPermanent) != tt.permanent {
				t.Fatalf("err = %v; want %q, permanent %v", err, tt.want, tt.permanent)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY-----") || strings.Contains(err.Error(), "AAAA") {
				t.Errorf("the error quotes key material: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "permanent: ClusterIssuer/root-ca") && !strings.HasPrefix(err.Error(), "ClusterIssuer/root-ca") {
				t.Errorf("the error does not name the issuer: %v", err)
			}
		})
	}
}

// A certificate the CA issuer signs has the CSR's subject as written.
func TestCAKeepsTheSubject(t *testing.T) {
	rootCA, rootKey := root(t, declared.ECDSA, 256)
	iss, err := New(context.Background(), Config{Issuer: "Issuer/ca", Namespace: "ns", SecretName: "ca", Secrets: secrets{"ns/ca": tlsSecret(t, rootCA, rootKey)}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	k := key(t, declared.ECDSA, 256)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "svc", Organization: []string{"Example"}}, DNSNames: []string{"svc.example.com"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	got, err := iss.Issue(context.Background(), issuer.Request{Name: "ns/svc", CSR: csr, Signer: k, KeyUsage: defaultUsage(false)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Leaf.RawSubject, csr.RawSubject) {
		t.Errorf("subject %q, want %q", got.Leaf.Subject, csr.Subject)
	}
}

// defaultUsage is what the reconciler asks for a Certificate without
// spec.usages (pki.KeyUsages): cert-manager's defaults.
func defaultUsage(isCA bool) x509.KeyUsage {
	u := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	if isCA {
		u |= x509.KeyUsageCertSign
	}
	return u
}
