package reconcile

// Parallel apply and the Event budget, against a real API server (envtest)
// through the cluster package's client, as the agent wires it.

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/certsync/certsync/cluster"
	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/internal/testbed"
	"github.com/certsync/certsync/issuer"
)

// liveCluster is cluster.Client as the CLI adapts it to Cluster and
// EventRecorder.
type liveCluster struct{ c *cluster.Client }

var (
	_ Cluster       = liveCluster{}
	_ EventRecorder = liveCluster{}
)

func (l liveCluster) Apply(ctx context.Context, s *corev1.Secret) error { return l.c.Apply(ctx, s) }
func (l liveCluster) Delete(ctx context.Context, ns, name string) error {
	return l.c.Delete(ctx, ns, name)
}
func (l liveCluster) Event(ctx context.Context, ns, name, eventType, reason, message string) error {
	return l.c.Event(ctx, ns, name, eventType, reason, message)
}
func (l liveCluster) Observe(ctx context.Context) ([]ObservedSecret, error) {
	obs, err := l.c.Observe(ctx, nil)
	if err != nil {
		return nil, err
	}
	out := make([]ObservedSecret, len(obs))
	for i, o := range obs {
		out[i] = ObservedSecret{Namespace: o.Namespace, Name: o.Name, Annotations: o.Annotations, Drifted: o.Drifted}
	}
	return out, nil
}

// newLiveReconciler is a Reconciler applying to the API server at cfg with
// the agent's own client-side rate limit.
func newLiveReconciler(tb testing.TB, cfg *rest.Config, applyConcurrency, eventsPerPass int) *Reconciler {
	tb.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = cluster.DefaultQPS, cluster.DefaultBurst
	c, err := cluster.NewForConfig(cfg, cluster.Owner{Repository: "https://git.example.test/certs.git", Branch: "main", Cluster: committed.DefaultCluster})
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	r, err := New(Config{
		Repo:       newMemRepo(nil),
		Encryption: func([]byte) (Encrypter, error) { return fakeEnc{}, nil },
		Issuers: func(context.Context, *declared.Issuer, crypto.Signer, issuer.SecretGetter) (issuer.Issuer, error) {
			return nil, errors.New("no issuer in this test")
		},
		Clock:            func() time.Time { return now },
		Cluster:          liveCluster{c},
		ApplyConcurrency: applyConcurrency,
		EventsPerPass:    eventsPerPass,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// issuedBatches is what a pass's writer hands applyIssued: batches of
// size issued certificates, in order, each Secret in namespaces[i%len].
// copiesIn adds, to the first batch, Secrets that are copies (no event).
func issuedBatches(namespaces []string, n, size int, copiesIn string, copies int) []*outcome {
	var out []*outcome
	for i := range n {
		if i%size == 0 {
			out = append(out, newOutcome())
		}
		ns, name := namespaces[i%len(namespaces)], fmt.Sprintf("c%05d-tls", i)
		path := committed.SecretPath(committed.DefaultCluster, ns, name)
		b := out[len(out)-1]
		b.secrets[path] = testSecret(ns, name, i)
		b.issued[path] = Issued{Kind: Issue, Certificate: ns + "/" + name, Path: path, Serial: fmt.Sprintf("%x", 1000+i), NotAfter: time.Now().Add(90 * 24 * time.Hour), Reason: "new"}
	}
	for i := range copies {
		name := fmt.Sprintf("copy%02d-tls", i)
		out[0].secrets[committed.SecretPath(committed.DefaultCluster, copiesIn, name)] = testSecret(copiesIn, name, i)
	}
	return out
}

func testSecret(ns, name string, i int) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		// Opaque: the API server warns about kubernetes.io/tls data that
		// is not PEM, and what is applied does not matter here.
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			"tls.crt": fmt.Appendf(nil, "not a real certificate %d", i),
			"tls.key": fmt.Appendf(nil, "test key material %d", i),
		},
	}
}

func TestApplyIssuedInParallelKeepsResultsExact(t *testing.T) {
	api := testbed.StartAPIServer(t)
	namespaces := []string{"apply-a", "apply-b", "apply-c"}
	for _, ns := range namespaces {
		api.CreateNamespace(t, ns)
	}
	// 230 issued certificates in batches of 50 across three namespaces,
	// and 7 copies into a namespace that does not exist: each of those
	// fails on its own, the others are applied.
	const issued, copies = 230, 7
	var want []string
	for _, b := range issuedBatches(namespaces, issued, 50, "apply-gone", copies) {
		for _, path := range sortedKeys(b.secrets) {
			if s := b.secrets[path]; s.Namespace != "apply-gone" {
				want = append(want, s.Namespace+"/"+s.Name)
			}
		}
	}
	tests := []struct {
		name        string
		concurrency int
	}{
		{name: "one at a time", concurrency: 1},
		{name: "parallel", concurrency: 16},
		{name: "parallel again (Secrets exist: applied over)", concurrency: 16},
	}
	var first *Result
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newLiveReconciler(t, api.Config, tt.concurrency, 1000)
			res := &Result{cluster: committed.DefaultCluster}
			for _, b := range issuedBatches(namespaces, issued, 50, "apply-gone", copies) {
				r.applyIssued(context.Background(), res, b)
			}
			if !slices.Equal(res.Applied, want) {
				t.Errorf("applied %d Secrets, want %d in batch and path order; first differing: %v", len(res.Applied), len(want), firstDiff(res.Applied, want))
			}
			if res.ApplyErrors != copies || len(res.Problems) != copies {
				t.Fatalf("%d apply errors, %d problems; want %d of each: %v", res.ApplyErrors, len(res.Problems), copies, res.Problems)
			}
			for i, p := range res.Problems {
				if want := fmt.Sprintf("apply apply-gone/copy%02d-tls from ", i); !strings.HasPrefix(p.Error(), want) || !strings.Contains(p.Error(), `namespace "apply-gone" does not exist`) {
					t.Errorf("problem %d = %q, want it to start %q and name the missing namespace", i, p, want)
				}
			}
			if first == nil {
				first = res
			} else if !slices.Equal(errorStrings(res.Problems), errorStrings(first.Problems)) {
				t.Errorf("problems differ from the first run:\n%v\n%v", res.Problems, first.Problems)
			}
			cs := kubernetes.NewForConfigOrDie(api.Config)
			var live int
			for _, ns := range namespaces {
				l, err := cs.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: cluster.ManagedByLabel + "=" + cluster.ManagedByValue})
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range l.Items {
					if string(s.Data["tls.key"]) == "" || s.Annotations[cluster.AppliedHashAnnotation] != cluster.DataHash(s.Type, s.Data) {
						t.Errorf("Secret %s/%s is not as applied", s.Namespace, s.Name)
					}
				}
				live += len(l.Items)
			}
			if live != issued {
				t.Errorf("the API server holds %d certsync Secrets, want %d", live, issued)
			}
		})
	}
}

func TestApplyAllStopsWithContext(t *testing.T) {
	api := testbed.StartAPIServer(t)
	api.CreateNamespace(t, "apply-stop")
	r := newLiveReconciler(t, api.Config, 4, 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := &Result{}
	r.applyIssued(ctx, res, issuedBatches([]string{"apply-stop"}, 20, 50, "", 0)[0])
	if len(res.Applied) != 0 || res.ApplyErrors != 20 || len(res.Problems) != 1 || !errors.Is(res.Problems[0], context.Canceled) {
		t.Fatalf("applied %v, %d apply errors, problems %v; want nothing applied, 20 errors in one problem wrapping context.Canceled", res.Applied, res.ApplyErrors, res.Problems)
	}
	if !strings.Contains(res.Problems[0].Error(), "20 of 20 Secrets not tried (from apply-stop/c00000-tls)") {
		t.Errorf("problem %q does not say how many were left and from where", res.Problems[0])
	}
	r.flushEvents(ctx, res)
	// The events were not recorded (ctx ended): counted, not lost.
	if got := res.Events.Normal; got.Recorded != 0 || got.Dropped != 10+10 || got.Summarised != 10 {
		t.Errorf("events %+v; want 10 tried and dropped, 10 summarised and dropped with the summaries", got)
	}
}

func TestEventBudget(t *testing.T) {
	api := testbed.StartAPIServer(t)
	cs := kubernetes.NewForConfigOrDie(api.Config)
	tests := []struct {
		name       string
		namespaces int
		issued     int // Normal (Issued) events
		failed     int // Warning (Failed) events, after the issued ones
		budget     int
		want       EventCounts
		// wantOnSecrets and wantOnNamespaces are the Events the API server
		// holds, by the kind of their object.
		wantOnSecrets, wantOnNamespaces int
	}{
		{
			name: "under budget: one event per Secret", namespaces: 2, issued: 30, failed: 3, budget: 100,
			want:          EventCounts{Normal: EventTally{Recorded: 30}, Warning: EventTally{Recorded: 3}},
			wantOnSecrets: 33,
		},
		{
			name: "past budget: summaries per namespace, warnings keep their own budget", namespaces: 3, issued: 240, failed: 25, budget: 20,
			want: EventCounts{
				Normal:  EventTally{Recorded: 20, Summarised: 220, Summaries: 3},
				Warning: EventTally{Recorded: 20, Summarised: 5, Summaries: 3},
			},
			wantOnSecrets: 40, wantOnNamespaces: 6,
		},
		{
			name: "past the summaries' bound too: counted as dropped", namespaces: 5, issued: 60, failed: 12, budget: 2,
			want: EventCounts{
				Normal:  EventTally{Recorded: 2, Summarised: 58, Summaries: 2, Dropped: 12 + 12 + 12},
				Warning: EventTally{Recorded: 2, Summarised: 10, Summaries: 2, Dropped: 2 + 2 + 2},
			},
			wantOnSecrets: 4, wantOnNamespaces: 4,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var namespaces []string
			for n := range tt.namespaces {
				ns := fmt.Sprintf("events-%d-%d", i, n)
				api.CreateNamespace(t, ns)
				namespaces = append(namespaces, ns)
			}
			r := newLiveReconciler(t, api.Config, 16, tt.budget)
			res := &Result{}
			for _, b := range issuedBatches(namespaces, tt.issued, 50, "", 0) {
				r.applyIssued(context.Background(), res, b)
			}
			var failed []event
			for n := range tt.failed {
				failed = append(failed, event{namespace: namespaces[n%len(namespaces)], name: fmt.Sprintf("c%05d-tls", n), eventType: corev1.EventTypeWarning, reason: "Failed", message: "order failed"})
			}
			r.recordEvents(context.Background(), res, failed)
			r.flushEvents(context.Background(), res)
			if res.Events != tt.want {
				t.Errorf("events %+v, want %+v", res.Events, tt.want)
			}
			bySecret, byNamespace := 0, 0
			for _, ns := range namespaces {
				l, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for _, ev := range l.Items {
					switch ev.InvolvedObject.Kind {
					case "Secret":
						bySecret++
					case "Namespace":
						byNamespace++
						if ev.InvolvedObject.Name != ns || !strings.Contains(ev.Message, "more certificate") || !strings.Contains(ev.Message, "Secrets c") {
							t.Errorf("summary event on %s/%s: %q", ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Message)
						}
					}
				}
			}
			if bySecret != tt.wantOnSecrets || byNamespace != tt.wantOnNamespaces {
				t.Errorf("the API server holds %d events on Secrets and %d on namespaces, want %d and %d", bySecret, byNamespace, tt.wantOnSecrets, tt.wantOnNamespaces)
			}
		})
	}
}

func errorStrings(errs []error) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	return out
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("#%d got %s want %s", i, got[i], want[i])
		}
	}
	return "(one is a prefix of the other)"
}
