package gitsrc

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/utils/merkletrie"
)

// linearWalk is how many first parents PendingOnto follows looking for the
// remote head before it asks for a full merge base: certsync's own commits
// form a short line on top of the remote head.
const linearWalk = 1000

// divergence is how the local branch relates to the remote branch.
type divergence struct {
	// pending are the local commits missing from the remote's history,
	// newest first.
	pending []plumbing.Hash
	// base is where the two histories meet (zero: nowhere, or no remote
	// branch yet); descends is true when that is the remote head itself.
	base     plumbing.Hash
	descends bool
	local    plumbing.Hash
}

// PendingOnto counts the local commits the remote branch lacks and tells
// whether they sit on top of the remote head (descends: pushing them is a
// fast-forward). descends is false when the remote moved while they were
// waiting — another writer pushed, or someone force-pushed or rewound the
// branch: they can no longer be pushed as they are. With nothing pending,
// descends is true.
//
// Commits are counted from where the two histories meet, so a rewound
// remote does not make the whole local history count as pending.
func (r *Repo) PendingOnto(ctx context.Context) (pending int, descends bool, err error) {
	d, err := r.diverge(ctx)
	if err != nil {
		return 0, false, err
	}
	return len(d.pending), d.descends, nil
}

// PendingChanges returns what the pending local commits did, as one set of
// changes from where the local and remote histories meet to the local head:
// the files written (with their content) and deleted, sorted by path. A
// caller whose commits can no longer be pushed (PendingOnto) can apply them
// on the new remote head instead of producing them again — for certsync,
// re-committing certificates already issued instead of ordering them again.
//
// After a force-push that rewound the branch, the changes also include the
// commits the remote dropped, whoever made them: callers should keep only
// the paths they own. Without any common history, every local file is
// listed as written.
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

// diverge relates the local branch to the remote branch.
func (r *Repo) diverge(ctx context.Context) (divergence, error) {
	local, err := r.refHash(r.branch)
	if err != nil {
		return divergence{}, err
	}
	remote, err := r.refHash(r.remote)
	if err != nil {
		return divergence{}, err
	}
	d := divergence{local: local, base: remote, descends: true}
	if local.IsZero() || local == remote {
		return d, nil
	}
	// The usual case: a short line of commits on top of the remote head.
	h := local
	for range linearWalk {
		if h == remote {
			return d, nil
		}
		c, err := r.repo.CommitObject(h)
		if err != nil {
			return divergence{}, fmt.Errorf("walk local commits: %w", err)
		}
		if len(c.ParentHashes) != 1 && !(len(c.ParentHashes) == 0 && remote.IsZero()) {
			break // a merge, or a root the remote does not have
		}
		d.pending = append(d.pending, h)
		if len(c.ParentHashes) == 0 {
			return d, nil // the remote branch does not exist yet
		}
		h = c.ParentHashes[0]
	}
	return r.divergeSlow(ctx, local, remote)
}

// divergeSlow finds where the histories meet with a full merge base: the
// remote was rewound, force-pushed, or moved on since the local commits
// were made.
func (r *Repo) divergeSlow(ctx context.Context, local, remote plumbing.Hash) (divergence, error) {
	d := divergence{local: local, descends: remote.IsZero()}
	lc, err := r.repo.CommitObject(local)
	if err != nil {
		return d, fmt.Errorf("read local head: %w", err)
	}
	seen := map[plumbing.Hash]bool{}
	if !remote.IsZero() {
		rc, err := r.repo.CommitObject(remote)
		if err != nil {
			return d, fmt.Errorf("read remote head: %w", err)
		}
		bases, err := lc.MergeBase(rc)
		if err != nil {
			return d, fmt.Errorf("find where local and remote histories meet: %w", err)
		}
		for _, b := range bases {
			seen[b.Hash] = true
		}
		if len(bases) > 0 {
			d.base = bases[0].Hash
			d.descends = d.base == remote
		}
	}
	iter := object.NewCommitPreorderIter(lc, seen, nil)
	defer iter.Close()
	for {
		if err := ctx.Err(); err != nil {
			return d, err
		}
		c, err := iter.Next()
		if err == io.EOF {
			return d, nil
		}
		if err != nil {
			return d, fmt.Errorf("walk local commits: %w", err)
		}
		d.pending = append(d.pending, c.Hash)
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
