package reconcile

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/internal/workpool"
)

// Events of a pass, and why they are bounded.
//
// An Event is one more request to the API server and one more object in
// etcd: a pass issuing 9,000 certificates with one Event each would spend
// half its requests on Events and leave 9,000 objects for the API server
// to expire. So each pass records at most EventsPerPass Events of each
// type one by one (Normal: Issued, Renewed; Warning: Failed), which is
// every Event of an ordinary pass. Past that, the Secrets' Events are
// folded into one summary Event per namespace and reason, on the
// Namespace itself, created when the pass ends ("312 more certificates
// Issued in this namespace by this pass: a-tls, b-tls, …"): `kubectl get
// events -n NS --field-selector reason=Failed` still finds every failure.
// Summaries are bounded too, EventsPerPass of each type; what is past
// both bounds, or could not be created, is counted in Result.Events and
// in a log line at the end of the pass, never dropped silently. A pass
// thus records at most 4 × EventsPerPass Events, whatever it did.
//
// Warning and Normal Events have separate budgets, so a flood of Issued
// Events never crowds out a Failed one.

// DefaultEventsPerPass is Config.EventsPerPass's default.
const DefaultEventsPerPass = 100

// summaryNames is how many Secret names a summary Event lists.
const summaryNames = 5

// EventCounts is what a pass did with its Kubernetes Events, by type.
type EventCounts struct {
	// Normal counts the Issued and Renewed Events, Warning the Failed ones.
	Normal, Warning EventTally
}

// EventTally counts the Events of one type.
type EventTally struct {
	// Recorded Events were created one per Secret.
	Recorded int
	// Summarised Secrets had their Event folded into a summary Event on
	// their namespace; Summaries is how many summary Events were created.
	Summarised, Summaries int
	// Dropped Events are in neither: past the summaries' own bound, the
	// pass stopped before the summaries, or the API server refused them.
	// The end-of-pass log line names them.
	Dropped int
}

// event is one Event to record; name "" puts it on the namespace. A
// summary stands for count Secrets' Events.
type event struct {
	namespace, name, eventType, reason, message string
	count                                       int
}

// eventLog is a pass's Event budget: what was recorded one by one and
// what waits to be summarised. Batches are applied under the writer's
// lock and the last ones by the pass itself, but the log keeps its own
// lock rather than lean on that.
type eventLog struct {
	mu       sync.Mutex
	counts   EventCounts
	tried    map[string]int          // Events sent one by one, by type
	pending  map[summaryKey]*summary // past the budget, summarised at the end
	budget   int
	recorder EventRecorder
}

type summaryKey struct{ namespace, eventType, reason string }

type summary struct {
	count int
	names []string // the first summaryNames
}

func (l *eventLog) tally(eventType string) *EventTally {
	if eventType == corev1.EventTypeWarning {
		return &l.counts.Warning
	}
	return &l.counts.Normal
}

// events returns the pass's event log, or nil when the cluster cannot
// record Events.
func (r *Reconciler) events(res *Result) *eventLog {
	rec, ok := r.cfg.Cluster.(EventRecorder)
	if !ok {
		return nil
	}
	if res.events == nil {
		res.events = &eventLog{tried: map[string]int{}, pending: map[summaryKey]*summary{}, budget: r.cfg.EventsPerPass, recorder: rec}
	}
	return res.events
}

// recordEvents records evs one by one while the pass's budget lasts (all
// at once, ApplyConcurrency at a time) and sets the rest aside for the
// summaries. A failure to record an Event is logged, never fatal.
func (r *Reconciler) recordEvents(ctx context.Context, res *Result, evs []event) {
	l := r.events(res)
	if l == nil || len(evs) == 0 {
		return
	}
	var now []event
	l.mu.Lock()
	for _, ev := range evs {
		t := l.tally(ev.eventType)
		if l.tried[ev.eventType] < l.budget {
			// Counted as recorded now; a failure moves it to Dropped.
			l.tried[ev.eventType]++
			t.Recorded++
			now = append(now, ev)
			continue
		}
		k := summaryKey{ev.namespace, ev.eventType, ev.reason}
		s := l.pending[k]
		if s == nil {
			s = &summary{}
			l.pending[k] = s
		}
		s.count++
		if len(s.names) < summaryNames {
			s.names = append(s.names, ev.name)
		}
		t.Summarised++
	}
	l.mu.Unlock()
	r.sendEvents(ctx, l, now)
}

// sendEvents creates evs, ApplyConcurrency at a time, and moves those
// that failed to Dropped.
func (r *Reconciler) sendEvents(ctx context.Context, l *eventLog, evs []event) {
	errs := make([]error, len(evs))
	started, stopped := workpool.Run(ctx, len(evs), r.cfg.ApplyConcurrency, func(ctx context.Context, i int) {
		ev := evs[i]
		errs[i] = l.recorder.Event(ctx, ev.namespace, ev.name, ev.eventType, ev.reason, ev.message)
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, ev := range evs {
		err := errs[i]
		if i >= started {
			err = stopped
		}
		t := l.tally(ev.eventType)
		switch {
		case err != nil:
			r.log.Warn("event not recorded", "object", strings.TrimSuffix(ev.namespace+"/"+ev.name, "/"), "reason", ev.reason, "error", err)
			if ev.count > 0 {
				t.Dropped += ev.count
			} else {
				t.Recorded--
				t.Dropped++
			}
		case ev.count > 0:
			t.Summaries++
		}
	}
}

// flushEvents ends the pass's Events: it creates the summaries, at most
// EventsPerPass of each type (namespaces in name order), counts what is
// left out, publishes the counts in res.Events and logs them when
// anything was summarised or dropped. It runs when the pass ends, however
// it ends.
func (r *Reconciler) flushEvents(ctx context.Context, res *Result) {
	l := res.events
	if l == nil {
		return
	}
	l.mu.Lock()
	keys := make([]summaryKey, 0, len(l.pending))
	for k := range l.pending {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.eventType != b.eventType {
			return a.eventType < b.eventType
		}
		if a.namespace != b.namespace {
			return a.namespace < b.namespace
		}
		return a.reason < b.reason
	})
	var evs []event
	perType := map[string]int{}
	for _, k := range keys {
		s := l.pending[k]
		if perType[k.eventType] >= l.budget || ctx.Err() != nil {
			l.tally(k.eventType).Dropped += s.count
			continue
		}
		perType[k.eventType]++
		evs = append(evs, event{namespace: k.namespace, eventType: k.eventType, reason: k.reason, message: summaryMessage(k, s, l.budget), count: s.count})
	}
	clear(l.pending)
	l.mu.Unlock()
	r.sendEvents(ctx, l, evs)

	l.mu.Lock()
	defer l.mu.Unlock()
	res.Events = l.counts
	c := l.counts
	if c.Normal.Summarised+c.Warning.Summarised+c.Normal.Dropped+c.Warning.Dropped == 0 {
		return
	}
	attrs := []any{"budget", l.budget,
		"recorded", c.Normal.Recorded + c.Warning.Recorded,
		"summarised", c.Normal.Summarised + c.Warning.Summarised, "summaries", c.Normal.Summaries + c.Warning.Summaries,
		"dropped", c.Normal.Dropped + c.Warning.Dropped, "failed_orders_dropped", c.Warning.Dropped}
	if c.Warning.Dropped > 0 {
		r.log.Warn("events: past the pass's budget, some Failed events were neither recorded nor summarised; the orders' errors are in the pass's problems and log", attrs...)
		return
	}
	r.log.Info("events: past the pass's budget, events were summarised per namespace", attrs...)
}

func summaryMessage(k summaryKey, s *summary, budget int) string {
	names := strings.Join(s.names, ", ")
	if s.count > len(s.names) {
		names += fmt.Sprintf(" and %d more", s.count-len(s.names))
	}
	what := "certificates"
	if s.count == 1 {
		what = "certificate"
	}
	return fmt.Sprintf("%d more %s %s in this namespace by this pass (past the first %d %s events of a pass, certsync records one summary per namespace): Secrets %s",
		s.count, what, k.reason, budget, strings.ToLower(k.eventType), names)
}
