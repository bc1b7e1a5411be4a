package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/internal/testbed"
)

// clusterKey is one cluster's age identity, written to a key file.
type clusterKey struct {
	file, recipient string
}

func newClusterKey(t *testing.T, dir, name string) clusterKey {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name+".agekey")
	writeFile(t, file, id.String()+"\n")
	return clusterKey{file: file, recipient: id.Recipient().String()}
}

// TestFanOutThreeClusters: one repository serves three clusters. An
// issuer with no cluster orders each certificate once and commits a copy
// per receiving cluster, each encrypted to that cluster's key (and the
// issuer's); appliers with only their own key and no CA apply exactly
// what is delivered to them. A destroyed cluster is restored from Git
// with the CA unreachable; a cluster added to a certificate later gets a
// copy, not an order; one cluster's key opens none of another's files.
func TestFanOutThreeClusters(t *testing.T) {
	dir := t.TempDir()
	keys := map[string]clusterKey{}
	for _, name := range []string{"a", "b", "c"} {
		keys[name] = newClusterKey(t, dir, name)
	}
	settingsFor := func(shop string) string {
		return `apiVersion: certsync.io/v1alpha1
kind: Settings
clusters:
- name: a
  labels: {env: prod}
- name: b
  labels: {env: prod}
- name: c
  labels: {env: staging}
delivery:
- paths: [certificates/shop/]
  ` + shop + `
- paths: [certificates/api/]
  clusters: [all]
`
	}
	b := newBed(t, map[string]string{"certsync.yaml": settingsFor("clusterSelector: env=prod")})
	issuerKey := func() string { // the bed's key is the issuer's
		f, err := os.ReadFile(b.keyFile)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := age.ParseIdentities(bytes.NewReader(f))
		if err != nil {
			t.Fatal(err)
		}
		return ids[0].(*age.X25519Identity).Recipient().String()
	}()
	sopsRules := "creation_rules:\n"
	for _, name := range []string{"a", "b", "c"} {
		sopsRules += fmt.Sprintf("  - path_regex: ^secrets/%s/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: %s,%s\n", name, issuerKey, keys[name].recipient)
	}
	sopsRules += "  - path_regex: ^(accounts|credentials)/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: " + issuerKey + "\n"
	b.edit(t, "per-cluster recipients", func(d string) { writeFile(t, filepath.Join(d, ".sops.yaml"), sopsRules) })

	// The issuer: no cluster, every cluster's files. (The CA is shared by
	// the package's tests: count what this test adds.)
	firstOrders := b.acme.Orders()
	signingKey, allowedSigners := sshSigningKey(t, dir)
	code, out, errOut := b.run(t, "--role", "issuer", "--signing-key-file", signingKey)
	if code != 0 {
		t.Fatalf("issuer: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := b.acme.Orders() - firstOrders; got != 3 {
		t.Fatalf("3 certificates for 7 cluster copies must cost 3 orders, got %d", got)
	}
	// Every commit the issuer made is signed (git verify-commit).
	signed := strings.Fields(gitCmd(t, b.bare, "rev-list", "main", "--author=certsync@localhost"))
	if len(signed) < 2 { // the account key, the certificates
		t.Fatalf("certsync commits: %v", signed)
	}
	for _, commit := range signed {
		gitCmd(t, b.bare, "-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile="+allowedSigners, "verify-commit", commit)
	}
	want := map[string][]string{
		"a": {"api/api-tls", "shop/checkout-tls", "shop/example-com-tls"},
		"b": {"api/api-tls", "shop/checkout-tls", "shop/example-com-tls"},
		"c": {"api/api-tls"},
	}
	committedFiles := func() map[string][]string {
		got := map[string][]string{}
		for _, line := range strings.Fields(gitCmd(t, b.bare, "ls-tree", "-r", "--name-only", "main", "secrets/")) {
			cluster, ns, name, ok := committed.ParseSecretPath(line)
			if !ok {
				t.Fatalf("unexpected file %s", line)
			}
			got[cluster] = append(got[cluster], ns+"/"+name)
		}
		return got
	}
	if got := committedFiles(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("committed copies %v, want %v", got, want)
	}
	serial := map[string]string{}
	for cluster, secrets := range want {
		for _, s := range secrets {
			ns, name, _ := strings.Cut(s, "/")
			path := committed.SecretPath(cluster, ns, name)
			rec, err := committed.Read(path, b.file(t, path))
			if err != nil {
				t.Fatal(err)
			}
			if prev, seen := serial[s]; seen && prev != rec.Serial {
				t.Errorf("%s: cluster %s has serial %s, another cluster %s: one order must serve all", s, cluster, rec.Serial, prev)
			}
			serial[s] = rec.Serial
			if !slices.Contains(rec.Recipients, keys[cluster].recipient) || len(rec.Recipients) != 2 {
				t.Errorf("%s of cluster %s is encrypted to %v, want the issuer and cluster %s only", s, cluster, rec.Recipients, cluster)
			}
		}
	}

	// The appliers: each with its own key, its own cache, and no CA.
	b.acme.SetHook(func(r *http.Request) { t.Errorf("an applier asked the CA %s %s", r.Method, r.URL.Path) })
	apis := map[string]*testbed.APIServer{}
	applier := func(cluster string, extra ...string) (int, string, string) {
		args := []string{"--role", "applier", "--cluster", cluster, "--kubeconfig", apis[cluster].Kubeconfig,
			"--age-key-file", keys[cluster].file, "--cache-dir", filepath.Join(dir, "applier-"+cluster)}
		return b.run(t, append(args, extra...)...)
	}
	head := b.head(t)
	for _, cluster := range []string{"a", "b", "c"} {
		apis[cluster] = testbed.StartAPIServer(t)
		for _, ns := range []string{"shop", "api"} {
			apis[cluster].CreateNamespace(t, ns)
		}
		if code, out, errOut := applier(cluster); code != 0 {
			t.Fatalf("applier %s: exit %d\n%s\n%s", cluster, code, out, errOut)
		}
	}
	if b.head(t) != head {
		t.Fatal("an applier committed to Git")
	}
	checkCluster := func(cluster string) {
		t.Helper()
		kc := kube(t, apis[cluster])
		var live []string
		for _, ns := range []string{"api", "shop"} {
			list, err := kc.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range list.Items {
				live = append(live, ns+"/"+s.Name)
				git := b.sopsDecrypt(t, committed.SecretPath(cluster, ns, s.Name))
				if !equalData(s.Data, git.Data) {
					t.Errorf("cluster %s: %s/%s differs from its file in Git", cluster, ns, s.Name)
				}
			}
		}
		if !slices.Equal(live, want[cluster]) {
			t.Errorf("cluster %s holds %v, want %v", cluster, live, want[cluster])
		}
	}
	for cluster := range want {
		checkCluster(cluster)
	}

	// One cluster's key opens none of another's files: a clear error for
	// each of those files, and only for those.
	if err := kube(t, apis["c"]).CoreV1().Secrets("api").Delete(context.Background(), "api-tls", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var rout, rerr bytes.Buffer
	args := append(slices.Clone(b.args), "--cluster", "c", "--kubeconfig", apis["c"].Kubeconfig, "--age-key-file", keys["a"].file, "--cache-dir", filepath.Join(dir, "wrong-key"))
	code = run(context.Background(), commandArgs("restore", args...), func(k string) string { return b.env[k] }, &rout, &rerr)
	if code != 1 || !strings.Contains(rerr.String(), "secrets/c/api/api-tls.yaml") || !strings.Contains(rerr.String(), "no decryption key") ||
		strings.Contains(rerr.String(), "secrets/a/") {
		t.Fatalf("restoring c with a's key: exit %d\n%s\n%s", code, rout.String(), rerr.String())
	}

	// A cluster certsync.yaml does not declare is refused by name.
	rout.Reset()
	rerr.Reset()
	args = append(slices.Clone(b.args), "--cluster", "d", "--kubeconfig", apis["c"].Kubeconfig, "--age-key-file", keys["c"].file, "--cache-dir", filepath.Join(dir, "restore-d"))
	if code = run(context.Background(), commandArgs("restore", args...), func(k string) string { return b.env[k] }, &rout, &rerr); code != 1 ||
		!strings.Contains(rerr.String(), `cluster "d" is not declared in certsync.yaml (declared: a, b, c)`) {
		t.Fatalf("restore of an undeclared cluster: exit %d\n%s\n%s", code, rout.String(), rerr.String())
	}

	// Cluster b is destroyed and rebuilt empty; the CA is unreachable.
	apis["b"].Stop(t)
	apis["b"] = testbed.StartAPIServer(t)
	rout.Reset()
	rerr.Reset()
	args = append(slices.Clone(b.args), "--cluster", "b", "--kubeconfig", apis["b"].Kubeconfig, "--age-key-file", keys["b"].file, "--cache-dir", filepath.Join(dir, "restore-b"), "--create-namespace")
	code = run(context.Background(), commandArgs("restore", args...), func(k string) string { return b.env[k] }, &rout, &rerr)
	if code != 0 || !strings.Contains(rout.String(), "3 applied, 0 unchanged, 0 failed") {
		t.Fatalf("restore of b: exit %d\n%s\n%s", code, rout.String(), rerr.String())
	}
	checkCluster("b")
	if code, out, errOut := applier("b"); code != 0 || strings.Contains(out, "Apply") {
		t.Fatalf("applier b after the restore must find nothing to do: exit %d\n%s\n%s", code, out, errOut)
	}
	b.acme.SetHook(nil)

	// Cluster c now receives the shop certificates too: copies, no order.
	b.edit(t, "shop goes to staging too", func(d string) { writeFile(t, filepath.Join(d, "certsync.yaml"), settingsFor("clusters: [all]")) })
	orders, accounts := b.acme.Orders(), b.acme.Accounts()
	if code, out, errOut := b.run(t, "--role", "issuer"); code != 0 || !strings.Contains(out, "Copy") {
		t.Fatalf("issuer after adding c: exit %d\n%s\n%s", code, out, errOut)
	}
	if b.acme.Orders() != orders || b.acme.Accounts() != accounts {
		t.Fatalf("adding a cluster ordered %d certificates and %d accounts; copies need none", b.acme.Orders()-orders, b.acme.Accounts()-accounts)
	}
	want["c"] = want["a"]
	if got := committedFiles(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after adding c: %v, want %v", got, want)
	}
	if code, out, errOut := applier("c"); code != 0 {
		t.Fatalf("applier c: exit %d\n%s\n%s", code, out, errOut)
	}
	checkCluster("c")
	if code, out, errOut := b.run(t, "--role", "issuer"); code != 0 || b.acme.Orders() != orders || !strings.Contains(out, "Git is up to date") {
		t.Fatalf("a second issuer pass must change nothing: exit %d\n%s\n%s", code, out, errOut)
	}
	// status shows where each certificate goes, from Git alone.
	status := b.status(t)
	for _, row := range status.Certificates {
		if !slices.Equal(row.Clusters, []string{"a", "b", "c"}) || row.State != "Ready" {
			t.Errorf("status of %s/%s: clusters %v, state %s", row.Namespace, row.Name, row.Clusters, row.State)
		}
	}
	if ids := testbed.GitObjectsContaining(t, b.bare, "PRIVATE KEY"); len(ids) > 0 {
		t.Fatalf("plaintext private key in Git objects %v", ids)
	}
}

// sshSigningKey writes an SSH commit-signing key and the allowed-signers
// file `git verify-commit` checks it with.
func sshSigningKey(t *testing.T, dir string) (keyFile, allowedSigners string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, allowedSigners := testbed.SSHSigningKey(t, dir, priv)
	keyFile = filepath.Join(dir, "signing-key")
	writeFile(t, keyFile, string(key))
	return keyFile, allowedSigners
}

// status runs `certsync status -o json` against the bed's repository.
func (b *bed) status(t *testing.T) statusJSON {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), commandArgs("status", append([]string{"-o", "json"}, b.args...)...), func(k string) string { return b.env[k] }, &out, &errb); code != 0 {
		t.Fatalf("status: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	var status statusJSON
	if err := json.Unmarshal(out.Bytes(), &status); err != nil {
		t.Fatal(err)
	}
	return status
}
