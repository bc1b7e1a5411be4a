// Command probe is the process TestResident measures: a binary with its
// symbol table (go test strips its own) that runs code of certsync's
// module and of a dependency, then waits for its stdin to close.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certsync/certsync/internal/memstat"
)

func main() {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "probe_total", Help: "probe"}))
	if _, err := reg.Gather(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready", memstat.PackageOf("k8s.io/api/core/v1.init"))
	io.Copy(io.Discard, os.Stdin)
}
