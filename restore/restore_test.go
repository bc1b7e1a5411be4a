package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/certsync/certsync/committed"
)

// The decisions of a restore, with plain values; TestRestoreFromGitAlone
// (cmd/certsync) proves it against a real API server and real SOPS.

type memTree map[string]string

func (t memTree) Paths() []string {
	var out []string
	for p := range t {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func (t memTree) ReadFile(p string) ([]byte, error) {
	c, ok := t[p]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return []byte(c), nil
}

// plainDecrypter "decrypts" by returning the file; "broken" files fail.
type plainDecrypter struct{}

func (plainDecrypter) DecryptDocument(_ context.Context, path string, b []byte) (map[string]any, error) {
	if strings.Contains(path, "broken") {
		return nil, errors.New("MAC mismatch")
	}
	var doc map[string]any
	err := yaml.Unmarshal(b, &doc)
	return doc, err
}

type fakeCluster struct {
	mu         sync.Mutex
	live       []Live
	namespaces map[string]bool
	// foreign Secrets exist without being certsync's (not in live).
	foreign map[string]bool
	// applied and created are "namespace/name", created also listed in
	// applied (both put the Secret in place).
	applied, created []string
}

func (c *fakeCluster) Apply(_ context.Context, s *corev1.Secret) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applied = append(c.applied, s.Namespace+"/"+s.Name)
	return nil
}

func (c *fakeCluster) Create(_ context.Context, s *corev1.Secret) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := s.Namespace + "/" + s.Name
	for _, l := range c.live {
		if l.Namespace+"/"+l.Name == key {
			return fmt.Errorf("create %s: the restore must apply Secrets the cluster holds", key)
		}
	}
	if c.foreign[key] {
		return fmt.Errorf("create Secret %s: %w", key, ErrExists)
	}
	c.applied = append(c.applied, key)
	c.created = append(c.created, key)
	return nil
}
func (c *fakeCluster) Live(context.Context) ([]Live, error) { return c.live, nil }
func (c *fakeCluster) Namespaces(_ context.Context, names []string) (map[string]bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]bool{}
	for _, n := range names {
		out[n] = c.namespaces[n]
	}
	return out, nil
}
func (c *fakeCluster) CreateNamespace(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.namespaces[name] = true
	return nil
}

func secretFile(ns, name, serial string) (string, string) {
	return committed.SecretPath("prod", ns, name), fmt.Sprintf(`apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata:
  name: %s
  namespace: %s
  annotations:
    certsync.io/serial: "%s"
data:
  tls.crt: Q0VSVA==
  tls.key: S0VZ
`, name, ns, serial)
}

func TestRun(t *testing.T) {
	tree := memTree{}
	for _, s := range [][3]string{{"shop", "web-tls", "01"}, {"shop", "api-tls", "02"}, {"billing", "pay-tls", "03"}, {"shop", "broken-tls", "04"}} {
		p, c := secretFile(s[0], s[1], s[2])
		tree[p] = c
	}
	p, c := secretFile("shop", "other-cluster-tls", "05")
	tree[strings.Replace(p, "/prod/", "/staging/", 1)] = c
	_, c = secretFile("shop", "web-tls", "06") // moved by hand: its metadata names another Secret
	tree[committed.SecretPath("prod", "shop", "moved-tls")] = c

	tests := []struct {
		name           string
		live           []Live
		namespaces     map[string]bool
		create         bool
		foreign        map[string]bool
		wantApplied    []string
		wantCreated    []string
		wantUnchanged  int
		wantFailed     []string // substrings, one per failure
		wantNamespaces []string
	}{
		{name: "empty cluster, namespaces missing: reported, nothing created",
			namespaces: map[string]bool{}, wantFailed: []string{"namespace billing does not exist", "namespace shop does not exist", "namespace shop does not exist", "does not match the path", "namespace shop does not exist"}},
		{name: "empty cluster, --create-namespace", namespaces: map[string]bool{}, create: true,
			wantApplied: []string{"billing/pay-tls", "shop/api-tls", "shop/web-tls"}, wantCreated: []string{"billing/pay-tls", "shop/api-tls", "shop/web-tls"},
			wantFailed: []string{"MAC mismatch", "does not match the path"}, wantNamespaces: []string{"billing", "shop"}},
		{name: "a Secret someone else made under that name is applied over",
			namespaces: map[string]bool{"shop": true, "billing": true}, foreign: map[string]bool{"shop/web-tls": true},
			wantApplied: []string{"billing/pay-tls", "shop/api-tls", "shop/web-tls"}, wantCreated: []string{"billing/pay-tls", "shop/api-tls"},
			wantFailed: []string{"MAC mismatch", "does not match the path"}},
		{name: "current Secrets are left alone; stale and edited ones re-applied",
			namespaces: map[string]bool{"shop": true, "billing": true},
			live: []Live{
				{Namespace: "shop", Name: "web-tls", Serial: "01"},                   // current
				{Namespace: "shop", Name: "api-tls", Serial: "00"},                   // older certificate
				{Namespace: "billing", Name: "pay-tls", Serial: "03", Drifted: true}, // edited in the cluster
			},
			wantApplied: []string{"billing/pay-tls", "shop/api-tls"}, wantUnchanged: 1, wantFailed: []string{"MAC mismatch", "does not match the path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeCluster{live: tt.live, namespaces: tt.namespaces, foreign: tt.foreign}
			calls := 0
			sum, err := Run(context.Background(), tree, plainDecrypter{}, c, Options{Cluster: "prod", CreateNamespaces: tt.create, Progress: func(done, total int) {
				calls++
				if total != 5 || done > total {
					t.Errorf("progress %d/%d, want x/5", done, total)
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(c.applied)
			if strings.Join(c.applied, " ") != strings.Join(tt.wantApplied, " ") || sum.Applied != len(tt.wantApplied) {
				t.Errorf("applied %v (summary %d), want %v", c.applied, sum.Applied, tt.wantApplied)
			}
			sort.Strings(c.created)
			if strings.Join(c.created, " ") != strings.Join(tt.wantCreated, " ") {
				t.Errorf("created %v, want %v", c.created, tt.wantCreated)
			}
			if sum.Unchanged != tt.wantUnchanged {
				t.Errorf("unchanged %d, want %d", sum.Unchanged, tt.wantUnchanged)
			}
			var failed []string
			for _, f := range sum.Failed {
				failed = append(failed, f.Err.Error())
			}
			if len(failed) != len(tt.wantFailed) {
				t.Fatalf("failed %q, want %q", failed, tt.wantFailed)
			}
			for i, want := range tt.wantFailed {
				if !strings.Contains(failed[i], want) {
					t.Errorf("failure %d = %q, want it to say %q", i, failed[i], want)
				}
			}
			if strings.Join(sum.CreatedNamespaces, ",") != strings.Join(tt.wantNamespaces, ",") {
				t.Errorf("created namespaces %v, want %v", sum.CreatedNamespaces, tt.wantNamespaces)
			}
			if calls == 0 && len(tt.wantApplied)+len(tt.wantFailed) > 0 {
				t.Error("no progress reported")
			}
		})
	}
}
