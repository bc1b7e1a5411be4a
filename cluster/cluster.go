// Package cluster puts certsync's Secrets into a Kubernetes cluster and
// reports which ones it owns.
//
// Secrets are server-side applied with field manager "certsync" (a restore
// into a rebuilt cluster creates them instead, see Create), the label
// app.kubernetes.io/managed-by=certsync and the label certsync.io/instance
// naming the agent that applied them (a digest of its repository, branch
// and cluster name). An agent lists and deletes only Secrets carrying its
// own instance, so two certsync installations on one cluster (another
// repository, another --cluster) never prune each other's Secrets.
// Apply also records a hash of the Secret's type and data; Observe compares
// it with the live data to tell a Secret edited by hand (drift) without
// keeping anything outside the cluster.
package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/transport"
	"k8s.io/client-go/util/csaupgrade"
)

const (
	// FieldManager owns the fields certsync applies.
	FieldManager = "certsync"
	// ManagedByLabel marks certsync's Secrets (value ManagedByValue).
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "certsync"
	// AppliedHashAnnotation is a SHA-256 over the Secret's type and data
	// as applied; a live Secret whose data no longer matches it drifted.
	AppliedHashAnnotation = "certsync.io/applied-data-hash"
	// InstanceLabel names the agent instance that owns a Secret; see
	// Instance. OwnerAnnotation spells it out for people.
	InstanceLabel   = "certsync.io/instance"
	OwnerAnnotation = "certsync.io/owner"
)

// Owner identifies one agent: the repository (without credentials), the
// branch and the cluster folder it applies.
type Owner struct {
	Repository, Branch, Cluster string
}

// Instance is the label value of an owner: a digest short enough for a
// label, stable across restarts and replicas.
func (o Owner) Instance() string {
	sum := sha256.Sum256([]byte(o.Repository + "\x00" + o.Branch + "\x00" + o.Cluster))
	return hex.EncodeToString(sum[:10])
}

func (o Owner) String() string { return o.Repository + "#" + o.Branch + " cluster " + o.Cluster }

// Client-side rate limit towards the API server. Default: 2,000
// requests/s, bursts of 4,000. It is a safety net, not the throttle: a
// pass applies at most reconcile.DefaultApplyConcurrency Secrets at once
// and the API server's priority and fairness (APF) answers 429 with
// Retry-After past what it can take, which client-go honours. At 200/s
// the limit alone made 9,000 new Secrets take 45 s (BenchmarkApply9k).
const (
	DefaultQPS   = 2000
	DefaultBurst = 4000
	// DefaultTimeout bounds each request to the API server.
	DefaultTimeout = 30 * time.Second
)

// Client talks to one cluster on behalf of one Owner.
type Client struct {
	cs    kubernetes.Interface
	meta  metadata.Interface
	owner Owner
	seen  verifiedVersions
	watch atomic.Pointer[watcher] // see Watch
}

// Client-side rate limit of a restore: a one-off bulk apply into a
// rebuilt cluster, where the client-side limit alone would make 10,000
// Secrets take 50 s; the API server's own fairness (APF) still applies.
const (
	RestoreQPS   = 2000
	RestoreBurst = 4000
)

// NewFromKubeconfig connects with a kubeconfig file; an empty path means
// in-cluster configuration, then $KUBECONFIG and ~/.kube/config.
func NewFromKubeconfig(path, context string, owner Owner) (*Client, error) {
	return NewFromKubeconfigWithLimit(path, context, owner, DefaultQPS, DefaultBurst)
}

// NewFromKubeconfigWithLimit is NewFromKubeconfig with another
// client-side rate limit (requests per second and burst).
func NewFromKubeconfigWithLimit(path, context string, owner Owner, qps float32, burst int) (*Client, error) {
	var cfg *rest.Config
	var err error
	if path == "" {
		cfg, err = rest.InClusterConfig()
	}
	if path != "" || err != nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = path
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %q: %w", path, err)
	}
	cfg.QPS, cfg.Burst = qps, burst
	return NewForConfig(cfg, owner)
}

// NewForConfig connects with a rest.Config.
func NewForConfig(cfg *rest.Config, owner Owner) (*Client, error) {
	if owner.Cluster == "" || owner.Repository == "" {
		return nil, errors.New("cluster: the owner's repository and cluster name are required: they decide which Secrets this agent may prune")
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "certsync"
	// client-go's default (5 requests/s, burst 10) would make applying
	// 1,000 renewed Secrets take over three minutes.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	}
	// A request to an API server that accepts the connection and never
	// answers must not hang a pass.
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	// Built-in types travel as protobuf: for the API server, decoding a
	// created Secret from JSON costs more than storing it.
	typed := rest.CopyConfig(cfg)
	typed.ContentType = runtime.ContentTypeProtobuf
	typed.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	// The metadata list reads its pages itself and needs their headers
	// (see eachListed).
	typed.WrapTransport = transport.Wrappers(typed.WrapTransport, recordResponseHead)
	cs, err := kubernetes.NewForConfig(typed)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes metadata client: %w", err)
	}
	return &Client{cs: cs, meta: meta, owner: owner}, nil
}

// DataHash is the hash Apply records: over type and data, keys sorted.
func DataHash(typ corev1.SecretType, data map[string][]byte) string {
	h := sha256.New()
	h.Write([]byte(typ))
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		h.Write([]byte{0})
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write(data[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// owned returns s's labels and annotations with certsync's ownership
// label, instance and data hash added.
func (c *Client) owned(s *corev1.Secret) (labels, ann map[string]string) {
	labels = make(map[string]string, len(s.Labels)+2)
	maps.Copy(labels, s.Labels)
	labels[ManagedByLabel], labels[InstanceLabel] = ManagedByValue, c.owner.Instance()
	ann = make(map[string]string, len(s.Annotations)+2)
	maps.Copy(ann, s.Annotations)
	ann[AppliedHashAnnotation], ann[OwnerAnnotation] = DataHash(s.Type, s.Data), c.owner.String()
	return labels, ann
}

// Apply server-side-applies s with certsync's ownership label and data hash.
func (c *Client) Apply(ctx context.Context, s *corev1.Secret) error {
	labels, ann := c.owned(s)
	ac := corev1ac.Secret(s.Name, s.Namespace).
		WithType(s.Type).WithData(s.Data).WithLabels(labels).WithAnnotations(ann)
	live, err := c.apply(ctx, ac)
	if err != nil {
		return err
	}
	if !createdByRestore(live) {
		return nil
	}
	// The first apply to a Secret Create made: its fields are also owned
	// by certsync's Update entry, so a field this apply left out (ca.crt,
	// a label removed from secretTemplate) stayed. Fold that entry into
	// certsync's apply ownership, as kubectl does when it moves an object
	// from client-side to server-side apply, and apply again: that prunes
	// them. Once per restored Secret.
	patch, err := csaupgrade.UpgradeManagedFieldsPatch(live, sets.New(FieldManager), FieldManager)
	if err != nil {
		return fmt.Errorf("apply Secret %s/%s: take over the fields restore created: %w", s.Namespace, s.Name, err)
	}
	if patch != nil {
		// The patch names the resourceVersion it was made from: a Secret
		// changed meanwhile fails it (a conflict, retried next pass).
		if _, err := c.cs.CoreV1().Secrets(s.Namespace).Patch(ctx, s.Name, types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("apply Secret %s/%s: take over the fields restore created: %w", s.Namespace, s.Name, scrub(err))
		}
	}
	_, err = c.apply(ctx, ac)
	return err
}

func (c *Client) apply(ctx context.Context, ac *corev1ac.SecretApplyConfiguration) (*corev1.Secret, error) {
	ns, name := *ac.Namespace, *ac.Name
	live, err := c.cs.CoreV1().Secrets(ns).Apply(ctx, ac, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("namespace %q does not exist: create it (certsync applies Secrets into existing namespaces only)", ns)
	}
	if err != nil {
		return nil, fmt.Errorf("apply Secret %s/%s: %w", ns, name, scrub(err))
	}
	c.seen.remember(live)
	return live, nil
}

// createdByRestore reports whether certsync's fields of s are (also)
// recorded as an Update, which only Create makes.
func createdByRestore(s *corev1.Secret) bool {
	for _, m := range s.ManagedFields {
		if m.Manager == FieldManager && m.Operation == metav1.ManagedFieldsOperationUpdate && m.Subresource == "" {
			return true
		}
	}
	return false
}

// ErrExists is returned by Create when the Secret is already there.
var ErrExists = errors.New("Secret already exists")

// Create makes a Secret the cluster does not hold yet (a restore into a
// rebuilt cluster): the object Apply would write, created in one POST,
// which costs the API server about 40% less CPU than a server-side apply
// (no apply patch to decode, convert and merge). Its fields are recorded
// for field manager certsync as an Update; the first Apply takes them
// over as certsync's applied fields. A Secret that exists after all fails
// with ErrExists: Apply it.
func (c *Client) Create(ctx context.Context, s *corev1.Secret) error {
	labels, ann := c.owned(s)
	obj := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: labels, Annotations: ann},
		Type:       s.Type,
		Data:       s.Data,
	}
	created, err := c.cs.CoreV1().Secrets(s.Namespace).Create(ctx, obj, metav1.CreateOptions{FieldManager: FieldManager})
	switch {
	case err == nil:
		c.seen.remember(created)
		return nil
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("create Secret %s/%s: %w", s.Namespace, s.Name, ErrExists)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("namespace %q does not exist: create it (certsync applies Secrets into existing namespaces only)", s.Namespace)
	default:
		return fmt.Errorf("create Secret %s/%s: %w", s.Namespace, s.Name, scrub(err))
	}
}

// Get returns a Secret (tests, the demo table).
func (c *Client) Get(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	s, err := c.cs.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get Secret %s/%s: %w", namespace, name, scrub(err))
	}
	return s, nil
}

func (c *Client) selector() string {
	return ManagedByLabel + "=" + ManagedByValue + "," + InstanceLabel + "=" + c.owner.Instance()
}

// ErrNotOwned is returned when asked to delete a Secret this agent did not
// apply.
var ErrNotOwned = errors.New("Secret is not owned by this certsync agent (labels app.kubernetes.io/managed-by=certsync and its certsync.io/instance); refusing to delete it")

// Delete removes an owned Secret. A Secret that is already gone is fine.
func (c *Client) Delete(ctx context.Context, namespace, name string) error {
	s, err := c.cs.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete Secret %s/%s: %w", namespace, name, scrub(err))
	}
	if s.Labels[ManagedByLabel] != ManagedByValue || s.Labels[InstanceLabel] != c.owner.Instance() {
		return fmt.Errorf("delete Secret %s/%s: %w", namespace, name, ErrNotOwned)
	}
	uid := s.UID
	err = c.cs.CoreV1().Secrets(namespace).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	c.seen.forget(namespace, name)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Secret %s/%s: %w", namespace, name, scrub(err))
	}
	return nil
}

// Event records a Kubernetes Event on a Secret (reasons Issued, Renewed,
// Failed), as cert-manager does on its Certificates. An empty secretName
// records it on the namespace itself: a summary standing for many
// Secrets' Events (see reconcile.Config.EventsPerPass).
func (c *Client) Event(ctx context.Context, namespace, secretName, eventType, reason, message string) error {
	now := metav1.NewTime(time.Now())
	// The Namespace reference keeps its own name as namespace: the API
	// server requires an Event's namespace to match its object's.
	ref, prefix := corev1.ObjectReference{Kind: "Secret", APIVersion: "v1", Namespace: namespace, Name: secretName}, secretName
	if secretName == "" {
		ref, prefix = corev1.ObjectReference{Kind: "Namespace", APIVersion: "v1", Namespace: namespace, Name: namespace}, namespace
	}
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: prefix + ".", Namespace: namespace},
		InvolvedObject: ref,
		Type:           eventType, Reason: reason, Message: message,
		Source:         corev1.EventSource{Component: "certsync"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "certsync.io/certsync", ReportingInstance: "certsync",
	}
	if _, err := c.cs.CoreV1().Events(namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("record event on %s %s/%s: %w", ref.Kind, namespace, ref.Name, scrub(err))
	}
	return nil
}

// IsTransient reports errors worth retrying: the API server unreachable,
// overloaded or in conflict, as opposed to forbidden or invalid.
func IsTransient(err error) bool {
	switch {
	case apierrors.IsForbidden(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsUnauthorized(err), errors.Is(err, ErrNotOwned):
		return false
	}
	return true
}

// scrub keeps API errors from echoing a Secret's data back: status
// errors carry a message only, but an invalid object could be quoted.
func scrub(err error) error {
	var se *apierrors.StatusError
	if errors.As(err, &se) && apierrors.IsInvalid(err) {
		return fmt.Errorf("the API server rejected the Secret as invalid (%s)", se.ErrStatus.Reason)
	}
	return err
}

// Namespaces reports which of names exist.
func (c *Client) Namespaces(ctx context.Context, names []string) (map[string]bool, error) {
	out := make(map[string]bool, len(names))
	for _, name := range names {
		_, err := c.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			out[name] = true
		case apierrors.IsNotFound(err):
			out[name] = false
		default:
			return nil, fmt.Errorf("get namespace %s: %w", name, scrub(err))
		}
	}
	return out, nil
}

// CreateNamespace creates a namespace (restore --create-namespace); one
// that already exists is fine.
func (c *Client) CreateNamespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, scrub(err))
	}
	return nil
}
