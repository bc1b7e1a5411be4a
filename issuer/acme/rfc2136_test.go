package acme

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/certsync/certsync/internal/testbed"
)

// rfc2136Issuer is an Issuer in namespace ns whose one solver updates srv,
// signing with keyName (unsigned when keyName is empty) and the TSIG
// secret of Secret ns/tsig, key tsig.key.
func rfc2136Issuer(t *testing.T, ns string, srv *testbed.RFC2136, keyName string, secrets fakeSecrets) *Issuer {
	t.Helper()
	block := "rfc2136:\n  nameserver: " + srv.Addr
	if keyName != "" {
		block += fmt.Sprintf("\n  tsigKeyName: %s\n  tsigAlgorithm: HMACSHA256\n  tsigSecretSecretRef: {name: tsig, key: tsig.key}", keyName)
	}
	decl := parseIssuer(t, dnsIssuerManifest(ns, block))
	iss, err := New(context.Background(), Config{
		Issuer: decl, AccountKey: accountKey(t), Secrets: secrets, ExtraRootsPEM: ca.ServerCAPEM,
		DNS01: DNS01Options{RecursiveNameservers: []string{ca.DNSAddr}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func tsigKey(t *testing.T) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestIssueRFC2136(t *testing.T) {
	// lego's rfc2136 provider replaces a name's whole TXT set, so the apex
	// and the wildcard of one name must be solved one at a time; a short
	// interval between them (the operator's setting) keeps the test quick.
	t.Setenv("RFC2136_SEQUENCE_INTERVAL", "1")
	key := tsigKey(t)
	srv := ca.StartRFC2136(t, "certsync-test", key)
	iss := rfc2136Issuer(t, "team-a", srv, "certsync-test", fakeSecrets{"team-a/tsig/tsig.key": base64.StdEncoding.EncodeToString(key) + "\n"})
	tests := []struct {
		name  string
		names []string
	}{
		{"one name", []string{"www.rfc.test"}},
		{"apex and wildcard, solved one at a time", []string{"rfc.test", "*.rfc.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Updates()
			req, certKey := request(t, tt.names...)
			cert, err := iss.Issue(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			ca.VerifyIssued(t, cert.ChainPEM, certKey, tt.names)
			// One insert and one removal per name, each signed.
			if got := srv.Updates() - before; got < 2*len(tt.names) {
				t.Errorf("the RFC 2136 server applied %d signed updates, want at least %d", got, 2*len(tt.names))
			}
			if srv.Refused() != 0 {
				t.Errorf("%d updates refused", srv.Refused())
			}
		})
	}
}

// Two issuers with different TSIG keys order at the same time, each with
// its own credentials; an issuer with the wrong key, or none, fails alone.
func TestRFC2136IssuersConcurrent(t *testing.T) {
	keyA, keyB := tsigKey(t), tsigKey(t)
	srvA, srvB := ca.StartRFC2136(t, "key-a", keyA), ca.StartRFC2136(t, "key-b", keyB)
	secrets := fakeSecrets{
		"team-a/tsig/tsig.key": base64.StdEncoding.EncodeToString(keyA),
		"team-b/tsig/tsig.key": base64.StdEncoding.EncodeToString(keyB),
		"team-c/tsig/tsig.key": base64.StdEncoding.EncodeToString(keyB), // not srvA's key
	}
	issuers := []struct {
		ns, keyName, zone string
		srv               *testbed.RFC2136
		wantErr           string
	}{
		{ns: "team-a", keyName: "key-a", zone: "zone-a.test", srv: srvA},
		{ns: "team-b", keyName: "key-b", zone: "zone-b.test", srv: srvB},
		{ns: "team-c", keyName: "key-a", zone: "zone-a.test", srv: srvA, wantErr: "REFUSED"},
		{ns: "team-d", zone: "zone-a.test", srv: srvA, wantErr: "REFUSED"}, // unsigned
	}
	const perIssuer = 3
	var wg sync.WaitGroup
	errs := make([][]error, len(issuers))
	for i, tc := range issuers {
		iss := rfc2136Issuer(t, tc.ns, tc.srv, tc.keyName, secrets)
		errs[i] = make([]error, perIssuer)
		for n := range perIssuer {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := request(t, fmt.Sprintf("%s-%d.%s", tc.ns, n, tc.zone))
				_, errs[i][n] = iss.Issue(context.Background(), req)
			}()
		}
	}
	wg.Wait()
	for i, tc := range issuers {
		for _, err := range errs[i] {
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("%s: %v", tc.ns, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("%s: err = %v, want %q", tc.ns, err, tc.wantErr)
			}
		}
	}
	if srvA.Updates() < 2*perIssuer || srvB.Updates() < 2*perIssuer {
		t.Errorf("signed updates applied: %d and %d, want at least %d each", srvA.Updates(), srvB.Updates(), 2*perIssuer)
	}
	if srvA.Refused() < 2*perIssuer || srvB.Refused() != 0 {
		t.Errorf("updates refused: %d by the first server (want at least %d), %d by the second (want 0)", srvA.Refused(), 2*perIssuer, srvB.Refused())
	}
}
