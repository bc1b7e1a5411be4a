package reconcile

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
)

// in moves a record to another cluster's folder.
func in(cluster string, rec committed.Certificate) committed.Certificate {
	rec.Cluster = cluster
	rec.Path = committed.SecretPath(cluster, rec.Namespace, rec.SecretName)
	return rec
}

// describe lists actions with their paths, copies and sources.
func describe(p Plan) string {
	var out []string
	for _, a := range p.Actions {
		s := string(a.Kind) + " " + a.Path
		if len(a.Copies) > 0 {
			s += " +" + strings.Join(a.Copies, ",")
		}
		if a.From != "" {
			s += " <" + a.From
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

func TestFanOut(t *testing.T) {
	web := decl("shop", "web", "example.com")
	day := 24 * time.Hour
	rec := issued(web, t0, "01")
	newer := issued(web, t0.Add(10*day), "02")
	p := func(cluster string) string { return committed.SecretPath(cluster, "shop", "web-tls") }
	fanned := func(now time.Time, own string, clusters []string, recs ...committed.Certificate) State {
		s := state(now, []declared.Certificate{web})
		s.Cluster = own
		s.Targets = map[string][]string{web.Key(): clusters}
		for _, r := range recs {
			s.Committed[r.Path] = r
		}
		return s
	}
	tests := []struct {
		name  string
		state State
		want  string
	}{
		{name: "one order for every cluster, own first",
			state: fanned(t0, "b", []string{"a", "b", "c"}),
			want:  "Issue " + p("b") + " +" + p("a") + "," + p("c")},
		{name: "an issuer outside the clusters orders for the first one",
			state: func() State { s := fanned(t0, "issuer", []string{"a", "b"}); s.ClusterKnown = false; return s }(),
			want:  "Issue " + p("a") + " +" + p("b")},
		{name: "a cluster added later gets a copy, no order; the own copy is applied after the commit",
			state: fanned(t0.Add(day), "b", []string{"a", "b"}, in("a", rec)),
			want:  "Copy " + p("b") + " <" + p("a")},
		{name: "a copy that fell behind is copied from the newest",
			state: fanned(t0.Add(11*day), "a", []string{"a", "b"}, in("a", newer), in("b", rec)),
			want:  "Apply " + p("a") + "; Copy " + p("b") + " <" + p("a")},
		{name: "renewal: one order replaces every copy, judged by the newest",
			state: fanned(t0.Add(71*day), "a", []string{"a", "b"}, in("a", newer), in("b", newer)),
			want:  "Renew " + p("a") + " +" + p("b")},
		{name: "renewal read from another cluster's copy",
			state: fanned(t0.Add(61*day), "b", []string{"a", "b"}, in("a", rec)),
			want:  "Renew " + p("b") + " +" + p("a") + " <" + p("a")},
		{name: "a cluster dropped: its file is pruned, nothing ordered",
			state: func() State {
				s := fanned(t0.Add(day), "a", []string{"a"}, in("a", rec), in("b", rec))
				s.Policy.ForcePrune = true
				return s
			}(),
			want: "Apply " + p("a") + "; PruneFile " + p("b")},
		{name: "own cluster dropped: Secret pruned there",
			state: func() State {
				s := fanned(t0.Add(day), "b", []string{"a"}, in("a", rec), in("b", rec))
				s.Observed["shop/web-tls"] = Observed{Serial: "01"}
				s.Policy.ForcePrune = true
				return s
			}(),
			want: "PruneFile " + p("b") + "; PruneSecret " + p("b")},
		{name: "a copy committed in the clear with the current key: new key for all",
			state: func() State {
				exposedRec := in("b", rec)
				exposedRec.Encrypted = false
				return fanned(t0.Add(day), "a", []string{"a", "b"}, in("a", rec), exposedRec)
			}(),
			want: "Reissue " + p("a") + " +" + p("b")},
		{name: "claimed through another cluster's path",
			state: func() State {
				s := fanned(t0, "b", []string{"a", "b"})
				s.Agent = "me"
				s.Claims = map[string]committed.Claim{p("a"): {Agent: "other", Expires: t0.Add(time.Hour), Certificates: []string{p("a")}}}
				return s
			}(),
			want: "Wait " + p("b") + " +" + p("a")},
		{name: "applier: only its own cluster's side",
			state: func() State {
				s := fanned(t0.Add(61*day), "b", []string{"a", "b"}, in("b", rec))
				s.ApplyOnly = true
				return s
			}(),
			want: "Apply " + p("b")},
		{name: "applier with nothing committed for it yet waits for the issuer",
			state: func() State {
				s := fanned(t0, "b", []string{"a", "b"}, in("a", rec))
				s.ApplyOnly = true
				delete(s.Committed, p("a")) // an applier reads only its own folder
				return s
			}(),
			want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describe(Calculate(tt.state))
			if got != tt.want {
				t.Fatalf("plan\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

// TestFanOutConverges applies each plan's effect on Git and plans again:
// the second plan must be empty however many clusters receive a copy.
func TestFanOutConverges(t *testing.T) {
	web := decl("shop", "web", "example.com")
	s := state(t0, []declared.Certificate{web})
	s.Cluster = "b"
	s.Targets = map[string][]string{web.Key(): {"a", "b", "c"}}
	plan := Calculate(s)
	if n := plan.Count(Issue); n != 1 {
		t.Fatalf("want one order, got %s", describe(plan))
	}
	a := plan.Actions[0]
	for _, path := range append([]string{a.Path}, a.Copies...) {
		cluster, _, _, _ := committed.ParseSecretPath(path)
		s.Committed[path] = in(cluster, issued(web, t0, "01"))
	}
	s.Observed["shop/web-tls"] = Observed{Serial: "01"}
	if again := Calculate(s); again.HasChanges() {
		t.Fatalf("second plan: %s", describe(again))
	}
	// A fourth cluster joins: one copy, then nothing.
	s.Targets[web.Key()] = []string{"a", "b", "c", "d"}
	plan = Calculate(s)
	if got := describe(plan); got != "Copy secrets/d/shop/web-tls.yaml <secrets/b/shop/web-tls.yaml" {
		t.Fatalf("after adding d: %s", got)
	}
	s.Committed[plan.Actions[0].Path] = in("d", issued(web, t0, "01"))
	if again := Calculate(s); again.HasChanges() {
		t.Fatalf("after the copy: %s", describe(again))
	}
	if !slices.Equal(s.Targets[web.Key()], []string{"a", "b", "c", "d"}) {
		t.Fatal("targets modified")
	}
}

// TestMoveToAnotherFolder: certsync.yaml's output.secrets moves every
// Secret; the planner copies each one to its new place (no order), prunes
// the old file only once the copy is committed, and neither the prune
// limit nor a problem elsewhere holds that prune back: nothing is lost.
func TestMoveToAnotherFolder(t *testing.T) {
	web := decl("shop", "web", "example.com")
	day := 24 * time.Hour
	rec := issued(web, t0, "01")
	layout, err := committed.NewLayout("clusters/{cluster}/certificates")
	if err != nil {
		t.Fatal(err)
	}
	oldPath := func(cluster string) string { return committed.SecretPath(cluster, "shop", "web-tls") }
	newPath := func(cluster string) string { return layout.SecretPath(cluster, "shop", "web-tls") }
	at := func(path string, r committed.Certificate) committed.Certificate { r.Path = path; return r }
	moving := func(now time.Time, recs ...committed.Certificate) State {
		s := state(now, []declared.Certificate{web})
		s.Cluster, s.Layout = "a", layout
		s.Targets = map[string][]string{web.Key(): {"a", "b"}}
		for _, r := range recs {
			s.Committed[r.Path] = r
		}
		return s
	}
	tests := []struct {
		name  string
		state State
		want  string
	}{
		{name: "copied to the new folder from the old one; the old files stay for now",
			state: moving(t0.Add(day), at(oldPath("a"), rec), at(oldPath("b"), rec)),
			want:  "Copy " + newPath("a") + " <" + oldPath("a") + "; Copy " + newPath("b") + " <" + oldPath("a")},
		{name: "copied: the old files are pruned, beyond the prune limit and despite a problem",
			state: func() State {
				s := moving(t0.Add(day), at(oldPath("a"), rec), at(oldPath("b"), rec), at(newPath("a"), rec), at(newPath("b"), rec))
				s.PruneBlockers = []string{"a typo somewhere"}
				return s
			}(),
			want: "Apply " + newPath("a") + "; PruneFile " + oldPath("a") + "; PruneFile " + oldPath("b")},
		{name: "due while moving: one order writes the new places",
			state: moving(t0.Add(61*day), at(oldPath("a"), rec)),
			want:  "Renew " + newPath("a") + " +" + newPath("b") + " <" + oldPath("a")},
		{name: "an old file whose certificate is gone is an ordinary prune",
			state: func() State {
				s := moving(t0.Add(day), at(oldPath("a"), rec))
				s.Certificates, s.Policy.ForcePrune = nil, true
				return s
			}(),
			want: "PruneFile " + oldPath("a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Calculate(tt.state)
			if d := describe(got); d != tt.want {
				t.Fatalf("plan:\n got %s\nwant %s", d, tt.want)
			}
			if got.Count(Issue)+got.Count(Reissue) > 0 {
				t.Fatal("a moved certificate was ordered again")
			}
		})
	}
}
