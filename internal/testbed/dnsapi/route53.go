package dnsapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/miekg/dns"
)

// Route53 emulates the Amazon Route 53 REST API calls lego's route53
// provider makes through the AWS SDK (providers/dns/route53/route53.go,
// lego v4.35.2; aws-sdk-go-v2/service/route53 serializers), on
// route53.amazonaws.com:
//
//	GET  /2013-04-01/hostedzonesbyname?dnsname=ZONE      ListHostedZonesByName
//	GET  /2013-04-01/hostedzone/ID/rrset?name=N&type=TXT ListResourceRecordSets
//	POST /2013-04-01/hostedzone/ID/rrset/                ChangeResourceRecordSets
//	GET  /2013-04-01/change/ID                           GetChange
//
// Every request must carry an AWS Signature Version 4 for service route53
// made with the account's access key: the signature is recomputed with the
// SDK's own signer from the headers the request says it signed. An
// unknown access key is answered 403 InvalidClientTokenId, a signature
// made with another secret 403 SignatureDoesNotMatch, as AWS does.
// Changes answer PENDING and are INSYNC when asked.
type Route53 struct {
	*zones
	accessKeyID, secretAccessKey string

	mu      sync.Mutex
	changes int
}

// StartRoute53 serves the API for an account (the access key pair) holding
// zones, on n, publishing records to d. Zone IDs are HostedZoneID(zone).
func StartRoute53(n *Network, d DNS, accessKeyID, secretAccessKey string, zones ...string) *Route53 {
	r := &Route53{zones: newZones(d, zones), accessKeyID: accessKeyID, secretAccessKey: secretAccessKey}
	n.Handle("route53.amazonaws.com", r)
	return r
}

// HostedZoneID is the ID of zone ("Z" and 13 upper-case hex digits).
func HostedZoneID(zone string) string {
	h := sha256.Sum256([]byte(dns.CanonicalName(zone)))
	return "Z" + strings.ToUpper(hex.EncodeToString(h[:7]))[:13]
}

const r53NS = "https://route53.amazonaws.com/doc/2013-04-01/"

type r53RecordSet struct {
	Name            string   `xml:"Name"`
	Type            string   `xml:"Type"`
	TTL             int64    `xml:"TTL,omitempty"`
	ResourceRecords []string `xml:"ResourceRecords>ResourceRecord>Value"`
}

type r53ChangeInfo struct {
	ID          string `xml:"Id"`
	Status      string `xml:"Status"`
	SubmittedAt string `xml:"SubmittedAt"`
}

func (r *Route53) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		r53Error(w, http.StatusBadRequest, "InvalidInput", "unreadable body")
		return
	}
	if code, msg := r.verify(req, body); code != "" {
		r.refused.Add(1)
		r53Error(w, http.StatusForbidden, code, msg)
		return
	}
	r.served.Add(1)
	path := strings.TrimSuffix(req.URL.Path, "/")
	q := req.URL.Query()
	switch {
	case req.Method == http.MethodGet && path == "/2013-04-01/hostedzonesbyname":
		r.listZones(w, q.Get("dnsname"))
	case req.Method == http.MethodGet && strings.HasPrefix(path, "/2013-04-01/change/"):
		id := strings.TrimPrefix(path, "/2013-04-01/change/")
		r53Write(w, struct {
			XMLName    xml.Name      `xml:"GetChangeResponse"`
			NS         string        `xml:"xmlns,attr"`
			ChangeInfo r53ChangeInfo `xml:"ChangeInfo"`
		}{NS: r53NS, ChangeInfo: r53ChangeInfo{ID: "/change/" + id, Status: "INSYNC", SubmittedAt: time.Now().UTC().Format(time.RFC3339)}})
	case strings.HasPrefix(path, "/2013-04-01/hostedzone/") && strings.HasSuffix(path, "/rrset"):
		zone, ok := r.zoneByID(strings.TrimSuffix(strings.TrimPrefix(path, "/2013-04-01/hostedzone/"), "/rrset"))
		if !ok {
			r53Error(w, http.StatusNotFound, "NoSuchHostedZone", "No hosted zone found with ID")
			return
		}
		switch req.Method {
		case http.MethodGet:
			r.listRecordSets(w, q.Get("name"), q.Get("type"))
		case http.MethodPost:
			r.change(w, zone, body)
		default:
			r53Error(w, http.StatusMethodNotAllowed, "InvalidInput", "method not allowed")
		}
	default:
		r53Error(w, http.StatusNotFound, "InvalidInput", "no such operation")
	}
}

// verify checks the request's Signature Version 4; it returns the AWS
// error code and message of a refusal, or "".
func (r *Route53) verify(req *http.Request, body []byte) (code, msg string) {
	const invalidKey = "The security token included in the request is invalid."
	auth, ok := strings.CutPrefix(req.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ")
	if !ok {
		return "MissingAuthenticationToken", "Missing Authentication Token"
	}
	fields := map[string]string{}
	for _, f := range strings.Split(auth, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/") // AKID/date/region/service/aws4_request
	if len(scope) != 5 || scope[4] != "aws4_request" || scope[3] != "route53" {
		return "IncompleteSignature", "Credential scope is malformed"
	}
	if !equal(scope[0], r.accessKeyID) {
		return "InvalidClientTokenId", invalidKey
	}
	signedAt, err := time.Parse("20060102T150405Z", req.Header.Get("X-Amz-Date"))
	if err != nil || signedAt.Format("20060102") != scope[1] {
		return "IncompleteSignature", "X-Amz-Date is missing or does not match the credential scope"
	}
	// Sign again, with the account's secret, exactly the headers the
	// client says it signed.
	u, err := url.Parse("https://" + req.Host + req.URL.RequestURI())
	if err != nil {
		return "IncompleteSignature", "bad request URI"
	}
	again := &http.Request{Method: req.Method, URL: u, Host: req.Host, Header: http.Header{}}
	for _, h := range strings.Split(fields["SignedHeaders"], ";") {
		switch h {
		case "host":
		case "content-length":
			again.ContentLength = int64(len(body))
		default:
			again.Header[http.CanonicalHeaderKey(h)] = req.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: r.accessKeyID, SecretAccessKey: r.secretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), scope[3], scope[2], signedAt); err != nil {
		return "IncompleteSignature", "cannot verify the signature"
	}
	if !equal(again.Header.Get("Authorization"), req.Header.Get("Authorization")) {
		return "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	}
	return "", ""
}

func (r *Route53) zoneByID(id string) (string, bool) {
	for _, z := range r.names {
		if HostedZoneID(z) == id {
			return z, true
		}
	}
	return "", false
}

func (r *Route53) listZones(w http.ResponseWriter, name string) {
	type hostedZone struct {
		ID          string `xml:"Id"`
		Name        string `xml:"Name"`
		CallerRef   string `xml:"CallerReference"`
		PrivateZone bool   `xml:"Config>PrivateZone"`
	}
	var zs []hostedZone
	for _, z := range r.names {
		if name == "" || dns.CanonicalName(name) == z {
			zs = append(zs, hostedZone{ID: "/hostedzone/" + HostedZoneID(z), Name: z, CallerRef: z})
		}
	}
	r53Write(w, struct {
		XMLName     xml.Name     `xml:"ListHostedZonesByNameResponse"`
		NS          string       `xml:"xmlns,attr"`
		HostedZones []hostedZone `xml:"HostedZones>HostedZone"`
		DNSName     string       `xml:"DNSName"`
		IsTruncated bool         `xml:"IsTruncated"`
		MaxItems    int          `xml:"MaxItems"`
	}{NS: r53NS, HostedZones: zs, DNSName: name, MaxItems: 100})
}

// listRecordSets answers the TXT set of name (Route 53 lists from name on;
// lego reads only the set named).
func (r *Route53) listRecordSets(w http.ResponseWriter, name, typ string) {
	var sets []r53RecordSet
	if values := r.values(name); len(values) > 0 && (typ == "" || typ == "TXT") {
		sets = append(sets, r53RecordSet{Name: dns.CanonicalName(name), Type: "TXT", TTL: 10, ResourceRecords: quoteAll(values)})
	}
	r53Write(w, struct {
		XMLName    xml.Name       `xml:"ListResourceRecordSetsResponse"`
		NS         string         `xml:"xmlns,attr"`
		Sets       []r53RecordSet `xml:"ResourceRecordSets>ResourceRecordSet"`
		IsTruncate bool           `xml:"IsTruncated"`
		MaxItems   int            `xml:"MaxItems"`
	}{NS: r53NS, Sets: sets, MaxItems: 300})
}

// change applies a change batch: CREATE (the set must not exist), UPSERT,
// DELETE (the values must match the set's), all or nothing.
func (r *Route53) change(w http.ResponseWriter, zone string, body []byte) {
	var batch struct {
		Changes []struct {
			Action string       `xml:"Action"`
			Set    r53RecordSet `xml:"ResourceRecordSet"`
		} `xml:"ChangeBatch>Changes>Change"`
	}
	if err := xml.Unmarshal(body, &batch); err != nil || len(batch.Changes) == 0 {
		r53Error(w, http.StatusBadRequest, "InvalidInput", "malformed change batch")
		return
	}
	for _, c := range batch.Changes {
		name := dns.CanonicalName(c.Set.Name)
		if c.Set.Type != "TXT" || !dns.IsSubDomain(zone, name) {
			r53Error(w, http.StatusBadRequest, "InvalidChangeBatch", fmt.Sprintf("RRSet %s of type %s is not permitted in zone %s", name, c.Set.Type, zone))
			return
		}
		have := quoteAll(r.values(name))
		switch c.Action {
		case "CREATE":
			if len(have) > 0 {
				r53Error(w, http.StatusBadRequest, "InvalidChangeBatch", fmt.Sprintf("Tried to create resource record set [name='%s', type='TXT'] but it already exists", name))
				return
			}
		case "DELETE":
			if !sameSet(have, c.Set.ResourceRecords) {
				r53Error(w, http.StatusBadRequest, "InvalidChangeBatch", fmt.Sprintf("Tried to delete resource record set [name='%s', type='TXT'] but the values provided do not match the current values", name))
				return
			}
		case "UPSERT":
		default:
			r53Error(w, http.StatusBadRequest, "InvalidInput", "unknown action "+c.Action)
			return
		}
	}
	for _, c := range batch.Changes {
		var values []string
		if c.Action != "DELETE" {
			for _, v := range c.Set.ResourceRecords {
				values = append(values, unquote(v))
			}
		}
		r.set(c.Set.Name, values)
	}
	r.mu.Lock()
	r.changes++
	id := fmt.Sprintf("C%012d", r.changes)
	r.mu.Unlock()
	r53Write(w, struct {
		XMLName    xml.Name      `xml:"ChangeResourceRecordSetsResponse"`
		NS         string        `xml:"xmlns,attr"`
		ChangeInfo r53ChangeInfo `xml:"ChangeInfo"`
	}{NS: r53NS, ChangeInfo: r53ChangeInfo{ID: "/change/" + id, Status: "PENDING", SubmittedAt: time.Now().UTC().Format(time.RFC3339)}})
}

func quoteAll(values []string) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = `"` + v + `"`
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func r53Write(w http.ResponseWriter, v any) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := xml.NewEncoder(&buf).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Write(buf.Bytes())
}

func r53Error(w http.ResponseWriter, status int, code, msg string) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	xml.NewEncoder(&buf).Encode(struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		NS        string   `xml:"xmlns,attr"`
		Type      string   `xml:"Error>Type"`
		Code      string   `xml:"Error>Code"`
		Message   string   `xml:"Error>Message"`
		RequestID string   `xml:"RequestId"`
	}{NS: r53NS, Type: "Sender", Code: code, Message: msg, RequestID: "certsync-test"})
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
