package reconcile

import (
	"context"
	"fmt"
	"runtime"
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
	// verified: the file was decrypted, its MAC checked and its metadata
	// matched the certificate inside; corrupt: that check failed. Neither
	// is set when the pass could not try (no decryption key).
	verified bool
	corrupt  error
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

// verifyFunc checks a committed file against what its MAC covers; see
// Reconciler.verifyRecord.
type verifyFunc func(ctx context.Context, path string, content []byte, rec committed.Certificate) (verified bool, corrupt error)

// parse reads the committed records and declarations at the given paths,
// reusing the previous pass's results for files whose blob did not change.
// Changed files are read in order (Git object reads) and parsed by one
// worker per CPU: parsing, not reading, dominates a cold pass. Each new
// record blob is verified once (verify may be nil: no key). Records come
// back by path, declaration sets in the order of declPaths.
func (g *generation) parse(ctx context.Context, layout committed.Layout, recordPaths, declPaths []string, verify verifyFunc) (map[string]cachedRecord, []declared.Set, error) {
	type job struct {
		i       int
		path    string
		decl    bool
		content []byte
	}
	records := make([]cachedRecord, len(recordPaths))
	decls := make([]declared.Set, len(declPaths))
	jobs := make(chan job, 64)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if j.decl {
					decls[j.i] = declared.ParseFile(declared.File{Path: j.path, Content: j.content})
					continue
				}
				rec, err := layout.Read(j.path, j.content)
				c := cachedRecord{rec: rec, err: err}
				if err == nil && verify != nil {
					c.verified, c.corrupt = verify(ctx, j.path, j.content, rec)
				}
				records[j.i] = c
			}
		}()
	}
	feed := func() error {
		defer close(jobs)
		for i, path := range recordPaths {
			if err := ctx.Err(); err != nil {
				return err
			}
			if c, ok := g.prev.lookupRecord(g.key(path)); ok {
				records[i] = c
				continue
			}
			content, err := g.tree.ReadFile(path)
			if err != nil {
				records[i] = cachedRecord{err: fmt.Errorf("read %s: %w", path, err)}
				continue
			}
			jobs <- job{i: i, path: path, content: content}
		}
		for i, path := range declPaths {
			if err := ctx.Err(); err != nil {
				return err
			}
			if s, ok := g.prev.lookupDecls(g.key(path)); ok {
				decls[i] = s
				continue
			}
			content, err := g.tree.ReadFile(path)
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			jobs <- job{i: i, path: path, decl: true, content: content}
		}
		return nil
	}
	err := feed()
	wg.Wait()
	if err != nil {
		return nil, nil, err
	}
	out := make(map[string]cachedRecord, len(recordPaths))
	for i, path := range recordPaths {
		out[path] = records[i]
		if k := g.key(path); k != "" {
			g.records[k] = records[i]
		}
	}
	for i, path := range declPaths {
		if k := g.key(path); k != "" {
			g.decls[k] = decls[i]
		}
	}
	return out, decls, nil
}

func (g *generation) lookupRecord(key string) (cachedRecord, bool) {
	if g == nil || key == "" {
		return cachedRecord{}, false
	}
	c, ok := g.records[key]
	return c, ok
}

func (g *generation) lookupDecls(key string) (declared.Set, bool) {
	if g == nil || key == "" {
		return declared.Set{}, false
	}
	s, ok := g.decls[key]
	return s, ok
}
