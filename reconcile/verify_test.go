package reconcile

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certsync/certsync/committed"
)

// hashedTree is memTree with blob ids, as a Git snapshot has them: what
// lets a Reconciler remember files between passes and processes.
type hashedTree struct{ *memTree }

func (t hashedTree) BlobHash(path string) (BlobID, bool) {
	b, ok := t.files[path]
	if !ok {
		return BlobID{}, false
	}
	h := sha256.Sum256(b)
	return BlobID(h[:len(BlobID{})]), true
}

// hashedRepo is memRepo handing out hashedTrees.
type hashedRepo struct{ *memRepo }

func unhash(t Tree) Tree {
	if h, ok := t.(hashedTree); ok {
		return h.memTree
	}
	return t
}

func (r hashedRepo) Fetch(ctx context.Context) (Tree, error) {
	t, err := r.memRepo.Fetch(ctx)
	return hashedTree{t.(*memTree)}, err
}
func (r hashedRepo) Local(ctx context.Context) (Tree, error) {
	t, err := r.memRepo.Local(ctx)
	return hashedTree{t.(*memTree)}, err
}
func (r hashedRepo) Reset(ctx context.Context, to Tree) error {
	return r.memRepo.Reset(ctx, unhash(to))
}
func (r hashedRepo) Commit(ctx context.Context, parent Tree, changes []FileChange, msg string) (Tree, error) {
	t, err := r.memRepo.Commit(ctx, unhash(parent), changes, msg)
	if err != nil {
		return nil, err
	}
	return hashedTree{t.(*memTree)}, nil
}

// edit replaces the remote's file at path, as a push by someone else.
func (r hashedRepo) edit(t *testing.T, path string, change func(string) string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	next := &memTree{id: r.remote.id + "+edit", files: maps.Clone(r.remote.files), parent: r.remote}
	old, ok := next.files[path]
	if !ok {
		t.Fatalf("no %s to edit", path)
	}
	next.files[path] = []byte(change(string(old)))
	r.remote, r.local = next, next
}

// countingEnc is fakeEnc counting decryptions by path.
type countingEnc struct {
	fakeEnc
	mu sync.Mutex
	n  map[string]int
}

func (e *countingEnc) Decrypt(ctx context.Context, path string, c []byte) ([]byte, error) {
	e.mu.Lock()
	e.n[path]++
	e.mu.Unlock()
	return e.fakeEnc.Decrypt(ctx, path, c)
}

func (e *countingEnc) total() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.n {
		n += c
	}
	return n
}

// memStore is a VerifiedStore in memory: one per key set, shared by the
// Reconcilers standing for successive processes.
type memStore struct {
	mu    sync.Mutex
	m     map[string]Checked
	saves atomic.Int32
}

func (s *memStore) Load(context.Context) (map[string]Checked, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m), nil
}

func (s *memStore) Save(_ context.Context, m map[string]Checked) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = maps.Clone(m)
	s.saves.Add(1)
	return nil
}

// garbledStore cannot be read or written.
type garbledStore struct{}

func (garbledStore) Load(context.Context) (map[string]Checked, error) {
	return nil, errors.New("certsync_verified: checksum mismatch: garbled")
}
func (garbledStore) Save(context.Context, map[string]Checked) error {
	return errors.New("read-only file system")
}

// issuedRepo is a repository whose n certificates (c0…) were issued and
// committed by an agent that verified nothing.
func issuedRepo(t *testing.T, n int, ca *testCA, now *time.Time) hashedRepo {
	t.Helper()
	files := map[string]string{"le.yaml": testIssuer}
	for i := range n {
		name := fmt.Sprintf("c%d", i)
		files[name+".yaml"] = testCert(name)
	}
	repo := hashedRepo{newMemRepo(files)}
	res, err := newTestReconciler(t, repo.memRepo, ca, now).Reconcile(context.Background(), Options{})
	if err != nil || len(res.Issued) != n {
		t.Fatalf("issue: %v, %d issued", err, len(res.Issued))
	}
	return repo
}

// verifyingReconciler is a new process of an agent that holds the key.
func verifyingReconciler(t *testing.T, repo Repository, enc Encrypter, store VerifiedStore, budget int, cluster Cluster, ca *testCA, now *time.Time) *Reconciler {
	t.Helper()
	cfg := testConfig(repo, enc, ca, now)
	cfg.Cluster, cfg.VerifyCommitted, cfg.VerifyPerPass, cfg.VerifiedStore = cluster, true, budget, store
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func secretFile(name string) string { return committed.SecretPath("default", "ns", name+"-tls") }

// corruptSerial makes a file's plaintext serial disagree with the
// certificate inside, as a hand edit would.
var serialLine = regexp.MustCompile(`(?m)^(\s*` + regexp.QuoteMeta(committed.AnnotationSerial) + `:).*$`)

func corruptSerial(s string) string { return serialLine.ReplaceAllString(s, `$1 "0badbad0"`) }

func mustPass(t *testing.T, r *Reconciler) *Result {
	t.Helper()
	res, err := r.Reconcile(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func allVerified(res *Result) bool {
	for _, ok := range res.Verified {
		if !ok {
			return false
		}
	}
	return len(res.Verified) > 0
}

// A new process with the same store decrypts nothing its predecessor
// verified; a store of other keys (empty) verifies again; a changed blob
// is verified again, and only it.
func TestVerificationRememberedAcrossProcesses(t *testing.T) {
	ca, now := newTestCA(t), t0
	repo := issuedRepo(t, 3, ca, &now)
	store := &memStore{}
	for _, step := range []struct {
		name      string
		store     VerifiedStore
		edit      string // a file changed before the pass, content still sound
		decrypted int
	}{
		{name: "first process verifies every file", store: store, decrypted: 3},
		{name: "a new process verifies nothing again", store: store, decrypted: 0},
		{name: "another key set's (empty) store verifies again", store: &memStore{}, decrypted: 3},
		{name: "a garbled store counts as empty", store: garbledStore{}, decrypted: 3},
		{name: "a changed blob is verified again", store: store, edit: secretFile("c1"), decrypted: 1},
		{name: "and remembered", store: store, decrypted: 0},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.edit != "" {
				repo.edit(t, step.edit, func(s string) string { return "# touched\n" + s })
			}
			enc := &countingEnc{n: map[string]int{}}
			res := mustPass(t, verifyingReconciler(t, repo, enc, step.store, 0, nil, ca, &now))
			if res.Decrypted != step.decrypted || enc.total() != step.decrypted {
				t.Errorf("decrypted %d (Result.Decrypted %d), want %d: %v", enc.total(), res.Decrypted, step.decrypted, enc.n)
			}
			if step.edit != "" && enc.n[step.edit] != 1 {
				t.Errorf("the changed file was decrypted %d times, want 1", enc.n[step.edit])
			}
			if !allVerified(res) || len(res.Verified) != 3 {
				t.Errorf("verified %v, want every file", res.Verified)
			}
			if res.Plan.HasChanges() {
				t.Errorf("plan %v, want nothing to do", res.Plan.Actions)
			}
		})
	}
	if len(store.m) != 3 {
		t.Errorf("the store holds %d files, want the tree's 3", len(store.m))
	}
}

// With a budget, a pass verifies at most that many files, each file once,
// and a corrupt file is found within ceil(files/budget) passes and
// repaired; every file is verified in the end, across processes too.
func TestVerificationBudgetFindsCorruptFile(t *testing.T) {
	for _, corrupt := range []string{"c0", "c4"} { // first and last in path order
		t.Run(corrupt, func(t *testing.T) {
			ca, now := newTestCA(t), t0
			repo := issuedRepo(t, 5, ca, &now)
			repo.edit(t, secretFile(corrupt), corruptSerial)
			store := &memStore{}
			enc := &countingEnc{n: map[string]int{}}
			r := verifyingReconciler(t, repo, enc, store, 2, nil, ca, &now)
			repairedAt := 0
			for pass := 1; pass <= 3; pass++ {
				res := mustPass(t, r)
				if res.Decrypted > 2 {
					t.Errorf("pass %d decrypted %d files, budget 2", pass, res.Decrypted)
				}
				for _, is := range res.Issued {
					if is.Certificate == "ns/"+corrupt && strings.Contains(is.Reason, "failed verification") {
						repairedAt = pass
					} else {
						t.Errorf("pass %d issued %s: %s", pass, is.Certificate, is.Reason)
					}
				}
			}
			if repairedAt == 0 {
				t.Fatalf("the corrupt %s was not repaired within 3 passes (decrypted %v)", corrupt, enc.n)
			}
			for path, n := range enc.n {
				// The repair is a new blob at the same path, verified too.
				if want := 1; n != want && !(path == secretFile(corrupt) && n == 2) {
					t.Errorf("%s decrypted %d times, want once per blob", path, n)
				}
			}
			// The repaired file is a new blob: a later pass verifies it, and
			// a new process then has nothing left to verify.
			if res := mustPass(t, r); !allVerified(res) {
				t.Errorf("after the budget's passes, verified %v", res.Verified)
			}
			enc2 := &countingEnc{n: map[string]int{}}
			res := mustPass(t, verifyingReconciler(t, repo, enc2, store, 2, nil, ca, &now))
			if res.Decrypted != 0 || !allVerified(res) {
				t.Errorf("new process: decrypted %d, verified %v", res.Decrypted, res.Verified)
			}
		})
	}
}

// Files a pass acts on are verified first, whatever the budget: a new
// agent applying to an empty cluster checks every file it applies, and a
// corrupt one is repaired instead of applied.
func TestVerificationOfFilesActedOn(t *testing.T) {
	ca, now := newTestCA(t), t0
	repo := issuedRepo(t, 4, ca, &now)
	repo.edit(t, secretFile("c2"), corruptSerial)
	cluster := &recordingCluster{}
	enc := &countingEnc{n: map[string]int{}}
	res := mustPass(t, verifyingReconciler(t, repo, enc, &memStore{}, 1, cluster, ca, &now))
	if res.Decrypted != 4 {
		t.Errorf("decrypted %d files to verify them, want the 4 applied (budget 1)", res.Decrypted)
	}
	if len(res.Issued) != 1 || res.Issued[0].Certificate != "ns/c2" || !strings.Contains(res.Issued[0].Reason, "failed verification") {
		t.Fatalf("issued %+v, want ns/c2 repaired", res.Issued)
	}
	got := slices.Sorted(maps.Keys(cluster.secrets))
	if want := []string{"ns/c0-tls", "ns/c1-tls", "ns/c2-tls", "ns/c3-tls"}; !slices.Equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	if serial := cluster.secrets["ns/c2-tls"].Annotations[committed.AnnotationSerial]; serial != res.Issued[0].Serial {
		t.Errorf("ns/c2-tls applied with serial %q, want the repaired %q", serial, res.Issued[0].Serial)
	}
}

// pick rotates through what is not verified yet, budget by budget.
func TestVerifierPick(t *testing.T) {
	todo := []string{"a", "b", "c", "d", "e"}
	for _, tc := range []struct {
		cursor string
		budget int
		want   []string
		next   string
	}{
		{cursor: "", budget: 2, want: []string{"a", "b"}, next: "b"},
		{cursor: "b", budget: 2, want: []string{"c", "d"}, next: "d"},
		{cursor: "d", budget: 2, want: []string{"e", "a"}, next: "a"},
		{cursor: "bb", budget: 2, want: []string{"c", "d"}, next: "d"}, // the cursor's file is gone
		{cursor: "e", budget: 3, want: []string{"a", "b", "c"}, next: "c"},
		{cursor: "c", budget: 9, want: todo, next: "e"},
	} {
		v := verifier{cursor: tc.cursor}
		if got := v.pick(todo, tc.budget); !slices.Equal(got, tc.want) || v.cursor != tc.next {
			t.Errorf("cursor %q budget %d: picked %v (cursor %q), want %v (cursor %q)", tc.cursor, tc.budget, got, v.cursor, tc.want, tc.next)
		}
	}
}
