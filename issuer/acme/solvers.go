package acme

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

// SelectSolver is declared.SelectSolver, kept for callers of this package.
func SelectSolver(solvers []declared.Solver, name string, labels map[string]string) int {
	return declared.SelectSolver(solvers, name, labels)
}

// plan is which solver serves each name of one order.
type plan struct {
	http01 bool
	dns    map[string]int // name (without "*.") → solver index
}

// planSolvers applies declared.PlanSolvers (the rules validation also
// checks) and this agent's own limit: HTTP-01 needs its listener.
func planSolvers(a *declared.ACMEIssuer, names []string, labels map[string]string, haveHTTP bool) (plan, error) {
	sp, err := declared.PlanSolvers(a, names, labels)
	if err != nil {
		return plan{}, fmt.Errorf("%w: %w", issuer.ErrPermanent, err)
	}
	if len(sp.HTTP01) > 0 && !haveHTTP {
		return plan{}, fmt.Errorf("%w: %s needs HTTP-01 but certsync has no HTTP-01 listener (--http01-addr)", issuer.ErrPermanent, sp.HTTP01[0])
	}
	return plan{http01: len(sp.HTTP01) > 0, dns: sp.DNS01}, nil
}

// router sends each name's DNS-01 record to the provider of its solver.
// It is built per order, after every provider it needs was built.
type router struct {
	routes map[string]challenge.Provider // name without "*." → provider
	// timeout and interval bound lego's wait for the record to be visible
	// (challenge.ProviderTimeout).
	timeout, interval time.Duration
}

func (r *router) provider(domain string) (challenge.Provider, error) {
	p, ok := r.routes[strings.TrimPrefix(domain, "*.")]
	if !ok {
		return nil, fmt.Errorf("no DNS-01 solver chosen for %s", domain)
	}
	return p, nil
}

func (r *router) Present(domain, token, keyAuth string) error {
	p, err := r.provider(domain)
	if err != nil {
		return err
	}
	return p.Present(domain, token, keyAuth)
}

func (r *router) CleanUp(domain, token, keyAuth string) error {
	p, err := r.provider(domain)
	if err != nil {
		return err
	}
	return p.CleanUp(domain, token, keyAuth)
}

func (r *router) Timeout() (timeout, interval time.Duration) { return r.timeout, r.interval }

// sequential is lego's optional capability of providers that must solve
// one name at a time (rfc2136 replaces the whole TXT set: the apex and the
// wildcard of one name would overwrite each other's record).
type sequential interface {
	Sequential() time.Duration
}

// sequentialRouter is a router lego solves one name at a time, waiting
// wait between names.
type sequentialRouter struct {
	*router
	wait time.Duration
}

func (s sequentialRouter) Sequential() time.Duration { return s.wait }

// newRouter routes names to providers. It waits for propagation as long as
// the slowest of them asks (or propagationTimeout when set), and solves
// sequentially when any of them asks for it.
func newRouter(routes map[string]challenge.Provider, propagationTimeout time.Duration) challenge.Provider {
	r := &router{routes: routes, timeout: dns01.DefaultPropagationTimeout, interval: dns01.DefaultPollingInterval}
	seq, wait := false, time.Duration(0)
	for _, p := range routes {
		if t, ok := p.(challenge.ProviderTimeout); ok {
			timeout, interval := t.Timeout()
			r.timeout, r.interval = max(r.timeout, timeout), max(r.interval, interval)
		}
		if s, ok := p.(sequential); ok {
			seq, wait = true, max(wait, s.Sequential())
		}
	}
	if propagationTimeout > 0 {
		r.timeout = propagationTimeout
	}
	if seq {
		return sequentialRouter{router: r, wait: wait}
	}
	return r
}

// lego keeps the recursive nameservers in a package variable that every
// DNS-01 order reads while it runs; setting it per order races with the
// orders in flight. It is set once per process, by the first DNS-01 order
// (certsync's settings are per process anyway).
var recursiveNameservers sync.Once

// dnsOptions turns DNS01Options into lego's options for one order.
func dnsOptions(o DNS01Options) []dns01.ChallengeOption {
	recursiveNameservers.Do(func() {
		if len(o.RecursiveNameservers) > 0 {
			dns01.AddRecursiveNameservers(o.RecursiveNameservers)(nil)
		}
	})
	var opts []dns01.ChallengeOption
	if !o.CheckPropagation {
		opts = append(opts, dns01.WrapPreCheck(func(_, _, _ string, _ dns01.PreCheckFunc) (bool, error) { return true, nil }))
	}
	return opts
}
