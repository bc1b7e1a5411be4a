package render

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
)

// TestTLSSecretIsCertManagers checks the Secret has cert-manager's shape,
// and that its YAML round-trips and reads back as a committed record.
func TestTLSSecretIsCertManagers(t *testing.T) {
	c := &declared.Certificate{Namespace: "shop", Name: "web", SecretName: "web-tls", CommonName: "example.com",
		DNSNames: []string{"example.com", "www.example.com"}, Duration: declared.DefaultDuration,
		Source:         declared.Source{File: "certs/web.yaml", Line: 3},
		SecretTemplate: declared.SecretTemplate{Labels: map[string]string{"team": "web"}, Annotations: map[string]string{"note": "x"}},
		PrivateKey:     declared.KeySpec{Algorithm: declared.ECDSA, Size: 256},
		IssuerRef:      declared.IssuerRef{Name: "le", Kind: declared.KindClusterIssuer, Group: "cert-manager.io"}}
	key, _ := pki.GenerateKey(c.PrivateKey)
	now := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0xabc), Subject: pkix.Name{CommonName: "example.com"}, DNSNames: c.DNSNames, NotBefore: now, NotAfter: now.Add(90 * 24 * time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	leaf, _ := x509.ParseCertificate(der)
	keyPEM, _ := pki.MarshalKey(key, "PKCS1")
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	s, err := TLSSecret(TLS{Certificate: c, Issued: &issuer.Certificate{ChainPEM: chain, CAPEM: chain, Leaf: leaf}, KeyPEM: keyPEM, IssuedAt: now, Reason: "no Secret committed",
		Window: &issuer.RenewalWindow{Start: now.Add(60 * 24 * time.Hour), End: now.Add(61 * 24 * time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}

	if s.Type != corev1.SecretTypeTLS || len(s.Data["tls.crt"]) == 0 || len(s.Data["tls.key"]) == 0 || len(s.Data["ca.crt"]) == 0 {
		t.Fatalf("not a kubernetes.io/tls Secret with tls.crt, tls.key, ca.crt: %s %v", s.Type, s.Data)
	}
	for k, want := range map[string]string{
		"cert-manager.io/certificate-name": "web", "cert-manager.io/common-name": "example.com",
		"cert-manager.io/alt-names": "example.com,www.example.com", "cert-manager.io/issuer-name": "le",
		"cert-manager.io/issuer-kind": "ClusterIssuer", "cert-manager.io/issuer-group": "cert-manager.io",
		"note": "x", committed.AnnotationSerial: "0abc", committed.AnnotationPrivateKey: "ECDSA-256",
	} {
		if s.Annotations[k] != want {
			t.Errorf("annotation %s = %q, want %q", k, s.Annotations[k], want)
		}
	}
	if s.Labels["team"] != "web" || s.Labels["controller.cert-manager.io/fao"] != "true" || s.Labels[committed.ManagedByLabel] != committed.ManagedByValue {
		t.Errorf("labels %v", s.Labels)
	}
	out, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "creationTimestamp") || !strings.HasPrefix(string(out), "apiVersion: v1\n") {
		t.Errorf("manifest:\n%s", out)
	}
	back, err := Parse(out)
	if err != nil || string(back.Data["tls.key"]) != string(keyPEM) || back.Annotations[committed.AnnotationNotAfter] != "2027-02-22T00:00:00Z" {
		t.Fatalf("round trip: %v", err)
	}
	// As committed (a sops section appended), the metadata reads back.
	rec, err := committed.Read(committed.SecretPath("default", "shop", "web-tls"), append(out, "sops:\n    age:\n        - recipient: age1x\n"...))
	if err != nil || rec.SpecHash != c.SpecHash() || !rec.RenewalWindowStart.Equal(now.Add(60*24*time.Hour)) || rec.Source != "certs/web.yaml" {
		t.Fatalf("record %+v, %v", rec, err)
	}
}

func TestParseNeverQuotesInput(t *testing.T) {
	_, err := Parse([]byte("kind: Secret\ndata: {tls.key: [SECRETMATERIAL\n"))
	if err == nil || strings.Contains(err.Error(), "SECRETMATERIAL") {
		t.Fatalf("err = %v", err)
	}
}
