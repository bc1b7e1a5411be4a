package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/internal/testbed"
	"github.com/certsync/certsync/pki"
	"github.com/certsync/certsync/render"
)

// checkoutExtras is what the test adds to the example's checkout
// Certificate: a label and an annotation for its Secret, and a PKCS#12
// keystore whose password is a SOPS-encrypted Secret of the repository.
const checkoutExtras = `  secretTemplate:
    labels: {team: checkout}
    annotations: {example.com/owner: payments}
  keystores:
    pkcs12:
      create: true
      profile: Modern2023
      passwordSecretRef: {name: checkout-keystore, key: password}
`

// TestRerenderEndToEnd: a keystore and a secretTemplate label added to an
// issued Certificate are rendered into its committed Secret and the
// cluster's without an order at Pebble: the same serial and key, the new
// keys and label, read back with the real sops CLI. certsync plan shows
// it beforehand; the next pass does nothing; a label removed from the
// template leaves the Secret, in Git and in the cluster, as cert-manager
// removes it.
func TestRerenderEndToEnd(t *testing.T) {
	b := newBed(t, nil)
	api := b.withCluster(t)
	b.reconcileOrdering(t, len(exampleCerts))
	path := committed.SecretPath("default", "shop", "checkout-tls")
	before := b.sopsDecrypt(t, path)
	checkout := "certificates/shop/checkout.yaml"
	declaration := string(b.file(t, checkout))

	pw := keystorePassword(t)
	b.edit(t, "checkout: a PKCS#12 keystore and a team label", func(dir string) {
		writePasswordSecret(t, dir, "checkout-keystore", pw)
		writeFile(t, filepath.Join(dir, checkout), declaration+checkoutExtras)
	})

	// A pull-request review, offline and without a key, shows the re-render.
	review := filepath.Join(t.TempDir(), "review")
	gitCmd(t, b.dir, "clone", "--quiet", b.bare, review)
	var planOut, planErr bytes.Buffer
	if code := run(context.Background(), []string{"plan", review, "-o", "json"}, func(string) string { return "" }, &planOut, &planErr); code != 0 {
		t.Fatalf("plan exited %d: %s", code, planErr.String())
	}
	var plan struct{ Actions []planAction }
	if err := json.Unmarshal(planOut.Bytes(), &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan.Actions) != 1 || plan.Actions[0].Kind != "Rerender" || plan.Actions[0].Certificate != "shop/checkout" ||
		!strings.Contains(plan.Actions[0].Reason, "keystores changed: pkcs12 added") || !strings.Contains(plan.Actions[0].Reason, "secretTemplate labels and annotations changed") {
		t.Fatalf("certsync plan: %+v", plan.Actions)
	}

	head := b.head(t)
	out, _ := b.reconcileOrdering(t, 0)
	if b.head(t) == head || !strings.Contains(out, "Rerender") {
		t.Fatalf("no re-render committed:\n%s", out)
	}
	after := b.sopsDecrypt(t, path)
	checkRerendered(t, b, path, before, after)
	if after.Labels["team"] != "checkout" || after.Annotations["example.com/owner"] != "payments" {
		t.Errorf("template not rendered: labels %v, owner %q", after.Labels, after.Annotations["example.com/owner"])
	}
	if _, leaf, _, err := pkcs12.DecodeChain(after.Data[render.KeyPKCS12], pw); err != nil || pki.Serial(leaf) != before.Annotations[committed.AnnotationSerial] {
		t.Errorf("keystore.p12 does not open with the Secret's password, or holds another certificate: %v", err)
	}
	msg := gitCmd(t, b.bare, "log", "-1", "--format=%B", "main")
	for _, want := range []string{"certsync: re-render 1 certificate", "Certificate: shop/checkout", "Serial: " + before.Annotations[committed.AnnotationSerial], "Reason: re-rendered: keystores changed: pkcs12 added"} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit message lacks %q:\n%s", want, msg)
		}
	}
	checkLive(t, api, after)
	if ids := testbed.GitObjectsContaining(t, b.bare, pw); len(ids) > 0 {
		t.Errorf("the keystore password is in plaintext in Git objects %v", ids)
	}

	// Nothing changed since: no order, no commit.
	head, orders := b.head(t), b.acme.Orders()
	if code, out, errOut := b.run(t); code != 0 || b.head(t) != head || b.acme.Orders() != orders {
		t.Fatalf("third run: exit %d, head moved %v, orders +%d\n%s\n%s", code, b.head(t) != head, b.acme.Orders()-orders, out, errOut)
	}

	// The label taken out of the template goes from Git and the cluster.
	b.edit(t, "checkout: no team label", func(dir string) {
		writeFile(t, filepath.Join(dir, checkout), declaration+strings.Replace(checkoutExtras, "labels: {team: checkout}", "labels: {}", 1))
	})
	b.reconcileOrdering(t, 0)
	last := b.sopsDecrypt(t, path)
	checkRerendered(t, b, path, before, last)
	if _, ok := last.Labels["team"]; ok || len(last.Data[render.KeyPKCS12]) == 0 || last.Annotations["example.com/owner"] != "payments" {
		t.Errorf("after removing the label: labels %v, keystore.p12 %d bytes, owner %q", last.Labels, len(last.Data[render.KeyPKCS12]), last.Annotations["example.com/owner"])
	}
	checkLive(t, api, last)
}

// checkRerendered checks that after holds the certificate and key of
// before, and that the committed file's plaintext metadata matches it.
func checkRerendered(t *testing.T, b *bed, path string, before, after *corev1.Secret) {
	t.Helper()
	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		if !bytes.Equal(before.Data[k], after.Data[k]) {
			t.Errorf("%s changed: a re-render keeps the certificate and its key", k)
		}
	}
	for _, k := range []string{committed.AnnotationSerial, committed.AnnotationNotBefore, committed.AnnotationNotAfter, committed.AnnotationIssuedAt} {
		if before.Annotations[k] != after.Annotations[k] {
			t.Errorf("annotation %s: %q, was %q", k, after.Annotations[k], before.Annotations[k])
		}
	}
	rec, err := committed.Read(path, b.file(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if err := render.Verify(after, rec); err != nil {
		t.Errorf("the re-rendered Secret does not verify: %v", err)
	}
}

// checkLive checks that the cluster's Secret is the committed one: the
// same data, and Git's labels and annotations and no template label Git
// no longer has.
func checkLive(t *testing.T, api *testbed.APIServer, want *corev1.Secret) {
	t.Helper()
	live, err := kube(t, api).CoreV1().Secrets(want.Namespace).Get(context.Background(), want.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Secret not in the cluster: %v", err)
	}
	if live.Type != want.Type || !equalData(live.Data, want.Data) {
		t.Errorf("cluster Secret data differs from Git's")
	}
	for k, v := range want.Annotations {
		if live.Annotations[k] != v {
			t.Errorf("cluster annotation %s = %q, Git has %q", k, live.Annotations[k], v)
		}
	}
	for k, v := range want.Labels {
		if live.Labels[k] != v {
			t.Errorf("cluster label %s = %q, Git has %q", k, live.Labels[k], v)
		}
	}
	if _, ok := want.Labels["team"]; !ok && live.Labels["team"] != "" {
		t.Errorf("cluster Secret kept the label team=%s removed from the template", live.Labels["team"])
	}
}
