package declared

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoSolver is wrapped when an ACME issuer cannot validate a
// Certificate's names: no solver selects a name, a wildcard reaches only
// HTTP-01, or the names need both challenge types.
var ErrNoSolver = errors.New("no usable ACME solver")

// SelectSolver picks the solver for one DNS name as cert-manager does:
// among the solvers whose selector admits the name (every matchLabels entry
// is on the Certificate; the name is listed in dnsNames or lies in one of
// dnsZones, when those are given), the most specific wins — a dnsNames
// match, then the longest matching dnsZone, then the most matchLabels, then
// a solver without selector; ties go to the first declared. It returns the
// index in solvers, or -1 when none applies.
func SelectSolver(solvers []Solver, name string, labels map[string]string) int {
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
func solverScore(sel *SolverSelector, name string, labels map[string]string) (int, bool) {
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

// SolverPlan is which solver serves each name of one order.
type SolverPlan struct {
	// HTTP01 names validated over HTTP-01; DNS01 maps each other name
	// (without "*.") to the index of its dns01 solver.
	HTTP01 []string
	DNS01  map[string]int
}

// PlanSolvers chooses the solver of every name and refuses, wrapping
// ErrNoSolver, what cannot work: a name no solver selects, a wildcard
// that only HTTP-01 would serve, an IP address that only DNS-01 would
// serve (RFC 8738 validates IP identifiers over HTTP-01 or TLS-ALPN-01,
// never DNS), or one order needing both HTTP-01 and DNS-01 (certsync
// validates an order with one challenge type). names may hold IP
// addresses; they are planned as HTTP-01 names.
func PlanSolvers(a *ACMEIssuer, names []string, labels map[string]string) (SolverPlan, error) {
	p := SolverPlan{DNS01: map[string]int{}}
	var dnsNames []string
	for _, n := range names {
		i := SelectSolver(a.Solvers, n, labels)
		switch {
		case i < 0:
			return p, fmt.Errorf("%w: no solver of the issuer selects %s: add one whose selector matches it (or one without selector)", ErrNoSolver, n)
		case a.Solvers[i].HTTP01 != nil:
			if strings.HasPrefix(n, "*.") {
				return p, fmt.Errorf("%w: %s: HTTP-01 cannot validate wildcard names; add a dns01 solver selected for %s (selector.dnsZones)", ErrNoSolver, n, strings.TrimPrefix(n, "*."))
			}
			p.HTTP01 = append(p.HTTP01, n)
		case isIPAddress(n):
			return p, fmt.Errorf("%w: %s is an IP address, which ACME validates over HTTP-01 only (RFC 8738), but the solver that selects it is dns01: add an http01 solver that selects it (one without selector, or with matchLabels)", ErrNoSolver, n)
		default:
			dnsNames = append(dnsNames, n)
			p.DNS01[strings.TrimPrefix(n, "*.")] = i
		}
	}
	if len(p.HTTP01) > 0 && len(dnsNames) > 0 {
		return p, fmt.Errorf("%w: names %v select HTTP-01 and %v select DNS-01; certsync validates one Certificate with one challenge type: split it into two Certificates or select the same solver type for all its names", ErrNoSolver, p.HTTP01, dnsNames)
	}
	return p, nil
}
