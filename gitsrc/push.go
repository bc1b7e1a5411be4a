package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
)

// certsync pushes without go-git's push. go-git chooses what to send by
// listing every object reachable from the remote's heads in the local
// repository — the whole history this clone holds, which for an agent
// that has run for months is every commit it wrote: its pushes slow down
// linearly (BenchmarkPushLocalHistory: 258 ms per push after 4,000 local
// commits, against 16 ms from a fresh clone). certsync knows what its
// commits added, since it wrote them on a head the remote holds, so it
// sends that: each pending commit and the trees and blobs it does not
// share with its parent (20 ms after the same 4,000 commits).

// sendPack moves ref on the remote from old to head and sends objects, in
// one receive-pack exchange. The remote must hold old: a branch that
// moved since (another writer) refuses the update, reported as a
// non-fast-forward before anything is sent, or by the server ("failed to
// update ref") when the writer slipped in during the exchange. replace
// skips that check: the proposal branch, which certsync rebuilds.
func (r *Repo) sendPack(ctx context.Context, via transport.ProxyOptions, ref plumbing.ReferenceName, old, head plumbing.Hash, replace bool, objects []plumbing.Hash) (err error) {
	ep, err := transport.NewEndpoint(r.opts.URL)
	if err != nil {
		return err
	}
	ep.Proxy = via
	c, err := client.NewClient(ep)
	if err != nil {
		return err
	}
	sess, err := c.NewReceivePackSession(ep, r.auth)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := sess.Close(); err == nil {
			err = cerr
		}
	}()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return err
	}
	refs, err := ar.AllReferences()
	if err != nil {
		return err
	}
	current := plumbing.ZeroHash
	if adv, err := refs.Reference(ref); err == nil {
		current = adv.Hash()
	}
	switch {
	case current == head:
		return nil // already there (a push whose answer was lost)
	case replace:
		old = current
	case current != old:
		return fmt.Errorf("non-fast-forward update: %s is at %s, the commits sit on %s", ref, short(current), short(old))
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(ar.Capabilities)
	req.Commands = []*packp.Command{{Name: ref, Old: old, New: head}}
	rd, wr := io.Pipe()
	req.Packfile = rd
	encoded := make(chan error, 1)
	go func() {
		enc := packfile.NewEncoder(wr, r.repo.Storer, !ar.Capabilities.Supports(capability.OFSDelta))
		_, err := enc.Encode(objects, 0) // no delta search: ciphertexts do not delta
		encoded <- wr.CloseWithError(err)
	}()
	report, err := sess.ReceivePack(ctx, req)
	if err != nil {
		rd.CloseWithError(err) // unblock the encoder
		<-encoded
		return err
	}
	if err := <-encoded; err != nil {
		return fmt.Errorf("encode the objects to push: %w", err)
	}
	if report != nil {
		return report.Error()
	}
	return nil
}

// addedObjects lists what commits added to their parents: each commit,
// and every tree and blob its tree does not share with its first
// parent's. Only the directories on changed paths are read. commits are
// the pending commits, newest first; the oldest sits on a commit the
// remote holds.
func (r *Repo) addedObjects(ctx context.Context, commits []plumbing.Hash) ([]plumbing.Hash, error) {
	seen := map[plumbing.Hash]bool{}
	var out []plumbing.Hash
	add := func(h plumbing.Hash) bool {
		if seen[h] {
			return false
		}
		seen[h] = true
		out = append(out, h)
		return true
	}
	for _, h := range commits {
		c, err := r.repo.CommitObject(h)
		if err != nil {
			return nil, fmt.Errorf("read commit %s: %w", h, err)
		}
		add(h)
		var base *object.Tree
		if len(c.ParentHashes) > 0 {
			if base, err = r.treeOf(c.ParentHashes[0]); err != nil {
				return nil, err
			}
		}
		tree, err := c.Tree()
		if err != nil {
			return nil, fmt.Errorf("read tree of %s: %w", h, err)
		}
		if err := r.addedTree(ctx, tree, base, add); err != nil {
			return nil, fmt.Errorf("list what %s adds: %w", short(h), err)
		}
	}
	return out, nil
}

// addedTree adds tree and what it holds that base (nil: nothing) does not.
func (r *Repo) addedTree(ctx context.Context, tree, base *object.Tree, add func(plumbing.Hash) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if base != nil && tree.Hash == base.Hash {
		return nil
	}
	if !add(tree.Hash) {
		return nil // listed with everything below it
	}
	had := map[string]object.TreeEntry{}
	if base != nil {
		for _, e := range base.Entries {
			had[e.Name] = e
		}
	}
	for _, e := range tree.Entries {
		prev, ok := had[e.Name]
		if ok && prev.Hash == e.Hash {
			continue
		}
		switch e.Mode {
		case filemode.Dir:
			sub, err := r.repo.TreeObject(e.Hash)
			if err != nil {
				return err
			}
			var subBase *object.Tree
			if ok && prev.Mode == filemode.Dir {
				if subBase, err = r.repo.TreeObject(prev.Hash); err != nil && !errors.Is(err, plumbing.ErrObjectNotFound) {
					return err
				}
			}
			if err := r.addedTree(ctx, sub, subBase, add); err != nil {
				return err
			}
		case filemode.Submodule:
			// A commit of another repository: nothing to send.
		default:
			add(e.Hash)
		}
	}
	return nil
}
