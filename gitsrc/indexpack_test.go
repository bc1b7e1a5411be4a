package gitsrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certsync/certsync/internal/testbed"
)

// packFixture is a work tree the git CLI committed files to, twice (the
// second commit edits a few, so trees and files have deltas across
// commits), with the files certsync's packs hold: near-identical
// manifests, incompressible ciphertexts, an empty file, and a large file
// edited with a large insertion (a delta too big to be kept between
// indexPack's passes).
func packFixture(t testing.TB) (dir string, git func(args ...string) string) {
	t.Helper()
	dir = t.TempDir()
	bin := testbed.Git(t)
	git = func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"-C", dir, "-c", "user.name=Dev", "-c", "user.email=dev@example.com"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return string(out)
	}
	write := func(files map[string]string) {
		for p, content := range files {
			full := filepath.Join(dir, p)
			os.MkdirAll(filepath.Dir(full), 0o755)
			if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		git("add", "-A")
		git("commit", "-q", "-m", "files")
	}
	git("init", "-q", "-b", "main")
	base := strings.Repeat("spec:\n  dnsNames: [a.example.com, b.example.com]\n  issuerRef: {name: le}\n", 40)
	large := noise(t, 150_000)
	files := map[string]string{"empty": "", "secrets/large.yaml": large}
	for i := range 60 {
		files[fmt.Sprintf("certificates/ns%d/c%d.yaml", i%4, i)] = base + fmt.Sprintf("# %d\n", i)
		files[fmt.Sprintf("secrets/ns%d/c%d.yaml", i%4, i)] = noise(t, 1500)
	}
	write(files)
	write(map[string]string{
		"certificates/ns0/c0.yaml": base + "# edited\n",
		"secrets/ns0/c0.yaml":      noise(t, 1500),
		"secrets/large.yaml":       large[:70_000] + noise(t, 50_000) + large[70_000:],
	})
	return dir, git
}

// TestIndexPackMatchesGit: the index written for a pack is byte for byte
// the one `git index-pack` writes, for packs with offset deltas, with
// reference deltas, and with no deltas.
func TestIndexPackMatchesGit(t *testing.T) {
	dir, git := packFixture(t)
	objects := git("rev-list", "--objects", "--all")
	tests := []struct {
		name string
		args []string
	}{
		{"offset deltas", []string{"pack-objects", "--delta-base-offset", "--window=50", "--depth=50"}},
		{"reference deltas", []string{"pack-objects", "--window=50", "--depth=50"}},
		{"no deltas", []string{"pack-objects", "--window=0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "p")
			cmd := exec.Command(testbed.Git(t), append(append([]string{"-C", dir}, tt.args...), out)...)
			cmd.Stdin = strings.NewReader(objects)
			name, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			pack := out + "-" + strings.TrimSpace(string(name)) + ".pack"
			deltas := strings.Count(git("verify-pack", "-v", strings.TrimSuffix(pack, ".pack")+".idx"), "chain length")
			if (tt.name == "no deltas") != (deltas == 0) {
				t.Fatalf("the fixture's pack has %d delta chains", deltas)
			}
			want, err := os.ReadFile(strings.TrimSuffix(pack, ".pack") + ".idx")
			if err != nil {
				t.Fatal(err)
			}
			idx := filepath.Join(t.TempDir(), "mine.idx")
			sum, err := indexPack(pack, idx)
			if err != nil {
				t.Fatal(err)
			}
			if sum.String() != strings.TrimSpace(string(name)) {
				t.Errorf("checksum %s, git names the pack %s", sum, name)
			}
			got, err := os.ReadFile(idx)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("index differs from git's: %d bytes, git's %d", len(got), len(want))
			}
		})
	}
}

// TestIndexPackRefuses: a pack that is damaged, or thin, gets an error
// (a thin one errThinPack, which sends it to go-git), never a panic or an
// index.
func TestIndexPackRefuses(t *testing.T) {
	dir, git := packFixture(t)
	packOf := func(args []string, stdin string) []byte {
		cmd := exec.Command(testbed.Git(t), append([]string{"-C", dir}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	whole := packOf([]string{"pack-objects", "--stdout", "--delta-base-offset"}, git("rev-list", "--objects", "--all"))
	thin := packOf([]string{"pack-objects", "--stdout", "--thin", "--revs"}, "main\n^main~1\n")
	flip := func(at int) []byte {
		b := bytes.Clone(whole)
		b[at] ^= 0x40
		return b
	}
	tests := []struct {
		name string
		pack []byte
		want error
	}{
		{"thin", thin, errThinPack},
		{"empty", nil, nil},
		{"not a pack", []byte("PACX\x00\x00\x00\x02\x00\x00\x00\x01" + strings.Repeat("x", 40)), nil},
		{"truncated", whole[:len(whole)/2], nil},
		{"byte flipped in an object", flip(len(whole) / 2), nil},
		{"byte flipped in the checksum", flip(len(whole) - 3), nil},
		{"more objects claimed", append(append(bytes.Clone(whole[:8]), 0, 0, 0x7f, 0xff), whole[12:]...), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.pack")
			if err := os.WriteFile(path, tt.pack, 0o644); err != nil {
				t.Fatal(err)
			}
			idx := path + ".idx"
			_, err := indexPack(path, idx)
			if err == nil {
				t.Fatal("indexed")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if _, serr := os.Stat(idx); serr == nil {
				t.Errorf("an index was written for a refused pack")
			}
		})
	}
}

// TestFetchedPackFallsBackToGoGit: a pack indexPack refuses (thin, as a
// fetch into a clone holding the bases could get) goes to go-git's own
// writer, whose answer is the fetch's, as before this fast path: go-git
// refuses thin packs too, so the clone is left as it was.
func TestFetchedPackFallsBackToGoGit(t *testing.T) {
	rem := newRemote(t)
	rem.commit("main", "seed", map[string]string{"a.yaml": strings.Repeat("dnsNames: [a.example.com]\n", 100)})
	r, err := Open(context.Background(), Options{URL: rem.g.URL("certs"), Branch: "main", Dir: t.TempDir(), Auth: Auth{Username: user, Password: pass}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	head := rem.commit("main", "edit", map[string]string{"a.yaml": strings.Repeat("dnsNames: [a.example.com]\n", 100) + "# edited\n"})
	cmd := exec.Command(testbed.Git(t), "-C", rem.bare, "pack-objects", "--stdout", "--thin", "--revs")
	cmd.Stdin = strings.NewReader(head + "\n^" + head + "~1\n")
	thin, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.repo.Storer.(*cloneStorage).PackfileWriter()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(thin); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(filepath.Join(r.opts.Dir, "objects", "pack"))
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "reference delta not found") {
		t.Fatalf("close: %v; want go-git's refusal of the thin pack", err)
	}
	after, _ := os.ReadDir(filepath.Join(r.opts.Dir, "objects", "pack"))
	for _, e := range after {
		if !slices.ContainsFunc(before, func(b os.DirEntry) bool { return b.Name() == e.Name() }) && !strings.HasPrefix(e.Name(), "tmp_pack_") {
			t.Errorf("stored for a refused pack: %s", e.Name())
		}
	}
}

// TestIndexPackSurvivesDamage: packs damaged at random (bytes changed,
// dropped, inserted, the end cut) are refused or indexed, never a panic
// or a hang: the pack's checksum covers every byte before it.
func TestIndexPackSurvivesDamage(t *testing.T) {
	dir, git := packFixture(t)
	var some []string
	for _, line := range strings.Split(git("rev-list", "--objects", "--all"), "\n") {
		if strings.Contains(line, "certificates/ns1/") || strings.HasSuffix(line, "secrets/ns1/c1.yaml") {
			some = append(some, line)
		}
	}
	cmd := exec.Command(testbed.Git(t), "-C", dir, "pack-objects", "--stdout", "--delta-base-offset")
	cmd.Stdin = strings.NewReader(strings.Join(some, "\n") + "\n")
	pack, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	path := filepath.Join(t.TempDir(), "p.pack")
	indexed := 0
	for range 3000 {
		b := bytes.Clone(pack)
		for range 1 + rng.IntN(4) {
			switch at := rng.IntN(len(b)); rng.IntN(4) {
			case 0:
				b[at] = byte(rng.IntN(256))
			case 1:
				b = append(b[:at], b[at+1:]...)
			case 2:
				b = slices.Insert(b, at, byte(rng.IntN(256)))
			case 3:
				b = b[:at]
			}
			if len(b) == 0 {
				break
			}
		}
		if bytes.Equal(b, pack) {
			continue // the changes undid themselves
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := indexPack(path, path+".idx"); err == nil {
			indexed++
		}
	}
	if indexed > 0 {
		t.Errorf("%d damaged packs indexed", indexed)
	}
}
