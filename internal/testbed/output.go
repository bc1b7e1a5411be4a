package testbed

import (
	"bytes"
	"sync"
)

// Output collects what a child process writes (os/exec copies its stdout
// and stderr from goroutines of its own) so that a test can read it at any
// moment, for a readiness check or a failure message.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String is everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
