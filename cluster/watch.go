package cluster

import (
	"context"
	"strings"
	"sync"
	"time"
	"unique"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
)

// FullListInterval is how often Observe lists the Secrets although a watch
// keeps their metadata: a bound on how long anything a watch could miss
// would go unseen.
const FullListInterval = 10 * time.Minute

// Watch keeps the metadata of this agent's Secrets (in namespaces, or all
// of them for nil) in memory from a watch until ctx ends, for a daemon
// whose passes would otherwise list 10,000 Secrets every minute to find
// that nothing moved. Once the watch has synced, Observe reads it instead
// of listing and reads in full only the Secrets whose resourceVersion
// moved since certsync last saw their data match; it lists as before while
// the watch has not synced or fails (an agent not allowed to watch Secrets
// loses nothing but the speed), and every FullListInterval anyway.
//
// The watch keeps, per Secret, only what Observe reports: name,
// namespace, resourceVersion, labels and certsync's own annotations.
func (c *Client) Watch(ctx context.Context, namespaces []string) {
	if namespaces == nil {
		namespaces = []string{metav1.NamespaceAll}
	}
	w := &watcher{done: ctx.Done()}
	for _, ns := range namespaces {
		f := metadatainformer.NewFilteredSharedInformerFactory(c.meta, 0, ns, func(o *metav1.ListOptions) {
			o.LabelSelector = c.selector()
		})
		inf := f.ForResource(secretsResource).Informer()
		if err := inf.SetTransform(slim); err != nil {
			return // only before Start: cannot happen here
		}
		// client-go would log each failure through klog; Observe lists
		// instead, and its own errors say what is wrong.
		if err := inf.SetWatchErrorHandler(func(*cache.Reflector, error) { w.failed() }); err != nil {
			return
		}
		w.informers = append(w.informers, inf)
		f.Start(ctx.Done())
	}
	c.watch.Store(w)
	context.AfterFunc(ctx, func() { c.watch.CompareAndSwap(w, nil) })
}

// watcher is the state of Watch.
type watcher struct {
	informers []cache.SharedIndexInformer
	done      <-chan struct{} // the watch has stopped
	mu        sync.Mutex
	listed    time.Time // the last full list Observe made
	failures  int       // watch errors since that list
}

func (w *watcher) failed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures++
}

// usable reports whether Observe may read the watch now instead of
// listing.
func (w *watcher) usable(now time.Time) bool {
	select {
	case <-w.done:
		return false
	default:
	}
	for _, inf := range w.informers {
		if !inf.HasSynced() {
			return false
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failures == 0 && !w.listed.IsZero() && now.Sub(w.listed) < FullListInterval
}

func (w *watcher) didList(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.listed, w.failures = now, 0
}

// observeWatched is listMetadata over the watch's store.
func (c *Client) observeWatched(ctx context.Context, w *watcher) ([]Observed, error) {
	var out []Observed
	for _, inf := range w.informers {
		for _, obj := range inf.GetStore().List() {
			m, ok := obj.(*metav1.PartialObjectMetadata)
			if !ok {
				continue
			}
			var err error
			if out, err = c.observeMetadata(ctx, m, out); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// slim keeps of a Secret's metadata what Observe reports; the watch's
// store then holds a few hundred bytes per Secret, not its managedFields
// and every annotation. The strings every Secret repeats (its namespace,
// label and annotation keys, certsync's label values and owner) are
// interned: 10,000 Secrets then share one copy of each instead of holding
// 10,000 (BenchmarkPass10kNothingDue/daemon-cluster).
func slim(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	labels := make(map[string]string, len(m.Labels))
	for k, v := range m.Labels {
		labels[intern(k)] = intern(v)
	}
	ann := ownAnnotations(m.Annotations)
	for k, v := range ann {
		if k == OwnerAnnotation {
			ann[k] = intern(v)
		}
	}
	return &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: m.Name, Namespace: intern(m.Namespace), ResourceVersion: m.ResourceVersion,
		Labels: labels, Annotations: ann,
	}}, nil
}

// intern is the canonical copy of s.
func intern(s string) string { return unique.Make(s).Value() }

// ownAnnotations are the certsync.io annotations of a Secret: all that
// Observe reports of them, under interned keys.
func ownAnnotations(in map[string]string) map[string]string {
	n := 0
	for k := range in {
		if strings.HasPrefix(k, "certsync.io/") {
			n++
		}
	}
	out := make(map[string]string, n)
	for k, v := range in {
		if strings.HasPrefix(k, "certsync.io/") {
			out[intern(k)] = v
		}
	}
	return out
}
