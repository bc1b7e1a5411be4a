package acme

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/nrdcg/goacmedns"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

// acmeDNS answers DNS-01 through an acme-dns server (cert-manager's acmeDNS
// block). lego's own acme-dns provider reads its accounts only from a file
// or an HTTP store and registers missing ones; cert-manager's block hands
// the accounts over in a Secret, so this small provider takes them from
// memory and never writes the Secret to disk.
type acmeDNS struct {
	client   *goacmedns.Client
	accounts map[string]goacmedns.Account // domain (without "*.") → account
}

var _ challenge.Provider = (*acmeDNS)(nil)

// acmeDNSTimeout bounds one update request.
const acmeDNSTimeout = 30 * time.Second

func (b blockBuilder) acmeDNS(ctx context.Context, s *declared.DNS01Solver, hc *http.Client) (challenge.Provider, error) {
	raw, err := b.secrets.value(ctx, "accountSecretRef", s.Secrets["accountSecretRef"])
	if err != nil {
		return nil, err
	}
	var accounts map[string]goacmedns.Account
	if err := json.Unmarshal([]byte(raw), &accounts); err != nil {
		// The decoder's message may quote the Secret: keep it out.
		return nil, fmt.Errorf("%w: accountSecretRef: the Secret key holds no acme-dns accounts JSON ({\"example.com\": {\"username\": …}})", issuer.ErrPermanent)
	}
	client, err := goacmedns.NewClient(s.Settings["host"], goacmedns.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("%w: host %q: %w", issuer.ErrPermanent, s.Settings["host"], err)
	}
	return &acmeDNS{client: client, accounts: accounts}, nil
}

// Present sets the TXT record of the domain's acme-dns account; the
// domain's _acme-challenge name must be a CNAME to the account's fulldomain.
func (a *acmeDNS) Present(domain, _, keyAuth string) error {
	name := strings.TrimPrefix(domain, "*.")
	acct, ok := a.accounts[name]
	if !ok {
		return fmt.Errorf("%w: acme-dns: accountSecretRef has no account for %s", issuer.ErrPermanent, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), acmeDNSTimeout)
	defer cancel()
	if err := a.client.UpdateTXTRecord(ctx, acct, dns01.GetChallengeInfo(domain, keyAuth).Value); err != nil {
		return fmt.Errorf("acme-dns: %s: %w", name, err)
	}
	return nil
}

// CleanUp does nothing: an acme-dns account keeps only its two latest
// records, so the next Present replaces this one.
func (a *acmeDNS) CleanUp(string, string, string) error { return nil }
