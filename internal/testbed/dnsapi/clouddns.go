package dnsapi

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// CloudDNS emulates Google Cloud DNS as lego's gcloud provider reaches it
// (providers/dns/gcloud/googlecloud.go, lego v4.35.2, through
// google.golang.org/api/dns/v1), with the token endpoint of Google's OAuth
// server the service account key of cert-manager's serviceAccountSecretRef
// is exchanged at (golang.org/x/oauth2/jwt):
//
//	POST oauth2.googleapis.com/token                       JWT bearer grant (RFC 7523)
//	GET  dns.googleapis.com/dns/v1/projects/P/managedZones?dnsName=Z  ManagedZones.List
//	GET  …/managedZones/ZONE                               ManagedZones.Get (hostedZoneName)
//	GET  …/managedZones/ZONE/rrsets?name=N&type=TXT        ResourceRecordSets.List
//	POST …/managedZones/ZONE/changes                       Changes.Create
//	GET  …/managedZones/ZONE/changes/ID                    Changes.Get
//
// The token endpoint verifies the JWT's RS256 signature with the service
// account's public key, its issuer (the account's client_email), audience
// and Cloud DNS scope, and answers a bad one 400 invalid_grant, as Google
// does. The DNS API accepts only the access tokens it issued (401
// UNAUTHENTICATED otherwise), and only for the account's project.
type CloudDNS struct {
	*zones
	project string
	email   string
	key     *rsa.PublicKey

	mu      sync.Mutex
	tokens  map[string]bool
	changes int
}

// CloudDNSScope is the scope a token must be asked for.
const CloudDNSScope = "https://www.googleapis.com/auth/ndev.clouddns.readwrite"

const googleTokenURL = "https://oauth2.googleapis.com/token"

// StartCloudDNS serves the API for project, whose service account is the
// one of serviceAccountJSON (a key file as Google issues it; only the
// public half is kept), holding zones, on n, publishing records to d.
// Managed zone names are ManagedZoneName(zone).
func StartCloudDNS(n *Network, d DNS, project string, serviceAccountJSON []byte, zones ...string) (*CloudDNS, error) {
	var sa struct {
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
		TokenURI    string `json:"token_uri"`
	}
	if err := json.Unmarshal(serviceAccountJSON, &sa); err != nil {
		return nil, fmt.Errorf("service account JSON: %w", err)
	}
	if sa.TokenURI != googleTokenURL {
		return nil, fmt.Errorf("service account token_uri is %q, want %q", sa.TokenURI, googleTokenURL)
	}
	block, _ := pem.Decode([]byte(sa.PrivateKey))
	if block == nil {
		return nil, errors.New("service account JSON: no PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("service account key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("service account key is not RSA")
	}
	c := &CloudDNS{zones: newZones(d, zones), project: project, email: sa.ClientEmail, key: &rk.PublicKey, tokens: map[string]bool{}}
	n.Handle("oauth2.googleapis.com", http.HandlerFunc(c.token))
	n.Handle("dns.googleapis.com", http.HandlerFunc(c.api))
	return c, nil
}

// ManagedZoneName is the managed zone name of zone ("gc.test" → "gc-test"),
// what cert-manager's hostedZoneName names.
func ManagedZoneName(zone string) string {
	return strings.ReplaceAll(strings.TrimSuffix(dns.CanonicalName(zone), "."), ".", "-")
}

// token implements the JWT bearer grant.
func (c *CloudDNS) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
		return
	}
	if msg := c.verifyJWT(r.PostForm.Get("assertion")); msg != "" {
		c.refused.Add(1)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": msg})
		return
	}
	b := make([]byte, 24)
	rand.Read(b)
	tok := "ya29." + base64.RawURLEncoding.EncodeToString(b)
	c.mu.Lock()
	c.tokens[tok] = true
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})
}

// verifyJWT returns why Google would refuse the assertion, or "".
func (c *CloudDNS) verifyJWT(assertion string) string {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
	}
	var header struct{ Alg string }
	var claims struct {
		Iss, Scope, Aud string
		Exp, Iat        int64
	}
	if decodeSegment(parts[0], &header) != nil || decodeSegment(parts[1], &claims) != nil || header.Alg != "RS256" {
		return "Invalid JWT: malformed."
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "Invalid JWT Signature."
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(c.key, crypto.SHA256, sum[:], sig) != nil {
		return "Invalid JWT Signature."
	}
	now := time.Now().Unix()
	switch {
	case claims.Iss != c.email:
		return "Invalid grant: account not found"
	case claims.Aud != googleTokenURL:
		return "Invalid JWT: audience is not " + googleTokenURL
	case !slices.Contains(strings.Fields(claims.Scope), CloudDNSScope):
		return "Invalid JWT: the Cloud DNS scope was not asked for"
	case claims.Exp < now || claims.Iat > now+60 || claims.Exp-claims.Iat > 3600:
		return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
	}
	return ""
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

type gRRSet struct {
	Kind    string   `json:"kind,omitempty"`
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	TTL     int64    `json:"ttl,omitempty"`
	Rrdatas []string `json:"rrdatas"`
}

type gChange struct {
	Kind      string    `json:"kind,omitempty"`
	ID        string    `json:"id,omitempty"`
	Status    string    `json:"status,omitempty"`
	StartTime string    `json:"startTime,omitempty"`
	Additions []*gRRSet `json:"additions,omitempty"`
	Deletions []*gRRSet `json:"deletions,omitempty"`
}

// api serves Cloud DNS v1.
func (c *CloudDNS) api(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	c.mu.Lock()
	ok := c.tokens[tok]
	c.mu.Unlock()
	if !ok {
		c.refused.Add(1)
		gError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
		return
	}
	c.served.Add(1)
	rest, ok := strings.CutPrefix(r.URL.Path, "/dns/v1/projects/")
	if !ok {
		gError(w, http.StatusNotFound, "NOT_FOUND", "Not Found")
		return
	}
	parts := strings.Split(rest, "/") // P managedZones [ZONE [rrsets|changes [ID]]]
	if len(parts) < 2 || parts[1] != "managedZones" {
		gError(w, http.StatusNotFound, "NOT_FOUND", "Not Found")
		return
	}
	if parts[0] != c.project {
		gError(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("Forbidden: the service account has no access to project %s", parts[0]))
		return
	}
	if len(parts) == 2 && r.Method == http.MethodGet {
		var list []map[string]string
		for _, z := range c.names {
			if n := r.URL.Query().Get("dnsName"); n == "" || dns.CanonicalName(n) == z {
				list = append(list, managedZone(z))
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"kind": "dns#managedZonesListResponse", "managedZones": list})
		return
	}
	zone, ok := c.zoneByName(parts[2])
	if !ok {
		gError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("The 'parameters.managedZone' resource named '%s' does not exist.", parts[2]))
		return
	}
	switch {
	case len(parts) == 3 && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, managedZone(zone))
	case len(parts) == 4 && parts[3] == "rrsets" && r.Method == http.MethodGet:
		var sets []gRRSet
		name, typ := r.URL.Query().Get("name"), r.URL.Query().Get("type")
		if values := c.values(name); name != "" && len(values) > 0 && (typ == "" || typ == "TXT") {
			sets = append(sets, gRRSet{Kind: "dns#resourceRecordSet", Name: dns.CanonicalName(name), Type: "TXT", TTL: 120, Rrdatas: quoteAll(values)})
		}
		writeJSON(w, http.StatusOK, map[string]any{"kind": "dns#resourceRecordSetsListResponse", "rrsets": sets})
	case len(parts) == 4 && parts[3] == "changes" && r.Method == http.MethodPost:
		c.change(w, r, zone)
	case len(parts) == 5 && parts[3] == "changes" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, gChange{Kind: "dns#change", ID: parts[4], Status: "done"})
	default:
		gError(w, http.StatusNotFound, "NOT_FOUND", "Not Found")
	}
}

// change applies deletions (which must match the current sets), then
// additions (whose sets must not exist), all or nothing.
func (c *CloudDNS) change(w http.ResponseWriter, r *http.Request, zone string) {
	var ch gChange
	if err := json.NewDecoder(r.Body).Decode(&ch); err != nil || len(ch.Additions)+len(ch.Deletions) == 0 {
		gError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "The 'entity.change' parameter is required but was missing.")
		return
	}
	for i, s := range ch.Deletions {
		if s.Type != "TXT" || !sameSet(quoteAll(c.values(s.Name)), quoteAll(unquoteAll(s.Rrdatas))) {
			gError(w, http.StatusPreconditionFailed, "FAILED_PRECONDITION", fmt.Sprintf("Precondition not met for 'entity.change.deletions[%d]'", i))
			return
		}
	}
	for i, s := range ch.Additions {
		deleted := slices.ContainsFunc(ch.Deletions, func(d *gRRSet) bool { return dns.CanonicalName(d.Name) == dns.CanonicalName(s.Name) })
		switch {
		case s.Type != "TXT" || !dns.IsSubDomain(zone, dns.CanonicalName(s.Name)):
			gError(w, http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("Invalid value for 'entity.change.additions[%d].name'", i))
			return
		case len(c.values(s.Name)) > 0 && !deleted:
			gError(w, http.StatusConflict, "ALREADY_EXISTS", fmt.Sprintf("The resource 'entity.change.additions[%d]' named '%s (TXT)' already exists", i, s.Name))
			return
		}
	}
	for _, s := range ch.Deletions {
		c.set(s.Name, nil)
	}
	for _, s := range ch.Additions {
		c.set(s.Name, unquoteAll(s.Rrdatas))
	}
	c.mu.Lock()
	c.changes++
	ch.ID = fmt.Sprint(c.changes)
	c.mu.Unlock()
	ch.Kind, ch.Status, ch.StartTime = "dns#change", "pending", time.Now().UTC().Format(time.RFC3339)
	writeJSON(w, http.StatusOK, ch)
}

func (c *CloudDNS) zoneByName(name string) (string, bool) {
	for _, z := range c.names {
		if ManagedZoneName(z) == name {
			return z, true
		}
	}
	return "", false
}

func managedZone(zone string) map[string]string {
	h := sha256.Sum256([]byte(zone))
	id := fmt.Sprint(binary.BigEndian.Uint32(h[:4])) // a uint64, as a JSON string
	return map[string]string{"kind": "dns#managedZone", "name": ManagedZoneName(zone), "dnsName": zone, "id": id, "visibility": "public"}
}

func unquoteAll(values []string) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = unquote(v)
	}
	return out
}

func gError(w http.ResponseWriter, code int, status, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}})
}
