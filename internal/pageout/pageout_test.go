//go:build linux

package pageout

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestExecutable: after Executable, this test process's resident file
// pages (RssFile: its executable, mapped by nothing else) are fewer, and
// the process runs on (the code it needs faults back in).
func TestExecutable(t *testing.T) {
	before := rssFileKB(t)
	res, err := Executable()
	if errors.Is(err, unix.EINVAL) {
		// Kernels before 5.4 have no MADV_PAGEOUT; the agent then just
		// keeps the pages (settle logs it).
		t.Skipf("this kernel cannot page out on request: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKB(t)
	if res.Mapped == 0 {
		t.Fatal("no read-only mapping of the executable found")
	}
	// The test binary has a few MB resident; reclaim drops most of it,
	// keeping what the few instructions since have faulted back.
	if after > before/2 {
		t.Errorf("RssFile %d kB before, %d kB after: want it at least halved", before, after)
	}
	t.Logf("RssFile %d kB → %d kB (%d MB of read-only mappings)", before, after, res.Mapped>>20)
	// Run code again: it faults back in.
	if s := strings.Repeat("x", 3); s != "xxx" {
		t.Fatal(s)
	}
}

func rssFileKB(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}
