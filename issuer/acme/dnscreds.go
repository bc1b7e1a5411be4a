package acme

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	edgegriddns "github.com/akamai/AkamaiOPEN-edgegrid-golang/v13/pkg/dns"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"golang.org/x/oauth2"

	"github.com/certsync/certsync/declared"
)

// When a provider's API refuses the credentials a block took from its
// Secrets, lego's error says what the API said ("[status code 403] 10000:
// Authentication error") but not where the credentials came from. The
// wrappers here add it: which *SecretRef fields (Secret and key) and
// settings to check. Such a failure is not permanent: the fix is a new
// Secret value, which the next attempt reads, while a permanent failure
// would wait for the Issuer or Certificate to change.

// apiWatch is the transport of one provider's API client. It counts the
// answers that refused the credentials (HTTP 401 and 403), so a failure
// can be told apart from a network or zone problem.
type apiWatch struct {
	base    http.RoundTripper
	refused atomic.Int64
	last    atomic.Pointer[string] // "HTTP 403 from api.cloudflare.com"
}

func (w *apiWatch) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.base.RoundTrip(req)
	if err == nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		what := fmt.Sprintf("HTTP %d from %s", resp.StatusCode, req.URL.Host)
		w.last.Store(&what)
		w.refused.Add(1)
	}
	return resp, err
}

// credentialHint is a provider built from a block's credentials whose
// errors, when its API refused them, say what to check.
type credentialHint struct {
	challenge.Provider
	block string
	check string // the credentials' sources, for the operator
	watch *apiWatch
}

var _ challenge.ProviderTimeout = (*credentialHint)(nil)

func newCredentialHint(s *declared.DNS01Solver, namespace string, watch *apiWatch) *credentialHint {
	return &credentialHint{block: s.Provider, check: credentialSources(s, namespace), watch: watch}
}

func (h *credentialHint) Present(domain, token, keyAuth string) error {
	before := h.watch.refused.Load()
	return h.explainPresent(h.Provider.Present(domain, token, keyAuth), before)
}

func (h *credentialHint) CleanUp(domain, token, keyAuth string) error {
	before := h.watch.refused.Load()
	return h.explainPresent(h.Provider.CleanUp(domain, token, keyAuth), before)
}

// Timeout is the wrapped provider's, or lego's defaults.
func (h *credentialHint) Timeout() (timeout, interval time.Duration) {
	if t, ok := h.Provider.(challenge.ProviderTimeout); ok {
		return t.Timeout()
	}
	return dns01.DefaultPropagationTimeout, dns01.DefaultPollingInterval
}

func (h *credentialHint) explainPresent(err error, before int64) error {
	if explained := h.explain(err, before); explained != err {
		return fmt.Errorf("DNS-01 provider %s: %w", h.block, explained)
	}
	return err
}

// explain returns err with what to check when the API refused the
// credentials since the watch counted before; err itself otherwise.
// Several orders may share a provider: a refusal another one saw in the
// meantime was of the same credentials.
func (h *credentialHint) explain(err error, before int64) error {
	if err == nil {
		return nil
	}
	what := ""
	if h.watch.refused.Load() > before {
		what = *h.watch.last.Load()
	} else if w, ok := refusedBy(err); ok {
		what = w
	} else {
		return err
	}
	return fmt.Errorf("the provider's API refused the credentials (%s): check that %s: %w", what, h.check, err)
}

// refusedBy recognises refusals in the errors of the SDKs whose HTTP
// clients certsync cannot set (Azure, Akamai) or whose token endpoints
// answer 400 (OAuth's invalid_grant).
func refusedBy(err error) (string, bool) {
	var oauth *oauth2.RetrieveError
	if errors.As(err, &oauth) {
		return "the token endpoint refused the key: " + oauthCode(oauth), true
	}
	var azAuth *azidentity.AuthenticationFailedError
	if errors.As(err, &azAuth) {
		return "Microsoft Entra ID refused the client credentials", true
	}
	var az *azcore.ResponseError
	if errors.As(err, &az) && refusal(az.StatusCode) {
		return fmt.Sprintf("HTTP %d %s", az.StatusCode, az.ErrorCode), true
	}
	var eg *edgegriddns.Error
	if errors.As(err, &eg) && refusal(eg.StatusCode) {
		return fmt.Sprintf("HTTP %d %s", eg.StatusCode, eg.Title), true
	}
	return "", false
}

// oauthCode is the OAuth error of a token response (RFC 6749 section
// 5.2): golang.org/x/oauth2/jwt leaves ErrorCode empty, so the body is
// read here.
func oauthCode(e *oauth2.RetrieveError) string {
	code, desc := e.ErrorCode, e.ErrorDescription
	if code == "" {
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(e.Body, &body) == nil {
			code, desc = body.Error, body.Description
		}
	}
	switch {
	case code == "" && e.Response != nil:
		return e.Response.Status
	case desc != "":
		return code + " (" + desc + ")"
	}
	return code
}

func refusal(status int) bool {
	return status == http.StatusUnauthorized || status == http.StatusForbidden
}

// identitySettings are the non-secret settings of each block that name
// the account the credentials belong to.
var identitySettings = map[string][]string{
	declared.DNS01Cloudflare: {"email"},
	declared.DNS01Route53:    {"accessKeyID", "role", "region"},
	declared.DNS01AzureDNS:   {"clientID", "tenantID", "subscriptionID", "environment"},
	declared.DNS01CloudDNS:   {"project"},
	declared.DNS01AcmeDNS:    {"host"},
	declared.DNS01Akamai:     {"serviceConsumerDomain"},
}

// ambientIdentity is where a block without Secrets takes its credentials.
var ambientIdentity = map[string]string{
	declared.DNS01Route53:  "the agent's own AWS identity (IRSA, EKS Pod Identity, instance role, AWS_* environment)",
	declared.DNS01AzureDNS: "the agent's own Azure identity (workload identity, managed identity, AZURE_* environment)",
	declared.DNS01CloudDNS: "the agent's own Google identity (workload identity, application default credentials)",
}

// credentialSources tells the operator where s's credentials come from,
// as what to check: the Secret keys it names and the settings that go with
// them. Values are never quoted.
func credentialSources(s *declared.DNS01Solver, namespace string) string {
	var refs []string
	for _, f := range sortedKeys(s.Secrets) {
		ref := s.Secrets[f]
		refs = append(refs, fmt.Sprintf("%s (Secret %s/%s, key %q)", f, namespace, ref.Name, ref.Key))
	}
	var out string
	switch {
	case len(refs) == 1:
		out = refs[0] + " holds a current credential allowed to change the zone's TXT records"
	case len(refs) > 1:
		out = strings.Join(refs, ", ") + " hold current credentials allowed to change the zone's TXT records"
	case ambientIdentity[s.Provider] != "":
		out = ambientIdentity[s.Provider] + " is allowed to change the zone's TXT records"
	default:
		out = "the block's credentials are current"
	}
	var settings []string
	for _, k := range identitySettings[s.Provider] {
		if s.Settings[k] != "" {
			settings = append(settings, k)
		}
	}
	if len(settings) > 0 {
		out += "; also check the block's " + strings.Join(settings, ", ")
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
