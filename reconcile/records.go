package reconcile

import (
	"context"
	"sync"

	"github.com/certsync/certsync/committed"
)

// StoredRecords are the records of one tree's committed files as a
// RecordStore keeps them: by path, each with the blob it was read from,
// and the layout folder they were read with.
type StoredRecords struct {
	Folder  string
	Records map[string]committed.Certificate
	Blobs   map[string]BlobID
}

// RecordStore keeps the records of the committed files across processes,
// so that a new process (a one-shot `certsync reconcile`, a restarted
// agent) reads only the committed files whose blob changed since the last
// one, as the daemon's later passes do: reading the 10,000 committed files
// of 10,000 certificates (inflating ciphertext that does not compress)
// was a quarter of a one-shot pass.
//
// A record is a function of the file's path and content, of the layout
// and of the code that read it: a store must give back only what the same
// build of certsync saved.
type RecordStore interface {
	// Load returns the records saved last. A Reconciler calls it once; an
	// error (an unreadable, garbled or other build's store) is logged and
	// the store taken as empty. The Reconciler takes ownership of the
	// maps.
	Load(ctx context.Context) (StoredRecords, error)
	// Save replaces what the store holds: the records of one tree. The
	// maps are the Reconciler's, only read.
	Save(ctx context.Context, records StoredRecords) error
}

// recordMemory is what a Reconciler keeps of its RecordStore: what it
// loaded, for the first generation to adopt, and how many records it
// saved last, to rewrite the store only when they changed.
type recordMemory struct {
	once   sync.Once
	loaded StoredRecords
	folder string
	saved  int // records in the store; -1: unknown
}

// storedRecords hands out, once, the records a previous process saved
// for layout; empty when there are none to trust.
func (r *Reconciler) storedRecords(ctx context.Context, layout committed.Layout) StoredRecords {
	m := &r.records
	m.once.Do(func() {
		m.saved = -1
		if r.cfg.RecordStore == nil {
			return
		}
		loaded, err := r.cfg.RecordStore.Load(ctx)
		if err != nil {
			r.log.Info("records of committed files from earlier runs not read; the files are read again", "error", err)
			return
		}
		m.loaded, m.folder, m.saved = loaded, loaded.Folder, len(loaded.Records)
	})
	loaded := m.loaded
	m.loaded = StoredRecords{} // the generation owns them now
	if loaded.Folder != layout.Folder() || len(loaded.Records) != len(loaded.Blobs) {
		return StoredRecords{}
	}
	return loaded
}

// saveRecords stores the records of g when they differ from what the
// store holds: files were read (fresh) or left the tree.
func (r *Reconciler) saveRecords(ctx context.Context, g *generation, layout committed.Layout, fresh int) {
	m := &r.records
	if r.cfg.RecordStore == nil || g.hasher == nil || (fresh == 0 && m.saved == len(g.committed) && m.folder == layout.Folder()) {
		return // nothing to key records by, or nothing new
	}
	blobs := make(map[string]BlobID, len(g.committed))
	for path := range g.committed {
		if st := g.files[path]; st.hashed && st.err == nil {
			blobs[path] = st.blob
		}
	}
	if len(blobs) != len(g.committed) {
		return // records without blob ids cannot be matched later
	}
	if err := r.cfg.RecordStore.Save(ctx, StoredRecords{Folder: layout.Folder(), Records: g.committed, Blobs: blobs}); err != nil {
		r.log.Info("records of committed files not saved; the next process reads the files again", "error", err)
		m.saved = -1
		return
	}
	m.folder, m.saved = layout.Folder(), len(blobs)
}
