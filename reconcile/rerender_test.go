package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/render"
)

// renderedFor is rec as a render for c writes it: c's outputs, template
// and keystore passwords (passwords as State.KeystorePasswords has them).
func renderedFor(c declared.Certificate, rec committed.Certificate, passwords string) committed.Certificate {
	rec.OutputsHash, rec.Outputs = c.OutputsHash(), render.Outputs(&c)
	rec.TemplateHash, rec.KeystorePasswordsHash = c.TemplateHash(), passwords
	return rec
}

func withKeystore(c declared.Certificate, pw declared.KeystorePassword) declared.Certificate {
	c.Keystores.PKCS12 = &declared.PKCS12Keystore{Create: true, Profile: declared.PKCS12LegacyRC2, Password: pw}
	return c
}

func withLabels(c declared.Certificate, labels, annotations map[string]string) declared.Certificate {
	c.SecretTemplate = declared.SecretTemplate{Labels: labels, Annotations: annotations}
	return c
}

// What the Secret holds besides the certificate is rendered again, not
// ordered; an order, when one is due anyway, renders it too; an agent
// without the key falls back without ordering more than before.
func TestCalculateRerender(t *testing.T) {
	day := 24 * time.Hour
	literal := declared.KeystorePassword{Literal: "changeit"}
	fromSecret := declared.KeystorePassword{SecretRef: declared.SecretKeySelector{Name: "p12", Key: "password"}}
	web := withLabels(decl("shop", "web", "example.com"), map[string]string{"team": "web"}, map[string]string{"note": "a"})
	webP12 := withKeystore(web, literal)
	webRec := renderedFor(web, issued(web, t0, "01"), "")
	p12Rec := renderedFor(webP12, issued(webP12, t0, "01"), "")
	secretP12 := withKeystore(web, fromSecret)
	secretRec := renderedFor(secretP12, issued(secretP12, t0, "01"), "ciphertext-1")
	p := func(cluster string) string { return committed.SecretPath(cluster, "shop", "web-tls") }

	tests := []struct {
		name       string
		state      State
		want       string // describe(plan)
		wantReason string // substring of the first action's reason
		warning    string // substring of the only warning, when one is expected
	}{
		{name: "outputs and template as rendered: nothing to do",
			state: state(t0.Add(day), []declared.Certificate{webP12}, p12Rec)},
		{name: "a keystore added: re-render, no order",
			state: state(t0.Add(day), []declared.Certificate{webP12}, webRec),
			want:  "Rerender " + p("default"), wantReason: "keystores changed: pkcs12 added"},
		{name: "a keystore removed",
			state: state(t0.Add(day), []declared.Certificate{web}, p12Rec),
			want:  "Rerender " + p("default"), wantReason: "keystores changed: pkcs12 removed"},
		{name: "an output format added",
			state: func() State {
				c := web
				c.AdditionalOutputFormats = []string{declared.OutputDER}
				return state(t0.Add(day), []declared.Certificate{c}, webRec)
			}(),
			want: "Rerender " + p("default"), wantReason: "additionalOutputFormats changed: DER added"},
		{name: "the PKCS#12 profile changed",
			state: func() State {
				c := withKeystore(web, literal)
				c.Keystores.PKCS12.Profile = declared.PKCS12Modern2023
				return state(t0.Add(day), []declared.Certificate{c}, p12Rec)
			}(),
			want: "Rerender " + p("default"), wantReason: "keystores changed: profile, alias or password source"},
		{name: "a secretTemplate label changed",
			state: state(t0.Add(day), []declared.Certificate{withLabels(web, map[string]string{"team": "shop"}, map[string]string{"note": "a"})}, webRec),
			want:  "Rerender " + p("default"), wantReason: "secretTemplate labels changed"},
		{name: "secretTemplate annotations removed",
			state: state(t0.Add(day), []declared.Certificate{withLabels(web, map[string]string{"team": "web"}, nil)}, webRec),
			want:  "Rerender " + p("default"), wantReason: "secretTemplate annotations changed"},
		{name: "the whole secretTemplate removed",
			state: state(t0.Add(day), []declared.Certificate{withLabels(web, nil, nil)}, webRec),
			want:  "Rerender " + p("default"), wantReason: "secretTemplate labels and annotations changed"},
		{name: "the keystore password Secret changed in the repository",
			state: func() State {
				s := state(t0.Add(day), []declared.Certificate{secretP12}, secretRec)
				s.KeystorePasswords = map[string]string{secretP12.Key(): "ciphertext-2"}
				return s
			}(),
			want: "Rerender " + p("default"), wantReason: "keystore password Secret shop/p12 changed"},
		{name: "the keystore password Secret as rendered",
			state: func() State {
				s := state(t0.Add(day), []declared.Certificate{secretP12}, secretRec)
				s.KeystorePasswords = map[string]string{secretP12.Key(): "ciphertext-1"}
				return s
			}()},
		{name: "a due renewal with an outputs change: renew only, the order renders them",
			state: state(t0.Add(61*day), []declared.Certificate{webP12}, webRec),
			want:  "Renew " + p("default"), wantReason: "renewal time"},
		{name: "a changed spec with a template change: re-issue only",
			state: state(t0.Add(day), []declared.Certificate{withLabels(decl("shop", "web", "example.com", "www.example.com"), nil, nil)}, webRec),
			want:  "Reissue " + p("default"), wantReason: "dnsNames changed"},
		{name: "the cluster still has the old render of the same serial: apply",
			state: func() State {
				s := state(t0.Add(day), []declared.Certificate{webP12}, p12Rec)
				s.Observed["shop/web-tls"] = Observed{Serial: "01", Rendered: rendered(&webRec)}
				return s
			}(),
			want: "Apply " + p("default"), wantReason: `cluster has serial "01" rendered with other outputs`},
		{name: "while re-rendering, a stale cluster copy is restored from the old render first",
			state: func() State {
				s := state(t0.Add(day), []declared.Certificate{webP12}, webRec)
				delete(s.Observed, "shop/web-tls")
				return s
			}(),
			want: "Rerender " + p("default") + "; Apply " + p("default")},
		{name: "fan-out: one re-render writes every copy, replacing a missing one",
			state: func() State {
				s := state(t0.Add(day), []declared.Certificate{webP12})
				s.Cluster = "a"
				s.Targets = map[string][]string{webP12.Key(): {"a", "b", "c"}}
				s.Committed[p("a")], s.Committed[p("b")] = in("a", webRec), in("b", webRec)
				s.Observed["shop/web-tls"] = Observed{Serial: "01", Rendered: rendered(&webRec)}
				return s
			}(),
			want: "Rerender " + p("a") + " +" + p("b") + "," + p("c")},
		{name: "fan-out: a copy of the same serial rendered differently is copied",
			state: func() State {
				s := state(t0.Add(day), []declared.Certificate{webP12})
				s.Cluster = "a"
				s.Targets = map[string][]string{webP12.Key(): {"a", "b"}}
				s.Committed[p("a")], s.Committed[p("b")] = in("a", p12Rec), in("b", webRec)
				s.Observed["shop/web-tls"] = Observed{Serial: "01", Rendered: rendered(&p12Rec)}
				return s
			}(),
			want: "Copy " + p("b") + " <" + p("a"), wantReason: "rendered with other outputs"},
		{name: "an applier applies a new render of the same serial",
			state: func() State {
				s := state(t0.Add(day), []declared.Certificate{webP12}, p12Rec)
				s.ApplyOnly = true
				s.Observed["shop/web-tls"] = Observed{Serial: "01", Rendered: rendered(&webRec)}
				return s
			}(),
			want: "Apply " + p("default")},
		{name: "no key: an outputs change re-issues as before, and says why",
			state: func() State {
				s := state(t0.Add(day), []declared.Certificate{webP12}, webRec)
				s.NoKey = map[string]bool{p("default"): true}
				return s
			}(),
			want: "Reissue " + p("default"), wantReason: "keystores changed: pkcs12 added; this agent holds no key to decrypt " + p("default")},
		{name: "no key: a template change orders nothing and warns",
			state: func() State {
				s := state(t0.Add(day), []declared.Certificate{withLabels(web, map[string]string{"team": "shop"}, nil)}, webRec)
				s.NoKey = map[string]bool{p("default"): true}
				return s
			}(),
			warning: "not re-rendering 1 certificate (first: shop/web: secretTemplate labels and annotations changed): this agent holds no key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := Calculate(tt.state)
			if got := describe(plan); got != tt.want {
				t.Fatalf("plan %q, want %q (warnings %v)", got, tt.want, plan.Warnings)
			}
			if tt.wantReason != "" && !strings.Contains(plan.Actions[0].Reason, tt.wantReason) {
				t.Errorf("reason %q, want it to contain %q", plan.Actions[0].Reason, tt.wantReason)
			}
			switch {
			case tt.warning == "" && len(plan.Warnings) > 0:
				t.Errorf("warnings %v", plan.Warnings)
			case tt.warning != "" && (len(plan.Warnings) != 1 || !strings.Contains(plan.Warnings[0], tt.warning)):
				t.Errorf("warnings %v, want one containing %q", plan.Warnings, tt.warning)
			}
			if plan.Count(Rerender) > 0 && plan.Count(Issue)+plan.Count(Reissue)+plan.Count(Renew) > 0 {
				t.Errorf("a re-render planned with an order: %s", describe(plan))
			}
		})
	}
}

// TestCalculateRerenderIdempotent executes a plan's re-renders on the
// state (every copy rewritten for the declaration, the cluster given the
// new render) and checks that planning again finds nothing to do.
func TestCalculateRerenderIdempotent(t *testing.T) {
	one := withKeystore(decl("a", "one", "one.example.com"), declared.KeystorePassword{Literal: "x"})
	two := withLabels(decl("b", "two", "two.example.com"), map[string]string{"tier": "gold"}, nil)
	s := state(t0.Add(time.Hour), []declared.Certificate{one, two}, issued(one, t0, "01"), issued(two, t0, "02"))
	s.Targets = map[string][]string{one.Key(): {"default", "other"}}
	s.Committed[committed.SecretPath("other", "a", "one-tls")] = in("other", issued(one, t0, "01"))
	plan := Calculate(s)
	if plan.Count(Rerender) != 2 || len(plan.Actions) != 2 {
		t.Fatalf("first plan: %s", describe(plan))
	}
	for _, a := range plan.Actions {
		for _, path := range append([]string{a.Path}, a.Copies...) {
			rec := renderedFor(*a.Certificate, s.Committed[path], "")
			s.Committed[path] = rec
			if path == a.Path {
				s.Observed[rec.Namespace+"/"+rec.SecretName] = Observed{Serial: rec.Serial, Rendered: rendered(&rec)}
			}
		}
	}
	if again := Calculate(s); again.HasChanges() || len(again.Warnings) > 0 {
		t.Fatalf("second plan not empty: %s %v", describe(again), again.Warnings)
	}
}
