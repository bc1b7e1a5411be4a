package deploy

// The chart's RBAC against the real certsync: the objects of `helm
// template` created in a real API server, the two Secrets a user creates,
// a token of the chart's ServiceAccount (TokenRequest), and the certsync
// binary started from the rendered Deployment (pod_test.go). It must issue,
// apply and prune with exactly those permissions and hold its Lease; with
// one verb taken away it must fail saying which.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/certsync/certsync/internal/testbed"
)

// A Git server behind basic auth; the token is the chart's git Secret.
const gitUser = "certsync-bot"

// verb is one verb on one resource, to take away from the chart's Roles.
type verb struct{ resource, verb string }

// TestServiceAccountRunsCertsync runs two passes per case as the chart's
// ServiceAccount: the first issues, commits and applies a certificate (and
// records an Issued Event), the second, after the Certificate is removed
// from Git, prunes its Secret. Taking one verb out of the Roles must make
// the pass that needs it fail with the API server's message naming the
// verb, the resource and the namespace.
func TestServiceAccountRunsCertsync(t *testing.T) {
	bin := certsyncBinary(t)
	gitToken := randomHex(t)
	git := testbed.StartGitHTTP(t, gitUser, gitToken)
	for i, tc := range []struct {
		name        string
		clusterWide bool
		remove      *verb
		// The pass that must fail (1: the one that issues and applies, 2:
		// the one that prunes; 0: none) and what it must say.
		failingPass int
		// Events are best effort: without them the pass succeeds and warns.
		eventsRefused bool
	}{
		{name: "chart RBAC"},
		{name: "chart RBAC cluster-wide", clusterWide: true},
		{name: "without list on secrets", remove: &verb{"secrets", "list"}, failingPass: 1},
		{name: "without patch on secrets", remove: &verb{"secrets", "patch"}, failingPass: 1},
		{name: "without create on secrets", remove: &verb{"secrets", "create"}, failingPass: 1},
		{name: "without get on secrets", remove: &verb{"secrets", "get"}, failingPass: 2},
		{name: "without delete on secrets", remove: &verb{"secrets", "delete"}, failingPass: 2},
		{name: "without create on events", remove: &verb{"events", "create"}, eventsRefused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := installChart(t, git, gitToken, fmt.Sprintf("certsync-rbac-%d", i), tc.clusterWide, tc.remove)
			refused := func(v *verb) string {
				return fmt.Sprintf("cannot %s resource %q in API group \"\" in the namespace %q", v.verb, v.resource, in.appNamespace)
			}

			// Pass 1 issues the certificate, commits it and applies its Secret.
			code, out := in.reconcile(t, bin)
			if tc.failingPass == 1 {
				if code == 0 || !strings.Contains(out, refused(tc.remove)) {
					t.Fatalf("without %s on %s: exit %d, and the output does not say %q:\n%s", tc.remove.verb, tc.remove.resource, code, refused(tc.remove), out)
				}
				return
			}
			if code != 0 {
				t.Fatalf("pass 1 (issue and apply) exited %d:\n%s", code, out)
			}
			s := in.secret(t)
			if s == nil || s.Labels["app.kubernetes.io/managed-by"] != "certsync" || len(s.Data["tls.crt"]) == 0 {
				t.Fatalf("after pass 1, Secret %s/web-tls is %+v: want certsync's, with tls.crt", in.appNamespace, s)
			}
			events := in.events(t)
			switch {
			case tc.eventsRefused && (len(events) > 0 || !strings.Contains(out, refused(tc.remove))):
				t.Errorf("without create on events: %d events recorded, and the output does not say %q:\n%s", len(events), refused(tc.remove), out)
			case !tc.eventsRefused && !slices.Contains(events, "Issued"):
				t.Errorf("events on the Secret: %q, want Issued", events)
			}

			// Pass 2 prunes: the Certificate is gone from Git.
			in.removeCertificate(t)
			code, out = in.reconcile(t, bin)
			if tc.failingPass == 2 {
				if code == 0 || !strings.Contains(out, refused(tc.remove)) {
					t.Fatalf("without %s on %s: exit %d, and the output does not say %q:\n%s", tc.remove.verb, tc.remove.resource, code, refused(tc.remove), out)
				}
				return
			}
			if code != 0 {
				t.Fatalf("pass 2 (prune) exited %d:\n%s", code, out)
			}
			if s := in.secret(t); s != nil {
				t.Errorf("pass 2 left Secret %s/web-tls in place: its Certificate is gone", in.appNamespace)
			}
		})
	}
}

// TestServiceAccountHoldsLease runs the agent itself, `certsync run` as the
// chart starts it, until it is ready: it took the Lease (the chart's Role
// in the release namespace), completed a pass, and on SIGTERM released the
// Lease and exited 0. Without create on leases it never becomes ready and
// says why.
func TestServiceAccountHoldsLease(t *testing.T) {
	bin := certsyncBinary(t)
	gitToken := randomHex(t)
	git := testbed.StartGitHTTP(t, gitUser, gitToken)

	t.Run("chart RBAC", func(t *testing.T) {
		in := installChart(t, git, gitToken, "certsync-lease", false, nil)
		agent := in.start(t, bin)
		if err := agent.waitReady(); err != nil {
			t.Fatalf("the agent never became ready: %v\n%s", err, agent.output())
		}
		lease, err := adminClient(t).CoordinationV1().Leases(in.namespace).Get(context.Background(), in.release, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the ready agent holds no Lease %s in %s: %v\n%s", in.release, in.namespace, err, agent.output())
		}
		if h := lease.Spec.HolderIdentity; h == nil || *h != in.pod.name {
			t.Errorf("Lease holder %v, want the Pod %s", lease.Spec.HolderIdentity, in.pod.name)
		}
		if s := in.secret(t); s == nil {
			t.Errorf("the ready agent applied no Secret %s/web-tls", in.appNamespace)
		}
		if code := agent.stop(); code != 0 {
			t.Fatalf("the agent exited %d on SIGTERM:\n%s", code, agent.output())
		}
		lease, err = adminClient(t).CoordinationV1().Leases(in.namespace).Get(context.Background(), in.release, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
			t.Errorf("after SIGTERM the Lease is still held by %q: release needs update on it\n%s", *h, agent.output())
		}
	})

	t.Run("without create on leases", func(t *testing.T) {
		in := installChart(t, git, gitToken, "certsync-lease-refused", false, &verb{"leases", "create"})
		agent := in.start(t, bin)
		want := fmt.Sprintf("cannot create resource \"leases\" in API group \"coordination.k8s.io\" in the namespace %q", in.namespace)
		err := agent.waitFor(func() bool { return strings.Contains(agent.output(), want) })
		if err != nil {
			t.Fatalf("without create on leases the agent does not say %q (%v):\n%s", want, err, agent.output())
		}
		if agent.ready() {
			t.Error("the agent is ready without a Lease")
		}
		agent.stop()
	})
}

// installed is one `helm install` in the test API server.
type installed struct {
	release, namespace string
	// appNamespace is where the Certificate's Secret goes.
	appNamespace string
	git          *testbed.GitHTTP
	bare         string
	pod          *pod
	kubeconfig   string
}

// installChart does what deploy/README.md tells a user to do, in a fresh
// namespace named after the release: the two Secrets, then the chart's
// objects (as `helm install` would create them), with one verb taken out
// of the Roles when remove is set. The repository holds a selfSigned
// ClusterIssuer and one Certificate in the namespace <release>-shop, which
// the chart's rbac.secretNamespaces (or rbac.clusterWide) grants.
func installChart(t *testing.T, git *testbed.GitHTTP, gitToken, release string, clusterWide bool, remove *verb) *installed {
	t.Helper()
	in := &installed{release: release, namespace: release, appNamespace: release + "-shop", git: git}
	ensureNamespace(t, in.namespace, restricted)
	ensureNamespace(t, in.appNamespace, nil)
	admin := adminClient(t)
	ctx := context.Background()

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	seed := t.TempDir()
	writeFiles(t, seed, map[string]string{
		".sops.yaml": fmt.Sprintf(`creation_rules:
  - path_regex: ^(secrets|accounts|credentials)/.*\.yaml$
    encrypted_regex: ^(data|stringData)$
    age: %s
`, id.Recipient()),
		"issuers/selfsigned.yaml": `apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: selfsigned
spec:
  selfSigned: {}
`,
		"certificates/web.yaml": fmt.Sprintf(`apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: web
  namespace: %[1]s
spec:
  secretName: web-tls
  dnsNames: [web.%[1]s.svc]
  privateKey: {algorithm: ECDSA, size: 256}
  issuerRef: {name: selfsigned, kind: ClusterIssuer}
`, in.appNamespace),
	})
	in.bare = git.CreateRepo(release)
	git.Seed(release, seed, "main")

	values := chartValues("repository.url", git.URL(release), "cluster", "test")
	if clusterWide {
		setPath(values, "rbac.clusterWide", true)
	} else {
		setPath(values, "rbac.secretNamespaces", []any{in.appNamespace})
	}
	objs := helmTemplate(t, release, in.namespace, values)
	if remove != nil {
		removeVerb(t, objs, *remove)
	}

	// The two Secrets of the walkthrough, keys as the chart expects them.
	for name, data := range map[string]map[string][]byte{
		"certsync-git": {"username": []byte(gitUser), "password": []byte(gitToken)},
		"certsync-age": {"age.agekey": []byte("# certsync test key\n" + id.String() + "\n")},
	} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: in.namespace}, Data: data}
		if _, err := admin.CoreV1().Secrets(in.namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create Secret %s: %v", name, err)
		}
	}
	c := newApplier(t, sharedAPI(t).Config)
	for _, o := range objs {
		if err := c.apply(o, false); err != nil {
			t.Fatalf("create %s: %v", key(o), err)
		}
	}
	m := newManifest(t, objs)
	in.kubeconfig = serviceAccountKubeconfig(t, in.namespace, m.deployment.Spec.Template.Spec.ServiceAccountName)
	in.pod = newPod(t, m, admin, release+"-6d4cf56db6-x7k2p")
	return in
}

// removeVerb takes a verb out of every rule of the rendered Roles and
// ClusterRoles that grants it on the resource.
func removeVerb(t *testing.T, objs []*unstructured.Unstructured, v verb) {
	t.Helper()
	removed := false
	for _, o := range ofKind(objs, "Role", "ClusterRole") {
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		var kept []any
		for _, r := range rules {
			r := r.(map[string]any)
			resources, _, _ := unstructured.NestedStringSlice(r, "resources")
			verbs, _, _ := unstructured.NestedStringSlice(r, "verbs")
			if slices.Equal(resources, []string{v.resource}) && slices.Contains(verbs, v.verb) {
				verbs = slices.DeleteFunc(verbs, func(s string) bool { return s == v.verb })
				_ = unstructured.SetNestedStringSlice(r, verbs, "verbs")
				removed = true
			}
			if len(verbs) > 0 { // a rule without verbs is invalid: drop it
				kept = append(kept, r)
			}
		}
		_ = unstructured.SetNestedSlice(o.Object, kept, "rules")
	}
	if !removed {
		t.Fatalf("no rendered rule grants %s on %s", v.verb, v.resource)
	}
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as the
// ServiceAccount with a token from the TokenRequest API, as the Pod's
// projected token would.
func serviceAccountKubeconfig(t *testing.T, namespace, name string) string {
	t.Helper()
	expiry := int64(3600)
	tr, err := adminClient(t).CoreV1().ServiceAccounts(namespace).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for ServiceAccount %s/%s: %v", namespace, name, err)
	}
	api := sharedAPI(t).Config
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: api.Host, CertificateAuthorityData: api.CAData}
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "sa"}
	cfg.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// reconcile runs one pass with the agent's settings (its subcommand
// replaced by `reconcile`) and the ServiceAccount's kubeconfig in place of
// the in-cluster one. It returns the exit status and the combined output.
func (in *installed) reconcile(t *testing.T, bin string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := in.pod.command(ctx, t, bin, "reconcile", "--kubeconfig", in.kubeconfig)
	b, err := cmd.CombinedOutput()
	out := unquote(string(b))
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out
	case errors.As(err, &exit):
		return exit.ExitCode(), out
	}
	t.Fatalf("run certsync reconcile: %v\n%s", err, out)
	return 0, ""
}

// secret returns the Certificate's Secret, nil when there is none.
func (in *installed) secret(t *testing.T) *corev1.Secret {
	t.Helper()
	s, err := adminClient(t).CoreV1().Secrets(in.appNamespace).Get(context.Background(), "web-tls", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// events returns the reasons of the Events recorded on the Secret.
func (in *installed) events(t *testing.T) []string {
	t.Helper()
	list, err := adminClient(t).CoreV1().Events(in.appNamespace).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=web-tls"})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range list.Items {
		reasons = append(reasons, e.Reason)
	}
	return reasons
}

// removeCertificate deletes the Certificate from the repository, as a
// person retiring it would, so the next pass prunes its file and Secret.
func (in *installed) removeCertificate(t *testing.T) {
	t.Helper()
	work := t.TempDir()
	gitRun(t, "", "clone", "--quiet", in.bare, work)
	gitRun(t, work, "rm", "--quiet", "certificates/web.yaml")
	gitRun(t, work, "-c", "user.name=Platform Team", "-c", "user.email=platform@example.com", "commit", "--quiet", "-m", "Retire web")
	gitRun(t, work, "push", "--quiet", "origin", "main")
}

func gitRun(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(testbed.Git(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
