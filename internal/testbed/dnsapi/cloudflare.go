package dnsapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Cloudflare emulates the Cloudflare API v4 endpoints lego's cloudflare
// provider calls (providers/dns/cloudflare/internal/client.go and
// wrapper.go, lego v4.35.2), on api.cloudflare.com:
//
//	GET    /client/v4/zones?name=ZONE                   ZonesByName
//	POST   /client/v4/zones/ZONE_ID/dns_records         CreateDNSRecord
//	DELETE /client/v4/zones/ZONE_ID/dns_records/REC_ID  DeleteDNSRecord
//
// It accepts an API token (Authorization: Bearer) or the account's global
// API key (X-Auth-Email with X-Auth-Key), as cert-manager's
// apiTokenSecretRef and apiKeySecretRef carry them, and answers any other
// request 403 with Cloudflare's error 10000.
type Cloudflare struct {
	*zones
	opts CloudflareOptions
}

// CloudflareOptions are the account an emulator serves.
type CloudflareOptions struct {
	// Zones the account holds ("cf.test").
	Zones []string
	// Token is the API token; Email and Key the global API key. Either
	// (or both) may be set.
	Token, Email, Key string
}

// StartCloudflare serves the API on n, publishing records to d.
func StartCloudflare(n *Network, d DNS, o CloudflareOptions) *Cloudflare {
	c := &Cloudflare{zones: newZones(d, o.Zones), opts: o}
	n.Handle("api.cloudflare.com", c)
	return c
}

// cfZoneID is the ID of a zone: Cloudflare's are 32 hex digits.
func cfZoneID(zone string) string {
	h := sha256.Sum256([]byte(zone))
	return hex.EncodeToString(h[:16])
}

func (c *Cloudflare) authorized(r *http.Request) bool {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return c.opts.Token != "" && equal(tok, c.opts.Token)
	}
	return c.opts.Key != "" && equal(r.Header.Get("X-Auth-Email"), c.opts.Email) && equal(r.Header.Get("X-Auth-Key"), c.opts.Key)
}

// cfRecord is a DNS record as the API takes and returns it.
type cfRecord struct {
	ID      string `json:"id,omitempty"`
	Name    string `json:"name"`
	Type    string `json:"type"`
	Content string `json:"content"`
	TTL     int    `json:"ttl,omitempty"`
}

func (c *Cloudflare) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !c.authorized(r) {
		c.refused.Add(1)
		cfError(w, http.StatusForbidden, 10000, "Authentication error")
		return
	}
	c.served.Add(1)
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/client/v4/"), "/"), "/")
	switch {
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "zones":
		result := []map[string]string{}
		for _, z := range c.names {
			if name := r.URL.Query().Get("name"); name == "" || dns.CanonicalName(name) == z {
				result = append(result, map[string]string{"id": cfZoneID(z), "name": strings.TrimSuffix(z, "."), "status": "active"})
			}
		}
		cfResult(w, http.StatusOK, result)
	case r.Method == http.MethodPost && len(parts) == 3 && parts[0] == "zones" && parts[2] == "dns_records":
		zone, ok := c.zoneByID(parts[1])
		if !ok {
			cfError(w, http.StatusNotFound, 7003, "Could not route to /zones/"+parts[1]+"/dns_records, perhaps your object identifier is invalid?")
			return
		}
		var rec cfRecord
		if err := json.NewDecoder(r.Body).Decode(&rec); err != nil || rec.Type != "TXT" || rec.Content == "" {
			cfError(w, http.StatusBadRequest, 9000, "DNS record type or content is invalid.")
			return
		}
		if !dns.IsSubDomain(zone, dns.CanonicalName(rec.Name)) {
			cfError(w, http.StatusBadRequest, 9005, "Record name is not in the zone.")
			return
		}
		rec.ID = c.add(rec.Name, unquote(rec.Content))
		cfResult(w, http.StatusOK, rec)
	case r.Method == http.MethodDelete && len(parts) == 4 && parts[0] == "zones" && parts[2] == "dns_records":
		if _, ok := c.zoneByID(parts[1]); !ok || !c.remove(parts[3]) {
			cfError(w, http.StatusNotFound, 81044, "Record does not exist.")
			return
		}
		cfResult(w, http.StatusOK, map[string]string{"id": parts[3]})
	default:
		cfError(w, http.StatusNotFound, 7000, "No route for that URI")
	}
}

func (c *Cloudflare) zoneByID(id string) (string, bool) {
	for _, z := range c.names {
		if cfZoneID(z) == id {
			return z, true
		}
	}
	return "", false
}

func cfResult(w http.ResponseWriter, status int, result any) {
	writeJSON(w, status, map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": result})
}

func cfError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"success": false, "errors": []map[string]any{{"code": code, "message": msg}}, "messages": []any{}, "result": nil})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// equal compares a presented credential in constant time.
func equal(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// unquote strips the quotes of a TXT value written in zone-file form.
func unquote(v string) string {
	if s, err := strconv.Unquote(v); err == nil {
		return s
	}
	return v
}
