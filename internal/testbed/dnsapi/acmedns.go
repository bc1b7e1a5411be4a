package dnsapi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// AcmeDNS emulates an acme-dns server's update API (joohoi/acme-dns,
// pkg/api/auth.go and update.go) as goacmedns (UpdateTXTRecord), which
// certsync's acmeDNS block uses, calls it:
//
//	POST /update  X-Api-User, X-Api-Key  {"subdomain": S, "txt": V}
//
// An unknown user, a wrong key or another account's subdomain is answered
// 401 {"error": "forbidden"}, a value that is not a DNS-01 digest (43
// characters) 400 {"error": "bad_txt"}. Like acme-dns, an account keeps
// its two latest values and has no delete: records stay after cleanup.
type AcmeDNS struct {
	*zones
	host, domain string

	mu       sync.Mutex
	accounts map[string]AcmeDNSAccount // username → account
}

// AcmeDNSAccount is an account as acme-dns's /register returns it and as
// cert-manager's accountSecretRef holds it, per domain.
type AcmeDNSAccount struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	FullDomain string `json:"fulldomain"`
	SubDomain  string `json:"subdomain"`
}

// StartAcmeDNS serves an acme-dns server at https://host on n, whose
// records live under domain ("auth.acme-dns.test"), published to d.
func StartAcmeDNS(n *Network, d DNS, host, domain string) *AcmeDNS {
	a := &AcmeDNS{zones: newZones(d, []string{domain}), host: host, domain: dns.CanonicalName(domain), accounts: map[string]AcmeDNSAccount{}}
	n.Handle(host, a)
	return a
}

// URL is the server's base URL, cert-manager's acmeDNS host.
func (a *AcmeDNS) URL() string { return "https://" + a.host }

// Register creates an account, as POST /register does.
func (a *AcmeDNS) Register() AcmeDNSAccount {
	acct := AcmeDNSAccount{Username: uuid(), Password: randomHex(20), SubDomain: uuid()}
	acct.FullDomain = acct.SubDomain + "." + strings.TrimSuffix(a.domain, ".")
	a.mu.Lock()
	defer a.mu.Unlock()
	a.accounts[acct.Username] = acct
	return acct
}

func (a *AcmeDNS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/update" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
		return
	}
	var upd struct {
		SubDomain string `json:"subdomain"`
		TXT       string `json:"txt"`
	}
	json.NewDecoder(r.Body).Decode(&upd)
	a.mu.Lock()
	acct, ok := a.accounts[r.Header.Get("X-Api-User")]
	a.mu.Unlock()
	if !ok || !equal(r.Header.Get("X-Api-Key"), acct.Password) || upd.SubDomain != acct.SubDomain {
		a.refused.Add(1)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "forbidden"})
		return
	}
	a.served.Add(1)
	if len(upd.TXT) != 43 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad_txt"})
		return
	}
	values := append(a.values(acct.FullDomain), upd.TXT)
	a.set(acct.FullDomain, values[max(0, len(values)-2):])
	writeJSON(w, http.StatusOK, map[string]string{"txt": upd.TXT})
}

func uuid() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
