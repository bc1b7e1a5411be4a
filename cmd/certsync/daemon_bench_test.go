package main

// The daemon's memory breakdown for BenchmarkPass10kNothingDue/daemon and
// daemon-cluster: `certsync run` as a child process, measured between two
// passes once it has made a few.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certsync/certsync/internal/memstat"
	"github.com/certsync/certsync/internal/testbed"
)

// daemonPasses is how many passes the daemon makes before it is measured:
// the first fills the caches, the next ones show what stays.
const daemonPasses = 4

// benchDaemon starts bin with args (a `run` command line without
// --listen-addr), waits until it has finished daemonPasses passes and
// handed memory back (between two passes, where an agent spends nearly all
// its time), and reports its resident memory: RSS as the kernel counts it
// (file pages of the binary, anonymous pages), the binary's resident
// pages by dependency, the Go runtime's own split of the anonymous side,
// and the heap profile's largest holders.
func benchDaemon(b *testing.B, bin string, args []string) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	profile := filepath.Join(b.TempDir(), "heap.pprof")
	cmd := exec.Command(bin, append(append([]string{}, args...), "--listen-addr", addr)...)
	cmd.Env = append(os.Environ(), "CERTSYNC_HEAP_PROFILE="+profile)
	if limit := os.Getenv("BENCH_GOMEMLIMIT"); limit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+limit)
	}
	var stderr testbed.Output
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	metricsURL := "http://" + addr + "/metrics"
	// Each pass rewrites the heap profile once its memory is handed back;
	// the moment the profile of pass daemonPasses+1 appears, the agent is
	// between passes. Watching the file, not scraping /metrics (10,000
	// certificates' gauges), keeps the watcher from allocating in the
	// agent it measures.
	deadline := time.Now().Add(5 * time.Minute)
	var last time.Time
	for profiles := 0; profiles <= daemonPasses; {
		if time.Now().After(deadline) || strings.Contains(stderr.String(), "pass failed") {
			b.Fatalf("certsync run made fewer than %d passes in 5 minutes, or one failed: %s", daemonPasses+1, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
		if st, err := os.Stat(profile); err == nil && !st.ModTime().Equal(last) {
			last = st.ModTime()
			profiles++
		}
	}
	// The kernel's count first, the runtime's right after, so both
	// describe the same moment; the binary's pages (slower to attribute)
	// change little between passes.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	anon, err := scrapeAnon(metricsURL)
	if err != nil {
		b.Fatal(err)
	}
	res, err := memstat.Resident(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	// The heap's holders, by allocation site of what the last collection
	// found live; the profile's total is the live heap (the scrape's
	// HeapAlloc also counts garbage made since, by the scrape itself).
	pprof := exec.Command("go", "tool", "pprof", "-top", "-sample_index=inuse_space", "-nodecount=25", bin, profile)
	pprof.Dir = filepath.Dir(profile)
	top, err := pprof.CombinedOutput()
	if err != nil {
		b.Fatalf("go tool pprof: %v %s", err, top)
	}
	if live, ok := profileTotal(string(top)); ok {
		anon.HeapFragmentation += anon.HeapLive - live
		anon.HeapLive = live
	}
	b.ReportMetric(procKB(status, "VmRSS:")/1024, "MB-RSS")
	b.ReportMetric(procKB(status, "VmHWM:")/1024, "MB-peak-RSS")
	b.ReportMetric(procKB(status, "RssAnon:")/1024, "MB-RSS-anon")
	b.ReportMetric(procKB(status, "RssFile:")/1024, "MB-RSS-file")
	b.ReportMetric(memstat.MB(res.FileTotal()), "MB-RSS-binary")
	b.ReportMetric(memstat.MB(anon.HeapLive), "MB-heap-live")
	b.ReportMetric(memstat.MB(anon.HeapFragmentation), "MB-heap-not-live")
	b.ReportMetric(memstat.MB(anon.HeapFree), "MB-heap-free")
	b.ReportMetric(memstat.MB(anon.Stacks), "MB-stacks")
	b.ReportMetric(memstat.MB(anon.GCMeta+anon.Other), "MB-runtime-meta")

	var report strings.Builder
	memstat.WriteTable(&report, "resident file pages of the binary, by family", memstat.Top(memstat.ByFamily(res.File), 0))
	memstat.WriteTable(&report, "by module", memstat.Top(res.File, 25))
	memstat.WriteTable(&report, "written pages of the binary (.data, .bss)", memstat.Top(res.Anon, 5))
	memstat.WriteTable(&report, "other files", memstat.Top(res.Libraries, 0))
	memstat.WriteTable(&report, "Go runtime (anonymous)", []memstat.Row{
		{Name: "heap live (profile)", Bytes: anon.HeapLive}, {Name: "heap in use, not live (fragmentation, garbage)", Bytes: anon.HeapFragmentation},
		{Name: "heap free, not released", Bytes: anon.HeapFree}, {Name: "stacks", Bytes: anon.Stacks},
		{Name: "GC metadata", Bytes: anon.GCMeta}, {Name: "other runtime", Bytes: anon.Other},
	})
	report.Write(top)
	b.Log("\n" + report.String())
}

// profileTotal reads the total of `go tool pprof -top` ("Showing nodes
// accounting for 53.93MB, 100% of 53.93MB total") in bytes.
func profileTotal(top string) (int64, bool) {
	_, rest, ok := strings.Cut(top, "% of ")
	if !ok {
		return 0, false
	}
	total, _, ok := strings.Cut(rest, " total")
	if !ok {
		return 0, false
	}
	for _, u := range []struct {
		suffix string
		scale  float64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}} {
		if n, ok := strings.CutSuffix(total, u.suffix); ok {
			f, err := strconv.ParseFloat(n, 64)
			return int64(f * u.scale), err == nil
		}
	}
	return 0, false
}

func scrapeAnon(url string) (memstat.AnonBreakdown, error) {
	body, err := scrapeBody(url)
	if err != nil {
		return memstat.AnonBreakdown{}, err
	}
	return memstat.ReadAnon(bytes.NewReader(body))
}

func scrapeBody(url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	return buf.Bytes(), nil
}
