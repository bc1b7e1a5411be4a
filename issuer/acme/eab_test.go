package acme

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/certsync/certsync/issuer"
)

// The EAB HMAC key comes from the Secret keySecretRef names, in the
// ClusterIssuer's cluster resource namespace; never from the environment.
func TestExternalAccountBinding(t *testing.T) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	hmac := base64.RawURLEncoding.EncodeToString(raw)
	kid := "kid-" + base64.RawURLEncoding.EncodeToString(raw[:6]) // one CA serves every -count run
	ca.AddEABKey(t, kid, hmac)
	decl := parseIssuer(t, fmt.Sprintf(`apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: eab}
spec:
  acme:
    server: %s
    privateKeySecretRef: {name: acct}
    externalAccountBinding:
      keyID: %s
      keySecretRef: {name: eab-hmac, key: secret}
    solvers:
    - http01: {ingress: {}}
`, ca.EABDirectoryURL, kid))
	// Without a binding, a CA that requires one refuses the account.
	plain := parseIssuer(t, fmt.Sprintf(`apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: no-eab}
spec:
  acme:
    server: %s
    privateKeySecretRef: {name: acct}
    solvers:
    - http01: {ingress: {}}
`, ca.EABDirectoryURL))
	if _, err := New(context.Background(), Config{Issuer: plain, AccountKey: accountKey(t), ExtraRootsPEM: ca.ServerCAPEM}); !errors.Is(err, issuer.ErrPermanent) || !strings.Contains(err.Error(), "requires an external account binding: add spec.acme.externalAccountBinding") {
		t.Fatalf("a CA that requires EAB accepted an account without one: %v", err)
	}
	tests := []struct {
		name    string
		secrets issuer.SecretGetter
		wantErr string
	}{
		{"key from the Secret", fakeSecrets{"cert-manager/eab-hmac/secret": hmac + "\n"}, ""},
		{"Secret missing", fakeSecrets{}, "externalAccountBinding.keySecretRef: permanent: Secret cert-manager/eab-hmac has no key \"secret\""},
		{"no source of Secrets", nil, "refers to Secret cert-manager/eab-hmac"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, err := New(context.Background(), Config{Issuer: decl, AccountKey: accountKey(t), Secrets: tt.secrets, ExtraRootsPEM: ca.ServerCAPEM})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if iss.AccountURL() == "" {
					t.Error("no account registered")
				}
				return
			}
			if !errors.Is(err, issuer.ErrPermanent) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want permanent %q", err, tt.wantErr)
			}
		})
	}
}
