package dnsapi

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// zones is the record store every emulator keeps: the zones the account
// owns and their TXT records, published to the CA's DNS on each change. It
// also counts the requests served and refused.
type zones struct {
	dns   DNS
	names []string // canonical zone names ("cf.test.")

	mu      sync.Mutex
	records map[string][]record // canonical fqdn → records, in creation order
	nextID  int

	served, refused atomic.Int64
}

type record struct {
	id, value string
}

func newZones(d DNS, names []string) *zones {
	z := &zones{dns: d, records: map[string][]record{}}
	for _, n := range names {
		z.names = append(z.names, dns.CanonicalName(n))
	}
	return z
}

// zoneOf returns the zone fqdn is in (the longest owned suffix).
func (z *zones) zoneOf(fqdn string) (string, bool) {
	fqdn = dns.CanonicalName(fqdn)
	best := ""
	for _, n := range z.names {
		if dns.IsSubDomain(n, fqdn) && len(n) > len(best) {
			best = n
		}
	}
	return best, best != ""
}

// add appends a record and returns its ID.
func (z *zones) add(fqdn, value string) string {
	fqdn = dns.CanonicalName(fqdn)
	z.mu.Lock()
	defer z.mu.Unlock()
	z.nextID++
	id := fmt.Sprint(z.nextID)
	z.records[fqdn] = append(z.records[fqdn], record{id: id, value: value})
	z.publish(fqdn)
	return id
}

// remove deletes the record with the given ID; false when there is none.
func (z *zones) remove(id string) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	for fqdn, recs := range z.records {
		for i, r := range recs {
			if r.id == id {
				z.records[fqdn] = slices.Delete(recs, i, i+1)
				z.publish(fqdn)
				return true
			}
		}
	}
	return false
}

// set replaces fqdn's whole TXT set (APIs that change record sets).
func (z *zones) set(fqdn string, values []string) {
	fqdn = dns.CanonicalName(fqdn)
	z.mu.Lock()
	defer z.mu.Unlock()
	var recs []record
	for _, v := range values {
		z.nextID++
		recs = append(recs, record{id: fmt.Sprint(z.nextID), value: v})
	}
	z.records[fqdn] = recs
	z.publish(fqdn)
}

// values returns fqdn's TXT values.
func (z *zones) values(fqdn string) []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []string
	for _, r := range z.records[dns.CanonicalName(fqdn)] {
		out = append(out, r.value)
	}
	return out
}

// publish sends fqdn's set to the DNS; z.mu is held.
func (z *zones) publish(fqdn string) {
	var values []string
	for _, r := range z.records[fqdn] {
		values = append(values, r.value)
	}
	if len(values) == 0 {
		delete(z.records, fqdn)
	}
	z.dns.SetTXT(fqdn, values)
}

// Records returns the TXT records the API holds: fqdn → values.
func (z *zones) Records() map[string][]string {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := map[string][]string{}
	for fqdn, recs := range z.records {
		for _, r := range recs {
			out[fqdn] = append(out[fqdn], r.value)
		}
	}
	return out
}

// Served counts the requests whose credentials were accepted.
func (z *zones) Served() int { return int(z.served.Load()) }

// Refused counts the requests refused for their credentials.
func (z *zones) Refused() int { return int(z.refused.Load()) }
