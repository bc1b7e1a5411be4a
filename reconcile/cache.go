package reconcile

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
)

// BlobID is a file's content id: a Git blob id, or any other 20-byte
// digest of the content. Equal ids mean equal content.
type BlobID = [20]byte

// BlobHasher is the optional capability of a Tree that knows each file's
// content id (a Git blob id). With it, a pass re-reads and re-parses only
// files that changed since the previous pass: with nothing due, a pass over
// 10,000 certificates touches the tree's entries, not its blobs.
type BlobHasher interface {
	BlobHash(path string) (BlobID, bool)
}

// parseCache remembers what each file parsed to, by path and blob id.
// Each pass builds a new generation holding only the files it saw, so the
// cache never outgrows the repository.
type parseCache struct {
	mu   sync.Mutex
	last *generation
}

// generation is what one pass parsed of its tree. It is also the pass's
// own record of the committed files (no second copy): the pass's
// State.Committed is the generation's committed map, which is never
// written once parse returns (Result.Records hands it out; writers clone
// it first, see batch.go). A map of 10,000 records of ~550 bytes each is
// the largest thing an idle agent holds, so it is held once.
type generation struct {
	tree   Tree
	hasher BlobHasher
	prev   *generation
	// committed are the records of the committed files that could be
	// read, by path; files is what is known of every committed file read
	// (its blob, and what parsing and verifying it found), by path.
	committed map[string]committed.Certificate
	files     map[string]fileState
	// decls are the declarations of each manifest file, by path; their
	// Certificates share the pass's combined set (see shareCertificates).
	decls map[string]cachedDecls
	// stored are the records an earlier process saved (RecordStore), for
	// the first generation of this one, which has no prev.
	stored StoredRecords
}

// fileState is what parsing and verifying one committed file found.
type fileState struct {
	// blob is the file's content id when hashed (the tree is a
	// BlobHasher): a later pass reuses the entry only for the same blob.
	blob   BlobID
	hashed bool
	// err: the file's plaintext metadata could not be read (the record is
	// not in committed).
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

type cachedDecls struct {
	blob BlobID
	set  declared.Set
}

func (c *parseCache) next(tree Tree) *generation {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := &generation{tree: tree, prev: c.last}
	g.hasher, _ = tree.(BlobHasher)
	return g
}

func (c *parseCache) store(g *generation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g.prev = nil // drop the old generation: only files of this tree stay
	c.last = g
}

// blob is the content id of path; false when the tree cannot tell.
func (g *generation) blob(path string) (BlobID, bool) {
	if g.hasher == nil {
		return BlobID{}, false
	}
	return g.hasher.BlobHash(path)
}

// record is what the generation holds for a committed file it read: its
// record (zero when st.err says it could not be read) and its state.
func (g *generation) record(path string) (rec committed.Certificate, st fileState) {
	return g.committed[path], g.files[path]
}

// setState records what verification found for a file this generation
// read.
func (g *generation) setState(path string, st fileState) {
	if _, ok := g.files[path]; ok {
		g.files[path] = st
	}
}

// reuseRecord copies the previous generation's entry for path into g when
// the file's blob did not change.
func (g *generation) reuseRecord(path string, blob BlobID, hashed bool) bool {
	prev := g.prev
	if !hashed {
		return false
	}
	if prev == nil {
		// A new process: what an earlier one read (see RecordStore),
		// whose records committed starts from.
		if stored, ok := g.stored.Blobs[path]; !ok || stored != blob {
			delete(g.committed, path) // read again, or unreadable now
			return false
		}
		g.files[path] = fileState{blob: blob, hashed: true}
		return true
	}
	st, ok := prev.files[path]
	if !ok || !st.hashed || st.blob != blob {
		return false
	}
	if rec, ok := prev.committed[path]; ok {
		g.committed[path] = rec
	}
	g.files[path] = st
	return true
}

func (g *generation) reuseDecls(path string, blob BlobID, hashed bool) (declared.Set, bool) {
	if g.prev == nil || !hashed {
		return declared.Set{}, false
	}
	d, ok := g.prev.decls[path]
	if !ok || d.blob != blob {
		return declared.Set{}, false
	}
	return d.set, true
}

// parse reads the committed records and declarations at the given paths,
// reusing the previous pass's results for files whose blob did not change.
// Changed files are read in order (Git object reads) and parsed by one
// worker per CPU: parsing, not reading, dominates a cold pass. Nothing is
// decrypted here: verification is its own step (verify.go). Records go
// into the generation (committed, files); declaration sets come back in
// the order of declPaths; fresh counts the records that were not the
// previous pass's.
func (g *generation) parse(ctx context.Context, layout committed.Layout, recordPaths, declPaths []string) (decls []declared.Set, fresh int, err error) {
	type job struct {
		i      int
		path   string
		decl   bool
		blob   BlobID
		hashed bool
	}
	g.committed = g.stored.Records
	if g.committed == nil {
		g.committed = make(map[string]committed.Certificate, len(recordPaths))
	}
	g.files = make(map[string]fileState, len(recordPaths))
	g.decls = make(map[string]cachedDecls, len(declPaths))
	decls = make([]declared.Set, len(declPaths))
	declErrs := make([]error, len(declPaths))
	// Workers put each record straight into the generation's maps (one
	// lock, short): a slice of every record beside the maps would hold
	// them twice while a cold pass reads 10,000 files.
	var mu sync.Mutex
	put := func(path string, rec committed.Certificate, st fileState) {
		mu.Lock()
		defer mu.Unlock()
		if st.err == nil {
			g.committed[path] = rec
		}
		g.files[path] = st
	}
	// The workers read the files too, not only parse them: reading
	// (inflating each blob from the pack) is a third of a cold pass, and
	// one goroutine feeding it to the others was the pass's critical
	// path (0.6-0.7 s of a one-shot pass over 10,000 certificates).
	jobs := make(chan job, 64)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				content, err := g.tree.ReadFile(j.path)
				if j.decl {
					if err != nil {
						declErrs[j.i] = fmt.Errorf("read %s: %w", j.path, err)
						continue
					}
					decls[j.i] = declared.ParseFile(declared.File{Path: j.path, Content: content})
					continue
				}
				if err != nil {
					put(j.path, committed.Certificate{}, fileState{blob: j.blob, hashed: j.hashed, err: fmt.Errorf("read %s: %w", j.path, err)})
					continue
				}
				rec, err := layout.Read(j.path, content)
				put(j.path, rec, fileState{blob: j.blob, hashed: j.hashed, err: err})
			}
		}()
	}
	feed := func() error {
		defer close(jobs)
		for _, path := range recordPaths {
			if err := ctx.Err(); err != nil {
				return err
			}
			blob, hashed := g.blob(path)
			mu.Lock()
			reused := g.reuseRecord(path, blob, hashed)
			mu.Unlock()
			if reused {
				continue
			}
			fresh++
			jobs <- job{path: path, blob: blob, hashed: hashed}
		}
		for i, path := range declPaths {
			if err := ctx.Err(); err != nil {
				return err
			}
			blob, hashed := g.blob(path)
			if s, ok := g.reuseDecls(path, blob, hashed); ok {
				decls[i] = s
				continue
			}
			jobs <- job{i: i, path: path, decl: true}
		}
		return nil
	}
	err = feed()
	wg.Wait()
	if g.stored.Records != nil {
		// Adopted records of files no longer in the tree.
		for path := range g.committed {
			if _, ok := g.files[path]; !ok {
				delete(g.committed, path)
			}
		}
		g.stored = StoredRecords{}
	}
	if err == nil {
		// The first unreadable manifest in path order, as when one
		// goroutine read them in turn.
		err = firstError(declErrs)
	}
	if err != nil {
		return nil, 0, err
	}
	for i, path := range declPaths {
		if blob, hashed := g.blob(path); hashed {
			g.decls[path] = cachedDecls{blob: blob, set: decls[i]}
		}
	}
	return decls, fresh, nil
}

// firstError is the first non-nil error of errs, or nil.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// shareCertificates points the cached declarations of each file at their
// copies in combined, the set Combine made of parts (in the order of
// declPaths), so the pass and the cache hold one copy of every
// Certificate (~700 bytes each) instead of two. It does so only when
// Combine kept every Certificate in order, which is when the offsets
// match; a repository with a duplicate or an unknown issuer keeps both.
func (g *generation) shareCertificates(declPaths []string, parts []declared.Set, combined []declared.Certificate) {
	total := 0
	for _, p := range parts {
		total += len(p.Certificates)
	}
	if total != len(combined) {
		return
	}
	off := 0
	for i, path := range declPaths {
		n := len(parts[i].Certificates)
		if d, ok := g.decls[path]; ok && n > 0 {
			// Capped: nothing appended to a cached set can reach the
			// next file's certificates.
			d.set.Certificates = combined[off : off+n : off+n]
			g.decls[path] = d
		}
		off += n
	}
}
