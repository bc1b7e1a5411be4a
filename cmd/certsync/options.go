package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certsync/certsync/cluster"
	"github.com/certsync/certsync/reconcile"
)

// options are the settings of one certsync invocation. Every flag can also
// be set through the environment as CERTSYNC_<FLAG> (dashes become
// underscores), which is how a Deployment configures it.
type options struct {
	Repo, Branch, CacheDir string
	GitUsername            string
	GitPasswordFile        string // or CERTSYNC_GIT_PASSWORD / CERTSYNC_GIT_TOKEN
	GitSSHKeyFile          string
	GitKnownHostsFile      string
	GitInsecureHostKey     bool
	AuthorName             string
	AuthorEmail            string

	Kubeconfig, KubeContext string
	NoApply                 bool
	SigningKeyFile          string
	ProposalBranch          string
	SigningPassphraseFile   string
	Role                    string

	AgeKeyFile string
	Cluster    string

	HTTP01Addr            string
	DNS01Nameservers      string
	DNS01CheckPropagation bool
	// DNS01AllowProviders are the lego DNS providers (comma-separated) a
	// webhook solver of the repository may name; configured from the
	// agent's environment. Default: none.
	DNS01AllowProviders string
	// DNS01PropagationTimeout bounds the wait for a TXT record to be
	// visible; GitTimeout each fetch and push.
	DNS01PropagationTimeout time.Duration
	GitTimeout              time.Duration
	ACMECAFile              string

	// AgentID names this agent in its order claims; ClaimTTL is how long
	// a claim holds other agents off.
	AgentID  string
	ClaimTTL time.Duration

	Concurrency   int
	BatchSize     int
	BatchInterval time.Duration
	DryRun        bool
	Once          bool
	ForcePrune    bool
	MaxPruneShare float64
	Interval      time.Duration

	LogFormat, LogLevel string

	// clock replaces time.Now; only tests set it (there is no flag).
	clock func() time.Time
	// args are the positional arguments after the flags.
	args []string
}

// newFlagSet declares the flags of a command; env supplies defaults.
func newFlagSet(name string, o *options, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	str := func(p *string, flagName, def, usage string) {
		fs.StringVar(p, flagName, envOr(getenv, flagName, def), usage)
	}
	duration := func(p *time.Duration, flagName string, def time.Duration, usage string) {
		d := def
		if v := envOr(getenv, flagName, ""); v != "" {
			if parsed, err := time.ParseDuration(v); err == nil {
				d = parsed
			}
		}
		fs.DurationVar(p, flagName, d, usage)
	}
	boolean := func(p *bool, flagName string, def bool, usage string) {
		v := envOr(getenv, flagName, fmt.Sprint(def))
		fs.BoolVar(p, flagName, v == "true" || v == "1", usage)
	}
	str(&o.Repo, "repo", "", "Git URL of the repository (https://…, ssh://…, or a local path)")
	str(&o.Branch, "branch", "main", "branch to read and write")
	str(&o.ProposalBranch, "proposal-branch", "", "push to this branch instead of --branch (a protected branch): certsync keeps it rebased on --branch for a person or a bot to merge; needs --role issuer (or --no-apply), one issuer per proposal branch")
	str(&o.CacheDir, "cache-dir", "", "where the local clone is kept (default: $XDG_CACHE_HOME/certsync/repos/<hash of URL>)")
	str(&o.GitUsername, "git-username", "certsync", "HTTPS username (with a token, any non-empty name)")
	str(&o.GitPasswordFile, "git-password-file", "", "file holding the HTTPS password or token (or set CERTSYNC_GIT_PASSWORD / CERTSYNC_GIT_TOKEN)")
	str(&o.GitSSHKeyFile, "git-ssh-key-file", "", "SSH private key for ssh:// URLs")
	str(&o.GitKnownHostsFile, "git-known-hosts-file", "", "known_hosts file for SSH host verification (default ~/.ssh/known_hosts)")
	boolean(&o.GitInsecureHostKey, "git-insecure-ignore-host-key", false, "accept any SSH host key (unsafe; for testing only)")
	str(&o.AuthorName, "author-name", "certsync", "commit author name")
	str(&o.SigningKeyFile, "signing-key-file", "", "sign every commit with this key (armored OpenPGP or OpenSSH private key) so `git verify-commit` proves it was certsync")
	str(&o.SigningPassphraseFile, "signing-key-passphrase-file", "", "file holding the passphrase of an encrypted --signing-key-file")
	str(&o.AuthorEmail, "author-email", "certsync@localhost", "commit author email")
	str(&o.Kubeconfig, "kubeconfig", getenv("KUBECONFIG"), "kubeconfig of the cluster to apply to (default: in-cluster when running in a Pod)")
	str(&o.KubeContext, "kube-context", "", "kubeconfig context")
	boolean(&o.NoApply, "no-apply", false, "only commit to Git; never touch a cluster")
	str(&o.AgeKeyFile, "age-key-file", "", "age identity file for decryption (default: SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, ~/.config/sops/age/keys.txt)")
	str(&o.Cluster, "cluster", "default", "this agent's cluster: it applies the Secrets under secrets/<cluster>/ (which clusters receive a certificate is set in the repository: certsync.yaml, certsync.io/clusters)")
	str(&o.Role, "role", "both", "issuer (order, encrypt, commit for every cluster; no cluster access), applier (apply --cluster's Secrets; no CA access, commits nothing) or both")
	str(&o.HTTP01Addr, "http01-addr", ":8089", "address certsync answers HTTP-01 challenges on")
	str(&o.DNS01Nameservers, "dns01-recursive-nameservers", "", "comma-separated host:port resolvers for DNS-01 propagation checks")
	boolean(&o.DNS01CheckPropagation, "dns01-check-propagation", true, "wait until DNS-01 records are visible before asking the CA to validate")
	str(&o.DNS01AllowProviders, "dns01-allow-providers", "", "comma-separated lego DNS providers a webhook solver (solverName) may name; each is configured from this process's environment and runs with its credentials (e.g. exec, httpreq)")
	str(&o.ACMECAFile, "acme-ca-file", "", "PEM file of extra CAs to trust for the ACME server (private CAs)")
	fs.IntVar(&o.Concurrency, "concurrency", atoi(envOr(getenv, "concurrency", "8")), "orders in flight at once")
	fs.IntVar(&o.BatchSize, "batch-size", atoi(envOr(getenv, "batch-size", "50")), "push issued certificates in batches of this many (each is committed locally at once)")
	duration(&o.BatchInterval, "batch-interval", 30*time.Second, "push issued certificates at least this often while a pass orders")
	str(&o.AgentID, "agent-id", "", "this agent's name in the order claims it commits so several agents never order one certificate twice; must differ between agents and stay the same across restarts (default: host name and a digest of --cache-dir)")
	duration(&o.ClaimTTL, "claim-ttl", 10*time.Minute, "how long an order claim keeps other agents from ordering the claimed certificates if this agent dies (it is renewed while ordering)")
	duration(&o.GitTimeout, "git-timeout", 2*time.Minute, "give up a Git fetch or push that takes longer")
	duration(&o.DNS01PropagationTimeout, "dns01-propagation-timeout", time.Minute, "give up waiting for a DNS-01 TXT record to become visible after this long")
	boolean(&o.DryRun, "dry-run", false, "print the plan; change nothing")
	boolean(&o.Once, "once", true, "run one pass and exit (reconcile)")
	boolean(&o.ForcePrune, "force-prune", false, "prune even when more than --max-prune-share of the Secrets would go")
	fs.Float64Var(&o.MaxPruneShare, "max-prune-share", 0.10, "largest share of committed Secrets pruned in one pass")
	duration(&o.Interval, "interval", time.Minute, "time between passes (run)")
	str(&o.LogFormat, "log-format", "text", "text or json")
	str(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	return fs
}

// applyEnvironment sets every flag not given on the command line from
// CERTSYNC_<FLAG>, with the flag's own parser: a value that does not parse
// (CERTSYNC_CONCURRENCY=abc, CERTSYNC_INTERVAL=5) stops the command
// instead of silently meaning the default, and booleans read as the
// command line reads them (True, 1, false, …).
func applyEnvironment(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" && !given[f.Name] {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q (--%s): %w", name, v, f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

func envName(flagName string) string {
	return "CERTSYNC_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func envOr(getenv func(string) string, flagName, def string) string {
	if v := getenv(envName(flagName)); v != "" {
		return v
	}
	return def
}

func atoi(s string) int {
	var n int
	fmt.Sscanf(s, "%d", &n)
	return n
}

// cacheDir is where the clone of o.Repo lives between runs.
func (o *options) cacheDir() string {
	if o.CacheDir != "" {
		return o.CacheDir
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	sum := sha256.Sum256([]byte(o.Repo + "#" + o.Branch))
	return filepath.Join(base, "certsync", "repos", hex.EncodeToString(sum[:8]))
}

// agentID is --agent-id, or a name that is stable across restarts of
// this agent and distinct between agents: two agents never share a
// clone, so the clone's directory tells them apart on one host.
func (o *options) agentID() string {
	if o.AgentID != "" {
		return o.AgentID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "certsync"
	}
	dir, err := filepath.Abs(o.cacheDir())
	if err != nil {
		dir = o.cacheDir()
	}
	sum := sha256.Sum256([]byte(dir))
	return host + "-" + hex.EncodeToString(sum[:3])
}

// owner identifies this agent to the cluster: the Secrets it may observe
// and prune are those it applied itself.
func (o *options) owner() cluster.Owner {
	return cluster.Owner{Repository: redactURL(o.Repo), Branch: o.Branch, Cluster: o.Cluster}
}

// dns01AllowedProviders splits --dns01-allow-providers.
func (o *options) dns01AllowedProviders() []string {
	var names []string
	for _, n := range strings.Split(o.DNS01AllowProviders, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// stateDir holds what the agent keeps between runs besides the clone.
func (o *options) stateDir() string { return o.cacheDir() + ".state" }

// parseCommand parses a command's flags (the shared ones, plus those extra
// declares) and builds its logger. It returns the exit status to use when
// the command must stop here: 0 after -h, 2 after a usage error.
func parseCommand(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (*options, *slog.Logger, int, bool) {
	var o options
	fs := newFlagSet(name, &o, getenv)
	if extra != nil {
		extra(fs)
	}
	fs.SetOutput(stderr)
	// Arguments may come before, between or after the flags (certsync
	// export shop/web --out DIR), as kubectl and cmctl accept them; Go's
	// flag package alone stops at the first argument. After "--" all is
	// arguments.
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, 0, false
			}
			return nil, nil, 2, false
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			o.args = append(o.args, rest...)
			break
		}
		o.args, rest = append(o.args, rest[0]), rest[1:]
	}
	if err := applyEnvironment(fs, getenv); err != nil {
		fmt.Fprintf(stderr, "certsync: %v\n", err)
		return nil, nil, 2, false
	}
	log, err := newLogger(&o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "certsync: %v\n", err)
		return nil, nil, 2, false
	}
	return &o, log, 0, true
}

// role reads --role.
func (o *options) role() (reconcile.Role, error) {
	switch o.Role {
	case "both", "":
		return reconcile.RoleBoth, nil
	case string(reconcile.RoleIssuer):
		return reconcile.RoleIssuer, nil
	case string(reconcile.RoleApplier):
		return reconcile.RoleApplier, nil
	}
	return "", fmt.Errorf("--role %q: want issuer, applier or both", o.Role)
}
