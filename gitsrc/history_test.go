package gitsrc

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/certsync/certsync/internal/testbed"
)

// gitServers are the two real Git servers the tests use: git http-backend
// and git-upload-pack/receive-pack behind the test SSH server, both on
// the same bare repositories.
type gitServer struct {
	name string
	url  string
	auth Auth
}

func gitServers(t *testing.T, g *testbed.GitHTTP, repo string) []gitServer {
	srv := testbed.StartGitSSH(t, g.Root)
	return []gitServer{
		{"http", g.URL(repo), Auth{Username: user, Password: pass}},
		{"ssh", srv.URL(repo), Auth{SSHKey: srv.ClientKeyPEM(), KnownHosts: srv.KnownHosts()}},
	}
}

// remote is a bare repository on the test servers and a person who
// commits to it with the git CLI (another writer, or someone with shell
// access to the Git host).
type remote struct {
	t    *testing.T
	g    *testbed.GitHTTP
	bare string
}

func newRemote(t *testing.T) *remote {
	g := testbed.StartGitHTTP(t, user, pass)
	return &remote{t: t, g: g, bare: g.CreateRepo("certs")}
}

func (r *remote) git(dir string, args ...string) string {
	r.t.Helper()
	out, err := exec.Command(testbed.Git(r.t), append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (path → content; "" deletes) in one commit on
// branch, made by a person, and returns its hash.
func (r *remote) commit(branch, msg string, files map[string]string) string {
	r.t.Helper()
	dir := r.t.TempDir()
	r.git(dir, "init", "-q", "-b", branch)
	if r.git(r.bare, "for-each-ref", "refs/heads/"+branch) != "" {
		r.git(dir, "fetch", "-q", r.bare, branch)
		r.git(dir, "reset", "-q", "--hard", "FETCH_HEAD")
	}
	for p, content := range files {
		full := filepath.Join(dir, p)
		if content == "" {
			os.Remove(full)
			continue
		}
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git(dir, "add", "-A")
	r.git(dir, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "--allow-empty", "-m", msg)
	r.git(dir, "push", "-q", r.bare, "HEAD:refs/heads/"+branch)
	return r.git(dir, "rev-parse", "HEAD")
}

func (r *remote) head(branch string) string { return r.git(r.bare, "rev-parse", branch) }

// noise is incompressible content, as SOPS ciphertexts are.
func noise(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

// objectBytes is what the local repository stores on disk.
func objectBytes(t *testing.T, dir string) int64 {
	var n int64
	err := filepath.WalkDir(filepath.Join(dir, "objects"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		n += info.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFetchHeadOnly: a fresh clone of a branch with a long history of
// large, incompressible files downloads the head's files and nothing of
// the history, over HTTP and SSH.
func TestFetchHeadOnly(t *testing.T) {
	ctx := context.Background()
	rem := newRemote(t)
	var heads []string
	for i := range 40 {
		heads = append(heads, rem.commit("main", fmt.Sprintf("renewal %d", i), map[string]string{
			"secrets/default/shop/web-tls.yaml": noise(t, 32<<10),
			"certificates/web.yaml":             "kind: Certificate\n",
		}))
	}
	rem.git(rem.bare, "gc", "-q")
	history := objectBytes(t, rem.bare)
	for _, tr := range gitServers(t, rem.g, "certs") {
		t.Run(tr.name, func(t *testing.T) {
			dir := t.TempDir()
			r, err := Open(ctx, Options{URL: tr.url, Branch: "main", Dir: dir, Auth: tr.auth})
			if err != nil {
				t.Fatal(err)
			}
			s, err := r.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s.Commit() != heads[39] {
				t.Fatalf("fetched %s, want the head %s", s.Commit(), heads[39])
			}
			got, err := s.ReadFile("secrets/default/shop/web-tls.yaml")
			if err != nil || string(got) != rem.git(rem.bare, "show", "main:secrets/default/shop/web-tls.yaml") {
				t.Fatalf("the head's file differs from the server's: %v", err)
			}
			if _, err := r.repo.CommitObject(plumbing.NewHash(heads[38])); !errors.Is(err, plumbing.ErrObjectNotFound) {
				t.Fatalf("the head's parent was fetched (%v): history must stay on the server", err)
			}
			// The head's file is 64 KiB of hex; the history 40 of them.
			if local := objectBytes(t, dir); local > history/10 {
				t.Fatalf("the clone stores %d bytes, the whole history packed is %d", local, history)
			}
			if sh, _ := r.repo.Storer.Shallow(); !slices.Equal(sh, []plumbing.Hash{plumbing.NewHash(heads[39])}) {
				t.Fatalf("shallow list %v, want the head alone", sh)
			}
		})
	}
}

// TestShallowClone runs every operation of a pass on a clone that holds
// heads only, against a branch that moves in every way it can: other
// writers, a person restoring a file from deep history, a push race, a
// rewind below anything fetched, restarts with commits not pushed. Over
// HTTP and SSH, with signed commits. After each push by certsync the
// server's previous head is still in the branch's history: nothing is
// ever rewritten.
func TestShallowClone(t *testing.T) {
	rem := newRemote(t)
	first := rem.commit("main", "c1", map[string]string{"keep.yaml": "old-K\n", "certificates/web.yaml": "kind: Certificate\n"})
	second := rem.commit("main", "c2", map[string]string{"keep.yaml": "K2\n"})
	for i := 3; i <= 5; i++ {
		rem.commit("main", fmt.Sprintf("c%d", i), map[string]string{"keep.yaml": fmt.Sprintf("K%d\n", i)})
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	keyPEM, allowed := testbed.SSHSigningKey(t, t.TempDir(), priv)
	signer, err := NewCommitSigner(keyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range gitServers(t, rem.g, "certs") {
		t.Run(tr.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			opts := Options{URL: tr.url, Branch: "main", Dir: dir, Auth: tr.auth, Signer: signer}
			r, err := Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			mine := 0
			// commitPush commits one file of ours on the remote head and
			// pushes it, checking that the branch only moved forward and
			// that the commit verifies as signed.
			commitPush := func(s *Snapshot) {
				t.Helper()
				mine++
				before := rem.head("main")
				c, err := r.Commit(ctx, s, []Change{{Path: fmt.Sprintf("secrets/%s-%d.yaml", tr.name, mine), Content: []byte(noise(t, 64))}}, fmt.Sprintf("certsync: %d\n\nCertificate: shop/web\n", mine))
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Push(ctx); err != nil {
					t.Fatalf("push: %v", err)
				}
				if got := rem.head("main"); got != c.Commit() {
					t.Fatalf("server head %s, want ours %s", got, c.Commit())
				}
				rem.git(rem.bare, "merge-base", "--is-ancestor", before, c.Commit())
				rem.git(rem.bare, "-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile="+allowed, "verify-commit", c.Commit())
			}
			fetch := func() *Snapshot {
				t.Helper()
				s, err := r.Fetch(ctx)
				if err != nil {
					t.Fatalf("fetch: %v", err)
				}
				if s.Commit() != rem.head("main") {
					t.Fatalf("fetched %s, the server's head is %s", s.Commit(), rem.head("main"))
				}
				for _, p := range s.Paths() {
					got, err := s.ReadFile(p)
					if want := rem.git(rem.bare, "show", "main:"+p); err != nil || strings.TrimSpace(string(got)) != want {
						t.Fatalf("%s: %q, %v; the server has %q", p, got, err, want)
					}
				}
				return s
			}

			// Fresh, then the remote moves by several commits, one of which
			// restores a file to content only the first commit held: a
			// server that believed the clone held history would not send it.
			fetch()
			// Packed with reachability bitmaps, as Git hosts keep their
			// repositories: the server then knows exactly what the
			// history below a commit holds.
			rem.git(rem.bare, "repack", "-a", "-d", "-q", "--write-bitmap-index")
			rem.commit("main", "restore", map[string]string{"keep.yaml": "old-K\n"})
			rem.commit("main", "another", map[string]string{"y.yaml": "y\n"})
			commitPush(fetch())

			// Several commits pushed at once: a directory emptied, another
			// created deeper, a file deleted. What is sent is what they
			// added; the server's fsck at the end finds nothing missing.
			s0 := fetch()
			s1, err := r.Commit(ctx, s0, []Change{{Path: "secrets/multi/a.yaml", Content: []byte("a")}, {Path: "y.yaml", Delete: true}}, "certsync: multi 1")
			if err != nil {
				t.Fatal(err)
			}
			s2, err := r.Commit(ctx, s1, []Change{{Path: "secrets/multi/a.yaml", Delete: true}, {Path: "secrets/multi2/deep/b.yaml", Content: []byte("b")}}, "certsync: multi 2")
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := r.Pending(ctx); n != 2 {
				t.Fatalf("pending = %d, want 2", n)
			}
			if err := r.Push(ctx); err != nil || rem.head("main") != s2.Commit() {
				t.Fatalf("push of two commits: %v", err)
			}
			fetch()

			// A push race: another writer pushes first.
			s := fetch()
			rem.commit("main", "a person's change", map[string]string{"z.yaml": "z\n"})
			if _, err := r.Commit(ctx, s, []Change{{Path: "secrets/race.yaml", Content: []byte("r")}}, "certsync: race"); err != nil {
				t.Fatal(err)
			}
			if err := r.Push(ctx); !errors.Is(err, ErrNonFastForward) {
				t.Fatalf("lost race: %v, want ErrNonFastForward", err)
			}
			s = fetch() // the commit is pending: the local branch stays
			if n, descends, err := r.PendingOnto(ctx); n != 1 || descends || err != nil {
				t.Fatalf("after the lost race: PendingOnto = %d, %v, %v; want 1, false", n, descends, err)
			}
			if ch, _ := r.PendingChanges(ctx); describeChanges(ch) != "W secrets/race.yaml=r" {
				t.Fatalf("pending changes %s", describeChanges(ch))
			}
			if err := r.Reset(ctx, s); err != nil {
				t.Fatal(err)
			}
			commitPush(s)

			// Rewound below anything this clone fetched (go-git #1443).
			rem.git(rem.bare, "update-ref", "refs/heads/main", second)
			commitPush(fetch())

			// Restarts with a commit not pushed: once on the remote head,
			// once after the remote moved on.
			for _, moved := range []bool{false, true} {
				s := fetch()
				if _, err := r.Commit(ctx, s, []Change{{Path: "secrets/restart.yaml", Content: []byte(fmt.Sprint(moved))}}, "certsync: before restart"); err != nil {
					t.Fatal(err)
				}
				if r, err = Open(ctx, opts); err != nil {
					t.Fatal(err)
				}
				if moved {
					rem.commit("main", "meanwhile", map[string]string{"w.yaml": "w\n"})
				}
				if n, descends, err := r.PendingOnto(ctx); n != 1 || !descends || err != nil {
					t.Fatalf("after the restart: PendingOnto = %d, %v, %v; want 1, true", n, descends, err)
				}
				err := r.Push(ctx)
				if !moved {
					if err != nil || rem.head("main") != mustLocal(t, r).Commit() {
						t.Fatalf("push after restart: %v", err)
					}
					continue
				}
				if !errors.Is(err, ErrNonFastForward) {
					t.Fatalf("push after restart, remote moved: %v", err)
				}
				changes, _ := r.PendingChanges(ctx)
				if describeChanges(changes) != "W secrets/restart.yaml=true" {
					t.Fatalf("pending changes %s", describeChanges(changes))
				}
				s = fetch()
				if _, descends, _ := r.PendingOnto(ctx); descends {
					t.Fatal("the pending commit must not sit on the moved head")
				}
				r.Reset(ctx, s)
				commitPush(s)
			}

			if _, err := r.repo.CommitObject(plumbing.NewHash(first)); !errors.Is(err, plumbing.ErrObjectNotFound) {
				t.Fatalf("the first commit was fetched (%v): history must stay on the server", err)
			}
			if sh, _ := r.repo.Storer.Shallow(); len(sh) > 2 {
				t.Fatalf("the shallow list grew to %d entries", len(sh))
			}
			rem.git(rem.bare, "fsck", "--strict", "--no-progress")
		})
	}
}

func mustLocal(t *testing.T, r *Repo) *Snapshot {
	t.Helper()
	s, err := r.Local(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestProposalFreshClone: an agent starting with an empty cache finds an
// open proposal while main moved on since it was built. The clone holds
// heads only, so it deepens both branches until they meet: the proposal
// is carried onto main's head without undoing main's own changes, and
// main's old history is still not downloaded.
func TestProposalFreshClone(t *testing.T) {
	ctx := context.Background()
	rem := newRemote(t)
	first := rem.commit("main", "c0", map[string]string{"certificates/web.yaml": "web v0\n"})
	for i := 1; i <= 20; i++ {
		rem.commit("main", fmt.Sprintf("c%d", i), map[string]string{"certificates/web.yaml": fmt.Sprintf("web v%d\n", i)})
	}
	for _, tr := range gitServers(t, rem.g, "certs") {
		t.Run(tr.name, func(t *testing.T) {
			proposal := "certsync/proposal-" + tr.name
			open := func() *Repo {
				r, err := Open(ctx, Options{URL: tr.url, Branch: "main", ProposalBranch: proposal, Dir: t.TempDir(), Auth: tr.auth})
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			a := open()
			s, err := a.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"a", "b"} {
				if s, err = a.Commit(ctx, s, []Change{{Path: "secrets/" + f + ".yaml", Content: []byte(f)}}, "certsync: "+f); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Push(ctx); err != nil {
				t.Fatal(err)
			}
			rem.commit("main", "a person edits web", map[string]string{"certificates/web.yaml": "web v21 " + tr.name + "\n"})
			rem.commit("main", "a person adds api", map[string]string{"certificates/api.yaml": "api\n"})
			rem.commit("main", "a person edits web again", map[string]string{"certificates/web.yaml": "web v22 " + tr.name + "\n"})

			b := open()
			s, err = b.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if web, _ := s.ReadFile("certificates/web.yaml"); string(web) != "web v22 "+tr.name+"\n" {
				t.Fatalf("carrying the proposal undid main's change: web.yaml = %q", web)
			}
			want := []string{"certificates/api.yaml", "certificates/web.yaml", "secrets/a.yaml", "secrets/b.yaml"}
			if !slices.Equal(s.Paths(), want) {
				t.Fatalf("paths %v, want %v", s.Paths(), want)
			}
			if n, _ := b.Pending(ctx); n != 0 {
				t.Fatalf("a fresh fetch made %d commits to push", n)
			}
			if _, err := b.repo.CommitObject(plumbing.NewHash(first)); !errors.Is(err, plumbing.ErrObjectNotFound) {
				t.Fatalf("main's first commit was fetched (%v): deepening must stop where the branches meet", err)
			}
			if _, err := b.Commit(ctx, s, []Change{{Path: "secrets/c.yaml", Content: []byte("c")}}, "certsync: c"); err != nil {
				t.Fatal(err)
			}
			if err := b.Push(ctx); err != nil {
				t.Fatal(err)
			}
			if base := rem.git(rem.bare, "merge-base", "main", proposal); base != rem.head("main") {
				t.Fatalf("the rebuilt proposal must sit on main's head, merge base %s", base)
			}
			files := strings.Fields(rem.git(rem.bare, "ls-tree", "-r", "--name-only", proposal))
			if want := append(want, "secrets/c.yaml"); !slices.Equal(files, want) {
				t.Fatalf("the proposal holds %v, want %v", files, want)
			}
		})
	}
}

// TestRemoteHeadsFile: the record of remote heads survives a torn or
// repeated line and keeps the newest remoteHeadsKept heads.
func TestRemoteHeadsFile(t *testing.T) {
	hash := func(i int) plumbing.Hash { return plumbing.NewHash(fmt.Sprintf("%040x", i+1)) }
	tests := []struct {
		name    string
		content string
		add     int // heads added after loading
		known   []plumbing.Hash
		unknown []plumbing.Hash
	}{
		{"no file", "", 0, nil, []plumbing.Hash{hash(0)}},
		{"torn and repeated lines", hash(0).String() + "\n" + hash(0).String() + "\n" + hash(1).String()[:20], 0, []plumbing.Hash{hash(0)}, []plumbing.Hash{hash(1)}},
		{"bounded", hash(0).String() + "\n", remoteHeadsKept, []plumbing.Hash{hash(1), hash(remoteHeadsKept)}, []plumbing.Hash{hash(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.content != "" {
				os.WriteFile(filepath.Join(dir, remoteHeadsFile), []byte(tt.content), 0o600)
			}
			r, err := Open(context.Background(), Options{URL: "https://git.example/certs.git", Branch: "main", Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= tt.add; i++ {
				if err := r.sawRemote(hash(i)); err != nil {
					t.Fatal(err)
				}
			}
			// Read back from disk, as after a restart.
			r, _ = Open(context.Background(), Options{URL: "https://git.example/certs.git", Branch: "main", Dir: dir})
			for _, h := range tt.known {
				if ok, err := r.sawRemoteHead(h); !ok || err != nil {
					t.Errorf("%s forgotten (%v)", h, err)
				}
			}
			for _, h := range tt.unknown {
				if ok, _ := r.sawRemoteHead(h); ok {
					t.Errorf("%s known", h)
				}
			}
		})
	}
}
