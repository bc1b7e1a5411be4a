package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
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
	// ClusterName is the agent's own cluster: the Secrets under
	// secrets/<ClusterName>/ are the ones it applies. Which clusters
	// receive a certificate is the repository's choice (package
	// settings). Default: "default".
	ClusterName string
	// Role says which half of the work this agent does. Default: RoleBoth.
	Role Role
	// Concurrency is how many orders run at once. Default: 8.
	Concurrency int
	// ApplyConcurrency is how many Secrets are applied to the cluster (and
	// Events created) at once; the API server's priority and fairness
	// throttles past what it can take. Default: DefaultApplyConcurrency (16).
	ApplyConcurrency int
	// EventsPerPass bounds a pass's Kubernetes Events: that many of each
	// type one per Secret, then summaries per namespace (see events.go).
	// Default: DefaultEventsPerPass (100).
	EventsPerPass int
	// PushAttempts bounds fetch-replan-commit-push rounds after lost push
	// races; rounds are spaced by a growing random pause, so agents that
	// collide do not collide again. Default: 10.
	PushAttempts int
	Policy       Policy
	Logger       *slog.Logger
	// Failures restores the backoff state saved by an earlier process
	// (Reconciler.Failures), so a restart does not hammer a failing CA.
	Failures map[string]Failure
	// IssuerSecretsFromCluster lets issuers read *SecretRef Secrets that
	// are not in the repository from the cluster (when Cluster can read
	// them, see SecretReader). Default: false, the repository only.
	IssuerSecretsFromCluster bool
	// Batching shapes how finished certificates are committed and pushed
	// while a pass runs.
	Batching Batching
	// VerifyCommitted decrypts each committed Secret blob once and checks
	// the SOPS MAC and that the plaintext metadata matches the certificate
	// inside; a mismatch is repaired. It needs the agent's key; without
	// one, files are reported unverified. How many a pass checks, and
	// which first, is in verify.go. Default: false (the CLI turns it on
	// when it has an age identity).
	VerifyCommitted bool
	// VerifyPerPass bounds the committed files not verified yet that a
	// pass decrypts to verify (files it acts on are verified anyway);
	// negative: no bound. Default: DefaultVerifyPerPass (500).
	VerifyPerPass int
	// VerifiedStore remembers verification across processes, for the
	// agent's current keys. Default: nil, remembered by this Reconciler
	// only.
	VerifiedStore VerifiedStore
	// RecordStore remembers the records of the committed files across
	// processes, so a new process reads only the files that changed.
	// Default: nil, remembered by this Reconciler only.
	RecordStore RecordStore
	// Agent names this agent in its order claims (see committed.Claim).
	// It must differ between agents writing to one repository and should
	// stay the same across restarts of one agent, so a restarted agent
	// resumes its own claims at once. Default: a random name per
	// Reconciler.
	Agent string
	// Windows restores the renewal windows polled by an earlier process
	// (Reconciler.Windows); PollsPerPass bounds the renewal-information
	// requests of one pass. Default: DefaultPollsPerPass.
	Windows      map[string]Window
	PollsPerPass int
	// ClaimTTL is how long an order claim holds off other agents; an
	// agent renews its claim while it orders. Default: 10 minutes.
	ClaimTTL time.Duration
	// NoClaims orders without claiming in Git first: for a single issuer
	// whose commits go to a proposal branch (a claim must be on the branch
	// every agent reads, which such an issuer may not push to).
	// Default: false.
	NoClaims bool
}

// Role is the part an agent plays. An issuer needs the CA's credentials
// and the public recipients, never a cluster; an applier needs its
// cluster and its own decryption key, never a CA.
type Role string

const (
	// RoleBoth orders, commits and applies (the default).
	RoleBoth Role = ""
	// RoleIssuer orders, encrypts and commits for every cluster; it applies
	// nothing (run it without a Cluster).
	RoleIssuer Role = "issuer"
	// RoleApplier applies its cluster's committed Secrets and prunes what
	// is no longer delivered to it; it orders and commits nothing.
	RoleApplier Role = "applier"
)

// Reconciler runs passes. It remembers order failures between passes, so
// one Reconciler serves a whole daemon's life.
type Reconciler struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	failures map[string]Failure
	windows  map[string]Window // polled renewal windows by path (ARI)
	cache    parseCache
	records  recordMemory
	verify   verifier // passes run one at a time
	// idle is the state read by the last pass when it had nothing to do;
	// see reuseIdle.
	idle *pass
	// layout is where the current pass's tree keeps Secrets (set when
	// the pass reads its state; passes run one at a time).
	layout committed.Layout
	// carried are the files of local commits set aside because the remote
	// moved on; see pushPending. Only for the pass that set them aside.
	carried map[string]FileChange
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
	switch cfg.Role {
	case RoleBoth, RoleIssuer:
	case RoleApplier:
		if cfg.Cluster == nil {
			return nil, errors.New("reconcile: an applier needs a Cluster")
		}
	default:
		return nil, fmt.Errorf("reconcile: unknown role %q (want %s or %s, or both)", cfg.Role, RoleIssuer, RoleApplier)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.ApplyConcurrency <= 0 {
		cfg.ApplyConcurrency = DefaultApplyConcurrency
	}
	if cfg.EventsPerPass <= 0 {
		cfg.EventsPerPass = DefaultEventsPerPass
	}
	if cfg.PushAttempts <= 0 {
		cfg.PushAttempts = 10
	}
	if cfg.Agent == "" {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("reconcile: name the agent: %w", err)
		}
		cfg.Agent = "certsync-" + hex.EncodeToString(b[:])
	}
	if cfg.PollsPerPass <= 0 {
		cfg.PollsPerPass = DefaultPollsPerPass
	}
	if cfg.ClaimTTL <= 0 {
		cfg.ClaimTTL = 10 * time.Minute
	}
	if cfg.VerifyPerPass == 0 {
		cfg.VerifyPerPass = DefaultVerifyPerPass
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	failures, windows := map[string]Failure{}, map[string]Window{}
	maps.Copy(failures, cfg.Failures)
	maps.Copy(windows, cfg.Windows)
	return &Reconciler{cfg: cfg, log: log, failures: failures, windows: windows}, nil
}

// Options change one pass.
type Options struct {
	// DryRun plans and reports without ordering, committing, pushing or
	// applying: it writes nothing anywhere.
	DryRun bool
	// Drain, once closed, stops the pass from starting new orders: orders
	// in flight finish and what finished is committed and pushed (the
	// agent closes it on SIGTERM). Nil never drains.
	Drain <-chan struct{}
}

// Result is what a pass did.
type Result struct {
	// Head is the commit the pass planned on; Commit the last one it
	// pushed ("" when it changed nothing in Git).
	Head, Commit string
	// Pushes counts the pushes of the pass (one per batch).
	Pushes int
	Plan   Plan
	Issued []Issued
	// Failed counts orders that failed (their errors are in Problems);
	// Interrupted those not started or abandoned because the pass was
	// stopped, which the next pass orders.
	Failed, Interrupted int
	// Reused counts certificates ordered by an earlier pass whose commit
	// never reached the remote, committed now instead of ordered again.
	Reused int
	// FailedRenewals counts the failed orders that were to replace a
	// committed certificate (Renew, Reissue); Failed includes them.
	FailedRenewals int
	// PushRaces counts pushes rejected because the remote branch had
	// moved (another writer); each was followed by a fetch and a re-plan.
	// A few are normal with several agents; a steady stream means they
	// keep colliding.
	PushRaces int
	Applied   []string // "namespace/name" of Secrets applied
	Pruned    []string // paths and Secrets removed
	// ApplyErrors and PruneErrors count the Secrets that could not be
	// applied (or decrypted to be applied) and removed from the cluster;
	// their errors are in Problems.
	ApplyErrors, PruneErrors int
	// Events counts the Kubernetes Events the pass recorded, summarised
	// and could not record (Config.EventsPerPass).
	Events EventCounts
	// Git and APIServer tell whether the pass got through to the Git
	// remote (its fetch and pushes) and to the Kubernetes API server (its
	// list of certsync's Secrets): what an "unreachable" alert needs, as
	// the pass's error alone does not say which one failed.
	Git, APIServer Reach
	// Failures is the order backoff state after the pass, by certificate
	// key ("namespace/name"): which certificates keep failing, and how
	// often in a row.
	Failures map[string]Failure
	// Problems are soft errors: bad declarations, failed orders, Secrets
	// that could not be decrypted or applied. The pass carried on past them.
	Problems []error
	// Certificates are the valid declarations, for status tables.
	Certificates []declared.Certificate
	Records      map[string]committed.Certificate
	// Verified tells, by path, which committed files were decrypted and
	// checked against their MAC; false means "not checked": no key, or
	// not reached yet (Config.VerifyPerPass).
	Verified map[string]bool
	// Decrypted counts the committed files this pass decrypted to verify
	// them; files verified by an earlier pass or process are not.
	Decrypted int

	cluster  string
	targets  map[string][]string
	deleted  []string        // paths whose deletion was pushed
	restored map[string]bool // "namespace/name" applied before ordering
	events   *eventLog       // the pass's Event budget; see events.go
}

// ClusterName is the cluster the pass worked for.
func (r *Result) ClusterName() string { return r.cluster }

// Clusters are the clusters that receive c (certsync.yaml and its
// annotations), sorted.
func (r *Result) Clusters(c *declared.Certificate) []string {
	if t, ok := r.targets[c.Key()]; ok {
		return t
	}
	return []string{r.cluster}
}

// Current returns the committed copy that stands for c after the pass:
// the newest sound one among the clusters that receive c, as the planner
// chose it. path is "" when nothing is committed.
func (r *Result) Current(c *declared.Certificate) (path string, rec committed.Certificate, ok bool) {
	s := State{Cluster: r.cluster, Targets: r.targets, Committed: r.Records}
	paths, _ := s.secretPaths(c)
	path = s.source(paths)
	rec, ok = r.Records[path]
	if !ok {
		return "", rec, false
	}
	return path, rec, true
}

// Reach is what a pass learnt about a remote: whether its requests got
// through. The last request of the pass decides, so a remote that came
// back during the pass counts as reached.
type Reach int8

const (
	// NotTried: the pass made no request to it (it stopped earlier, or
	// runs without a cluster). It says nothing about the remote.
	NotTried Reach = iota
	// Reached: the remote answered. A push that lost a race counts: the
	// remote answered, another writer was simply first.
	Reached
	// Unreachable: a request failed (down, timed out, refused the
	// credentials), other than because the pass was being stopped.
	Unreachable
)

// note records the outcome of one request to the remote. A request that
// failed because ctx ended (shutdown, lost leadership) says nothing about
// the remote and leaves the state as it was.
func (s *Reach) note(ctx context.Context, err error) {
	switch {
	case err == nil || errors.Is(err, ErrPushRace):
		*s = Reached
	case ctx.Err() == nil:
		*s = Unreachable
	}
}

// Issued describes one certificate ordered and committed by the pass.
type Issued struct {
	Kind        ActionKind
	Certificate string
	Path        string
	Serial      string
	NotAfter    time.Time
	Reason      string
	// Copies are the files of the other clusters that received it.
	Copies []string
}

// Reconcile runs one pass. A returned error means the pass could not do its
// job at all (Git unreachable, no .sops.yaml); problems with individual
// certificates are in Result.Problems and do not stop the others.
func (r *Reconciler) Reconcile(ctx context.Context, opts Options) (*Result, error) {
	res := &Result{cluster: r.cfg.ClusterName}
	// Whichever way the pass ends, it reports the backoff state it leaves.
	defer func() { res.Failures = r.failureSnapshot() }()
	if !opts.DryRun {
		if err := r.pushPending(ctx, res); err != nil {
			return res, err
		}
	}
	defer r.forgetCarried()
	tree, err := r.cfg.Repo.Fetch(ctx)
	res.Git.note(ctx, err)
	if err != nil {
		return res, fmt.Errorf("fetch repository: %w", err)
	}
	// The cluster is listed while the tree is read: the API server's work
	// (10,000 Secrets' metadata for a new process) overlaps the parsing.
	observed := r.observeAsync(ctx)
	st, err := r.readStateAwaiting(ctx, tree, observed)
	_, oerr := observed()
	if r.cfg.Cluster != nil {
		res.APIServer.note(ctx, oerr)
	}
	if oerr != nil {
		return res, oerr
	}
	if err != nil {
		return res, err
	}
	res.Head, res.Certificates, res.Records, res.Verified = tree.Commit(), st.state.Certificates, st.state.Committed, st.verified
	res.targets = st.state.Targets
	for _, p := range st.set.Problems {
		res.Problems = append(res.Problems, p)
	}
	res.Problems = append(res.Problems, st.problems...)
	if !opts.DryRun {
		r.pollWindows(ctx, st)
	}
	st.state.Windows = r.windowsFor(st.state.Committed)
	res.Plan = r.calculate(ctx, st, !opts.DryRun)
	if !opts.DryRun && r.verifyActedOn(ctx, st, res.Plan) {
		res.Plan = r.calculate(ctx, st, true) // repair what failed instead
	}
	res.Decrypted = st.decrypted
	st.lastPlan = res.Plan
	for _, w := range res.Plan.Warnings {
		r.log.Warn(w)
	}
	stale := r.staleOwnClaim(st, res.Plan)
	if opts.DryRun || (!res.Plan.HasChanges() && stale == nil) {
		if !res.Plan.HasChanges() && stale == nil {
			r.keepIdle(st) // the next pass on this head reads nothing again
		}
		return res, nil
	}

	// However the pass ends from here, the Events it set aside are
	// summarised and counted.
	defer r.flushEvents(ctx, res)
	r.restoreCommitted(ctx, st, res)
	w := r.newWriter(st, res)
	if stale != nil {
		if err := w.add(ctx, stale, "", nil, nil, false); err != nil {
			res.Problems = append(res.Problems, err)
		}
	}
	orders := r.order(ctx, opts.Drain, st, res.Plan, w)
	res.Problems = append(res.Problems, orders.problems...)
	res.Failed, res.Interrupted, res.Reused = len(orders.failed), orders.interrupted, orders.reused
	for _, a := range orders.failed {
		if a.Kind != Issue {
			res.FailedRenewals++
		}
	}
	if err := w.flush(ctx); err != nil {
		return res, err
	}
	r.applyPlanned(ctx, w.p, res, orders.failed)
	return res, nil
}

// pushPending publishes commits left by a pass whose push failed (the
// remote was away) or by a process that stopped before pushing. When the
// remote moved on meanwhile (another writer, a force-push), the local
// commits are set aside and the certificates they hold are carried into
// this pass: reused while still valid, never ordered again.
func (r *Reconciler) pushPending(ctx context.Context, res *Result) error {
	n, err := r.cfg.Repo.Pending(ctx)
	if err != nil || n == 0 {
		return err
	}
	r.log.Info("pushing commits left by an earlier pass", "commits", n)
	err = r.cfg.Repo.Push(ctx)
	res.Git.note(ctx, err)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, ErrPushRace):
		return fmt.Errorf("push commits left by an earlier pass: %w", err)
	}
	res.PushRaces++
	changes, err := r.cfg.Repo.PendingChanges(ctx)
	if err != nil {
		return fmt.Errorf("read commits left by an earlier pass: %w", err)
	}
	remote, err := r.cfg.Repo.Fetch(ctx)
	res.Git.note(ctx, err)
	if err != nil {
		return fmt.Errorf("fetch repository: %w", err)
	}
	r.mu.Lock()
	r.carried = map[string]FileChange{}
	for _, ch := range changes {
		if !ch.Delete {
			r.carried[ch.Path] = ch
		}
	}
	r.mu.Unlock()
	r.log.Warn("local commits no longer fit the remote branch (it moved or was rewritten); planning on the remote head and reusing the certificates they hold", "commits", n, "files", len(changes))
	return r.cfg.Repo.Reset(ctx, remote)
}

// staleOwnClaim removes this agent's claim when the plan orders nothing
// and none of its certificates is still waiting: it is what a crash
// between the last push and the claim's release left. A claim on
// certificates that failed is left to lapse (see releaseClaim).
func (r *Reconciler) staleOwnClaim(p *pass, plan Plan) []FileChange {
	if r.cfg.NoClaims {
		return nil
	}
	own := committed.ClaimPath(r.cfg.Agent)
	cl, held := p.claims[own]
	if !held {
		return nil
	}
	for _, a := range plan.Actions {
		if a.Kind.Orders() || (a.Kind == Wait && slices.Contains(cl.Certificates, a.Path)) {
			return nil // a new claim replaces it, or it still holds a failure
		}
	}
	return []FileChange{{Path: own, Delete: true}}
}

// carriedFile returns a file a set-aside local commit held.
func (r *Reconciler) carriedFile(path string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch, ok := r.carried[path]
	return ch.Content, ok
}

// carriedAccounts returns the ACME account key files set-aside local
// commits held.
func (r *Reconciler) carriedAccounts() []FileChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []FileChange
	for path, ch := range r.carried {
		if strings.HasPrefix(path, committed.AccountsDir) {
			out = append(out, ch)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (r *Reconciler) forgetCarried() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.carried = nil
}

// observeAsync starts observe and returns what waits for its result.
func (r *Reconciler) observeAsync(ctx context.Context) func() ([]ObservedSecret, error) {
	done := make(chan struct{})
	var secrets []ObservedSecret
	var err error
	go func() {
		defer close(done)
		secrets, err = r.observe(ctx)
	}()
	return func() ([]ObservedSecret, error) {
		<-done
		return secrets, err
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

// recordFailure and clearFailure keep the backoff state of orders. The
// fingerprint ties the failure to the declaration and issuer it was made
// for; permanent errors (issuer.ErrPermanent, declared.ErrInvalid) wait
// for a change, transient ones for a timer.
func (r *Reconciler) recordFailure(key, fingerprint string, now time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.failures[key]
	if f.Fingerprint != fingerprint {
		f = Failure{} // a new declaration starts a new count
	}
	f.Count++
	f.Last, f.Err, f.Fingerprint = now, err.Error(), fingerprint
	f.Permanent = errors.Is(err, issuer.ErrPermanent) || errors.Is(err, declared.ErrInvalid) || errors.Is(err, declared.ErrUnknownIssuer)
	f.RetryAfter = time.Time{}
	var ra *issuer.RetryAfterError
	if errors.As(err, &ra) {
		f.RetryAfter, f.Permanent = ra.RetryAfter, false
	}
	r.failures[key] = f
}

// ClearFailures forgets the backoff of the given certificates (all when
// keys is empty), so their next pass orders at once.
func (r *Reconciler) ClearFailures(keys ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(keys) == 0 {
		clear(r.failures)
		return
	}
	for _, k := range keys {
		delete(r.failures, k)
	}
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
	return maps.Clone(r.failures)
}
