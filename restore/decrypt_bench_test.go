package restore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/encrypt"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
	"github.com/certsync/certsync/render"
)

// committedFile is one Secret as certsync commits it: a rendered TLS
// Secret for an ECDSA certificate, SOPS-encrypted to one age recipient.
func committedFile(b *testing.B) (*encrypt.SOPS, string, []byte) {
	b.Helper()
	id, _ := age.GenerateX25519Identity()
	s, err := encrypt.New(encrypt.Config{SOPSConfig: []byte("creation_rules:\n  - age: " + id.Recipient().String() + "\n"), AgeIdentities: []byte(id.String())})
	if err != nil {
		b.Fatal(err)
	}
	const src = "certificates/shop/web.yaml"
	set := declared.ParseFile(declared.File{Path: src, Content: []byte(`apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web, namespace: shop}
spec:
  secretName: web-tls
  dnsNames: [web.shop.example.org]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: le, kind: ClusterIssuer}
`)})
	c := &set.Certificates[0]
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"}, NotBefore: now, NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	key, _ := pki.GenerateKey(c.PrivateKey)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), DNSNames: c.DNSNames, NotBefore: now, NotAfter: now.Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	leaf, _ := x509.ParseCertificate(der)
	keyPEM, _ := pki.MarshalKey(key, c.PrivateKey.Encoding)
	sec, err := render.TLSSecret(render.TLS{Certificate: c, Issued: &issuer.Certificate{ChainPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Leaf: leaf}, KeyPEM: keyPEM, IssuedAt: now, Reason: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	plain, err := render.Marshal(sec)
	if err != nil {
		b.Fatal(err)
	}
	const path = "secrets/default/shop/web-tls.yaml"
	enc, err := s.Encrypt(context.Background(), path, plain)
	if err != nil {
		b.Fatal(err)
	}
	return s, path, enc
}

// BenchmarkDecryptSecret is the per-file work of a restore: open the
// committed file and turn it into the Secret sent to the API server;
// yaml is the way through the plaintext YAML the other readers take.
func BenchmarkDecryptSecret(b *testing.B) {
	s, path, enc := committedFile(b)
	ctx := context.Background()
	b.Run("document", func(b *testing.B) {
		for b.Loop() {
			doc, err := s.DecryptDocument(ctx, path, enc)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := render.FromDocument(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("yaml", func(b *testing.B) {
		for b.Loop() {
			plain, err := s.Decrypt(ctx, path, enc)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := render.Parse(plain); err != nil {
				b.Fatal(err)
			}
		}
	})
}
