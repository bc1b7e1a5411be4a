package deploy

// The parts the tests share for the life of the test process, each started
// on first use: one API server (envtest: kube-apiserver and etcd) and one
// certsync binary built from ./cmd/certsync.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/certsync/certsync/internal/testbed"
)

// process owns what outlives a single test; TestMain closes it.
var process = &testbed.Process{}

func TestMain(m *testing.M) {
	code := m.Run()
	process.Close()
	os.Exit(code)
}

// shared starts something once per test process and remembers its
// failure, so every test that needs it fails with the same reason.
type shared[T any] struct {
	once sync.Once
	val  T
	err  error
}

func (s *shared[T]) get(t *testing.T, start func() T) T {
	t.Helper()
	s.once.Do(func() {
		defer testbed.Recover(&s.err)
		s.val = start()
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.val
}

var (
	apiServer shared[*testbed.APIServer]
	binary    shared[string]
)

// sharedAPI is the test process's API server. Tests use their own
// namespaces (and cluster-scoped names) so they never see each other.
func sharedAPI(t *testing.T) *testbed.APIServer {
	t.Helper()
	return apiServer.get(t, func() *testbed.APIServer { return testbed.StartAPIServer(process) })
}

// adminClient talks to the shared API server as system:masters.
func adminClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(sharedAPI(t).Config)
	if err != nil {
		t.Fatalf("client for the test API server: %v", err)
	}
	return cs
}

// certsyncBinary builds ./cmd/certsync once: the tests run the real
// command, as the image's entrypoint runs it.
func certsyncBinary(t *testing.T) string {
	t.Helper()
	return binary.get(t, func() string {
		out := filepath.Join(process.TempDir(), "certsync")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", out, "github.com/certsync/certsync/cmd/certsync")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			process.Fatalf("build certsync (go build ./cmd/certsync): %v\n%s", err, stderr.String())
		}
		t.Logf("built certsync in %s", time.Since(start).Round(100*time.Millisecond))
		return out
	})
}
