package acme

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/go-acme/lego/v4/challenge"
	legodns "github.com/go-acme/lego/v4/providers/dns"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

// dnsProviders builds each DNS-01 solver's provider once per issuer, so two
// issuers with different credentials for the same service work side by
// side. Nothing here reads or writes the process environment except lego's
// own defaults (timeouts, TTLs) and the providers an operator allowed.
type dnsProviders struct {
	solvers []declared.Solver
	blocks  blockBuilder
	allowed []string

	mu    sync.Mutex
	built map[int]challenge.Provider
}

func newDNSProviders(solvers []declared.Solver, blocks blockBuilder, allowed []string) *dnsProviders {
	return &dnsProviders{solvers: solvers, blocks: blocks, allowed: allowed, built: map[int]challenge.Provider{}}
}

// get returns the provider of solver i, building it on first use. A failed
// build is not kept: the next order tries again (a Secret may have been
// committed meanwhile).
func (d *dnsProviders) get(ctx context.Context, i int) (challenge.Provider, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.built[i]; ok {
		return p, nil
	}
	s := d.solvers[i].DNS01
	var p challenge.Provider
	var err error
	if s.Provider == declared.DNS01Webhook {
		p, err = d.byName(s.SolverName)
	} else {
		p, err = d.blocks.build(ctx, s)
		if err != nil {
			err = fmt.Errorf("DNS-01 provider %s: %w", s.Provider, err)
		}
	}
	if err != nil {
		return nil, err
	}
	d.built[i] = p
	return p, nil
}

// byName builds a lego provider a webhook solver names. Such a provider
// reads its settings from the process environment and may run anything
// (exec runs EXEC_PATH), so the repository cannot choose one on its own:
// only the operator's allow-list can.
func (d *dnsProviders) byName(name string) (challenge.Provider, error) {
	if !slices.Contains(d.allowed, name) {
		return nil, fmt.Errorf("%w: DNS-01 provider %q is not allowed: it is named by the repository and would run with the agent's credentials; an operator can allow it with --dns01-allow-providers=%s", issuer.ErrPermanent, name, name)
	}
	p, err := legodns.NewDNSChallengeProviderByName(name)
	if err != nil {
		return nil, fmt.Errorf("DNS-01 provider %q: %w (it is configured from the agent's environment variables lego documents for it)", name, err)
	}
	return p, nil
}

// secretSource reads the Secret keys one issuer's manifest names, in the
// issuer's Secret namespace.
type secretSource struct {
	getter    issuer.SecretGetter
	namespace string
}

// value returns the value of the Secret key a *SecretRef field names,
// trimmed of surrounding whitespace (a Secret written from a file often
// ends with a newline no API accepts). field is the manifest field, for
// errors; the value itself never appears in one.
func (s secretSource) value(ctx context.Context, field string, ref declared.SecretKeySelector) (string, error) {
	if s.getter == nil {
		return "", fmt.Errorf("%w: %s refers to Secret %s/%s, but this certsync has no source of Secrets", issuer.ErrPermanent, field, s.namespace, ref.Name)
	}
	b, err := s.getter.SecretKey(ctx, s.namespace, ref.Name, ref.Key)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%w: %s: key %q of Secret %s/%s is empty", issuer.ErrPermanent, field, ref.Key, s.namespace, ref.Name)
	}
	return v, nil
}

// optional is value for a *SecretRef field the manifest may leave out:
// "" when it did.
func (s secretSource) optional(ctx context.Context, sol *declared.DNS01Solver, field string) (string, error) {
	ref, ok := sol.Secrets[field]
	if !ok {
		return "", nil
	}
	return s.value(ctx, field, ref)
}
