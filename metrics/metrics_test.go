package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func scrape(t *testing.T, m *Metrics) string {
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestCertManagerCompatibleGauges(t *testing.T) {
	m := New()
	exp := time.Unix(1800000000, 0)
	m.SetCertificates([]Certificate{
		{Name: "web", Namespace: "shop", IssuerName: "le", IssuerKind: "ClusterIssuer", IssuerGroup: "cert-manager.io", NotAfter: exp, RenewalTime: exp.Add(-time.Hour), Ready: true},
		{Name: "api", Namespace: "api", IssuerName: "le", IssuerKind: "ClusterIssuer", IssuerGroup: "cert-manager.io"},
	})
	m.RecordPass(Pass{Duration: time.Second, Issued: 2, Failed: 1, Pushed: true, Applied: 2})
	m.RecordPass(Pass{Err: errors.New("git down")})
	out := scrape(t, m)
	for _, want := range []string{
		`certmanager_certificate_expiration_timestamp_seconds{issuer_group="cert-manager.io",issuer_kind="ClusterIssuer",issuer_name="le",name="web",namespace="shop"} 1.8e+09`,
		`certmanager_certificate_renewal_timestamp_seconds{issuer_group="cert-manager.io",issuer_kind="ClusterIssuer",issuer_name="le",name="web",namespace="shop"} 1.7999964e+09`,
		`certmanager_certificate_ready_status{condition="True",issuer_group="cert-manager.io",issuer_kind="ClusterIssuer",issuer_name="le",name="web",namespace="shop"} 1`,
		`certmanager_certificate_ready_status{condition="False",issuer_group="cert-manager.io",issuer_kind="ClusterIssuer",issuer_name="le",name="api",namespace="api"} 1`,
		`certsync_acme_orders_total{result="failed"} 1`,
		`certsync_passes_total{result="error"} 1`,
		`certsync_git_pushes_total{result="pushed"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	// A certificate removed from the repository stops being reported.
	m.SetCertificates(nil)
	if strings.Contains(scrape(t, m), `name="web"`) {
		t.Error("stale certificate still reported")
	}
}

func TestGaugesSurviveFailedPass(t *testing.T) {
	exp := time.Unix(1800000000, 0)
	web := Certificate{Name: "web", Namespace: "shop", IssuerName: "le", IssuerKind: "ClusterIssuer", IssuerGroup: "cert-manager.io", NotAfter: exp, Ready: true}
	api := Certificate{Name: "api", Namespace: "api", IssuerName: "le", IssuerKind: "ClusterIssuer", IssuerGroup: "cert-manager.io", NotAfter: exp}
	const webExpiry = `certmanager_certificate_expiration_timestamp_seconds{issuer_group="cert-manager.io",issuer_kind="ClusterIssuer",issuer_name="le",name="web",namespace="shop"} 1.8e+09`
	const apiExpiry = `certmanager_certificate_expiration_timestamp_seconds{issuer_group="cert-manager.io",issuer_kind="ClusterIssuer",issuer_name="le",name="api",namespace="api"} 1.8e+09`
	for _, tc := range []struct {
		name          string
		second        Pass
		want, notWant []string
	}{
		{
			name:    "failed before reading the repository: gauges kept",
			second:  Pass{Err: errors.New("fetch repository: 503")},
			want:    []string{webExpiry, `certsync_passes_total{result="error"} 1`},
			notWant: []string{apiExpiry},
		},
		{
			name:    "failed after reading it: what it read replaces them",
			second:  Pass{Err: errors.New("push: 503"), Read: true, Certificates: []Certificate{api}},
			want:    []string{apiExpiry, `certsync_passes_total{result="error"} 1`},
			notWant: []string{webExpiry},
		},
		{
			name:    "read and found none: gauges removed",
			second:  Pass{Read: true},
			want:    []string{`certsync_passes_total{result="ok"} 2`},
			notWant: []string{webExpiry, "certmanager_certificate_ready_status{"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New()
			m.RecordPass(Pass{Read: true, Certificates: []Certificate{web}})
			if out := scrape(t, m); !strings.Contains(out, webExpiry) || !strings.Contains(out, "certsync_last_successful_pass_timestamp_seconds ") {
				t.Fatalf("after a good pass:\n%s", out)
			}
			m.RecordPass(tc.second)
			out := scrape(t, m)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("missing %s", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("unexpected %s", w)
				}
			}
		})
	}
}

// A scrape during a replacement sees a whole set, never none: an alert on
// an absent series must not fire because a pass ended.
func TestGaugesReplacedAtomically(t *testing.T) {
	m := New()
	certs := []Certificate{{Name: "web", Namespace: "shop", NotAfter: time.Unix(1800000000, 0)}}
	m.SetCertificates(certs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			m.SetCertificates(certs)
		}
	}()
	for range 50 {
		if out := scrape(t, m); !strings.Contains(out, `name="web"`) {
			t.Fatal("a scrape saw no certificates while they were replaced")
		}
	}
	<-done
}

// Two declarations with the same labels must not break the scrape.
func TestDuplicateCertificateLabels(t *testing.T) {
	m := New()
	m.SetCertificates([]Certificate{
		{Name: "web", Namespace: "shop", NotAfter: time.Unix(1700000000, 0)},
		{Name: "web", Namespace: "shop", NotAfter: time.Unix(1800000000, 0)},
	})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	if out := rec.Body.String(); !strings.Contains(out, `name="web",namespace="shop"} 1.8e+09`) {
		t.Errorf("want the last entry to win:\n%s", out)
	}
}

// set keeps one entry per label set, the last one, in the order labels
// first appear; it keeps the caller's slice when nothing repeats and never
// writes to it.
func TestSetKeepsLastOfEachLabelSet(t *testing.T) {
	web := func(at int64) Certificate {
		return Certificate{Name: "web", Namespace: "shop", NotAfter: time.Unix(at, 0)}
	}
	api := func(at int64) Certificate {
		return Certificate{Name: "api", Namespace: "shop", NotAfter: time.Unix(at, 0)}
	}
	other := Certificate{Name: "web", Namespace: "shop", IssuerName: "ca", NotAfter: time.Unix(5, 0)}
	for _, tt := range []struct {
		name    string
		in      []Certificate
		want    []Certificate
		aliased bool // the set is the caller's slice
	}{
		{name: "none", in: nil, want: nil},
		{name: "no duplicate", in: []Certificate{web(1), api(2), other}, want: []Certificate{web(1), api(2), other}, aliased: true},
		{name: "duplicate next to it", in: []Certificate{web(1), web(2), api(3)}, want: []Certificate{web(2), api(3)}},
		{name: "duplicate further on", in: []Certificate{web(1), api(2), web(3), api(4), other}, want: []Certificate{web(3), api(4), other}},
		{name: "three of one", in: []Certificate{api(1), web(1), web(2), web(3)}, want: []Certificate{api(1), web(3)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			var c certificates
			c.set(in)
			if !slices.Equal(c.certs, tt.want) {
				t.Errorf("set %v, want %v", c.certs, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Errorf("the caller's slice was changed: %v, was %v", in, tt.in)
			}
			if aliased := len(in) > 0 && &c.certs[0] == &in[0]; aliased != tt.aliased {
				t.Errorf("set is the caller's slice: %v, want %v", aliased, tt.aliased)
			}
		})
	}
}

// What the alerts of deploy/monitoring read: renewals, push conflicts,
// apply and prune errors, whether each remote answered, and per
// certificate its lifetime and the orders that failed in a row.
func TestAlertInputs(t *testing.T) {
	web := Certificate{Name: "web", Namespace: "shop", IssuerName: "le", IssuerKind: "ClusterIssuer", IssuerGroup: "cert-manager.io",
		NotBefore: time.Unix(1790000000, 0), NotAfter: time.Unix(1800000000, 0), Ready: true, FailedOrders: 3}
	const labels = `{issuer_group="cert-manager.io",issuer_kind="ClusterIssuer",issuer_name="le",name="web",namespace="shop"}`
	m := New()
	m.RecordPass(Pass{Read: true, Certificates: []Certificate{web}, Issued: 3, Renewed: 2, Failed: 2, RenewalsFailed: 1,
		PushConflicts: 2, ApplyErrors: 1, PruneErrors: 4,
		Reachable: map[string]bool{RemoteGit: true, RemoteAPIServer: false}})
	out := scrape(t, m)
	for _, want := range []string{
		`certsync_certificate_not_before_timestamp_seconds` + labels + ` 1.79e+09`,
		`certsync_certificate_consecutive_order_failures` + labels + ` 3`,
		`certsync_acme_orders_total{result="issued"} 3`,
		`certsync_acme_renewals_total{result="issued"} 2`,
		`certsync_acme_renewals_total{result="failed"} 1`,
		`certsync_git_push_conflicts_total 2`,
		`certsync_apply_errors_total{action="apply"} 1`,
		`certsync_apply_errors_total{action="prune"} 4`,
		`certsync_remote_reachable{remote="git"} 1`,
		`certsync_remote_reachable{remote="apiserver"} 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	// A pass that stopped at Git says nothing of the API server: its
	// last value stays.
	m.RecordPass(Pass{Err: errors.New("fetch repository: 503"), Reachable: map[string]bool{RemoteGit: false}})
	out = scrape(t, m)
	for _, want := range []string{`certsync_remote_reachable{remote="git"} 0`, `certsync_remote_reachable{remote="apiserver"} 0`} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("after a pass that stopped at Git: missing %s", want)
		}
	}
}

// What only the leader knows is absent on a replica that never led, and
// gone from one that stood down; the counters stay.
func TestStandbyReportsNoLeaderState(t *testing.T) {
	leaderOnly := []string{
		"certsync_last_successful_pass_timestamp_seconds",
		"certsync_remote_reachable{",
		"certmanager_certificate_expiration_timestamp_seconds{",
		"certsync_certificate_consecutive_order_failures{",
	}
	m := New()
	out := scrape(t, m)
	for _, name := range leaderOnly {
		if strings.Contains(out, "\n"+name) {
			t.Errorf("a replica that never passed reports %s", name)
		}
	}
	m.RecordPass(Pass{Read: true, Certificates: []Certificate{{Name: "web", Namespace: "shop", NotAfter: time.Unix(1800000000, 0)}},
		Reachable: map[string]bool{RemoteGit: true, RemoteAPIServer: true}})
	out = scrape(t, m)
	for _, name := range leaderOnly {
		if !strings.Contains(out, "\n"+name) {
			t.Errorf("the leader does not report %s", name)
		}
	}
	m.Standby()
	out = scrape(t, m)
	for _, name := range leaderOnly {
		if strings.Contains(out, "\n"+name) {
			t.Errorf("a replica that stood down still reports %s", name)
		}
	}
	if !strings.Contains(out, `certsync_passes_total{result="ok"} 1`) {
		t.Error("standing down must keep the counters (rates would jump)")
	}
}

// constGauges is the certificate collector written with
// prometheus.MustNewConstMetric, as it was before the samples shared
// their label pairs: both must scrape the same, byte for byte, through a
// pedantic registry (which also checks the labels against the Desc).
type constGauges struct{ *certificates }

func (c constGauges) Collect(ch chan<- prometheus.Metric) {
	for _, cert := range c.certs {
		l := []string{cert.Name, cert.Namespace, cert.IssuerName, cert.IssuerKind, cert.IssuerGroup}
		if !cert.NotAfter.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.expiration, prometheus.GaugeValue, float64(cert.NotAfter.Unix()), l...)
		}
		if !cert.NotBefore.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.notBefore, prometheus.GaugeValue, float64(cert.NotBefore.Unix()), l...)
		}
		ch <- prometheus.MustNewConstMetric(c.failedOrders, prometheus.GaugeValue, float64(cert.FailedOrders), l...)
		if !cert.RenewalTime.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.renewal, prometheus.GaugeValue, float64(cert.RenewalTime.Unix()), l...)
		}
		for _, cond := range []string{"True", "False", "Unknown"} {
			v := 0.0
			if cond == "True" && cert.Ready || cond == "False" && !cert.Ready {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, v, append(l, cond)...)
		}
	}
}

func TestSharedLabelsScrapeAsConstMetrics(t *testing.T) {
	at := time.Unix(1800000000, 0)
	web := Certificate{Name: "web", Namespace: "shop", IssuerName: "le", IssuerKind: "ClusterIssuer", IssuerGroup: "cert-manager.io",
		NotBefore: at.Add(-90 * 24 * time.Hour), NotAfter: at, RenewalTime: at.Add(-30 * 24 * time.Hour), Ready: true}
	for _, tt := range []struct {
		name  string
		certs []Certificate
	}{
		{name: "none"},
		{name: "one, every gauge", certs: []Certificate{web}},
		{name: "nothing committed yet, failing", certs: []Certificate{{Name: "api", Namespace: "api", IssuerName: "ca", IssuerKind: "Issuer", IssuerGroup: "cert-manager.io", FailedOrders: 3}}},
		{name: "labels to escape", certs: []Certificate{{Name: `we"b`, Namespace: "shöp", IssuerName: "a\\b", IssuerKind: "line\nbreak", NotAfter: at}}},
		{name: "several, one repeated", certs: []Certificate{web, {Name: "a", Namespace: "z", NotAfter: at}, web, {Name: "z", Namespace: "a", Ready: true}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			shared := newCertificates()
			shared.set(slices.Clone(tt.certs))
			asConst := newCertificates()
			asConst.set(slices.Clone(tt.certs))
			got, want := gatherText(t, shared), gatherText(t, constGauges{asConst})
			if got != want {
				t.Errorf("scrape with shared labels:\n%s\nwith const metrics:\n%s", got, want)
			}
			if len(tt.certs) > 0 && !strings.Contains(got, "certmanager_certificate_ready_status{condition=") {
				t.Errorf("no ready_status series:\n%s", got)
			}
		})
	}
}

func gatherText(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}
