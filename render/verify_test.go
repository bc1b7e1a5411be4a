package render

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
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

// fixture renders a Secret for a certificate made here at run time and
// reads its record back the way a pass does: from the committed file.
func fixture(t *testing.T) (*corev1.Secret, committed.Certificate) {
	t.Helper()
	c := &declared.Certificate{Namespace: "shop", Name: "web", SecretName: "web-tls", CommonName: "example.com",
		DNSNames: []string{"example.com", "www.example.com"}, Duration: declared.DefaultDuration,
		Source:     declared.Source{File: "certs/web.yaml", Line: 3},
		PrivateKey: declared.KeySpec{Algorithm: declared.ECDSA, Size: 256},
		IssuerRef:  declared.IssuerRef{Name: "le", Kind: declared.KindClusterIssuer, Group: "cert-manager.io"}}
	key, err := pki.GenerateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0xabc), Subject: pkix.Name{CommonName: "example.com"},
		DNSNames: c.DNSNames, NotBefore: now, NotAfter: now.Add(90 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	keyPEM, err := pki.MarshalKey(key, "PKCS8")
	if err != nil {
		t.Fatal(err)
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	s, err := TLSSecret(TLS{Certificate: c, Issued: &issuer.Certificate{ChainPEM: chain, Leaf: leaf}, KeyPEM: keyPEM,
		IssuedAt: now, Reason: "no Secret committed"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := committed.Read(committed.SecretPath("default", "shop", "web-tls"), append(out, "sops:\n    age:\n        - recipient: age1x\n"...))
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

func TestVerify(t *testing.T) {
	otherKey, err := pki.GenerateKey(declared.KeySpec{Algorithm: declared.ECDSA, Size: 256})
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, _ := pki.MarshalKey(otherKey, "PKCS8")
	later := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	// lie changes an annotation in the file consistently: in the plaintext
	// the planner reads and in the copy SOPS's MAC covers.
	lie := func(key, value string, set func(*committed.Certificate)) func(*corev1.Secret, *committed.Certificate) {
		return func(s *corev1.Secret, rec *committed.Certificate) {
			s.Annotations[key] = value
			set(rec)
		}
	}
	tests := []struct {
		name   string
		change func(*corev1.Secret, *committed.Certificate)
		want   []string // substrings of the error; none: valid
	}{
		{"as issued", func(*corev1.Secret, *committed.Certificate) {}, nil},
		{"names in another order", lie(committed.AnnotationCMAltNames, "www.example.com,example.com", func(r *committed.Certificate) {
			r.DNSNames = []string{"www.example.com", "example.com"}
		}), nil},
		{"serial", lie(committed.AnnotationSerial, "0abd", func(r *committed.Certificate) { r.Serial = "0abd" }),
			[]string{`serial: metadata says "0abd", the certificate has "0abc"`}},
		{"not-after", lie(committed.AnnotationNotAfter, committed.FormatTime(later), func(r *committed.Certificate) { r.NotAfter = later }),
			[]string{`not-after: metadata says "2027-03-01T00:00:00Z", the certificate has "2027-02-22T10:00:00Z"`}},
		{"not-before", lie(committed.AnnotationNotBefore, "", func(r *committed.Certificate) { r.NotBefore = time.Time{} }),
			[]string{`not-before: metadata says "", the certificate has "2026-11-24T10:00:00Z"`}},
		{"dnsNames", lie(committed.AnnotationCMAltNames, "example.com", func(r *committed.Certificate) { r.DNSNames = []string{"example.com"} }),
			[]string{`dnsNames: metadata says "example.com", the certificate has "example.com,www.example.com"`}},
		{"key spec", lie(committed.AnnotationPrivateKey, "RSA-2048", func(r *committed.Certificate) { r.PrivateKey = "RSA-2048" }),
			[]string{`private-key: metadata says "RSA-2048", the certificate has "ECDSA-256"`}},
		{"key of another certificate", func(s *corev1.Secret, _ *committed.Certificate) { s.Data["tls.key"] = otherPEM },
			[]string{"tls.key: does not belong to the certificate"}},
		{"key unreadable", func(s *corev1.Secret, _ *committed.Certificate) { s.Data["tls.key"] = []byte("garbage") },
			[]string{"tls.key: no PEM private key found"}},
		{"certificate unreadable", func(s *corev1.Secret, _ *committed.Certificate) { delete(s.Data, "tls.crt") },
			[]string{"tls.crt: no certificate in PEM data"}},
		{"plaintext copy differs from the covered one", func(_ *corev1.Secret, r *committed.Certificate) { r.SpecHash = "forged" },
			[]string{committed.AnnotationSpecHash + `: plaintext metadata says "forged", the SOPS-covered copy`}},
		{"two fields at once", func(s *corev1.Secret, r *committed.Certificate) {
			r.Serial = "0abd"
			s.Data["tls.key"] = otherPEM
		}, []string{`certsync.io/serial: plaintext metadata says "0abd"`, `serial: metadata says "0abd"`, "tls.key: does not belong"}},
		{"Secret renamed inside", func(s *corev1.Secret, _ *committed.Certificate) { s.Name = "api-tls" },
			[]string{"Secret: the path says shop/web-tls, the SOPS-covered copy shop/api-tls"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rec := fixture(t)
			keyPEM := string(s.Data["tls.key"])
			tt.change(s, &rec)
			err := Verify(s, rec)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrMismatch) {
				t.Fatalf("err = %v, want ErrMismatch", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if !strings.Contains(err.Error(), rec.Path) {
				t.Errorf("error does not name the file: %v", err)
			}
			body := strings.Split(keyPEM, "\n")[1] // a line of the key's base64
			if strings.Contains(err.Error(), body) || strings.Contains(err.Error(), string(otherPEM[40:80])) {
				t.Fatalf("error quotes key material: %v", err)
			}
		})
	}
}
