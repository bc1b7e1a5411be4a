package acme

import (
	"context"
	"crypto/x509"
	"slices"
	"testing"

	"github.com/go-acme/lego/v4/certificate"
)

// A renewal names the certificate it replaces (ARI), so the CA exempts it
// from rate limits; when the CA refuses the replacement, the renewal is
// ordered again without it rather than failed.
func TestRenewalReplaces(t *testing.T) {
	iss := testIssuer(t, accountKey(t))
	other := testIssuer(t, accountKey(t))
	issue := func(t *testing.T, i *Issuer, name string, replaces *x509.Certificate) *x509.Certificate {
		t.Helper()
		req, key := request(t, name)
		req.Replaces = replaces
		cert, err := i.Issue(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		ca.VerifyIssued(t, cert.ChainPEM, key, []string{name})
		return cert.Leaf
	}
	tests := []struct {
		name string
		// old issues the certificate being renewed and returns it.
		old func(t *testing.T, name string) *x509.Certificate
		// orders is how many newOrder requests the renewal takes.
		orders int
	}{
		{"accepted", func(t *testing.T, name string) *x509.Certificate {
			return issue(t, iss, name, nil)
		}, 1},
		{"already replaced (lego orders again itself)", func(t *testing.T, name string) *x509.Certificate {
			old := issue(t, iss, name, nil)
			issue(t, iss, name, old)
			return old
		}, 2},
		{"refused: another account's certificate", func(t *testing.T, name string) *x509.Certificate {
			return issue(t, other, name, nil)
		}, 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := []string{"ari-a.http.test", "ari-b.http.test", "ari-c.http.test"}[i]
			old := tt.old(t, name)
			id, err := certificate.MakeARICertID(old)
			if err != nil {
				t.Fatal(err)
			}
			orders, seen := ca.Orders(), len(ca.Replaces())
			issue(t, iss, name, old)
			if got := ca.Orders() - orders; got != tt.orders {
				t.Errorf("renewal took %d orders, want %d", got, tt.orders)
			}
			if !slices.Contains(ca.Replaces()[seen:], id) {
				t.Errorf("no newOrder named %s in replaces; saw %v", id, ca.Replaces()[seen:])
			}
		})
	}
}
