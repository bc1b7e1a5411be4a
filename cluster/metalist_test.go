package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// metaOwner's Secrets are the ones these tests list; other tests' owners
// keep theirs out of the lists.
var metaOwner = Owner{Repository: "https://git.example/metalist.git", Branch: "main", Cluster: "default"}

var metaNamespaces = []string{"meta-a", "meta-b", "meta-c"}

// seedMetaSecrets fills metaNamespaces once: Secrets server-side applied
// by certsync (its labels, certsync.io annotations, cert-manager's), some
// then updated by another manager (managedFields with two entries, a
// foreign annotation and label), some created as a restore does, and in
// each namespace one Secret of another owner and one of nobody.
func seedMetaSecrets(t *testing.T) *Client {
	t.Helper()
	ctx := context.Background()
	c, raw := clientFor(t, metaOwner)
	if _, err := raw.CoreV1().Namespaces().Get(ctx, metaNamespaces[0], metav1.GetOptions{}); err == nil {
		return c
	}
	other, _ := clientFor(t, Owner{Repository: "https://git.example/other-metalist.git", Branch: "main", Cluster: "default"})
	for i, ns := range metaNamespaces {
		api.CreateNamespace(t, ns)
		for j := range 5 + i {
			s := metaSecret(ns, j)
			write := c.Apply
			if j%4 == 3 {
				write = c.Create
			}
			if err := write(ctx, s); err != nil {
				t.Fatal(err)
			}
			if j%2 == 0 {
				live, err := raw.CoreV1().Secrets(ns).Get(ctx, s.Name, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				live.Labels["team"] = ns
				live.Annotations["example.com/edited"] = "by hand"
				if _, err := raw.CoreV1().Secrets(ns).Update(ctx, live, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		theirs := tlsSecret("theirs-tls")
		theirs.Namespace = ns
		if err := other.Apply(ctx, theirs); err != nil {
			t.Fatal(err)
		}
		nobodys := tlsSecret("nobodys-tls")
		nobodys.Namespace, nobodys.Labels = ns, nil
		if _, err := raw.CoreV1().Secrets(ns).Create(ctx, nobodys, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// metaSecret is the j-th Secret seedMetaSecrets applies in ns.
func metaSecret(ns string, j int) *corev1.Secret {
	s := tlsSecret(fmt.Sprintf("web-%d-tls", j))
	s.Namespace = ns
	s.Annotations["cert-manager.io/issuer-name"] = "letsencrypt"
	s.Annotations["certsync.io/not-after"] = "2026-12-01T00:00:00Z"
	return s
}

// listRequests counts the Secret lists a Client sends by the hand
// decoder's Accept header (fast) and by the metadata client's (slow),
// and the Secrets it reads one by one (gets).
type listRequests struct{ fast, slow, gets atomic.Int32 }

func (l *listRequests) count(r *http.Request) {
	switch accept := r.Header.Get("Accept"); {
	case r.Method != http.MethodGet:
	case strings.Contains(r.URL.Path, "/secrets/"):
		l.gets.Add(1)
	case !strings.HasSuffix(r.URL.Path, "/secrets"):
	case accept == metaListAccept:
		l.fast.Add(1)
	case strings.Contains(accept, "as=PartialObjectMetadataList"):
		l.slow.Add(1)
	}
}

func collect(t *testing.T, list func(fn func(listedMeta) error) error) []listedMeta {
	t.Helper()
	var out []listedMeta
	if err := list(func(m listedMeta) error {
		out = append(out, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestListedMatchesMetadataClient: against the API server, the hand
// decoder reads of each listed Secret (pages of 2, so the continue token
// is followed) the namespace, name, resourceVersion and certsync.io
// annotations the metadata client reads for the same request, in one
// namespace and in all of them, with no help from the metadata client;
// and the list holds just this owner's Secrets.
func TestListedMatchesMetadataClient(t *testing.T) {
	ctx := context.Background()
	seedMetaSecrets(t)
	var reqs listRequests
	c := countingClient(t, metaOwner, reqs.count)
	for _, ns := range []string{"meta-b", metav1.NamespaceAll} {
		t.Run("namespace "+ns, func(t *testing.T) {
			reqs.fast.Store(0)
			reqs.slow.Store(0)
			got := collect(t, func(fn func(listedMeta) error) error { return c.eachListed(ctx, ns, 2, "", fn) })
			if fast, slow := reqs.fast.Load(), reqs.slow.Load(); fast < 2 || slow != 0 {
				t.Fatalf("sent %d pages decoded by hand and %d through the metadata client; want several and none", fast, slow)
			}
			want := collect(t, func(fn func(listedMeta) error) error { return c.eachListedByMetadataClient(ctx, ns, 2, "", fn) })
			sameListed(t, "hand decoder against the metadata client", got, want)

			wantN := 6 // meta-b
			if ns == metav1.NamespaceAll {
				wantN = 5 + 6 + 7
			}
			if len(got) != wantN {
				t.Fatalf("listed %d Secrets, want this owner's %d", len(got), wantN)
			}
			for _, m := range got {
				if !strings.HasPrefix(m.name, "web-") || m.annotations[OwnerAnnotation] != metaOwner.String() || m.annotations["certsync.io/serial"] != "01" ||
					m.annotations["certsync.io/not-after"] == "" || m.annotations[AppliedHashAnnotation] == "" || len(m.annotations) != 4 {
					t.Errorf("%s/%s: annotations %v, want certsync's 4 only", m.namespace, m.name, m.annotations)
				}
			}
		})
	}
}

// jsonProxyClient is a Client of metaOwner behind a proxy that turns the
// hand decoder's list requests (all, or those past the first page) into
// JSON ones, as a proxy rewriting content types would.
func jsonProxyClient(t *testing.T, fromSecondPage bool, reqs *listRequests) *Client {
	t.Helper()
	cfg := rest.CopyConfig(api.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			reqs.count(r)
			if r.Header.Get("Accept") == metaListAccept && (!fromSecondPage || r.URL.Query().Get("continue") != "") {
				r = r.Clone(r.Context())
				r.Header.Set("Accept", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
			}
			return rt.RoundTrip(r)
		})
	}
	c, err := NewForConfig(cfg, metaOwner)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestListFallsBackWhenNotProtobuf: an answer that is not protobuf (on
// the first page or a later one) is listed again, from that page on, by
// the metadata client, and the list is the same.
func TestListFallsBackWhenNotProtobuf(t *testing.T) {
	ctx := context.Background()
	seedMetaSecrets(t)
	var plainReqs listRequests
	plain := countingClient(t, metaOwner, plainReqs.count)
	want := collect(t, func(fn func(listedMeta) error) error { return plain.eachListed(ctx, metav1.NamespaceAll, 3, "", fn) })
	// Pages hold up to 3 Secrets, fewer where the label selector skips
	// others' Secrets.
	pages := plainReqs.fast.Load()
	for _, tc := range []struct {
		name           string
		fromSecondPage bool
		wantFast       int32
	}{
		{"every page", false, 1},
		{"from the second page", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reqs listRequests
			c := jsonProxyClient(t, tc.fromSecondPage, &reqs)
			got := collect(t, func(fn func(listedMeta) error) error { return c.eachListed(ctx, metav1.NamespaceAll, 3, "", fn) })
			sameListed(t, "after falling back", got, want)
			if fast, slow := reqs.fast.Load(), reqs.slow.Load(); fast != tc.wantFast || slow != pages-tc.wantFast+1 {
				t.Errorf("sent %d requests for the hand decoder and %d through the metadata client; want %d and %d", fast, slow, tc.wantFast, pages-tc.wantFast+1)
			}
		})
	}
}

// TestListErrorsMatchMetadataClient: an answer that is an error reads as
// the metadata client reads it: the same message, the same reason
// (callers tell them apart with apierrors), from the API server
// (Forbidden, a continue token it cannot read) or from a proxy (410
// Expired, which a compacted continue token gets).
func TestListErrorsMatchMetadataClient(t *testing.T) {
	ctx := context.Background()
	expired := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"The provided continue parameter is too old to display a consistent list result.","reason":"Expired","code":410}`
	for _, tc := range []struct {
		name   string
		config func(*rest.Config)
		cont   string
		want   metav1.StatusReason
	}{
		{"forbidden", func(cfg *rest.Config) { cfg.Impersonate = rest.ImpersonationConfig{UserName: "nobody"} }, "", metav1.StatusReasonForbidden},
		{"an unreadable continue token", func(*rest.Config) {}, "not-a-token", metav1.StatusReasonBadRequest},
		{"an expired continue token", func(cfg *rest.Config) {
			cfg.WrapTransport = func(http.RoundTripper) http.RoundTripper {
				return roundTripFunc(func(r *http.Request) (*http.Response, error) {
					return &http.Response{StatusCode: http.StatusGone, Header: http.Header{"Content-Type": {"application/json"}},
						Body: io.NopCloser(strings.NewReader(expired)), Request: r, ContentLength: int64(len(expired))}, nil
				})
			}
		}, "", metav1.StatusReasonExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := rest.CopyConfig(api.Config)
			tc.config(cfg)
			c, err := NewForConfig(cfg, metaOwner)
			if err != nil {
				t.Fatal(err)
			}
			none := func(listedMeta) error { return nil }
			fast := c.eachListed(ctx, "meta-a", 2, tc.cont, none)
			slow := c.eachListedByMetadataClient(ctx, "meta-a", 2, tc.cont, none)
			if fast == nil || slow == nil {
				t.Fatalf("hand decoder: %v; metadata client: %v; want both to fail", fast, slow)
			}
			if fast.Error() != slow.Error() || apierrors.ReasonForError(fast) != tc.want || apierrors.ReasonForError(slow) != tc.want {
				t.Errorf("hand decoder: %v (%s)\nmetadata client: %v (%s)\nwant the same, %s", fast, apierrors.ReasonForError(fast), slow, apierrors.ReasonForError(slow), tc.want)
			}
		})
	}
}

// TestObserveUnchangedByDecoder: a primed Client's Observe (metadata
// list, then a GET of what changed) reports the same Secrets, annotations
// and drift whether the pages are decoded by hand or by the metadata
// client, and reads the same Secrets in full.
func TestObserveUnchangedByDecoder(t *testing.T) {
	ctx := context.Background()
	first := seedMetaSecrets(t)
	observe(t, first)
	seen := first.Seen()
	_, raw := client(t)
	s, err := raw.CoreV1().Secrets("meta-c").Get(ctx, "web-1-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data["tls.crt"] = []byte("edited by hand")
	if _, err := raw.CoreV1().Secrets("meta-c").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { // repaired, for the other tests
		if err := first.Apply(ctx, metaSecret("meta-c", 1)); err != nil {
			t.Error(err)
		}
	}()

	var reports [2][]Observed
	var gets [2]int32
	for i, fallback := range []bool{false, true} {
		var reqs listRequests
		var c *Client
		if fallback {
			c = jsonProxyClient(t, false, &reqs)
		} else {
			c = countingClient(t, metaOwner, reqs.count)
		}
		c.Prime(seen)
		obs, err := c.Observe(ctx, metaNamespaces)
		if err != nil {
			t.Fatal(err)
		}
		if fast, slow := reqs.fast.Load(), reqs.slow.Load(); fallback && slow == 0 || !fallback && (fast == 0 || slow != 0) {
			t.Fatalf("behind a JSON proxy %v: %d pages decoded by hand, %d by the metadata client", fallback, fast, slow)
		}
		slices.SortFunc(obs, func(a, b Observed) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
		reports[i], gets[i] = obs, reqs.gets.Load()
	}
	if !reflect.DeepEqual(reports[0], reports[1]) {
		t.Fatalf("decoded by hand:\n%+v\nby the metadata client:\n%+v", reports[0], reports[1])
	}
	if gets[0] != 1 || gets[1] != 1 {
		t.Errorf("read %d and %d Secrets in full; want 1 each (the edited one)", gets[0], gets[1])
	}
	drifted := 0
	for _, o := range reports[0] {
		if o.Drifted {
			drifted++
			if o.Namespace != "meta-c" || o.Name != "web-1-tls" {
				t.Errorf("%s/%s reported drifted", o.Namespace, o.Name)
			}
		}
		if len(o.Annotations) != 4 || o.Annotations[OwnerAnnotation] != metaOwner.String() {
			t.Errorf("%s/%s: annotations %v, want certsync's 4", o.Namespace, o.Name, o.Annotations)
		}
	}
	if len(reports[0]) != 18 || drifted != 1 {
		t.Fatalf("observed %d Secrets, %d drifted; want 18 and 1", len(reports[0]), drifted)
	}
}
