package testbed

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// GitHTTP serves bare repositories through the real `git http-backend`
// (smart HTTP, push enabled), optionally behind basic auth.
type GitHTTP struct {
	t        TB
	git      string
	Root     string
	server   *httptest.Server
	mu       sync.Mutex
	down     bool
	pushDown bool
	// pushesLeft, when not negative, is how many more pushes are
	// accepted before pushes fail (FailPushesAfter).
	pushesLeft int
}

// StartGitHTTP starts the server; an empty username means no auth.
func StartGitHTTP(t TB, username, password string) *GitHTTP {
	t.Helper()
	g := &GitHTTP{t: t, git: Git(t), Root: t.TempDir(), pushesLeft: -1}
	backend := &cgi.Handler{
		Path: g.git,
		Args: []string{"http-backend"},
		Env: []string{
			"GIT_PROJECT_ROOT=" + g.Root,
			"GIT_HTTP_EXPORT_ALL=1",
			"REMOTE_USER=certsync",
			"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.receivepack", "GIT_CONFIG_VALUE_0=true",
		},
	}
	g.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		down := g.down
		g.mu.Unlock()
		if down || (g.pushRefused(r) && strings.Contains(r.URL.String(), "git-receive-pack")) {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		if username != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != username || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(g.server.Close)
	return g
}

// SetDown makes the server answer 503 to everything, as a Git host in
// maintenance would, until SetDown(false).
func (g *GitHTTP) SetDown(down bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.down = down
}

// SetPushDown refuses pushes only (fetches still work): the remote fails
// between a pass's fetch and its push.
func (g *GitHTTP) SetPushDown(down bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pushDown = down
}

// FailPushesAfter accepts n more pushes, then refuses pushes (as
// SetPushDown(true)) until SetPushDown(false): the remote goes away in the
// middle of a pass.
func (g *GitHTTP) FailPushesAfter(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pushesLeft = n
}

func (g *GitHTTP) pushRefused(r *http.Request) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pushesLeft >= 0 && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
		if g.pushesLeft == 0 {
			g.pushDown, g.pushesLeft = true, -1
		} else {
			g.pushesLeft--
		}
	}
	return g.pushDown
}

// URL is the clone URL of a repository.
func (g *GitHTTP) URL(repo string) string { return g.server.URL + "/" + repo + ".git" }

// CreateRepo creates an empty bare repository whose default branch is main.
func (g *GitHTTP) CreateRepo(repo string) string {
	g.t.Helper()
	dir := filepath.Join(g.Root, repo+".git")
	g.run("", "init", "--bare", "--initial-branch=main", dir)
	return dir
}

// Seed commits every file of dir as the first commit of branch and pushes it.
func (g *GitHTTP) Seed(repo, dir, branch string) {
	g.t.Helper()
	work := g.t.TempDir()
	g.run("", "clone", "--quiet", filepath.Join(g.Root, repo+".git"), work)
	if err := copyDir(dir, work); err != nil {
		g.t.Fatalf("seed %s: %v", repo, err)
	}
	g.run(work, "checkout", "--quiet", "-B", branch)
	g.run(work, "add", "-A")
	g.run(work, "-c", "user.name=Platform Team", "-c", "user.email=platform@example.com", "commit", "--quiet", "-m", "Declare certificates")
	g.run(work, "push", "--quiet", "origin", branch)
}

// Git runs a git command in the bare repository of repo on the server
// side, as someone with shell access to the Git host would (rewinding a
// branch, writing commits no client pushed), and returns its output.
func (g *GitHTTP) Git(repo string, args ...string) string {
	g.t.Helper()
	return g.run(filepath.Join(g.Root, repo+".git"), args...)
}

func (g *GitHTTP) run(dir string, args ...string) string {
	g.t.Helper()
	return runGit(g.t, g.git, dir, args...)
}

func runGit(t TB, git, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(git, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func copyDir(src, dst string) error {
	return filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
}

// GitObjectsContaining lists the objects of a repository whose content
// contains needle: every blob, tree and commit, reachable or not.
func GitObjectsContaining(t TB, bareRepo, needle string) []string {
	t.Helper()
	cmd := exec.Command(Git(t), "-C", bareRepo, "cat-file", "--batch-all-objects", "--batch")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git cat-file: %v", err)
	}
	var hits []string
	// Output: "<oid> <type> <size>\n<content>\n" per object.
	for len(out) > 0 {
		nl := strings.IndexByte(string(out[:min(len(out), 200)]), '\n')
		if nl < 0 {
			break
		}
		var oid, typ string
		var size int
		if _, err := fmtSscan(string(out[:nl]), &oid, &typ, &size); err != nil {
			t.Fatalf("parse cat-file header %q: %v", out[:nl], err)
		}
		body := out[nl+1 : nl+1+size]
		if strings.Contains(string(body), needle) {
			hits = append(hits, oid)
		}
		out = out[nl+1+size+1:]
	}
	return hits
}
