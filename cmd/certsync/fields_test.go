package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/encrypt"
	"github.com/certsync/certsync/internal/testbed"
	"github.com/certsync/certsync/pki"
	"github.com/certsync/certsync/render"
)

// storeCert asks an ACME CA for a DNS name and an IP address (HTTP-01),
// with cert-manager's additional output formats and a PKCS#12 keystore
// whose password is a SOPS-encrypted Secret of the repository.
const storeCert = `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: store, namespace: shop}
spec:
  secretName: store-tls
  dnsNames: [store.shop.test]
  ipAddresses: [127.0.0.1]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: letsencrypt-staging, kind: ClusterIssuer}
  additionalOutputFormats:
  - type: CombinedPEM
  - type: DER
  keystores:
    pkcs12:
      create: true
      profile: Modern2023
      passwordSecretRef: {name: store-keystore, key: password}
`

// keystorePassword is a fresh random password, one a test can search Git
// objects for.
func keystorePassword(t *testing.T) string {
	t.Helper()
	password := make([]byte, 16)
	if _, err := rand.Read(password); err != nil {
		t.Fatal(err)
	}
	return "ks-" + hex.EncodeToString(password)
}

// writePasswordSecret commits (in the checkout dir) the Secret shop/name
// holding a keystore password, encrypted by the repository's .sops.yaml
// as a user would with sops.
func writePasswordSecret(t *testing.T, dir, name, password string) {
	t.Helper()
	sopsConfig, err := os.ReadFile(filepath.Join(dir, ".sops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := encrypt.New(encrypt.Config{SOPSConfig: sopsConfig})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	path := "credentials/" + name + ".yaml"
	plain := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: shop\ntype: Opaque\nstringData:\n  password: %s\n", name, password)
	out, err := enc.Encrypt(context.Background(), path, []byte(plain))
	if err != nil {
		t.Fatalf("encrypt the password Secret: %v", err)
	}
	writeFile(t, filepath.Join(dir, path), string(out))
}

// TestCertificateFieldsEndToEnd: the Certificate above, issued by the
// test CA, committed, and decrypted with the real sops CLI: every output
// is there and reads back with the libraries cert-manager's users read it
// with; the password is nowhere in Git in the clear.
func TestCertificateFieldsEndToEnd(t *testing.T) {
	b := newBed(t, nil)
	pw := keystorePassword(t)
	b.edit(t, "store: a keystore", func(dir string) {
		writePasswordSecret(t, dir, "store-keystore", pw)
		writeFile(t, filepath.Join(dir, "certificates", "shop", "store.yaml"), storeCert)
	})

	out, errOut := b.reconcileOrdering(t, len(exampleCerts)+1)

	path := committed.SecretPath("default", "shop", "store-tls")
	s := b.sopsDecrypt(t, path)
	checkTLSSecret(t, s, wantCert{"shop", "store-tls", []string{"store.shop.test"}, "ECDSA-256"}, b.acme)
	key, err := pki.ParseKey(s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		t.Fatal(err)
	}
	chain, err := pki.ParseChain(s.Data[corev1.TLSCertKey])
	if err != nil {
		t.Fatal(err)
	}
	leaf := chain[0]
	if len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("IP SANs %v, want [127.0.0.1]", leaf.IPAddresses)
	}
	for k, want := range map[string]string{
		"cert-manager.io/ip-sans":   "127.0.0.1",
		"cert-manager.io/alt-names": "store.shop.test",
		"cert-manager.io/uri-sans":  "",
	} {
		if got, ok := s.Annotations[k]; !ok || got != want {
			t.Errorf("annotation %s = %q (present %v), want %q", k, got, ok, want)
		}
	}
	if s.Annotations[committed.AnnotationOutputsHash] == "" {
		t.Error("no outputs hash recorded")
	}

	// CombinedPEM: tls.key, a newline, tls.crt.
	if want := string(s.Data[corev1.TLSPrivateKeyKey]) + "\n" + string(s.Data[corev1.TLSCertKey]); string(s.Data[render.KeyCombinedPEM]) != want {
		t.Error("tls-combined.pem is not tls.key followed by tls.crt")
	}
	// DER: the key of tls.key (SEC 1, the PKCS1 default for ECDSA).
	der, err := x509.ParseECPrivateKey(s.Data[render.KeyDER])
	if err != nil || !der.PublicKey.Equal(key.Public()) {
		t.Errorf("key.der is not tls.key's key: %v", err)
	}
	if blk, _ := pem.Decode(s.Data[corev1.TLSPrivateKeyKey]); blk == nil || !bytes.Equal(blk.Bytes, s.Data[render.KeyDER]) {
		t.Error("key.der is not the DER of tls.key")
	}
	// PKCS#12: the key, the leaf, the rest of the chain; no truststore
	// (an ACME CA gives no ca.crt).
	p12Key, p12Leaf, cas, err := pkcs12.DecodeChain(s.Data[render.KeyPKCS12], pw)
	if err != nil {
		t.Fatalf("keystore.p12 does not open with the Secret's password: %v", err)
	}
	signer, isSigner := p12Key.(crypto.Signer)
	if !p12Leaf.Equal(leaf) || !isSigner || !pki.KeyMatches(leaf, signer) || len(cas) != len(chain)-1 || (len(cas) > 0 && !cas[0].Equal(chain[1])) {
		t.Errorf("keystore.p12: leaf %v, key %v, %d CA certificates for a chain of %d", p12Leaf.Equal(leaf), isSigner, len(cas), len(chain))
	}
	if _, _, _, err := pkcs12.DecodeChain(s.Data[render.KeyPKCS12], "changeit"); err == nil {
		t.Error("keystore.p12 opens with another password")
	}
	for _, k := range []string{render.KeyPKCS12Truststore, render.KeyJKS, "ca.crt"} {
		if _, ok := s.Data[k]; ok {
			t.Errorf("%s written for an ACME certificate without a JKS keystore", k)
		}
	}

	// Neither the password nor a key is in Git in the clear.
	if ids := testbed.GitObjectsContaining(t, b.bare, pw); len(ids) > 0 {
		t.Errorf("the keystore password is in plaintext in Git objects %v", ids)
	}
	if ids := testbed.GitObjectsContaining(t, b.bare, "PRIVATE KEY"); len(ids) > 0 {
		t.Errorf("plaintext private key in Git objects %v", ids)
	}
	if strings.Contains(out+errOut, pw) {
		t.Error("the output shows the keystore password")
	}

	// Nothing changed: nothing ordered, nothing committed.
	head := b.head(t)
	orders := b.acme.Orders()
	if code, out, errOut := b.run(t); code != 0 || b.acme.Orders() != orders || b.head(t) != head {
		t.Fatalf("second run: exit %d, orders +%d, head moved %v\n%s\n%s", code, b.acme.Orders()-orders, b.head(t) != head, out, errOut)
	}
}
