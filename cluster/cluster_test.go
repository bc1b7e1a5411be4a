package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/certsync/certsync/internal/testbed"
)

var api *testbed.APIServer

func TestMain(m *testing.M) {
	tb := &testbed.Process{}
	api = testbed.StartAPIServer(tb)
	for _, ns := range []string{"shop", "bench"} {
		api.CreateNamespace(tb, ns)
	}
	code := m.Run()
	tb.Close()
	os.Exit(code)
}

var testOwner = Owner{Repository: "https://git.example/certs.git", Branch: "main", Cluster: "default"}

func client(t testing.TB) (*Client, kubernetes.Interface) {
	return clientFor(t, testOwner)
}

func clientFor(t testing.TB, owner Owner) (*Client, kubernetes.Interface) {
	c, err := NewFromKubeconfig(api.Kubeconfig, "", owner)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := kubernetes.NewForConfig(api.Config)
	return c, raw
}

func tlsSecret(name string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop",
			Labels:      map[string]string{"controller.cert-manager.io/fao": "true"},
			Annotations: map[string]string{"cert-manager.io/certificate-name": name, "certsync.io/serial": "01"}},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": []byte("cert"), "tls.key": []byte("key")},
	}
}

func TestApplyObserveDrift(t *testing.T) {
	ctx := context.Background()
	c, raw := client(t)
	s := tlsSecret("web-tls")
	if err := c.Apply(ctx, s); err != nil {
		t.Fatal(err)
	}
	live, err := c.Get(ctx, "shop", "web-tls")
	if err != nil {
		t.Fatal(err)
	}
	if live.Type != corev1.SecretTypeTLS || string(live.Data["tls.key"]) != "key" || live.Labels[ManagedByLabel] != ManagedByValue ||
		live.Annotations["certsync.io/serial"] != "01" || live.Annotations[AppliedHashAnnotation] == "" {
		t.Fatalf("applied Secret differs: %+v", live.ObjectMeta)
	}
	rv := live.ResourceVersion
	if err := c.Apply(ctx, s); err != nil {
		t.Fatal(err)
	}
	if again, _ := c.Get(ctx, "shop", "web-tls"); again.ResourceVersion != rv {
		t.Error("re-applying the same Secret wrote to the API server")
	}

	// A Secret certsync did not create is never observed.
	foreign := tlsSecret("foreign-tls")
	foreign.Labels = nil
	if _, err := raw.CoreV1().Secrets("shop").Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	obs := observe(t, c)
	if len(obs) != 1 || obs["shop/web-tls"].Drifted {
		t.Fatalf("observed %v", obs)
	}
	live.Data["tls.key"] = []byte("edited")
	if _, err := raw.CoreV1().Secrets("shop").Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if !observe(t, c)["shop/web-tls"].Drifted {
		t.Fatal("edited data not seen as drift")
	}
	if err := c.Apply(ctx, s); err != nil {
		t.Fatal(err)
	}
	if observe(t, c)["shop/web-tls"].Drifted {
		t.Fatal("re-apply did not repair drift")
	}

	// Delete: refuses the foreign Secret, removes the owned one.
	if err := c.Delete(ctx, "shop", "foreign-tls"); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("deleting a foreign Secret: %v", err)
	}
	if err := c.Delete(ctx, "shop", "web-tls"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "shop", "web-tls"); err == nil {
		t.Fatal("owned Secret not deleted")
	}
	if err := c.Event(ctx, "shop", "web-tls", corev1.EventTypeNormal, "Issued", "test"); err != nil {
		t.Fatal(err)
	}
}

// Two agents on one cluster (another repository, or another cluster name)
// never see or delete each other's Secrets.
func TestOwnershipIsPerInstance(t *testing.T) {
	ctx := context.Background()
	mine, _ := client(t)
	for _, other := range []Owner{
		{Repository: "https://git.example/other.git", Branch: "main", Cluster: "default"},
		{Repository: testOwner.Repository, Branch: "main", Cluster: "staging"},
	} {
		theirs, _ := clientFor(t, other)
		name := "theirs-" + other.Instance()[:6]
		if err := theirs.Apply(ctx, tlsSecret(name)); err != nil {
			t.Fatal(err)
		}
		if _, seen := observe(t, mine)["shop/"+name]; seen {
			t.Errorf("%s: another instance's Secret is observed as ours", other)
		}
		if err := mine.Delete(ctx, "shop", name); !errors.Is(err, ErrNotOwned) {
			t.Errorf("%s: deleting another instance's Secret: %v", other, err)
		}
		if _, err := theirs.Get(ctx, "shop", name); err != nil {
			t.Errorf("%s: Secret gone: %v", other, err)
		}
		if live, _ := theirs.Get(ctx, "shop", name); live != nil && live.Annotations[OwnerAnnotation] != other.String() {
			t.Errorf("owner annotation %q", live.Annotations[OwnerAnnotation])
		}
	}
	if _, err := NewFromKubeconfig(api.Kubeconfig, "", Owner{}); err == nil {
		t.Error("a client without an owner must be refused")
	}
}

// A Secret restore created is taken over by the next Apply as if Apply
// had made it: a field that apply leaves out is removed, the fields end
// up owned by certsync's apply alone, and applying again writes nothing.
func TestCreateThenApply(t *testing.T) {
	ctx := context.Background()
	c, raw := client(t)
	s := tlsSecret("restored-tls")
	s.Data["ca.crt"] = []byte("root")
	s.Labels["team"] = "shop"
	if err := c.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, s); !errors.Is(err, ErrExists) {
		t.Fatalf("creating it again: %v, want ErrExists", err)
	}
	created, err := c.Get(ctx, "shop", "restored-tls")
	if err != nil {
		t.Fatal(err)
	}
	if created.Labels[ManagedByLabel] != ManagedByValue || created.Labels[InstanceLabel] != testOwner.Instance() ||
		created.Annotations[AppliedHashAnnotation] != DataHash(s.Type, s.Data) || created.Annotations[OwnerAnnotation] != testOwner.String() {
		t.Fatalf("created Secret lacks what Apply records: %+v", created.ObjectMeta)
	}
	if obs := observe(t, c)["shop/restored-tls"]; obs.Name == "" || obs.Drifted {
		t.Fatalf("created Secret observed as %+v", obs)
	}

	renewed := tlsSecret("restored-tls") // the issuer no longer sends ca.crt; the label left secretTemplate
	renewed.Data["tls.crt"] = []byte("renewed")
	if err := c.Apply(ctx, renewed); err != nil {
		t.Fatal(err)
	}
	live, err := c.Get(ctx, "shop", "restored-tls")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := live.Data["ca.crt"]; ok || live.Labels["team"] != "" || string(live.Data["tls.crt"]) != "renewed" {
		t.Errorf("after apply: data keys %v, labels %v", keys(live.Data), live.Labels)
	}
	var managers []string
	for _, m := range live.ManagedFields {
		managers = append(managers, m.Manager+"/"+string(m.Operation))
	}
	if strings.Join(managers, ",") != FieldManager+"/Apply" {
		t.Errorf("managed fields %v, want certsync/Apply only", managers)
	}
	if observe(t, c)["shop/restored-tls"].Drifted {
		t.Error("applied Secret observed as drifted")
	}
	if err := c.Apply(ctx, renewed); err != nil {
		t.Fatal(err)
	}
	if again, _ := c.Get(ctx, "shop", "restored-tls"); again.ResourceVersion != live.ResourceVersion {
		t.Error("re-applying the same Secret wrote to the API server")
	}

	// Another field manager's edit is not taken over.
	live.Labels["edited-by"] = "someone"
	if _, err := raw.CoreV1().Secrets("shop").Update(ctx, live, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, renewed); err != nil {
		t.Fatal(err)
	}
	if live, _ := c.Get(ctx, "shop", "restored-tls"); live.Labels["edited-by"] != "someone" {
		t.Error("apply removed a label another manager set")
	}

	missing := tlsSecret("x")
	missing.Namespace = "nowhere"
	if err := c.Create(ctx, missing); err == nil || !strings.Contains(err.Error(), `namespace "nowhere" does not exist`) {
		t.Errorf("create in a missing namespace: %v", err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestMissingNamespace(t *testing.T) {
	c, _ := client(t)
	s := tlsSecret("x")
	s.Namespace = "nowhere"
	err := c.Apply(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), `namespace "nowhere" does not exist`) || strings.Contains(err.Error(), "key") && strings.Contains(err.Error(), "tls.key: key") {
		t.Fatalf("err = %v", err)
	}
}

func observe(t *testing.T, c *Client) map[string]Observed {
	t.Helper()
	list, err := c.Observe(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Observed{}
	for _, o := range list {
		out[o.Namespace+"/"+o.Name] = o
	}
	return out
}

// BenchmarkApply1k applies 1,000 Secrets, then observes them.
func BenchmarkApply1k(b *testing.B) {
	ctx := context.Background()
	c, _ := client(b)
	for b.Loop() {
		for i := range 1000 {
			s := tlsSecret(fmt.Sprintf("bench-%d", i))
			s.Namespace = "bench"
			s.Data["tls.crt"] = []byte(fmt.Sprint(i, b.N))
			if err := c.Apply(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkObserve1k(b *testing.B) {
	ctx := context.Background()
	c, _ := client(b)
	for i := range 1000 {
		s := tlsSecret(fmt.Sprintf("obs-%d", i))
		s.Namespace = "bench"
		if err := c.Apply(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Observe(ctx, []string{"bench"}); err != nil {
			b.Fatal(err)
		}
	}
}

// After its first list, a Client reads Secrets' data only when their
// resourceVersion moved: an idle pass over 10,000 Secrets moves metadata,
// not certificates. Every write is still seen — a label edit is read and
// found in order, a data edit is drift — and so is one made while the agent
// was down (a new Client lists everything).
func TestObserveReadsOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	owner := Owner{Repository: "https://git.example/observe.git", Branch: "main", Cluster: "default"}
	c, gets, fullLists := readCountingClient(t, owner)
	_, raw := client(t)
	for _, name := range []string{"a-tls", "b-tls", "c-tls"} {
		if err := c.Apply(ctx, tlsSecret(name)); err != nil {
			t.Fatal(err)
		}
	}
	for pass := range 2 {
		if obs := observe(t, c); len(obs) != 3 || obs["shop/a-tls"].Drifted || obs["shop/b-tls"].Drifted {
			t.Fatalf("pass %d observed %v", pass, obs)
		}
	}
	if n, lists := gets.Load(), fullLists.Load(); n != 0 || lists != 1 {
		t.Fatalf("two idle passes read %d Secrets one by one and listed them with their data %d times; want 0 and 1 (the first pass)", n, lists)
	}

	a, _ := raw.CoreV1().Secrets("shop").Get(ctx, "a-tls", metav1.GetOptions{})
	a.Labels["team"] = "shop"
	if _, err := raw.CoreV1().Secrets("shop").Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	b, _ := raw.CoreV1().Secrets("shop").Get(ctx, "b-tls", metav1.GetOptions{})
	b.Data["tls.crt"] = []byte("edited by hand")
	if _, err := raw.CoreV1().Secrets("shop").Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	obs := observe(t, c)
	if obs["shop/a-tls"].Drifted || !obs["shop/b-tls"].Drifted || obs["shop/c-tls"].Drifted {
		t.Fatalf("after a label edit of a and a data edit of b: %v", obs)
	}
	if n := gets.Load(); n != 2 {
		t.Errorf("read %d Secrets in full; want the 2 that changed", n)
	}
	// Drift stays drift until certsync repairs it, pass after pass.
	if !observe(t, c)["shop/b-tls"].Drifted {
		t.Fatal("drift forgotten on the next pass")
	}
	// A restarted agent (a new Client) lists in full and sees it too.
	restarted, err := NewForConfig(api.Config, owner)
	if err != nil {
		t.Fatal(err)
	}
	if !observe(t, restarted)["shop/b-tls"].Drifted {
		t.Fatal("a new Client missed the drift")
	}
}

// readCountingClient is a Client of owner that counts the Secrets it
// reads one by one (gets) and its lists of Secrets with their data.
func readCountingClient(t *testing.T, owner Owner) (c *Client, gets, fullLists *atomic.Int32) {
	t.Helper()
	gets, fullLists = new(atomic.Int32), new(atomic.Int32)
	c = countingClient(t, owner, func(r *http.Request) {
		switch {
		case r.Method != http.MethodGet:
		case strings.Contains(r.URL.Path, "/secrets/"):
			gets.Add(1)
		case strings.HasSuffix(r.URL.Path, "/secrets") && !strings.Contains(r.Header.Get("Accept"), "as=PartialObjectMetadataList"):
			fullLists.Add(1)
		}
	})
	return c, gets, fullLists
}

// countingClient is a Client of owner that shows count every request it
// sends, for tests that count what a pass asks of the API server.
func countingClient(t *testing.T, owner Owner, count func(*http.Request)) *Client {
	t.Helper()
	cfg := rest.CopyConfig(api.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			count(r)
			return rt.RoundTrip(r)
		})
	}
	c, err := NewForConfig(cfg, owner)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestObserveReadsTheWatch: with a watch (the daemon's), Observe lists
// once, then reads the watch: idle passes send no list and no GET; a data
// edit by someone else reaches the watch and is read (one GET) and
// reported as drift; a Secret deleted by someone else is gone from the
// next pass; annotations other than certsync's are not kept.
func TestObserveReadsTheWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	owner := Owner{Repository: "https://git.example/watch.git", Branch: "main", Cluster: "default"}
	var gets, lists atomic.Int32
	c := countingClient(t, owner, func(r *http.Request) {
		switch {
		case r.Method != http.MethodGet || r.URL.Query().Get("watch") == "true":
		case strings.Contains(r.URL.Path, "/secrets/"):
			gets.Add(1)
		case strings.HasSuffix(r.URL.Path, "/secrets"):
			lists.Add(1)
		}
	})
	_, raw := client(t)
	names := []string{"w-a-tls", "w-b-tls", "w-c-tls"}
	for _, name := range names {
		s := tlsSecret(name)
		s.Annotations = map[string]string{"example.com/note": "not certsync's"}
		if err := c.Apply(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	c.Watch(ctx, []string{"shop"})
	obs := observe(t, c) // the first pass lists, with the data
	if len(obs) != 3 {
		t.Fatalf("first pass observed %v", obs)
	}
	// Until the watch holds what the list saw.
	waitFor(t, func() bool {
		return c.watch.Load().usable(time.Now()) && len(c.watch.Load().informers[0].GetStore().List()) == 3
	})
	lists.Store(0)
	for pass := range 2 {
		obs := observe(t, c)
		if len(obs) != 3 || obs["shop/w-a-tls"].Drifted {
			t.Fatalf("idle pass %d observed %v", pass, obs)
		}
		if _, kept := obs["shop/w-a-tls"].Annotations["example.com/note"]; kept || obs["shop/w-a-tls"].Annotations[AppliedHashAnnotation] == "" {
			t.Fatalf("annotations reported: %v", obs["shop/w-a-tls"].Annotations)
		}
	}
	if n, l := gets.Load(), lists.Load(); n != 0 || l != 0 {
		t.Fatalf("two idle passes sent %d GETs and %d lists; want none (the watch has it)", n, l)
	}

	b, _ := raw.CoreV1().Secrets("shop").Get(ctx, "w-b-tls", metav1.GetOptions{})
	b.Data["tls.crt"] = []byte("edited by hand")
	edited, err := raw.CoreV1().Secrets("shop").Update(ctx, b, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.CoreV1().Secrets("shop").Delete(ctx, "w-c-tls", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		obj, ok, _ := c.watch.Load().informers[0].GetStore().GetByKey("shop/w-b-tls")
		_, stillThere, _ := c.watch.Load().informers[0].GetStore().GetByKey("shop/w-c-tls")
		return ok && obj.(*metav1.PartialObjectMetadata).ResourceVersion == edited.ResourceVersion && !stillThere
	})
	obs = observe(t, c)
	if len(obs) != 2 || !obs["shop/w-b-tls"].Drifted || obs["shop/w-a-tls"].Drifted {
		t.Fatalf("after an edit of b and a deletion of c: %v", obs)
	}
	if n, l := gets.Load(), lists.Load(); n != 1 || l != 0 {
		t.Fatalf("sent %d GETs and %d lists; want 1 GET (the edited Secret) and no list", n, l)
	}
	// The watch ends with its context: Observe lists again.
	cancel()
	if obs := observe(t, c); len(obs) != 2 || lists.Load() == 0 {
		t.Fatalf("without the watch: %v, %d lists", obs, lists.Load())
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watch did not catch up within 10 s")
		}
	}
}
