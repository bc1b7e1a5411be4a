package memstat

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// AnonBreakdown is a Go process's own account of the memory it took from
// the OS, from runtime.MemStats as the Prometheus Go collector exports it
// (after the collection FreeOSMemory makes, HeapAlloc is the live heap).
type AnonBreakdown struct {
	// HeapLive: heap objects allocated and not yet freed (live, plus
	// garbage since the last collection).
	HeapLive int64
	// HeapFree: heap spans the runtime keeps without objects and has not
	// returned to the OS: resident until the scavenger releases them.
	HeapFree int64
	// HeapFragmentation: in-use spans' bytes no object holds.
	HeapFragmentation int64
	// HeapReleased: returned to the OS (not resident).
	HeapReleased int64
	// Stacks: goroutine stacks.
	Stacks int64
	// GCMeta: the collector's metadata; Other: the rest of the runtime's
	// off-heap structures (span and cache structures, profiling buckets,
	// the rest).
	GCMeta, Other int64
	// Sys is everything the runtime mapped (virtual, not all resident).
	Sys int64
}

// ReadAnon parses the go_memstats_* series of a Prometheus text scrape.
func ReadAnon(r io.Reader) (AnonBreakdown, error) {
	v := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "go_memstats_") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(name, "{") {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return AnonBreakdown{}, fmt.Errorf("scrape line %q: %w", line, err)
		}
		v[name] = f
	}
	if err := sc.Err(); err != nil {
		return AnonBreakdown{}, fmt.Errorf("read scrape: %w", err)
	}
	need := []string{"heap_alloc", "heap_inuse", "heap_idle", "heap_released", "stack_inuse", "gc_sys", "other_sys", "mspan_sys", "mcache_sys", "buck_hash_sys", "sys"}
	for _, n := range need {
		if _, ok := v["go_memstats_"+n+"_bytes"]; !ok {
			return AnonBreakdown{}, fmt.Errorf("scrape has no go_memstats_%s_bytes: is the Go collector registered?", n)
		}
	}
	g := func(n string) int64 { return int64(v["go_memstats_"+n+"_bytes"]) }
	return AnonBreakdown{
		HeapLive:          g("heap_alloc"),
		HeapFragmentation: g("heap_inuse") - g("heap_alloc"),
		HeapFree:          g("heap_idle") - g("heap_released"),
		HeapReleased:      g("heap_released"),
		Stacks:            g("stack_inuse"),
		GCMeta:            g("gc_sys"),
		Other:             g("other_sys") + g("mspan_sys") + g("mcache_sys") + g("buck_hash_sys"),
		Sys:               g("sys"),
	}, nil
}
