package testbed

import (
	"fmt"
	"os"
)

// Process is a TB for code that is not a test: a TestMain starting servers
// shared by a whole test binary, or the demo program. Cleanups run at
// Close; Fatalf panics with a Failure, which Recover turns into an error.
type Process struct {
	cleanups []func()
	dirs     []string
}

// Failure is the panic value of Process.Fatalf.
type Failure string

func (f Failure) Error() string { return string(f) }

// Recover, deferred directly, turns a Process.Fatalf panic into *err and
// lets any other panic through.
func Recover(err *error) {
	if r := recover(); r != nil {
		f, ok := r.(Failure)
		if !ok {
			panic(r)
		}
		*err = f
	}
}

func (p *Process) Helper()                      {}
func (p *Process) Cleanup(f func())             { p.cleanups = append(p.cleanups, f) }
func (p *Process) Logf(format string, a ...any) {}

// Fatalf stops the caller: it panics with a Failure.
func (p *Process) Fatalf(format string, a ...any) { panic(Failure(fmt.Sprintf(format, a...))) }

// TempDir makes a directory removed at Close.
func (p *Process) TempDir() string {
	dir, err := os.MkdirTemp("", "certsync-")
	if err != nil {
		p.Fatalf("temp dir: %v", err)
	}
	p.dirs = append(p.dirs, dir)
	return dir
}

// Close runs the cleanups, last registered first, and removes the temp dirs.
func (p *Process) Close() {
	for i := len(p.cleanups) - 1; i >= 0; i-- {
		p.cleanups[i]()
	}
	for _, d := range p.dirs {
		os.RemoveAll(d)
	}
}
