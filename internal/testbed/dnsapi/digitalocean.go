package dnsapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// DigitalOcean emulates the DigitalOcean API v2 endpoints lego's
// digitalocean provider calls (providers/dns/digitalocean/internal/client.go,
// lego v4.35.2), on api.digitalocean.com:
//
//	POST   /v2/domains/ZONE/records         AddTxtRecord
//	DELETE /v2/domains/ZONE/records/REC_ID  RemoveTxtRecord
//
// It accepts the personal access token of cert-manager's tokenSecretRef
// as a bearer token (lego sends it through oauth2.StaticTokenSource) and
// answers any other request 401 "Unable to authenticate you".
type DigitalOcean struct {
	*zones
	token string
}

// StartDigitalOcean serves the API for an account holding zones and
// reached with token, on n, publishing records to d.
func StartDigitalOcean(n *Network, d DNS, token string, zones ...string) *DigitalOcean {
	o := &DigitalOcean{zones: newZones(d, zones), token: token}
	n.Handle("api.digitalocean.com", o)
	return o
}

// doRecord is a domain record as the API takes and returns it.
type doRecord struct {
	ID   int    `json:"id,omitempty"`
	Type string `json:"type"`
	Name string `json:"name"`
	Data string `json:"data"`
	TTL  int    `json:"ttl,omitempty"`
}

func (o *DigitalOcean) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !equal(tok, o.token) {
		o.refused.Add(1)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"id": "Unauthorized", "message": "Unable to authenticate you"})
		return
	}
	o.served.Add(1)
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 4 || parts[0] != "v2" || parts[1] != "domains" || parts[3] != "records" {
		doNotFound(w)
		return
	}
	zone := dns.CanonicalName(parts[2])
	if z, ok := o.zoneOf(zone); !ok || z != zone {
		doNotFound(w)
		return
	}
	switch {
	case r.Method == http.MethodPost && len(parts) == 4:
		var rec doRecord
		if err := json.NewDecoder(r.Body).Decode(&rec); err != nil || rec.Type != "TXT" || rec.Data == "" {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"id": "unprocessable_entity", "message": "Record type and data are required."})
			return
		}
		// A name ending in a dot is absolute; others are relative to the
		// domain, "@" its apex.
		fqdn := rec.Name
		switch {
		case rec.Name == "@":
			fqdn = zone
		case !strings.HasSuffix(rec.Name, "."):
			fqdn = rec.Name + "." + zone
		}
		if !dns.IsSubDomain(zone, dns.CanonicalName(fqdn)) {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"id": "unprocessable_entity", "message": "Name is not in the domain."})
			return
		}
		id := o.add(fqdn, rec.Data)
		rec.ID, _ = strconv.Atoi(id)
		writeJSON(w, http.StatusCreated, map[string]doRecord{"domain_record": rec})
	case r.Method == http.MethodDelete && len(parts) == 5:
		if !o.remove(parts[4]) {
			doNotFound(w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		doNotFound(w)
	}
}

func doNotFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"id": "not_found", "message": "The resource you were accessing could not be found."})
}
