package reconcile

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/certsync/certsync/committed"
)

// memRecords is a RecordStore in memory, counting saves.
type memRecords struct {
	mu    sync.Mutex
	saved StoredRecords
	saves int
}

func (s *memRecords) Load(context.Context) (StoredRecords, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return StoredRecords{Folder: s.saved.Folder, Records: maps.Clone(s.saved.Records), Blobs: maps.Clone(s.saved.Blobs)}, nil
}

func (s *memRecords) Save(_ context.Context, r StoredRecords) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saved = StoredRecords{Folder: r.Folder, Records: maps.Clone(r.Records), Blobs: maps.Clone(r.Blobs)}
	s.saves++
	return nil
}

type failingRecords struct{}

func (failingRecords) Load(context.Context) (StoredRecords, error) {
	return StoredRecords{}, errors.New("certsync_records was written by another build of certsync")
}
func (failingRecords) Save(context.Context, StoredRecords) error {
	return errors.New("read-only file system")
}

// readCounting is hashedRepo whose trees count the reads of committed
// Secret files.
type readCounting struct {
	hashedRepo
	mu    sync.Mutex
	reads map[string]int
}

type countingTree struct {
	hashedTree
	r *readCounting
}

func (t countingTree) ReadFile(p string) ([]byte, error) {
	if strings.HasPrefix(p, committed.SecretsDir) {
		t.r.mu.Lock()
		t.r.reads[p]++
		t.r.mu.Unlock()
	}
	return t.hashedTree.ReadFile(p)
}

func (r *readCounting) Fetch(ctx context.Context) (Tree, error) {
	t, err := r.hashedRepo.Fetch(ctx)
	return countingTree{t.(hashedTree), r}, err
}

func (r *readCounting) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.reads {
		n += c
	}
	return n
}

// A new process with the same RecordStore reads no committed file its
// predecessor read, and plans the same; a changed file is read again, and
// only it; a store that cannot be read or written only costs the reads.
func TestRecordsRememberedAcrossProcesses(t *testing.T) {
	ca, now := newTestCA(t), t0
	repo := &readCounting{hashedRepo: issuedRepo(t, 3, ca, &now)}
	store := &memRecords{}
	var first *Result
	for _, step := range []struct {
		name  string
		store RecordStore
		edit  string
		reads int
		saves int // the store's saves after the step
	}{
		{name: "first process reads every file", store: store, reads: 3, saves: 1},
		{name: "a new process reads none", store: store, reads: 0, saves: 1},
		{name: "a failing store reads every file", store: failingRecords{}, reads: 3, saves: 1},
		{name: "a changed file is read again", store: store, edit: secretFile("c1"), reads: 1, saves: 2},
		{name: "and remembered", store: store, reads: 0, saves: 2},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.edit != "" {
				repo.edit(t, step.edit, func(s string) string { return "# touched\n" + s })
			}
			repo.mu.Lock()
			repo.reads = map[string]int{}
			repo.mu.Unlock()
			cfg := testConfig(repo, fakeEnc{}, ca, &now)
			cfg.RecordStore = step.store
			r, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			res := mustPass(t, r)
			if got := repo.total(); got != step.reads {
				t.Errorf("read %d committed files, want %d: %v", got, step.reads, repo.reads)
			}
			if step.edit != "" && repo.reads[step.edit] != 1 {
				t.Errorf("the changed file was read %d times, want 1", repo.reads[step.edit])
			}
			if res.Plan.HasChanges() || len(res.Records) != 3 {
				t.Errorf("plan %v, %d records; want nothing to do, 3 records", res.Plan.Actions, len(res.Records))
			}
			if first == nil {
				first = res
			} else if step.edit == "" {
				for path, rec := range first.Records {
					if got := res.Records[path]; got.Serial != rec.Serial || !got.NotAfter.Equal(rec.NotAfter) || strings.Join(got.DNSNames, ",") != strings.Join(rec.DNSNames, ",") || strings.Join(got.Recipients, ",") != strings.Join(rec.Recipients, ",") {
						t.Errorf("%s: record %+v, the first process read %+v", path, got, rec)
					}
				}
			}
			if store.saves != step.saves {
				t.Errorf("store saved %d times, want %d", store.saves, step.saves)
			}
		})
	}
	if len(store.saved.Records) != 3 || len(store.saved.Blobs) != 3 {
		t.Errorf("the store holds %d records, want the tree's 3", len(store.saved.Records))
	}
}

// The first generation of a process adopts the stored records and keeps
// of them only what the tree still holds at the same blob: a file gone
// from the tree, or changed and now unreadable, leaves no record behind.
func TestAdoptedRecordsFollowTheTree(t *testing.T) {
	ca, now := newTestCA(t), t0
	repo := issuedRepo(t, 3, ca, &now)
	repo.edit(t, secretFile("c1"), func(string) string { return "not: [a secret\n" })
	fetched, err := repo.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tree := fetched.(hashedTree)
	var layout committed.Layout
	var recordPaths []string
	for _, p := range tree.Paths() {
		if _, _, _, _, ok := layout.ParseSecretPath(p); ok {
			recordPaths = append(recordPaths, p)
		}
	}
	if len(recordPaths) != 3 {
		t.Fatalf("record paths %v", recordPaths)
	}
	stored := StoredRecords{Records: map[string]committed.Certificate{}, Blobs: map[string]BlobID{}}
	for _, p := range append(recordPaths, secretFile("gone")) {
		stored.Records[p] = committed.Certificate{Path: p, Serial: "stored"}
		stored.Blobs[p], _ = tree.BlobHash(p)
	}
	stored.Blobs[secretFile("c1")] = BlobID{1} // saved before the edit
	g := &generation{tree: tree, hasher: tree, stored: stored}
	_, fresh, err := g.parse(context.Background(), layout, recordPaths, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fresh != 1 {
		t.Errorf("%d files read, want the changed one", fresh)
	}
	for _, name := range []string{"c0", "c2"} {
		if rec := g.committed[secretFile(name)]; rec.Serial != "stored" {
			t.Errorf("%s: record %+v, want the stored one", name, rec)
		}
	}
	if rec, ok := g.committed[secretFile("c1")]; ok {
		t.Errorf("the unreadable file kept a record: %+v", rec)
	}
	if g.files[secretFile("c1")].err == nil {
		t.Errorf("the unreadable file has no error")
	}
	if rec, ok := g.committed[secretFile("gone")]; ok {
		t.Errorf("a file gone from the tree kept a record: %+v", rec)
	}
}
