// Package gitsrc is certsync's only contact with Git: it fetches the head
// of one branch of a remote into a local bare repository, gives read-only
// snapshots of commits, writes commits without a worktree, and pushes
// without ever forcing.
//
// A fetch asks for the branch head alone (depth 1): certsync reads one
// tree, never history, so a fresh agent's first fetch costs what the
// current files weigh, however many renewals the branch has recorded. The
// history stays on the remote, untouched, for people and `git log`;
// history.go says what the local repository holds instead and how the
// operations below work without it.
//
// The local repository lives in a directory that survives restarts, so a
// commit whose push failed (the remote was away) is still there to push on
// the next pass. Trees are built directly in the object store: writing
// 1,000 files costs milliseconds, not a worktree checkout.
//
// A push that loses a race returns an error wrapping ErrNonFastForward; the
// caller fetches, plans again and commits on the new head. A remote that
// stops answering fails the exchange after Options.Timeout with ErrTimeout.
//
// Commits left by a failed push are described by PendingOnto (do they still
// sit on the remote head?) and PendingChanges (what they wrote), so a
// caller whose commits were overtaken can carry their files over instead
// of ordering the certificates again.
package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// ErrNonFastForward is wrapped by Push when the remote branch moved since
// the commit's parent was fetched.
var ErrNonFastForward = errors.New("remote branch moved (non-fast-forward)")

// Signature is a commit author.
type Signature struct{ Name, Email string }

// Options configure a Repo.
type Options struct {
	URL, Branch string
	// Dir holds the local bare repository; created when missing.
	Dir  string
	Auth Auth
	// Author signs certsync's commits. Default: certsync <certsync@localhost>.
	Author Signature
	// Timeout bounds each exchange with the remote, a Fetch or a Push as a
	// whole (connecting, the SSH handshake, transferring): a server that
	// accepts the connection and never answers fails it with ErrTimeout
	// instead of holding the pass. Raise it for a first fetch of a very
	// large repository over a slow link. Default: 2 minutes.
	Timeout time.Duration
	// Signer signs every commit certsync writes; nil leaves them unsigned.
	Signer CommitSigner
	// ProposalBranch, when set, is where commits go instead of Branch (a
	// protected branch certsync reads but may not push to): see proposal.go.
	ProposalBranch string
	Logger         *slog.Logger
}

// Repo is one branch of one remote.
type Repo struct {
	opts   Options
	repo   *git.Repository
	auth   transport.AuthMethod
	log    *slog.Logger
	branch plumbing.ReferenceName
	// remote tracks where pushes go: Branch, or ProposalBranch. base
	// tracks Branch, what is read (the same as remote without a proposal
	// branch).
	remote, base plumbing.ReferenceName
	// proposal is refs/heads/<ProposalBranch> ("" without one).
	proposal plumbing.ReferenceName
	ssh      bool // the URL is ssh://: dial with a deadline (see withTimeout)
	packs    *packReader

	// heads are the remote heads this clone has seen, loaded from
	// remoteHeadsFile on first use (see history.go); headOrder keeps
	// them oldest first.
	headsMu   sync.Mutex
	heads     map[plumbing.Hash]bool
	headOrder []plumbing.Hash
	// gitReads serialises the blob reads that go to go-git (see readBlob).
	gitReads sync.Mutex
}

const (
	remoteName = "origin"
	// objectCacheSize bounds go-git's object cache. Whole blobs are read
	// from the pack without it (packread.go), so it holds trees, commits
	// and the bases of deltas: the trees of 10,000 certificates (20,000
	// files) are 0.8 MiB, so 4 MiB keeps every tree of a repository five
	// times that size between passes.
	objectCacheSize = 4 * cache.MiByte
)

// Open prepares the local repository; it does not contact the remote
// (the first Fetch does).
func Open(ctx context.Context, opts Options) (*Repo, error) {
	if opts.URL == "" || opts.Branch == "" || opts.Dir == "" {
		return nil, errors.New("gitsrc: URL, Branch and Dir are required")
	}
	if opts.Author.Name == "" {
		opts.Author = Signature{Name: "certsync", Email: "certsync@localhost"}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Repo{opts: opts, log: log,
		branch: plumbing.NewBranchReferenceName(opts.Branch),
		remote: plumbing.NewRemoteReferenceName(remoteName, opts.Branch)}
	r.base = r.remote
	if opts.ProposalBranch != "" {
		if opts.ProposalBranch == opts.Branch {
			return nil, errors.New("gitsrc: the proposal branch must differ from the branch it proposes to")
		}
		r.proposal = plumbing.NewBranchReferenceName(opts.ProposalBranch)
		r.remote = plumbing.NewRemoteReferenceName(remoteName, opts.ProposalBranch)
	}
	ep, err := transport.NewEndpoint(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("repository URL %s: %w", redact(opts.URL), err)
	}
	r.ssh = ep.Protocol == "ssh"
	if r.auth, err = opts.Auth.method(opts.URL, opts.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", opts.Dir, err)
	}
	// go-git caches up to 96 MiB of objects by default; certsync reads each
	// blob once per pass, so a small cache keeps the agent's memory flat.
	storage := newCloneStorage(filesystem.NewStorage(osfs.New(opts.Dir), cache.NewObjectLRU(objectCacheSize)), opts.Dir, log)
	r.packs = newPackReader(opts.Dir)
	r.repo, err = git.Open(storage, nil)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		r.repo, err = git.Init(storage, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("open local repository %s: %w", opts.Dir, err)
	}
	if err := r.configure(); err != nil {
		return nil, err
	}
	// A clone made before heads were recorded still knows where the
	// remote was when it last fetched or pushed: its pending commits sit
	// on that.
	for _, name := range []plumbing.ReferenceName{r.base, r.remote} {
		h, err := r.refHash(name)
		if err == nil {
			err = r.sawRemote(h)
		}
		if err != nil {
			return nil, fmt.Errorf("open local repository %s: %w", opts.Dir, err)
		}
	}
	return r, nil
}

// configure points origin at the URL (it may have changed between runs)
// and turns off delta search: certsync's files are small and encrypted,
// so deltas save little and cost most of a push.
func (r *Repo) configure() error {
	cfg, err := r.repo.Config()
	if err != nil {
		return fmt.Errorf("read repository config: %w", err)
	}
	cfg.Remotes[remoteName] = &config.RemoteConfig{
		Name:  remoteName,
		URLs:  []string{r.opts.URL},
		Fetch: []config.RefSpec{config.RefSpec(fmt.Sprintf("+%s:%s", r.branch, r.remote))},
	}
	cfg.Pack.Window = 0
	if err := r.repo.SetConfig(cfg); err != nil {
		return fmt.Errorf("write repository config: %w", err)
	}
	return nil
}

// Fetch fetches the branch and returns the remote head. The local branch
// follows it unless it holds commits the remote lacks (see Pending).
func (r *Repo) Fetch(ctx context.Context) (*Snapshot, error) {
	start := time.Now()
	if _, err := r.fetchRef(ctx, r.branch, r.base); err != nil {
		return nil, err
	}
	remote, err := r.snapshotOf(r.base)
	if err != nil {
		return nil, err
	}
	// The local branch follows where pushes go: Branch, or the proposal
	// branch (not the carried snapshot, which is pushed only with a commit
	// on top of it).
	follow := remote
	if r.proposal != "" {
		if remote, err = r.withProposal(ctx, remote); err != nil {
			return nil, err
		}
		if follow, err = r.snapshotOf(r.remote); err != nil {
			return nil, err
		}
	}
	pending, err := r.Pending(ctx)
	if err != nil {
		return nil, err
	}
	if pending == 0 {
		if err := r.Reset(ctx, follow); err != nil {
			return nil, err
		}
	}
	r.log.Debug("fetched", "branch", r.opts.Branch, "commit", remote.Commit(), "took", time.Since(start).Round(time.Millisecond))
	return remote, nil
}

// fetchRef fetches the head of one remote branch into a tracking ref;
// found is false (and the tracking ref removed) when the remote has no
// such branch yet. Only the head commit and the objects of its tree that
// the clone lacks are transferred (depth 1, see history.go).
func (r *Repo) fetchRef(ctx context.Context, src, dst plumbing.ReferenceName) (found bool, err error) {
	err = r.withTimeout(ctx, "fetch", func(ctx context.Context, via transport.ProxyOptions) error {
		return r.repo.FetchContext(ctx, &git.FetchOptions{
			RemoteName:   remoteName,
			RefSpecs:     []config.RefSpec{config.RefSpec(fmt.Sprintf("+%s:%s", src, dst))},
			Depth:        1,
			Auth:         r.auth,
			Force:        true,
			Tags:         git.NoTags,
			ProxyOptions: via,
		})
	})
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
		found = true
	case errors.Is(err, transport.ErrEmptyRemoteRepository), errors.As(err, new(git.NoMatchingRefSpecError)):
		// A new repository, or a branch nobody pushed yet: the first
		// commit creates it.
		if err := r.repo.Storer.RemoveReference(dst); err != nil {
			return false, err
		}
	default:
		return false, r.explain("fetch", err)
	}
	return found, r.settle()
}

// Local returns the local branch head.
func (r *Repo) Local(ctx context.Context) (*Snapshot, error) { return r.snapshotOf(r.branch) }

// Pending counts local commits that the remote branch lacks: commits a
// failed push left behind. See PendingOnto for whether they can still be
// pushed.
func (r *Repo) Pending(ctx context.Context) (int, error) {
	n, _, err := r.PendingOnto(ctx)
	return n, err
}

// Reset moves the local branch to a snapshot.
func (r *Repo) Reset(ctx context.Context, to *Snapshot) error {
	if to.hash.IsZero() {
		err := r.repo.Storer.RemoveReference(r.branch)
		if err != nil && !errors.Is(err, plumbing.ErrReferenceNotFound) {
			return err
		}
		return nil
	}
	return r.repo.Storer.SetReference(plumbing.NewHashReference(r.branch, to.hash))
}

// Push publishes the local branch; it never forces the branch it reads
// (a proposal branch, which certsync rebuilds on every pass, is replaced).
//
// The fast-forward is checked here, not by go-git, whose check walks the
// new commit's history and in a shallow clone fails on a missing parent
// instead of reporting a lost race. The local commits must sit on the
// remote head this clone last saw (the line of commits certsync wrote
// leads to it), and the push carries that head as the branch's expected
// value: a branch that moved since refuses it, so what the remote accepts
// is always a fast-forward. What is sent is what those commits added
// (push.go), whatever the size of the local history.
func (r *Repo) Push(ctx context.Context) error {
	start := time.Now()
	d, err := r.diverge(ctx)
	if err != nil {
		return fmt.Errorf("push %s: %w", r.opts.Branch, err)
	}
	if len(d.pending) == 0 {
		return nil
	}
	target, replace := r.branch, false
	switch {
	case r.proposal != "":
		target, replace = r.proposal, true
	case !d.descends:
		return fmt.Errorf("push %s: the commits sit on %s, the remote head is now %s: %w", r.opts.Branch, short(d.base), short(d.remote), ErrNonFastForward)
	}
	objects, err := r.addedObjects(ctx, d.pending)
	if err != nil {
		return fmt.Errorf("push %s: %w", r.opts.Branch, err)
	}
	err = r.withTimeout(ctx, "push", func(ctx context.Context, via transport.ProxyOptions) error {
		return r.sendPack(ctx, via, target, d.remote, d.local, replace, objects)
	})
	switch {
	case err == nil:
	case lostRace(err):
		return fmt.Errorf("push %s: %w", r.opts.Branch, ErrNonFastForward)
	default:
		return r.explain("push", err)
	}
	// The remote now has our head: record it so Pending is 0.
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(r.remote, d.local)); err != nil {
		return err
	}
	if err := r.settle(); err != nil {
		return err
	}
	r.log.Debug("pushed", "branch", r.opts.Branch, "commit", d.local.String(), "objects", len(objects), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// short abbreviates a commit hash for messages ("none" for zero).
func short(h plumbing.Hash) string {
	if h.IsZero() {
		return "none"
	}
	return h.String()[:12]
}

// lostRace recognises a push refused because the branch moved: sendPack
// finds it in the advertisement ("non-fast-forward update"); the server
// reports a writer that slipped in between the advertisement and its own
// ref update ("failed to update ref", "cannot lock ref", "fetch first").
func lostRace(err error) bool {
	msg := err.Error()
	for _, s := range []string{"non-fast-forward", "failed to update ref", "cannot lock ref", "fetch first"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// explain turns transport errors into what the user should check.
func (r *Repo) explain(op string, err error) error {
	where := redact(r.opts.URL)
	switch {
	case errors.Is(err, ErrTimeout):
		return err // already names the operation and what to check
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %s: %w", op, where, err)
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%s %s: %w: check the username and password/token (CERTSYNC_GIT_PASSWORD, --git-password-file) and that it may write to the repository", op, where, err)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%s %s: %w: check --repo", op, where, err)
	case strings.Contains(err.Error(), "knownhosts"), strings.Contains(err.Error(), "host key"):
		return fmt.Errorf("%s %s: %w", op, where, err)
	}
	return fmt.Errorf("%s %s: %w (is the Git server reachable?)", op, where, err)
}

func (r *Repo) refHash(name plumbing.ReferenceName) (plumbing.Hash, error) {
	ref, err := r.repo.Reference(name, true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return ref.Hash(), nil
}

func (r *Repo) snapshotOf(name plumbing.ReferenceName) (*Snapshot, error) {
	h, err := r.refHash(name)
	if err != nil {
		return nil, err
	}
	return r.snapshot(h)
}

func (r *Repo) signature() object.Signature {
	return object.Signature{Name: r.opts.Author.Name, Email: r.opts.Author.Email, When: time.Now()}
}

// redact removes credentials from a URL before it appears in an error.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, hasPassword := u.User.Password(); hasPassword {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}
