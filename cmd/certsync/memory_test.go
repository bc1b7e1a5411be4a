package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// TestDefaultMemoryLimit: `certsync run` sets its default Go memory limit
// only when the operator's environment names none.
func TestDefaultMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	for _, tc := range []struct {
		name     string
		env      *string // nil: GOMEMLIMIT unset
		startAt  int64   // the limit the runtime had from the environment
		want     int64
		wantSets bool
	}{
		{name: "unset", startAt: 1 << 62, want: DefaultMemoryLimit, wantSets: true},
		{name: "empty, as unset", env: ptr(""), startAt: 1<<63 - 1, want: DefaultMemoryLimit, wantSets: true},
		{name: "operator's limit", env: ptr("300MiB"), startAt: 300 << 20, want: 300 << 20},
		{name: "off", env: ptr("off"), startAt: 1<<63 - 1, want: 1<<63 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != nil {
				t.Setenv("GOMEMLIMIT", *tc.env)
			} else {
				t.Setenv("GOMEMLIMIT", "")
				os.Unsetenv("GOMEMLIMIT") // t.Setenv restores it afterwards
			}
			debug.SetMemoryLimit(tc.startAt)
			got, set := applyDefaultMemoryLimit()
			if got != tc.want || set != tc.wantSets || debug.SetMemoryLimit(-1) != tc.want {
				t.Errorf("applyDefaultMemoryLimit() = %d, %v (runtime %d); want %d, %v", got, set, debug.SetMemoryLimit(-1), tc.want, tc.wantSets)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestOneShotGCPercent: `certsync reconcile` collects at OneShotGCPercent
// only when the operator's environment names no GOGC.
func TestOneShotGCPercent(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	for _, tc := range []struct {
		name    string
		env     *string
		startAt int // what the runtime took from the environment
		want    int
	}{
		{name: "unset", startAt: 100, want: OneShotGCPercent},
		{name: "empty, as unset", env: ptr(""), startAt: 100, want: OneShotGCPercent},
		{name: "operator's", env: ptr("200"), startAt: 200, want: 200},
		{name: "off", env: ptr("off"), startAt: -1, want: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != nil {
				t.Setenv("GOGC", *tc.env)
			} else {
				t.Setenv("GOGC", "")
				os.Unsetenv("GOGC")
			}
			debug.SetGCPercent(tc.startAt)
			set := collectSooner(slog.New(slog.DiscardHandler))
			if got := debug.SetGCPercent(tc.startAt); got != tc.want || set != (tc.want == OneShotGCPercent && tc.startAt != OneShotGCPercent) {
				t.Errorf("GOGC %d (set %v), want %d", got, set, tc.want)
			}
		})
	}
}

// TestWriteHeapProfile: the profile is written whole (a gzip stream that
// reads to its end) and replaces the previous one, leaving no temporary
// file.
func TestWriteHeapProfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "heap.pprof")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeHeapProfile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("profile is not a gzip stream: %v", err)
	}
	if n, err := io.Copy(io.Discard, zr); err != nil || n == 0 {
		t.Fatalf("profile: %d bytes, %v", n, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files left: %v, want only the profile", entries)
	}
	if err := writeHeapProfile(filepath.Join(dir, "missing", "heap.pprof")); err == nil {
		t.Error("a profile in a missing folder: no error")
	}
}
