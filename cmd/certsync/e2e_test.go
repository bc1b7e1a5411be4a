package main

// End-to-end tests: the certsync command against real parts only — Pebble
// (ACME), git http-backend and an SSH server (Git), kube-apiserver + etcd
// (envtest), the sops library and the real sops CLI.

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/internal/testbed"
	"github.com/certsync/certsync/pki"
	"github.com/certsync/certsync/render"
)

// One ACME CA per test process: challtestsrv allows only one.
var (
	acmeOnce   sync.Once
	sharedACME *testbed.ACME
	sharedDNS  *testbed.ExampleDNS
	http01Port int
)

// TestMain sets what an operator of the test DNS server would: it has no
// propagation delay, so lego's rfc2136 provider need not wait 60 s between
// the names of one order (apex and wildcard share a TXT record name).
//
// With CERTSYNC_TEST_MAIN=1 the test binary is the certsync command: the
// fault tests run it as a child process they can kill.
func TestMain(m *testing.M) {
	if os.Getenv("CERTSYNC_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Setenv("RFC2136_SEQUENCE_INTERVAL", "1")
	os.Exit(m.Run())
}

type processTB struct{ testing.TB }

// Cleanup is ignored: the shared CA lives as long as the test process.
func (processTB) Cleanup(func()) {}

func theACME(t testing.TB) (*testbed.ACME, int) {
	t.Helper()
	acmeOnce.Do(func() {
		http01Port = freePort(t)
		sharedACME = testbed.StartACME(processTB{t}, testbed.ACMEOptions{HTTP01Port: http01Port})
		sharedDNS = sharedACME.StartExampleDNS(processTB{t})
	})
	if sharedACME == nil {
		t.Fatal("the shared ACME CA failed to start in an earlier test")
	}
	return sharedACME, http01Port
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// bed is one test's world: a Git server with the example repository, an
// age key, and the flags that point certsync at them.
type bed struct {
	acme    *testbed.ACME
	git     *testbed.GitHTTP
	bare    string
	keyFile string
	args    []string
	env     map[string]string
	dir     string
}

const (
	gitUser = "certsync-bot"
	gitPass = "s3cret-token"
)

// newBed copies examples/repo (plus extra files), points it at the local
// CA and a fresh age key, and seeds it into a Git server behind basic auth.
func newBed(t *testing.T, extra map[string]string) *bed {
	t.Helper()
	a, port := theACME(t)
	b := &bed{acme: a, dir: t.TempDir(), env: map[string]string{"CERTSYNC_GIT_PASSWORD": gitPass}}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	b.keyFile = filepath.Join(b.dir, "age.key")
	writeFile(t, b.keyFile, "# test key\n"+id.String()+"\n")
	repo := filepath.Join(b.dir, "seed")
	testbed.WriteExample(t, filepath.Join("..", "..", "examples", "repo"), repo, a, sharedDNS, id.Recipient().String())
	for p, c := range extra {
		writeFile(t, filepath.Join(repo, p), c)
	}
	caFile := filepath.Join(b.dir, "acme-ca.pem")
	writeFile(t, caFile, string(a.ServerCAPEM))
	b.git = testbed.StartGitHTTP(t, gitUser, gitPass)
	b.bare = b.git.CreateRepo("certs")
	b.git.Seed("certs", repo, "main")
	b.args = []string{
		"--repo", b.git.URL("certs"), "--branch", "main", "--git-username", gitUser,
		"--cache-dir", filepath.Join(b.dir, "clone"),
		"--age-key-file", b.keyFile,
		"--http01-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--acme-ca-file", caFile,
		"--dns01-recursive-nameservers", a.DNSAddr,
		// The test DNS server serves no zones (no SOA), so lego's
		// propagation check cannot find one; Pebble asks it directly.
		"--dns01-check-propagation=false",
		"--log-level", "warn",
	}
	return b
}

// withCluster starts an API server with the example's namespaces and
// points the bed's runs at it.
func (b *bed) withCluster(t *testing.T) *testbed.APIServer {
	t.Helper()
	api := testbed.StartAPIServer(t)
	for _, ns := range []string{"shop", "api"} {
		api.CreateNamespace(t, ns)
	}
	b.args = append(b.args, "--kubeconfig", api.Kubeconfig)
	return api
}

func (b *bed) run(t *testing.T, extra ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string { return b.env[k] }
	code = run(context.Background(), append([]string{"reconcile"}, append(slices.Clone(b.args), extra...)...), getenv, &out, &errb)
	return code, out.String(), errb.String()
}

// head is the branch head on the server.
func (b *bed) head(t *testing.T) string {
	return strings.TrimSpace(gitCmd(t, b.bare, "rev-parse", "refs/heads/main"))
}

// file reads a file of the branch head on the server.
func (b *bed) file(t *testing.T, path string) []byte {
	t.Helper()
	out, err := exec.Command(testbed.Git(t), "-C", b.bare, "show", "main:"+path).Output()
	if err != nil {
		t.Fatalf("%s is not committed on main: %v", path, err)
	}
	return out
}

// sopsDecrypt decrypts with the real sops CLI, as a user or Flux would.
func (b *bed) sopsDecrypt(t *testing.T, path string) *corev1.Secret {
	t.Helper()
	f := filepath.Join(t.TempDir(), "secret.yaml")
	writeFile(t, f, string(b.file(t, path)))
	cmd := exec.Command(testbed.Tool(t, "sops"), "--decrypt", f)
	cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE="+b.keyFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sops --decrypt %s: %v: %s", path, err, stderr.String())
	}
	s, err := render.Parse(out)
	if err != nil {
		t.Fatalf("decrypted %s: %v", path, err)
	}
	return s
}

type wantCert struct {
	ns, secret string
	dnsNames   []string
	key        string
}

var exampleCerts = []wantCert{
	{"shop", "example-com-tls", []string{"example.com", "*.example.com"}, "RSA-2048"},
	{"shop", "checkout-tls", []string{"checkout.shop.test"}, "ECDSA-256"},
	{"api", "api-tls", []string{"api.shop.test", "api-v2.shop.test"}, "RSA-2048"},
}

func TestReconcileEndToEnd(t *testing.T) {
	b := newBed(t, nil)
	api := b.withCluster(t)
	seed := b.head(t)

	// A dry run plans and changes nothing.
	ordersBefore := b.acme.Orders()
	code, out, errOut := b.run(t, "--dry-run")
	if code != 0 || !strings.Contains(out, "would issue") || b.head(t) != seed || b.acme.Orders() != ordersBefore {
		t.Fatalf("dry run: code %d, head moved %v, orders +%d\n%s\n%s", code, b.head(t) != seed, b.acme.Orders()-ordersBefore, out, errOut)
	}

	code, out, errOut = b.run(t)
	if code != 0 {
		t.Fatalf("reconcile exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	first := b.head(t)
	if first == seed {
		t.Fatalf("no commit pushed\n%s", out)
	}
	if got := b.acme.Orders() - ordersBefore; got != len(exampleCerts) {
		t.Errorf("ACME orders = %d, want %d", got, len(exampleCerts))
	}
	msg := gitCmd(t, b.bare, "log", "-1", "--format=%B", "main")
	for _, trailer := range []string{"Certificate: shop/example-com", "Certificate: api/api", "Serial: ", "Not-After: "} {
		if !strings.Contains(msg, trailer) {
			t.Errorf("commit message lacks %q:\n%s", trailer, msg)
		}
	}

	for _, want := range exampleCerts {
		path := committed.SecretPath("default", want.ns, want.secret)
		t.Run(path, func(t *testing.T) {
			s := b.sopsDecrypt(t, path)
			checkTLSSecret(t, s, want, b.acme)
			live, err := kube(t, api).CoreV1().Secrets(want.ns).Get(context.Background(), want.secret, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("Secret not in the cluster: %v", err)
			}
			if live.Type != s.Type || !equalData(live.Data, s.Data) {
				t.Errorf("cluster Secret differs from the one in Git")
			}
			for k, v := range s.Annotations {
				if live.Annotations[k] != v {
					t.Errorf("cluster annotation %s = %q, Git has %q", k, live.Annotations[k], v)
				}
			}
			if live.Labels[committed.ManagedByLabel] != committed.ManagedByValue {
				t.Errorf("cluster Secret lacks the ownership label")
			}
		})
	}
	b.file(t, committed.AccountPath("", "letsencrypt-staging-account"))
	events, err := kube(t, api).CoreV1().Events("shop").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	issuedEvents := 0
	for _, e := range events.Items {
		if e.Reason == "Issued" && e.InvolvedObject.Kind == "Secret" {
			issuedEvents++
		}
	}
	if issuedEvents != 2 {
		t.Errorf("Issued events in shop = %d, want 2", issuedEvents)
	}

	// status reads Git alone: no key, no cluster.
	var statusOut, statusErr bytes.Buffer
	statusArgs := []string{"status", "--repo", b.git.URL("certs"), "--git-username", gitUser, "--cache-dir", filepath.Join(b.dir, "status-clone")}
	if code := run(context.Background(), statusArgs, func(k string) string { return b.env[k] }, &statusOut, &statusErr); code != 0 {
		t.Fatalf("status exited %d: %s", code, statusErr.String())
	}
	for _, want := range []string{"NEXT RENEWAL", "checkout", "example.com,*.example.com", "Ready", "ClusterIssuer/letsencrypt-staging"} {
		if !strings.Contains(statusOut.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, statusOut.String())
		}
	}
	statusOut.Reset()
	if code := run(context.Background(), append(statusArgs, "-o", "json"), func(k string) string { return b.env[k] }, &statusOut, &statusErr); code != 0 {
		t.Fatalf("status -o json exited %d: %s", code, statusErr.String())
	}
	var st statusJSON
	if err := json.Unmarshal(statusOut.Bytes(), &st); err != nil || st.Commit != first || len(st.Certificates) != 3 {
		t.Fatalf("status -o json: %v, %+v", err, st)
	}
	for _, r := range st.Certificates {
		if r.State != "Ready" || r.NotAfter == nil || r.Issuer != "ClusterIssuer/letsencrypt-staging" {
			t.Errorf("status -o json row %+v", r)
		}
	}

	// Second run: nothing due, so no commit, no order, no cluster write.
	orders := b.acme.Orders()
	code, out, errOut = b.run(t)
	if code != 0 || b.head(t) != first || b.acme.Orders() != orders || !strings.Contains(out, "no commit") {
		t.Fatalf("second run changed something: code %d, new commit %v, orders +%d\n%s\n%s", code, b.head(t) != first, b.acme.Orders()-orders, out, errOut)
	}

	// Drift: a Secret deleted in the cluster is put back from Git with no order.
	if err := kube(t, api).CoreV1().Secrets("api").Delete(context.Background(), "api-tls", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = b.run(t)
	if code != 0 || !strings.Contains(out, "applied to the cluster: api/api-tls") || b.acme.Orders() != orders {
		t.Fatalf("drift not repaired: code %d\n%s\n%s", code, out, errOut)
	}

	if ids := testbed.GitObjectsContaining(t, b.bare, "PRIVATE KEY"); len(ids) > 0 {
		t.Fatalf("plaintext private key in Git objects %v", ids)
	}
}

func checkTLSSecret(t *testing.T, s *corev1.Secret, want wantCert, ca *testbed.ACME) {
	t.Helper()
	if s.Type != corev1.SecretTypeTLS || s.Name != want.secret || s.Namespace != want.ns {
		t.Fatalf("Secret %s/%s type %s", s.Namespace, s.Name, s.Type)
	}
	key, err := pki.ParseKey(s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		t.Fatal(err)
	}
	ca.VerifyIssued(t, s.Data[corev1.TLSCertKey], key, want.dnsNames)
	if pki.KeySpecOf(key.Public()) != want.key {
		t.Errorf("key is %s, want %s", pki.KeySpecOf(key.Public()), want.key)
	}
	for _, a := range []string{committed.AnnotationCMCertificateName, committed.AnnotationCMIssuerName, committed.AnnotationNotAfter, committed.AnnotationSerial} {
		if s.Annotations[a] == "" {
			t.Errorf("annotation %s missing", a)
		}
	}
	if blk, _ := pem.Decode(s.Data[corev1.TLSCertKey]); blk == nil {
		t.Errorf("tls.crt is not PEM")
	}
}

func TestBadInputCarriesOn(t *testing.T) {
	b := newBed(t, map[string]string{
		"certificates/bad/malformed.yaml": "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: [oops\n",
		"certificates/bad/unknown-issuer.yaml": `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: lost, namespace: bad}
spec:
  secretName: lost-tls
  dnsNames: [lost.shop.test]
  issuerRef: {name: nowhere, kind: ClusterIssuer}
`,
		"certificates/bad/cn.yaml": `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: cn, namespace: bad}
spec:
  secretName: cn-tls
  commonName: other.shop.test
  dnsNames: [cn.shop.test]
  issuerRef: {name: letsencrypt-staging, kind: ClusterIssuer}
`,
		"certificates/bad/wildcard-http.yaml": `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: wild, namespace: bad}
spec:
  secretName: wild-tls
  dnsNames: ["*.shop.test"]
  issuerRef: {name: letsencrypt-staging, kind: ClusterIssuer}
`,
	})
	code, out, errOut := b.run(t)
	if code == 0 {
		t.Fatalf("bad input must exit non-zero\n%s\n%s", out, errOut)
	}
	for _, want := range []string{
		"certificates/bad/malformed.yaml", "malformed YAML",
		"certificates/bad/unknown-issuer.yaml:1", "ClusterIssuer nowhere is not declared",
		"certificates/bad/cn.yaml:1", "ACME requires the commonName to also be present in the list of dnsNames",
		"certificates/bad/wildcard-http.yaml:1", "HTTP-01",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	for _, c := range exampleCerts { // the good ones carried on
		b.file(t, committed.SecretPath("default", c.ns, c.secret))
	}
	// Fixing nothing and running again changes nothing already committed.
	head := b.head(t)
	if code, _, _ := b.run(t); code == 0 || b.head(t) != head {
		t.Fatalf("second run with the same bad input moved the branch or passed")
	}
}

func TestMissingDecryptionKey(t *testing.T) {
	b := newBed(t, nil)
	if code, out, errOut := b.run(t); code != 0 {
		t.Fatalf("first run: %d\n%s\n%s", code, out, errOut)
	}
	api := testbed.StartAPIServer(t)
	for _, ns := range []string{"shop", "api"} {
		api.CreateNamespace(t, ns)
	}
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := filepath.Join(t.TempDir(), "wrong.key")
	writeFile(t, wrongKey, other.String()+"\n")
	code, _, errOut := b.run(t, "--kubeconfig", api.Kubeconfig, "--age-key-file", wrongKey)
	if code == 0 {
		t.Fatal("applying without the right key must fail")
	}
	if !strings.Contains(errOut, "secrets/default/shop/checkout-tls.yaml") || strings.Contains(errOut, "PRIVATE KEY") {
		t.Errorf("error must name the file and never leak key material:\n%s", errOut)
	}
}

func TestSSHGit(t *testing.T) {
	b := newBed(t, nil)
	ssh := testbed.StartGitSSH(t, filepath.Dir(b.bare))
	keyFile := filepath.Join(b.dir, "id_ed25519")
	writeFile(t, keyFile, string(ssh.ClientKeyPEM()))
	known := filepath.Join(b.dir, "known_hosts")
	writeFile(t, known, string(ssh.KnownHosts()))
	b.args[1] = ssh.URL("certs")
	b.args = append(b.args, "--git-ssh-key-file", keyFile, "--cache-dir", filepath.Join(b.dir, "ssh-clone"))

	// Unknown host key: refused, with a message saying what to do.
	empty := filepath.Join(b.dir, "empty_known_hosts")
	writeFile(t, empty, "")
	code, _, errOut := b.run(t, "--git-known-hosts-file", empty)
	if code == 0 || !strings.Contains(errOut, "known_hosts") {
		t.Fatalf("unknown host key accepted (code %d):\n%s", code, errOut)
	}
	code, out, errOut := b.run(t, "--git-known-hosts-file", known)
	if code != 0 {
		t.Fatalf("reconcile over SSH: %d\n%s\n%s", code, out, errOut)
	}
	b.file(t, committed.SecretPath("default", "shop", "checkout-tls"))
}

func kube(t *testing.T, api *testbed.APIServer) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(api.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command(testbed.Git(t), append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func equalData(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
