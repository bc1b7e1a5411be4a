package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/internal/testbed"
)

// BenchmarkFreshReconcile10k: `certsync reconcile` with nothing due, as a
// new agent runs it (an empty cache folder: it clones, reads and verifies
// every committed file by decrypting it once), side by side with the
// yardstick of reading the same repository with the git CLI: `git clone
// --bare`, then every blob at HEAD through `git cat-file --batch`.
func BenchmarkFreshReconcile10k(b *testing.B) {
	r := newScaleRepo(b, benchCerts, 0, time.Time{})
	bin := buildCertsync(b)
	git := testbed.Git(b)
	var certsyncS, gitS, rssMB float64
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(bin, commandArgs("reconcile", append([]string{"--no-apply", "--cache-dir", filepath.Join(b.TempDir(), "cache")}, r.args...)...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		peak := watchRSS(cmd.Process.Pid)
		err := cmd.Wait()
		certsyncS += time.Since(start).Seconds()
		hwm, _ := peak()
		rssMB = max(rssMB, hwm)
		if err != nil || !strings.Contains(out.String(), "up to date") {
			b.Fatalf("reconcile: %v\n%s", err, out.String())
		}

		start = time.Now()
		clone := filepath.Join(b.TempDir(), "clone.git")
		if o, err := exec.Command(git, "clone", "--quiet", "--bare", r.bare, clone).CombinedOutput(); err != nil {
			b.Fatalf("git clone: %v %s", err, o)
		}
		list, err := exec.Command(git, "-C", clone, "ls-tree", "-r", "--object-only", "HEAD").Output()
		if err != nil {
			b.Fatal(err)
		}
		cat := exec.Command(git, "-C", clone, "cat-file", "--batch")
		cat.Stdin = bytes.NewReader(list)
		var blobs bytes.Buffer
		cat.Stdout = &blobs
		if err := cat.Run(); err != nil {
			b.Fatal(err)
		}
		gitS += time.Since(start).Seconds()
	}
	n := float64(b.N)
	b.ReportMetric(certsyncS/n, "certsync-s")
	b.ReportMetric(gitS/n, "git-s")
	b.ReportMetric(certsyncS/gitS, "ratio")
	b.ReportMetric(rssMB, "MB-peak-RSS")
}
