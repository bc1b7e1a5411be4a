package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/utils/merkletrie"
)

// divergence is how the local branch relates to the remote branch.
type divergence struct {
	// pending are the local commits the remote lacks, newest first.
	pending []plumbing.Hash
	// base is the commit they were made on: the remote head this clone
	// saw last on their line (zero: none, e.g. the remote branch does
	// not exist yet). descends is true when base is the current remote
	// head, so pushing them is a fast-forward.
	base     plumbing.Hash
	descends bool
	local    plumbing.Hash
	remote   plumbing.Hash
}

// PendingOnto counts the local commits the remote branch lacks and tells
// whether they sit on top of the remote head (descends: pushing them is a
// fast-forward). descends is false when the remote moved while they were
// waiting — another writer pushed, or someone force-pushed or rewound the
// branch: they can no longer be pushed as they are. With nothing pending,
// descends is true.
//
// The clone holds no full history (it fetches heads only), so the pending
// commits are those above the last commit on their line that this clone
// saw the remote hold — the head they were made on, or a commit it pushed.
func (r *Repo) PendingOnto(ctx context.Context) (pending int, descends bool, err error) {
	d, err := r.diverge(ctx)
	if err != nil {
		return 0, false, err
	}
	return len(d.pending), d.descends, nil
}

// PendingChanges returns what the pending local commits did, as one set of
// changes from the commit they were made on to the local head: the files
// written (with their content) and deleted, sorted by path. A caller whose
// commits can no longer be pushed (PendingOnto) can apply them on the new
// remote head instead of producing them again — for certsync,
// re-committing certificates already issued instead of ordering them
// again. What the remote did meanwhile (another writer's commits, a
// force-push that dropped some) is not in it: only what these commits
// wrote.
func (r *Repo) PendingChanges(ctx context.Context) ([]Change, error) {
	d, err := r.diverge(ctx)
	if err != nil || len(d.pending) == 0 {
		return nil, err
	}
	return r.changesBetween(ctx, d.base, d.local)
}

// changesBetween lists what commit to changed since commit from (zero:
// nothing), as files written with their content and files deleted.
func (r *Repo) changesBetween(ctx context.Context, fromHash, toHash plumbing.Hash) ([]Change, error) {
	from, err := r.treeOf(fromHash)
	if err != nil {
		return nil, err
	}
	to, err := r.treeOf(toHash)
	if err != nil {
		return nil, err
	}
	diff, err := object.DiffTreeWithOptions(ctx, from, to, nil)
	if err != nil {
		return nil, fmt.Errorf("compare pending commits with the remote: %w", err)
	}
	var out []Change
	for _, ch := range diff {
		action, err := ch.Action()
		if err != nil {
			return nil, fmt.Errorf("compare pending commits with the remote: %w", err)
		}
		if action == merkletrie.Delete {
			out = append(out, Change{Path: ch.From.Name, Delete: true})
			continue
		}
		if m := ch.To.TreeEntry.Mode; m != filemode.Regular && m != filemode.Executable {
			continue // certsync writes regular files only
		}
		content, err := r.readBlob(ch.To.TreeEntry.Hash)
		if err != nil {
			return nil, fmt.Errorf("read %s of a pending commit: %w", ch.To.Name, err)
		}
		out = append(out, Change{Path: ch.To.Name, Content: content})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// diverge relates the local branch to the remote branch. certsync's
// commits form a line (one parent each) on a remote head, so it follows
// first parents from the local head until a commit the remote was seen
// to hold: the remote head itself (descends), or an older head (the
// remote moved on, or was rewritten). Every commit above is pending. The
// walk reads local commits only, no history the clone does not hold.
func (r *Repo) diverge(ctx context.Context) (divergence, error) {
	local, err := r.refHash(r.branch)
	if err != nil {
		return divergence{}, err
	}
	remote, err := r.refHash(r.remote)
	if err != nil {
		return divergence{}, err
	}
	d := divergence{local: local, remote: remote, base: remote, descends: true}
	if local.IsZero() || local == remote {
		return d, nil
	}
	d.base = plumbing.ZeroHash
	for h := local; ; {
		if err := ctx.Err(); err != nil {
			return divergence{}, err
		}
		if h == remote {
			d.base = h
			return d, nil
		}
		known, err := r.sawRemoteHead(h)
		if err != nil {
			return divergence{}, err
		}
		if known {
			// An older head: the remote moved on (or its branch is
			// gone: pushing creates it again).
			d.base, d.descends = h, remote.IsZero()
			return d, nil
		}
		c, err := r.repo.CommitObject(h)
		if err != nil {
			return divergence{}, fmt.Errorf("walk local commits: %w", err)
		}
		if len(c.ParentHashes) > 0 {
			if _, err := r.repo.CommitObject(c.ParentHashes[0]); errors.Is(err, plumbing.ErrObjectNotFound) {
				// Only a fetch leaves a commit without its parents:
				// the remote held it (its head was not recorded, or
				// was forgotten).
				d.base, d.descends = h, remote.IsZero()
				return d, nil
			}
		}
		d.pending = append(d.pending, h)
		if len(c.ParentHashes) == 0 {
			// A line of local commits from the first one: all pending.
			// Pushing them creates the branch, if it is still absent.
			d.descends = remote.IsZero()
			return d, nil
		}
		h = c.ParentHashes[0]
	}
}

// treeOf returns the tree of a commit; nil for the zero hash.
func (r *Repo) treeOf(h plumbing.Hash) (*object.Tree, error) {
	if h.IsZero() {
		return nil, nil
	}
	c, err := r.repo.CommitObject(h)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", h, err)
	}
	t, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("read tree of %s: %w", h, err)
	}
	return t, nil
}

func (r *Repo) readBlob(h plumbing.Hash) ([]byte, error) {
	// Whole blobs come straight from the pack; anything else, or a pack
	// read that failed, goes through go-git, the authority on the format.
	if content, ok, err := r.packs.read(h); ok && err == nil {
		return content, nil
	}
	// go-git's object storage does not promise concurrent reads (passes
	// and restores read files from several goroutines): one at a time.
	r.gitReads.Lock()
	defer r.gitReads.Unlock()
	b, err := r.repo.BlobObject(h)
	if err != nil {
		return nil, err
	}
	rd, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}
