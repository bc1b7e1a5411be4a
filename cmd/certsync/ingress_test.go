package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certsync/certsync/committed"
)

// TestIngressShimEndToEnd: the Ingress of examples/ingress, copied into a
// repository as a user would, is issued through the example's
// ClusterIssuer (HTTP-01), committed and applied like a Certificate.
func TestIngressShimEndToEnd(t *testing.T) {
	ingress, err := os.ReadFile(filepath.Join("..", "..", "examples", "ingress", "blog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b := newBed(t, map[string]string{"ingress/blog.yaml": string(ingress)})
	api := b.withCluster(t)
	b.reconcileOrdering(t, len(exampleCerts)+1)
	path := committed.SecretPath("default", "shop", "blog-tls")
	s := b.sopsDecrypt(t, path)
	checkTLSSecret(t, s, wantCert{"shop", "blog-tls", []string{"blog.shop.test"}, "ECDSA-256"}, b.acme)
	if src := s.Annotations[committed.AnnotationSource]; !strings.HasPrefix(src, "ingress/blog.yaml") {
		t.Errorf("the Secret names its source %q, want the Ingress file", src)
	}
	live, err := kube(t, api).CoreV1().Secrets("shop").Get(context.Background(), "blog-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("blog-tls not applied: %v", err)
	}
	if !equalData(live.Data, s.Data) {
		t.Error("the applied Secret differs from Git")
	}
	orders := b.acme.Orders()
	if code, out, _ := b.run(t); code != 0 || b.acme.Orders() != orders || !strings.Contains(out, "Git is up to date") {
		t.Fatalf("second run: exit %d, %d orders\n%s", code, b.acme.Orders()-orders, out)
	}
}

// reconcileOrdering runs one pass that must succeed with exactly orders
// orders at the CA, and returns what it printed.
func (b *bed) reconcileOrdering(t *testing.T, orders int) (stdout, stderr string) {
	t.Helper()
	before := b.acme.Orders()
	code, out, errOut := b.run(t)
	if code != 0 {
		t.Fatalf("reconcile: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := b.acme.Orders() - before; got != orders {
		t.Errorf("orders: %d, want %d", got, orders)
	}
	return out, errOut
}
