package gitsrc

import (
	"context"
	"crypto/sha1"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/certsync/certsync/internal/testbed"
)

// A snapshot's index (paths sorted, with their blob ids) answers Paths,
// BlobHash and ReadFile for every file, at any depth, whatever names sort
// next to a folder's, and nothing for a path it does not hold.
func TestSnapshotIndex(t *testing.T) {
	files := map[string]string{
		"a.b":                            "dot",
		"a/x":                            "in a",
		"a-b/y":                          "in a-b",
		"a0":                             "zero",
		"ab":                             "ab",
		".sops.yaml":                     "creation_rules: []\n",
		"secrets/default/ns/c-tls.yaml":  "c",
		"secrets/default/ns/b-tls.yaml":  "b",
		"secrets/default/ns2/a-tls.yaml": "a",
	}
	g := testbed.StartGitHTTP(t, user, pass)
	g.CreateRepo("certs")
	dir := t.TempDir()
	for p, content := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644)
	}
	g.Seed("certs", dir, "main")
	s, err := open(t, g.URL("certs"), Auth{Username: user, Password: pass}).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for p := range files {
		want = append(want, p)
	}
	slices.Sort(want)
	if got := s.Paths(); !slices.Equal(got, want) {
		t.Fatalf("paths %q, want %q", got, want)
	}
	for _, tt := range []struct {
		path    string
		content string
		found   bool
	}{
		{path: "a.b", content: "dot", found: true},
		{path: "a/x", content: "in a", found: true},
		{path: "a-b/y", content: "in a-b", found: true},
		{path: "a0", content: "zero", found: true},
		{path: "secrets/default/ns2/a-tls.yaml", content: "a", found: true},
		{path: "secrets/default/ns/b-tls.yaml", content: "b", found: true},
		{path: "a", found: false},   // a folder
		{path: "a/y", found: false}, // not in the folder
		{path: "zz", found: false},  // after every path
		{path: "", found: false},    // before every path
		{path: "secrets/default/ns/a-tls.yaml", found: false},
	} {
		id, ok := s.BlobHash(tt.path)
		b, err := s.ReadFile(tt.path)
		if !tt.found {
			if ok || !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%q: BlobHash found %v, ReadFile %v; want neither", tt.path, ok, err)
			}
			continue
		}
		if !ok || id != gitBlobID(tt.content) {
			t.Errorf("%q: BlobHash %x %v, want %x", tt.path, id, ok, gitBlobID(tt.content))
		}
		if err != nil || string(b) != tt.content {
			t.Errorf("%q: ReadFile %q %v, want %q", tt.path, b, err, tt.content)
		}
	}
}

// gitBlobID is what `git hash-object` says of content.
func gitBlobID(content string) [20]byte {
	return sha1.Sum([]byte("blob " + strconv.Itoa(len(content)) + "\x00" + content))
}
