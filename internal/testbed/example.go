package testbed

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/certsync/certsync/encrypt"
)

// Placeholders in examples/repo that a local run replaces.
const (
	exampleACMEServer = "https://acme-staging-v02.api.letsencrypt.org/directory"
	exampleRecipient  = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
	exampleNameserver = "ns1.example.com:53"
	// ExampleTSIGKey is the TSIG key name examples/repo's issuer uses.
	ExampleTSIGKey = "certsync-example."
	// ExampleTSIGSecretPath is where the encrypted TSIG Secret is committed.
	ExampleTSIGSecretPath = "credentials/rfc2136-tsig.yaml"
)

// ExampleDNS is the DNS-01 side of the example: an RFC 2136 server with a
// fresh TSIG secret, whose updates land in the CA's DNS.
type ExampleDNS struct {
	Server *RFC2136
	Secret []byte // the raw TSIG key
}

// StartExampleDNS starts the RFC 2136 server examples/repo's issuer uses.
func (a *ACME) StartExampleDNS(t TB) *ExampleDNS {
	t.Helper()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatalf("TSIG secret: %v", err)
	}
	return &ExampleDNS{Server: a.StartRFC2136(t, ExampleTSIGKey, secret), Secret: secret}
}

// WriteExample copies examples/repo (src) to dst for a local run: the ACME
// server, the age recipient and the RFC 2136 nameserver are replaced, and
// the TSIG secret is committed as cert-manager expects it — a Secret in
// the cluster resource namespace, here SOPS-encrypted to recipient, as a
// user would commit it with `sops --encrypt`.
func WriteExample(t TB, src, dst string, a *ACME, dns *ExampleDNS, recipient string) {
	t.Helper()
	CopyTree(t, src, dst, strings.NewReplacer(
		exampleACMEServer, a.DirectoryURL,
		exampleRecipient, recipient,
		exampleNameserver, dns.Server.Addr,
	))
	sopsConfig, err := os.ReadFile(filepath.Join(dst, ".sops.yaml"))
	if err != nil {
		t.Fatalf("example .sops.yaml: %v", err)
	}
	enc, err := encrypt.New(encrypt.Config{SOPSConfig: sopsConfig})
	if err != nil {
		t.Fatalf("example .sops.yaml: %v", err)
	}
	defer enc.Close()
	plain := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: rfc2136-tsig
  namespace: cert-manager
type: Opaque
data:
  tsig-secret: %s
`, base64.StdEncoding.EncodeToString([]byte(base64.StdEncoding.EncodeToString(dns.Secret))))
	out, err := enc.Encrypt(context.Background(), ExampleTSIGSecretPath, []byte(plain))
	if err != nil {
		t.Fatalf("encrypt the TSIG Secret: %v", err)
	}
	if err := writeFile(filepath.Join(dst, ExampleTSIGSecretPath), out); err != nil {
		t.Fatalf("write the TSIG Secret: %v", err)
	}
}

func writeFile(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o600)
}

// CopyTree copies the files under src to dst, with r's replacements made
// in each (an example's placeholders: its CA, its recipients).
func CopyTree(t TB, src, dst string, r *strings.Replacer) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return writeFile(filepath.Join(dst, rel), []byte(r.Replace(string(b))))
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}
