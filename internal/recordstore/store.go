// Package recordstore keeps, in one file of the agent's cache folder, the
// records certsync read from the committed files (reconcile.RecordStore),
// so a new process reads only the committed files that changed since the
// last one.
//
// # The file
//
// A gob stream, written whole to a temporary file and renamed over the
// old one (a crash leaves the old or the new file, never half of one):
// a header (the format, the build of certsync that wrote it, the layout
// folder), the records, and a SHA-256 of everything before it. A file of
// another format or build, or whose checksum does not match (a disk
// error, a hand edit), is refused and the files are read again.
//
// Why the build: a record is what this build's code read from a file. A
// new certsync may read more from the same file (a new annotation), and a
// record the old one saved would then lack it, so an upgrade starts from
// the files, once.
//
// The records hold what the committed files' plaintext metadata says
// (names, DNS names, serials, dates, recipients): no key material,
// nothing that is not in the repository in plaintext. The cache folder
// belongs to the operator, not to the repository.
package recordstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/reconcile"
)

// format names the file's layout; change it with the header or entry types.
const format = "certsync-records 1"

// Store is a reconcile.RecordStore in one file.
type Store struct {
	path  string
	build func() (string, error)
}

var _ reconcile.RecordStore = (*Store)(nil)

// New returns the store kept in the file at path, for the running build
// of certsync.
func New(path string) *Store {
	return &Store{path: path, build: sync.OnceValues(runningBuild)}
}

type header struct {
	Format, Build, Folder string
	Count                 int
}

type entry struct {
	Path   string
	Blob   reconcile.BlobID
	Record committed.Certificate
}

// Load returns the records of the file, or an error saying why there are
// none to trust; a missing file is no records and no error.
func (s *Store) Load(ctx context.Context) (reconcile.StoredRecords, error) {
	var none reconcile.StoredRecords
	content, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return none, nil
	}
	if err != nil {
		return none, fmt.Errorf("read %s: %w", s.path, err)
	}
	if len(content) < sha256.Size {
		return none, fmt.Errorf("%s is truncated", s.path)
	}
	body, sum := content[:len(content)-sha256.Size], content[len(content)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return none, fmt.Errorf("%s does not match its checksum", s.path)
	}
	build, err := s.build()
	if err != nil {
		return none, err
	}
	dec := gob.NewDecoder(bytes.NewReader(body))
	var h header
	if err := dec.Decode(&h); err != nil {
		return none, fmt.Errorf("read %s: %w", s.path, err)
	}
	if h.Format != format || h.Build != build {
		return none, fmt.Errorf("%s was written by another build of certsync", s.path)
	}
	out := reconcile.StoredRecords{
		Folder:  h.Folder,
		Records: make(map[string]committed.Certificate, h.Count),
		Blobs:   make(map[string]reconcile.BlobID, h.Count),
	}
	for range h.Count {
		if err := ctx.Err(); err != nil {
			return none, err
		}
		var e entry
		if err := dec.Decode(&e); err != nil {
			return none, fmt.Errorf("read %s: %w", s.path, err)
		}
		out.Records[e.Path], out.Blobs[e.Path] = e.Record, e.Blob
	}
	return out, nil
}

// Save replaces the file with records.
func (s *Store) Save(ctx context.Context, records reconcile.StoredRecords) error {
	build, err := s.build()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save committed records: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	sum := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(tmp, sum), 64<<10)
	enc := gob.NewEncoder(w)
	err = enc.Encode(header{Format: format, Build: build, Folder: records.Folder, Count: len(records.Records)})
	for path, rec := range records.Records {
		if err != nil {
			break
		}
		if err = ctx.Err(); err == nil {
			// A record without a blob id gets the zero id, which no file
			// has: it is read again.
			err = enc.Encode(entry{Path: path, Blob: records.Blobs[path], Record: rec})
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		_, err = tmp.Write(sum.Sum(nil))
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path)
	}
	if err != nil {
		return fmt.Errorf("save committed records to %s: %w", s.path, err)
	}
	return nil
}

// runningBuild names the running executable's build: its Go build ID
// (an ELF note, which changes with any change to the code it was built
// from), or, where the executable is not ELF, its size and modification
// time.
func runningBuild() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the running executable: %w", err)
	}
	if f, err := elf.Open(exe); err == nil {
		defer f.Close()
		if sec := f.Section(".note.go.buildid"); sec != nil {
			if note, err := sec.Data(); err == nil && len(note) > 16 {
				return "go-build-id:" + hex.EncodeToString(note[16:]), nil
			}
		}
	}
	info, err := os.Stat(exe)
	if err != nil {
		return "", fmt.Errorf("read the running executable: %w", err)
	}
	return "exe:" + strconv.FormatInt(info.Size(), 10) + ":" + strconv.FormatInt(info.ModTime().UnixNano(), 10), nil
}
