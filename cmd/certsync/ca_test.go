package main

// A private CA, end to end: cert-manager's documented bootstrap (a
// selfSigned ClusterIssuer signs an isCA Certificate whose Secret backs a
// ca ClusterIssuer that signs the rest), committed, applied to an API
// server and read back with the sops CLI — without one ACME order.

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/internal/testbed"
	"github.com/certsync/certsync/pki"
)

const privateCA = `apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: selfsigned
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: root-ca
  namespace: cert-manager
spec:
  isCA: true
  commonName: Shop Root CA
  secretName: root-ca
  duration: 87600h
  privateKey: {algorithm: ECDSA, size: 256}
  issuerRef: {name: selfsigned, kind: ClusterIssuer}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: root-ca
spec:
  ca:
    secretName: root-ca
`

const privateLeaf = `apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: internal
  namespace: shop
spec:
  secretName: internal-tls
  commonName: internal
  dnsNames: [internal.shop.svc, internal.shop.svc.cluster.local]
  issuerRef: {name: root-ca, kind: ClusterIssuer}
`

func TestPrivateCABootstrap(t *testing.T) {
	b := newBed(t, nil)
	// Only the private CA: the example's ACME Certificates are removed, so
	// any ACME order would be this test's.
	b.edit(t, "a private CA instead of ACME", func(dir string) {
		if err := os.RemoveAll(filepath.Join(dir, "certificates")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "pki", "root-ca.yaml"), privateCA)
		writeFile(t, filepath.Join(dir, "apps", "shop", "internal.yaml"), privateLeaf)
	})
	api := b.withCluster(t)
	api.CreateNamespace(t, "cert-manager")
	orders := b.acme.Orders()
	rootPath := committed.SecretPath("default", "cert-manager", "root-ca")
	leafPath := committed.SecretPath("default", "shop", "internal-tls")

	// Before pass 1, status says the leaf waits for its CA (not that it
	// failed) and the root is due.
	status := b.status(t)
	for _, row := range status.Certificates {
		if want := map[bool]string{true: "Due", false: "Waiting"}[row.Namespace == "cert-manager"]; row.State != want {
			t.Errorf("status of %s/%s: %s, want %s (%s)", row.Namespace, row.Name, row.State, want, row.Reason)
		}
	}

	// Pass 1: the root; the leaf waits for its CA's Secret.
	code, out, errOut := b.run(t)
	if code != 0 {
		t.Fatalf("first pass exited %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "waiting for Secret cert-manager/root-ca, the CA of ClusterIssuer root-ca: Certificate cert-manager/root-ca issues it in this pass") {
		t.Errorf("the leaf does not say what it waits for:\n%s", out)
	}
	b.file(t, rootPath)
	if err := exec.Command(testbed.Git(t), "-C", b.bare, "cat-file", "-e", "main:"+leafPath).Run(); err == nil {
		t.Fatal("the leaf was committed in the pass that issued its CA")
	}

	// Pass 2: the leaf, signed by the committed root.
	code, out, errOut = b.run(t)
	if code != 0 || !strings.Contains(out, "committed and pushed") {
		t.Fatalf("second pass exited %d\n%s\n%s", code, out, errOut)
	}
	second := b.head(t)

	root := b.sopsDecrypt(t, rootPath)
	rootChain := parseChain(t, root.Data[corev1.TLSCertKey])
	rootCert := rootChain[0]
	if len(rootChain) != 1 || !rootCert.IsCA || rootCert.Subject.CommonName != "Shop Root CA" || rootCert.CheckSignatureFrom(rootCert) != nil {
		t.Fatalf("root: %d certificates, isCA %v, subject %q: want one self-signed CA", len(rootChain), rootCert.IsCA, rootCert.Subject)
	}
	if !bytes.Equal(root.Data["ca.crt"], root.Data[corev1.TLSCertKey]) {
		t.Error("the root's ca.crt is not the root itself")
	}
	rootKey, err := pki.ParseKey(root.Data[corev1.TLSPrivateKeyKey])
	if err != nil || !pki.KeyMatches(rootCert, rootKey) {
		t.Fatalf("the root's tls.key is not its key: %v", err)
	}

	leaf := b.sopsDecrypt(t, leafPath)
	chain := parseChain(t, leaf.Data[corev1.TLSCertKey])
	if len(chain) != 1 {
		t.Errorf("tls.crt has %d certificates; the self-signed root is left out, as cert-manager does", len(chain))
	}
	if !bytes.Equal(leaf.Data["ca.crt"], root.Data[corev1.TLSCertKey]) {
		t.Error("the leaf's ca.crt is not the root")
	}
	leafKey, err := pki.ParseKey(leaf.Data[corev1.TLSPrivateKeyKey])
	if err != nil || !pki.KeyMatches(chain[0], leafKey) {
		t.Fatalf("the leaf's tls.key is not its key: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(rootCert)
	if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: "internal.shop.svc.cluster.local", Roots: roots}); err != nil {
		t.Errorf("the leaf does not chain to the root: %v", err)
	}
	if chain[0].IsCA || !slices.Equal(chain[0].DNSNames, []string{"internal.shop.svc", "internal.shop.svc.cluster.local"}) || chain[0].Subject.CommonName != "internal" {
		t.Errorf("leaf: isCA %v, dnsNames %v, subject %q", chain[0].IsCA, chain[0].DNSNames, chain[0].Subject)
	}
	if leaf.Annotations[committed.AnnotationCMIssuerName] != "root-ca" || leaf.Annotations[committed.AnnotationCMIssuerKind] != "ClusterIssuer" {
		t.Errorf("issuer annotations %v", leaf.Annotations)
	}

	// Both are in the cluster as committed.
	for _, s := range []*corev1.Secret{root, leaf} {
		live, err := kube(t, api).CoreV1().Secrets(s.Namespace).Get(context.Background(), s.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s/%s not in the cluster: %v", s.Namespace, s.Name, err)
		}
		if live.Type != corev1.SecretTypeTLS || !equalData(live.Data, s.Data) {
			t.Errorf("%s/%s in the cluster differs from Git", s.Namespace, s.Name)
		}
	}
	if got := b.acme.Orders() - orders; got != 0 {
		t.Errorf("%d ACME orders for a private CA", got)
	}

	// Pass 3: nothing to do.
	code, out, errOut = b.run(t)
	if code != 0 || b.head(t) != second || b.acme.Orders() != orders || !strings.Contains(out, "no commit") {
		t.Fatalf("third pass changed something: code %d, new commit %v\n%s\n%s", code, b.head(t) != second, out, errOut)
	}
	if ids := testbed.GitObjectsContaining(t, b.bare, "PRIVATE KEY"); len(ids) > 0 {
		t.Fatalf("plaintext private key in Git objects %v", ids)
	}
}

func parseChain(t *testing.T, pemBytes []byte) []*x509.Certificate {
	t.Helper()
	chain, err := pki.ParseChain(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	return chain
}
