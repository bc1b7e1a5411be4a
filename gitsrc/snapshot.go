package gitsrc

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Snapshot is a read-only view of one commit. Listing paths reads tree
// objects only; file contents are read on demand.
type Snapshot struct {
	repo *Repo
	hash plumbing.Hash
	tree *object.Tree

	// The file index is built on first use: a commit made only to be the
	// parent of the next one (certsync commits each certificate locally)
	// never needs it, and walking 10,000 entries per commit would cost
	// more than the commit.
	// paths lists every file, sorted, and blobs holds their blob ids in
	// the same order: two slices searched by path take half the memory
	// of a map from path to id (20,000 files: ~0.7 MB, not ~1.5 MB), for
	// as long as the pass and the parse cache keep the snapshot.
	once     sync.Once
	indexErr error
	paths    []string
	blobs    []plumbing.Hash
}

// snapshot reads commit h and lists its files.
func (r *Repo) snapshot(h plumbing.Hash) (*Snapshot, error) {
	s, err := r.lazySnapshot(h)
	if err != nil {
		return nil, err
	}
	return s, s.index()
}

// lazySnapshot reads commit h; its files are listed on first use.
func (r *Repo) lazySnapshot(h plumbing.Hash) (*Snapshot, error) {
	s := &Snapshot{repo: r, hash: h}
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
	return s, nil
}

func (s *Snapshot) index() error {
	s.once.Do(func() {
		if s.tree == nil {
			return
		}
		if err := s.walk(s.tree, ""); err != nil {
			s.indexErr = fmt.Errorf("list files of %s: %w", s.hash, err)
			return
		}
		// Git orders a tree's entries by name, a folder's name followed
		// by "/", which lists the paths in byte order; the search in blob
		// relies on it, so a tree written otherwise is sorted here.
		if !sort.StringsAreSorted(s.paths) {
			sort.Sort(byPath{s})
		}
	})
	return s.indexErr
}

// byPath sorts the index by path, keeping each blob id with its path.
type byPath struct{ s *Snapshot }

func (b byPath) Len() int           { return len(b.s.paths) }
func (b byPath) Less(i, j int) bool { return b.s.paths[i] < b.s.paths[j] }
func (b byPath) Swap(i, j int) {
	b.s.paths[i], b.s.paths[j] = b.s.paths[j], b.s.paths[i]
	b.s.blobs[i], b.s.blobs[j] = b.s.blobs[j], b.s.blobs[i]
}

// blob finds path in the index.
func (s *Snapshot) blob(path string) (plumbing.Hash, bool) {
	i, found := sort.Find(len(s.paths), func(i int) int { return strings.Compare(path, s.paths[i]) })
	if !found {
		return plumbing.ZeroHash, false
	}
	return s.blobs[i], true
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
			s.paths = append(s.paths, p)
			s.blobs = append(s.blobs, e.Hash)
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

// Paths lists every file, sorted (none if the tree could not be read;
// ReadFile then says why).
func (s *Snapshot) Paths() []string {
	s.index()
	return s.paths
}

// BlobHash is the Git blob id of a file: equal ids mean equal content.
func (s *Snapshot) BlobHash(path string) ([20]byte, bool) {
	if s.index() != nil {
		return [20]byte{}, false
	}
	return s.blob(path)
}

// ReadFile returns a file's content; fs.ErrNotExist when absent.
func (s *Snapshot) ReadFile(path string) ([]byte, error) {
	if err := s.index(); err != nil {
		return nil, err
	}
	h, ok := s.blob(path)
	if !ok {
		return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	b, err := s.repo.readBlob(h)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}
