// Package testbed starts the real parts certsync's tests and demo run
// against, all on loopback: an ACME CA (Pebble with challtestsrv), Git
// servers (git http-backend over HTTP, and SSH), a Kubernetes API server
// (envtest with kube-apiserver and etcd built by hack/build-tools.sh), and
// age keys. Nothing here is a mock: each helper runs the program or library
// a user's installation would talk to.
//
// Helpers take a TB so they can register cleanup; the demo passes its own
// implementation.
package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// TB is the subset of testing.TB the helpers use.
type TB interface {
	Helper()
	Cleanup(func())
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
}

// ToolsDir is where hack/build-tools.sh caches the programs it builds:
// $CERTSYNC_TOOLS_DIR, else $XDG_CACHE_HOME/certsync/tools, else
// ~/.cache/certsync/tools.
func ToolsDir() string {
	if d := os.Getenv("CERTSYNC_TOOLS_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "certsync", "tools")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "certsync", "tools")
	}
	return filepath.Join(home, ".cache", "certsync", "tools")
}

// Tool returns the path of a program built by hack/build-tools.sh (sops,
// kube-apiserver, etcd, actionlint), failing the test with what to run when
// it is missing.
func Tool(t TB, name string) string {
	t.Helper()
	p, err := ToolPath(name)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return p
}

// ToolPath is Tool for callers without a TB.
func ToolPath(name string) (string, error) {
	p := filepath.Join(ToolsDir(), name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s is not built: run `make tools` (or `make test`, which builds it) first: %w", name, err)
	}
	return p, nil
}

// Git returns the path of the git binary, failing the test when there is none.
func Git(t TB) string {
	t.Helper()
	p, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git is not installed; the Git tests run the real git: %v", err)
	}
	return p
}

func fmtSscan(s string, args ...any) (int, error) { return fmt.Sscan(s, args...) }
