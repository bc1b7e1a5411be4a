package deploy

// A running `certsync run` started from the chart's Deployment, and what a
// test asks of it: is it ready, what has it said, stop it as kubelet does.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certsync/certsync/internal/testbed"
)

// agent is a running `certsync run`.
type agent struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *testbed.Output
	addr string
	done chan struct{}
	ctx  context.Context
	code int
}

// start runs the agent as the chart does (`run`, leader election on), on a
// free local port instead of the Pod's :8080.
func (in *installed) start(t *testing.T, bin string) *agent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	in.pod.env["CERTSYNC_LISTEN_ADDR"] = addr
	in.pod.env["CERTSYNC_HTTP01_ADDR"] = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	a := &agent{t: t, out: &testbed.Output{}, addr: addr, done: make(chan struct{}), ctx: ctx}
	a.cmd = in.pod.command(context.Background(), t, bin, "", "--kubeconfig", in.kubeconfig)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start certsync run: %v", err)
	}
	go func() {
		a.cmd.Wait()
		a.code = a.cmd.ProcessState.ExitCode()
		close(a.done)
	}()
	t.Cleanup(func() {
		cancel()
		if !a.exited() {
			a.cmd.Process.Kill()
			<-a.done
		}
	})
	return a
}

func (a *agent) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

func (a *agent) output() string { return unquote(a.out.String()) }

// unquote undoes the escaping of quotes in JSON and klog's structured
// logs, so a test can look for the API server's message as it was written.
func unquote(log string) string { return strings.ReplaceAll(log, `\"`, `"`) }

// ready reports whether /readyz answers 200.
func (a *agent) ready() bool {
	resp, err := http.Get("http://" + a.addr + "/readyz")
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitFor polls cond until it holds, the agent exits, or the test's
// deadline for the agent (two minutes) passes.
func (a *agent) waitFor(cond func() bool) error {
	for {
		if cond() {
			return nil
		}
		select {
		case <-a.done:
			if cond() {
				return nil
			}
			return fmt.Errorf("certsync run exited %d", a.code)
		case <-a.ctx.Done():
			return errors.New("gave up waiting")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitReady waits for /readyz to answer 200; a failed pass ends the wait
// at once, since the next one would fail alike.
func (a *agent) waitReady() error {
	failed := false
	err := a.waitFor(func() bool {
		failed = strings.Contains(a.output(), "pass failed")
		return failed || a.ready()
	})
	if err == nil && failed {
		return errors.New("a pass failed")
	}
	return err
}

// stop sends SIGTERM, as kubelet does, and returns the exit status.
func (a *agent) stop() int {
	if !a.exited() {
		a.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-a.done:
		return a.code
	case <-a.ctx.Done():
		a.cmd.Process.Kill()
		<-a.done
		a.t.Errorf("certsync run did not exit after SIGTERM")
		return -1
	}
}
