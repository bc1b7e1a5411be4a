package ociimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// entry is what a test expects of one tar entry.
type entry struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	data     string
}

// readTar reads a tar stream back, checking the fields every entry must
// have whatever the input: the fixed time, no names, no atime/ctime.
func readTar(t *testing.T, b []byte, mtime time.Time) []entry {
	t.Helper()
	var got []entry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		if !h.ModTime.Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, mtime)
		}
		if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: uname %q gname %q atime %v ctime %v: want none (they differ between machines)", h.Name, h.Uname, h.Gname, h.AccessTime, h.ChangeTime)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", h.Name, err)
		}
		got = append(got, entry{h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, string(data)})
	}
}

func TestWriteTar(t *testing.T) {
	mtime := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	src := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(src, []byte("ELF..."), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		files []File
		want  []entry
	}{{
		name:  "a file gets its mode and owner, a missing parent root 0755",
		files: []File{{Path: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0::/:\n")}},
		want: []entry{
			{"etc/", tar.TypeDir, 0o755, 0, 0, ""},
			{"etc/passwd", tar.TypeReg, 0o644, 0, 0, "root:x:0:0::/:\n"},
		},
	}, {
		name: "entries are sorted, a directory before its contents, whatever the input order",
		files: []File{
			{Path: "var/cache/certsync", Mode: fs.ModeDir | 0o755, UID: 65532, GID: 65532},
			{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
			{Path: "etc-old", Mode: 0o600, Data: []byte("x")},
			{Path: "etc", Mode: fs.ModeDir | 0o750},
		},
		want: []entry{
			{"etc/", tar.TypeDir, 0o750, 0, 0, ""},
			{"etc-old", tar.TypeReg, 0o600, 0, 0, "x"},
			{"tmp/", tar.TypeDir, 0o1777, 0, 0, ""},
			{"var/", tar.TypeDir, 0o755, 0, 0, ""},
			{"var/cache/", tar.TypeDir, 0o755, 0, 0, ""},
			{"var/cache/certsync/", tar.TypeDir, 0o755, 65532, 65532, ""},
		},
	}, {
		name:  "a Source file is streamed with the given mode, not the one on disk",
		files: []File{{Path: "certsync", Mode: 0o755, Source: src}},
		want:  []entry{{"certsync", tar.TypeReg, 0o755, 0, 0, "ELF..."}},
	}, {
		name:  "setuid and setgid bits are kept",
		files: []File{{Path: "x", Mode: fs.ModeSetuid | fs.ModeSetgid | 0o755, Data: []byte{}}},
		want:  []entry{{"x", tar.TypeReg, 0o6755, 0, 0, ""}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var first bytes.Buffer
			n, err := WriteTar(&first, tt.files, mtime.Add(999*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(first.Len()) {
				t.Errorf("WriteTar said %d bytes, wrote %d", n, first.Len())
			}
			if got := readTar(t, first.Bytes(), mtime); !slices.Equal(got, tt.want) {
				t.Errorf("entries:\n got %v\nwant %v", got, tt.want)
			}

			// Same files in the reverse order: the same bytes.
			reversed := slices.Clone(tt.files)
			slices.Reverse(reversed)
			var second bytes.Buffer
			if _, err := WriteTar(&second, reversed, mtime); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first.Bytes(), second.Bytes()) {
				t.Error("the same files in another order gave other bytes")
			}
		})
	}
}

func TestWriteTarRefuses(t *testing.T) {
	tests := []struct {
		name  string
		files []File
		want  string
	}{
		{"absolute path", []File{{Path: "/etc/passwd", Mode: 0o644}}, "clean relative path"},
		{"dot-dot", []File{{Path: "../etc/passwd", Mode: 0o644}}, "clean relative path"},
		{"unclean", []File{{Path: "etc//passwd", Mode: 0o644}}, "clean relative path"},
		{"empty", []File{{Path: "", Mode: 0o644}}, "clean relative path"},
		{"twice", []File{{Path: "a", Mode: 0o644}, {Path: "a", Mode: 0o600}}, "given twice"},
		{"file as a parent", []File{{Path: "a", Mode: 0o644}, {Path: "a/b", Mode: 0o644}}, "is a file"},
		{"symlink", []File{{Path: "a", Mode: fs.ModeSymlink | 0o777}}, "only directories and regular files"},
		{"directory with data", []File{{Path: "a", Mode: fs.ModeDir | 0o755, Data: []byte("x")}}, "has no content"},
		{"missing source", []File{{Path: "a", Mode: 0o755, Source: filepath.Join(t.TempDir(), "none")}}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := WriteTar(io.Discard, tt.files, time.Unix(0, 0))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// The compressed layer — what the digest is computed over — is as stable
// as the tar inside it: no time or name in the gzip header.
func TestNewLayerIsDeterministic(t *testing.T) {
	files := baseFiles(FallbackRoots())
	a, sizeA, err := NewLayer(files, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	reversed := slices.Clone(files)
	slices.Reverse(reversed)
	b, sizeB, err := NewLayer(reversed, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := NewLayer(files, time.Unix(1700000001, 0))
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	dc, _ := c.Digest()
	if da != db || sizeA != sizeB {
		t.Errorf("same files: digests %s and %s, sizes %d and %d", da, db, sizeA, sizeB)
	}
	if da == dc {
		t.Errorf("another mtime gave the same digest %s: the time is not in the layer", da)
	}
	rc, err := a.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 10)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	// RFC 1952: bytes 4–7 are MTIME, byte 3 FLG (FNAME is bit 3).
	if !bytes.Equal(head[4:8], []byte{0, 0, 0, 0}) || head[3]&0x08 != 0 {
		t.Errorf("gzip header % x carries a time or a name", head)
	}
}

func TestTag(t *testing.T) {
	for version, want := range map[string]string{
		"v1.2.0":                  "v1.2.0",
		"v1.2.0-3-gabc1234-dirty": "v1.2.0-3-gabc1234-dirty",
		"1.2.0+build.5":           "1.2.0-build.5",
		"-x":                      "x",
		"":                        "latest",
		strings.Repeat("a", 200):  strings.Repeat("a", 128),
	} {
		if got := Tag(version); got != want {
			t.Errorf("Tag(%q) = %q, want %q", version, got, want)
		}
	}
}
