package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

// Config wires a Reconciler to its effects. Zero values are the defaults.
type Config struct {
	Repo       Repository
	Encryption NewEncrypter
	Issuers    NewIssuer
	// Cluster is where Secrets are applied; nil runs Git-only.
	Cluster Cluster
	// Clock is the time source. Default: time.Now.
	Clock func() time.Time
	// ClusterName selects secrets/<ClusterName>/. Default: "default".
	ClusterName string
	// Concurrency is how many orders run at once. Default: 8.
	Concurrency int
	// PushAttempts bounds fetch-replan-commit-push rounds after lost push
	// races. Default: 5.
	PushAttempts int
	Policy       Policy
	Logger       *slog.Logger
	// Failures restores the backoff state saved by an earlier process
	// (Reconciler.Failures), so a restart does not hammer a failing CA.
	Failures map[string]Failure
}

// Reconciler runs passes. It remembers order failures between passes, so
// one Reconciler serves a whole daemon's life.
type Reconciler struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	failures map[string]Failure
	cache    parseCache
}

// New checks the configuration and returns a Reconciler.
func New(cfg Config) (*Reconciler, error) {
	if cfg.Repo == nil || cfg.Encryption == nil || cfg.Issuers == nil {
		return nil, errors.New("reconcile: Repo, Encryption and Issuers are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = committed.DefaultCluster
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.PushAttempts <= 0 {
		cfg.PushAttempts = 5
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	failures := map[string]Failure{}
	for k, v := range cfg.Failures {
		failures[k] = v
	}
	return &Reconciler{cfg: cfg, log: log, failures: failures}, nil
}

// Options change one pass.
type Options struct {
	// DryRun plans and reports without ordering, committing or applying.
	DryRun bool
}

// Result is what a pass did.
type Result struct {
	// Head is the commit the pass planned on; Commit the one it pushed
	// ("" when it changed nothing in Git).
	Head, Commit string
	Plan         Plan
	Issued       []Issued
	// Failed counts orders that failed (their errors are in Problems).
	Failed  int
	Applied []string // "namespace/name" of Secrets applied
	Pruned  []string // paths and Secrets removed
	// Problems are soft errors: bad declarations, failed orders, Secrets
	// that could not be decrypted or applied. The pass carried on past them.
	Problems []error
	// Certificates are the valid declarations, for status tables.
	Certificates []declared.Certificate
	Records      map[string]committed.Certificate
	cluster      string
}

// ClusterName is the cluster the pass worked for.
func (r *Result) ClusterName() string { return r.cluster }

// Issued describes one certificate ordered and committed by the pass.
type Issued struct {
	Kind        ActionKind
	Certificate string
	Path        string
	Serial      string
	NotAfter    time.Time
	Reason      string
}

// Reconcile runs one pass. A returned error means the pass could not do its
// job at all (Git unreachable, no .sops.yaml); problems with individual
// certificates are in Result.Problems and do not stop the others.
func (r *Reconciler) Reconcile(ctx context.Context, opts Options) (*Result, error) {
	res := &Result{cluster: r.cfg.ClusterName}
	if err := r.pushPending(ctx); err != nil {
		return res, err
	}
	tree, err := r.cfg.Repo.Fetch(ctx)
	if err != nil {
		return res, fmt.Errorf("fetch repository: %w", err)
	}
	observed, err := r.observe(ctx)
	if err != nil {
		return res, err
	}
	st, err := r.readState(ctx, tree, observed)
	if err != nil {
		return res, err
	}
	res.Head, res.Certificates, res.Records = tree.Commit(), st.set.Certificates, st.state.Committed
	for _, p := range st.set.Problems {
		res.Problems = append(res.Problems, p)
	}
	res.Problems = append(res.Problems, st.problems...)
	res.Plan = Calculate(st.state)
	st.lastPlan = res.Plan
	for _, w := range res.Plan.Warnings {
		r.log.Warn(w)
	}
	if opts.DryRun || !res.Plan.HasChanges() {
		return res, nil
	}

	orders := r.order(ctx, st, res.Plan)
	res.Problems = append(res.Problems, orders.problems...)
	res.Failed = len(orders.failed)
	final, pushed, err := r.commitAndPush(ctx, st, res, orders)
	res.Problems = append(res.Problems, pushed.problems[len(orders.problems):]...)
	if err != nil {
		return res, err
	}
	r.applyAndPrune(ctx, final, res, pushed)
	return res, nil
}

// pushPending publishes commits left by a pass whose push failed (the
// remote was away). A lost race drops them: the next plan orders again
// only what is still due.
func (r *Reconciler) pushPending(ctx context.Context) error {
	n, err := r.cfg.Repo.Pending(ctx)
	if err != nil || n == 0 {
		return err
	}
	r.log.Info("pushing commits left by an earlier pass", "commits", n)
	err = r.cfg.Repo.Push(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrPushRace):
		remote, ferr := r.cfg.Repo.Fetch(ctx)
		if ferr != nil {
			return fmt.Errorf("fetch repository: %w", ferr)
		}
		r.log.Warn("dropping unpushed commits: the remote moved meanwhile; what is still due is ordered again", "commits", n)
		return r.cfg.Repo.Reset(ctx, remote)
	default:
		return fmt.Errorf("push commits left by an earlier pass: %w", err)
	}
}

func (r *Reconciler) observe(ctx context.Context) ([]ObservedSecret, error) {
	if r.cfg.Cluster == nil {
		return nil, nil
	}
	obs, err := r.cfg.Cluster.Observe(ctx)
	if err != nil {
		return nil, fmt.Errorf("list certsync Secrets in the cluster: %w", err)
	}
	return obs, nil
}

// recordFailure and clearFailure keep the backoff state of orders.
func (r *Reconciler) recordFailure(key string, now time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.failures[key]
	f.Count++
	f.Last, f.Err = now, err.Error()
	var ra *issuer.RetryAfterError
	if errors.As(err, &ra) {
		f.RetryAfter = ra.RetryAfter
	}
	r.failures[key] = f
}

func (r *Reconciler) clearFailure(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.failures, key)
}

// Failures returns the current backoff state, to be saved across restarts.
func (r *Reconciler) Failures() map[string]Failure { return r.failureSnapshot() }

func (r *Reconciler) failureSnapshot() map[string]Failure {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Failure, len(r.failures))
	for k, v := range r.failures {
		out[k] = v
	}
	return out
}
