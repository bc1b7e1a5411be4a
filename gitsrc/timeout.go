package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/net/proxy"
)

// DefaultTimeout bounds one exchange with the remote when Options.Timeout
// is zero.
const DefaultTimeout = 2 * time.Minute

// ErrTimeout is wrapped when the remote did not finish an exchange within
// Options.Timeout: a transient failure, worth retrying on the next pass.
var ErrTimeout = errors.New("the Git server did not answer in time")

// withTimeout runs one exchange with the remote (op is "fetch" or "push")
// under Options.Timeout and explains its failure.
//
// go-git's HTTP transport passes ctx to every request, so the deadline
// covers connecting, waiting for headers and reading the body. Its SSH
// transport does not: it opens the connection and runs the SSH handshake
// before it ever sees ctx, with no deadline, so a server that accepts the
// connection and stays silent holds the pass forever. For ssh:// the
// exchange dials through a proxy dialer (sshDeadline) that puts ctx's
// deadline on the connection itself: run passes via to go-git as the
// exchange's ProxyOptions (empty for other transports).
func (r *Repo) withTimeout(ctx context.Context, op string, run func(ctx context.Context, via transport.ProxyOptions) error) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var po transport.ProxyOptions
	if r.ssh {
		po = sshDeadline(deadline)
	}
	err := run(ctx, po)
	if err == nil || parent.Err() != nil {
		return err
	}
	// A network timeout before the deadline (a dial the OS gave up on) is
	// another failure; explain says what to check for it.
	if ctx.Err() != nil || (isTimeout(err) && !time.Now().Before(deadline)) {
		return &timeoutError{op: op, where: redact(r.opts.URL), after: r.opts.Timeout}
	}
	return err
}

// timeoutError says what timed out and what to check.
type timeoutError struct {
	op, where string
	after     time.Duration
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("%s %s: no answer within %s: is the Git server up? (--git-timeout)", e.op, e.where, e.after)
}

func (e *timeoutError) Unwrap() []error { return []error{ErrTimeout, context.DeadlineExceeded} }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// deadlineScheme names the proxy dialer of sshDeadline. go-git's SSH
// transport dials through golang.org/x/net/proxy when a proxy URL is set,
// and that package finds dialers by URL scheme in a process-wide registry;
// the dialer keeps no state, its deadline travels in the URL.
const deadlineScheme = "certsync-deadline"

var registerDeadline sync.Once

// sshDeadline returns proxy options that make go-git's SSH transport dial
// a connection that fails every read and write after deadline.
func sshDeadline(deadline time.Time) transport.ProxyOptions {
	// Registered on first use, before any dial can look it up: Once
	// orders the registry write before every read through this path.
	registerDeadline.Do(func() { proxy.RegisterDialerType(deadlineScheme, newDeadlineDialer) })
	q := url.Values{"deadline": {strconv.FormatInt(deadline.UnixNano(), 10)}}
	return transport.ProxyOptions{URL: deadlineScheme + "://deadline/?" + q.Encode()}
}

// deadlineDialer dials as go-git would without a proxy (honouring
// ALL_PROXY) and sets the deadline on the connection.
type deadlineDialer struct{ deadline time.Time }

func newDeadlineDialer(u *url.URL, _ proxy.Dialer) (proxy.Dialer, error) {
	ns, err := strconv.ParseInt(u.Query().Get("deadline"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: bad deadline: %w", deadlineScheme, err)
	}
	return deadlineDialer{deadline: time.Unix(0, ns)}, nil
}

func (d deadlineDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

func (d deadlineDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithDeadline(ctx, d.deadline)
	defer cancel()
	conn, err := proxy.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(d.deadline); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}
