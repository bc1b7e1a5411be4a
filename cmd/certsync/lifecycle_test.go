package main

// The lifecycle, end to end on real parts with a controlled clock: renewal
// inside Pebble's ARI window, rotation policies, a CA that rate-limits,
// recipients that change, drift, pruning with its safety limit, and a Git
// remote that goes away and comes back.

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/internal/testbed"
	"github.com/certsync/certsync/pki"
	"github.com/certsync/certsync/reconcile"
)

const pinnedCert = `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: pinned, namespace: shop}
spec:
  secretName: pinned-tls
  dnsNames: [pinned.shop.test]
  privateKey: {algorithm: ECDSA, rotationPolicy: Never}
  issuerRef: {name: letsencrypt-staging, kind: ClusterIssuer}
`

// pass runs one reconcile at the given time, in-process.
func (b *bed) pass(t *testing.T, now time.Time, extra ...string) (*reconcile.Result, error) {
	t.Helper()
	getenv := func(k string) string { return b.env[k] }
	o, code, stderr := parseAgentFlags(t, append(append([]string{}, b.args...), extra...), b.env)
	if o == nil {
		t.Fatalf("flags: exit %d: %s", code, stderr)
	}
	o.clock = func() time.Time { return now }
	return reconcileOnce(context.Background(), o, getenv, slog.New(slog.DiscardHandler))
}

func (b *bed) record(t *testing.T, ns, secret string) committed.Certificate {
	t.Helper()
	path := committed.SecretPath("default", ns, secret)
	rec, err := committed.Read(path, b.file(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// edit changes the repository as a person would: clone, edit, commit, push.
func (b *bed) edit(t *testing.T, msg string, change func(dir string)) {
	t.Helper()
	dir := t.TempDir()
	gitCmd(t, dir, "clone", "--quiet", b.bare, ".")
	change(dir)
	gitCmd(t, dir, "add", "-A")
	gitCmd(t, dir, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "--quiet", "-m", msg)
	gitCmd(t, dir, "push", "--quiet", "origin", "HEAD:main")
}

// mustPass is pass for a pass that must succeed without problems.
func (b *bed) mustPass(t *testing.T, now time.Time, extra ...string) *reconcile.Result {
	t.Helper()
	res, err := b.pass(t, now, extra...)
	if err != nil {
		t.Fatalf("pass failed: %v", err)
	}
	if len(res.Problems) > 0 {
		t.Fatalf("pass had problems: %v", res.Problems)
	}
	return res
}

func TestLifecycle(t *testing.T) {
	b := newBed(t, map[string]string{"certificates/shop/pinned.yaml": pinnedCert})
	api := testbed.StartAPIServer(t)
	for _, ns := range []string{"shop", "api"} {
		api.CreateNamespace(t, ns)
	}
	b.args = append(b.args, "--kubeconfig", api.Kubeconfig)
	kc := kube(t, api)
	ctx := context.Background()
	t0 := time.Now().UTC()
	secrets := [][2]string{{"shop", "example-com-tls"}, {"shop", "checkout-tls"}, {"shop", "pinned-tls"}, {"api", "api-tls"}}

	res := b.mustPass(t, t0)
	if len(res.Issued) != 4 {
		t.Fatalf("issued %d, want 4", len(res.Issued))
	}

	// ARI: Pebble suggests a window; nothing renews before it.
	var windowStart, windowEnd time.Time
	for _, s := range secrets {
		rec := b.record(t, s[0], s[1])
		if rec.RenewalWindowStart.IsZero() || !rec.RenewalWindowEnd.After(rec.RenewalWindowStart) {
			t.Fatalf("%s/%s: no ARI window recorded", s[0], s[1])
		}
		if windowStart.IsZero() || rec.RenewalWindowStart.Before(windowStart) {
			windowStart = rec.RenewalWindowStart
		}
		if rec.RenewalWindowEnd.After(windowEnd) {
			windowEnd = rec.RenewalWindowEnd
		}
	}
	orders := b.acme.Orders()
	if res := b.mustPass(t, windowStart.Add(-time.Hour)); res.Commit != "" || b.acme.Orders() != orders {
		t.Fatalf("renewed before the ARI window: commit %q", res.Commit)
	}

	// The steps below run close to the real time: Pebble issues real
	// certificates, so a clock moved past their ARI window would find every
	// new certificate due again. The renewal in the window comes last.
	t.Run("rate limited order backs off, others carry on", func(t *testing.T) {
		repo, err := openRepo(ctx, &options{Repo: b.args[1], Branch: "main", GitUsername: gitUser, CacheDir: filepath.Join(b.dir, "renew-clone")}, func(k string) string { return b.env[k] }, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		all, _ := reconcile.MatchSelector("", "", true, "")
		if _, _, err := reconcile.RequestRenewal(ctx, repo, all, "test", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		b.acme.Fail(1, http.StatusTooManyRequests, "urn:ietf:params:acme:error:rateLimited", time.Hour)
		res, err := b.pass(t, t0.Add(2*time.Minute))
		if err != nil || len(res.Issued) != 3 || res.Failed != 1 || !strings.Contains(res.Problems[0].Error(), "rateLimited") {
			t.Fatalf("issued %d, failed %d, problems %v, err %v", len(res.Issued), res.Failed, res.Problems, err)
		}
		o := b.acme.Orders()
		res, _ = b.pass(t, t0.Add(30*time.Minute))
		if b.acme.Orders() != o || res.Plan.Count(reconcile.Wait) != 1 {
			t.Fatalf("ordered again before Retry-After (orders +%d)", b.acme.Orders()-o)
		}
		res = b.mustPass(t, t0.Add(2*time.Hour))
		if len(res.Issued) != 1 {
			t.Fatalf("not retried after Retry-After: issued %d", len(res.Issued))
		}
		if paths := gitCmd(t, b.bare, "ls-tree", "-r", "--name-only", "main"); strings.Contains(paths, committed.RequestsDir) {
			t.Errorf("renewal requests left behind:\n%s", paths)
		}
	})

	t2 := t0.Add(3 * time.Hour)
	t.Run("recipient change re-encrypts without ordering", func(t *testing.T) {
		newID, _ := age.GenerateX25519Identity()
		keyFile := filepath.Join(b.dir, "new.key")
		writeFile(t, keyFile, newID.String()+"\n")
		old, _ := os.ReadFile(b.keyFile)
		oldID, err := age.ParseX25519Identity(strings.TrimSpace(strings.Split(string(old), "\n")[1]))
		if err != nil {
			t.Fatal(err)
		}
		b.edit(t, "add a recipient", func(dir string) {
			writeFile(t, filepath.Join(dir, ".sops.yaml"), "creation_rules:\n  - path_regex: ^(secrets|accounts)/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: "+oldID.Recipient().String()+","+newID.Recipient().String()+"\n")
		})
		o := b.acme.Orders()
		res := b.mustPass(t, t2)
		// Four Secrets and the ACME account key.
		if res.Commit == "" || b.acme.Orders() != o || res.Plan.Count(reconcile.Reencrypt) != 5 {
			t.Fatalf("commit %q, orders +%d, re-encrypts %d", res.Commit, b.acme.Orders()-o, res.Plan.Count(reconcile.Reencrypt))
		}
		saved := b.keyFile
		b.keyFile = keyFile
		b.sopsDecrypt(t, committed.SecretPath("default", "api", "api-tls"))
		b.sopsDecrypt(t, committed.AccountPath("", "letsencrypt-staging-account"))
		b.keyFile = saved
		if res := b.mustPass(t, t2); res.Commit != "" {
			t.Fatal("re-encrypted again although nothing changed")
		}
	})

	t.Run("drift is repaired from Git", func(t *testing.T) {
		// Each pass is a new process: it starts from what the last one saw
		// of the cluster, so it lists metadata only and finds this edit
		// by its new resourceVersion.
		if seen, err := os.ReadFile(filepath.Join(b.dir, "clone", clusterSeenFile)); err != nil || !strings.Contains(string(seen), `"api/api-tls"`) {
			t.Fatalf("what the last pass saw of the cluster was not kept: %v %s", err, seen)
		}
		s, _ := kc.CoreV1().Secrets("api").Get(ctx, "api-tls", metav1.GetOptions{})
		s.Data[corev1.TLSCertKey] = []byte("tampered")
		if _, err := kc.CoreV1().Secrets("api").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		res := b.mustPass(t, t2)
		if res.Commit != "" || strings.Join(res.Applied, ",") != "api/api-tls" {
			t.Fatalf("applied %v, commit %q", res.Applied, res.Commit)
		}
		s, _ = kc.CoreV1().Secrets("api").Get(ctx, "api-tls", metav1.GetOptions{})
		if _, err := pki.ParseChain(s.Data[corev1.TLSCertKey]); err != nil {
			t.Fatal("drift not repaired")
		}
	})

	t.Run("push fails: the commit is kept and pushed later, nothing ordered twice", func(t *testing.T) {
		b.edit(t, "ask for a renewal", func(dir string) {
			content, _ := committed.MarshalRenewRequest(committed.RenewRequest{Certificate: "shop/checkout", RequestedAt: t2.Add(time.Minute), RequestedBy: "dev"})
			writeFile(t, filepath.Join(dir, committed.RenewRequestPath("shop", "checkout")), string(content))
		})
		// The order claim is pushed, then Git goes away.
		b.git.FailPushesAfter(1)
		o := b.acme.Orders()
		if _, err := b.pass(t, t2.Add(2*time.Minute)); err == nil || !strings.Contains(err.Error(), "kept locally") {
			t.Fatalf("a pass whose push fails must say the commit is kept: %v", err)
		}
		if b.acme.Orders() != o+1 {
			t.Fatalf("orders while pushes failed: +%d, want 1", b.acme.Orders()-o)
		}
		b.git.SetPushDown(false)
		b.mustPass(t, t2.Add(3*time.Minute))
		if b.acme.Orders() != o+1 {
			t.Fatalf("ordered again after the remote came back (orders +%d)", b.acme.Orders()-o-1)
		}
		if rec := b.record(t, "shop", "checkout-tls"); !strings.Contains(rec.Reason, "renewal requested") {
			t.Fatalf("the renewal made while pushes failed is not on the remote: %q", rec.Reason)
		}
	})

	t.Run("prune refuses a mass removal unless forced", func(t *testing.T) {
		foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hand-made", Namespace: "shop"}, Type: corev1.SecretTypeOpaque}
		if _, err := kc.CoreV1().Secrets("shop").Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		b.edit(t, "drop two certificates", func(dir string) {
			os.Remove(filepath.Join(dir, "certificates/api/api.yaml"))
			os.Remove(filepath.Join(dir, "certificates/shop/wildcard.yaml"))
		})
		res := b.mustPass(t, t2.Add(time.Hour))
		if res.Commit != "" || len(res.Plan.Warnings) != 1 || !strings.Contains(res.Plan.Warnings[0], "--force-prune") {
			t.Fatalf("mass prune not refused: commit %q warnings %v", res.Commit, res.Plan.Warnings)
		}
		res = b.mustPass(t, t2.Add(time.Hour), "--force-prune")
		if res.Commit == "" || len(res.Pruned) != 4 {
			t.Fatalf("pruned %v", res.Pruned)
		}
		if _, err := kc.CoreV1().Secrets("api").Get(ctx, "api-tls", metav1.GetOptions{}); err == nil {
			t.Error("pruned Secret still in the cluster")
		}
		if _, err := kc.CoreV1().Secrets("shop").Get(ctx, "hand-made", metav1.GetOptions{}); err != nil {
			t.Error("a Secret certsync did not create was deleted")
		}
	})

	t.Run("renewal inside the ARI window, keys rotated per policy", func(t *testing.T) {
		keyOf := func(secret string) string {
			return string(b.sopsDecrypt(t, committed.SecretPath("default", "shop", secret)).Data[corev1.TLSPrivateKeyKey])
		}
		pinnedKey, checkoutKey := keyOf("pinned-tls"), keyOf("checkout-tls")
		o, replaced := b.acme.Orders(), len(b.acme.Replaces())
		res := b.mustPass(t, windowEnd.Add(time.Minute))
		if len(res.Issued) != 2 || b.acme.Orders() != o+2 {
			t.Fatalf("renewed %d (orders +%d), want 2", len(res.Issued), b.acme.Orders()-o)
		}
		// ARI: each renewal order names the certificate it replaces, so the
		// CA exempts it from rate limits.
		if got := len(b.acme.Replaces()) - replaced; got != 2 {
			t.Errorf("renewal orders carrying replaces: %d, want 2", got)
		}
		if msg := gitCmd(t, b.bare, "log", "-1", "--format=%B", "main"); !strings.Contains(msg, "Reason: renewal time") {
			t.Errorf("renewal commit lacks its reason:\n%s", msg)
		}
		if keyOf("pinned-tls") != pinnedKey {
			t.Error("rotationPolicy Never: the private key changed on renewal")
		}
		if keyOf("checkout-tls") == checkoutKey {
			t.Error("rotationPolicy Always: the private key was reused")
		}
		live, _ := kc.CoreV1().Secrets("shop").Get(ctx, "checkout-tls", metav1.GetOptions{})
		if live.Annotations[committed.AnnotationSerial] != b.record(t, "shop", "checkout-tls").Serial {
			t.Error("the cluster did not get the renewed certificate")
		}
	})

	if ids := testbed.GitObjectsContaining(t, b.bare, "PRIVATE KEY"); len(ids) > 0 {
		t.Fatalf("plaintext private key in Git objects %v", ids)
	}
}

// TestRenewalWindowMovedByTheCA: a CA that must revoke a certificate early
// moves its ARI renewal window forward. The agent asks again once the
// CA's Retry-After has passed (not before), and renews that certificate
// alone, naming it as the one replaced.
func TestRenewalWindowMovedByTheCA(t *testing.T) {
	b := newBed(t, nil)
	b.edit(t, "HTTP-01 only", func(dir string) {
		if err := os.Remove(filepath.Join(dir, "certificates/shop/wildcard.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	now := time.Now()
	b.mustPass(t, now)
	checkout, api := b.record(t, "shop", "checkout-tls"), b.record(t, "api", "api-tls")
	if checkout.RenewalWindowStart.IsZero() {
		t.Fatal("no renewal window committed at issuance")
	}
	if err := b.acme.SetRenewalWindow(checkout.Serial, now.Add(-2*time.Hour), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	orders, replaced := b.acme.Orders(), len(b.acme.Replaces())

	// Pebble's Retry-After is 6 hours: an hour later nobody asks.
	if res := b.mustPass(t, now.Add(time.Hour)); len(res.Issued) != 0 || b.acme.Orders() != orders {
		t.Fatalf("renewed before the CA's Retry-After: %+v", res.Issued)
	}
	res := b.mustPass(t, now.Add(6*time.Hour+time.Minute))
	if len(res.Issued) != 1 || res.Issued[0].Certificate != "shop/checkout" || !strings.Contains(res.Issued[0].Reason, "moved the renewal window") {
		t.Fatalf("want shop/checkout renewed for its moved window, got %+v", res.Issued)
	}
	if b.acme.Orders() != orders+1 || len(b.acme.Replaces()) != replaced+1 {
		t.Fatalf("orders +%d, replaces +%d; want one ARI replacement", b.acme.Orders()-orders, len(b.acme.Replaces())-replaced)
	}
	if b.record(t, "api", "api-tls").Serial != api.Serial {
		t.Error("api-tls renewed although its window did not move")
	}
	// The new certificate has its own window: the next pass is quiet.
	if res := b.mustPass(t, now.Add(6*time.Hour+2*time.Minute)); len(res.Issued) != 0 {
		t.Fatalf("renewed again: %+v", res.Issued)
	}
}
