package main

// How a pass ends: at once when the Lease is lost, after --shutdown-grace
// on SIGTERM, the Lease held and renewed meanwhile and released afterwards.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/spf13/cobra"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/internal/testbed"
)

func TestAgentPassContext(t *testing.T) {
	const grace = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		// steps run in order: "lose" ends leading, "sigterm" ends
		// shutdown, "finish" is the pass returning.
		steps []string
		// atOnce: the pass context has ended when the last step returns;
		// afterGrace: it is alive then and ends about grace later.
		atOnce, afterGrace bool
		cause              error
	}{
		{name: "lease lost: stopped at once", steps: []string{"lose"}, atOnce: true, cause: context.Canceled},
		{name: "SIGTERM: runs on for the grace", steps: []string{"sigterm"}, afterGrace: true, cause: errGraceOver},
		{name: "SIGTERM, then lease lost: stopped at once", steps: []string{"sigterm", "lose"}, atOnce: true, cause: context.Canceled},
		{name: "finished before the grace", steps: []string{"sigterm", "finish"}, atOnce: true, cause: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leading, lose := context.WithCancel(context.Background())
			shutdown, sigterm := context.WithCancel(context.Background())
			defer lose()
			defer sigterm()
			ctx, done := passContext(leading, shutdown, grace)
			defer done()
			for _, s := range tc.steps {
				switch s {
				case "lose":
					lose()
				case "sigterm":
					sigterm()
				case "finish":
					done()
				}
			}
			switch {
			case tc.atOnce:
				if ctx.Err() == nil {
					t.Fatal("pass context alive, want it ended at once")
				}
			case tc.afterGrace:
				time.Sleep(grace / 3)
				if ctx.Err() != nil {
					t.Fatalf("pass context ended before the grace: %v", context.Cause(ctx))
				}
				select {
				case <-ctx.Done():
				case <-time.After(grace + 10*time.Second):
					t.Fatal("pass context alive long after the grace")
				}
			}
			if cause := context.Cause(ctx); !errors.Is(cause, tc.cause) {
				t.Errorf("cause %v, want %v", cause, tc.cause)
			}
		})
	}
}

func TestAgentShutdownGraceFromEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      string
		args     []string
		want     time.Duration
		wantCode int // of certsync run, when the value is refused
	}{
		{name: "default", want: 30 * time.Second},
		{name: "environment", env: "45s", want: 45 * time.Second},
		{name: "flag over environment", env: "45s", args: []string{"--shutdown-grace", "5s"}, want: 5 * time.Second},
		{name: "environment typo", env: "45", wantCode: 2},
		{name: "negative", args: []string{"--shutdown-grace", "-1s"}, wantCode: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"CERTSYNC_SHUTDOWN_GRACE": tc.env}
			getenv := func(k string) string { return env[k] }
			if tc.wantCode != 0 {
				var stderr strings.Builder
				if code := run(context.Background(), append([]string{"run"}, tc.args...), getenv, io.Discard, &stderr); code != tc.wantCode {
					t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantCode, stderr.String())
				}
				if !strings.Contains(stderr.String(), "grace") && !strings.Contains(stderr.String(), "SHUTDOWN_GRACE") {
					t.Errorf("stderr does not name the setting: %s", stderr.String())
				}
				return
			}
			d := defaultDaemonOptions(getenv)
			if o, code, stderr := parseFlags(t, tc.args, env, func(cmd *cobra.Command, _ *options) { addDaemonFlags(cmd.Flags(), &d) }); o == nil {
				t.Fatalf("parse: exit %d: %s", code, stderr)
			}
			if d.ShutdownGrace != tc.want {
				t.Errorf("--shutdown-grace %s, want %s", d.ShutdownGrace, tc.want)
			}
		})
	}
}

// gitGate sits in front of the Git server and holds one push (the hold-th)
// until released, so a test can act while a pass is in flight.
type gitGate struct {
	proxy   http.Handler
	hold    int32
	pushes  atomic.Int32
	arrived chan struct{} // closed when the held push arrives
	release chan struct{} // closed by the test to let it through
	aborted atomic.Bool   // the held push was cancelled by the agent
}

func startGitGate(t *testing.T, b *bed, hold int32) *gitGate {
	t.Helper()
	target, err := url.Parse(b.git.URL("certs"))
	if err != nil {
		t.Fatal(err)
	}
	target.Path = ""
	g := &gitGate{proxy: httputil.NewSingleHostReverseProxy(target), hold: hold, arrived: make(chan struct{}), release: make(chan struct{})}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	for i := range b.args {
		if b.args[i] == "--repo" {
			b.args[i+1] = srv.URL + "/certs.git"
		}
	}
	t.Cleanup(g.open)
	return g
}

func (g *gitGate) open() {
	select {
	case <-g.release:
	default:
		close(g.release)
	}
}

func (g *gitGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
		if g.pushes.Add(1) == g.hold {
			close(g.arrived)
			select {
			case <-g.release:
			case <-r.Context().Done():
				g.aborted.Store(true)
				return
			}
		}
	}
	g.proxy.ServeHTTP(w, r)
}

type lease struct {
	holder  string
	renewed time.Time
}

func leaseNow(t *testing.T, kc kubernetes.Interface) lease {
	t.Helper()
	l, err := kc.CoordinationV1().Leases("certsync").Get(context.Background(), "certsync", metav1.GetOptions{})
	if err != nil {
		return lease{}
	}
	var out lease
	if l.Spec.HolderIdentity != nil {
		out.holder = *l.Spec.HolderIdentity
	}
	if l.Spec.RenewTime != nil {
		out.renewed = l.Spec.RenewTime.Time
	}
	return out
}

// TestAgentLeaderSIGTERMLetsThePassFinish: SIGTERM reaches the leader while
// its pass pushes. The pass finishes within --shutdown-grace with the Lease
// held and renewed; then the Lease is released and the agent exits.
func TestAgentLeaderSIGTERMLetsThePassFinish(t *testing.T) {
	// The account and two certificates are committed already, so the
	// agent's pass orders www alone and pushes once, at its end.
	b := issuedBed(t)
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
	seed := b.head(t)
	api := testbed.StartAPIServer(t)
	for _, ns := range []string{"shop", "api", "certsync"} {
		api.CreateNamespace(t, ns)
	}
	b.args = append(b.args, "--kubeconfig", api.Kubeconfig)
	kc := kube(t, api)
	logs := &testbed.Output{}
	// Push 1 is the order claim; push 2 carries the certificate.
	gate := startGitGate(t, b, 2)
	orders := b.acme.Orders()

	r := startReplica(t, b, "replica-a", logs)
	select {
	case <-gate.arrived:
	case <-r.done:
		t.Fatalf("agent exited %d before its push\nlogs:\n%s", r.code, logs)
	case <-time.After(120 * time.Second):
		t.Fatalf("no push within 2 minutes\nlogs:\n%s", logs)
	}
	if h := leaseNow(t, kc).holder; h != "replica-a" {
		t.Fatalf("Lease holder %q while replica-a pushes", h)
	}

	sigterm := time.Now()
	r.cancel()
	// The Lease is renewed while the pass finishes.
	eventually(t, "a renewal of the Lease after SIGTERM", logs, func() bool {
		l := leaseNow(t, kc)
		if l.holder != "replica-a" {
			t.Fatalf("Lease holder %q during the grace, want replica-a\nlogs:\n%s", l.holder, logs)
		}
		return l.renewed.After(sigterm.Add(time.Second))
	})
	select {
	case <-r.done:
		t.Fatalf("agent exited %d with its pass in flight\nlogs:\n%s", r.code, logs)
	default:
	}
	if gate.aborted.Load() {
		t.Fatalf("the push was cancelled within the grace\nlogs:\n%s", logs)
	}

	gate.open()
	select {
	case <-r.done:
		if r.code != 0 {
			t.Errorf("agent exited %d after SIGTERM", r.code)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not exit after its pass\nlogs:\n%s", logs)
	}
	// The pass finished: pushed, then applied.
	if n := strings.Count(gitCmd(t, b.bare, "log", "--format=%an", seed+"..main"), "certsync"); n != 2 {
		t.Errorf("certsync commits = %d, want 2 (claim, certificate)\nlogs:\n%s", n, logs)
	}
	if _, err := kc.CoreV1().Secrets("shop").Get(context.Background(), "www-tls", metav1.GetOptions{}); err != nil {
		t.Errorf("www-tls not applied by the pass: %v\nlogs:\n%s", err, logs)
	}
	list, err := kc.CoreV1().Secrets("").List(context.Background(), metav1.ListOptions{LabelSelector: committed.ManagedByLabel + "=" + committed.ManagedByValue})
	if err != nil || len(list.Items) != 3 {
		t.Errorf("Secrets applied: %d (err %v), want 3", len(list.Items), err)
	}
	if n := b.acme.Orders() - orders; n != 1 {
		t.Errorf("orders = %d, want 1 (www alone)", n)
	}
	// Released before the agent returned.
	if h := leaseNow(t, kc).holder; h != "" {
		t.Errorf("Lease holder %q after exit, want it released", h)
	}
}
