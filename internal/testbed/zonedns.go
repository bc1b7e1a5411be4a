package testbed

import (
	"slices"
	"time"

	"github.com/miekg/dns"
)

// zoneDNS is the DNS server at ACME.DNSAddr. challtestsrv answers every SOA
// query NOTIMP, so lego's zone lookup (dns01.FindZoneByFqdn, which most
// DNS provider APIs need to name the zone to change) fails against it. This
// front answers SOA itself, authoritatively for every two-label name
// ("cf.test." is a zone, as the RFC 2136 server has it), and passes every
// other query to challtestsrv, where the records live.
type zoneDNS struct {
	upstream string // challtestsrv, "127.0.0.1:PORT"
	client   *dns.Client
}

// startZoneDNS serves the front on a fresh loopback port (UDP for lego,
// TCP for Pebble's VA) and returns its address.
func startZoneDNS(t TB, upstream string) string {
	t.Helper()
	z := &zoneDNS{upstream: upstream, client: &dns.Client{Net: "tcp", Timeout: 2 * time.Second}}
	pc, ln := listenUDPAndTCP(t)
	// Servers with their own handler: challtestsrv owns miekg/dns's
	// global one.
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: z}, {Listener: ln, Handler: z}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	return ln.Addr().String()
}

func (z *zoneDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeSOA {
		w.WriteMsg(soaAnswer(r))
		return
	}
	resp, _, err := z.client.Exchange(r, z.upstream)
	if err != nil {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		w.WriteMsg(m)
		return
	}
	w.WriteMsg(resp)
}

// soaAnswer answers a SOA query: the SOA of a two-label name, no answer
// (NOERROR, so lego tries the parent) for any other.
func soaAnswer(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	q := r.Question[0]
	if dns.CountLabel(q.Name) == 2 {
		m.Answer = append(m.Answer, &dns.SOA{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
			Ns:  "ns." + q.Name, Mbox: "hostmaster." + q.Name, Serial: 1,
			Refresh: 60, Retry: 60, Expire: 60, Minttl: 60,
		})
	}
	return m
}

// SetTXT makes values the whole TXT set of fqdn in the CA's DNS (none
// removes it), as a DNS provider's API publishes a record set. Callers
// serialise the changes of one name.
func (a *ACME) SetTXT(fqdn string, values []string) {
	fqdn = dns.CanonicalName(fqdn)
	a.dns.DeleteDNSTXTRecord(fqdn)
	for _, v := range values {
		a.dns.AddDNSTXTRecord(fqdn, v)
	}
}

// TXT returns the TXT values the CA's DNS holds for fqdn.
func (a *ACME) TXT(fqdn string) []string {
	return slices.Clone(a.dns.GetDNSTXTRecords(dns.CanonicalName(fqdn)))
}

// SetCNAME makes name an alias of target in the CA's DNS, as an operator
// points _acme-challenge names at an acme-dns account's fulldomain.
func (a *ACME) SetCNAME(name, target string) {
	a.dns.AddDNSCNAMERecord(dns.CanonicalName(name), dns.CanonicalName(target))
}
