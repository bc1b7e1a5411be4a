package main

import (
	"bytes"
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certsync/certsync/internal/testbed"
	"github.com/certsync/certsync/reconcile"
)

// BenchmarkFreshReconcile10k: `certsync reconcile` with nothing due, as a
// new agent runs it (an empty cache folder: it clones, reads and verifies
// every committed file by decrypting it once), side by side with the
// yardstick of reading the same repository with the git CLI: `git clone
// --bare --no-local`, then every blob at HEAD through `git cat-file
// --batch`. --no-local: the agent fetches a pack through the Git protocol,
// as from any server, and so does the yardstick; a plain local clone
// hard-links the object files and transfers nothing.
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
		if o, err := exec.Command(git, "clone", "--quiet", "--bare", "--no-local", r.bare, clone).CombinedOutput(); err != nil {
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

// BenchmarkRenew10Among: a daemon's pass that renews 10 certificates,
// among 10 and among 10,000 (an earlier pass of the same agent read the
// repository, as the daemon's passes do): what a pass costs should follow
// what changed, not the size of the repository.
func BenchmarkRenew10Among(b *testing.B) {
	for _, n := range []int{10, benchCerts} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			due := time.Now().Add(24 * time.Hour)
			r := newScaleRepo(b, n, 10, due)
			for b.Loop() {
				b.StopTimer()
				if out, err := exec.Command("git", "-C", r.bare, "update-ref", "refs/heads/main", r.head).CombinedOutput(); err != nil {
					b.Fatalf("%v %s", err, out)
				}
				var clock atomic.Pointer[time.Time]
				start := time.Now()
				clock.Store(&start)
				o := r.options(b, b.TempDir(), start)
				o.clock = func() time.Time { return *clock.Load() }
				rec, cleanup, err := build(context.Background(), o, func(string) string { return "" }, slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				if res, err := rec.Reconcile(context.Background(), reconcile.Options{}); err != nil || len(res.Issued) != 0 {
					b.Fatalf("the pass before: issued %d, err %v", len(res.Issued), err)
				}
				clock.Store(&due)
				b.StartTimer()
				res, err := rec.Reconcile(context.Background(), reconcile.Options{})
				b.StopTimer()
				cleanup()
				if err != nil || len(res.Issued) != 10 {
					b.Fatalf("renewed %d, err %v, problems %v", len(res.Issued), err, res.Problems)
				}
				b.StartTimer()
			}
		})
	}
}
