package reconcile

// The Rerender action run by passes with in-memory Git, CA and cluster:
// every copy rewritten, nothing ordered, the cluster given the new render,
// and a keyless agent falling back as before. The end-to-end proof with
// Pebble, SOPS and an API server is cmd/certsync/rerender_test.go.

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/render"
)

// recordingCluster keeps what was applied, as an API server would after a
// server-side apply by the only field manager, and reports it back.
type recordingCluster struct {
	mu      sync.Mutex
	secrets map[string]*corev1.Secret
	applies int
}

func (c *recordingCluster) Apply(_ context.Context, s *corev1.Secret) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.secrets == nil {
		c.secrets = map[string]*corev1.Secret{}
	}
	c.secrets[s.Namespace+"/"+s.Name] = s.DeepCopy()
	c.applies++
	return nil
}

func (c *recordingCluster) Observe(context.Context) ([]ObservedSecret, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []ObservedSecret
	for _, s := range c.secrets {
		out = append(out, ObservedSecret{Namespace: s.Namespace, Name: s.Name, Annotations: maps.Clone(s.Annotations)})
	}
	return out, nil
}

func (c *recordingCluster) Delete(_ context.Context, ns, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.secrets, ns+"/"+name)
	return nil
}

// messageRepo is memRepo that keeps the message of each commit.
type messageRepo struct {
	*memRepo
	messages []string
}

func (r *messageRepo) Commit(ctx context.Context, parent Tree, changes []FileChange, msg string) (Tree, error) {
	r.messages = append(r.messages, msg)
	return r.memRepo.Commit(ctx, parent, changes, msg)
}

// edit commits files to the remote as a person would.
func (r *memRepo) edit(files map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := &memTree{id: r.remote.id + "+edit", files: maps.Clone(r.remote.files), parent: r.remote}
	for p, c := range files {
		t.files[p] = []byte(c)
	}
	r.remote, r.local = t, t
}

// decryptCommitted reads a committed Secret of the remote.
func decryptCommitted(t *testing.T, r *memRepo, path string) (*corev1.Secret, committed.Certificate) {
	t.Helper()
	content, err := r.remote.ReadFile(path)
	if err != nil {
		t.Fatalf("%s not committed", path)
	}
	rec, err := committed.Read(path, content)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := fakeEnc{}.Decrypt(context.Background(), path, content)
	s, err := render.Parse(plain)
	if err != nil {
		t.Fatal(err)
	}
	if err := render.Verify(s, rec); err != nil {
		t.Errorf("%s: %v", path, err)
	}
	return s, rec
}

// passwordSecret is a repository Secret as fakeEnc writes it.
func passwordSecret(t *testing.T, password string) string {
	t.Helper()
	plain := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: p12\n  namespace: ns\ntype: Opaque\ndata:\n  password: " + base64.StdEncoding.EncodeToString([]byte(password)) + "\n"
	out, err := fakeEnc{}.Encrypt(context.Background(), "p12.yaml", []byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

const twoClusters = `apiVersion: certsync.io/v1alpha1
kind: Settings
clusters:
- name: a
- name: b
`

// webCert is a Certificate delivered to clusters a and b, with extra
// spec lines (keystores, secretTemplate).
func webCert(extra string) string {
	return `apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: web
  namespace: ns
  annotations: {certsync.io/clusters: "a,b"}
spec:
  secretName: web-tls
  dnsNames: [web.example.test]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: le, kind: ClusterIssuer}
` + extra
}

func TestRerenderRun(t *testing.T) {
	repo := &messageRepo{memRepo: newMemRepo(map[string]string{"le.yaml": testIssuer, "certsync.yaml": twoClusters, "web.yaml": webCert("")})}
	ca := newTestCA(t)
	cluster := &recordingCluster{}
	now := t0
	r, err := New(Config{
		Repo:       repo,
		Encryption: func([]byte) (Encrypter, error) { return fakeEnc{}, nil },
		Issuers: func(context.Context, *declared.Issuer, crypto.Signer, issuer.SecretGetter) (issuer.Issuer, error) {
			return ca, nil
		},
		Cluster:     cluster,
		ClusterName: "a",
		Clock:       func() time.Time { return now },
		Agent:       "agent-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	pass := func(what string) *Result {
		t.Helper()
		now = now.Add(time.Hour)
		res, err := r.Reconcile(context.Background(), Options{})
		if err != nil || len(res.Problems) > 0 {
			t.Fatalf("%s: %v %v", what, err, res.Problems)
		}
		return res
	}
	paths := []string{committed.SecretPath("a", "ns", "web-tls"), committed.SecretPath("b", "ns", "web-tls")}

	pass("issue")
	if ca.orders != 1 {
		t.Fatalf("orders %d after issuing", ca.orders)
	}
	issuedSecret, issuedRec := decryptCommitted(t, repo.memRepo, paths[0])

	type check struct {
		label    string // value of the template label "team", "" for none
		password string // the keystore's password, "" for no keystore
	}
	verify := func(t *testing.T, want check) {
		t.Helper()
		if ca.orders != 1 {
			t.Fatalf("orders %d: a re-render must order nothing", ca.orders)
		}
		for _, path := range paths {
			s, rec := decryptCommitted(t, repo.memRepo, path)
			if rec.Serial != issuedRec.Serial || !bytes.Equal(s.Data[corev1.TLSPrivateKeyKey], issuedSecret.Data[corev1.TLSPrivateKeyKey]) ||
				!bytes.Equal(s.Data[corev1.TLSCertKey], issuedSecret.Data[corev1.TLSCertKey]) || !rec.IssuedAt.Equal(issuedRec.IssuedAt) {
				t.Errorf("%s: serial %s (issued %s), or tls.key, tls.crt or issued-at changed", path, rec.Serial, issuedRec.Serial)
			}
			if got, ok := s.Labels["team"]; got != want.label || ok != (want.label != "") {
				t.Errorf("%s: label team = %q (present %v), want %q", path, got, ok, want.label)
			}
			p12, has := s.Data[render.KeyPKCS12]
			switch {
			case want.password == "" && has:
				t.Errorf("%s: keystore.p12 left after the keystore was removed", path)
			case want.password != "":
				if _, leaf, _, err := pkcs12.DecodeChain(p12, want.password); err != nil || leaf.SerialNumber.Text(16) != strings.TrimLeft(issuedRec.Serial, "0") {
					t.Errorf("%s: keystore.p12 does not open with the password, or holds another certificate: %v", path, err)
				}
			}
		}
		own, _ := decryptCommitted(t, repo.memRepo, paths[0])
		live := cluster.secrets["ns/web-tls"]
		if live == nil || !equalSecretData(live.Data, own.Data) || !maps.Equal(live.Labels, own.Labels) || !maps.Equal(live.Annotations, own.Annotations) {
			t.Errorf("the cluster's Secret is not the committed one")
		}
	}
	idle := func(t *testing.T) {
		t.Helper()
		applies := cluster.applies
		if res := pass("idle"); res.Commit != "" || res.Plan.HasChanges() || cluster.applies != applies {
			t.Fatalf("a pass after the re-render changed something: commit %q, plan %s", res.Commit, describe(res.Plan))
		}
	}

	t.Run("keystore and label added", func(t *testing.T) {
		repo.edit(map[string]string{"p12.yaml": passwordSecret(t, "first"), "web.yaml": webCert(`  secretTemplate: {labels: {team: web}}
  keystores:
    pkcs12: {create: true, passwordSecretRef: {name: p12, key: password}}
`)})
		res := pass("re-render")
		if got := describe(res.Plan); got != "Rerender "+paths[0]+" +"+paths[1] {
			t.Fatalf("plan %s", got)
		}
		if reason := res.Plan.Actions[0].Reason; !strings.Contains(reason, "keystores changed: pkcs12 added") || !strings.Contains(reason, "secretTemplate labels changed") {
			t.Errorf("reason %q", reason)
		}
		verify(t, check{label: "web", password: "first"})
		msg := repo.messages[len(repo.messages)-1]
		for _, want := range []string{"certsync: re-render 1 certificate", "Certificate: ns/web", "Serial: " + issuedRec.Serial, "Reason: re-rendered: keystores changed: pkcs12 added"} {
			if !strings.Contains(msg, want) {
				t.Errorf("commit message lacks %q:\n%s", want, msg)
			}
		}
		idle(t)
	})
	t.Run("keystore password changed in its Secret", func(t *testing.T) {
		repo.edit(map[string]string{"p12.yaml": passwordSecret(t, "second")})
		res := pass("new password")
		if res.Plan.Count(Rerender) != 1 || !strings.Contains(res.Plan.Actions[0].Reason, "keystore password Secret ns/p12 changed") {
			t.Fatalf("plan %s: %v", describe(res.Plan), res.Plan.Actions)
		}
		verify(t, check{label: "web", password: "second"})
		idle(t)
	})
	t.Run("keystore and label removed", func(t *testing.T) {
		repo.edit(map[string]string{"web.yaml": webCert("")})
		pass("removed")
		verify(t, check{})
		idle(t)
	})
}

// noKeyEnc is fakeEnc for an agent that holds the key of its ACME
// account but not the clusters' keys its Secrets are encrypted to.
type noKeyEnc struct{ fakeEnc }

func (e noKeyEnc) Decrypt(ctx context.Context, path string, c []byte) ([]byte, error) {
	if strings.HasPrefix(path, committed.SecretsDir) {
		return nil, ErrNoKey
	}
	return e.fakeEnc.Decrypt(ctx, path, c)
}

// An agent that cannot decrypt the Secrets it commits (an issuer given
// only the clusters' recipients) re-issues for changed outputs, as
// before, and orders nothing for a template change.
func TestRerenderWithoutKey(t *testing.T) {
	repo := newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a")})
	ca := newTestCA(t)
	now := t0
	pass := func(enc Encrypter) *Result {
		t.Helper()
		r, err := New(Config{
			Repo:       repo,
			Encryption: func([]byte) (Encrypter, error) { return enc, nil },
			Issuers: func(context.Context, *declared.Issuer, crypto.Signer, issuer.SecretGetter) (issuer.Issuer, error) {
				return ca, nil
			},
			Clock: func() time.Time { return now },
			Agent: "agent-1",
		})
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour)
		res, err := r.Reconcile(context.Background(), Options{})
		if err != nil || len(res.Problems) > 0 {
			t.Fatalf("%v %v", err, res.Problems)
		}
		return res
	}
	pass(fakeEnc{})

	repo.edit(map[string]string{"a.yaml": testCert("a") + "  secretTemplate: {labels: {team: a}}\n"})
	head := repo.remote
	res := pass(noKeyEnc{})
	if res.Commit != "" || ca.orders != 1 || repo.remote != head || len(res.Plan.Warnings) != 1 || !strings.Contains(res.Plan.Warnings[0], "not re-rendering 1 certificate") {
		t.Fatalf("template change without a key: commit %q, orders %d, plan %s, warnings %v", res.Commit, ca.orders, describe(res.Plan), res.Plan.Warnings)
	}

	repo.edit(map[string]string{"a.yaml": testCert("a") + "  secretTemplate: {labels: {team: a}}\n  additionalOutputFormats: [{type: DER}]\n"})
	res = pass(noKeyEnc{})
	if ca.orders != 2 || res.Plan.Count(Reissue) != 1 || !strings.Contains(res.Plan.Actions[0].Reason, "holds no key to decrypt") {
		t.Fatalf("outputs change without a key: orders %d, plan %s", ca.orders, describe(res.Plan))
	}
	// The re-issued Secret has both; a keyed agent then finds nothing to do.
	s, _ := decryptCommitted(t, repo, committed.SecretPath("default", "ns", "a-tls"))
	if s.Labels["team"] != "a" || len(s.Data[render.KeyDER]) == 0 {
		t.Errorf("re-issued Secret: labels %v, key.der %d bytes", s.Labels, len(s.Data[render.KeyDER]))
	}
	if res := pass(fakeEnc{}); res.Plan.HasChanges() {
		t.Errorf("after the re-issue: %s", describe(res.Plan))
	}
}

func equalSecretData(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, bytes.Equal)
}
