// Command certsync keeps the certificates declared in a Git repository
// issued, encrypted in that repository, and applied to a cluster.
//
//	certsync reconcile --repo URL [--branch main] [--kubeconfig FILE]   one pass
//	certsync run --repo URL ...                                         the agent
//	certsync status --repo URL                                          a table, from Git alone
//	certsync renew NAME | --all | -l key=value                          an audited renewal request
//	certsync restore --cluster NAME --kubeconfig FILE                   a rebuilt cluster, from Git alone
//	certsync export NAMESPACE/NAME --out DIR [--watch]                  PEM files for what runs outside Kubernetes
//	certsync validate [DIR...]                                          offline checks for pull requests
//	certsync plan [DIR] [-o markdown]                                   what a pass would do, and why
//	certsync version
//
// Every flag can be set as CERTSYNC_<FLAG> in the environment. Run
// `certsync COMMAND --help` for a command's flags and examples; cli.go
// builds the command tree (cobra), exit statuses included.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/certsync/certsync/cluster"
	"github.com/certsync/certsync/encrypt"
	"github.com/certsync/certsync/gitsrc"
	"github.com/certsync/certsync/internal/recordstore"
	"github.com/certsync/certsync/internal/verifystore"
	"github.com/certsync/certsync/issuer/acme"
	"github.com/certsync/certsync/reconcile"
)

var version = "dev"

// oneShotGrace is how long `certsync reconcile` lets orders in flight
// finish and be pushed after SIGTERM (the agent uses --shutdown-grace).
const oneShotGrace = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func (c *cli) reconcileCommand() *cobra.Command {
	o := defaultOptions(c.getenv)
	cmd := &cobra.Command{
		Use:   "reconcile --repo URL",
		Short: "Run one pass: order what is due, commit and push it, apply to the cluster",
		Long: `Run one pass and exit: read the repository, order or renew what is due,
commit the certificates SOPS-encrypted and push them, then apply this
cluster's Secrets and prune those no longer declared. On SIGTERM no new
order starts; orders in flight finish and are pushed (for up to 30s).

Memory: as for certsync run, without GOMEMLIMIT the Go runtime's soft limit
is 160 MiB (GOMEMLIMIT=off for none); without GOGC the collector runs when
the heap grew by 60% (GOGC=100 is Go's default), which keeps the pass's peak
down for a little CPU.`,
		Example: examples(
			"certsync reconcile --repo https://git.example.com/platform/certs.git --git-password-file /etc/certsync/token",
			"certsync reconcile --repo ./certs --dry-run                 # the plan, nothing changed",
			"certsync reconcile --repo ssh://git@host/certs.git --role issuer   # order and commit, no cluster",
		),
		Args: noArgs("the repository is --repo"),
	}
	cmd.RunE = c.action(&o, func(ctx context.Context, o *options, log *slog.Logger) int {
		// A one-shot pass (a CronJob, a CI step) holds what the daemon's
		// first pass does: the same memory limit, and the binary's
		// start-up pages handed back before it (see settle).
		limitMemory(log)
		collectSooner(log)
		settle(log)
		res, err := reconcileOnce(ctx, o, c.getenv, log)
		if res != nil {
			printResult(c.stdout, res, o.DryRun, err)
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "certsync: %v\n", err)
			return exitFail
		}
		return reportProblems(c.stderr, res.Problems, "the other certificates were handled")
	})
	addAgentFlags(cmd, &o)
	return cmd
}

// addAgentFlags are the flags of reconcile and run.
func addAgentFlags(cmd *cobra.Command, o *options) {
	fs := cmd.Flags()
	addRepoFlags(fs, o)
	addCommitFlags(fs, o)
	addKeyFlags(fs, o)
	addClusterFlags(fs, o)
	addPassFlags(fs, o)
	cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{"issuer", "applier", "both"}, cobra.ShellCompDirectiveNoFileComp))
}

// reportProblems lists a pass's soft errors and returns the exit status:
// 1 when there were any.
func reportProblems(stderr io.Writer, problems []error, after string) int {
	if len(problems) == 0 {
		return exitOK
	}
	fmt.Fprintf(stderr, "\ncertsync: %d %s; %s:\n", len(problems), plural(len(problems), "problem"), after)
	for _, p := range problems {
		fmt.Fprintf(stderr, "  - %v\n", p)
	}
	return exitFail
}

// reconcileOnce builds everything one pass needs from the options and runs it.
func reconcileOnce(ctx context.Context, o *options, getenv func(string) string, log *slog.Logger) (*reconcile.Result, error) {
	rec, cleanup, err := build(ctx, o, getenv, log)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	// On SIGTERM/SIGINT no new order starts; orders in flight finish and
	// what finished is committed and pushed, for at most oneShotGrace.
	passCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(oneShotGrace, cancel) })
	defer stopGrace()
	res, err := rec.Reconcile(passCtx, reconcile.Options{DryRun: o.DryRun, Drain: ctx.Done()})
	if !o.DryRun {
		if serr := saveAgentState(o.stateDir(), rec); serr != nil {
			log.Warn("agent state (backoff, renewal windows) not saved; a restart may repeat some work", "error", serr)
		}
	}
	return res, err
}

// build wires the reconciler: Git, SOPS, ACME (with the HTTP-01 listener)
// and, when configured, the cluster. cleanup stops the listener.
func build(ctx context.Context, o *options, getenv func(string) string, log *slog.Logger) (*reconcile.Reconciler, func(), error) {
	noop := func() {}
	if o.Repo == "" {
		return nil, noop, errors.New("--repo (or CERTSYNC_REPO) is required: the Git URL of the repository holding the Certificates")
	}
	identities, err := ageIdentities(o, getenv)
	if err != nil {
		return nil, noop, err
	}
	repo, err := openRepo(ctx, o, getenv, log)
	if err != nil {
		return nil, noop, err
	}
	var extraRoots []byte
	if o.ACMECAFile != "" {
		if extraRoots, err = os.ReadFile(o.ACMECAFile); err != nil {
			return nil, noop, fmt.Errorf("read --acme-ca-file: %w", err)
		}
	}
	// The HTTP-01 listener opens before the first HTTP-01 order: a pass
	// with nothing due, or ordering through DNS-01 only, binds no port.
	http01 := &http01Listener{addr: o.HTTP01Addr, log: log}
	http01.solver = acme.NewHTTP01Solver(http01.listen)
	cleanup := http01.stop
	dns := acme.DNS01Options{CheckPropagation: o.DNS01CheckPropagation, PropagationTimeout: o.DNS01PropagationTimeout}
	if o.DNS01Nameservers != "" {
		dns.RecursiveNameservers = strings.Split(o.DNS01Nameservers, ",")
	}
	failures, err := loadFailures(o.stateDir())
	if err != nil {
		cleanup()
		return nil, noop, err
	}
	windows, err := loadWindows(o.stateDir())
	if err != nil {
		cleanup()
		return nil, noop, err
	}
	role, err := o.role()
	if err != nil {
		cleanup()
		return nil, noop, err
	}
	if o.ProposalBranch != "" && role != reconcile.RoleIssuer && !o.NoApply {
		cleanup()
		return nil, noop, errors.New("--proposal-branch needs --role issuer (or --no-apply): a cluster must only get what was merged into --branch; run appliers on --branch")
	}
	cfg := reconcile.Config{
		Role:        role,
		NoClaims:    o.ProposalBranch != "",
		Batching:    reconcile.Batching{Size: o.BatchSize, Interval: o.BatchInterval},
		Agent:       o.agentID(),
		ClaimTTL:    o.ClaimTTL,
		Failures:    failures,
		Windows:     windows,
		Repo:        repo,
		Encryption:  encrypterFactory(identities, log),
		Issuers:     issuerFactory(http01, dns, o.dns01AllowedProviders(), extraRoots, log),
		Clock:       o.clock,
		ClusterName: o.Cluster,
		Concurrency: o.Concurrency,
		Policy:      reconcile.Policy{MaxPruneShare: o.MaxPruneShare, ForcePrune: o.ForcePrune},
		Logger:      log,
		// With a key, every committed file is checked once against its
		// MAC, remembered next to the clone; a dry run (status too) checks
		// every file before it reports.
		VerifyCommitted: len(identities) > 0,
		VerifyPerPass:   o.VerifyPerPass,
		VerifiedStore:   verifiedStore(o.cacheDir(), identities, log),
		// What was read from the committed files, next to the clone: a
		// new process reads only the files that changed since.
		RecordStore: recordstore.New(filepath.Join(o.cacheDir(), recordStoreFile)),
	}
	if o.DryRun {
		cfg.VerifyPerPass = -1
	}
	wantCluster := !o.NoApply && (o.Kubeconfig != "" || getenv("KUBERNETES_SERVICE_HOST") != "")
	switch {
	case role == reconcile.RoleIssuer:
		wantCluster = false // an issuer never touches a cluster
	case role == reconcile.RoleApplier && !wantCluster:
		cleanup()
		return nil, noop, errors.New("--role applier needs a cluster: give --kubeconfig (or run in a Pod), and leave out --no-apply")
	}
	if wantCluster {
		c, err := cluster.NewFromKubeconfig(o.Kubeconfig, o.KubeContext, o.owner())
		if err != nil {
			cleanup()
			return nil, noop, fmt.Errorf("connect to the cluster: %w", err)
		}
		if o.watchCluster {
			c.Watch(ctx, o.Namespaces) // until ctx ends: this build's passes
		}
		saveSeen, stop := primeSeen(ctx, c, o.cacheDir(), log), cleanup
		cleanup = func() { saveSeen(); stop() }
		cfg.Cluster = clusterApplier{c: c, namespaces: o.Namespaces}
	}
	rec, err := reconcile.New(cfg)
	if err != nil {
		cleanup()
		return nil, noop, err
	}
	return rec, cleanup, nil
}

// openRepo opens (clones or reuses) the repository of o.
func openRepo(ctx context.Context, o *options, getenv func(string) string, log *slog.Logger) (gitRepository, error) {
	if o.Repo == "" {
		return gitRepository{}, errors.New("--repo (or CERTSYNC_REPO) is required: the Git URL of the repository holding the Certificates")
	}
	auth, err := gitAuth(o, getenv)
	if err != nil {
		return gitRepository{}, err
	}
	signer, err := commitSigner(o)
	if err != nil {
		return gitRepository{}, err
	}
	repo, err := gitsrc.Open(ctx, gitsrc.Options{
		URL: o.Repo, Branch: o.Branch, ProposalBranch: o.ProposalBranch, Dir: o.cacheDir(), Auth: auth, Timeout: o.GitTimeout,
		Author: gitsrc.Signature{Name: o.AuthorName, Email: o.AuthorEmail}, Signer: signer, Logger: log,
	})
	if err != nil {
		return gitRepository{}, fmt.Errorf("open repository %s: %w", redactURL(o.Repo), err)
	}
	return gitRepository{repo}, nil
}

// commitSigner reads --signing-key-file; nil when commits are not signed.
func commitSigner(o *options) (gitsrc.CommitSigner, error) {
	if o.SigningKeyFile == "" {
		return nil, nil
	}
	key, err := os.ReadFile(o.SigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("read --signing-key-file: %w", err)
	}
	var passphrase []byte
	if o.SigningPassphraseFile != "" {
		if passphrase, err = os.ReadFile(o.SigningPassphraseFile); err != nil {
			return nil, fmt.Errorf("read --signing-key-passphrase-file: %w", err)
		}
		passphrase = []byte(strings.TrimRight(string(passphrase), "\r\n"))
	}
	s, err := gitsrc.NewCommitSigner(key, passphrase)
	if err != nil {
		return nil, fmt.Errorf("--signing-key-file %s: %w", o.SigningKeyFile, err)
	}
	return s, nil
}

// http01Listener serves HTTP-01 challenges for every issuer once one needs
// it, and keeps serving until stop.
type http01Listener struct {
	addr   string
	solver *acme.HTTP01Solver
	log    *slog.Logger

	once     sync.Once
	err      error
	shutdown func()
}

// listen opens the listener on first use; the solver calls it before
// each HTTP-01 order.
func (h *http01Listener) listen() error {
	h.once.Do(func() { h.shutdown, h.err = serveHTTP01(h.addr, h.solver, h.log) })
	return h.err
}

func (h *http01Listener) stop() {
	if h.shutdown != nil {
		h.shutdown()
	}
}

// serveHTTP01 answers ACME HTTP-01 challenges on addr for every issuer.
func serveHTTP01(addr string, h http.Handler, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for HTTP-01 challenges on %s: %w (set --http01-addr to a free address that the CA reaches on port 80)", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP-01 server stopped", "error", err)
		}
	}()
	log.Debug("answering HTTP-01 challenges", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// verifiedStoreFile is where verification results are kept, in the
// clone's folder: they are only worth what the clone is (gitsrc keeps its
// certsync_remote_heads there too).
const verifiedStoreFile = "certsync_verified"

// recordStoreFile keeps the records read from the committed files (see
// internal/recordstore), in the clone's folder too.
const recordStoreFile = "certsync_records"

// verifiedStore keeps what the agent verified in its cache folder, scoped
// to the recipients of its identities. nil (verified again by each
// process) without identities, or when one of them has no recipient to
// scope the results by.
func verifiedStore(cacheDir string, identities []byte, log *slog.Logger) reconcile.VerifiedStore {
	if len(identities) == 0 {
		return nil
	}
	ids, err := age.ParseIdentities(bytes.NewReader(identities))
	if err != nil {
		log.Debug("verification results are not kept across runs: the identities are not all age identities", "error", err)
		return nil
	}
	var recipients []string
	for _, id := range ids {
		switch id := id.(type) {
		case *age.X25519Identity:
			recipients = append(recipients, id.Recipient().String())
		case *age.HybridIdentity:
			recipients = append(recipients, id.Recipient().String())
		default:
			log.Debug("verification results are not kept across runs: an identity has no recipient to scope them by", "type", fmt.Sprintf("%T", id))
			return nil
		}
	}
	return verifystore.New(filepath.Join(cacheDir, verifiedStoreFile), recipients)
}

func ageIdentities(o *options, getenv func(string) string) ([]byte, error) {
	if o.AgeKeyFile != "" {
		b, err := os.ReadFile(o.AgeKeyFile)
		if err != nil {
			return nil, fmt.Errorf("read --age-key-file: %w", err)
		}
		return b, nil
	}
	return encrypt.IdentitiesFromEnv(getenv)
}

// newLogger writes o's log to w (--log-format and --log-level were checked
// when parsed).
func newLogger(o *options, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.LogLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch o.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", o.LogFormat)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
