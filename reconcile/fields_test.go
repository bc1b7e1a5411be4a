package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

// The fields that shape the certificate re-issue through the spec hash;
// the extra outputs of the Secret re-render it through the outputs hash
// (rerender_test.go has the rest); a record of the same declaration plans
// nothing.
func TestCalculateFields(t *testing.T) {
	web := decl("shop", "web", "web.example.com")
	withOutputs := web
	withOutputs.AdditionalOutputFormats = []string{declared.OutputCombinedPEM}
	withOutputs.Keystores.PKCS12 = &declared.PKCS12Keystore{Create: true, Profile: declared.PKCS12Modern2023,
		Password: declared.KeystorePassword{SecretRef: declared.SecretKeySelector{Name: "p12", Key: "password"}}}
	rec := issued(web, t0, "01")
	recOutputs := issued(withOutputs, t0, "02")
	recOutputs.OutputsHash = withOutputs.OutputsHash()
	withIP := web
	withIP.IPAddresses = []string{"192.0.2.1"}

	tests := []struct {
		name       string
		state      State
		want       string
		wantReason string
	}{
		{name: "outputs as committed: nothing to do", state: state(t0.Add(time.Hour), []declared.Certificate{withOutputs}, recOutputs)},
		{name: "an output format and a keystore added", state: state(t0.Add(time.Hour), []declared.Certificate{withOutputs}, rec),
			want: "Rerender shop/web", wantReason: "keystores changed: pkcs12 added; additionalOutputFormats changed: CombinedPEM added"},
		{name: "keystores removed from a Secret rendered before the names were recorded", state: state(t0.Add(time.Hour), []declared.Certificate{web}, recOutputs),
			want: "Rerender shop/web", wantReason: "additionalOutputFormats or keystores changed since the Secret was rendered (now: none)"},
		{name: "an IP SAN added", state: state(t0.Add(time.Hour), []declared.Certificate{withIP}, rec),
			want: "Reissue shop/web", wantReason: "spec changed since issuance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Calculate(tt.state)
			if got := kinds(p); got != tt.want {
				t.Fatalf("plan %q, want %q", got, tt.want)
			}
			if tt.wantReason != "" && !strings.Contains(p.Actions[0].Reason, tt.wantReason) {
				t.Errorf("reason %q, want %q", p.Actions[0].Reason, tt.wantReason)
			}
		})
	}
}

// fakeSecrets is an issuer.SecretGetter over a map "ns/name/key".
type fakeSecrets map[string]string

func (f fakeSecrets) SecretKey(_ context.Context, ns, name, key string) ([]byte, error) {
	v, ok := f[ns+"/"+name+"/"+key]
	if !ok {
		return nil, fmt.Errorf("%w: Secret %s/%s is not in the repository", issuer.ErrPermanent, ns, name)
	}
	return []byte(v), nil
}

func TestKeystorePasswords(t *testing.T) {
	ref := func(name, key string) declared.KeystorePassword {
		return declared.KeystorePassword{SecretRef: declared.SecretKeySelector{Name: name, Key: key}}
	}
	secrets := fakeSecrets{"shop/p12/password": "from-secret", "shop/empty/password": ""}
	tests := []struct {
		name      string
		ks        declared.Keystores
		p12, jks  string
		err       string
		permanent bool
	}{
		{name: "no keystores"},
		{name: "not created: no password read", ks: declared.Keystores{PKCS12: &declared.PKCS12Keystore{Password: ref("missing", "k")}}},
		{name: "a Secret of the Certificate's namespace and a literal",
			ks:  declared.Keystores{PKCS12: &declared.PKCS12Keystore{Create: true, Password: ref("p12", "password")}, JKS: &declared.JKSKeystore{Create: true, Password: declared.KeystorePassword{Literal: "changeit"}}},
			p12: "from-secret", jks: "changeit"},
		{name: "missing Secret", ks: declared.Keystores{JKS: &declared.JKSKeystore{Create: true, Password: ref("missing", "k")}},
			err: "JKS keystore password: permanent: Secret shop/missing is not in the repository", permanent: true},
		{name: "empty value", ks: declared.Keystores{PKCS12: &declared.PKCS12Keystore{Create: true, Password: ref("empty", "password")}},
			err: `PKCS12 keystore password Secret shop/empty contains no data for key "password"`, permanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := decl("shop", "web", "web.example.com")
			c.Keystores = tt.ks
			pw, err := keystorePasswords(context.Background(), secrets, &c)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || errors.Is(err, issuer.ErrPermanent) != tt.permanent {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "from-secret") {
					t.Errorf("the error quotes a password: %v", err)
				}
				return
			}
			if err != nil || string(pw.PKCS12) != tt.p12 || string(pw.JKS) != tt.jks {
				t.Errorf("passwords %q %q, %v", pw.PKCS12, pw.JKS, err)
			}
		})
	}
}
