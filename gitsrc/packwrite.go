package gitsrc

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/storage/filesystem"
)

// cloneStorage is the clone's go-git storage, with fetched packs indexed
// by indexPack instead of go-git's parser (see indexPack for why): go-git
// fetches through storer.PackfileWriter, which this overrides; everything
// else is filesystem.Storage's.
type cloneStorage struct {
	*filesystem.Storage
	packDir string
	log     *slog.Logger
}

func newCloneStorage(s *filesystem.Storage, dir string, log *slog.Logger) *cloneStorage {
	return &cloneStorage{Storage: s, packDir: filepath.Join(dir, "objects", "pack"), log: log}
}

// PackfileWriter receives a fetched pack into a temporary file; Close
// indexes it and moves both files into place.
func (s *cloneStorage) PackfileWriter() (io.WriteCloser, error) {
	if err := os.MkdirAll(s.packDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", s.packDir, err)
	}
	f, err := os.CreateTemp(s.packDir, "tmp_pack_")
	if err != nil {
		return nil, fmt.Errorf("receive a pack: %w", err)
	}
	return &packWriter{f: f, s: s}, nil
}

type packWriter struct {
	f       *os.File
	s       *cloneStorage
	written int64
}

func (w *packWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	return n, err
}

// Close stores the pack: indexed here when it can be, else by go-git (a
// thin pack, whose deltas build on objects the clone already has, or
// anything indexPack refuses), so the clone never depends on this fast
// path being right about an unusual pack.
func (w *packWriter) Close() error {
	tmp := w.f.Name()
	defer os.Remove(tmp) // gone already once moved into place
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("receive a pack: %w", err)
	}
	if w.written == 0 {
		return nil // nothing was fetched
	}
	idxTmp := tmp + ".idx"
	defer os.Remove(idxTmp)
	sum, err := indexPack(tmp, idxTmp)
	if err != nil {
		w.s.log.Debug("fetched pack indexed by go-git", "reason", err)
		return w.s.storeWithGoGit(tmp)
	}
	base := filepath.Join(w.s.packDir, "pack-"+sum.String())
	// The index first: go-git lists packs by their .pack file, so a pack
	// is never seen without its index.
	if err := os.Rename(idxTmp, base+".idx"); err != nil {
		return fmt.Errorf("store the fetched pack: %w", err)
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return fmt.Errorf("store the fetched pack: %w", err)
	}
	if err := os.Rename(tmp, base+".pack"); err != nil {
		return fmt.Errorf("store the fetched pack: %w", err)
	}
	w.s.Reindex() // go-git reads the pack folder again
	return nil
}

// storeWithGoGit hands the pack at path to go-git's own writer.
func (s *cloneStorage) storeWithGoGit(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store the fetched pack: %w", err)
	}
	defer f.Close()
	w, err := s.Storage.PackfileWriter()
	if err != nil {
		return fmt.Errorf("store the fetched pack: %w", err)
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Close()
		return fmt.Errorf("store the fetched pack: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("store the fetched pack: %w", err)
	}
	return nil
}
