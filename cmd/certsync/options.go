package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/certsync/certsync/cluster"
	"github.com/certsync/certsync/reconcile"
)

// options are the settings of one certsync invocation. Every flag can also
// be set through the environment as CERTSYNC_<FLAG> (dashes become
// underscores), which is how a Deployment configures it; defaultOptions
// holds the defaults.
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
	// Namespaces are where the agent lists and prunes its Secrets; nil
	// means all namespaces.
	Namespaces []string
	// watchCluster: the agent keeps a watch on its Secrets between passes
	// (certsync run), instead of listing them each pass.
	watchCluster          bool
	NoApply               bool
	SigningKeyFile        string
	ProposalBranch        string
	SigningPassphraseFile string
	Role                  string

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

	Concurrency int
	// VerifyPerPass bounds the committed files a pass decrypts to verify
	// them (reconcile.Config.VerifyPerPass); a dry run verifies all.
	VerifyPerPass int
	BatchSize     int
	BatchInterval time.Duration
	DryRun        bool
	ForcePrune    bool
	MaxPruneShare float64
	Interval      time.Duration

	LogFormat, LogLevel string

	// clock replaces time.Now; only tests set it (there is no flag).
	clock func() time.Time
	// args are the command's positional arguments.
	args []string
}

// defaultOptions are the settings a command starts from: each flag shows
// its field's value here as its default, and a command without a flag
// (status has no --concurrency) still gets a sensible value.
func defaultOptions(getenv func(string) string) options {
	return options{
		Branch:                  "main",
		GitUsername:             "certsync",
		AuthorName:              "certsync",
		AuthorEmail:             "certsync@localhost",
		Kubeconfig:              getenv("KUBECONFIG"),
		Cluster:                 "default",
		Role:                    "both",
		HTTP01Addr:              ":8089",
		DNS01CheckPropagation:   true,
		DNS01PropagationTimeout: time.Minute,
		GitTimeout:              2 * time.Minute,
		ClaimTTL:                10 * time.Minute,
		Concurrency:             8,
		VerifyPerPass:           reconcile.DefaultVerifyPerPass,
		BatchSize:               50,
		BatchInterval:           30 * time.Second,
		MaxPruneShare:           0.10,
		Interval:                time.Minute,
		LogFormat:               "text",
		LogLevel:                "info",
	}
}

// The flags come in groups, and a command declares only the groups it
// uses: `certsync status --help` lists what status reads, not the 40 flags
// of the agent.

// addRepoFlags: where the repository is and how to reach it.
func addRepoFlags(fs *pflag.FlagSet, o *options) {
	fs.StringVar(&o.Repo, "repo", o.Repo, "Git URL of the repository (https://…, ssh://…, or a local path)")
	fs.StringVar(&o.Branch, "branch", o.Branch, "branch to read and write")
	fs.StringVar(&o.CacheDir, "cache-dir", o.CacheDir, "where the local clone is kept (default: $XDG_CACHE_HOME/certsync/repos/<hash of URL>)")
	fs.StringVar(&o.GitUsername, "git-username", o.GitUsername, "HTTPS username (with a token, any non-empty name)")
	fs.StringVar(&o.GitPasswordFile, "git-password-file", o.GitPasswordFile, "file holding the HTTPS password or token (or set CERTSYNC_GIT_PASSWORD / CERTSYNC_GIT_TOKEN)")
	fs.StringVar(&o.GitSSHKeyFile, "git-ssh-key-file", o.GitSSHKeyFile, "SSH private key for ssh:// URLs")
	fs.StringVar(&o.GitKnownHostsFile, "git-known-hosts-file", o.GitKnownHostsFile, "known_hosts file for SSH host verification (default ~/.ssh/known_hosts)")
	fs.BoolVar(&o.GitInsecureHostKey, "git-insecure-ignore-host-key", o.GitInsecureHostKey, "accept any SSH host key (unsafe; for testing only)")
	fs.DurationVar(&o.GitTimeout, "git-timeout", o.GitTimeout, "give up a Git fetch or push that takes longer")
}

// addCommitFlags: how certsync's commits are made.
func addCommitFlags(fs *pflag.FlagSet, o *options) {
	fs.StringVar(&o.AuthorName, "author-name", o.AuthorName, "commit author name")
	fs.StringVar(&o.AuthorEmail, "author-email", o.AuthorEmail, "commit author email")
	fs.StringVar(&o.SigningKeyFile, "signing-key-file", o.SigningKeyFile, "sign every commit with this key (armored OpenPGP or OpenSSH private key) so `git verify-commit` proves it was certsync")
	fs.StringVar(&o.SigningPassphraseFile, "signing-key-passphrase-file", o.SigningPassphraseFile, "file holding the passphrase of an encrypted --signing-key-file")
}

// addKeyFlags: the age identity that decrypts.
func addKeyFlags(fs *pflag.FlagSet, o *options) {
	fs.StringVar(&o.AgeKeyFile, "age-key-file", o.AgeKeyFile, "age identity file for decryption (default: SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, ~/.config/sops/age/keys.txt)")
}

// addClusterNameFlag: which cluster's copies a command works on.
func addClusterNameFlag(fs *pflag.FlagSet, o *options) {
	fs.StringVar(&o.Cluster, "cluster", o.Cluster, "this agent's cluster: it applies the Secrets under secrets/<cluster>/ (which clusters receive a certificate is set in the repository: certsync.yaml, certsync.io/clusters)")
}

// addClusterFlags: the cluster to apply to.
func addClusterFlags(fs *pflag.FlagSet, o *options) {
	addClusterNameFlag(fs, o)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig of the cluster to apply to (default: $KUBECONFIG; in a Pod, the Pod's ServiceAccount)")
	fs.StringVar(&o.KubeContext, "kube-context", o.KubeContext, "kubeconfig context")
	fs.StringSliceVar(&o.Namespaces, "namespaces", o.Namespaces, "the namespaces this agent lists and prunes its Secrets in, comma-separated (default: all); set it when its RBAC grants Secrets in these namespaces only, as the Helm chart's rbac.secretNamespaces does")
}

// addPassFlags: what a pass does, and how it orders.
func addPassFlags(fs *pflag.FlagSet, o *options) {
	fs.Var(newChoice(&o.Role, "issuer", "applier", "both"), "role", "issuer (order, encrypt, commit for every cluster; no cluster access), applier (apply --cluster's Secrets; no CA access, commits nothing) or both")
	fs.BoolVar(&o.NoApply, "no-apply", o.NoApply, "only commit to Git; never touch a cluster")
	fs.StringVar(&o.ProposalBranch, "proposal-branch", o.ProposalBranch, "push to this branch instead of --branch (a protected branch): certsync keeps it rebased on --branch for a person or a bot to merge; needs --role issuer (or --no-apply), one issuer per proposal branch")
	fs.BoolVar(&o.DryRun, "dry-run", o.DryRun, "print the plan; change nothing")
	fs.BoolVar(&o.ForcePrune, "force-prune", o.ForcePrune, "prune even when more than --max-prune-share of the Secrets would go")
	fs.Float64Var(&o.MaxPruneShare, "max-prune-share", o.MaxPruneShare, "largest share of committed Secrets pruned in one pass")
	fs.StringVar(&o.HTTP01Addr, "http01-addr", o.HTTP01Addr, "address certsync answers HTTP-01 challenges on")
	fs.StringVar(&o.DNS01Nameservers, "dns01-recursive-nameservers", o.DNS01Nameservers, "comma-separated host:port resolvers for DNS-01 propagation checks")
	fs.BoolVar(&o.DNS01CheckPropagation, "dns01-check-propagation", o.DNS01CheckPropagation, "wait until DNS-01 records are visible before asking the CA to validate")
	fs.DurationVar(&o.DNS01PropagationTimeout, "dns01-propagation-timeout", o.DNS01PropagationTimeout, "give up waiting for a DNS-01 TXT record to become visible after this long")
	fs.StringVar(&o.DNS01AllowProviders, "dns01-allow-providers", o.DNS01AllowProviders, "comma-separated lego DNS providers a webhook solver (solverName) may name; each is configured from this process's environment and runs with its credentials (e.g. exec, httpreq)")
	fs.StringVar(&o.ACMECAFile, "acme-ca-file", o.ACMECAFile, "PEM file of extra CAs to trust for the ACME server (private CAs)")
	fs.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "orders in flight at once")
	fs.IntVar(&o.VerifyPerPass, "verify-per-pass", o.VerifyPerPass, "committed files not verified yet that a pass decrypts to check them against their MAC, so a new agent plans at once (files a pass acts on are always checked; -1: all at once)")
	fs.IntVar(&o.BatchSize, "batch-size", o.BatchSize, "push issued certificates in batches of this many (each is committed locally at once)")
	fs.DurationVar(&o.BatchInterval, "batch-interval", o.BatchInterval, "push issued certificates at least this often while a pass orders")
	fs.StringVar(&o.AgentID, "agent-id", o.AgentID, "this agent's name in the order claims it commits so several agents never order one certificate twice; must differ between agents and stay the same across restarts (default: host name and a digest of --cache-dir)")
	fs.DurationVar(&o.ClaimTTL, "claim-ttl", o.ClaimTTL, "how long an order claim keeps other agents from ordering the claimed certificates if this agent dies (it is renewed while ordering)")
}

// addIntervalFlag: how often a long-running command looks again.
func addIntervalFlag(fs *pflag.FlagSet, o *options, usage string) {
	fs.DurationVar(&o.Interval, "interval", o.Interval, usage)
}

// addLogFlags: the log every command writes to stderr.
func addLogFlags(fs *pflag.FlagSet, o *options) {
	fs.Var(newChoice(&o.LogFormat, "text", "json"), "log-format", "text or json")
	fs.Var(newChoice(&o.LogLevel, "debug", "info", "warn", "error"), "log-level", "debug, info, warn or error")
}

// applyEnvironment sets every flag not given on the command line from
// CERTSYNC_<FLAG>, with the flag's own parser: a value that does not parse
// (CERTSYNC_CONCURRENCY=abc, CERTSYNC_INTERVAL=5) stops the command
// instead of silently meaning the default, and booleans read as the
// command line reads them (True, 1, false, …).
func applyEnvironment(fs *pflag.FlagSet, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" && !f.Changed {
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

// choice is a string flag with a fixed set of values, refused at parse
// time (from the command line or CERTSYNC_<FLAG>) with the list.
type choice struct {
	value   *string
	allowed []string
}

func newChoice(p *string, allowed ...string) *choice { return &choice{value: p, allowed: allowed} }

func (c *choice) String() string { return *c.value }
func (c *choice) Type() string   { return "string" }
func (c *choice) Set(s string) error {
	if !slices.Contains(c.allowed, s) {
		return fmt.Errorf("want %s", orList(c.allowed))
	}
	*c.value = s
	return nil
}

// orList is "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
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
