// Package restore puts a cluster back from Git alone.
//
// Every Secret committed for a cluster (secrets/<cluster>/…) is decrypted
// with the agent's key and applied; nothing is asked of any CA, so a
// rebuilt cluster is whole again in seconds and spends none of the CA's
// rate limits (which re-issuing would: Let's Encrypt allows five
// certificates per set of names per week). Secrets the cluster already
// holds at the committed serial, unedited, are left alone, so a restore
// can be run again at any time.
package restore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/internal/workpool"
	"github.com/certsync/certsync/render"
)

// Tree is the commit restored from.
type Tree interface {
	Paths() []string
	ReadFile(path string) ([]byte, error)
}

// Decrypter opens committed files (SOPS, with the MAC checked) into the
// manifest's values, which render.FromDocument turns into a Secret.
type Decrypter interface {
	DecryptDocument(ctx context.Context, path string, ciphertext []byte) (map[string]any, error)
}

// Live is what the cluster holds of one certsync-owned Secret.
type Live struct {
	Namespace, Name string
	Serial          string
	// Drifted is set when its data no longer matches what was applied.
	Drifted bool
}

// Cluster is where Secrets are restored.
type Cluster interface {
	Apply(ctx context.Context, s *corev1.Secret) error
	// Create makes a Secret the cluster does not hold, as Apply would
	// have, for less work on the API server; it returns an error wrapping
	// ErrExists when the Secret is there after all.
	Create(ctx context.Context, s *corev1.Secret) error
	// Live lists the certsync-owned Secrets of this agent.
	Live(ctx context.Context) ([]Live, error)
	// Namespaces reports which of names exist; CreateNamespace makes one
	// (called for several namespaces at once, as Create and Apply are for
	// Secrets).
	Namespaces(ctx context.Context, names []string) (map[string]bool, error)
	CreateNamespace(ctx context.Context, name string) error
}

// ErrExists is wrapped by Cluster.Create when the Secret exists.
var ErrExists = errors.New("Secret already exists")

// Options shape a restore. Zero values are the defaults.
type Options struct {
	// Cluster names the folder restored: secrets/<Cluster>/ in the default
	// Layout.
	Cluster string
	// Layout is where the repository commits Secrets (certsync.yaml
	// output.secrets). A Secret still at its place in the default layout
	// (the agent has not moved it yet) is restored from there.
	Layout committed.Layout
	// CreateNamespaces creates missing namespaces; without it their
	// Secrets are reported as failed, naming the namespace.
	CreateNamespaces bool
	// Concurrency is how many Secrets are applied at once. Default: 16.
	Concurrency int
	// Progress, when set, is called after each Secret.
	Progress func(done, total int)
}

// Status is what happened to one Secret.
type Status string

const (
	Applied   Status = "applied"
	Unchanged Status = "unchanged"
	Failed    Status = "failed"
)

// Outcome is one committed Secret's fate.
type Outcome struct {
	Path            string
	Namespace, Name string
	Status          Status
	Err             error
}

// Summary counts the outcomes; Failed lists the failures with their reason.
type Summary struct {
	Applied, Unchanged int
	Failed             []Outcome
	CreatedNamespaces  []string
}

// Run restores the Secrets of one cluster from tree. An error means the
// restore could not start (the cluster unreachable); a Secret that could
// not be restored is in Summary.Failed and the others carry on.
//
// Each file is read once where it can be: the path names the Secret, so
// only the files of Secrets the cluster already holds are read up front
// (their serial decides whether they are current); the others are read,
// checked, decrypted and sent by the workers. Secrets the cluster does not
// hold are created, the others applied.
func Run(ctx context.Context, tree Tree, dec Decrypter, c Cluster, opts Options) (Summary, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	if opts.Cluster == "" {
		opts.Cluster = committed.DefaultCluster
	}
	var sum Summary
	live, err := c.Live(ctx)
	if err != nil {
		return sum, fmt.Errorf("list the Secrets the cluster holds: %w", err)
	}
	have := make(map[string]Live, len(live))
	for _, l := range live {
		have[l.Namespace+"/"+l.Name] = l
	}

	// Decide from the paths and the plaintext metadata which Secrets are
	// current (no decryption) and which namespaces are needed.
	var todo []job
	var failed []Outcome
	namespaces := map[string]bool{}
	for _, path := range restorable(tree, opts) {
		out := Outcome{Path: path}
		_, ns, name, _, ok := opts.Layout.ParseSecretPath(path)
		l, held := have[ns+"/"+name]
		if ok && !held {
			// Read by a worker; committed.Read there checks the path
			// matches the metadata.
			out.Namespace, out.Name = ns, name
			namespaces[ns] = true
			todo = append(todo, job{Outcome: out, create: true})
			continue
		}
		rec, err := readRecord(opts.Layout, tree, path)
		if err != nil {
			out.Status, out.Err = Failed, err
			failed = append(failed, out)
			continue
		}
		out.Namespace, out.Name = rec.Namespace, rec.SecretName
		if l.Serial == rec.Serial && !l.Drifted {
			sum.Unchanged++
			continue
		}
		namespaces[out.Namespace] = true
		todo = append(todo, job{Outcome: out})
	}
	total := len(todo) + len(failed) + sum.Unchanged
	done := sum.Unchanged + len(failed)

	missing, err := missingNamespaces(ctx, c, namespaces)
	if err != nil {
		return sum, err
	}
	if opts.CreateNamespaces {
		// At once, as the Secrets are: a rebuilt cluster can need hundreds.
		errs := make([]error, len(missing))
		if _, err := workpool.Run(ctx, len(missing), opts.Concurrency, func(ctx context.Context, i int) {
			errs[i] = c.CreateNamespace(ctx, missing[i])
		}); err != nil {
			return sum, err
		}
		for i, ns := range missing {
			if errs[i] != nil {
				return sum, fmt.Errorf("create namespace %s: %w", ns, errs[i])
			}
		}
		sum.CreatedNamespaces = missing
	}
	absent := map[string]bool{}
	if !opts.CreateNamespaces {
		for _, ns := range missing {
			absent[ns] = true
		}
	}

	var mu sync.Mutex
	_, err = workpool.Run(ctx, len(todo), opts.Concurrency, func(ctx context.Context, i int) {
		j := todo[i]
		out := j.Outcome
		err := restoreOne(ctx, tree, dec, c, j, absent, opts.Layout)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			out.Status, out.Err = Failed, err
			failed = append(failed, out)
		} else {
			sum.Applied++
		}
		done++
		report(opts.Progress, done, total)
	})
	if err != nil {
		return sum, err
	}
	sort.Slice(failed, func(i, j int) bool { return failed[i].Path < failed[j].Path })
	sum.Failed = failed
	return sum, nil
}

// job is one Secret to restore; create is set when the cluster does not
// hold it (then its file has not been read yet).
type job struct {
	Outcome
	create bool
}

// restorable lists the files of opts.Cluster: those of its folder, and
// those of the default layout's folder for Secrets not yet moved from it.
func restorable(tree Tree, opts Options) []string {
	prefix, old := opts.Layout.ClusterPrefix(opts.Cluster), committed.ClusterPrefix(opts.Cluster)
	var paths, moved []string
	have := map[string]bool{}
	for _, path := range tree.Paths() {
		switch {
		case strings.HasPrefix(path, prefix):
			paths = append(paths, path)
			have[strings.TrimPrefix(path, prefix)] = true
		case strings.HasPrefix(path, old):
			moved = append(moved, path)
		}
	}
	for _, path := range moved {
		if !have[strings.TrimPrefix(path, old)] {
			paths = append(paths, path)
		}
	}
	return paths
}

func readRecord(layout committed.Layout, tree Tree, path string) (committed.Certificate, error) {
	content, err := tree.ReadFile(path)
	if err != nil {
		return committed.Certificate{}, err
	}
	return layout.Read(path, content)
}

// restoreOne reads, checks, decrypts and sends one Secret. A Secret whose
// namespace is absent fails after its metadata was checked, undecrypted.
func restoreOne(ctx context.Context, tree Tree, dec Decrypter, c Cluster, j job, absent map[string]bool, layout committed.Layout) error {
	content, err := tree.ReadFile(j.Path)
	if err != nil {
		return err
	}
	if j.create {
		if _, err := layout.Read(j.Path, content); err != nil {
			return err
		}
	}
	if absent[j.Namespace] {
		return fmt.Errorf("namespace %s does not exist (create it, or run with --create-namespace)", j.Namespace)
	}
	doc, err := dec.DecryptDocument(ctx, j.Path, content)
	if err != nil {
		return fmt.Errorf("decrypt: %w", err)
	}
	s, err := render.FromDocument(doc)
	if err != nil {
		return err
	}
	if j.create {
		err = c.Create(ctx, s)
		if !errors.Is(err, ErrExists) {
			if err != nil {
				return fmt.Errorf("create: %w", err)
			}
			return nil
		}
		// Not ours (another owner's Secret of that name) or made since
		// the listing: apply, as for any Secret the cluster holds.
	}
	if err := c.Apply(ctx, s); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	return nil
}

func missingNamespaces(ctx context.Context, c Cluster, wanted map[string]bool) ([]string, error) {
	if len(wanted) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(wanted))
	for ns := range wanted {
		names = append(names, ns)
	}
	sort.Strings(names)
	exist, err := c.Namespaces(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("look up namespaces: %w", err)
	}
	var missing []string
	for _, ns := range names {
		if !exist[ns] {
			missing = append(missing, ns)
		}
	}
	return missing, nil
}

func report(progress func(int, int), done, total int) {
	if progress != nil {
		progress(done, total)
	}
}
