package gitsrc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

func TestObjectHeader(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		typ      byte
		size     int64
		used     int
		complete bool
	}{
		{"empty blob", []byte{0x30}, 3, 0, 1, true},
		{"15 bytes in the first byte", []byte{0x3f}, 3, 15, 1, true},
		{"16 bytes need a second byte", []byte{0xb0, 0x01}, 3, 16, 2, true},
		{"tree of 300 bytes", []byte{0xac, 0x12}, 2, 300, 2, true},
		{"ofs delta", []byte{0x60}, 6, 0, 1, true},
		{"trailing bytes are the object's", []byte{0x35, 0x78, 0x9c}, 3, 5, 1, true},
		{"three-byte size", []byte{0xb1, 0x80, 0x01}, 3, 1 | 1<<11, 3, true},
		{"truncated", []byte{0xb1, 0x80}, 0, 0, 0, false},
		{"nothing", nil, 0, 0, 0, false},
		{"endless continuation", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, size, used, ok := objectHeader(tt.in)
			if ok != tt.complete || typ != tt.typ || size != tt.size || used != tt.used {
				t.Errorf("objectHeader(%x) = %d, %d, %d, %v; want %d, %d, %d, %v", tt.in, typ, size, used, ok, tt.typ, tt.size, tt.used, tt.complete)
			}
		})
	}
}

// TestPackReadMatchesGit: every file of a fetched tree reads back as the
// git CLI reads it, from several goroutines at once; whole blobs come from
// the pack directly, deltas (similar files, which the server deltifies)
// through go-git; a later fetch's new pack is found.
func TestPackReadMatchesGit(t *testing.T) {
	rem := newRemote(t)
	files := map[string]string{
		"small.yaml":        "a: b\n",
		"secrets/big.yaml":  noise(t, 200_000),
		"secrets/mid.yaml":  noise(t, 3_000),
		"declared/one.yaml": "kind: Certificate\n",
	}
	// Near-identical files: upload-pack stores all but one as deltas.
	base := strings.Repeat("spec:\n  dnsNames: [a.example.com, b.example.com]\n  issuerRef: {name: le}\n", 200)
	for i := range 12 {
		files[fmt.Sprintf("certificates/c%d.yaml", i)] = base + fmt.Sprintf("# %d\n", i)
	}
	rem.commit("main", "seed", files)
	r, err := Open(context.Background(), Options{URL: rem.g.URL("certs"), Branch: "main", Dir: t.TempDir(), Auth: Auth{Username: user, Password: pass}})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := r.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	whole, fallback := 0, 0
	for _, p := range snap.Paths() {
		h, _ := snap.blob(p)
		_, ok, err := r.packs.read(h)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if ok {
			whole++
		} else {
			fallback++
		}
	}
	if whole == 0 || fallback == 0 {
		t.Errorf("%d files read from the pack directly and %d through go-git; want both ways exercised (deltas: %d in the pack)", whole, fallback, fallback)
	}

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, p := range snap.Paths() {
				got, err := snap.ReadFile(p)
				if err != nil {
					t.Errorf("%s: %v", p, err)
					return
				}
				if want := files[p]; string(got) != want {
					t.Errorf("%s: read %d bytes, want %d", p, len(got), len(want))
				}
			}
		}()
	}
	wg.Wait()

	rem.commit("main", "another", map[string]string{"later.yaml": noise(t, 500)})
	snap, err = r.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h := plumbing.NewHash(rem.git(rem.bare, "rev-parse", "main:later.yaml"))
	got, ok, err := r.packs.read(h)
	if err != nil || !ok || string(got) != rem.git(rem.bare, "cat-file", "blob", h.String()) {
		t.Fatalf("a blob of the second fetch's pack: ok=%v err=%v", ok, err)
	}
	if got, err := snap.ReadFile("later.yaml"); err != nil || len(got) != 1000 {
		t.Fatalf("later.yaml: %d bytes, %v", len(got), err)
	}
}
