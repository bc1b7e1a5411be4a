package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/certsync/certsync/internal/pageout"
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
	LeaderElectName   string
	ShutdownGrace     time.Duration
	// HeapProfile, when set (CERTSYNC_HEAP_PROFILE), is a file the agent
	// rewrites with a heap profile (pprof, inuse_space) after each pass:
	// what its memory holds between passes, without serving pprof on the
	// port the webhooks and challenges reach. Default: none.
	HeapProfile string
}

func (c *cli) runCommand() *cobra.Command {
	o := defaultOptions(c.getenv)
	d := defaultDaemonOptions(c.getenv)
	cmd := &cobra.Command{
		Use:   "run --repo URL",
		Short: "Run the agent: a pass every --interval, at renewal times and on push webhooks",
		Long: `Run the agent: a pass every --interval, at the next renewal time, and at
once when a push webhook arrives on /hooks/git. It serves /healthz, /readyz
and /metrics on --listen-addr. With --leader-elect only the replica holding
the Lease works; SIGTERM lets the pass in flight finish for --shutdown-grace.

Memory: without GOMEMLIMIT the Go runtime's soft limit is 160 MiB (set
GOMEMLIMIT to change it, GOMEMLIMIT=off for none). CERTSYNC_HEAP_PROFILE=FILE
rewrites FILE with a heap profile after each pass.`,
		Example: examples(
			"certsync run --repo https://git.example.com/platform/certs.git --git-password-file /etc/certsync/git/token \\",
			"    --age-key-file /etc/certsync/age/age.agekey --cluster prod-eu --leader-elect",
			"CERTSYNC_REPO=ssh://git@git.example.com/certs.git CERTSYNC_INTERVAL=5m certsync run",
		),
		Args: noArgs("the repository is --repo"),
	}
	cmd.RunE = c.action(&o, func(ctx context.Context, o *options, log *slog.Logger) int {
		if d.ShutdownGrace < 0 {
			fmt.Fprintf(c.stderr, "certsync: --shutdown-grace %s: want zero or more\n", d.ShutdownGrace)
			return exitUsage
		}
		o.watchCluster = true
		limitMemory(log)
		if err := runDaemon(ctx, o, &d, c.getenv, log); err != nil {
			log.Error("certsync run stopped", "error", err)
			return exitFail
		}
		return exitOK
	})
	addAgentFlags(cmd, &o)
	addIntervalFlag(cmd.Flags(), &o, "time between passes")
	addDaemonFlags(cmd.Flags(), &d)
	return cmd
}

func defaultDaemonOptions(getenv func(string) string) daemonOptions {
	return daemonOptions{ListenAddr: ":8080", LeaderElectID: getenv("POD_NAME"), LeaderElectNS: "certsync", LeaderElectName: "certsync", ShutdownGrace: 30 * time.Second, HeapProfile: getenv("CERTSYNC_HEAP_PROFILE")}
}

// addDaemonFlags: the agent's endpoints, Lease and shutdown.
func addDaemonFlags(fs *pflag.FlagSet, d *daemonOptions) {
	fs.StringVar(&d.ListenAddr, "listen-addr", d.ListenAddr, "address of /healthz, /readyz, /metrics and /hooks/git")
	fs.StringVar(&d.WebhookSecretFile, "webhook-secret-file", d.WebhookSecretFile, "file holding the push webhook secret (or CERTSYNC_WEBHOOK_SECRET); without one /hooks/git refuses every request")
	fs.BoolVar(&d.LeaderElect, "leader-elect", d.LeaderElect, "hold a Lease so only one replica writes")
	fs.StringVar(&d.LeaderElectID, "leader-elect-id", d.LeaderElectID, "this replica's identity (default $POD_NAME, else the host name)")
	fs.StringVar(&d.LeaderElectNS, "leader-elect-namespace", d.LeaderElectNS, "namespace of the Lease")
	fs.StringVar(&d.LeaderElectName, "leader-elect-lease-name", d.LeaderElectName, "name of the Lease: agents of different repositories or clusters in one namespace need different names")
	fs.DurationVar(&d.ShutdownGrace, "shutdown-grace", d.ShutdownGrace, "on SIGTERM, how long the current pass may run on before it is abandoned (a lost Lease stops it at once)")
}

// runDaemon serves the HTTP endpoints and runs passes until shutdown ends, with
// or without leader election.
//
// Two contexts govern a pass. "leading" ends the moment this replica may no
// longer write (the Lease lost: another replica may start soon), and the
// pass is cancelled at once. "shutdown" is ctx (SIGTERM): no new pass
// starts, the pass in flight drains (no new orders) and gets
// --shutdown-grace to finish, the Lease still held and renewed meanwhile;
// then the Lease is released and runDaemon returns. Without leader
// election, leading never ends.
func runDaemon(shutdown context.Context, o *options, d *daemonOptions, getenv func(string) string, log *slog.Logger) error {
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
	defer context.AfterFunc(shutdown, func() {
		log.Info("shutting down: a pass in flight may finish", "grace", d.ShutdownGrace)
	})()

	// The binary's pages that only start-up touched are handed back
	// before the first pass, and those only the first pass touched once
	// after it (see settle): without the first, a first pass over 10,000
	// certificates with a cluster peaks with ~80 MB of start-up pages
	// still resident (BenchmarkPass10kNothingDue/daemon-cluster).
	var started, settled sync.Once
	// lead runs passes while leading, until it ends or shutdown.
	lead := func(leading context.Context) {
		// A replica that stops leading stops being ready: the Service
		// must send webhooks and HTTP-01 challenges to the leader.
		defer ready.Store(false)
		for leading.Err() == nil && shutdown.Err() == nil {
			// Building (clone, listeners) and the pause after a failed
			// build stop at once on either; only a pass gets the grace.
			ctx, cancel := context.WithCancel(leading)
			stop := context.AfterFunc(shutdown, cancel)
			rec, cleanup, err := build(ctx, o, getenv, log)
			if err != nil {
				log.Error("cannot start passes; retrying", "error", err, "next", "fix the configuration or wait for the remote")
				sleep(ctx, o.Interval)
			} else {
				started.Do(func() { settle(log) })
				passes(leading, shutdown, rec, o, d, hook, m, &ready, &settled, log)
				cleanup()
			}
			stop()
			cancel()
		}
	}
	if !d.LeaderElect {
		lead(context.WithoutCancel(shutdown))
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
	return leader.Run(shutdown, rc, leader.Config{
		Namespace: d.LeaderElectNS, Name: d.LeaderElectName, Identity: id, Logger: log,
		OnNewLeader: func(leaderID string) {
			// The leader reports the certificates now. This replica's last
			// figures would go stale and, as the leader renews, trip
			// expiry alerts that no longer hold.
			if leaderID != id {
				m.Standby()
			}
		},
	}, lead)
}

// passes runs reconcile passes until leading or shutdown ends; see
// passContext for how each ends a pass in flight.
func passes(leading, shutdown context.Context, rec *reconcile.Reconciler, o *options, d *daemonOptions, hook *webhook.Handler, m *metrics.Metrics, ready *atomic.Bool, settled *sync.Once, log *slog.Logger) {
	failedPasses := 0
	for leading.Err() == nil && shutdown.Err() == nil {
		passCtx, done := passContext(leading, shutdown, d.ShutdownGrace)
		start := time.Now()
		// On SIGTERM the pass drains: it starts no new order, and those in
		// flight finish and are pushed and applied within the grace.
		res, err := rec.Reconcile(passCtx, reconcile.Options{Drain: shutdown.Done()})
		if err != nil && passCtx.Err() != nil {
			err = fmt.Errorf("%w (pass stopped: %w)", err, whyStopped(leading, passCtx))
		}
		done()
		record(m, res, err, time.Since(start))
		// A pass reads the whole tree and leaves mostly garbage; hand it
		// back to the OS now rather than keep the peak resident for the
		// minute the agent sleeps (10,000 certificates: ~260 → ~150 MB RSS).
		debug.FreeOSMemory()
		if err == nil {
			settled.Do(func() { settle(log) })
		}
		if d.HeapProfile != "" {
			if perr := writeHeapProfile(d.HeapProfile); perr != nil {
				log.Warn("heap profile not written", "error", perr)
			}
		}
		if serr := saveAgentState(o.stateDir(), rec); serr != nil {
			log.Warn("agent state (backoff, renewal windows) not saved; a restart may repeat some work", "error", serr)
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
		case <-leading.Done():
		case <-shutdown.Done():
		case <-hook.Trigger():
		case <-time.After(wait):
		}
	}
}

// DefaultMemoryLimit is the Go runtime's soft memory limit in `certsync
// run` when GOMEMLIMIT is not set: 160 MiB. Past it, the collector runs
// more often instead of letting the heap grow to twice the live data,
// which keeps a pass's peak down (BenchmarkPass10kNothingDue/daemon). It
// counts the runtime's memory (heap, stacks, metadata), not the binary's
// pages. It is soft: a repository whose live state needs more still
// works, the collector then taking up to half a core during passes; give
// such an agent a larger GOMEMLIMIT (GOMEMLIMIT=off: no limit).
const DefaultMemoryLimit = 160 << 20

// limitMemory applies the agent's default memory limit (see
// DefaultMemoryLimit) and logs it when it is the default.
func limitMemory(log *slog.Logger) {
	if limit, set := applyDefaultMemoryLimit(); set {
		log.Debug("Go memory limit: the agent's default (set GOMEMLIMIT to change it)", "bytes", limit)
	}
}

// applyDefaultMemoryLimit sets DefaultMemoryLimit unless the environment
// names a limit (the runtime has applied it already), and reports the
// limit and whether it set it.
func applyDefaultMemoryLimit() (int64, bool) {
	if runtimeSetting("GOMEMLIMIT") {
		return debug.SetMemoryLimit(-1), false
	}
	debug.SetMemoryLimit(DefaultMemoryLimit)
	return DefaultMemoryLimit, true
}

// OneShotGCPercent is the collector's GOGC in a one-shot `certsync
// reconcile` when GOGC is not set: a collection when the heap has grown
// by 60% since the last, not 100%. A one-shot pass has no steady state:
// its peak is what it costs a CronJob's memory limit, and that peak is
// the live state (the repository read, the cluster listed) plus the room
// the collector leaves for garbage. Over 10,000 certificates with the
// cluster: 152 -> 132 MB peak RSS for 0.1 CPU-s
// (BenchmarkPass10kNothingDue/process-cluster).
const OneShotGCPercent = 60

// collectSooner applies OneShotGCPercent unless the environment names a
// GOGC (the runtime has applied it already); it reports whether it did.
func collectSooner(log *slog.Logger) bool {
	if runtimeSetting("GOGC") {
		return false
	}
	debug.SetGCPercent(OneShotGCPercent)
	log.Debug("Go collector: the one-shot default (set GOGC to change it)", "gogc", OneShotGCPercent)
	return true
}

// runtimeSetting reports whether the operator set the Go runtime variable
// name (the runtime has applied it already). Empty is unset, for the
// runtime too (a manifest's `value: ""`).
func runtimeSetting(name string) bool { return os.Getenv(name) != "" }

// settle runs before the daemon's first pass and once after its first
// successful pass: the pages of the binary that start-up touched (the
// init of some 2,400 packages: client-go's schemes, the cloud SDKs'
// registries) and that the pass did not need again are handed back to
// the kernel. They are clean file
// pages the kernel would reclaim under pressure anyway; until then they
// count in the agent's RSS and its container's memory. What later passes
// use faults back in once, during the next pass, and stays.
func settle(log *slog.Logger) {
	res, err := pageout.Executable()
	if err != nil {
		log.Debug("start-up pages of the binary not handed back", "error", err)
		return
	}
	log.Debug("start-up pages of the binary handed back", "mapped", res.Mapped)
}

// writeHeapProfile replaces path with the heap profile of the last
// collection (FreeOSMemory just made one), whole or not at all.
func writeHeapProfile(path string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	err = pprof.Lookup("heap").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}

// errGraceOver ends a pass still running --shutdown-grace after SIGTERM.
var errGraceOver = errors.New("the shutdown grace period is over")

// passContext is the context of one pass. It ends at once with leading,
// and grace after shutdown ends. A stopped pass stops at the next step
// boundary, which is always safe (a commit is written whole or not at all,
// and Secrets are applied only after the push), but a pass that finishes
// spares the next one redoing its orders. done releases the context.
func passContext(leading, shutdown context.Context, grace time.Duration) (ctx context.Context, done func()) {
	ctx, cancel := context.WithCancelCause(leading)
	stop := context.AfterFunc(shutdown, func() {
		t := time.AfterFunc(grace, func() { cancel(errGraceOver) })
		context.AfterFunc(ctx, func() { t.Stop() })
	})
	return ctx, func() {
		stop()
		cancel(context.Canceled)
	}
}

// whyStopped tells why a pass's context ended, for its error.
func whyStopped(leading, pass context.Context) error {
	if leading.Err() == nil {
		return context.Cause(pass)
	}
	if cause := context.Cause(leading); !errors.Is(cause, context.Canceled) {
		return fmt.Errorf("this replica no longer holds the Lease: %w", cause)
	}
	return errors.New("this replica no longer holds the Lease")
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
		p.Failed, p.RenewalsFailed = res.Failed, res.FailedRenewals
		for _, is := range res.Issued {
			if is.Kind != reconcile.Issue {
				p.Renewed++
			}
		}
		p.PushConflicts = res.PushRaces
		p.ApplyErrors, p.PruneErrors = res.ApplyErrors, res.PruneErrors
		// A remote the pass did not try keeps its last value: a pass that
		// stopped at Git never asked the API server.
		p.Reachable = map[string]bool{}
		for remote, reach := range map[string]reconcile.Reach{metrics.RemoteGit: res.Git, metrics.RemoteAPIServer: res.APIServer} {
			if reach != reconcile.NotTried {
				p.Reachable[remote] = reach == reconcile.Reached
			}
		}
		// Head is set once the pass has read the repository; a pass that
		// failed before (Git away) knows nothing of the certificates, and
		// the gauges keep their last known values.
		if res.Head != "" {
			p.Read, p.Certificates = true, certificateGauges(res)
		}
	}
	m.RecordPass(p)
}

// certificateGauges is the state of each declared certificate after a
// pass that read the repository.
func certificateGauges(res *reconcile.Result) []metrics.Certificate {
	certs := make([]metrics.Certificate, 0, len(res.Certificates))
	for i := range res.Certificates {
		c := &res.Certificates[i]
		mc := metrics.Certificate{Name: c.Name, Namespace: c.Namespace, IssuerName: c.IssuerRef.Name, IssuerKind: c.IssuerRef.Kind, IssuerGroup: c.IssuerRef.Group}
		if _, rec, ok := res.Current(c); ok {
			mc.NotBefore, mc.NotAfter = rec.NotBefore, rec.NotAfter
			mc.RenewalTime = reconcile.RenewalTime(c, &rec, reconcile.Policy{})
			mc.Ready = time.Now().Before(rec.NotAfter)
		}
		for _, is := range res.Issued {
			if is.Certificate == c.Key() {
				mc.NotAfter, mc.Ready = is.NotAfter, true
				// Its lifetime is the new certificate's, not the old one's.
				if rec, ok := res.Records[is.Path]; ok {
					mc.NotBefore = rec.NotBefore
				}
			}
		}
		mc.FailedOrders = res.Failures[c.Key()].Count
		certs = append(certs, mc)
	}
	return certs
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
