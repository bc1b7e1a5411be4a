package leader

// Leader election against a real API server (envtest): a replica that stops
// renewing stops its work before another takes over, and a replica told to
// stop keeps the Lease until its work is done, then hands it over at once.

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/certsync/certsync/internal/testbed"
)

// timeline records what the replicas did, in the order they did it.
type timeline struct {
	mu     sync.Mutex
	start  time.Time
	events []string
}

func newTimeline() *timeline { return &timeline{start: time.Now()} }

func (tl *timeline) add(event string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.events = append(tl.events, event)
}

// index is the position of the first event, -1 when it has not happened.
func (tl *timeline) index(event string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for i, e := range tl.events {
		if e == event {
			return i
		}
	}
	return -1
}

func (tl *timeline) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return strings.Join(tl.events, "\n")
}

// waitFor fails the test when event has not happened within a generous
// bound.
func (tl *timeline) waitFor(t *testing.T, event string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for tl.index(event) < 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %s; timeline:\n%s", event, within, tl)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// link stands between a replica and the API server, so the test can stop
// that replica's renewals the way a network partition or an overloaded API
// server would.
type link struct {
	rt http.RoundTripper

	mu   sync.Mutex
	cut  bool          // every request fails
	slow time.Duration // the next Lease write is answered this late, then the link is cut
}

func (l *link) RoundTrip(req *http.Request) (*http.Response, error) {
	l.mu.Lock()
	cut, slow := l.cut, time.Duration(0)
	if req.Method == http.MethodPut && l.slow > 0 {
		slow, l.slow, l.cut = l.slow, 0, true
	}
	l.mu.Unlock()
	if cut {
		return nil, errors.New("link cut by the test")
	}
	resp, err := l.rt.RoundTrip(req)
	if err != nil || slow == 0 {
		return resp, err
	}
	// The API server has stored the renewal; its answer is late.
	select {
	case <-time.After(slow):
		return resp, nil
	case <-req.Context().Done():
		resp.Body.Close()
		return nil, req.Context().Err()
	}
}

func (l *link) set(cut bool, slow time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut, l.slow = cut, slow
}

// candidate is one replica campaigning for a Lease.
type candidate struct {
	id     string
	cancel context.CancelFunc // SIGTERM
	done   chan struct{}      // closed when Run has returned
	err    error              // Run's result, once done
	cause  chan error         // why lead's context ended, when it did
	finish chan struct{}      // closed to let lead return after SIGTERM
}

// campaignFor starts Run for id. Its lead records when it starts and when
// its context ends; after SIGTERM it returns once finish is closed, as a
// pass would within its grace.
func campaignFor(t *testing.T, rc *rest.Config, lease, id string, tl *timeline) *candidate {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{id: id, cancel: cancel, done: make(chan struct{}), cause: make(chan error, 8), finish: make(chan struct{})}
	cfg := Config{
		Namespace: "certsync", Name: lease, Identity: id,
		OnNewLeader: func(l string) { tl.add(id + " sees " + l) },
	}
	go func() {
		defer close(c.done)
		c.err = Run(ctx, rc, cfg, func(lctx context.Context) {
			tl.add(id + " leads")
			select {
			case <-lctx.Done():
			case <-ctx.Done():
				tl.add(id + " told to stop")
				select {
				case <-lctx.Done():
				case <-c.finish:
					tl.add(id + " finished")
					return
				}
			}
			tl.add(id + " stopped")
			c.cause <- context.Cause(lctx)
		})
	}()
	t.Cleanup(func() {
		cancel()
		c.let()
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			t.Errorf("%s: Run did not return", id)
		}
	})
	return c
}

// let lets lead return after SIGTERM.
func (c *candidate) let() {
	select {
	case <-c.finish:
	default:
		close(c.finish)
	}
}

func apiServer(t *testing.T) (*testbed.APIServer, kubernetes.Interface) {
	t.Helper()
	api := testbed.StartAPIServer(t)
	api.CreateNamespace(t, "certsync")
	cs, err := kubernetes.NewForConfig(api.Config)
	if err != nil {
		t.Fatal(err)
	}
	return api, cs
}

func leaseOf(t *testing.T, cs kubernetes.Interface, name string) (holder string, renewed time.Time) {
	t.Helper()
	l, err := cs.CoordinationV1().Leases("certsync").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Lease %s: %v", name, err)
	}
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if l.Spec.RenewTime != nil {
		renewed = l.Spec.RenewTime.Time
	}
	return holder, renewed
}

// TestLeaderHandoverStopsTheOldLeaderFirst: replica a leads and is busy;
// its renewals stop; b takes over only after a's work was told to stop.
// Default timings (15 s lease): each case takes about 20 s.
func TestLeaderHandoverStopsTheOldLeaderFirst(t *testing.T) {
	api, _ := apiServer(t)
	for _, tc := range []struct {
		name  string
		lease string
		cut   bool
		slow  time.Duration
		cause error // nil: whichever noticed first
	}{
		// The API server becomes unreachable: client-go gives up leading.
		{name: "renewals fail", lease: "cut", cut: true},
		// A renewal is stored but answered 8 s late, then none succeeds:
		// client-go, counting from the answer, would give up 20 s after
		// the renewal was stored, when b may lead from 15 s. The deadline
		// counted from sending the renewal stops a at 12 s.
		{name: "a renewal answered late, then none", lease: "late", slow: 8 * time.Second, cause: errRenewalOverdue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tl := newTimeline()
			ra := rest.CopyConfig(api.Config)
			la := &link{}
			ra.Wrap(func(rt http.RoundTripper) http.RoundTripper { la.rt = rt; return la })
			a := campaignFor(t, ra, tc.lease, "a", tl)
			tl.waitFor(t, "a leads", 30*time.Second)
			campaignFor(t, api.Config, tc.lease, "b", tl)
			tl.waitFor(t, "b sees a", 30*time.Second)

			la.set(tc.cut, tc.slow)
			tl.waitFor(t, "b leads", 60*time.Second)
			stopped, leads := tl.index("a stopped"), tl.index("b leads")
			if stopped < 0 || stopped > leads {
				t.Fatalf("two writers: b leads before a's work was stopped; timeline:\n%s", tl)
			}
			if cause := <-a.cause; tc.cause != nil && !errors.Is(cause, tc.cause) {
				t.Errorf("a stopped because %v, want %v", cause, tc.cause)
			}

			// Reachable again, a sees b lead and does not take the Lease back.
			la.set(false, 0)
			tl.waitFor(t, "a sees b", 30*time.Second)
			if n := strings.Count(tl.String(), "a leads"); n != 1 {
				t.Errorf("a led %d times, want once; timeline:\n%s", n, tl)
			}
		})
	}
}

// TestLeaderShutdownWaitsForLeadThenReleases: on SIGTERM the leader's work
// goes on with the Lease held and renewed; once the work returns, the Lease
// is released and the other replica takes it without waiting for it to
// expire.
func TestLeaderShutdownWaitsForLeadThenReleases(t *testing.T) {
	api, cs := apiServer(t)
	const lease = "shutdown"
	tl := newTimeline()
	a := campaignFor(t, api.Config, lease, "a", tl)
	tl.waitFor(t, "a leads", 30*time.Second)
	campaignFor(t, api.Config, lease, "b", tl)
	tl.waitFor(t, "b sees a", 30*time.Second)

	sigterm := time.Now()
	a.cancel()
	tl.waitFor(t, "a told to stop", 10*time.Second)
	// The Lease keeps being renewed while a's work finishes.
	deadline := time.Now().Add(30 * time.Second)
	for {
		holder, renewed := leaseOf(t, cs, lease)
		if holder != "a" {
			t.Fatalf("Lease holder %q during a's grace, want a; timeline:\n%s", holder, tl)
		}
		if renewed.After(sigterm.Add(time.Second)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lease not renewed after SIGTERM (last %s); timeline:\n%s", renewed, tl)
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case <-a.done:
		t.Fatalf("Run returned (%v) while its work was still running; timeline:\n%s", a.err, tl)
	default:
	}
	if tl.index("a stopped") >= 0 {
		t.Fatalf("a's work was cancelled during its grace; timeline:\n%s", tl)
	}

	a.let()
	select {
	case <-a.done:
		if a.err != nil {
			t.Fatalf("Run: %v", a.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Run did not return after its work finished; timeline:\n%s", tl)
	}
	released := time.Now()
	if holder, _ := leaseOf(t, cs, lease); holder != "" && holder != "b" {
		t.Errorf("Lease holder %q after a returned, want it released", holder)
	}
	tl.waitFor(t, "b leads", 30*time.Second)
	// Released, not expired: b polls every 2 s, the Lease lasts 15 s.
	if took := time.Since(released); took > 10*time.Second {
		t.Errorf("b took over %s after a released the Lease: it waited for it to expire", took)
	}
	if tl.index("a finished") > tl.index("b leads") {
		t.Errorf("b led before a's work finished; timeline:\n%s", tl)
	}
}

// fakeLock accepts every write; it stands in for the API server where only
// the bookkeeping of renewals is tested.
type fakeLock struct{ resourcelock.Interface }

func (fakeLock) Identity() string { return "me" }
func (fakeLock) Update(context.Context, resourcelock.LeaderElectionRecord) error {
	return nil
}

func TestLeaderFence(t *testing.T) {
	const within = time.Second
	for _, tc := range []struct {
		name      string
		renewEach time.Duration // 0: no renewal after the first
		holder    string
		wantEnd   bool
	}{
		{name: "renewed in time", renewEach: within / 10, holder: "me"},
		{name: "not renewed", holder: "me", wantEnd: true},
		{name: "writes for another holder are no renewals", renewEach: within / 10, holder: "", wantEnd: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &renewals{Interface: fakeLock{}}
			if err := r.Update(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := r.fence(context.Background(), within, slog.New(slog.DiscardHandler))
			defer cancel()
			stop := make(chan struct{})
			defer close(stop)
			if tc.renewEach > 0 {
				go func() {
					tick := time.NewTicker(tc.renewEach)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							r.Update(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: tc.holder})
						}
					}
				}()
			}
			select {
			case <-ctx.Done():
				if !tc.wantEnd {
					t.Fatalf("context ended although renewed in time: %v", context.Cause(ctx))
				}
				if !errors.Is(context.Cause(ctx), errRenewalOverdue) {
					t.Errorf("cause %v, want errRenewalOverdue", context.Cause(ctx))
				}
			case <-time.After(3 * within):
				if tc.wantEnd {
					t.Fatal("context still alive with no renewal")
				}
			}
		})
	}
}

func TestLeaderConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
		want    [3]time.Duration
	}{
		{name: "defaults", cfg: Config{Identity: "a"}, want: [3]time.Duration{15 * time.Second, 10 * time.Second, 2 * time.Second}},
		{name: "no identity", cfg: Config{}, wantErr: "identity"},
		{name: "no time to stop", cfg: Config{Identity: "a", LeaseDuration: 12 * time.Second}, wantErr: "must exceed"},
		{name: "client-go's own limit", cfg: Config{Identity: "a", LeaseDuration: 10 * time.Second}, wantErr: "must exceed"},
		{name: "shorter", cfg: Config{Identity: "a", LeaseDuration: 6 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: time.Second},
			want: [3]time.Duration{6 * time.Second, 3 * time.Second, time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.withDefaults()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := [3]time.Duration{got.LeaseDuration, got.RenewDeadline, got.RetryPeriod}; d != tc.want {
				t.Errorf("timings %v, want %v", d, tc.want)
			}
			if got.Name != "certsync" {
				t.Errorf("name %q, want certsync", got.Name)
			}
		})
	}
}
