package testbed

import (
	"encoding/base64"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// RFC2136 is a DNS server on loopback that accepts RFC 2136 dynamic
// updates signed with one TSIG key (hmac-sha256), as BIND or Knot would
// for a DNS-01 solver. The TXT records an update adds or removes go to the
// CA's DNS server (challtestsrv), where Pebble's VA looks for them.
//
// It is authoritative for every two-label name ("rfc.test."): a SOA query
// for one is answered, so a client finds the zone to update.
type RFC2136 struct {
	// Addr is "127.0.0.1:PORT", served over UDP and TCP.
	Addr string
	// KeyName is the TSIG key name in canonical form ("name.").
	KeyName string

	acme    *ACME
	mu      sync.Mutex // serialises record changes
	updates atomic.Int64
	refused atomic.Int64
}

// StartRFC2136 starts an update server whose changes land in a's DNS.
// secret is the raw HMAC key; clients use its base64 form, as in a BIND
// key file and in the Secret cert-manager's tsigSecretSecretRef names.
func (a *ACME) StartRFC2136(t TB, keyName string, secret []byte) *RFC2136 {
	t.Helper()
	s := &RFC2136{KeyName: dns.CanonicalName(keyName), acme: a}
	pc, ln := listenUDPAndTCP(t)
	s.Addr = ln.Addr().String()
	tsig := map[string]string{s.KeyName: base64.StdEncoding.EncodeToString(secret)}
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: s, TsigSecret: tsig, MsgAcceptFunc: acceptUpdates},
		{Listener: ln, Handler: s, TsigSecret: tsig, MsgAcceptFunc: acceptUpdates},
	} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	return s
}

// Updates counts the signed updates applied.
func (s *RFC2136) Updates() int { return int(s.updates.Load()) }

// Refused counts the updates refused: unsigned, or not signed with the key.
func (s *RFC2136) Refused() int { return int(s.refused.Load()) }

// listenUDPAndTCP opens UDP and TCP on one free loopback port. The sockets
// are open before the servers start, so the server is ready at once.
func listenUDPAndTCP(t TB) (net.PacketConn, net.Listener) {
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen UDP: %v", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close() // the TCP port was taken: try another
	}
	t.Fatalf("no loopback port free for both UDP and TCP")
	return nil, nil
}

// acceptUpdates lets UPDATE messages through: miekg/dns's default accept
// function answers them NOTIMP (and rejects their record counts).
func acceptUpdates(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr == 0 && int(dh.Bits>>11)&0xF == dns.OpcodeUpdate {
		return dns.MsgAccept
	}
	return dns.DefaultMsgAcceptFunc(dh)
}

// ServeDNS answers SOA queries and applies signed updates.
func (s *RFC2136) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	switch r.Opcode {
	case dns.OpcodeQuery:
		s.query(m, r)
	case dns.OpcodeUpdate:
		if !s.signed(w, r) {
			s.refused.Add(1)
			m.Rcode = dns.RcodeRefused
			break
		}
		s.update(r)
		s.updates.Add(1)
		t := r.IsTsig()
		m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
	default:
		m.Rcode = dns.RcodeNotImplemented
	}
	w.WriteMsg(m)
}

// signed reports whether r carries a TSIG with the server's key and
// algorithm that verified.
func (s *RFC2136) signed(w dns.ResponseWriter, r *dns.Msg) bool {
	t := r.IsTsig()
	return t != nil && w.TsigStatus() == nil && t.Hdr.Name == s.KeyName && t.Algorithm == dns.HmacSHA256
}

func (s *RFC2136) query(m, r *dns.Msg) {
	m.Authoritative = true
	for _, q := range r.Question {
		if q.Qtype == dns.TypeSOA && dns.CountLabel(q.Name) == 2 {
			m.Answer = append(m.Answer, &dns.SOA{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
				Ns:  "ns." + q.Name, Mbox: "hostmaster." + q.Name, Serial: 1,
				Refresh: 60, Retry: 60, Expire: 60, Minttl: 60,
			})
		}
	}
}

// update applies the update section (RFC 2136 section 2.5): add a TXT
// record (class IN), delete a name's TXT set (class ANY), delete one TXT
// record (class NONE). Other types are ignored.
func (s *RFC2136) update(r *dns.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range r.Ns {
		h := rr.Header()
		if h.Rrtype != dns.TypeTXT && h.Rrtype != dns.TypeANY {
			continue
		}
		switch h.Class {
		case dns.ClassINET:
			if txt, ok := rr.(*dns.TXT); ok {
				s.acme.dns.AddDNSTXTRecord(h.Name, strings.Join(txt.Txt, ""))
			}
		case dns.ClassANY:
			s.acme.dns.DeleteDNSTXTRecord(h.Name)
		case dns.ClassNONE:
			txt, ok := rr.(*dns.TXT)
			if !ok {
				continue
			}
			gone := strings.Join(txt.Txt, "")
			kept := s.acme.dns.GetDNSTXTRecords(h.Name)
			s.acme.dns.DeleteDNSTXTRecord(h.Name)
			for _, v := range kept {
				if v != gone {
					s.acme.dns.AddDNSTXTRecord(h.Name, v)
				}
			}
		}
	}
}
