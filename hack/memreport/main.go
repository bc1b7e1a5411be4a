// Command memreport tells where a certsync binary's memory goes.
//
//	go run ./hack/memreport size BINARY        what each module costs on disk
//	go run ./hack/memreport pid PID [URL]      what of it is resident in process PID, by
//	                                           module, and (with the /metrics URL of a
//	                                           certsync run) the Go runtime's anonymous memory
//
// Both read the binary's symbol table: build it without -ldflags=-s.
// The benchmark BenchmarkPass10kNothingDue/daemon reports the same
// figures for the agent after a few passes over 10,000 certificates.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/certsync/certsync/internal/memstat"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "memreport:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: memreport size BINARY | memreport pid PID [METRICS-URL]")
	}
	switch args[0] {
	case "size":
		disk, bss, err := memstat.Sizes(args[1])
		if err != nil {
			return err
		}
		memstat.WriteTable(out, "on disk, by family", memstat.Top(memstat.ByFamily(disk), 0))
		memstat.WriteTable(out, "on disk, by module", memstat.Top(disk, 40))
		memstat.WriteTable(out, "zero-filled at start (.bss, .noptrbss; resident only once written)", memstat.Top(bss, 5))
		return nil
	case "pid":
		pid, err := strconv.Atoi(args[1])
		if err != nil {
			return fmt.Errorf("pid %q: %w", args[1], err)
		}
		r, err := memstat.Resident(pid)
		if err != nil {
			return err
		}
		memstat.WriteTable(out, "resident file pages of the binary, by family", memstat.Top(memstat.ByFamily(r.File), 0))
		memstat.WriteTable(out, "resident file pages of the binary, by module", memstat.Top(r.File, 30))
		memstat.WriteTable(out, "written pages of the binary (.data, .bss), by module", memstat.Top(r.Anon, 10))
		memstat.WriteTable(out, "other files mapped", memstat.Top(r.Libraries, 0))
		if len(args) > 2 {
			a, err := scrape(args[2])
			if err != nil {
				return err
			}
			memstat.WriteTable(out, "Go runtime (anonymous)", []memstat.Row{
				{Name: "heap live", Bytes: a.HeapLive}, {Name: "heap fragmentation", Bytes: a.HeapFragmentation},
				{Name: "heap free, not released", Bytes: a.HeapFree}, {Name: "stacks", Bytes: a.Stacks},
				{Name: "GC metadata", Bytes: a.GCMeta}, {Name: "other runtime", Bytes: a.Other},
			})
		}
		return nil
	}
	return fmt.Errorf("unknown report %q: want size or pid", args[0])
}

func scrape(url string) (memstat.AnonBreakdown, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return memstat.AnonBreakdown{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return memstat.AnonBreakdown{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	a, err := memstat.ReadAnon(resp.Body)
	if err != nil {
		return a, fmt.Errorf("scrape %s: %w", url, err)
	}
	return a, nil
}
