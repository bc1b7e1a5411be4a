package reconcile

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func decl(ns, name string, dns ...string) declared.Certificate {
	return declared.Certificate{
		Namespace: ns, Name: name, SecretName: name + "-tls", DNSNames: dns,
		Source:     declared.Source{File: "certs/" + name + ".yaml", Line: 1},
		Duration:   declared.DefaultDuration,
		PrivateKey: declared.KeySpec{Algorithm: declared.RSA, Size: 2048, RotationPolicy: declared.RotateAlways},
		IssuerRef:  declared.IssuerRef{Name: "le", Kind: declared.KindClusterIssuer, Group: "cert-manager.io"},
	}
}

// issued is the record a pass commits for c, valid for 90 days from at.
func issued(c declared.Certificate, at time.Time, serial string) committed.Certificate {
	return committed.Certificate{
		Path: committed.SecretPath("default", c.Namespace, c.SecretName), Cluster: "default",
		Namespace: c.Namespace, SecretName: c.SecretName, Certificate: c.Key(),
		CommonName: c.CommonName, DNSNames: c.DNSNames,
		IssuerName: c.IssuerRef.Name, IssuerKind: c.IssuerRef.Kind,
		PrivateKey: c.PrivateKey.String(), SpecHash: c.SpecHash(),
		NotBefore: at, NotAfter: at.Add(90 * 24 * time.Hour), IssuedAt: at, Serial: serial,
		Recipients: []string{"age1a"},
		Source:     c.Source.File,
		Encrypted:  true,
	}
}

func state(now time.Time, certs []declared.Certificate, recs ...committed.Certificate) State {
	s := State{Now: now, Cluster: "default", Certificates: certs, Committed: map[string]committed.Certificate{},
		ClusterKnown: true, Observed: map[string]Observed{}}
	for _, r := range recs {
		s.Committed[r.Path] = r
		s.Observed[r.Namespace+"/"+r.SecretName] = Observed{Serial: r.Serial, Certificate: r.Certificate, Source: r.Source, Rendered: rendered(&r)}
	}
	return s
}

func kinds(p Plan) string {
	var out []string
	for _, a := range p.Actions {
		out = append(out, string(a.Kind)+" "+a.Subject())
	}
	return strings.Join(out, "; ")
}

func TestCalculate(t *testing.T) {
	web, api := decl("shop", "web", "example.com", "*.example.com"), decl("api", "api", "api.example.com")
	webRec, apiRec := issued(web, t0, "01"), issued(api, t0, "02")
	day := 24 * time.Hour

	tests := []struct {
		name       string
		state      State
		want       string // actions, "; "-joined
		wantReason string // substring of the first action's reason
	}{
		{name: "nothing committed: issue all", state: state(t0, []declared.Certificate{web, api}),
			want: "Issue api/api; Issue shop/web", wantReason: "no Secret committed"},
		{name: "all fresh: nothing to do", state: state(t0.Add(day), []declared.Certificate{web, api}, webRec, apiRec)},
		{name: "renewal at two thirds of the lifetime", state: state(t0.Add(61*day), []declared.Certificate{web}, webRec),
			want: "Renew shop/web", wantReason: "renewal time"},
		{name: "not yet at two thirds", state: state(t0.Add(58*day), []declared.Certificate{web}, webRec)},
		{name: "dnsNames changed", state: state(t0, []declared.Certificate{decl("shop", "web", "example.com")}, webRec),
			want: "Reissue shop/web", wantReason: "dnsNames changed"},
		{name: "key spec changed", state: func() State {
			c := web
			c.PrivateKey = declared.KeySpec{Algorithm: declared.ECDSA, Size: 256}
			return state(t0, []declared.Certificate{c}, webRec)
		}(), want: "Reissue shop/web", wantReason: "private key changed: RSA-2048 → ECDSA-256"},
		{name: "issuer changed", state: func() State {
			c := web
			c.IssuerRef.Name = "other"
			return state(t0, []declared.Certificate{c}, webRec)
		}(), want: "Reissue shop/web", wantReason: "issuer changed"},
		{name: "unreadable committed file", state: func() State {
			s := state(t0, []declared.Certificate{web})
			s.Unreadable = map[string]error{webRec.Path: errors.New("malformed YAML")}
			return s
		}(), want: "Reissue shop/web", wantReason: "unreadable"},
		{name: "missing in cluster: apply", state: func() State {
			s := state(t0, []declared.Certificate{web}, webRec)
			delete(s.Observed, "shop/web-tls")
			return s
		}(), want: "Apply shop/web", wantReason: "missing in the cluster"},
		{name: "edited in cluster: apply", state: func() State {
			s := state(t0, []declared.Certificate{web}, webRec)
			s.Observed["shop/web-tls"] = Observed{Serial: "01", Drifted: true}
			return s
		}(), want: "Apply shop/web", wantReason: "edited in the cluster"},
		{name: "no cluster configured: never apply", state: func() State {
			s := state(t0, []declared.Certificate{web}, webRec)
			s.ClusterKnown, s.Observed = false, nil
			return s
		}()},
		{name: "recipients changed: re-encrypt, no order", state: func() State {
			s := state(t0, []declared.Certificate{web}, webRec)
			s.DesiredRecipients = map[string][]string{webRec.Path: {"age1b", "age1a"}}
			return s
		}(), want: "Reencrypt shop/web", wantReason: "recipients changed"},
		{name: "account key recipients changed: re-encrypt it", state: func() State {
			s := state(t0, []declared.Certificate{web}, webRec)
			s.Accounts = map[string][]string{"accounts/clusterissuers/le.yaml": {"age1a"}}
			s.DesiredRecipients = map[string][]string{"accounts/clusterissuers/le.yaml": {"age1a", "age1b"}, webRec.Path: {"age1a"}}
			return s
		}(), want: "Reencrypt /accounts/clusterissuers/le.yaml", wantReason: "ACME account key: recipients changed"},
		{name: "declaration removed: prune file and Secret", state: state(t0, []declared.Certificate{web}, webRec, apiRec),
			want: "PruneFile api/api-tls; PruneSecret api/api-tls"},
		{name: "any problem in the pass blocks every prune", state: func() State {
			s := state(t0, []declared.Certificate{web}, webRec, apiRec)
			s.PruneBlockers = []string{"certs/other.yaml:3: kind Certficate is not a cert-manager kind"}
			return s
		}()},
		{name: "plaintext data committed: re-issue with a new key", state: func() State {
			rec := webRec
			rec.PlaintextData = []string{"data.tls.crt", "data.tls.key"}
			return state(t0, []declared.Certificate{web}, rec)
		}(), want: "Reissue shop/web", wantReason: "private key exposed: data.tls.crt, data.tls.key was committed in plaintext"},
		{name: "committed without SOPS at all: re-issue", state: func() State {
			rec := webRec
			rec.Encrypted = false
			return state(t0, []declared.Certificate{web}, rec)
		}(), want: "Reissue shop/web", wantReason: "the whole Secret was committed in plaintext"},
		{name: "plaintext data with rotationPolicy Never: re-encrypt only", state: func() State {
			c := web
			c.PrivateKey.RotationPolicy = declared.RotateNever
			rec := issued(c, t0, "01")
			rec.PlaintextData = []string{"data.tls.key"}
			return state(t0, []declared.Certificate{c}, rec)
		}(), want: "Reencrypt shop/web", wantReason: "rotationPolicy Never"},
		{name: "committed file failed verification: repair", state: func() State {
			s := state(t0, []declared.Certificate{web}, webRec)
			s.Corrupt = map[string]error{webRec.Path: errors.New("MAC mismatch")}
			return s
		}(), want: "Reissue shop/web", wantReason: "failed verification: MAC mismatch"},
		{name: "account key committed in plaintext: encrypt it", state: func() State {
			s := state(t0, []declared.Certificate{web}, webRec)
			s.Accounts = map[string][]string{"accounts/clusterissuers/le.yaml": {"age1a"}}
			s.AccountsExposed = map[string][]string{"accounts/clusterissuers/le.yaml": {"data.tls.key"}}
			return s
		}(), want: "Reencrypt /accounts/clusterissuers/le.yaml", wantReason: "in plaintext"},
		{name: "backing off after a failure", state: func() State {
			s := state(t0, []declared.Certificate{web})
			s.Failures = map[string]Failure{"shop/web": {Count: 2, Last: t0.Add(-time.Hour), Err: "rateLimited"}}
			return s
		}(), want: "Wait shop/web", wantReason: "retrying after 2026-11-01T01:00:00Z"},
		{name: "backoff over: order again", state: func() State {
			s := state(t0, []declared.Certificate{web})
			s.Failures = map[string]Failure{"shop/web": {Count: 1, Last: t0.Add(-2 * time.Hour)}}
			return s
		}(), want: "Issue shop/web"},
		{name: "manual renewal request", state: func() State {
			s := state(t0.Add(day), []declared.Certificate{web}, webRec)
			s.RenewRequests = map[string]time.Time{"shop/web": t0.Add(day)}
			return s
		}(), want: "Renew shop/web", wantReason: "renewal requested"},
		{name: "old renewal request already served", state: func() State {
			s := state(t0.Add(day), []declared.Certificate{web}, webRec)
			s.RenewRequests = map[string]time.Time{"shop/web": t0.Add(-day)}
			return s
		}()},
		{name: "claimed by another agent: wait", state: claimed(state(t0, []declared.Certificate{web, api}), "agent-b", t0.Add(time.Minute), webRec.Path),
			want: "Issue api/api; Wait shop/web"},
		{name: "another agent's claim lapsed: order", state: claimed(state(t0, []declared.Certificate{web}), "agent-b", t0, webRec.Path),
			want: "Issue shop/web"},
		{name: "own claim (a restart): order", state: claimed(state(t0, []declared.Certificate{web}), "agent-a", t0.Add(time.Minute), webRec.Path),
			want: "Issue shop/web"},
		{name: "the CA moved the renewal window forward: renew", state: func() State {
			s := state(t0.Add(day), []declared.Certificate{web}, webRec)
			s.Windows = map[string]Window{webRec.Path: {Serial: webRec.Serial, Start: t0, End: t0.Add(time.Hour)}}
			return s
		}(), want: "Renew shop/web", wantReason: "moved the renewal window"},
		{name: "a window polled for an older serial is ignored", state: func() State {
			s := state(t0.Add(day), []declared.Certificate{web}, webRec)
			s.Windows = map[string]Window{webRec.Path: {Serial: "00", Start: t0, End: t0.Add(time.Hour)}}
			return s
		}()},
		{name: "a claim on a certificate that is not due changes nothing", state: claimed(state(t0.Add(day), []declared.Certificate{web}, webRec), "agent-b", t0.Add(2*day), webRec.Path)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Calculate(tt.state)
			if got := kinds(p); got != tt.want {
				t.Fatalf("actions = %q, want %q (warnings %v)", got, tt.want, p.Warnings)
			}
			if tt.wantReason != "" && !strings.Contains(p.Actions[0].Reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", p.Actions[0].Reason, tt.wantReason)
			}
			if p.HasChanges() != (tt.want != "" && !strings.HasPrefix(tt.want, "Wait")) {
				t.Errorf("HasChanges = %v for %q", p.HasChanges(), tt.want)
			}
		})
	}
}

// TestCalculateIdempotent applies a plan's orders to the state and checks
// that planning again finds nothing to do.
func TestCalculateIdempotent(t *testing.T) {
	certs := []declared.Certificate{decl("a", "one", "one.example.com"), decl("b", "two", "two.example.com")}
	s := state(t0, certs)
	p := Calculate(s)
	if p.Count(Issue) != 2 {
		t.Fatalf("first plan: %s", kinds(p))
	}
	for i, a := range p.Actions {
		rec := issued(*a.Certificate, t0, string(rune('a'+i)))
		s.Committed[rec.Path] = rec
		s.Observed[rec.Namespace+"/"+rec.SecretName] = Observed{Serial: rec.Serial}
	}
	if again := Calculate(s); again.HasChanges() {
		t.Fatalf("second plan not empty: %s", kinds(again))
	}
}

func TestFreshKeyOnDistrust(t *testing.T) {
	c := decl("shop", "web", "example.com")
	c.PrivateKey.RotationPolicy = declared.RotateNever
	rec := issued(c, t0, "01")
	s := state(t0, []declared.Certificate{c}, rec)
	s.Corrupt = map[string]error{rec.Path: errors.New("serial differs")}
	p := Calculate(s)
	if len(p.Actions) != 1 || !p.Actions[0].FreshKey {
		t.Fatalf("a corrupt file's key must not be reused even with rotationPolicy Never: %+v", p.Actions)
	}
}

func TestPruneBlockedWarns(t *testing.T) {
	web, api := decl("shop", "web", "example.com"), decl("api", "api", "api.example.com")
	s := state(t0, []declared.Certificate{web}, issued(web, t0, "01"), issued(api, t0, "02"))
	s.PruneBlockers = []string{"certs/api.yaml:2: apiVersion cert-manger.io/v1"}
	p := Calculate(s)
	if p.HasChanges() || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "cert-manger.io") || !strings.Contains(p.Warnings[0], "nothing is pruned") {
		t.Fatalf("plan %s, warnings %v", kinds(p), p.Warnings)
	}
}

// One limit covers files and Secrets: Secrets alone past the share are
// refused too.
func TestPruneLimitCountsSecrets(t *testing.T) {
	var certs []declared.Certificate
	var recs []committed.Certificate
	for i := range 10 {
		c := decl("ns", "c"+string(rune('a'+i)), "x.example.com")
		certs = append(certs, c)
		recs = append(recs, issued(c, t0, "s"))
	}
	s := state(t0, certs, recs...)
	for i := range 5 { // Secrets this agent owns with no file and no declaration
		s.Observed["old/s"+string(rune('a'+i))] = Observed{Serial: "x"}
	}
	p := Calculate(s)
	if p.Count(PruneSecret) != 0 || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "5 of 15") {
		t.Fatalf("Secret prunes not limited: %s %v", kinds(p), p.Warnings)
	}
}

func TestPruneLimit(t *testing.T) {
	var certs []declared.Certificate
	var recs []committed.Certificate
	for i := range 20 {
		c := decl("ns", "c"+string(rune('a'+i)), "x.example.com")
		certs = append(certs, c)
		recs = append(recs, issued(c, t0, "s"))
	}
	s := state(t0, certs[:15], recs...) // 5 of 20 removed: 25% > 10%
	p := Calculate(s)
	if p.Count(PruneFile) != 0 || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "--force-prune") {
		t.Fatalf("prune not refused: %s %v", kinds(p), p.Warnings)
	}
	s.Policy.ForcePrune = true
	if p := Calculate(s); p.Count(PruneFile) != 5 || p.Count(PruneSecret) != 5 {
		t.Fatalf("forced prune: %s", kinds(p))
	}
}

func TestRenewalTime(t *testing.T) {
	hour := time.Hour
	tests := []struct {
		name        string
		renewBefore time.Duration
		pct         int
		window      [2]time.Time
		lifetime    time.Duration
		wantBefore  time.Duration // renewal ≈ notAfter − wantBefore, within jitter
	}{
		{name: "default third", lifetime: 90 * 24 * hour, wantBefore: 30 * 24 * hour},
		{name: "renewBefore", renewBefore: 240 * hour, lifetime: 90 * 24 * hour, wantBefore: 240 * hour},
		{name: "renewBefore longer than lifetime ignored", renewBefore: 100 * 24 * hour, lifetime: 90 * 24 * hour, wantBefore: 30 * 24 * hour},
		{name: "percentage", pct: 25, lifetime: 60 * 24 * hour, wantBefore: 15 * 24 * hour},
		{name: "short-lived", lifetime: 6 * hour, wantBefore: 2 * hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := decl("a", "b", "b.example.com")
			c.RenewBefore, c.RenewBeforePercentage = tt.renewBefore, tt.pct
			rec := committed.Certificate{NotBefore: t0, NotAfter: t0.Add(tt.lifetime), Serial: "abc"}
			got := rec.NotAfter.Sub(RenewalTime(&c, &rec, Policy{}))
			if got < tt.wantBefore || got > tt.wantBefore+tt.wantBefore/40+time.Second {
				t.Errorf("renews %s before expiry, want %s (+≤2%% jitter)", got, tt.wantBefore)
			}
		})
	}
	t.Run("ARI window wins", func(t *testing.T) {
		c := decl("a", "b", "b.example.com")
		rec := committed.Certificate{NotBefore: t0, NotAfter: t0.Add(90 * 24 * hour), Serial: "abc",
			RenewalWindowStart: t0.Add(50 * 24 * hour), RenewalWindowEnd: t0.Add(51 * 24 * hour)}
		got := RenewalTime(&c, &rec, Policy{})
		if got.Before(rec.RenewalWindowStart) || got.After(rec.RenewalWindowEnd) {
			t.Errorf("renewal %s outside the ARI window", got)
		}
	})
	t.Run("jitter spreads certificates issued together", func(t *testing.T) {
		c := decl("a", "b", "b.example.com")
		seen := map[time.Time]bool{}
		for i := range 100 {
			rec := committed.Certificate{NotBefore: t0, NotAfter: t0.Add(90 * 24 * hour), Serial: string(rune(1000 + i))}
			seen[RenewalTime(&c, &rec, Policy{})] = true
		}
		if len(seen) < 90 {
			t.Errorf("100 certificates renew at only %d distinct times", len(seen))
		}
	})
}

func TestNextAttempt(t *testing.T) {
	for _, tt := range []struct {
		count int
		retry time.Time
		want  time.Duration
	}{
		{1, time.Time{}, time.Hour}, {2, time.Time{}, 2 * time.Hour}, {4, time.Time{}, 8 * time.Hour},
		{20, time.Time{}, 32 * time.Hour}, {1, t0.Add(5 * time.Hour), 5 * time.Hour},
	} {
		if got := NextAttempt(Failure{Count: tt.count, Last: t0, RetryAfter: tt.retry}, Policy{}).Sub(t0); got != tt.want {
			t.Errorf("failure %d: next attempt after %s, want %s", tt.count, got, tt.want)
		}
	}
}

// A CA that leaves the commonName out of the certificate (Pebble, Let's
// Encrypt's newer profiles) must not cause a re-issue on every pass.
func TestCommonNameDroppedByCA(t *testing.T) {
	c := decl("shop", "web", "example.com")
	c.CommonName = "example.com"
	rec := issued(c, t0, "01")
	rec.CommonName = ""
	if p := Calculate(state(t0.Add(time.Hour), []declared.Certificate{c}, rec)); p.HasChanges() {
		t.Fatalf("re-issue loop: %s", kinds(p))
	}
	c.CommonName = "www.example.com"
	c.DNSNames = []string{"example.com", "www.example.com"}
	rec.DNSNames = c.DNSNames
	if p := Calculate(state(t0.Add(time.Hour), []declared.Certificate{c}, rec)); p.Count(Reissue) != 1 {
		t.Fatalf("a changed commonName must still re-issue: %s", kinds(p))
	}
}

// claimed marks paths as claimed by agent until expires, in a state whose
// own agent is "agent-a".
func claimed(s State, agent string, expires time.Time, paths ...string) State {
	s.Agent = "agent-a"
	s.Claims = map[string]committed.Claim{}
	for _, p := range paths {
		s.Claims[p] = committed.Claim{Agent: agent, Expires: expires, Certificates: paths}
	}
	return s
}
