// Package metrics exposes certsync's Prometheus metrics.
//
// The certificate gauges carry cert-manager's names and labels
// (certmanager_certificate_expiration_timestamp_seconds, _ready_status,
// _renewal_timestamp_seconds with name, namespace, issuer_name, issuer_kind,
// issuer_group), so alerts and dashboards written for cert-manager keep
// working. certsync's own counters describe passes, orders, pushes and
// applies.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var certLabels = []string{"name", "namespace", "issuer_name", "issuer_kind", "issuer_group"}

// Metrics is one registry of certsync's metrics.
type Metrics struct {
	reg *prometheus.Registry

	expiration *prometheus.GaugeVec
	ready      *prometheus.GaugeVec
	renewal    *prometheus.GaugeVec

	passes       *prometheus.CounterVec
	passDuration prometheus.Histogram
	orders       *prometheus.CounterVec
	pushes       *prometheus.CounterVec
	applies      *prometheus.CounterVec
}

// New registers every metric on a fresh registry (plus the Go and process
// collectors).
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		expiration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certmanager_certificate_expiration_timestamp_seconds",
			Help: "The date after which the certificate expires, as a Unix timestamp.",
		}, certLabels),
		ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certmanager_certificate_ready_status",
			Help: "The ready status of the certificate (1 for the current condition).",
		}, append(append([]string{}, certLabels...), "condition")),
		renewal: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certmanager_certificate_renewal_timestamp_seconds",
			Help: "The time after which the certificate will be renewed, as a Unix timestamp.",
		}, certLabels),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certsync_passes_total", Help: "Reconcile passes by result (ok, problems, error).",
		}, []string{"result"}),
		passDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "certsync_pass_duration_seconds", Help: "Duration of reconcile passes.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certsync_acme_orders_total", Help: "Certificate orders by result (issued, failed).",
		}, []string{"result"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certsync_git_pushes_total", Help: "Commits pushed, and passes that changed nothing in Git.",
		}, []string{"result"}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certsync_applies_total", Help: "Secrets applied to or pruned from the cluster.",
		}, []string{"action"}),
	}
	m.reg.MustRegister(m.expiration, m.ready, m.renewal, m.passes, m.passDuration, m.orders, m.pushes, m.applies,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Certificate is the state of one certificate after a pass.
type Certificate struct {
	Name, Namespace                     string
	IssuerName, IssuerKind, IssuerGroup string
	NotAfter, RenewalTime               time.Time
	Ready                               bool
}

// SetCertificates replaces the certificate gauges with the given set, so a
// removed certificate stops being reported.
func (m *Metrics) SetCertificates(certs []Certificate) {
	m.expiration.Reset()
	m.ready.Reset()
	m.renewal.Reset()
	for _, c := range certs {
		l := prometheus.Labels{"name": c.Name, "namespace": c.Namespace, "issuer_name": c.IssuerName, "issuer_kind": c.IssuerKind, "issuer_group": c.IssuerGroup}
		if !c.NotAfter.IsZero() {
			m.expiration.With(l).Set(float64(c.NotAfter.Unix()))
		}
		if !c.RenewalTime.IsZero() {
			m.renewal.With(l).Set(float64(c.RenewalTime.Unix()))
		}
		for _, cond := range []string{"True", "False", "Unknown"} {
			v := 0.0
			if (cond == "True") == c.Ready && cond != "Unknown" {
				v = 1
			}
			rl := prometheus.Labels{"condition": cond}
			for k, val := range l {
				rl[k] = val
			}
			m.ready.With(rl).Set(v)
		}
	}
}

// Pass records one pass: its result, duration and what it did.
type Pass struct {
	Duration        time.Duration
	Err             error
	Problems        int
	Issued, Failed  int
	Pushed          bool
	Applied, Pruned int
}

// RecordPass updates the counters.
func (m *Metrics) RecordPass(p Pass) {
	result := "ok"
	switch {
	case p.Err != nil:
		result = "error"
	case p.Problems > 0:
		result = "problems"
	}
	m.passes.WithLabelValues(result).Inc()
	m.passDuration.Observe(p.Duration.Seconds())
	m.orders.WithLabelValues("issued").Add(float64(p.Issued))
	m.orders.WithLabelValues("failed").Add(float64(p.Failed))
	if p.Pushed {
		m.pushes.WithLabelValues("pushed").Inc()
	}
	m.applies.WithLabelValues("applied").Add(float64(p.Applied))
	m.applies.WithLabelValues("pruned").Add(float64(p.Pruned))
}
