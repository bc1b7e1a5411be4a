// Package ociimage assembles certsync's container image from binaries that
// are already built, with Go alone: no Docker daemon, no base image, no
// registry. `make image` (cmd/certsync-image) builds the binaries and calls
// it; the result is an OCI image index with one image per platform,
// written as an OCI image layout directory that crane, skopeo, podman,
// containerd and registries read.
//
// # What is in the image
//
// Two layers. The first is the same for every platform and every release,
// so a registry stores it once and a node pulls it once; the second holds
// only the binary:
//
//	/certsync                            the static binary (root:root 0755), the entrypoint
//	/etc/ssl/certs/ca-certificates.crt   Mozilla's roots from golang.org/x/crypto/x509roots/fallback,
//	                                     pinned in go.mod: the first file Go's crypto/x509 reads on Linux
//	/etc/passwd, /etc/group              root and certsync (uid/gid 65532), for tools that look users up
//	/home/certsync                       HOME (65532:65532 0755)
//	/var/cache/certsync                  the clone cache (65532:65532 0755): XDG_CACHE_HOME=/var/cache
//	/tmp                                 1777
//
// Nothing else: no shell, no libc, no package manager. The config runs
// `/certsync` as user 65532:65532 in `/`, with HOME=/home/certsync and
// XDG_CACHE_HOME=/var/cache.
//
// # Mounts for a read-only root filesystem
//
// certsync writes only below its cache directory: the clone of the
// repository (repos/<hash of URL and branch>), its state next to it, and
// the known_hosts file it hands to the SSH client. With
// readOnlyRootFilesystem: true, mount
//
//   - an emptyDir at /var/cache/certsync (required; a PersistentVolume
//     instead keeps the clone across restarts, so a restart fetches only
//     what is new);
//   - an emptyDir at /tmp (recommended: libraries may write temporary
//     files there);
//   - the age key and Git credentials from Secrets, read-only, anywhere
//     (/etc/certsync/…) and named with --age-key-file,
//     --git-password-file, --git-ssh-key-file and --git-known-hosts-file;
//     or at the defaults below HOME (~/.config/sops/age/keys.txt,
//     ~/.ssh/known_hosts).
//
// Local repositories (file:// URLs and paths) need the git binaries, which
// the image does not have: in the image, use https:// or ssh:// URLs.
//
// # Reproducible
//
// The same binaries, roots, version and Created time give the same index
// digest, byte for byte: every timestamp (tar entries, config, history) is
// Options.Created, owners and modes are fixed, tar entries are sorted, gzip
// headers carry no time or name, platforms are sorted, and JSON is
// marshalled from structs. The binaries themselves are reproducible when
// built with GoBuild (-trimpath, no build ID, CGO_ENABLED=0).
package ociimage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user the image runs as: 65532 is the "nonroot" id of distroless
// images, so Pod security policies written for those fit certsync too.
const (
	UID      = 65532
	GID      = 65532
	UserName = "certsync"
)

// Paths inside the image, absolute.
const (
	Entrypoint = "/certsync"
	CABundle   = "/etc/ssl/certs/ca-certificates.crt"
	Home       = "/home/certsync"
	// CacheHome is XDG_CACHE_HOME: certsync keeps its clones in
	// CacheHome/certsync, the directory to mount an emptyDir at.
	CacheHome = "/var/cache"
)

// DefaultSource is the org.opencontainers.image.source label when
// Options.Source is empty: the repository of the module.
const DefaultSource = "https://github.com/certsync/certsync"

// Binary is certsync built for one platform.
type Binary struct {
	// Platform is where the binary runs; only OS "linux" is accepted.
	Platform v1.Platform
	// Path is the binary on disk: a static ELF executable for Platform
	// (Build checks the machine and that it needs no dynamic loader).
	Path string
}

// Options say what to put in the image.
type Options struct {
	// Binaries holds one certsync binary per platform; at least one, no
	// platform twice. Their order does not matter: the index lists
	// platforms sorted.
	Binaries []Binary
	// Version is the certsync version (org.opencontainers.image.version).
	// Required.
	Version string
	// Revision is the Git commit the binaries were built from
	// (org.opencontainers.image.revision). Default: label omitted.
	Revision string
	// Source is the repository URL (org.opencontainers.image.source).
	// Default: DefaultSource.
	Source string
	// Licenses is an SPDX expression (org.opencontainers.image.licenses).
	// Default: label omitted — the repository has no LICENSE file yet.
	Licenses string
	// Created is every timestamp in the image: tar entries, config,
	// history and the org.opencontainers.image.created label. Pass
	// SourceDate's answer for a reproducible image. Default: the Unix
	// epoch (never the current time).
	Created time.Time
	// Roots are the DER certificates written to the CA bundle.
	// Default: FallbackRoots().
	Roots [][]byte
}

// Result is an assembled image index.
type Result struct {
	// Index is the image index, held in memory until WriteLayout.
	Index v1.ImageIndex
	// Digest is the index digest: the name of this exact image.
	Digest v1.Hash
	// Images are the per-platform images, in index order.
	Images []PlatformImage
}

// PlatformImage describes one platform's image.
type PlatformImage struct {
	Platform v1.Platform
	Digest   v1.Hash
	// DownloadSize is what a pull of this platform transfers: manifest,
	// config and compressed layers, in bytes.
	DownloadSize int64
	// UnpackedSize is the size of its uncompressed layers, in bytes.
	UnpackedSize int64
}

// Build assembles the image index described by o. It reads the binaries
// and compresses them; nothing is written until WriteLayout.
func Build(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	created := o.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC().Truncate(time.Second)
	roots := o.Roots
	if roots == nil {
		roots = FallbackRoots()
	}

	base, baseSize, err := NewLayer(baseFiles(roots), created)
	if err != nil {
		return nil, fmt.Errorf("build the base layer (roots, users, directories): %w", err)
	}

	binaries := slices.Clone(o.Binaries)
	slices.SortFunc(binaries, func(a, b Binary) int { return strings.Compare(a.Platform.String(), b.Platform.String()) })

	res := &Result{}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range binaries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, unpacked, err := o.image(b, base, created)
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", b.Platform, err)
		}
		digest, err := img.Digest()
		if err != nil {
			return nil, fmt.Errorf("image for %s: digest: %w", b.Platform, err)
		}
		download, err := downloadSize(img)
		if err != nil {
			return nil, fmt.Errorf("image for %s: size: %w", b.Platform, err)
		}
		platform := b.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &platform},
		})
		res.Images = append(res.Images, PlatformImage{
			Platform:     platform,
			Digest:       digest,
			DownloadSize: download,
			UnpackedSize: baseSize + unpacked,
		})
	}
	res.Index = idx
	if res.Digest, err = idx.Digest(); err != nil {
		return nil, fmt.Errorf("image index digest: %w", err)
	}
	return res, nil
}

// check refuses options that would build a wrong or ambiguous image.
func (o Options) check() error {
	if o.Version == "" {
		return errors.New("no version given: pass the certsync version (e.g. from git describe)")
	}
	if len(o.Binaries) == 0 {
		return errors.New("no binaries given: build certsync for at least one platform first")
	}
	seen := map[string]bool{}
	for _, b := range o.Binaries {
		p := b.Platform.String()
		if err := CheckPlatform(b.Platform); err != nil {
			return err
		}
		if seen[p] {
			return fmt.Errorf("platform %s given twice", p)
		}
		seen[p] = true
	}
	for _, b := range o.Binaries {
		if err := checkBinary(b.Path, b.Platform); err != nil {
			return fmt.Errorf("binary for %s: %w", b.Platform, err)
		}
	}
	return nil
}

// image is one platform's image: the shared base layer, then the binary.
func (o Options) image(b Binary, base v1.Layer, created time.Time) (v1.Image, int64, error) {
	layer, unpacked, err := NewLayer([]File{{
		Path:   strings.TrimPrefix(Entrypoint, "/"),
		Mode:   0o755,
		Source: b.Path,
	}}, created)
	if err != nil {
		return nil, 0, fmt.Errorf("layer of %s: %w", b.Path, err)
	}

	cfg := &v1.ConfigFile{
		Created:      v1.Time{Time: created},
		Architecture: b.Platform.Architecture,
		Variant:      b.Platform.Variant,
		OS:           b.Platform.OS,
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", UID, GID),
			Entrypoint: []string{Entrypoint},
			WorkingDir: "/",
			Env: []string{
				"HOME=" + Home,
				"XDG_CACHE_HOME=" + CacheHome,
			},
			Labels: o.labels(created),
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("config: %w", err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "certsync-image: CA roots, users, directories",
			Comment:   "the same for every platform and release",
		}},
		mutate.Addendum{Layer: layer, MediaType: types.OCILayer, History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "certsync-image: " + Entrypoint + " " + o.Version,
		}},
	)
	if err != nil {
		return nil, 0, fmt.Errorf("layers: %w", err)
	}
	return img, unpacked, nil
}

// labels are the OCI annotations of the image config, the ones
// registries show (GitHub links the package to Source).
func (o Options) labels(created time.Time) map[string]string {
	source := o.Source
	if source == "" {
		source = DefaultSource
	}
	l := map[string]string{
		"org.opencontainers.image.title": "certsync",
		"org.opencontainers.image.description": "GitOps certificate reconciler: cert-manager manifests in Git in, " +
			"SOPS-encrypted TLS Secrets in Git and the cluster out",
		"org.opencontainers.image.source":  source,
		"org.opencontainers.image.version": o.Version,
		"org.opencontainers.image.created": created.Format(time.RFC3339),
	}
	if o.Revision != "" {
		l["org.opencontainers.image.revision"] = o.Revision
	}
	if o.Licenses != "" {
		l["org.opencontainers.image.licenses"] = o.Licenses
	}
	return l
}

// downloadSize adds up the blobs a pull of img transfers.
func downloadSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// baseFiles is the platform-independent part of the filesystem.
func baseFiles(roots [][]byte) []File {
	dir := func(path string, mode fs.FileMode, uid, gid int) File {
		return File{Path: path, Mode: fs.ModeDir | mode, UID: uid, GID: gid}
	}
	file := func(path string, data string) File {
		return File{Path: path, Mode: 0o644, Data: []byte(data)}
	}
	return []File{
		dir("etc", 0o755, 0, 0),
		file("etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\n"+
			fmt.Sprintf("%s:x:%d:%d:certsync:%s:/sbin/nologin\n", UserName, UID, GID, Home)),
		file("etc/group", "root:x:0:\n"+fmt.Sprintf("%s:x:%d:\n", UserName, GID)),
		{Path: strings.TrimPrefix(CABundle, "/"), Mode: 0o644, Data: PEMBundle(roots)},
		dir("home", 0o755, 0, 0),
		dir(strings.TrimPrefix(Home, "/"), 0o755, UID, GID),
		dir("tmp", fs.ModeSticky|0o777, 0, 0),
		dir(strings.TrimPrefix(CacheHome, "/")+"/certsync", 0o755, UID, GID),
	}
}
