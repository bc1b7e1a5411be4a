package memstat

import (
	"bufio"
	"debug/elf"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestPackageOf(t *testing.T) {
	for _, tc := range []struct{ sym, want string }{
		{"k8s.io/api/core/v1.(*Secret).Marshal", "k8s.io/api/core/v1"},
		{"runtime.mallocgc", "runtime"},
		{"main.main", "main"},
		{"github.com/go-acme/lego/v4/providers/dns/route53.NewDNSProvider.func1", "github.com/go-acme/lego/v4/providers/dns/route53"},
		{"sync/atomic.(*Pointer[go.shape.struct { k8s.io/x.y int }]).Load", "sync/atomic"},
		{"slices.SortFunc[go.shape.[]string,go.shape.string]", "slices"},
		{"type:*k8s.io/api/core/v1.Secret", "k8s.io/api/core/v1"},
		{"type:[]map[string]*github.com/x/y.T", "github.com/x/y"},
		{"type:.eq.github.com/x/y.T", "github.com/x/y"},
		{"go:itab.*net/http.conn,io.Reader", "net/http"},
		{"type:func(int) string", ""},
		{"type:struct { a int }", ""},
		{"go:string.*", ""},
		{"go:func.*", ""},
		{"_cgo_init", ""},
		{"gopkg.in/yaml%2ev3.(*parser).parse", "gopkg.in/yaml.v3"},
		{"type:map[[2]int]k8s.io/x.T", "k8s.io/x"},
	} {
		if got := PackageOf(tc.sym); got != tc.want {
			t.Errorf("PackageOf(%q) = %q, want %q", tc.sym, got, tc.want)
		}
	}
}

func TestModule(t *testing.T) {
	m := &moduleIndexer{main: "github.com/certsync/certsync", modules: []string{"github.com/go-acme/lego/v4", "github.com/certsync/certsync", "gopkg.in/yaml.v3", "k8s.io/api"}}
	for _, tc := range []struct{ sym, want string }{
		{"k8s.io/api/core/v1.init", "k8s.io/api"},
		{"github.com/go-acme/lego/v4/lego.NewClient", "github.com/go-acme/lego/v4"},
		{"gopkg.in/yaml%2ev3.Unmarshal", "gopkg.in/yaml.v3"},
		{"main.run", "github.com/certsync/certsync"},
		{"vendor/golang.org/x/net/http2/hpack.init", StdModule},
		{"internal/bytealg.IndexByte", StdModule},
		{"go:string.*", RuntimeData},
		// k8s.io/apimachinery is not in the list: say which package.
		{"k8s.io/apimachinery/pkg/runtime.Decode", "k8s.io/apimachinery/pkg/runtime"},
	} {
		if got := m.module(tc.sym); got != tc.want {
			t.Errorf("module(%q) = %q, want %q", tc.sym, got, tc.want)
		}
	}
}

// buildProbe builds testdata/probe with its symbol table.
func buildProbe(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "probe")
	if out, err := exec.Command("go", "build", "-o", exe, "./testdata/probe").CombinedOutput(); err != nil {
		t.Fatalf("build the probe: %v\n%s", err, out)
	}
	return exe
}

// TestSizes: the spans of the probe binary cover its allocated sections
// exactly once, and the code of this package is found under its module.
func TestSizes(t *testing.T) {
	exe := buildProbe(t)
	disk, bss, err := Sizes(exe)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want int64
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && s.Addr != 0 {
			want += int64(s.Size)
		}
	}
	if got := sum(disk) + sum(bss); got != want {
		t.Errorf("disk %d + bss %d = %d bytes, want the allocated sections' %d", sum(disk), sum(bss), got, want)
	}
	if disk["github.com/certsync/certsync"] == 0 || disk[StdModule] == 0 {
		t.Errorf("certsync %d bytes, std %d bytes: want both", disk["github.com/certsync/certsync"], disk[StdModule])
	}
	if disk["github.com/prometheus/client_golang"] == 0 {
		t.Error("client_golang, linked into the probe, has no bytes")
	}
}

// TestResident: what Resident finds of a running probe's executable
// matches what the kernel counts for its mappings in /proc/PID/smaps, and
// the code that ran (certsync's, client_golang's, the runtime's) is among
// it.
func TestResident(t *testing.T) {
	cmd := exec.Command(buildProbe(t))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("probe: %q %v", line, err)
	}
	pid := cmd.Process.Pid

	before := smapsFileRss(t, pid)
	r, err := Resident(pid)
	if err != nil {
		t.Fatal(err)
	}
	after := smapsFileRss(t, pid)
	// The probe is idle, but its runtime (the scavenger, sysmon) may
	// touch a page meanwhile; a miscount would be megabytes off.
	const slack = 64 << 10
	if got := r.FileTotal(); got < before-slack || got > after+slack || got == 0 {
		t.Errorf("resident file pages %d, want within [%d, %d] as smaps counts them", got, before, after)
	}
	for _, mod := range []string{"github.com/certsync/certsync", "github.com/prometheus/client_golang"} {
		if r.File[mod] == 0 {
			t.Errorf("%s's code ran, yet none of its pages is resident", mod)
		}
	}
	if r.File[StdModule] < 256<<10 {
		t.Errorf("standard library %d bytes resident, want the runtime's code at least", r.File[StdModule])
	}
	if sum(r.Anon) == 0 {
		t.Error("no written page of .data/.bss: the runtime writes its own variables")
	}
}

// smapsFileRss sums, over the mappings of process pid's executable, the
// resident pages that are file pages (Rss minus Anonymous).
func smapsFileRss(t *testing.T, pid int) int64 {
	t.Helper()
	st, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	inode := strconv.FormatUint(st.Sys().(*syscall.Stat_t).Ino, 10)
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	ours := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			ours = fields[4] == inode
			continue
		}
		if !ours || len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "Rss:":
			total += kb << 10
		case "Anonymous:":
			total -= kb << 10
		}
	}
	return total
}

func TestReadAnon(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a, err := ReadAnon(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if a.HeapLive <= 0 || a.Stacks <= 0 || a.GCMeta <= 0 || a.Sys < a.HeapLive+a.Stacks {
		t.Errorf("implausible breakdown %+v", a)
	}

	// A registry without the Go collector: say so rather than report zeros.
	if _, err := ReadAnon(strings.NewReader("certsync_passes_total{result=\"ok\"} 3\n")); err == nil || !strings.Contains(err.Error(), "Go collector") {
		t.Errorf("scrape without go_memstats: error %v, want one naming the Go collector", err)
	}
}

func TestTop(t *testing.T) {
	rows := Top(map[string]int64{"a": 1, "b": 5, "c": 3, "d": 0, "e": 2}, 2)
	want := []Row{{"b", 5}, {"c", 3}, {"(2 more)", 3}}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("Top = %v, want %v", rows, want)
	}
}
