package metrics

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Certificate is the state of one certificate after a pass.
type Certificate struct {
	Name, Namespace                     string
	IssuerName, IssuerKind, IssuerGroup string
	// NotBefore and NotAfter bound the committed certificate's validity
	// (zero when none is committed); RenewalTime is when it is renewed.
	NotBefore, NotAfter, RenewalTime time.Time
	Ready                            bool
	// FailedOrders counts the orders for it that failed in a row since
	// the last one that worked: 0 for a healthy certificate.
	FailedOrders int
}

// certificates reports cert-manager's certificate gauges from the set of
// the last pass that read the repository. It builds the samples at scrape
// time from one snapshot, so replacing the set is atomic: gauge vectors
// reset and refilled would show a scrape an empty set in between, and an
// alert on an absent series would fire.
type certificates struct {
	expiration, ready, renewal *prometheus.Desc
	notBefore, failedOrders    *prometheus.Desc

	mu    sync.Mutex
	certs []Certificate
}

// certLabels are cert-manager's labels; ready_status adds "condition".
var certLabels = []string{"name", "namespace", "issuer_name", "issuer_kind", "issuer_group"}

func newCertificates() *certificates {
	return &certificates{
		expiration: prometheus.NewDesc("certmanager_certificate_expiration_timestamp_seconds",
			"The date after which the certificate expires, as a Unix timestamp.", certLabels, nil),
		ready: prometheus.NewDesc("certmanager_certificate_ready_status",
			"The ready status of the certificate (1 for the current condition).", append(slices.Clone(certLabels), "condition"), nil),
		renewal: prometheus.NewDesc("certmanager_certificate_renewal_timestamp_seconds",
			"The time after which the certificate will be renewed, as a Unix timestamp.", certLabels, nil),
		// cert-manager has no gauge for the start of the validity; with it
		// an alert can compare the time left with the whole lifetime,
		// which differs between CAs and profiles (90 days, 45, 160 hours).
		notBefore: prometheus.NewDesc("certsync_certificate_not_before_timestamp_seconds",
			"The date from which the certificate is valid, as a Unix timestamp; with the expiration, its lifetime.", certLabels, nil),
		failedOrders: prometheus.NewDesc("certsync_certificate_consecutive_order_failures",
			"Orders for the certificate that failed in a row since the last that worked (0: none); certsync retries after a backoff of 1h doubling up to 32h, or after a change for a permanent error.", certLabels, nil),
	}
}

// set replaces the set. Should two entries carry the same labels, the last
// wins, as it did with gauge vectors: a duplicate sample would fail the
// whole scrape.
func (c *certificates) set(certs []Certificate) {
	seen := make(map[[5]string]int, len(certs))
	var unique []Certificate
	for _, cert := range certs {
		k := [5]string{cert.Name, cert.Namespace, cert.IssuerName, cert.IssuerKind, cert.IssuerGroup}
		if i, ok := seen[k]; ok {
			unique[i] = cert
			continue
		}
		seen[k] = len(unique)
		unique = append(unique, cert)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.certs = unique
}

func (c *certificates) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.expiration
	ch <- c.ready
	ch <- c.renewal
	ch <- c.notBefore
	ch <- c.failedOrders
}

func (c *certificates) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	certs := c.certs
	c.mu.Unlock()
	for _, cert := range certs {
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
		// As cert-manager: one series per condition, 1 on the current one.
		// certsync never reports Unknown: it reads the certificate itself.
		for _, cond := range []string{"True", "False", "Unknown"} {
			v := 0.0
			if cond == "True" && cert.Ready || cond == "False" && !cert.Ready {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, v, append(l, cond)...)
		}
	}
}
