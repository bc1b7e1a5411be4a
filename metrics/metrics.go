// Package metrics exposes certsync's Prometheus metrics.
//
// The certificate gauges carry cert-manager's names and labels
// (certmanager_certificate_expiration_timestamp_seconds, _ready_status,
// _renewal_timestamp_seconds with name, namespace, issuer_name, issuer_kind,
// issuer_group), so alerts and dashboards written for cert-manager keep
// working. They hold what the last pass that read the repository found: a
// pass that fails earlier (Git away) leaves them as they were, so alerts on
// expiry keep working through the outage; certsync_passes_total{result="error"}
// counts such passes and certsync_last_successful_pass_timestamp_seconds
// tells how old the gauges are.
//
// certsync's own counters describe passes, orders, pushes and applies.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one registry of certsync's metrics.
type Metrics struct {
	reg *prometheus.Registry

	certs *certificates

	passes       *prometheus.CounterVec
	passDuration prometheus.Histogram
	lastSuccess  prometheus.Gauge
	orders       *prometheus.CounterVec
	pushes       *prometheus.CounterVec
	applies      *prometheus.CounterVec
}

// New registers every metric on a fresh registry (plus the Go and process
// collectors).
func New() *Metrics {
	m := &Metrics{
		reg:   prometheus.NewRegistry(),
		certs: newCertificates(),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certsync_passes_total", Help: "Reconcile passes by result (ok, problems, error).",
		}, []string{"result"}),
		passDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "certsync_pass_duration_seconds", Help: "Duration of reconcile passes.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certsync_last_successful_pass_timestamp_seconds",
			Help: "When the last pass without error ended, as a Unix timestamp: the certificate gauges are as of then.",
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
	m.reg.MustRegister(m.certs, m.passes, m.passDuration, m.lastSuccess, m.orders, m.pushes, m.applies,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// SetCertificates replaces the certificate gauges with the given set, so a
// removed certificate stops being reported. A scrape sees either the old
// set or the new one, never a mix or nothing in between.
func (m *Metrics) SetCertificates(certs []Certificate) { m.certs.set(certs) }

// Pass records one pass: its result, duration and what it did.
type Pass struct {
	Duration        time.Duration
	Err             error
	Problems        int
	Issued, Failed  int
	Pushed          bool
	Applied, Pruned int
	// Read tells that the pass read the repository: then Certificates is
	// every certificate declared there and replaces the gauges (an empty
	// set removes them all). A pass that failed before reading it (Git
	// away) leaves the gauges as they were: expiry alerts must keep
	// working through an outage, which is when they matter.
	Read         bool
	Certificates []Certificate
}

// RecordPass updates the counters, and the certificate gauges after a pass
// that read the repository.
func (m *Metrics) RecordPass(p Pass) {
	result := "ok"
	switch {
	case p.Err != nil:
		result = "error"
	case p.Problems > 0:
		result = "problems"
	}
	if p.Read {
		m.SetCertificates(p.Certificates)
	}
	if p.Err == nil {
		m.lastSuccess.SetToCurrentTime()
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
