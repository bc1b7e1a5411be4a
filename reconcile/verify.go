package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/render"
)

// # Verification
//
// The planner trusts the plaintext metadata of committed files (serial,
// expiry, names: committed.Read). Verifying a file decrypts it, which
// checks SOPS's MAC, and checks that this metadata is what the
// certificate inside says (render.Verify). It finds files corrupted or
// edited by hand (State.Corrupt: the planner repairs them) and tells
// `certsync status` which files were checked (Result.Verified).
//
// Decryption is nearly all a verification costs (~0.3 ms of CPU per
// file), so a new agent verifying 10,000 files would spend 3 CPU-seconds
// before its first plan, and so would every new process. Hence:
//
//   - what was checked is remembered by path and blob id: across passes
//     (the parse cache) and across processes (Config.VerifiedStore). A
//     blob is decrypted to verify it once per agent and key set, not once
//     per process.
//   - a pass checks at most Config.VerifyPerPass files not checked yet,
//     in path order from where the previous pass stopped, so each is
//     checked within ceil(unchecked/VerifyPerPass) passes: 20 passes (20
//     minutes at the default interval) for a new agent with 10,000 files.
//   - a file a pass acts on (applies, copies, re-encrypts, renews or
//     reuses the key of) is checked before the action runs, whatever the
//     budget: no action carries forward a file nobody checked. A
//     re-render checks its source itself, a reused carried commit too.
//   - the plan does not wait for the rest: it rests on the plaintext
//     metadata whether or not it was checked yet, and verification can
//     only confirm it or send the file to repair. A corrupt file not
//     reached yet is repaired by the pass that reaches it, or at once if
//     a pass acts on it.

// DefaultVerifyPerPass is how many committed files not verified yet a
// pass decrypts to verify them (Config.VerifyPerPass): ~0.15 CPU-seconds,
// and 10,000 files checked within 20 passes.
const DefaultVerifyPerPass = 500

// Checked is what verifying one committed blob found, as a VerifiedStore
// keeps it. Corrupt files are not kept: a new process finds them again.
type Checked struct {
	// Blob is the file's content hash (BlobHasher): a new blob at the
	// same path is checked again.
	Blob string
	// Verified: decrypted, MAC and metadata matched. False: no identity
	// of the agent opens the file, so it stays unverified.
	Verified bool
}

// VerifiedStore keeps what verification found across processes, so a new
// process (a one-shot `certsync reconcile`, a restarted agent) does not
// decrypt every committed file again. It must only hold results for the
// agent's current decryption identities: results found with other keys
// must not be loaded (a file another key opened may not open with this
// one).
type VerifiedStore interface {
	// Load returns what was saved, by path. A Reconciler calls it once; an
	// error (an unreadable or garbled store) is logged and the store is
	// taken as empty.
	Load(ctx context.Context) (map[string]Checked, error)
	// Save replaces everything the store holds with checked: the files of
	// the current tree only, so the store never outgrows the repository.
	Save(ctx context.Context, checked map[string]Checked) error
}

// verifier is the verification state a Reconciler keeps between passes.
type verifier struct {
	once sync.Once
	// stored is the store's content as loaded, used by the passes that
	// meet files not checked in this process; nil once every file of a
	// tree was matched against it.
	stored map[string]Checked
	// saved digests what the store holds (see checkedDigest); dirty asks
	// for a save at the next pass (a save failed).
	saved string
	dirty bool
	// paths is how many records the last pass saw; waiting how many of
	// them wait for a later pass's budget.
	paths, waiting int
	// cursor is the last path the previous pass checked within its
	// budget: the next pass goes on after it.
	cursor string
}

// load reads the store once per Reconciler.
func (r *Reconciler) loadVerified(ctx context.Context) {
	r.verify.once.Do(func() {
		if r.cfg.VerifiedStore == nil {
			return
		}
		stored, err := r.cfg.VerifiedStore.Load(ctx)
		if err != nil {
			r.log.Info("verification results of earlier runs not read; committed files are verified again", "error", err)
			return
		}
		r.verify.stored = stored
		paths := slices.Sorted(func(yield func(string) bool) {
			for p := range stored {
				if !yield(p) {
					return
				}
			}
		})
		r.verify.saved = checkedDigest(paths, func(p string) (Checked, bool) { c, ok := stored[p]; return c, ok })
	})
}

// verifyRecords is the verification step of readState: it marks records
// the store knows, checks up to the pass's budget of the rest and saves
// what changed. fresh is how many records parse read anew.
func (r *Reconciler) verifyRecords(ctx context.Context, p *pass, fresh int) {
	if !r.cfg.VerifyCommitted {
		return
	}
	r.loadVerified(ctx)
	g := p.gen
	var todo []string // not checked, in path order
	for _, path := range p.recordPaths {
		rec, st := g.record(path)
		if st.err != nil || st.checked {
			continue
		}
		if !rec.Encrypted { // plaintext: nothing to decrypt; planned as exposed
			st.checked = true
			p.setState(path, st)
			continue
		}
		if s, ok := r.verify.stored[path]; ok && st.hashed && blobMatches(s.Blob, st.blob) {
			st.checked, st.verified = true, s.Verified
			p.setState(path, st)
			continue
		}
		todo = append(todo, path)
	}
	if len(r.verify.stored) > 0 && ctx.Err() == nil {
		r.verify.stored = nil // every file of this tree was matched against it
	}
	budget := r.cfg.VerifyPerPass
	if g.hasher == nil || budget < 0 {
		// Without blob ids nothing is remembered between passes: a budget
		// would never see every file checked at once.
		budget = len(todo)
	}
	pick := r.verify.pick(todo, budget)
	n := r.check(ctx, p, pick)
	r.verify.waiting = len(todo) - n
	if len(todo) > 0 {
		r.log.Info("verified committed files", "verified", n, "waiting", len(todo)-n)
	}
	r.saveVerified(ctx, p, fresh+n)
}

// pick takes up to budget paths of todo (sorted), starting after the
// cursor and wrapping around, and moves the cursor to the last one.
func (v *verifier) pick(todo []string, budget int) []string {
	if budget >= len(todo) {
		if len(todo) > 0 {
			v.cursor = todo[len(todo)-1]
		}
		return todo
	}
	i, _ := sort.Find(len(todo), func(i int) int {
		switch {
		case v.cursor < todo[i]:
			return -1
		case v.cursor > todo[i]:
			return 1
		}
		return 1 // the cursor itself was checked: start after it
	})
	out := make([]string, 0, budget)
	out = append(out, todo[i:min(len(todo), i+budget)]...)
	out = append(out, todo[:budget-len(out)]...)
	v.cursor = out[len(out)-1]
	return out
}

// verifyActedOn checks, whatever the budget, the committed files the
// plan's actions read: the source of an Apply, a Copy, a Reencrypt, and
// the committed file an order renews from (its key may be reused, ARI
// names its certificate). It reports whether one was found corrupt: the
// plan must then be made again, to repair it instead.
func (r *Reconciler) verifyActedOn(ctx context.Context, p *pass, plan Plan) bool {
	if !r.cfg.VerifyCommitted {
		return false
	}
	var todo []string
	for _, a := range plan.Actions {
		switch {
		case a.Kind == Apply, a.Kind == Copy, a.Kind == Reencrypt:
		case a.Kind.Orders() && a.Committed != nil:
		default:
			continue // a Rerender verifies its source itself
		}
		path := a.source()
		if st, ok := p.gen.files[path]; ok && st.err == nil && !st.checked && !slices.Contains(todo, path) {
			todo = append(todo, path)
		}
	}
	if len(todo) == 0 {
		return false
	}
	sort.Strings(todo)
	n := r.check(ctx, p, todo)
	r.log.Info("verified the committed files this pass acts on", "verified", n)
	r.saveVerified(ctx, p, n)
	corrupt := false
	for _, path := range todo {
		if err := p.gen.files[path].corrupt; err != nil {
			p.state.Corrupt[path], corrupt = err, true
			r.log.Warn("committed file failed verification; it will be repaired", "path", path, "error", err)
		}
	}
	return corrupt
}

// check verifies the records at paths, one worker per CPU, and records
// the outcome in the pass (verified, corrupt) and the parse cache. It
// returns how many it decrypted.
func (r *Reconciler) check(ctx context.Context, p *pass, paths []string) int {
	if len(paths) == 0 {
		return 0
	}
	type job struct {
		i       int
		content []byte
	}
	out := make([]fileState, len(paths))
	jobs := make(chan job, 64)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(paths)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				// Reads of the generation's records only: its states
				// are written after the workers are done.
				out[j.i] = checkRecord(ctx, p.enc, paths[j.i], j.content, p.gen.committed[paths[j.i]], out[j.i])
			}
		}()
	}
	for i, path := range paths {
		out[i] = p.gen.files[path]
		if ctx.Err() != nil {
			continue
		}
		content, err := p.tree.ReadFile(path)
		if err != nil {
			continue // parse read it; a tree that lost it is checked next pass
		}
		jobs <- job{i: i, content: content}
	}
	close(jobs)
	wg.Wait()
	n := 0
	for i, path := range paths {
		st := out[i]
		if !st.checked {
			continue
		}
		n++
		p.setState(path, st)
	}
	p.decrypted += n
	return n
}

// checkRecord verifies one committed Secret against what SOPS's MAC
// covers: it decrypts the file (which checks the MAC) and compares the
// plaintext metadata the planner trusts with the certificate inside. A
// file the agent has no key for is checked but left unverified, not
// called corrupt: a missing key must never trigger orders. A pass being
// stopped leaves the record unchecked.
func checkRecord(ctx context.Context, enc Encrypter, path string, content []byte, rec committed.Certificate, st fileState) fileState {
	s, err := openSecret(ctx, enc, path, content)
	switch {
	case ctx.Err() != nil:
		return st
	case errors.Is(err, ErrNoKey):
	case err != nil:
		st.corrupt = err
	default:
		if err := render.Verify(s, rec); err != nil {
			st.corrupt = fmt.Errorf("%s: %w", path, err)
		} else {
			st.verified = true
		}
	}
	st.checked = true
	return st
}

// saveVerified saves what the pass's tree is known to hold, when it
// differs from what the store holds. changed counts the records read
// anew or checked by the pass: with none, and as many records as the
// previous pass, nothing can differ and nothing is digested.
func (r *Reconciler) saveVerified(ctx context.Context, p *pass, changed int) {
	v := &r.verify
	if r.cfg.VerifiedStore == nil || p.gen.hasher == nil {
		return
	}
	if changed == 0 && len(p.recordPaths) == v.paths && !v.dirty {
		return
	}
	v.paths = len(p.recordPaths)
	known := func(path string) (Checked, bool) {
		rec, st := p.gen.record(path)
		if st.err != nil || !st.checked || st.corrupt != nil || !rec.Encrypted || !st.hashed {
			return Checked{}, false
		}
		return Checked{Blob: hex.EncodeToString(st.blob[:]), Verified: st.verified}, true
	}
	digest := checkedDigest(p.recordPaths, known)
	if digest == v.saved && !v.dirty {
		return
	}
	checked := make(map[string]Checked, len(p.recordPaths))
	for _, path := range p.recordPaths {
		if c, ok := known(path); ok {
			checked[path] = c
		}
	}
	if err := r.cfg.VerifiedStore.Save(ctx, checked); err != nil {
		v.dirty = true
		r.log.Info("verification results not saved; the next process verifies those files again", "error", err)
		return
	}
	v.saved, v.dirty = digest, false
}

// checkedDigest digests the results known for paths (sorted), so a pass
// can tell whether the store already holds them without keeping a copy.
func checkedDigest(paths []string, known func(string) (Checked, bool)) string {
	h := sha256.New()
	for _, path := range paths {
		if c, ok := known(path); ok {
			fmt.Fprintf(h, "%s\x00%s\x00%t\n", path, c.Blob, c.Verified)
		}
	}
	return string(h.Sum(nil))
}

// setState records what verification found for path in the pass and in
// the parse cache, for the passes after it.
func (p *pass) setState(path string, st fileState) {
	p.verified[path] = st.verified
	p.gen.setState(path, st)
}

// blobMatches reports whether a VerifiedStore's blob id (hex) is id,
// without building the hex string of every file a pass compares.
func blobMatches(stored string, id BlobID) bool {
	var buf [2 * len(BlobID{})]byte
	hex.Encode(buf[:], id[:])
	return string(buf[:]) == stored
}
