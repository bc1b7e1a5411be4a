package main

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/internal/testbed"
)

// TestRestoreFromGitAlone: a cluster is lost and rebuilt empty. restore
// puts every Secret back from Git, byte-equal, without a single request
// to the CA; run again it changes nothing; the agent then finds nothing
// to order.
func TestRestoreFromGitAlone(t *testing.T) {
	b := issuedBed(t) // the certificates are committed; no cluster yet
	orders, accounts := b.acme.Orders(), b.acme.Accounts()
	head := b.head(t)
	b.acme.SetHook(func(r *http.Request) { t.Errorf("the CA was asked %s %s during the restore", r.Method, r.URL.Path) })
	defer b.acme.SetHook(nil)

	empty := testbed.StartAPIServer(t)
	kc := kube(t, empty)
	b.args = append(b.args, "--kubeconfig", empty.Kubeconfig)
	restoreCmd := func(extra ...string) (int, string, string) {
		var out, errb bytes.Buffer
		args := commandArgs("restore", append(slices.Clone(b.args), extra...)...)
		code := run(context.Background(), args, func(k string) string { return b.env[k] }, &out, &errb)
		return code, out.String(), errb.String()
	}

	// A misspelt --cluster is an error, not an empty success.
	if code, out, errOut := restoreCmd("--cluster", "prod"); code != 1 || !strings.Contains(errOut, `nothing is committed for cluster "prod" (the repository has default): check --cluster`) {
		t.Fatalf("restore of an unknown cluster: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut := restoreCmd()
	if code != 1 || !strings.Contains(errOut, "namespace shop does not exist") || !strings.Contains(errOut, "--create-namespace") {
		t.Fatalf("missing namespaces must be reported, not created: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = restoreCmd("--create-namespace")
	if code != 0 || !strings.Contains(out, "2 applied, 0 unchanged, 0 failed") || !strings.Contains(out, "no certificate was ordered") {
		t.Fatalf("restore: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []struct{ ns, name string }{{"shop", "checkout-tls"}, {"api", "api-tls"}} {
		git := b.sopsDecrypt(t, committed.SecretPath("default", want.ns, want.name))
		live, err := kc.CoreV1().Secrets(want.ns).Get(context.Background(), want.name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s/%s not restored: %v", want.ns, want.name, err)
		}
		if !equalData(live.Data, git.Data) || live.Type != git.Type {
			t.Errorf("%s/%s differs from Git", want.ns, want.name)
		}
		if live.Labels[committed.ManagedByLabel] != committed.ManagedByValue {
			t.Errorf("%s/%s lacks certsync's ownership label", want.ns, want.name)
		}
	}
	code, out, _ = restoreCmd("--create-namespace")
	if code != 0 || !strings.Contains(out, "0 applied, 2 unchanged") {
		t.Fatalf("a second restore must change nothing: exit %d\n%s", code, out)
	}
	b.acme.SetHook(nil)

	// The agent on the restored cluster: nothing to order, nothing to commit.
	code, out, errOut = b.run(t)
	if code != 0 || b.acme.Orders() != orders || b.head(t) != head {
		t.Fatalf("after the restore the agent ordered %d, moved Git %v: exit %d\n%s\n%s", b.acme.Orders()-orders, b.head(t) != head, code, out, errOut)
	}
	if b.acme.Accounts() != accounts {
		t.Errorf("%d new ACME accounts", b.acme.Accounts()-accounts)
	}
	if slices.Contains(strings.Fields(out), "applied") {
		t.Errorf("the agent re-applied restored Secrets:\n%s", out)
	}
}
