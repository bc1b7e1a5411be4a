package gitsrc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zlib"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
)

// packReader reads whole blobs straight from the clone's pack files: one
// positioned read of the object's header, one inflate into a buffer of
// the object's size. go-git's object storage opens the pack file, builds a
// scanner and copies the object twice for every read; a restore or a
// fresh agent's first pass reads each of 10,000 files once, and that
// overhead was as much as the inflating itself.
//
// Only what is simple is read here: a blob stored whole in a pack this
// reader has indexed. Deltas, loose objects (certsync's own commits) and
// anything unexpected return ok == false and go to go-git, which stays the
// authority on the repository's format.
type packReader struct {
	dir string // objects/pack of the clone

	mu       sync.RWMutex
	packs    map[string]*openPack // by pack name
	scanned  time.Time            // the pack folder's modification time when last listed
	inflater sync.Pool            // *inflater
}

type openPack struct {
	f   *os.File
	idx *idxfile.MemoryIndex
}

// inflater is a zlib reader and the buffer it reads through, reused from
// one object to the next: a new zlib reader is ~40 KB of tables. The
// reader is klauspost/compress's (already in the module graph through the
// SDKs sops links): reading the 20,000 files of 10,000 certificates, its
// inflate took 0.1 CPU-s less than the standard library's, a tenth of a
// one-shot pass.
type inflater struct {
	src *io.SectionReader
	buf *bufio.Reader
	z   io.ReadCloser
}

func newPackReader(dir string) *packReader {
	return &packReader{dir: filepath.Join(dir, "objects", "pack"), packs: map[string]*openPack{}}
}

// read returns blob h's content, or ok == false when h is not a whole blob
// of a pack known here.
func (p *packReader) read(h plumbing.Hash) (content []byte, ok bool, err error) {
	content, ok, err = p.lookup(h)
	if ok || err != nil {
		return content, ok, err
	}
	// Not found: a fetch may have added a pack since the folder was last
	// listed. Listing is cheap, but skipped while the folder is unchanged.
	changed, err := p.rescan()
	if err != nil || !changed {
		return nil, false, err
	}
	return p.lookup(h)
}

func (p *packReader) lookup(h plumbing.Hash) ([]byte, bool, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for name, pack := range p.packs {
		offset, err := pack.idx.FindOffset(h)
		if err != nil {
			continue // not in this pack
		}
		content, ok, err := p.readAt(pack.f, offset)
		if err != nil {
			return nil, false, fmt.Errorf("read object %s from pack %s: %w", h, name, err)
		}
		return content, ok, nil
	}
	return nil, false, nil
}

// readAt inflates the object at offset when it is a whole blob.
func (p *packReader) readAt(f *os.File, offset int64) ([]byte, bool, error) {
	var hdr [16]byte
	n, err := f.ReadAt(hdr[:], offset)
	if n == 0 && err != nil {
		return nil, false, err
	}
	typ, size, used, ok := objectHeader(hdr[:n])
	if !ok || plumbing.ObjectType(typ) != plumbing.BlobObject { // pack type numbers are go-git's
		return nil, false, nil
	}
	if size > maxBlob {
		return nil, false, nil // go-git streams what certsync never writes
	}
	in, _ := p.inflater.Get().(*inflater)
	if in == nil {
		in = &inflater{}
	}
	defer p.inflater.Put(in)
	content, err := in.inflate(f, offset+int64(used), size)
	if err != nil {
		return nil, false, err
	}
	return content, true, nil
}

// inflate reads size inflated bytes of the zlib stream at offset of f.
func (in *inflater) inflate(f *os.File, offset, size int64) ([]byte, error) {
	in.src = io.NewSectionReader(f, offset, 1<<62)
	if in.buf == nil {
		in.buf = bufio.NewReaderSize(in.src, 4096)
	} else {
		in.buf.Reset(in.src)
	}
	var err error
	if in.z == nil {
		if in.z, err = zlib.NewReader(in.buf); err != nil {
			return nil, err
		}
	} else if err := in.z.(zlib.Resetter).Reset(in.buf, nil); err != nil {
		return nil, err
	}
	content := make([]byte, size)
	if _, err := io.ReadFull(in.z, content); err != nil {
		return nil, fmt.Errorf("inflate %d bytes: %w", size, err)
	}
	return content, nil
}

// maxBlob bounds what is read into memory in one piece here.
const maxBlob = 64 << 20

// objectHeader decodes a pack object's type and inflated size: a first
// byte of continuation bit, 3 type bits and 4 size bits, then 7 size bits
// per byte.
func objectHeader(b []byte) (typ byte, size int64, used int, ok bool) {
	if len(b) == 0 {
		return 0, 0, 0, false
	}
	c := b[0]
	typ = (c >> 4) & 7
	size = int64(c & 0x0f)
	shift := uint(4)
	used = 1
	for c&0x80 != 0 {
		if used >= len(b) || shift > 56 {
			return 0, 0, 0, false
		}
		c = b[used]
		size |= int64(c&0x7f) << shift
		shift += 7
		used++
	}
	return typ, size, used, true
}

// rescan opens the packs added since the last listing and forgets the
// ones gone. It reports whether anything changed.
func (p *packReader) rescan() (bool, error) {
	info, err := os.Stat(p.dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // nothing fetched yet
	}
	if err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if info.ModTime().Equal(p.scanned) {
		return false, nil
	}
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return false, err
	}
	seen := map[string]bool{}
	changed := false
	for _, e := range entries {
		name, isIdx := strings.CutSuffix(e.Name(), ".idx")
		if !isIdx {
			continue
		}
		seen[name] = true
		if p.packs[name] != nil {
			continue
		}
		pack, err := openPackFile(filepath.Join(p.dir, name))
		if err != nil {
			// A pack being written has its .idx last; anything else
			// unreadable is go-git's to report.
			continue
		}
		p.packs[name] = pack
		changed = true
	}
	for name, pack := range p.packs {
		if !seen[name] {
			pack.f.Close()
			delete(p.packs, name)
			changed = true
		}
	}
	p.scanned = info.ModTime()
	return changed, nil
}

func openPackFile(base string) (*openPack, error) {
	idxFile, err := os.Open(base + ".idx")
	if err != nil {
		return nil, err
	}
	defer idxFile.Close()
	idx := idxfile.NewMemoryIndex()
	if err := idxfile.NewDecoder(bufio.NewReader(idxFile)).Decode(idx); err != nil {
		return nil, fmt.Errorf("read %s.idx: %w", base, err)
	}
	f, err := os.Open(base + ".pack")
	if err != nil {
		return nil, err
	}
	return &openPack{f: f, idx: idx}, nil
}
