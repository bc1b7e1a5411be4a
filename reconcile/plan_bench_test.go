package reconcile

import (
	"fmt"
	"testing"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
)

// scaleState is a repository of n certificates, all issued at t0.
func scaleState(n int) State {
	var certs []declared.Certificate
	var recs []committed.Certificate
	for i := range n {
		c := decl(fmt.Sprintf("ns%d", i%50), fmt.Sprintf("cert%d", i), fmt.Sprintf("host%d.example.com", i))
		certs = append(certs, c)
		recs = append(recs, issued(c, t0, fmt.Sprintf("%x", i)))
	}
	return state(t0.Add(24*time.Hour), certs, recs...)
}

// BenchmarkCalculate10k: planning 10,000 certificates with nothing due.
func BenchmarkCalculate10k(b *testing.B) {
	s := scaleState(10_000)
	b.ResetTimer()
	for b.Loop() {
		if p := Calculate(s); p.HasChanges() {
			b.Fatal("nothing should be due")
		}
	}
}

// BenchmarkCalculate10kRenew1k: 1,000 of 10,000 certificates are due.
func BenchmarkCalculate10kRenew1k(b *testing.B) {
	s := scaleState(10_000)
	i := 0
	for path, rec := range s.Committed {
		if i == 1000 {
			break
		}
		rec.NotAfter = t0.Add(24 * time.Hour)
		s.Committed[path] = rec
		i++
	}
	b.ResetTimer()
	for b.Loop() {
		if p := Calculate(s); p.Count(Renew) != 1000 {
			b.Fatalf("renewals = %d", p.Count(Renew))
		}
	}
}
