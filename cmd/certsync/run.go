package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/leader"
	"github.com/certsync/certsync/metrics"
	"github.com/certsync/certsync/reconcile"
	"github.com/certsync/certsync/webhook"
)

// daemonOptions are the flags only `certsync run` has.
type daemonOptions struct {
	ListenAddr        string
	WebhookSecretFile string
	LeaderElect       bool
	LeaderElectID     string
	LeaderElectNS     string
	ShutdownGrace     time.Duration
}

// cmdRun is the agent: a pass every --interval, at the next renewal time,
// and right after a push webhook; with /healthz, /readyz, /metrics.
func cmdRun(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var d daemonOptions
	o, log, code, ok := parseCommand("run", args, getenv, stderr, func(fs *flag.FlagSet) {
		d.declare(fs, getenv)
	})
	if !ok {
		return code
	}
	if err := runDaemon(ctx, o, &d, getenv, log); err != nil {
		log.Error("certsync run stopped", "error", err)
		return 1
	}
	return 0
}

// declare adds the flags of `certsync run`.
func (d *daemonOptions) declare(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&d.ListenAddr, "listen-addr", envOr(getenv, "listen-addr", ":8080"), "address of /healthz, /readyz, /metrics and /hooks/git")
	fs.StringVar(&d.WebhookSecretFile, "webhook-secret-file", envOr(getenv, "webhook-secret-file", ""), "file holding the push webhook secret (or CERTSYNC_WEBHOOK_SECRET); without one /hooks/git refuses every request")
	fs.BoolVar(&d.LeaderElect, "leader-elect", envOr(getenv, "leader-elect", "false") == "true", "hold a Lease so only one replica writes")
	fs.StringVar(&d.LeaderElectID, "leader-elect-id", envOr(getenv, "leader-elect-id", getenv("POD_NAME")), "this replica's identity (default $POD_NAME, else the host name)")
	fs.StringVar(&d.LeaderElectNS, "leader-elect-namespace", envOr(getenv, "leader-elect-namespace", "certsync"), "namespace of the Lease")
	fs.DurationVar(&d.ShutdownGrace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long the current pass may run on before it is abandoned")
}

func runDaemon(ctx context.Context, o *options, d *daemonOptions, getenv func(string) string, log *slog.Logger) error {
	secret := []byte(getenv("CERTSYNC_WEBHOOK_SECRET"))
	if d.WebhookSecretFile != "" {
		b, err := os.ReadFile(d.WebhookSecretFile)
		if err != nil {
			return fmt.Errorf("read --webhook-secret-file: %w", err)
		}
		secret = []byte(strings.TrimSpace(string(b)))
	}
	hook := webhook.New(secret, o.Branch, log)
	m := metrics.New()
	var ready atomic.Bool

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "no pass has completed yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/metrics", m.Handler())
	mux.Handle("/hooks/git", hook)
	ln, err := net.Listen("tcp", d.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on --listen-addr %s: %w", d.ListenAddr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	log.Info("certsync running", "listen", ln.Addr().String(), "repo", redactURL(o.Repo), "branch", o.Branch, "interval", o.Interval)

	loop := func(ctx context.Context) {
		rec, cleanup, err := build(ctx, o, getenv, log)
		if err != nil {
			log.Error("cannot start passes; retrying", "error", err, "next", "fix the configuration or wait for the remote")
			sleep(ctx, o.Interval)
			return
		}
		defer cleanup()
		passes(ctx, rec, o, d, hook, m, &ready, log)
	}
	if !d.LeaderElect {
		for ctx.Err() == nil {
			loop(ctx)
		}
		return nil
	}
	rc, err := restConfig(o.Kubeconfig, o.KubeContext)
	if err != nil {
		return fmt.Errorf("leader election needs a cluster: %w", err)
	}
	id := d.LeaderElectID
	if id == "" {
		id, _ = os.Hostname()
	}
	return leader.Run(ctx, rc, leader.Config{Namespace: d.LeaderElectNS, Name: "certsync", Identity: id, Logger: log}, func(lctx context.Context) {
		for lctx.Err() == nil {
			loop(lctx)
		}
	})
}

// passes runs reconcile passes until ctx ends. A pass in flight when ctx
// ends gets --shutdown-grace to finish; after that its context is cancelled
// and it stops at the next step boundary, which is always safe: a commit is
// written whole or not at all, and Secrets are applied only after the push.
func passes(ctx context.Context, rec *reconcile.Reconciler, o *options, d *daemonOptions, hook *webhook.Handler, m *metrics.Metrics, ready *atomic.Bool, log *slog.Logger) {
	failedPasses := 0
	for ctx.Err() == nil {
		passCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stop := context.AfterFunc(ctx, func() {
			t := time.AfterFunc(d.ShutdownGrace, cancel)
			<-passCtx.Done()
			t.Stop()
		})
		start := time.Now()
		res, err := rec.Reconcile(passCtx, reconcile.Options{})
		stop()
		cancel()
		record(m, res, err, time.Since(start))
		// A pass reads the whole tree and leaves mostly garbage; hand it
		// back to the OS now rather than keep the peak resident for the
		// minute the agent sleeps (10,000 certificates: ~260 → ~150 MB RSS).
		debug.FreeOSMemory()
		if serr := saveFailures(o.stateDir(), rec.Failures()); serr != nil {
			log.Warn("backoff state not saved", "error", serr)
		}
		if err != nil {
			failedPasses++
			log.Error("pass failed; retrying with backoff", "error", err, "failures", failedPasses)
		} else {
			failedPasses = 0
			ready.Store(true)
			for _, p := range res.Problems {
				log.Warn("problem", "error", p)
			}
			log.Info("pass done", "commit", res.Commit, "issued", len(res.Issued), "applied", len(res.Applied), "problems", len(res.Problems), "took", time.Since(start).Round(time.Millisecond))
		}
		wait := nextPassIn(o.Interval, failedPasses, res)
		select {
		case <-ctx.Done():
		case <-hook.Trigger():
		case <-time.After(wait):
		}
	}
}

// nextPassIn is the pause before the next pass: the interval, shortened to
// the next renewal time; after failed passes (Git or the API server away) a
// backoff from 5 s doubling up to the interval, so an outage is retried
// soon without hammering the remote.
func nextPassIn(interval time.Duration, failedPasses int, res *reconcile.Result) time.Duration {
	if failedPasses > 0 {
		backoff := 5 * time.Second
		for i := 1; i < failedPasses && backoff < interval; i++ {
			backoff *= 2
		}
		return min(backoff, interval)
	}
	wait := interval
	if res != nil && !res.Plan.NextRenewal.IsZero() {
		if until := time.Until(res.Plan.NextRenewal); until < wait {
			wait = max(until, time.Second)
		}
	}
	return wait
}

// record updates the metrics after a pass.
func record(m *metrics.Metrics, res *reconcile.Result, err error, took time.Duration) {
	p := metrics.Pass{Duration: took, Err: err}
	if res != nil {
		p.Problems, p.Issued, p.Pushed = len(res.Problems), len(res.Issued), res.Commit != ""
		p.Applied, p.Pruned = len(res.Applied), len(res.Pruned)
		p.Failed = res.Failed
		var certs []metrics.Certificate
		for i := range res.Certificates {
			c := &res.Certificates[i]
			mc := metrics.Certificate{Name: c.Name, Namespace: c.Namespace, IssuerName: c.IssuerRef.Name, IssuerKind: c.IssuerRef.Kind, IssuerGroup: c.IssuerRef.Group}
			if rec, ok := res.Records[committed.SecretPath(res.ClusterName(), c.Namespace, c.SecretName)]; ok {
				mc.NotAfter = rec.NotAfter
				mc.RenewalTime = reconcile.RenewalTime(c, &rec, reconcile.Policy{})
				mc.Ready = time.Now().Before(rec.NotAfter)
			}
			for _, is := range res.Issued {
				if is.Certificate == c.Key() {
					mc.NotAfter, mc.Ready = is.NotAfter, true
				}
			}
			certs = append(certs, mc)
		}
		m.SetCertificates(certs)
	}
	m.RecordPass(p)
}

func restConfig(kubeconfig, context string) (*rest.Config, error) {
	if kubeconfig == "" {
		if rc, err := rest.InClusterConfig(); err == nil {
			return rc, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// redactURL drops credentials from a URL before it is logged.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
		return scheme + "://" + rest[at+1:]
	}
	return u
}
