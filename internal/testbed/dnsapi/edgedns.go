package dnsapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
)

// EdgeDNS is the authentication of Akamai's APIs (EdgeGrid,
// EG1-HMAC-SHA256, as github.com/akamai/AkamaiOPEN-edgegrid-golang/v13
// pkg/edgegrid/signer.go signs requests) in front of the one EdgeDNS read
// lego's edgedns provider makes first (providers/dns/edgedns/edgedns.go,
// lego v4.35.2):
//
//	GET /config-dns/v2/zones/ZONE/names/NAME/types/TXT   GetRecord
//
// on the account's API host (cert-manager's serviceConsumerDomain). A
// request must be signed with the client token, access token and client
// secret of cert-manager's three Secret references; a wrong one is answered
// 401 as Akamai does. The record store is empty: lego's provider cannot be
// pointed here (see issuer/acme's tests), only the credentials are proven.
type EdgeDNS struct {
	*zones
	clientToken, accessToken, clientSecret string
}

// StartEdgeDNS serves host on n for the given credentials.
func StartEdgeDNS(n *Network, d DNS, host, clientToken, accessToken, clientSecret string, zones ...string) *EdgeDNS {
	e := &EdgeDNS{zones: newZones(d, zones), clientToken: clientToken, accessToken: accessToken, clientSecret: clientSecret}
	n.Handle(host, e)
	return e
}

func (e *EdgeDNS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if detail := e.verify(r, body); detail != "" {
		e.refused.Add(1)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"type": "https://problems.luna.akamaiapis.net/-/pep-authn/request-error", "title": "Not authorized", "status": 401, "detail": detail})
		return
	}
	e.served.Add(1)
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/") // config-dns v2 zones Z names N types T
	if r.Method != http.MethodGet || len(parts) != 8 || parts[0] != "config-dns" || parts[2] != "zones" || parts[4] != "names" || parts[6] != "types" {
		writeJSON(w, http.StatusNotFound, map[string]any{"title": "Not Found", "status": 404})
		return
	}
	values := e.values(parts[5])
	if len(values) == 0 || parts[7] != "TXT" {
		writeJSON(w, http.StatusNotFound, map[string]any{"type": "https://problems.luna.akamaiapis.net/authoritative-dns/errors/not-found", "title": "Not Found", "status": 404, "detail": "Record not found"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": parts[5], "type": "TXT", "ttl": 120, "rdata": quoteAll(values)})
}

// verify recomputes the EG1-HMAC-SHA256 signature; it returns why the
// request is refused, or "".
func (e *EdgeDNS) verify(r *http.Request, body []byte) string {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "EG1-HMAC-SHA256 ")
	if !ok {
		return "The request has no EdgeGrid signature"
	}
	signed, sig, ok := strings.Cut(auth, "signature=")
	if !ok {
		return "The signature is missing"
	}
	fields := map[string]string{}
	for _, f := range strings.Split(strings.TrimSuffix(signed, ";"), ";") {
		k, v, _ := strings.Cut(f, "=")
		fields[k] = v
	}
	if !equal(fields["client_token"], e.clientToken) || !equal(fields["access_token"], e.accessToken) {
		return "Invalid authorization client_token or access_token"
	}
	path := r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	contentHash := ""
	if r.Method == http.MethodPost && len(body) > 0 {
		sum := sha256.Sum256(body)
		contentHash = base64.StdEncoding.EncodeToString(sum[:])
	}
	// No headers_to_sign: the canonical headers are empty.
	msg := strings.Join([]string{r.Method, "https", r.Host, path, "", contentHash, "EG1-HMAC-SHA256 " + signed}, "\t")
	key := hmacBase64([]byte(e.clientSecret), fields["timestamp"])
	want := hmacBase64([]byte(key), msg)
	if !hmac.Equal([]byte(want), bytes.TrimSpace([]byte(sig))) {
		return "The signature does not match"
	}
	return ""
}

func hmacBase64(key []byte, msg string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}
