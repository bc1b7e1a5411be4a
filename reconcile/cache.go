package reconcile

import (
	"fmt"
	"sync"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
)

// BlobHasher is the optional capability of a Tree that knows each file's
// content hash (a Git blob id). With it, a pass re-reads and re-parses only
// files that changed since the previous pass: with nothing due, a pass over
// 10,000 certificates touches the tree's entries, not its blobs.
type BlobHasher interface {
	BlobHash(path string) (string, bool)
}

// parseCache remembers what each file parsed to, keyed by path and blob
// hash. Each pass builds a new generation holding only the files it saw,
// so the cache never outgrows the repository.
type parseCache struct {
	mu   sync.Mutex
	last *generation
}

type generation struct {
	tree    Tree
	hasher  BlobHasher
	prev    *generation
	records map[string]cachedRecord
	decls   map[string]declared.Set
}

type cachedRecord struct {
	rec committed.Certificate
	err error
}

func (c *parseCache) next(tree Tree) *generation {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := &generation{tree: tree, prev: c.last, records: map[string]cachedRecord{}, decls: map[string]declared.Set{}}
	g.hasher, _ = tree.(BlobHasher)
	return g
}

func (c *parseCache) store(g *generation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g.prev = nil // drop the old generation: only files of this tree stay
	c.last = g
}

// key is path and content hash, or "" when the tree cannot tell.
func (g *generation) key(path string) string {
	if g.hasher == nil {
		return ""
	}
	h, ok := g.hasher.BlobHash(path)
	if !ok {
		return ""
	}
	return path + "\x00" + h
}

func (g *generation) record(path string) (committed.Certificate, error) {
	k := g.key(path)
	if k != "" && g.prev != nil {
		if c, ok := g.prev.records[k]; ok {
			g.records[k] = c
			return c.rec, c.err
		}
	}
	content, err := g.tree.ReadFile(path)
	if err != nil {
		return committed.Certificate{}, fmt.Errorf("read %s: %w", path, err)
	}
	rec, err := committed.Read(path, content)
	if k != "" {
		g.records[k] = cachedRecord{rec, err}
	}
	return rec, err
}

func (g *generation) declarations(path string) (declared.Set, error) {
	k := g.key(path)
	if k != "" && g.prev != nil {
		if s, ok := g.prev.decls[k]; ok {
			g.decls[k] = s
			return s, nil
		}
	}
	content, err := g.tree.ReadFile(path)
	if err != nil {
		return declared.Set{}, fmt.Errorf("read %s: %w", path, err)
	}
	s := declared.ParseFile(declared.File{Path: path, Content: content})
	if k != "" {
		g.decls[k] = s
	}
	return s, nil
}
