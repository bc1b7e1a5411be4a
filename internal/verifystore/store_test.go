package verifystore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certsync/certsync/reconcile"
)

const (
	alice = "age1alice"
	bob   = "age1bob"
)

func TestStore(t *testing.T) {
	ctx := context.Background()
	some := map[string]reconcile.Checked{
		"secrets/default/ns/a-tls.yaml":      {Blob: "1111", Verified: true},
		"secrets/default/ns/b-tls.yaml":      {Blob: "2222", Verified: false},
		"secrets/default/ns/with space.yaml": {Blob: "3333", Verified: true},
	}
	for _, tc := range []struct {
		name string
		// write prepares the file (nil: none); load is the store read back.
		write   func(t *testing.T, path string)
		load    *Store
		want    map[string]reconcile.Checked
		wantErr string
	}{
		{
			name: "no file is empty",
			load: New("", []string{alice}),
			want: nil,
		},
		{
			name:  "round trip, recipients in any order",
			write: save(New("", []string{alice, bob}), some),
			load:  New("", []string{bob, alice}),
			want:  some,
		},
		{
			name:  "other identities inherit nothing",
			write: save(New("", []string{alice}), some),
			load:  New("", []string{alice, bob}),
			want:  nil,
		},
		{
			name: "bounded: a save replaces what was there",
			write: func(t *testing.T, path string) {
				save(New("", []string{alice}), some)(t, path)
				save(New("", []string{alice}), map[string]reconcile.Checked{"secrets/default/ns/a-tls.yaml": {Blob: "9999", Verified: true}})(t, path)
			},
			load: New("", []string{alice}),
			want: map[string]reconcile.Checked{"secrets/default/ns/a-tls.yaml": {Blob: "9999", Verified: true}},
		},
		{
			name: "what cannot be written on one line is left out",
			write: save(New("", []string{alice}), map[string]reconcile.Checked{
				"secrets/a\nb.yaml": {Blob: "1111", Verified: true},
				"secrets/c.yaml":    {Blob: "", Verified: true},
				"secrets/d.yaml":    {Blob: "4444", Verified: true},
			}),
			load: New("", []string{alice}),
			want: map[string]reconcile.Checked{"secrets/d.yaml": {Blob: "4444", Verified: true}},
		},
		{
			name:    "random bytes",
			write:   raw("\x00\x01garbage\xff"),
			load:    New("", []string{alice}),
			wantErr: "garbled",
		},
		{
			name: "a flipped byte",
			write: func(t *testing.T, path string) {
				save(New("", []string{alice}), some)(t, path)
				b, _ := os.ReadFile(path)
				b[len(b)/2] ^= 1
				os.WriteFile(path, b, 0o600)
			},
			load:    New("", []string{alice}),
			wantErr: "checksum mismatch",
		},
		{
			name: "cut short",
			write: func(t *testing.T, path string) {
				save(New("", []string{alice}), some)(t, path)
				b, _ := os.ReadFile(path)
				os.WriteFile(path, b[:len(b)-30], 0o600)
			},
			load:    New("", []string{alice}),
			wantErr: "garbled",
		},
		{
			name:    "a sound checksum over a malformed line",
			write:   raw(withSum(magic + "\nscope " + New("", []string{alice}).scope + "\nnot-a-line\n")),
			load:    New("", []string{alice}),
			wantErr: "malformed line",
		},
		{
			name:    "another format",
			write:   raw(withSum("certsync-verified 2\nscope x\n")),
			load:    New("", []string{alice}),
			wantErr: "another version",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cache", "certsync_verified")
			if tc.write != nil {
				tc.write(t, path)
			}
			tc.load.path = path
			got, err := tc.load.Load(ctx)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || got != nil {
					t.Fatalf("Load = %v, %v; want no result and an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("Load = %v, want %v", got, tc.want)
			}
		})
	}
}

// The file is replaced whole, never written in place, and holds no key.
func TestSaveIsAtomicAndPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certsync_verified")
	s := New(path, []string{alice})
	if err := s.Save(context.Background(), map[string]reconcile.Checked{"secrets/x.yaml": {Blob: "1", Verified: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v, mode %v", err, fi.Mode())
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), alice) {
		t.Errorf("the file names a recipient; it should hold its digest only:\n%s", b)
	}
}

func save(s *Store, m map[string]reconcile.Checked) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		t.Helper()
		s.path = path
		if err := s.Save(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

func raw(content string) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		os.MkdirAll(filepath.Dir(path), 0o700)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// withSum appends the checksum line a sound file ends with.
func withSum(body string) string {
	return body + "sum " + sha([]byte(body)) + "\n"
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
