package acme

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	legodns "github.com/go-acme/lego/v4/providers/dns"

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

// envMu serialises DNS provider construction: lego's registry configures
// providers only through environment variables read at construction, so a
// solver's config is put in the environment for that moment alone. The
// environment is process-wide, so this lock is too.
var envMu sync.Mutex

// dnsProviders builds each DNS-01 solver's lego provider once.
type dnsProviders struct {
	solvers []declared.Solver
	mu      sync.Mutex
	built   map[int]challenge.Provider
}

func newDNSProviders(solvers []declared.Solver) *dnsProviders {
	return &dnsProviders{solvers: solvers, built: map[int]challenge.Provider{}}
}

func (d *dnsProviders) get(i int) (challenge.Provider, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.built[i]; ok {
		return p, nil
	}
	s := d.solvers[i].DNS01
	envMu.Lock()
	restore := map[string]*string{}
	for k, v := range s.Config {
		if old, ok := os.LookupEnv(k); ok {
			restore[k] = &old
		} else {
			restore[k] = nil
		}
		os.Setenv(k, v)
	}
	p, err := legodns.NewDNSChallengeProviderByName(s.Provider)
	for k, old := range restore {
		if old == nil {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, *old)
		}
	}
	envMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("DNS-01 provider %q: %w (credentials come from the environment variables lego documents for it)", s.Provider, err)
	}
	d.built[i] = p
	return p, nil
}

// router sends each name's DNS-01 record to the provider of its solver.
type router struct {
	d   *dnsProviders
	dns map[string]int
}

func (r router) provider(domain string) (challenge.Provider, error) {
	i, ok := r.dns[strings.TrimPrefix(domain, "*.")]
	if !ok {
		return nil, fmt.Errorf("no DNS-01 solver chosen for %s", domain)
	}
	return r.d.get(i)
}

func (r router) Present(domain, token, keyAuth string) error {
	p, err := r.provider(domain)
	if err != nil {
		return err
	}
	return p.Present(domain, token, keyAuth)
}

func (r router) CleanUp(domain, token, keyAuth string) error {
	p, err := r.provider(domain)
	if err != nil {
		return err
	}
	return p.CleanUp(domain, token, keyAuth)
}

// dnsOptions turns DNS01Options into lego's options. lego keeps them in
// package variables, so they are the same for every issuer of the process.
func dnsOptions(o DNS01Options) []dns01.ChallengeOption {
	var opts []dns01.ChallengeOption
	if len(o.RecursiveNameservers) > 0 {
		opts = append(opts, dns01.AddRecursiveNameservers(o.RecursiveNameservers))
	}
	if !o.CheckPropagation {
		opts = append(opts, dns01.WrapPreCheck(func(_, _, _ string, _ dns01.PreCheckFunc) (bool, error) { return true, nil }))
	}
	if o.PropagationTimeout > 0 {
		opts = append(opts, dns01.AddDNSTimeout(o.PropagationTimeout))
	}
	return opts
}
