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

// SelectSolver picks the solver for one DNS name as cert-manager does:
// among the solvers whose selector admits the name (every matchLabels entry
// is on the Certificate; the name is listed in dnsNames or lies in one of
// dnsZones, when those are given), the most specific wins — a dnsNames
// match, then the longest matching dnsZone, then the most matchLabels, then
// a solver without selector; ties go to the first declared. It returns the
// index in solvers, or -1 when none applies.
func SelectSolver(solvers []declared.Solver, name string, labels map[string]string) int {
	best, bestScore := -1, -1
	for i, s := range solvers {
		score, ok := solverScore(s.Selector, name, labels)
		if ok && score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// solverScore ranks a selector for a name; ok is false when it does not apply.
func solverScore(sel *declared.SolverSelector, name string, labels map[string]string) (int, bool) {
	if sel == nil {
		return 0, true
	}
	for k, v := range sel.MatchLabels {
		if labels[k] != v {
			return 0, false
		}
	}
	labelScore := len(sel.MatchLabels)
	if len(sel.DNSNames) == 0 && len(sel.DNSZones) == 0 {
		return 1 + labelScore, true
	}
	for _, n := range sel.DNSNames {
		if n == name {
			return 1_000_000 + labelScore, true
		}
	}
	zone := -1
	bare := strings.TrimPrefix(name, "*.")
	for _, z := range sel.DNSZones {
		if bare == z || strings.HasSuffix(bare, "."+z) {
			zone = max(zone, len(z))
		}
	}
	if zone < 0 {
		return 0, false
	}
	return 1000 + zone*100 + labelScore, true
}

// plan is which solver serves each name of one order.
type plan struct {
	http01 bool
	dns    map[string]int // name (without "*.") → solver index
}

// planSolvers chooses solvers for every name and refuses what cannot work:
// no solver, HTTP-01 for a wildcard, or one order needing both HTTP-01 and
// DNS-01 (lego v4 validates each order with one challenge type).
func planSolvers(a *declared.ACMEIssuer, names []string, labels map[string]string, haveHTTP bool) (plan, error) {
	p := plan{dns: map[string]int{}}
	var httpNames, dnsNames []string
	for _, n := range names {
		i := SelectSolver(a.Solvers, n, labels)
		switch {
		case i < 0:
			return p, fmt.Errorf("%w: no solver of the issuer selects %s: add one whose selector matches it (or one without selector)", issuer.ErrPermanent, n)
		case a.Solvers[i].HTTP01 != nil:
			if strings.HasPrefix(n, "*.") {
				return p, fmt.Errorf("%w: %s: HTTP-01 cannot validate wildcard names; add a dns01 solver selected for %s (selector.dnsZones)", issuer.ErrPermanent, n, strings.TrimPrefix(n, "*."))
			}
			if !haveHTTP {
				return p, fmt.Errorf("%w: %s needs HTTP-01 but certsync has no HTTP-01 listener (--http01-addr)", issuer.ErrPermanent, n)
			}
			httpNames = append(httpNames, n)
		default:
			dnsNames = append(dnsNames, n)
			p.dns[strings.TrimPrefix(n, "*.")] = i
		}
	}
	if len(httpNames) > 0 && len(dnsNames) > 0 {
		return p, fmt.Errorf("%w: names %v select HTTP-01 and %v select DNS-01; certsync validates one Certificate with one challenge type: split it into two Certificates or select the same solver type for all its names", issuer.ErrPermanent, httpNames, dnsNames)
	}
	p.http01 = len(httpNames) > 0
	return p, nil
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
