package monitoring

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/certsync/certsync/internal/testbed"
)

var record = flag.Bool("record", false, "record testdata/scrape-*.prom from a real `certsync run` (see testdata/README.md)")

// TestRecordScrapes records what the alert tests start from: the /metrics
// of the real certsync binary running `certsync run` against a Git server
// seeded with examples/repo, Pebble and a real API server — healthy, with
// Git away, then with the API server gone. It runs only with -record:
//
//	go test ./deploy/monitoring -run TestRecordScrapes -record
//
// and takes about a minute (it builds cmd/certsync).
func TestRecordScrapes(t *testing.T) {
	if !*record {
		t.Skip("records testdata/scrape-*.prom; run with -record")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "certsync")
	build := exec.Command("go", "build", "-o", bin, "./cmd/certsync")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build certsync: %v\n%s", err, out)
	}

	http01 := freePort(t)
	a := testbed.StartACME(t, testbed.ACMEOptions{HTTP01Port: http01})
	dns := a.StartExampleDNS(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "age.key")
	caFile := filepath.Join(dir, "acme-ca.pem")
	for path, content := range map[string]string{keyFile: id.String() + "\n", caFile: string(a.ServerCAPEM)} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	seed := filepath.Join(dir, "seed")
	testbed.WriteExample(t, filepath.Join("..", "..", "examples", "repo"), seed, a, dns, id.Recipient().String())
	const gitUser, gitPass, hookSecret = "certsync-bot", "s3cret-token", "hook-secret"
	git := testbed.StartGitHTTP(t, gitUser, gitPass)
	git.CreateRepo("certs")
	git.Seed("certs", seed, "main")
	api := testbed.StartAPIServer(t)
	for _, ns := range []string{"shop", "api"} {
		api.CreateNamespace(t, ns)
	}

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	logs := &testbed.Output{}
	agent := exec.Command(bin, "run",
		"--repo", git.URL("certs"), "--branch", "main", "--git-username", gitUser,
		"--cache-dir", filepath.Join(dir, "clone"), "--age-key-file", keyFile,
		"--kubeconfig", api.Kubeconfig, "--cluster", "prod-eu",
		"--http01-addr", fmt.Sprintf("127.0.0.1:%d", http01), "--acme-ca-file", caFile,
		"--dns01-recursive-nameservers", a.DNSAddr, "--dns01-check-propagation=false",
		"--listen-addr", addr, "--interval", "1h", "--shutdown-grace", "5s", "--git-timeout", "10s", "--log-level", "warn")
	agent.Env = append(os.Environ(), "CERTSYNC_GIT_PASSWORD="+gitPass, "CERTSYNC_WEBHOOK_SECRET="+hookSecret)
	agent.Stdout, agent.Stderr = logs, logs
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- agent.Wait() }()
	t.Cleanup(func() {
		agent.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			agent.Process.Kill()
			<-exited
		}
	})

	scrape := func() string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitFor := func(what, sample string) string {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			if m := scrape(); strings.Contains(m, "\n"+sample) {
				return m
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s (%s)\nlogs:\n%s", what, sample, logs.String())
		return ""
	}
	save := func(name, metrics string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join("testdata", name), []byte(metrics), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hook := func() {
		t.Helper()
		body := []byte(`{"ref":"refs/heads/main"}`)
		mac := hmac.New(sha256.New, []byte(hookSecret))
		mac.Write(body)
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+addr+"/hooks/git", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("webhook: %v", err)
		}
		resp.Body.Close()
	}

	// The first pass issues the example's certificates and applies them;
	// a second one finds nothing to do.
	waitFor("the first pass", `certsync_passes_total{result="ok"} 1`)
	hook()
	save("scrape-healthy.prom", waitFor("a quiet pass", `certsync_passes_total{result="ok"} 2`))

	git.SetDown(true)
	hook()
	save("scrape-git-down.prom", waitFor("a pass with Git away", `certsync_passes_total{result="error"} 1`))
	git.SetDown(false)
	hook()
	waitFor("a pass with Git back", `certsync_passes_total{result="ok"} 3`)

	api.Stop(t)
	hook()
	save("scrape-apiserver-down.prom", waitFor("a pass with the API server gone", `certsync_passes_total{result="error"} 2`))
	t.Logf("recorded; agent logs:\n%s", logs.String())
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
