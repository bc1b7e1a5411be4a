package gitsrc

import (
	"fmt"
	"io/fs"
	"sort"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Snapshot is a read-only view of one commit. Listing paths reads tree
// objects only; file contents are read on demand.
type Snapshot struct {
	repo  *Repo
	hash  plumbing.Hash
	tree  *object.Tree
	blobs map[string]plumbing.Hash
	paths []string
}

func (r *Repo) snapshot(h plumbing.Hash) (*Snapshot, error) {
	s := &Snapshot{repo: r, hash: h, blobs: map[string]plumbing.Hash{}}
	if h.IsZero() {
		return s, nil
	}
	c, err := r.repo.CommitObject(h)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", h, err)
	}
	if s.tree, err = c.Tree(); err != nil {
		return nil, fmt.Errorf("read tree of %s: %w", h, err)
	}
	if err := s.walk(s.tree, ""); err != nil {
		return nil, fmt.Errorf("list files of %s: %w", h, err)
	}
	sort.Strings(s.paths)
	return s, nil
}

// walk lists blobs recursively from tree entries alone (no blob reads).
func (s *Snapshot) walk(t *object.Tree, prefix string) error {
	for _, e := range t.Entries {
		p := prefix + e.Name
		switch e.Mode {
		case filemode.Dir:
			sub, err := s.repo.repo.TreeObject(e.Hash)
			if err != nil {
				return err
			}
			if err := s.walk(sub, p+"/"); err != nil {
				return err
			}
		case filemode.Regular, filemode.Executable:
			s.blobs[p] = e.Hash
			s.paths = append(s.paths, p)
		}
	}
	return nil
}

// Commit is the commit hash, "" for a branch with no commits yet.
func (s *Snapshot) Commit() string {
	if s.hash.IsZero() {
		return ""
	}
	return s.hash.String()
}

// Paths lists every file, sorted.
func (s *Snapshot) Paths() []string { return s.paths }

// BlobHash is the Git blob id of a file: equal ids mean equal content.
func (s *Snapshot) BlobHash(path string) (string, bool) {
	h, ok := s.blobs[path]
	return h.String(), ok
}

// ReadFile returns a file's content; fs.ErrNotExist when absent.
func (s *Snapshot) ReadFile(path string) ([]byte, error) {
	h, ok := s.blobs[path]
	if !ok {
		return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	b, err := s.repo.readBlob(h)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}
