package ociimage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RefNameAnnotation names an image inside a layout: tools address it as
// oci:DIR:NAME (skopeo) and containerd imports it under that tag.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// WriteLayout writes idx as an OCI image layout directory at dir: the
// oci-layout marker, index.json pointing at idx (named tag), and every
// blob under blobs/sha256. A layout already at dir is replaced as a
// whole — the new one is written next to it and renamed into place — so
// no blob of an older build lingers and dir is never half written. A dir
// that exists but is not a layout is refused, not emptied.
//
// Read it back with layout.ImageIndexFromPath(dir); copy it with
// `skopeo copy --all oci:DIR:TAG docker://…` or `crane push DIR REF`
// (without --index, which would push the wrapping index.json instead).
func WriteLayout(dir string, idx v1.ImageIndex, tag string) error {
	if err := replaceable(dir); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("image layout: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("image layout: %w", err)
	}

	top := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{
		Add:        idx,
		Descriptor: v1.Descriptor{Annotations: map[string]string{RefNameAnnotation: tag}},
	})
	if _, err := layout.Write(tmp, top); err != nil {
		return fmt.Errorf("write image layout in %s: %w", tmp, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the previous image layout %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("move the image layout into place at %s: %w", dir, err)
	}
	return nil
}

// replaceable reports whether dir may be replaced by a new layout: it
// does not exist, is empty, or is an image layout.
func replaceable(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("image layout %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("%s exists and is not an OCI image layout (no oci-layout file): not replacing it; choose another output directory", dir)
	}
	return nil
}

// WriteArchive writes the layout directory dir as one tar file at file:
// the OCI archive format, read by `skopeo copy oci-archive:FILE:TAG …`,
// `podman load -i FILE` and containerd (`ctr images import`, and so
// `docker load` on Docker's containerd image store). Docker's classic
// image store loads only its own format (a manifest.json, one image per
// platform): there, copy the layout in with
// `skopeo copy oci:DIR:TAG docker-daemon:certsync:TAG`. Entries are
// sorted, stamped with mtime and owned by root, so the same layout gives
// the same archive.
func WriteArchive(file, dir string, mtime time.Time) error {
	var files []File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			files = append(files, File{Path: rel, Mode: fs.ModeDir | 0o755})
		case d.Type().IsRegular():
			files = append(files, File{Path: rel, Mode: 0o644, Source: p})
		default:
			return fmt.Errorf("%s: not a regular file or directory", p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read image layout %s: %w", dir, err)
	}

	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(file), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-")
	if err != nil {
		return fmt.Errorf("image archive: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := WriteTar(tmp, files, mtime); err != nil {
		tmp.Close()
		return fmt.Errorf("write image archive %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write image archive %s: %w", file, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("image archive: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("move the image archive into place at %s: %w", file, err)
	}
	return nil
}

// Tag turns a version into a valid image tag ([A-Za-z0-9_.-], at most
// 128 characters, not starting with '.' or '-'): git describe's
// "v1.2.0-3-gabc1234-dirty" stays as it is, semver build metadata's '+'
// becomes '-'.
func Tag(version string) string {
	t := []byte(version)
	for i, c := range t {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			t[i] = '-'
		}
	}
	s := strings.TrimLeft(string(t), ".-")
	if len(s) > 128 {
		s = s[:128]
	}
	if s == "" {
		return "latest"
	}
	return s
}
