package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
