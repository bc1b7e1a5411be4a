package main

// The trust boundary, end to end on real parts: a repository that is
// mistaken or hostile must not delete live Secrets, push keys in the
// clear, be trusted where the SOPS MAC does not vouch for it, run
// programs on the agent, or reach Secrets another agent owns.

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/internal/testbed"
	"github.com/certsync/certsync/render"
)

// keyMarkers are what a private key looks like in a Git object: PEM
// headers, and their base64 forms as a Secret's data holds them (at each
// of the three byte alignments).
func keyMarkers() []string {
	// Built from parts so that this file holds no PEM header itself.
	const header = " KEY"
	out := []string{"PRIVATE" + header + "-----"}
	for _, kind := range []string{"RSA ", "EC ", ""} {
		pem := "-----BEGIN " + kind + "PRIVATE" + header
		for shift := range 3 {
			enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", shift) + pem))
			// Skip the characters the prefix influences, and the tail that
			// depends on what follows.
			lead := (shift*4 + 2) / 3
			out = append(out, enc[lead:len(enc)-4])
		}
	}
	return out
}

// assertNoKeyMaterial fails when any object in the bare repository's
// history holds a private key in the clear.
func assertNoKeyMaterial(t *testing.T, bare string) {
	t.Helper()
	for _, m := range keyMarkers() {
		if ids := testbed.GitObjectsContaining(t, bare, m); len(ids) > 0 {
			t.Fatalf("Git objects %v hold key material (%q)", ids, m)
		}
	}
}

func TestKindTypoDeletesNothing(t *testing.T) {
	for _, typo := range []struct{ name, from, to string }{
		{"kind", "kind: Certificate", "kind: Certficate"},
		{"apiVersion", "apiVersion: cert-manager.io/v1", "apiVersion: cert-manger.io/v1"},
	} {
		t.Run(typo.name, func(t *testing.T) {
			b := newBed(t, nil)
			api := b.withCluster(t)
			if code, out, errOut := b.run(t); code != 0 {
				t.Fatalf("first run: %d\n%s\n%s", code, out, errOut)
			}
			b.edit(t, "typo", func(dir string) {
				p := filepath.Join(dir, "certificates/shop/checkout.yaml")
				content, _ := os.ReadFile(p)
				writeFile(t, p, strings.Replace(string(content), typo.from, typo.to, 1))
			})
			head, orders := b.head(t), b.acme.Orders()
			code, out, errOut := b.run(t)
			if code == 0 || !strings.Contains(errOut, "certificates/shop/checkout.yaml:") {
				t.Fatalf("the typo must be a problem naming file:line (code %d)\n%s\n%s", code, out, errOut)
			}
			if b.head(t) != head || b.acme.Orders() != orders {
				t.Fatalf("the pass committed or ordered: head moved %v, orders +%d\n%s", b.head(t) != head, b.acme.Orders()-orders, out)
			}
			if !strings.Contains(errOut+out, "nothing is pruned") {
				t.Errorf("the refusal to prune is not reported:\n%s\n%s", out, errOut)
			}
			b.file(t, committed.SecretPath("default", "shop", "checkout-tls"))
			if _, err := kube(t, api).CoreV1().Secrets("shop").Get(context.Background(), "checkout-tls", metav1.GetOptions{}); err != nil {
				t.Fatalf("the live Secret was deleted: %v", err)
			}
		})
	}
}

func TestBadSOPSRuleNeverPushesKeys(t *testing.T) {
	b := newBed(t, nil)
	b.edit(t, "a bad rule", func(dir string) {
		p := filepath.Join(dir, ".sops.yaml")
		content, _ := os.ReadFile(p)
		writeFile(t, p, strings.Replace(string(content), "encrypted_regex: ^(data|stringData)$", "encrypted_regex: ^nothing$", 1))
	})
	head := b.head(t)
	code, out, errOut := b.run(t)
	if code == 0 || !strings.Contains(errOut, "plaintext") || !strings.Contains(errOut, ".sops.yaml") {
		t.Fatalf("a rule leaving data unencrypted must be refused, naming .sops.yaml (code %d)\n%s\n%s", code, out, errOut)
	}
	if b.head(t) != head {
		t.Errorf("something was pushed:\n%s", gitCmd(t, b.bare, "log", "--stat", "-1", "main"))
	}
	assertNoKeyMaterial(t, b.bare)
	// The local clone must not hold it either: it would be pushed later.
	assertNoKeyMaterial(t, filepath.Join(b.dir, "clone"))
}

func TestPlaintextCommittedIsReissued(t *testing.T) {
	b := newBed(t, nil)
	if code, out, errOut := b.run(t); code != 0 {
		t.Fatalf("first run: %d\n%s\n%s", code, out, errOut)
	}
	path := committed.SecretPath("default", "shop", "checkout-tls")
	before := b.record(t, "shop", "checkout-tls")
	// An older tool, or a person, committed the Secret with data in the
	// clear (sops with a rule that encrypts nothing).
	plain := b.sopsDecryptRaw(t, path)
	// And the ACME account key without sops at all.
	accountPath := committed.AccountPath("", "letsencrypt-staging-account")
	plainAccount := b.sopsDecryptRaw(t, accountPath)
	accounts := b.acme.Accounts()
	b.edit(t, "leak", func(dir string) {
		writeFile(t, filepath.Join(dir, accountPath), string(plainAccount))
		f := filepath.Join(t.TempDir(), "plain.yaml")
		writeFile(t, f, string(plain))
		recipient := b.recipient(t)
		cmd := exec.Command(testbed.Tool(t, "sops"), "--encrypt", "--encrypted-regex", "^nothing$", "--age", recipient, "--input-type", "yaml", "--output-type", "yaml", f)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("sops: %v: %s", err, stderr.String())
		}
		writeFile(t, filepath.Join(dir, path), string(out))
	})
	code, out, errOut := b.run(t)
	if code != 0 {
		t.Fatalf("repair run: %d\n%s\n%s", code, out, errOut)
	}
	after := b.record(t, "shop", "checkout-tls")
	if after.Serial == before.Serial {
		t.Fatal("an exposed key was not re-issued")
	}
	if msg := gitCmd(t, b.bare, "log", "-1", "--format=%B", "main"); !strings.Contains(msg, "private key exposed") {
		t.Errorf("commit lacks the reason:\n%s", msg)
	}
	if !strings.HasPrefix(strings.TrimSpace(strings.SplitN(string(b.file(t, path)), "tls.key:", 2)[1]), "ENC[") {
		t.Error("the repaired file is not encrypted")
	}
	// The account key is encrypted again and kept: no new account.
	if got := b.sopsDecrypt(t, accountPath); !bytes.Equal(got.Data["tls.key"], mustParse(t, plainAccount).Data["tls.key"]) {
		t.Error("the account key changed")
	}
	if b.acme.Accounts() != accounts {
		t.Errorf("%d new ACME accounts", b.acme.Accounts()-accounts)
	}
}

func mustParse(t *testing.T, plain []byte) *corev1.Secret {
	t.Helper()
	s, err := render.Parse(plain)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTamperedFileIsRepaired(t *testing.T) {
	for _, tamper := range []struct {
		name   string
		change func(content string) string
	}{
		{"annotation", func(c string) string {
			i := strings.Index(c, "certsync.io/not-after: ")
			end := i + strings.Index(c[i:], "\n")
			return c[:i] + "certsync.io/not-after: \"2099-01-01T00:00:00Z\"" + c[end:]
		}},
		{"ciphertext", func(c string) string {
			i := strings.Index(c, "tls.key: ENC[AES256_GCM,data:") + len("tls.key: ENC[AES256_GCM,data:") + 5
			flipped := byte('A')
			if c[i] == 'A' {
				flipped = 'B'
			}
			return c[:i] + string(flipped) + c[i+1:]
		}},
	} {
		t.Run(tamper.name, func(t *testing.T) {
			b := newBed(t, nil)
			if code, out, errOut := b.run(t); code != 0 {
				t.Fatalf("first run: %d\n%s\n%s", code, out, errOut)
			}
			path := committed.SecretPath("default", "api", "api-tls")
			before := b.record(t, "api", "api-tls")
			b.edit(t, "tamper", func(dir string) {
				p := filepath.Join(dir, path)
				content, _ := os.ReadFile(p)
				writeFile(t, p, tamper.change(string(content)))
			})
			// Without a key, status cannot vouch for the file.
			var statusOut, statusErr bytes.Buffer
			statusArgs := []string{"status", "--repo", b.git.URL("certs"), "--git-username", gitUser, "--cache-dir", filepath.Join(b.dir, "status-clone")}
			run(context.Background(), statusArgs, func(k string) string { return b.env[k] }, &statusOut, &statusErr)
			if !strings.Contains(statusOut.String(), "unverified") {
				t.Errorf("status without a key must mark files unverified:\n%s", statusOut.String())
			}
			code, out, errOut := b.run(t)
			if code != 0 {
				t.Fatalf("repair run: %d\n%s\n%s", code, out, errOut)
			}
			after := b.record(t, "api", "api-tls")
			if after.Serial == before.Serial || after.NotAfter.Year() == 2099 {
				t.Fatalf("tampered file not repaired: serial %s → %s, notAfter %s", before.Serial, after.Serial, after.NotAfter)
			}
			if msg := gitCmd(t, b.bare, "log", "-1", "--format=%B", "main"); !strings.Contains(msg, "failed verification") {
				t.Errorf("commit lacks the reason:\n%s", msg)
			}
			b.sopsDecrypt(t, path) // the repaired file opens with the sops CLI
			// And the repair is done once: the next pass is quiet.
			head, orders := b.head(t), b.acme.Orders()
			if code, out, errOut := b.run(t); code != 0 || b.head(t) != head || b.acme.Orders() != orders {
				t.Fatalf("repair loops: code %d, head moved %v, orders +%d\n%s\n%s", code, b.head(t) != head, b.acme.Orders()-orders, out, errOut)
			}
		})
	}
}

// sopsDecryptRaw decrypts a committed file with the sops CLI and returns
// the plaintext manifest.
func (b *bed) sopsDecryptRaw(t *testing.T, path string) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "secret.yaml")
	writeFile(t, f, string(b.file(t, path)))
	cmd := exec.Command(testbed.Tool(t, "sops"), "--decrypt", f)
	cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE="+b.keyFile)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sops --decrypt %s: %v", path, err)
	}
	return out
}

// recipient is the bed's age recipient, read back from its .sops.yaml.
func (b *bed) recipient(t *testing.T) string {
	t.Helper()
	for _, f := range strings.Fields(string(b.file(t, ".sops.yaml"))) {
		if strings.HasPrefix(f, "age1") && len(f) == 62 { // not the "age1..." of a comment
			return f
		}
	}
	t.Fatal("no age recipient in .sops.yaml")
	return ""
}

func TestTwoInstancesOnOneCluster(t *testing.T) {
	a := newBed(t, nil)
	api := a.withCluster(t)
	if code, out, errOut := a.run(t); code != 0 {
		t.Fatalf("instance A: %d\n%s\n%s", code, out, errOut)
	}
	// Instance B: another repository declaring one other certificate, and
	// another cluster name, on the same API server.
	b := newBed(t, nil)
	b.edit(t, "only one", func(dir string) {
		for _, f := range []string{"certificates/shop/checkout.yaml", "certificates/shop/wildcard.yaml"} {
			os.Remove(filepath.Join(dir, f))
		}
		p := filepath.Join(dir, "certificates/api/api.yaml")
		content, _ := os.ReadFile(p)
		writeFile(t, p, strings.NewReplacer("name: api\n", "name: other\n", "secretName: api-tls", "secretName: other-tls").Replace(string(content)))
	})
	b.args = append(b.args, "--kubeconfig", api.Kubeconfig, "--cluster", "east")
	for range 2 {
		if code, out, errOut := b.run(t); code != 0 {
			t.Fatalf("instance B: %d\n%s\n%s", code, out, errOut)
		}
	}
	for _, s := range []string{"shop/checkout-tls", "shop/example-com-tls", "api/api-tls", "api/other-tls"} {
		ns, name, _ := strings.Cut(s, "/")
		if _, err := kube(t, api).CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			t.Errorf("Secret %s: %v", s, err)
		}
	}
	// And A, running again, leaves B's Secret alone.
	if code, out, errOut := a.run(t); code != 0 || strings.Contains(out, "other-tls") {
		t.Fatalf("instance A again: %d\n%s\n%s", code, out, errOut)
	}
	if _, err := kube(t, api).CoreV1().Secrets("api").Get(context.Background(), "other-tls", metav1.GetOptions{}); err != nil {
		t.Errorf("B's Secret deleted by A: %v", err)
	}
}

// A DNS-01 provider that runs programs, named by the repository, is refused
// unless the operator allowed it by name: its program never runs, and no
// order is spent on it.
func TestRepositoryCannotRunPrograms(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	script := filepath.Join(t.TempDir(), "hook.sh")
	writeFile(t, script, "#!/bin/sh\ntouch "+marker+"\n")
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	// Even with the variable in the agent's own environment.
	t.Setenv("EXEC_PATH", script)
	b := newBed(t, map[string]string{
		"issuers/exec.yaml": `apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: hostile}
spec:
  acme:
    server: ` + b0URL(t) + `
    privateKeySecretRef: {name: hostile-account}
    solvers:
      - dns01:
          webhook:
            groupName: acme.certsync.io
            solverName: exec
`,
		"certificates/hostile.yaml": `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: hostile, namespace: shop}
spec:
  secretName: hostile-tls
  dnsNames: [hostile.shop.test]
  issuerRef: {name: hostile, kind: ClusterIssuer}
`,
	})
	code, out, errOut := b.run(t)
	if code == 0 || !strings.Contains(errOut, "--dns01-allow-providers") {
		t.Fatalf("the exec provider must be refused with what the operator can do (code %d)\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the repository ran a program on the agent")
	}
	for _, c := range exampleCerts { // the others carried on
		b.file(t, committed.SecretPath("default", c.ns, c.secret))
	}
}

// b0URL is the shared test CA's directory.
func b0URL(t *testing.T) string {
	a, _ := theACME(t)
	return a.DirectoryURL
}
