package main

// certsync run: two replicas with leader election against one API server,
// a push webhook, metrics, and a SIGTERM that hands over to the other
// replica.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/internal/testbed"
)

type replica struct {
	id     string
	addr   string
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned
	code   int           // run's exit status, once done
}

// startReplica starts `certsync run` with leader election.
func startReplica(t *testing.T, b *bed, id string, stderr io.Writer) *replica {
	t.Helper()
	return startAgent(t, b, id, stderr, "--leader-elect", "--leader-elect-id", id, "--leader-elect-namespace", "certsync")
}

// startAgent starts `certsync run` in-process; cancel is its SIGTERM.
func startAgent(t *testing.T, b *bed, id string, stderr io.Writer, extra ...string) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{id: id, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), cancel: cancel, done: make(chan struct{})}
	args := append([]string{"run"}, b.args...)
	args = append(args, "--listen-addr", r.addr, "--interval", "1h", "--shutdown-grace", "20s",
		"--cache-dir", filepath.Join(b.dir, "clone-"+id))
	args = append(args, extra...)
	go func() {
		defer close(r.done)
		r.code = run(ctx, args, func(k string) string { return b.env[k] }, io.Discard, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
		}
	})
	return r
}

// pushHook sends a signed GitHub push event for main to an agent.
func pushHook(t *testing.T, addr, secret string) {
	t.Helper()
	body := []byte(`{"ref":"refs/heads/main"}`)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/git", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("webhook: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %s", resp.Status)
	}
}

func eventually(t *testing.T, what string, logs fmt.Stringer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s\nlogs:\n%s", what, logs)
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAgentLeaderElectionWebhookMetrics(t *testing.T) {
	b := newBed(t, nil)
	b.env["CERTSYNC_WEBHOOK_SECRET"] = "hook-secret"
	api := testbed.StartAPIServer(t)
	for _, ns := range []string{"shop", "api", "certsync"} {
		api.CreateNamespace(t, ns)
	}
	b.args = append(b.args, "--kubeconfig", api.Kubeconfig)
	kc := kube(t, api)
	ctx := context.Background()
	logs := &testbed.Output{}
	seed := b.head(t)

	replicas := map[string]*replica{}
	for _, id := range []string{"replica-a", "replica-b"} {
		replicas[id] = startReplica(t, b, id, logs)
	}
	holder := func() string {
		l, err := kc.CoordinationV1().Leases("certsync").Get(ctx, "certsync", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	eventually(t, "the three Secrets in the cluster", logs, func() bool {
		list, err := kc.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: committed.ManagedByLabel + "=" + committed.ManagedByValue})
		return err == nil && len(list.Items) == 3
	})
	leader := replicas[holder()]
	if leader == nil {
		t.Fatalf("no replica holds the Lease (holder %q)", holder())
	}
	// Exactly one replica ordered and committed.
	if n := b.acme.Orders(); n != 3 {
		t.Errorf("ACME orders = %d, want 3: both replicas ordered", n)
	}
	// A second writer would have committed the account key or the
	// certificates again (the pass may push in several batches).
	written := map[string]int{}
	for _, p := range strings.Fields(gitCmd(t, b.bare, "log", "--format=", "--name-only", seed+"..main")) {
		written[p]++
	}
	for p, n := range written {
		// An order claim is written, then removed with the results.
		if n != 1 && !strings.HasPrefix(p, committed.ClaimsDir) {
			t.Errorf("%s written by %d commits, want 1", p, n)
		}
	}
	if len(written) == 0 {
		t.Error("nothing committed")
	}

	eventually(t, "/readyz on the leader", logs, func() bool { c, _ := get("http://" + leader.addr + "/readyz"); return c == 200 })
	if c, _ := get("http://" + leader.addr + "/healthz"); c != 200 {
		t.Errorf("/healthz = %d", c)
	}
	_, metrics := get("http://" + leader.addr + "/metrics")
	for _, want := range []string{
		`certmanager_certificate_expiration_timestamp_seconds{issuer_group="cert-manager.io",issuer_kind="ClusterIssuer",issuer_name="letsencrypt-staging",name="checkout",namespace="shop"}`,
		`certmanager_certificate_ready_status{condition="True",issuer_group="cert-manager.io",issuer_kind="ClusterIssuer",issuer_name="letsencrypt-staging",name="api",namespace="api"} 1`,
		`certmanager_certificate_renewal_timestamp_seconds{`,
		`certsync_acme_orders_total{result="issued"} 3`,
		`certsync_passes_total{result="ok"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// SIGTERM to the leader: it stops cleanly and the other takes over.
	leader.cancel()
	select {
	case <-leader.done:
		if leader.code != 0 {
			t.Errorf("leader exited %d on SIGTERM", leader.code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("leader did not stop within the grace period")
	}
	var next *replica
	for id, r := range replicas {
		if id != leader.id {
			next = r
		}
	}
	eventually(t, "the other replica to take the Lease", logs, func() bool { return holder() == next.id })
	eventually(t, "/readyz on the new leader", logs, func() bool { c, _ := get("http://" + next.addr + "/readyz"); return c == 200 })

	// A push webhook makes the new leader issue a new Certificate at once
	// (the interval is an hour).
	b.edit(t, "declare www", func(dir string) {
		writeFile(t, filepath.Join(dir, "certificates/shop/www.yaml"), `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: www, namespace: shop}
spec:
  secretName: www-tls
  dnsNames: [www.shop.test]
  issuerRef: {name: letsencrypt-staging, kind: ClusterIssuer}
`)
	})
	pushHook(t, next.addr, "hook-secret")
	eventually(t, "www-tls after the webhook", logs, func() bool {
		_, err := kc.CoreV1().Secrets("shop").Get(ctx, "www-tls", metav1.GetOptions{})
		return err == nil
	})
	if ids := testbed.GitObjectsContaining(t, b.bare, "PRIVATE KEY"); len(ids) > 0 {
		t.Fatalf("plaintext private key in Git objects %v", ids)
	}
}

// metricLine is the sample of /metrics that starts with prefix, "" if none.
func metricLine(metrics, prefix string) string {
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// issuedBed is a bed whose certificates were issued and committed by one
// `certsync reconcile` (no cluster), HTTP-01 only: the agent tests below
// are about the agent, not about ordering, and the example's DNS-01
// certificate is the slow one.
func issuedBed(t *testing.T) *bed {
	t.Helper()
	b := newBed(t, nil)
	b.edit(t, "HTTP-01 only", func(dir string) {
		if err := os.Remove(filepath.Join(dir, "certificates/shop/wildcard.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	if code, stdout, stderr := b.run(t, "--no-apply"); code != 0 {
		t.Fatalf("seeding pass exited %d\n%s\n%s", code, stdout, stderr)
	}
	return b
}

// TestAgentKeepsGaugesWhenGitIsDown: a pass that cannot reach Git is
// counted as failed and leaves the certificate gauges as they were, so
// expiry alerts keep working through the outage.
func TestAgentKeepsGaugesWhenGitIsDown(t *testing.T) {
	b := issuedBed(t)
	b.env["CERTSYNC_WEBHOOK_SECRET"] = "hook-secret"
	logs := &testbed.Output{}
	r := startAgent(t, b, "solo", logs, "--no-apply")
	scrape := func() string { _, m := get("http://" + r.addr + "/metrics"); return m }

	eventually(t, "the first pass", logs, func() bool { c, _ := get("http://" + r.addr + "/readyz"); return c == 200 })
	gauges := []string{
		`certmanager_certificate_expiration_timestamp_seconds{issuer_group="cert-manager.io",issuer_kind="ClusterIssuer",issuer_name="letsencrypt-staging",name="checkout",namespace="shop"}`,
		`certmanager_certificate_ready_status{condition="True",issuer_group="cert-manager.io",issuer_kind="ClusterIssuer",issuer_name="letsencrypt-staging",name="api",namespace="api"}`,
		`certmanager_certificate_renewal_timestamp_seconds{issuer_group="cert-manager.io",issuer_kind="ClusterIssuer",issuer_name="letsencrypt-staging",name="checkout",namespace="shop"}`,
	}
	before := scrape()
	var want []string
	for _, g := range gauges {
		l := metricLine(before, g)
		if l == "" {
			t.Fatalf("/metrics lacks %s after the first pass:\n%s", g, before)
		}
		want = append(want, l)
	}

	b.git.SetDown(true)
	t.Cleanup(func() { b.git.SetDown(false) })
	pushHook(t, r.addr, "hook-secret")
	eventually(t, "a failed pass", logs, func() bool { return metricLine(scrape(), `certsync_passes_total{result="error"}`) != "" })
	during := scrape()
	for _, w := range want {
		if !strings.Contains(during, w+"\n") {
			t.Errorf("after the failed pass /metrics lacks %s", w)
		}
	}
	if metricLine(during, "certsync_last_successful_pass_timestamp_seconds ") == "" {
		t.Error("/metrics lacks certsync_last_successful_pass_timestamp_seconds")
	}

	// Back: the retry after the backoff (5 s) succeeds.
	b.git.SetDown(false)
	eventually(t, "a good pass after the outage", logs, func() bool {
		return metricLine(scrape(), `certsync_passes_total{result="ok"} 2`) != ""
	})
}
