package gitsrc

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// # What the local repository holds
//
// certsync reads one commit, the remote head, and writes commits on top of
// it; it never reads history. So every fetch asks for the head alone
// (depth 1): a fresh agent downloads the files of one tree, not every
// SOPS ciphertext the branch ever held (a year of 160-hour certificates
// is ~110 new, incompressible ciphertexts per certificate). The local
// repository is a shallow clone whose history has gaps: the heads fetched
// at each pass and the commits certsync wrote itself.
//
// Three go-git behaviours shape the rest (go-git v5.19.3, measured against
// git http-backend; go-git #305, #1443):
//
//   - go-git tells the server which commits it holds without their parents
//     ("shallow" lines) only in a fetch with a depth. A fetch without one
//     lets the server assume the clone holds every ancestor of its heads:
//     a branch rewound below them arrives as a ref to a missing commit,
//     and a file restored to an old version arrives without its blob (from
//     a server with reachability bitmaps, as Git hosts run). So every
//     fetch has depth 1, and the shallow list declares the remote heads
//     the local refs point at (declareShallow): the server then never
//     counts on anything older.
//   - go-git only ever adds to the shallow list. Rewriting it after each
//     exchange keeps it at a few entries instead of one per fetch.
//   - go-git's push checks fast-forward by walking the new commit's
//     history until it meets the remote head; in a shallow clone that walk
//     runs into a missing parent and fails with "object not found" where
//     it should say "non-fast-forward". Push checks the fast-forward
//     itself, on the commits certsync wrote, and sends them itself
//     (push.go).
//
// Without full history, which commits the remote holds is what this clone
// saw: the remote heads it fetched and pushed are kept in a small file
// (remoteHeadsFile); commits above the last of them are pending (see
// diverge). The one place that needs a common ancestor, the proposal
// branch, deepens its two branches until their histories meet
// (proposalBase).

// remoteHeadsFile lists, oldest first, the remote heads this clone has
// seen, one hash per line, next to the repository's own files.
const remoteHeadsFile = "certsync_remote_heads"

// remoteHeadsKept bounds that file. Local commits are pending for at most
// a few passes (a push that lost a race sets them aside), so the remote
// head they were made on is among the last few entries; the bound only
// matters while pushes fail for another reason and the remote keeps moving.
const remoteHeadsKept = 1024

// sawRemote records remote heads: commits the remote held.
func (r *Repo) sawRemote(hashes ...plumbing.Hash) error {
	r.headsMu.Lock()
	defer r.headsMu.Unlock()
	if r.heads == nil {
		if err := r.loadHeadsLocked(); err != nil {
			return err
		}
	}
	changed := false
	for _, h := range hashes {
		if h.IsZero() || r.heads[h] {
			continue
		}
		r.heads[h] = true
		r.headOrder = append(r.headOrder, h)
		changed = true
	}
	if !changed {
		return nil
	}
	for len(r.headOrder) > remoteHeadsKept {
		delete(r.heads, r.headOrder[0])
		r.headOrder = r.headOrder[1:]
	}
	var b bytes.Buffer
	for _, h := range r.headOrder {
		b.WriteString(h.String() + "\n")
	}
	path := filepath.Join(r.opts.Dir, remoteHeadsFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("record remote heads: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("record remote heads: %w", err)
	}
	return nil
}

// sawRemoteHead reports whether the remote held commit h when this clone
// fetched or pushed.
func (r *Repo) sawRemoteHead(h plumbing.Hash) (bool, error) {
	r.headsMu.Lock()
	defer r.headsMu.Unlock()
	if r.heads == nil {
		if err := r.loadHeadsLocked(); err != nil {
			return false, err
		}
	}
	return r.heads[h], nil
}

func (r *Repo) loadHeadsLocked() error {
	r.heads = map[plumbing.Hash]bool{}
	r.headOrder = nil
	b, err := os.ReadFile(filepath.Join(r.opts.Dir, remoteHeadsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read remote heads: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !plumbing.IsHash(line) {
			continue // a torn line is only a head forgotten
		}
		h := plumbing.NewHash(line)
		if r.heads[h] {
			continue
		}
		r.heads[h] = true
		r.headOrder = append(r.headOrder, h)
	}
	return nil
}

// settle records the remote heads the tracking refs point at and declares
// the shallow commits: run after every exchange that moved a ref.
func (r *Repo) settle() error {
	var seen []plumbing.Hash
	for _, name := range []plumbing.ReferenceName{r.base, r.remote} {
		h, err := r.refHash(name)
		if err != nil {
			return err
		}
		seen = append(seen, h)
	}
	if err := r.sawRemote(seen...); err != nil {
		return err
	}
	return r.declareShallow()
}

// declareShallow makes the shallow list the remote heads the local refs
// point at. go-git offers the commits its refs point at to the server as
// what the clone has (at depth 1 it offers no ancestors), so declaring
// each of them shallow tells the server to count on nothing older: what
// it sends is always complete, whatever the clone holds below. Declaring
// a commit shallow whose parents the clone does hold costs at most a few
// objects sent twice; the clone's own walks go by the objects present,
// not by this list. Local commits the remote never saw stay off it: a
// push takes shallow commits as objects the remote already has.
func (r *Repo) declareShallow() error {
	refs, err := r.repo.References()
	if err != nil {
		return fmt.Errorf("list local refs: %w", err)
	}
	defer refs.Close()
	var tips []plumbing.Hash
	seen := map[plumbing.Hash]bool{}
	err = refs.ForEach(func(ref *plumbing.Reference) error {
		h := ref.Hash()
		if ref.Type() != plumbing.HashReference || seen[h] {
			return nil
		}
		seen[h] = true
		remote, err := r.sawRemoteHead(h)
		if err != nil || !remote {
			return err
		}
		if _, err := r.repo.CommitObject(h); err == nil {
			tips = append(tips, h)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list local refs: %w", err)
	}
	if err := r.repo.Storer.SetShallow(tips); err != nil {
		return fmt.Errorf("write the shallow list: %w", err)
	}
	return nil
}

// maxDeepen bounds how far proposalBase deepens each branch: a proposal
// left open while its branch moved by more commits than this is an error
// to look at, not a reason to download the whole history.
const maxDeepen = 4096

// proposalBase finds where the proposal (tip) left the branch it proposes
// to (head): the newest commit both histories hold. When the local
// history runs out first (a shallow clone holds only recent heads), it
// fetches both branches deeper, 8, 64, 512, then 4096 commits, and looks
// again. Zero when the histories are complete and never meet.
func (r *Repo) proposalBase(ctx context.Context, tip, head plumbing.Hash) (plumbing.Hash, error) {
	for depth := 8; ; depth *= 8 {
		base, complete, err := r.mergeBase(ctx, tip, head)
		if err != nil || !base.IsZero() || complete {
			return base, err
		}
		if depth > maxDeepen {
			return plumbing.ZeroHash, fmt.Errorf("%s and %s have no common commit within their last %d commits", r.opts.ProposalBranch, r.opts.Branch, maxDeepen)
		}
		r.log.Debug("deepening to find where the proposal left its branch", "depth", depth)
		if err := r.deepen(ctx, depth); err != nil {
			return plumbing.ZeroHash, err
		}
	}
}

// deepen fetches the last depth commits of the branch and of the proposal.
func (r *Repo) deepen(ctx context.Context, depth int) error {
	err := r.withTimeout(ctx, "fetch", func(ctx context.Context, via transport.ProxyOptions) error {
		return r.repo.FetchContext(ctx, &git.FetchOptions{
			RemoteName: remoteName,
			RefSpecs: []config.RefSpec{
				config.RefSpec(fmt.Sprintf("+%s:%s", r.branch, r.base)),
				config.RefSpec(fmt.Sprintf("+%s:%s", r.proposal, r.remote)),
			},
			Depth:        depth,
			Auth:         r.auth,
			Force:        true,
			Tags:         git.NoTags,
			ProxyOptions: via,
		})
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return r.explain("fetch", err)
	}
	return r.settle()
}

// mergeBase is the newest common ancestor of a and b among the commits
// the clone holds (zero: none found). complete is false when a walk
// reached a commit whose parents are not here, so an older common
// ancestor may exist beyond. It walks newest first from both sides and
// stops once every commit left to visit is below a common one, as
// git merge-base does, so it reads the commits between the heads and
// their meeting point, not the whole history.
func (r *Repo) mergeBase(ctx context.Context, a, b plumbing.Hash) (base plumbing.Hash, complete bool, err error) {
	const fromA, fromB, stale = 1, 2, 4
	flags := map[plumbing.Hash]int{}
	q := &commitQueue{}
	complete = true
	push := func(h plumbing.Hash, f int) error {
		c, err := r.repo.CommitObject(h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			complete = false // beyond the history this clone holds
			return nil
		}
		if err != nil {
			return fmt.Errorf("read commit %s: %w", h, err)
		}
		flags[h] |= f
		heap.Push(q, c)
		return nil
	}
	if err := push(a, fromA); err != nil {
		return plumbing.ZeroHash, false, err
	}
	if err := push(b, fromB); err != nil {
		return plumbing.ZeroHash, false, err
	}
	for q.live(flags, stale) {
		if err := ctx.Err(); err != nil {
			return plumbing.ZeroHash, false, err
		}
		c := heap.Pop(q).(*object.Commit)
		f := flags[c.Hash] & (fromA | fromB | stale)
		if f == fromA|fromB {
			if base.IsZero() {
				base = c.Hash
			}
			f |= stale
			flags[c.Hash] = f
		}
		for _, p := range c.ParentHashes {
			if flags[p]&f == f {
				continue
			}
			if err := push(p, f); err != nil {
				return plumbing.ZeroHash, false, err
			}
		}
	}
	return base, complete, nil
}

// commitQueue orders commits newest first (committer time).
type commitQueue []*object.Commit

func (q commitQueue) Len() int { return len(q) }
func (q commitQueue) Less(i, j int) bool {
	return q[i].Committer.When.After(q[j].Committer.When)
}
func (q commitQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *commitQueue) Push(x any)   { *q = append(*q, x.(*object.Commit)) }
func (q *commitQueue) Pop() any {
	old := *q
	c := old[len(old)-1]
	*q = old[:len(old)-1]
	return c
}

// live reports whether a commit left to visit is not yet below a common
// ancestor.
func (q commitQueue) live(flags map[plumbing.Hash]int, stale int) bool {
	for _, c := range q {
		if flags[c.Hash]&stale == 0 {
			return true
		}
	}
	return false
}
