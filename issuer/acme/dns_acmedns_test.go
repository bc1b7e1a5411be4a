package acme

import (
	"encoding/json"
	"testing"

	"github.com/miekg/dns"

	"github.com/certsync/certsync/internal/testbed/dnsapi"
)

// acmeDNS: certsync's acme-dns provider (goacmedns, lego's client library)
// against an acme-dns server emulator, with the account of
// accountSecretRef; _acme-challenge.acme.test is a CNAME to the account's
// fulldomain, as an operator sets it up once. A wrong password fails the
// order saying which Secret to check. acme-dns has no delete: the account
// keeps its latest two values, and nothing else is written.
func TestBlockAcmeDNS(t *testing.T) {
	t.Parallel()
	n := dnsapi.Start(t)
	em := dnsapi.StartAcmeDNS(n, ca, "auth.acme-dns.test", "auth.acme-dns.test")
	acct := em.Register()
	ca.SetCNAME("_acme-challenge.acme.test", acct.FullDomain)
	accounts := func(a dnsapi.AcmeDNSAccount) string {
		b, err := json.Marshal(map[string]dnsapi.AcmeDNSAccount{"acme.test": a})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	wrong := acct
	wrong.Password = "0000000000000000000000000000000000000000"
	secrets := fakeSecrets{
		"team-a/acme-dns/accounts.json": accounts(acct),
		"team-b/acme-dns/accounts.json": accounts(wrong),
	}
	block := `acmeDNS: {host: '` + em.URL() + `', accountSecretRef: {name: acme-dns, key: accounts.json}}`
	for _, c := range []blockCase{
		{name: "account from the Secret", ns: "team-a", block: block},
		{name: "wrong password", ns: "team-b", block: block,
			refused: "HTTP 401 from auth.acme-dns.test", check: []string{`accountSecretRef (Secret team-b/acme-dns, key "accounts.json")`, "also check the block's host"}},
	} {
		c.secrets, c.never, c.keepsRecords = secrets, []string{acct.Password, wrong.Password}, true
		t.Run(c.name, func(t *testing.T) { runBlockCase(t, n, em, "acme.test", c) })
	}
	recs := em.Records()
	values := recs[dns.CanonicalName(acct.FullDomain)]
	if len(recs) != 1 || len(values) != 2 {
		t.Errorf("the acme-dns server holds %v, want the apex's and the wildcard's values under %s only", recs, acct.FullDomain)
	}
}
