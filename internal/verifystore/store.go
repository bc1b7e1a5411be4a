// Package verifystore keeps, in one file of the agent's cache folder,
// which committed files the agent verified (reconcile.VerifiedStore), so
// a new process does not decrypt every committed file again.
//
// # The file
//
// A text file, one committed file per line, written whole to a temporary
// file and renamed over the old one (a crash leaves the old or the new
// file, never half of one):
//
//	certsync-verified 1
//	scope <sha256 of the agent's recipients>
//	<blob id> <1: verified | 0: no key opens it> <path>
//	…
//	sum <sha256 of every line above>
//
// The scope ties the results to the agent's decryption identities: a
// store written with another key set is empty to this one, as a file one
// key opened may not open with another. The sum makes a garbled file
// (a disk error, a hand edit) count as empty rather than as a shorter
// list. The file holds paths, blob ids and the recipients' digest: no
// key material, nothing secret.
//
// The cache folder belongs to the operator, not to the repository, so
// what it says is trusted: it can only make the agent skip checks it made
// itself before, never change what the agent plans.
package verifystore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/certsync/certsync/reconcile"
)

const magic = "certsync-verified 1"

// Store is a VerifiedStore in one file.
type Store struct {
	path  string
	scope string
}

var _ reconcile.VerifiedStore = (*Store)(nil)

// New returns the store kept in the file at path, for an agent whose
// identities decrypt for recipients (their public halves, in any order).
func New(path string, recipients []string) *Store {
	sorted := slices.Sorted(slices.Values(recipients))
	sum := sha256.Sum256([]byte(strings.Join(sorted, "\n")))
	return &Store{path: path, scope: hex.EncodeToString(sum[:])}
}

// Load returns what the file holds for this store's scope: nothing when
// there is no file or it was written for other identities, an error when
// it cannot be read or is garbled (the caller takes it as empty).
func (s *Store) Load(ctx context.Context) (map[string]reconcile.Checked, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.path, err)
	}
	out, err := s.parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	return out, nil
}

func (s *Store) parse(b []byte) (map[string]reconcile.Checked, error) {
	i := bytes.LastIndex(b, []byte("\nsum "))
	if i < 0 {
		return nil, errors.New("no checksum line: garbled")
	}
	body, sumLine := b[:i+1], strings.TrimSuffix(string(b[i+len("\nsum "):]), "\n")
	sum := sha256.Sum256(body)
	if sumLine != hex.EncodeToString(sum[:]) {
		return nil, errors.New("checksum mismatch: garbled")
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() || sc.Text() != magic {
		return nil, errors.New("not a certsync verification store (or another version)")
	}
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "scope ") {
		return nil, errors.New("no scope line: garbled")
	}
	if strings.TrimPrefix(sc.Text(), "scope ") != s.scope {
		return nil, nil // written for other identities: nothing carries over
	}
	out := map[string]reconcile.Checked{}
	for sc.Scan() {
		blob, rest, ok1 := strings.Cut(sc.Text(), " ")
		flag, path, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 || blob == "" || path == "" || (flag != "0" && flag != "1") {
			return nil, fmt.Errorf("malformed line %q: garbled", sc.Text())
		}
		out[path] = reconcile.Checked{Blob: blob, Verified: flag == "1"}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Save replaces the file's content with checked, atomically. Entries that
// cannot be written on one line (a path with a line break, a blob id with
// a space) are left out: they are only verified again.
func (s *Store) Save(ctx context.Context, checked map[string]reconcile.Checked) error {
	var b bytes.Buffer
	b.Grow(len(checked) * 100)
	b.WriteString(magic + "\nscope " + s.scope + "\n")
	for _, path := range slices.Sorted(func(yield func(string) bool) {
		for p := range checked {
			if !yield(p) {
				return
			}
		}
	}) {
		c := checked[path]
		if c.Blob == "" || strings.ContainsAny(c.Blob, " \n") || strings.ContainsAny(path, "\r\n") {
			continue
		}
		flag := "0"
		if c.Verified {
			flag = "1"
		}
		b.WriteString(c.Blob + " " + flag + " " + path + "\n")
	}
	sum := sha256.Sum256(b.Bytes())
	b.WriteString("sum " + hex.EncodeToString(sum[:]) + "\n")
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("save verification results: %w", err)
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("save verification results: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("save verification results: %w", err)
	}
	return nil
}
