package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one entry of a layer: a directory or a regular file. Owner and
// mode are exactly what is given — nothing is read from the disk the
// image is built on except a Source file's bytes — so a layer is the same
// on every machine.
type File struct {
	// Path is slash-separated and relative to the image root
	// ("etc/passwd"); no "." or ".." elements.
	Path string
	// Mode is the permission bits, plus fs.ModeDir for a directory and
	// fs.ModeSticky, fs.ModeSetuid or fs.ModeSetgid where wanted.
	Mode fs.FileMode
	// UID and GID own the entry. Default: root.
	UID, GID int
	// Data is a regular file's content, unless Source is set.
	Data []byte
	// Source is the path on disk of a regular file's content, streamed
	// into the layer (for binaries too large to hold twice in memory).
	Source string
}

// WriteTar writes files as an uncompressed tar stream, the same bytes for
// the same files in any order: entries sorted by path, every time mtime
// (to the second), no user or group names, no access or change times.
// Parent directories that files does not list are added as root:root
// 0755, so an unpacker never has to invent them with modes of its own.
// It returns the bytes written.
func WriteTar(w io.Writer, files []File, mtime time.Time) (int64, error) {
	entries, err := withParents(files)
	if err != nil {
		return 0, err
	}
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	mtime = mtime.UTC().Truncate(time.Second)
	for _, f := range entries {
		hdr := &tar.Header{
			Name:    f.Path,
			Mode:    tarMode(f.Mode),
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		if f.Mode.IsDir() {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
			if err := tw.WriteHeader(hdr); err != nil {
				return cw.n, fmt.Errorf("tar entry %s: %w", f.Path, err)
			}
			continue
		}
		hdr.Typeflag = tar.TypeReg
		if err := writeRegular(tw, hdr, f); err != nil {
			return cw.n, fmt.Errorf("tar entry %s: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return cw.n, fmt.Errorf("finish tar: %w", err)
	}
	return cw.n, nil
}

// writeRegular writes one regular file's header and content.
func writeRegular(tw *tar.Writer, hdr *tar.Header, f File) error {
	if f.Source == "" {
		hdr.Size = int64(len(f.Data))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(f.Data)
		return err
	}
	src, err := os.Open(f.Source)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", f.Source)
	}
	hdr.Size = st.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", f.Source, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("%s changed while it was read (%d bytes, then %d): build it again", f.Source, hdr.Size, n)
	}
	return nil
}

// withParents checks files, adds the missing parent directories and
// sorts the lot by path. Sorting by the plain string puts every directory
// before its contents, since a path's prefix sorts first.
func withParents(files []File) ([]File, error) {
	byPath := map[string]File{}
	for _, f := range files {
		if f.Path == "" || path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || strings.HasPrefix(f.Path, "..") {
			return nil, fmt.Errorf("layer path %q: want a clean relative path like etc/passwd", f.Path)
		}
		if f.Mode&^(fs.ModeDir|fs.ModeSticky|fs.ModeSetuid|fs.ModeSetgid|fs.ModePerm) != 0 {
			return nil, fmt.Errorf("layer path %s: mode %v: only directories and regular files are supported", f.Path, f.Mode)
		}
		if f.Mode.IsDir() && (f.Data != nil || f.Source != "") {
			return nil, fmt.Errorf("layer path %s: a directory has no content", f.Path)
		}
		if _, dup := byPath[f.Path]; dup {
			return nil, fmt.Errorf("layer path %s given twice", f.Path)
		}
		byPath[f.Path] = f
	}
	for _, f := range files {
		for dir := path.Dir(f.Path); dir != "."; dir = path.Dir(dir) {
			if p, ok := byPath[dir]; ok {
				if !p.Mode.IsDir() {
					return nil, fmt.Errorf("layer path %s: its parent %s is a file", f.Path, dir)
				}
				continue
			}
			byPath[dir] = File{Path: dir, Mode: fs.ModeDir | 0o755}
		}
	}
	out := make([]File, 0, len(byPath))
	for _, f := range byPath {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// tarMode turns an fs.FileMode into the tar header's mode bits.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// NewLayer builds a gzip-compressed OCI layer of files (see WriteTar),
// held in memory. The gzip header carries no time and no name, and the
// compression level is fixed, so the same Go release compresses the same
// files to the same bytes and the layer digest is stable. It also returns
// the uncompressed size.
//
// The level is gzip's default: on certsync's 121 MB binary it takes 2.8 s
// for 35.5 MB, where the best level takes 9 s to save 0.2 MB (measured on
// 2 cores).
func NewLayer(files []File, mtime time.Time) (v1.Layer, int64, error) {
	var compressed bytes.Buffer
	zw, err := gzip.NewWriterLevel(&compressed, gzip.DefaultCompression)
	if err != nil {
		return nil, 0, err
	}
	size, err := WriteTar(zw, files, mtime)
	if err != nil {
		return nil, 0, err
	}
	if err := zw.Close(); err != nil {
		return nil, 0, fmt.Errorf("finish gzip: %w", err)
	}
	gz := compressed.Bytes()
	// The opener hands out the compressed bytes: go-containerregistry
	// sees the gzip magic, keeps them as they are and gunzips only to
	// compute the diff ID.
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, 0, fmt.Errorf("layer digests: %w", err)
	}
	return layer, size, nil
}

// countingWriter counts what passes through.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
