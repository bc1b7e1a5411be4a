package gitsrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Change writes or deletes one file.
type Change struct {
	Path    string
	Content []byte
	Delete  bool
}

// ValidatePath refuses paths that could escape the repository or touch
// Git's own files.
func ValidatePath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q: absolute paths are not allowed", p)
	case strings.Contains(p, "\\"):
		return fmt.Errorf("%q: backslashes are not allowed", p)
	case path.Clean(p) != p:
		return fmt.Errorf("%q: not a clean relative path", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "." || strings.EqualFold(part, ".git") {
			return fmt.Errorf("%q: %q is not allowed in a path", p, part)
		}
	}
	return nil
}

// Commit writes one commit on top of parent and moves the local branch to
// it. The tree is built in the object store: only the directories on the
// changed paths are rewritten.
func (r *Repo) Commit(ctx context.Context, parent *Snapshot, changes []Change, message string) (*Snapshot, error) {
	h, err := r.writeCommit(ctx, parent, changes, message)
	if err != nil {
		return nil, err
	}
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(r.branch, h)); err != nil {
		return nil, fmt.Errorf("commit: move %s: %w", r.opts.Branch, err)
	}
	return r.lazySnapshot(h)
}

// writeCommit stores a commit of changes on top of parent and returns its
// hash; no reference moves.
func (r *Repo) writeCommit(ctx context.Context, parent *Snapshot, changes []Change, message string) (plumbing.Hash, error) {
	if len(changes) == 0 {
		return plumbing.ZeroHash, errors.New("commit: nothing to commit")
	}
	root := &dirChange{files: map[string]*Change{}, dirs: map[string]*dirChange{}}
	for i := range changes {
		c := &changes[i]
		if err := ValidatePath(c.Path); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("commit: %w", err)
		}
		root.add(strings.Split(c.Path, "/"), c)
	}
	treeHash, err := r.writeTree(ctx, parent.tree, root)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("commit: build tree: %w", err)
	}
	sig := r.signature()
	c := &object.Commit{Author: sig, Committer: sig, Message: message, TreeHash: treeHash}
	if !parent.hash.IsZero() {
		c.ParentHashes = []plumbing.Hash{parent.hash}
	}
	if r.opts.Signer != nil {
		if err := r.sign(c); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("commit: %w", err)
		}
	}
	obj := r.repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("commit: encode: %w", err)
	}
	h, err := r.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("commit: store: %w", err)
	}
	return h, nil
}

// dirChange is the set of changes below one directory.
type dirChange struct {
	files map[string]*Change
	dirs  map[string]*dirChange
}

func (d *dirChange) add(parts []string, c *Change) {
	if len(parts) == 1 {
		d.files[parts[0]] = c
		return
	}
	sub := d.dirs[parts[0]]
	if sub == nil {
		sub = &dirChange{files: map[string]*Change{}, dirs: map[string]*dirChange{}}
		d.dirs[parts[0]] = sub
	}
	sub.add(parts[1:], c)
}

// writeTree applies d to base (nil for an empty directory) and stores the
// resulting tree; it returns the zero hash for a directory left empty.
func (r *Repo) writeTree(ctx context.Context, base *object.Tree, d *dirChange) (plumbing.Hash, error) {
	if err := ctx.Err(); err != nil {
		return plumbing.ZeroHash, err
	}
	entries := map[string]object.TreeEntry{}
	if base != nil {
		for _, e := range base.Entries {
			entries[e.Name] = e
		}
	}
	for name, sub := range d.dirs {
		var subBase *object.Tree
		if e, ok := entries[name]; ok && e.Mode == filemode.Dir {
			t, err := r.repo.TreeObject(e.Hash)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			subBase = t
		}
		h, err := r.writeTree(ctx, subBase, sub)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if h.IsZero() {
			delete(entries, name)
		} else {
			entries[name] = object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
		}
	}
	for name, c := range d.files {
		if c.Delete {
			delete(entries, name)
			continue
		}
		h, err := r.writeBlob(c.Content)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries[name] = object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h}
	}
	if len(entries) == 0 {
		return plumbing.ZeroHash, nil
	}
	t := &object.Tree{}
	for _, e := range entries {
		t.Entries = append(t.Entries, e)
	}
	// Git orders entries by name, comparing directories as if they
	// ended in "/".
	sort.Slice(t.Entries, func(i, j int) bool { return sortKey(t.Entries[i]) < sortKey(t.Entries[j]) })
	obj := r.repo.Storer.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return r.repo.Storer.SetEncodedObject(obj)
}

func sortKey(e object.TreeEntry) string {
	if e.Mode == filemode.Dir {
		return e.Name + "/"
	}
	return e.Name
}

func (r *Repo) writeBlob(content []byte) (plumbing.Hash, error) {
	obj := r.repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(content)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := bytes.NewReader(content).WriteTo(w); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return r.repo.Storer.SetEncodedObject(obj)
}

// sign adds the signature of c's encoding (without a signature), which is
// what Git verifies.
func (r *Repo) sign(c *object.Commit) error {
	unsigned := r.repo.Storer.NewEncodedObject()
	if err := c.EncodeWithoutSignature(unsigned); err != nil {
		return fmt.Errorf("encode for signing: %w", err)
	}
	rd, err := unsigned.Reader()
	if err != nil {
		return fmt.Errorf("encode for signing: %w", err)
	}
	defer rd.Close()
	content, err := io.ReadAll(rd)
	if err != nil {
		return fmt.Errorf("encode for signing: %w", err)
	}
	sig, err := r.opts.Signer.Sign(content)
	if err != nil {
		return err
	}
	c.PGPSignature = sig
	return nil
}
