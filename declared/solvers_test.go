package declared

import (
	"errors"
	"strings"
	"testing"
)

func TestPlanSolvers(t *testing.T) {
	http := Solver{HTTP01: &HTTP01Solver{}}
	dns := func(sel *SolverSelector) Solver {
		return Solver{Selector: sel, DNS01: &DNS01Solver{Provider: DNS01RFC2136}}
	}
	tests := []struct {
		name    string
		solvers []Solver
		names   []string
		labels  map[string]string
		http    int            // names on HTTP-01
		dns     map[string]int // name → solver
		err     string
	}{
		{name: "default solver", solvers: []Solver{http}, names: []string{"a.example.com"}, http: 1},
		{name: "zone beats default", solvers: []Solver{http, dns(&SolverSelector{DNSZones: []string{"example.com"}})},
			names: []string{"*.example.com", "example.com"}, dns: map[string]int{"example.com": 1}},
		{name: "longest zone wins", solvers: []Solver{dns(&SolverSelector{DNSZones: []string{"example.com"}}), dns(&SolverSelector{DNSZones: []string{"shop.example.com"}})},
			names: []string{"a.shop.example.com"}, dns: map[string]int{"a.shop.example.com": 1}},
		{name: "dnsNames beat zones", solvers: []Solver{dns(&SolverSelector{DNSZones: []string{"shop.example.com"}}), dns(&SolverSelector{DNSNames: []string{"a.shop.example.com"}})},
			names: []string{"a.shop.example.com"}, dns: map[string]int{"a.shop.example.com": 1}},
		{name: "more labels win", solvers: []Solver{dns(&SolverSelector{MatchLabels: map[string]string{"a": "1"}}), dns(&SolverSelector{MatchLabels: map[string]string{"a": "1", "b": "2"}})},
			names: []string{"x.example.com"}, labels: map[string]string{"a": "1", "b": "2"}, dns: map[string]int{"x.example.com": 1}},
		{name: "first of equals", solvers: []Solver{dns(nil), dns(nil)}, names: []string{"x.example.com"}, dns: map[string]int{"x.example.com": 0}},
		{name: "no solver selects", solvers: []Solver{dns(&SolverSelector{DNSZones: []string{"example.org"}})}, names: []string{"x.example.com"},
			err: "no solver of the issuer selects x.example.com"},
		{name: "labels missing", solvers: []Solver{dns(&SolverSelector{MatchLabels: map[string]string{"team": "a"}})}, names: []string{"x.example.com"},
			err: "no solver of the issuer selects"},
		{name: "wildcard through HTTP-01", solvers: []Solver{http}, names: []string{"*.example.com"},
			err: "HTTP-01 cannot validate wildcard names; add a dns01 solver selected for example.com"},
		{name: "mixed types", solvers: []Solver{http, dns(&SolverSelector{DNSNames: []string{"b.example.com"}})}, names: []string{"a.example.com", "b.example.com"},
			err: "select HTTP-01 and [b.example.com] select DNS-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := PlanSolvers(&ACMEIssuer{Solvers: tt.solvers}, tt.names, tt.labels)
			if tt.err != "" {
				if !errors.Is(err, ErrNoSolver) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || len(p.HTTP01) != tt.http || len(p.DNS01) != len(tt.dns) {
				t.Fatalf("plan %+v, %v", p, err)
			}
			for n, i := range tt.dns {
				if p.DNS01[n] != i {
					t.Fatalf("%s: solver %d, want %d", n, p.DNS01[n], i)
				}
			}
		})
	}
}
