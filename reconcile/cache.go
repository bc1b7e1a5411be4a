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
	// checked: verification ran to its end (see verify.go). verified: the
	// file was decrypted, its MAC checked and its metadata matched the
	// certificate inside; corrupt: that check failed. Checked with
	// neither: no identity of the agent opens the file, or it is
	// plaintext (the planner re-issues that as exposed).
	checked  bool
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
	h := g.blob(path)
	if h == "" {
		return ""
	}
	return path + "\x00" + h
}

// blob is the content hash of path, "" when the tree cannot tell.
func (g *generation) blob(path string) string {
	if g.hasher == nil {
		return ""
	}
	h, _ := g.hasher.BlobHash(path)
	return h
}

// remember replaces what the generation holds for a record, once it was
// verified after parse.
func (g *generation) remember(path string, c cachedRecord) {
	if k := g.key(path); k != "" {
		g.records[k] = c
	}
}

// parse reads the committed records and declarations at the given paths,
// reusing the previous pass's results for files whose blob did not change.
// Changed files are read in order (Git object reads) and parsed by one
// worker per CPU: parsing, not reading, dominates a cold pass. Nothing is
// decrypted here: verification is its own step (verify.go). Records come
// back by path, declaration sets in the order of declPaths; fresh counts
// the records that were not the previous pass's.
func (g *generation) parse(ctx context.Context, layout committed.Layout, recordPaths, declPaths []string) (records map[string]cachedRecord, decls []declared.Set, fresh int, err error) {
	type job struct {
		i       int
		path    string
		decl    bool
		content []byte
	}
	recs := make([]cachedRecord, len(recordPaths))
	decls = make([]declared.Set, len(declPaths))
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
				recs[j.i] = cachedRecord{rec: rec, err: err}
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
				recs[i] = c
				continue
			}
			fresh++
			content, err := g.tree.ReadFile(path)
			if err != nil {
				recs[i] = cachedRecord{err: fmt.Errorf("read %s: %w", path, err)}
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
	err = feed()
	wg.Wait()
	if err != nil {
		return nil, nil, 0, err
	}
	records = make(map[string]cachedRecord, len(recordPaths))
	for i, path := range recordPaths {
		records[path] = recs[i]
		if k := g.key(path); k != "" {
			g.records[k] = recs[i]
		}
	}
	for i, path := range declPaths {
		if k := g.key(path); k != "" {
			g.decls[k] = decls[i]
		}
	}
	return records, decls, fresh, nil
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
