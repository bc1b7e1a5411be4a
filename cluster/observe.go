package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Observed is what certsync needs to know about one Secret it owns; the
// data stays in this package.
type Observed struct {
	Namespace, Name string
	// Annotations are certsync's own (certsync.io/…).
	Annotations map[string]string
	// Drifted: the data no longer matches what certsync applied.
	Drifted bool
}

var secretsResource = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// Observe lists the Secrets this agent owns (certsync's label and its own
// instance), in the given namespaces or all of them (nil), page by page.
//
// Whether a Secret drifted needs its data, and listing 10,000 Secrets with
// their data is most of an idle pass. So a Client remembers, per Secret,
// the resourceVersion at which it last saw the data match the applied-data
// hash (on a full list, or as returned by its own apply or create). The
// first Observe of a Client lists everything; later ones list metadata
// only (PartialObjectMetadata) and read in full only the Secrets whose
// resourceVersion moved since — someone else wrote them, or they are new.
// Any write changes the resourceVersion, so nothing is missed, and each
// pass lists afresh, so no watch event can be lost in between — unless
// the daemon keeps a watch (see Watch), which then stands in for the list.
func (c *Client) Observe(ctx context.Context, namespaces []string) ([]Observed, error) {
	w := c.watch.Load()
	if w != nil && c.seen.primed() && w.usable(time.Now()) {
		return c.observeWatched(ctx, w)
	}
	if namespaces == nil {
		namespaces = []string{metav1.NamespaceAll}
	}
	full := !c.seen.primed()
	var out []Observed
	for _, ns := range namespaces {
		var err error
		if full {
			out, err = c.listFull(ctx, ns, out)
		} else {
			out, err = c.listMetadata(ctx, ns, out)
		}
		if err != nil {
			return nil, err
		}
	}
	c.seen.prime()
	c.seen.keepOnly(out)
	if w != nil {
		w.didList(time.Now())
	}
	return out, nil
}

// listFull lists the owned Secrets of ns with their data.
func (c *Client) listFull(ctx context.Context, ns string, out []Observed) ([]Observed, error) {
	opts := metav1.ListOptions{LabelSelector: c.selector(), Limit: 500}
	for {
		list, err := c.cs.CoreV1().Secrets(ns).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list Secrets: %w", scrub(err))
		}
		for i := range list.Items {
			out = append(out, c.observe(&list.Items[i]))
		}
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}

// observeMetadata adds the Secret m describes (from the watch) to out; see
// observeListed.
func (c *Client) observeMetadata(ctx context.Context, m *metav1.PartialObjectMetadata, out []Observed) ([]Observed, error) {
	return c.observeListed(ctx, listedOf(m), out)
}

// listedOf is what Observe needs of m.
func listedOf(m *metav1.PartialObjectMetadata) listedMeta {
	return listedMeta{namespace: m.Namespace, name: m.Name, resourceVersion: m.ResourceVersion, annotations: ownAnnotations(m.Annotations)}
}

// observeListed adds the Secret m describes to out: from its metadata
// when certsync saw its data match at this resourceVersion, else read in
// full.
func (c *Client) observeListed(ctx context.Context, m listedMeta, out []Observed) ([]Observed, error) {
	if c.seen.matches(m.namespace, m.name, m.resourceVersion) {
		return append(out, Observed{Namespace: m.namespace, Name: m.name, Annotations: m.annotations}), nil
	}
	s, err := c.cs.CoreV1().Secrets(m.namespace).Get(ctx, m.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return out, nil // deleted since the list
	}
	if err != nil {
		return nil, fmt.Errorf("get Secret %s/%s: %w", m.namespace, m.name, scrub(err))
	}
	return append(out, c.observe(s)), nil
}

// observe is s as Observe reports it, remembered when it matches.
func (c *Client) observe(s *corev1.Secret) Observed {
	return Observed{
		Namespace: s.Namespace, Name: s.Name, Annotations: ownAnnotations(s.Annotations),
		Drifted: !c.seen.remember(s),
	}
}

// verifiedVersions records, per Secret, the resourceVersion at which its
// data was seen to match its applied-data hash. Safe for concurrent use
// (applies run in parallel).
type verifiedVersions struct {
	mu       sync.Mutex
	versions map[string]string // "namespace/name" → resourceVersion
	listed   bool              // a full list filled versions
}

// remember records s when its data matches the hash certsync applied, and
// reports whether it does.
func (v *verifiedVersions) remember(s *corev1.Secret) bool {
	ok := s.Annotations[AppliedHashAnnotation] == DataHash(s.Type, s.Data)
	v.mu.Lock()
	defer v.mu.Unlock()
	key := s.Namespace + "/" + s.Name
	if !ok {
		delete(v.versions, key)
		return false
	}
	if v.versions == nil {
		v.versions = map[string]string{}
	}
	v.versions[key] = s.ResourceVersion
	return true
}

func (v *verifiedVersions) matches(namespace, name, resourceVersion string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	rv, ok := v.versions[namespace+"/"+name]
	return ok && rv == resourceVersion
}

func (v *verifiedVersions) forget(namespace, name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.versions, namespace+"/"+name)
}

// keepOnly forgets the Secrets a complete list did not report (deleted
// since), so what is remembered, and carried to the next process (see
// Seen), stays the size of what the cluster holds.
func (v *verifiedVersions) keepOnly(listed []Observed) {
	keep := make(map[string]bool, len(listed))
	for _, o := range listed {
		keep[o.Namespace+"/"+o.Name] = true
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for key := range v.versions {
		if !keep[key] {
			delete(v.versions, key)
		}
	}
}

func (v *verifiedVersions) primed() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.listed
}

func (v *verifiedVersions) prime() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.listed = true
}
