package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/spf13/cobra"

	"github.com/certsync/certsync/cluster"
	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/reconcile"
	"github.com/certsync/certsync/restore"
	"github.com/certsync/certsync/settings"
)

func (c *cli) restoreCommand() *cobra.Command {
	o := defaultOptions(c.getenv)
	var createNS bool
	cmd := &cobra.Command{
		Use:   "restore --cluster NAME --kubeconfig FILE",
		Short: "Apply every Secret of a cluster from Git alone: no CA, no issuer credentials",
		Long: `Apply every Secret the repository holds for --cluster to a (rebuilt)
cluster, from Git alone: no request to any CA, no issuer credentials, nothing
written to Git. Secrets already at their committed serial are left alone, so
it is safe to run again. Namespaces that do not exist are reported, or
created with --create-namespace.`,
		Example: examples(
			"certsync restore --repo https://git.example.com/platform/certs.git --cluster prod-eu --kubeconfig ~/.kube/prod-eu",
			"SOPS_AGE_KEY_FILE=prod-eu.agekey certsync restore --repo ./certs --cluster prod-eu --create-namespace",
		),
		Args: noArgs("the cluster is --cluster"),
	}
	cmd.Flags().BoolVar(&createNS, "create-namespace", false, "create the namespaces the Secrets need; without it, their Secrets are reported as not restored")
	cmd.Flags().IntVar(&o.Concurrency, "concurrency", o.Concurrency, "Secrets applied at once is twice this")
	cmd.RunE = c.action(&o, func(ctx context.Context, o *options, log *slog.Logger) int {
		return restoreSecrets(ctx, o, log, createNS, c.getenv, c.stdout, c.stderr)
	})
	addRepoFlags(cmd.Flags(), &o)
	addKeyFlags(cmd.Flags(), &o)
	addClusterFlags(cmd.Flags(), &o)
	return cmd
}

// restoreSecrets applies every Secret committed for o.Cluster, from Git
// alone: no ACME server, no issuer credentials, nothing written to Git.
func restoreSecrets(ctx context.Context, o *options, log *slog.Logger, createNS bool, getenv func(string) string, stdout, stderr io.Writer) int {
	if o.Kubeconfig == "" && getenv("KUBERNETES_SERVICE_HOST") == "" {
		fmt.Fprintln(stderr, "certsync restore: no cluster: pass --kubeconfig (or run in a Pod)")
		return 2
	}
	identities, err := ageIdentities(o, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "certsync: %v\n", err)
		return 1
	}
	if len(identities) == 0 {
		fmt.Fprintln(stderr, "certsync restore: no age key: restoring decrypts every Secret (--age-key-file, SOPS_AGE_KEY_FILE or SOPS_AGE_KEY)")
		return 2
	}
	// The binary's pages only start-up touched go back to the kernel, and
	// the room they leave goes to the heap: decryption's garbage is then
	// collected less often (see restoreMemoryBudget).
	settle(log)
	defer capMemory(restoreMemoryBudget)()
	repo, err := openRepo(ctx, o, getenv, log)
	if err != nil {
		fmt.Fprintf(stderr, "certsync: %v\n", err)
		return 1
	}
	tree, err := repo.Fetch(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "certsync: fetch repository: %v\n", err)
		return 1
	}
	conf, err := knownCluster(tree, o.Cluster)
	if err != nil {
		fmt.Fprintf(stderr, "certsync restore: %v\n", err)
		return 1
	}
	dec, err := treeDecrypter(tree, identities, log)
	if err != nil {
		fmt.Fprintf(stderr, "certsync: %v\n", err)
		return 1
	}
	c, err := cluster.NewFromKubeconfigWithLimit(o.Kubeconfig, o.KubeContext, o.owner(), cluster.RestoreQPS, cluster.RestoreBurst)
	if err != nil {
		fmt.Fprintf(stderr, "certsync: connect to the cluster: %v\n", err)
		return 1
	}
	start := time.Now()
	prog := newProgressLine(stderr, "restoring Secrets of cluster "+o.Cluster)
	sum, err := restore.Run(ctx, tree, dec, restoreCluster{c}, restore.Options{
		Cluster: o.Cluster, Layout: conf.Layout, CreateNamespaces: createNS, Concurrency: o.Concurrency * 2, Progress: prog.update,
	})
	prog.finish()
	if err != nil {
		fmt.Fprintf(stderr, "certsync: restore: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored cluster %s from %s at %s in %s: %d applied, %d unchanged, %d failed; no certificate was ordered\n",
		o.Cluster, redactURL(o.Repo), short(tree.Commit()), time.Since(start).Round(time.Millisecond), sum.Applied, sum.Unchanged, len(sum.Failed))
	for _, ns := range sum.CreatedNamespaces {
		fmt.Fprintf(stdout, "  created namespace %s\n", ns)
	}
	if len(sum.Failed) == 0 {
		return 0
	}
	fmt.Fprintf(stderr, "\ncertsync: %d %s not restored; the others were:\n", len(sum.Failed), plural(len(sum.Failed), "Secret"))
	for _, f := range sum.Failed {
		fmt.Fprintf(stderr, "  - %s (%s/%s): %v\n", f.Path, f.Namespace, f.Name, f.Err)
	}
	return 1
}

// restoreMemoryBudget is the memory a restore may take beyond what the
// process holds when it starts. What a restore keeps is small (the
// repository's index, the files in flight); decryption makes garbage at a
// high rate (~2 GB for 10,000 Secrets, a third of it age's 64 KiB chunk
// buffers), so how often it is collected is set by the room the heap gets:
// the collector runs only when the heap reaches this budget, not at every
// doubling of the live heap. With the start-up pages of the binary handed
// back first, a restore of 10,000 Secrets took 5.8 CPU-seconds instead of
// 6.9 and peaked at 121 MB RSS (72 MB anonymous) instead of 136
// (BenchmarkRestore10k; an 80 MB budget peaked at 149 MB for no gain).
const restoreMemoryBudget = 64 << 20

// capMemory sets the Go runtime's soft memory limit to what the process
// uses now plus budget and leaves collections to that limit alone (GOGC
// off), unless a limit is set already (GOMEMLIMIT); the returned function
// puts both back. Soft: a heap that needs more gets it, collected more
// often.
func capMemory(budget int64) (undo func()) {
	prev := debug.SetMemoryLimit(-1)
	if prev != math.MaxInt64 {
		return func() {}
	}
	sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(sample)
	used := int64(sample[0].Value.Uint64() - sample[1].Value.Uint64())
	debug.SetMemoryLimit(used + budget)
	gc := debug.SetGCPercent(-1)
	return func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(prev) }
}

// treeDecrypter opens the files of tree with the agent's identities,
// following the tree's .sops.yaml.
func treeDecrypter(tree reconcile.Tree, identities []byte, log *slog.Logger) (sopsEncrypter, error) {
	sopsConfig, err := tree.ReadFile(reconcile.SOPSConfigPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return sopsEncrypter{}, fmt.Errorf("read %s: %w", reconcile.SOPSConfigPath, err)
	}
	dec, err := newSOPSEncrypter(sopsConfig, identities, log)
	if err != nil {
		return sopsEncrypter{}, fmt.Errorf("load %s: %w", reconcile.SOPSConfigPath, err)
	}
	return dec, nil
}

// progressLine reports a long operation: on a terminal one line
// rewritten in place, elsewhere (logs) a line every few seconds.
type progressLine struct {
	w     io.Writer
	what  string
	tty   bool
	last  time.Time
	shown bool
}

func newProgressLine(w io.Writer, what string) *progressLine {
	p := &progressLine{w: w, what: what}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil {
			p.tty = fi.Mode()&os.ModeCharDevice != 0
		}
	}
	return p
}

func (p *progressLine) update(done, total int) {
	every := 3 * time.Second
	if p.tty {
		every = 250 * time.Millisecond
	}
	now := time.Now()
	if done != total && now.Sub(p.last) < every {
		return
	}
	p.last = now
	if p.tty {
		p.shown = true
		fmt.Fprintf(p.w, "\r%s: %d/%d", p.what, done, total)
		return
	}
	fmt.Fprintf(p.w, "%s: %d/%d\n", p.what, done, total)
}

func (p *progressLine) finish() {
	if p.shown {
		fmt.Fprintln(p.w)
	}
}

// restoreCluster adapts cluster.Client to restore.Cluster.
type restoreCluster struct{ c *cluster.Client }

func (r restoreCluster) Apply(ctx context.Context, s *corev1.Secret) error { return r.c.Apply(ctx, s) }

func (r restoreCluster) Create(ctx context.Context, s *corev1.Secret) error {
	err := r.c.Create(ctx, s)
	if errors.Is(err, cluster.ErrExists) {
		return fmt.Errorf("%w: %w", restore.ErrExists, err)
	}
	return err
}

func (r restoreCluster) Live(ctx context.Context) ([]restore.Live, error) {
	obs, err := r.c.Observe(ctx, nil)
	if err != nil {
		return nil, err
	}
	out := make([]restore.Live, len(obs))
	for i, o := range obs {
		out[i] = restore.Live{Namespace: o.Namespace, Name: o.Name, Serial: o.Annotations[committed.AnnotationSerial], Drifted: o.Drifted}
	}
	return out, nil
}

func (r restoreCluster) Namespaces(ctx context.Context, names []string) (map[string]bool, error) {
	return r.c.Namespaces(ctx, names)
}

func (r restoreCluster) CreateNamespace(ctx context.Context, name string) error {
	return r.c.CreateNamespace(ctx, name)
}

// treeLayout is where tree commits Secrets (certsync.yaml output.secrets;
// the default when certsync.yaml is absent or wrong, which the commands
// that act on it report).
func treeLayout(tree reconcile.Tree) committed.Layout {
	if content, err := tree.ReadFile(settings.Path); err == nil {
		if conf, err := settings.Parse(content); err == nil {
			return conf.Layout
		}
	}
	return committed.Layout{}
}

// knownCluster refuses a restore of a cluster the repository does not
// know: a misspelt --cluster would otherwise "restore" nothing and exit 0
// while the real cluster stays empty. It returns the repository's
// settings.
func knownCluster(tree reconcile.Tree, name string) (settings.Settings, error) {
	conf := settings.Settings{}
	if content, err := tree.ReadFile(settings.Path); err == nil {
		if conf, err = settings.Parse(content); err != nil {
			return conf, err
		}
	}
	if len(conf.Clusters) > 0 && !conf.Has(name) {
		return conf, fmt.Errorf("cluster %q is not declared in %s (declared: %s): check --cluster", name, settings.Path, strings.Join(conf.Names(), ", "))
	}
	folders := map[string]bool{}
	for _, p := range tree.Paths() {
		if cluster, _, _, _, ok := conf.Layout.ParseSecretPath(p); ok {
			if cluster == name {
				return conf, nil
			}
			folders[cluster] = true
		}
	}
	if len(conf.Clusters) > 0 || len(folders) == 0 {
		return conf, nil // declared but nothing delivered yet, or an empty repository
	}
	return conf, fmt.Errorf("nothing is committed for cluster %q (the repository has %s): check --cluster", name, strings.Join(slices.Sorted(maps.Keys(folders)), ", "))
}
