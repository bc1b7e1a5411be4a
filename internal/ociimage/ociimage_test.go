package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// The proof of the image: `make image`'s command, run twice for this
// machine's architecture (the other platforms differ only in GOARCH),
// builds certsync and assembles the same image both times; the image read
// back from the layout with go-containerregistry has what a runtime needs
// and its binary runs.
//
// The command runs as its own process, without the race detector: under
// it, compressing the 121 MB binary takes 45 s instead of 3.
func TestImage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("the image is linux-only; on %s its binary cannot be run here", runtime.GOOS)
	}
	const version = "v0.0.0-imagetest"
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	created := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	root := moduleRoot(t)
	const revision = "0123456789abcdef0123456789abcdef01234567"

	tool := filepath.Join(t.TempDir(), "certsync-image")
	build := exec.Command("go", "build", "-o", tool, "./cmd/certsync-image")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/certsync-image: %v\n%s", err, out)
	}
	// makeImage runs the command as `make image` does and returns the
	// index digest it printed. Building certsync without cgo compiles the
	// whole tree the first time (minutes); the go command caches it.
	makeImage := func(out, archive string) string {
		t.Helper()
		cmd := exec.Command(tool, "--out", out, "--tar", archive, "--version", version,
			"--revision", revision, "--platforms", platform.String())
		cmd.Dir = root
		// Other work may commit to this checkout while the test runs: the
		// time, the revision label and the binary's VCS stamp are pinned
		// so that only the source itself counts.
		cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", created.Unix()),
			"GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -buildvcs=false"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("certsync-image: %v\n%s", err, stderr.String())
		}
		t.Logf("certsync-image:\n%s%s", stderr.String(), stdout.String())
		digest, ok := strings.CutPrefix(strings.SplitN(stdout.String(), "\n", 2)[0], "index ")
		if !ok {
			t.Fatalf("certsync-image printed %q: want the index digest first", stdout.String())
		}
		return digest
	}
	dirA, dirB := filepath.Join(t.TempDir(), "image"), filepath.Join(t.TempDir(), "image")
	tarA, tarB := filepath.Join(t.TempDir(), "image.tar"), filepath.Join(t.TempDir(), "image.tar")
	digestA := makeImage(dirA, tarA)
	digestB := makeImage(dirB, tarB)
	if digestA != digestB {
		if a, b := binaryLayer(t, dirA), binaryLayer(t, dirB); a != b {
			t.Fatalf("the two builds of certsync differ (layers %s and %s): was its source edited between them? "+
				"An image is only as reproducible as its binary; run the test again", a, b)
		}
		t.Fatalf("the same binary gave two index digests: %s and %s", digestA, digestB)
	}
	if a, b := readTree(t, dirA), readTree(t, dirB); !maps.EqualFunc(a, b, bytes.Equal) {
		t.Fatalf("two layouts of the same image differ: %v and %v", slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b)))
	}
	digest, err := v1.NewHash(digestA)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Revision: revision, Created: created}

	idx := readLayout(t, dirA, Tag(version), digest)
	if err := validate.Index(idx); err != nil {
		t.Fatalf("the index read back from the layout is not valid (digests, sizes, diff IDs): %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Platform == nil || im.Manifests[0].Platform.String() != platform.String() {
		t.Fatalf("index manifests %+v: want one for %s", im.Manifests, platform)
	}
	if im.MediaType != types.OCIImageIndex || im.Manifests[0].MediaType != types.OCIManifestSchema1 {
		t.Errorf("media types %s, %s: want OCI ones", im.MediaType, im.Manifests[0].MediaType)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}

	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, cfg, platform, version, opts)

	files := flatten(t, img)
	checkFilesystem(t, files, cfg.Config.User)

	// The binary as the image holds it: static, and it runs.
	extracted := filepath.Join(t.TempDir(), "certsync")
	if err := os.WriteFile(extracted, files["certsync"].data, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(extracted)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("/certsync asks for a dynamic loader the image does not have")
		}
	}
	f.Close()
	args := append(slices.Clone(cfg.Config.Entrypoint[1:]), "version")
	out, err := exec.Command(extracted, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", cfg.Config.Entrypoint[0], err, out)
	}
	if !strings.Contains(string(out), version) {
		t.Errorf("certsync version printed %q, want it to contain %q", out, version)
	}

	// The archive is the same layout in one file, and as reproducible.
	a, err := os.ReadFile(tarA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(tarB)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two archives of the same image differ")
	}
	unpacked := t.TempDir()
	untar(t, a, unpacked)
	readLayout(t, unpacked, Tag(version), digest)
}

// binaryLayer is the digest of the last layer (the binary) of the first
// image in the layout at dir.
func binaryLayer(t *testing.T, dir string) v1.Hash {
	t.Helper()
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return mf.Layers[len(mf.Layers)-1].Digest
}

// moduleRoot is the directory of certsync's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "go.mod") {
		t.Fatalf("go env GOMOD: %q, %v", out, err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// checkConfig checks what the runtime reads from the image config.
func checkConfig(t *testing.T, cfg *v1.ConfigFile, platform v1.Platform, version string, opts Options) {
	t.Helper()
	c := cfg.Config
	if u := strings.Split(c.User, ":")[0]; u == "" || u == "0" || u == "root" {
		t.Errorf("User %q: want a non-root user", c.User)
	}
	if c.User != "65532:65532" {
		t.Errorf("User %q, want 65532:65532", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/certsync"}) || len(c.Cmd) != 0 {
		t.Errorf("Entrypoint %q Cmd %q, want [/certsync] and none", c.Entrypoint, c.Cmd)
	}
	if c.WorkingDir != "/" {
		t.Errorf("WorkingDir %q, want /", c.WorkingDir)
	}
	for _, want := range []string{"HOME=/home/certsync", "XDG_CACHE_HOME=/var/cache"} {
		if !slices.Contains(c.Env, want) {
			t.Errorf("Env %q lacks %s", c.Env, want)
		}
	}
	if cfg.OS != platform.OS || cfg.Architecture != platform.Architecture {
		t.Errorf("config platform %s/%s, want %s", cfg.OS, cfg.Architecture, platform)
	}
	if !cfg.Created.Time.Equal(opts.Created) {
		t.Errorf("Created %v, want %v", cfg.Created.Time, opts.Created)
	}
	for _, h := range cfg.History {
		if !h.Created.Time.Equal(opts.Created) {
			t.Errorf("history %q created %v, want %v", h.CreatedBy, h.Created.Time, opts.Created)
		}
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.source":   DefaultSource,
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": opts.Revision,
	} {
		if got := c.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := c.Labels["org.opencontainers.image.licenses"]; ok {
		t.Error("licenses label set, but no license was given")
	}
}

// checkFilesystem checks the flattened filesystem: exactly the expected
// paths, no shell, a usable CA bundle and the config's user in passwd.
func checkFilesystem(t *testing.T, files map[string]tarFile, user string) {
	t.Helper()
	want := []string{
		"certsync", "etc", "etc/group", "etc/passwd", "etc/ssl", "etc/ssl/certs",
		"etc/ssl/certs/ca-certificates.crt", "home", "home/certsync", "tmp",
		"var", "var/cache", "var/cache/certsync",
	}
	if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, want) {
		t.Errorf("filesystem:\n got %q\nwant %q", got, want)
	}
	for p := range files {
		switch path.Base(p) {
		case "sh", "bash", "ash", "dash", "zsh", "busybox":
			t.Errorf("the image has a shell: /%s", p)
		}
	}

	for p, want := range map[string]struct {
		mode     int64
		uid, gid int
	}{
		"certsync":           {0o755, 0, 0},
		"etc/passwd":         {0o644, 0, 0},
		"home/certsync":      {0o755, UID, GID},
		"var/cache/certsync": {0o755, UID, GID},
		"tmp":                {0o1777, 0, 0},
	} {
		f := files[p]
		if f.mode != want.mode || f.uid != want.uid || f.gid != want.gid {
			t.Errorf("/%s: mode %o owner %d:%d, want %o %d:%d", p, f.mode, f.uid, f.gid, want.mode, want.uid, want.gid)
		}
	}

	var certs int
	rest := files["etc/ssl/certs/ca-certificates.crt"].data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			t.Errorf("CA bundle certificate %d: %v", certs, err)
		}
		certs++
	}
	if certs <= 100 || len(bytes.TrimSpace(rest)) != 0 {
		t.Errorf("CA bundle: %d certificates and %d bytes that are not PEM; want over 100 and none", certs, len(rest))
	}

	uid, gid, _ := strings.Cut(user, ":")
	var found bool
	for _, line := range strings.Split(string(files["etc/passwd"].data), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[2] == uid && f[3] == gid && f[5] == Home {
			found = true
		}
	}
	if !found {
		t.Errorf("/etc/passwd has no entry for %s with home %s:\n%s", user, Home, files["etc/passwd"].data)
	}
	if !strings.Contains(string(files["etc/group"].data), ":"+gid+":") {
		t.Errorf("/etc/group has no group %s:\n%s", gid, files["etc/group"].data)
	}
}

// readLayout opens the layout at dir and returns the image index tagged
// tag, checking that its digest is want.
func readLayout(t *testing.T, dir, tag string, want v1.Hash) v1.ImageIndex {
	t.Helper()
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("read the layout %s: %v", dir, err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != want || m.Manifests[0].MediaType != types.OCIImageIndex ||
		m.Manifests[0].Annotations[RefNameAnnotation] != tag {
		t.Fatalf("index.json lists %+v: want the image index %s named %s", m.Manifests, want, tag)
	}
	idx, err := top.ImageIndex(want)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// tarFile is one entry of the flattened filesystem.
type tarFile struct {
	mode     int64
	uid, gid int
	data     []byte
}

// flatten reads the filesystem a runtime would unpack from img.
func flatten(t *testing.T, img v1.Image) map[string]tarFile {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]tarFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = tarFile{h.Mode, h.Uid, h.Gid, data}
	}
}

// readTree reads every regular file below dir, by relative path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	tree := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		tree[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// untar unpacks an archive of plain files and directories into dir.
func untar(t *testing.T, b []byte, dir string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBuildRefuses(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A real dynamically linked executable of this machine, if there is
	// one where Linux distributions keep it.
	dynamic := "/bin/ls"
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	host := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	other := v1.Platform{OS: "linux", Architecture: "arm64"}
	if runtime.GOARCH == "arm64" {
		other = amd64
	}
	if _, err := os.Stat(dynamic); err != nil {
		t.Fatalf("this test needs a dynamically linked executable at %s: %v", dynamic, err)
	}
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no version", Options{Binaries: []Binary{{Platform: amd64, Path: script}}}, "no version"},
		{"no binaries", Options{Version: "v1"}, "no binaries"},
		{"not linux", Options{Version: "v1", Binaries: []Binary{{Platform: v1.Platform{OS: "windows", Architecture: "amd64"}, Path: script}}}, "only linux"},
		{"twice", Options{Version: "v1", Binaries: []Binary{{Platform: amd64, Path: script}, {Platform: amd64, Path: script}}}, "given twice"},
		{"not ELF", Options{Version: "v1", Binaries: []Binary{{Platform: amd64, Path: script}}}, "ELF"},
		{"a variant Go has not", Options{Version: "v1", Binaries: []Binary{{Platform: v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v9"}, Path: script}}}, "variant"},
		{"unknown architecture", Options{Version: "v1", Binaries: []Binary{{Platform: v1.Platform{OS: "linux", Architecture: "vax"}, Path: script}}}, "unknown"},
		{"dynamically linked", Options{Version: "v1", Binaries: []Binary{{Platform: host, Path: dynamic}}}, "dynamically linked"},
		{"another machine's binary", Options{Version: "v1", Binaries: []Binary{{Platform: other, Path: dynamic}}}, "not " + other.Architecture},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(context.Background(), tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestWriteLayoutRefusesAnotherDirectory(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteLayout(dir, nil, "x")
	if err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Errorf("error %v, want a refusal", err)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "mine" {
		t.Errorf("the directory's file is gone or changed: %q, %v", b, err)
	}
}
