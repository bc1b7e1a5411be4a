package reconcile

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
)

// caDecl is a Certificate of ClusterIssuer issuer with its Secret named
// secret; isCA makes it a CA.
func caDecl(ns, name, secret, issuer string, isCA bool) declared.Certificate {
	c := decl(ns, name, name+".example.com")
	c.SecretName, c.IsCA, c.IssuerRef.Name = secret, isCA, issuer
	return c
}

// The bootstrap of cert-manager's documentation, and what goes wrong with
// it: root-ca (selfSigned) backs the ca issuer "root-ca", which signs
// shop/web; "inter" is an intermediate signed by root-ca backing the ca
// issuer "inter".
func TestPlanCASecrets(t *testing.T) {
	root := caDecl("cert-manager", "root", "root-ca", "selfsigned", true)
	inter := caDecl("cert-manager", "inter", "inter-ca", "root-ca", true)
	web := caDecl("shop", "web", "web-tls", "root-ca", false)
	webOfInter := caDecl("shop", "web", "web-tls", "inter", false)
	rootRec, webRec := issued(root, t0, "0a"), issued(web, t0, "0b")
	day := 24 * time.Hour

	// signing is the Signing of a pass: which CA Secret each Certificate
	// of a ca issuer signs with, and which Secrets exist.
	signing := func(available ...string) Signing {
		g := Signing{Secrets: map[string]string{"shop/web": "cert-manager/root-ca", "cert-manager/inter": "cert-manager/root-ca"}, Available: map[string]bool{}}
		for _, a := range available {
			g.Available[a] = true
		}
		return g
	}
	with := func(s State, g Signing) State { s.Signing = g; return s }

	tests := []struct {
		name       string
		state      State
		want       string // actions, "; "-joined
		wantReason string // substring of the reason of the action on shop/web
		soon       bool   // NextRenewal is Now: the next pass has work at once
	}{
		{name: "nothing committed: the root is issued, the leaf waits for it",
			state: with(state(t0, []declared.Certificate{root, web}), signing()),
			want:  "Issue cert-manager/root; Wait shop/web",
			wantReason: "no Secret committed; waiting for Secret cert-manager/root-ca, the CA of ClusterIssuer root-ca: " +
				"Certificate cert-manager/root issues it in this pass, and the next pass orders this one (a chain of CAs completes one level per pass)",
			soon: true},
		{name: "the root is committed: the leaf is issued",
			state: with(state(t0.Add(time.Minute), []declared.Certificate{root, web}, rootRec), signing("cert-manager/root-ca")),
			want:  "Issue shop/web", wantReason: "no Secret committed"},
		{name: "both committed: running again changes nothing",
			state: with(state(t0.Add(day), []declared.Certificate{root, web}, rootRec, webRec), signing("cert-manager/root-ca"))},
		{name: "the CA Secret is declared in the repository: no wait",
			state: with(state(t0, []declared.Certificate{web}), signing("cert-manager/root-ca")),
			want:  "Issue shop/web"},
		{name: "issuers may read the cluster's Secrets: no wait",
			state: with(state(t0, []declared.Certificate{web}), func() Signing { g := signing(); g.FromCluster = true; return g }()),
			want:  "Issue shop/web"},
		{name: "nothing issues the CA Secret: the user must fix it",
			state: with(state(t0, []declared.Certificate{web}), signing()),
			want:  "Wait shop/web", wantReason: "no Certificate issues it and the repository declares no such Secret — declare a Certificate with secretName root-ca in namespace cert-manager"},
		{name: "the root backs off after a failure: the leaf waits without hurry",
			state: func() State {
				s := with(state(t0, []declared.Certificate{root, web}), signing())
				s.Failures = map[string]Failure{root.Key(): {Count: 1, Last: t0, Err: "boom"}}
				return s
			}(),
			want: "Wait cert-manager/root; Wait shop/web", wantReason: "Certificate cert-manager/root will issue it once it can be ordered itself"},
		{name: "another agent orders the root: the leaf waits without hurry",
			state: func() State {
				s := with(state(t0, []declared.Certificate{root, web}), signing())
				s.Agent, s.Claims = "me", map[string]committed.Claim{rootRec.Path: {Agent: "other", Expires: t0.Add(time.Hour), Certificates: []string{rootRec.Path}}}
				return s
			}(),
			want: "Wait cert-manager/root; Wait shop/web", wantReason: "will issue it once it can be ordered itself"},
		{name: "a chain of three: one level per pass",
			state: with(state(t0, []declared.Certificate{root, inter, webOfInter}), func() Signing {
				g := signing()
				g.Secrets["shop/web"] = "cert-manager/inter-ca"
				return g
			}()),
			want: "Wait cert-manager/inter; Issue cert-manager/root; Wait shop/web", wantReason: "Certificate cert-manager/inter will issue it once it can be ordered itself", soon: true},
		{name: "a Certificate signed by its own Secret",
			state: with(state(t0, []declared.Certificate{caDecl("cert-manager", "loop", "root-ca", "root-ca", true)}),
				Signing{Secrets: map[string]string{"cert-manager/loop": "cert-manager/root-ca"}}),
			want: "Wait cert-manager/loop"},
		{name: "a fresh leaf whose CA is gone: nothing to do",
			state: with(state(t0.Add(day), []declared.Certificate{web}, webRec), signing())},
		{name: "a leaf due while its CA is gone waits, and is still applied",
			state: func() State {
				s := with(state(t0.Add(80*day), []declared.Certificate{web}, webRec), signing())
				delete(s.Observed, "shop/web-tls")
				return s
			}(),
			want: "Wait shop/web; Apply shop/web", wantReason: "renewal time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Calculate(tt.state)
			if got := kinds(p); got != tt.want {
				t.Fatalf("actions = %q, want %q\n%+v", got, tt.want, p.Actions)
			}
			if tt.wantReason != "" {
				found := false
				for _, a := range p.Actions {
					if a.Subject() == "shop/web" && a.Kind != Apply {
						found = true
						if !strings.Contains(a.Reason, tt.wantReason) {
							t.Errorf("reason %q lacks %q", a.Reason, tt.wantReason)
						}
					}
				}
				if !found {
					t.Errorf("no action on shop/web")
				}
			}
			if soon := p.NextRenewal.Equal(tt.state.Now); soon != tt.soon {
				t.Errorf("next renewal %s (now %s): soon = %v, want %v", p.NextRenewal, tt.state.Now, soon, tt.soon)
			}
			if again := Calculate(tt.state); kinds(again) != kinds(p) {
				t.Errorf("not a pure function: %q then %q", kinds(p), kinds(again))
			}
		})
	}
}

// readSigning finds the CA Secret of each Certificate, reports a CA that
// can never exist as a problem of the pass, and folds the CA's serial into
// the fingerprints (a re-issued CA releases a held-back failure).
func TestReadSigning(t *testing.T) {
	issuers := []declared.Issuer{
		{Kind: declared.KindClusterIssuer, Name: "selfsigned", SelfSigned: &declared.SelfSignedIssuer{}},
		{Kind: declared.KindClusterIssuer, Name: "root-ca", CA: &declared.CAIssuer{SecretName: "root-ca"}, Source: declared.Source{File: "issuers.yaml", Line: 7}},
		{Kind: declared.KindIssuer, Namespace: "shop", Name: "shop-ca", CA: &declared.CAIssuer{SecretName: "shop-ca"}},
		{Kind: declared.KindClusterIssuer, Name: "loop-a", CA: &declared.CAIssuer{SecretName: "a"}},
		{Kind: declared.KindClusterIssuer, Name: "loop-b", CA: &declared.CAIssuer{SecretName: "b"}},
	}
	root := caDecl("cert-manager", "root", "root-ca", "selfsigned", true)
	web := caDecl("shop", "web", "web-tls", "root-ca", false)
	shopWeb := caDecl("shop", "api", "api-tls", "shop-ca", false)
	shopWeb.IssuerRef.Kind = declared.KindIssuer
	loopA := caDecl("cert-manager", "a", "a", "loop-b", true)
	loopB := caDecl("cert-manager", "b", "b", "loop-a", true)
	loopLeaf := caDecl("shop", "leaf", "leaf-tls", "loop-a", false)
	rootRec := issued(root, t0, "0a")

	tests := []struct {
		name      string
		certs     []declared.Certificate
		recs      []committed.Certificate
		declared  []declared.Secret
		corrupt   bool
		want      map[string]string // Signing.Secrets
		available []string
		problem   string // substring of the first problem; "" for none
		problems  int    // how many; default one when problem is set
	}{
		{name: "the bootstrap before the first pass: the root will come", certs: []declared.Certificate{root, web},
			want: map[string]string{"shop/web": "cert-manager/root-ca"}},
		{name: "the root committed", certs: []declared.Certificate{root, web}, recs: []committed.Certificate{rootRec},
			want: map[string]string{"shop/web": "cert-manager/root-ca"}, available: []string{"cert-manager/root-ca"}},
		{name: "a corrupt root is not there", certs: []declared.Certificate{root, web}, recs: []committed.Certificate{rootRec}, corrupt: true,
			want: map[string]string{"shop/web": "cert-manager/root-ca"}},
		{name: "an Issuer's CA Secret is in its own namespace, declared", certs: []declared.Certificate{shopWeb},
			declared: []declared.Secret{{Namespace: "shop", Name: "shop-ca"}},
			want:     map[string]string{"shop/api": "shop/shop-ca"}, available: []string{"shop/shop-ca"}},
		{name: "nothing provides the CA: a problem", certs: []declared.Certificate{web},
			want:    map[string]string{"shop/web": "cert-manager/root-ca"},
			problem: "ClusterIssuer/root-ca (issuers.yaml:7): spec.ca.secretName: Secret cert-manager/root-ca is neither committed by certsync nor declared in the repository, and no Certificate issues it: declare a Certificate with secretName root-ca in namespace cert-manager (isCA, from a selfSigned issuer), or commit the Secret SOPS-encrypted; 1 Certificate waiting for it"},
		{name: "two CAs signing each other: a problem", certs: []declared.Certificate{loopA, loopB, loopLeaf},
			want: map[string]string{"cert-manager/a": "cert-manager/b", "cert-manager/b": "cert-manager/a", "shop/leaf": "cert-manager/a"},
			// One per issuer whose Secret can never exist.
			problem:  "ClusterIssuer/loop-a (): spec.ca.secretName: Secret cert-manager/a can never be issued: the Certificates that would issue it wait for one another (cert-manager/a (Certificate cert-manager/a) → cert-manager/b (Certificate cert-manager/b) → cert-manager/a); 2 Certificates waiting for it",
			problems: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := state(t0, tt.certs, tt.recs...)
			st.Fingerprints = map[string]string{}
			for _, c := range tt.certs {
				st.Fingerprints[c.Key()] = "f-" + c.Key()
			}
			if tt.corrupt {
				st.Corrupt = map[string]error{rootRec.Path: errors.New("MAC mismatch")}
			}
			p := &pass{set: declared.Set{Certificates: tt.certs, Issuers: issuers, Secrets: tt.declared}, state: st}
			(&Reconciler{}).readSigning(p)
			g := p.state.Signing
			if len(g.Secrets) != len(tt.want) {
				t.Errorf("Secrets %v, want %v", g.Secrets, tt.want)
			}
			for k, v := range tt.want {
				if g.Secrets[k] != v {
					t.Errorf("Secrets[%s] = %q, want %q", k, g.Secrets[k], v)
				}
			}
			for _, a := range tt.available {
				if !g.Available[a] {
					t.Errorf("%s is not available: %v", a, g.Available)
				}
			}
			if tt.corrupt && g.Available["cert-manager/root-ca"] {
				t.Error("a corrupt copy counts as available")
			}
			if tt.problem != "" && tt.problems == 0 {
				tt.problems = 1
			}
			if len(p.problems) != tt.problems || tt.problem != "" && !strings.Contains(p.problems[0].Error(), tt.problem) {
				t.Errorf("problems %v, want %d, the first with %q", p.problems, tt.problems, tt.problem)
			}
			// The CA's serial is part of the fingerprint of what it signs.
			if folded := p.state.Fingerprints["shop/web"] != "f-shop/web"; len(tt.recs) > 0 && !tt.corrupt && !folded {
				t.Error("the committed CA's serial is not in the fingerprint")
			}
			if p.state.Fingerprints["cert-manager/root"] != "f-cert-manager/root" && len(tt.recs) > 0 {
				t.Error("the fingerprint of a selfSigned Certificate changed")
			}
		})
	}
}
