package declared

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

func parseIssuer(d *document, kind string) (Issuer, error) {
	var raw rawIssuer
	if err := d.decode(&raw); err != nil {
		return Issuer{}, err
	}
	d.name = raw.Metadata.Name
	iss := Issuer{Kind: kind, Name: raw.Metadata.Name, Source: d.src}
	if kind == KindIssuer {
		d.namespace = namespaceOrDefault(raw.Metadata.Namespace)
		iss.Namespace = d.namespace
	}
	if err := d.checkKnown(&raw); err != nil {
		return iss, err
	}
	if err := validateObjectName(d, raw.Metadata.Name, iss.Namespace); err != nil {
		return iss, err
	}
	types := 0
	for _, set := range []bool{raw.Spec.ACME != nil, raw.Spec.CA != nil, raw.Spec.SelfSigned != nil, raw.Spec.Vault != nil, raw.Spec.Venafi != nil} {
		if set {
			types++
		}
	}
	var err error
	switch {
	case types > 1:
		return iss, d.fail("spec", "may not specify more than one issuer type (acme, ca, selfSigned, vault, venafi)")
	case raw.Spec.Vault != nil:
		return iss, d.failField("spec.vault", "Vault issuers are not supported by certsync (it implements acme, ca and selfSigned): issue these certificates with cert-manager")
	case raw.Spec.Venafi != nil:
		return iss, d.failField("spec.venafi", "Venafi issuers are not supported by certsync (it implements acme, ca and selfSigned): issue these certificates with cert-manager")
	case raw.Spec.ACME != nil:
		iss.ACME, err = parseACME(d, raw.Spec.ACME)
	case raw.Spec.CA != nil:
		iss.CA, err = parseCA(d, "spec.ca", raw.Spec.CA)
	case raw.Spec.SelfSigned != nil:
		iss.SelfSigned, err = parseSelfSigned(d, "spec.selfSigned", raw.Spec.SelfSigned)
	default:
		return iss, d.fail("spec", "at least one issuer must be configured: acme, ca or selfSigned")
	}
	return iss, err
}

// parseCA reads spec.ca as cert-manager validates it: secretName is
// required, and each OCSP server and issuing certificate URL must be set.
func parseCA(d *document, field string, v any) (*CAIssuer, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, d.fail(field, "must be a mapping with secretName")
	}
	ca := &CAIssuer{}
	var err error
	for _, k := range sortedKeys(m) {
		switch k {
		case "secretName":
			if !isScalar(m[k]) {
				return nil, d.fail(field+"."+k, "must be a Secret name")
			}
			ca.SecretName = scalar(m[k])
		case "crlDistributionPoints":
			ca.CRLDistributionPoints, err = stringList(d, field+"."+k, m[k])
		case "ocspServers":
			ca.OCSPServers, err = stringList(d, field+"."+k, m[k])
		case "issuingCertificateURLs":
			ca.IssuingCertificateURLs, err = stringList(d, field+"."+k, m[k])
		default:
			return nil, d.failField(field+"."+k, "unknown field; ca has secretName, crlDistributionPoints, ocspServers and issuingCertificateURLs")
		}
		if err != nil {
			return nil, err
		}
	}
	if ca.SecretName == "" {
		return nil, d.fail(field+".secretName", "is required: the Secret holding the CA's tls.crt and tls.key, in the issuer's namespace (cert-manager's for a ClusterIssuer)")
	}
	if msgs := validation.IsDNS1123Subdomain(ca.SecretName); len(msgs) > 0 {
		return nil, d.fail(field+".secretName", "%q is not a valid Secret name: %s", clip(ca.SecretName), strings.Join(msgs, "; "))
	}
	for i, u := range ca.OCSPServers {
		if u == "" {
			return nil, d.fail(fmt.Sprintf("%s.ocspServers[%d]", field, i), "must be a valid URL, e.g., http://ocsp.int-x3.letsencrypt.org")
		}
	}
	for i, u := range ca.IssuingCertificateURLs {
		if u == "" {
			return nil, d.fail(fmt.Sprintf("%s.issuingCertificateURLs[%d]", field, i), "must be a valid URL")
		}
	}
	return ca, nil
}

// parseSelfSigned reads spec.selfSigned; cert-manager validates nothing in it.
func parseSelfSigned(d *document, field string, v any) (*SelfSignedIssuer, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, d.fail(field, "must be a mapping (selfSigned: {})")
	}
	ss := &SelfSignedIssuer{}
	for _, k := range sortedKeys(m) {
		if k != "crlDistributionPoints" {
			return nil, d.failField(field+"."+k, "unknown field; selfSigned has crlDistributionPoints")
		}
		points, err := stringList(d, field+"."+k, m[k])
		if err != nil {
			return nil, err
		}
		ss.CRLDistributionPoints = points
	}
	return ss, nil
}

// stringList reads a list of strings (nil when absent or null).
func stringList(d *document, field string, v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	items, ok := v.([]any)
	if !ok {
		return nil, d.fail(field, "must be a list of strings")
	}
	out := make([]string, len(items))
	for i, item := range items {
		if !isScalar(item) {
			return nil, d.fail(fmt.Sprintf("%s[%d]", field, i), "must be a string")
		}
		out[i] = scalar(item)
	}
	return out, nil
}

func parseACME(d *document, raw *rawACME) (*ACMEIssuer, error) {
	a := &ACMEIssuer{
		Server:                      raw.Server,
		Email:                       raw.Email,
		PrivateKeySecretRef:         raw.PrivateKeySecretRef.Name,
		SkipTLSVerify:               raw.SkipTLSVerify,
		CABundle:                    raw.CABundle,
		DisableAccountKeyGeneration: raw.DisableAccountKeyGeneration,
		EnableDurationFeature:       raw.EnableDurationFeature,
		Profile:                     raw.Profile,
		PreferredChain:              raw.PreferredChain,
	}
	u, err := url.Parse(a.Server)
	if a.Server == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, d.fail("spec.acme.server", "%q must be the https URL of an ACME directory", a.Server)
	}
	if a.PrivateKeySecretRef == "" {
		return nil, d.fail("spec.acme.privateKeySecretRef.name", "is required: it names the account key certsync keeps in the repository")
	}
	// The name becomes a file name under accounts/: a Secret name, nothing
	// that could leave the folder.
	if msgs := validation.IsDNS1123Subdomain(a.PrivateKeySecretRef); len(msgs) > 0 {
		return nil, d.fail("spec.acme.privateKeySecretRef.name", "%q is not a valid Secret name: %s", clip(a.PrivateKeySecretRef), strings.Join(msgs, "; "))
	}
	if raw.ExternalAccountBinding != nil {
		eab, err := parseEAB(d, "spec.acme.externalAccountBinding")
		if err != nil {
			return nil, err
		}
		a.ExternalAccountBinding = eab
	}
	if len(raw.Solvers) == 0 {
		return nil, d.fail("spec.acme.solvers", "at least one solver is required")
	}
	for i, rs := range raw.Solvers {
		s, err := parseSolver(d, fmt.Sprintf("spec.acme.solvers[%d]", i), rs)
		if err != nil {
			return nil, err
		}
		a.Solvers = append(a.Solvers, s)
	}
	return a, nil
}

// parseEAB reads spec.acme.externalAccountBinding from the document's node:
// the HMAC key is a Secret reference, validated as cert-manager validates
// it (keyID, keySecretRef.name and keySecretRef.key are required).
func parseEAB(d *document, field string) (*ExternalAccountBinding, error) {
	n := d.root
	for _, k := range strings.Split(field, ".") {
		if n = mappingValue(n, k); n == nil {
			return nil, d.fail(field, "cannot read it")
		}
	}
	var raw map[string]any
	if err := n.Decode(&raw); err != nil {
		return nil, d.fail(field, "must be a mapping with keyID and keySecretRef")
	}
	eab := &ExternalAccountBinding{}
	for _, k := range sortedKeys(raw) {
		v := raw[k]
		switch k {
		case "keyID":
			eab.KeyID = scalar(v)
		case "keyAlgorithm":
			eab.KeyAlgorithm = scalar(v)
			if !slices.Contains([]string{"HS256", "HS384", "HS512"}, eab.KeyAlgorithm) {
				return nil, d.fail(field+".keyAlgorithm", "%q is not one of HS256, HS384, HS512 (the field is deprecated: remove it)", eab.KeyAlgorithm)
			}
		case "keySecretRef":
			ref, err := parseSecretRef(d, field+".keySecretRef", v)
			if err != nil {
				return nil, err
			}
			eab.KeySecretRef = ref
		default:
			return nil, d.failField(field+"."+k, "unknown field; externalAccountBinding has keyID, keySecretRef and keyAlgorithm")
		}
	}
	if eab.KeyID == "" {
		return nil, d.fail(field+".keyID", "is required: the key identifier the CA gave with the HMAC key")
	}
	if eab.KeySecretRef.Name == "" {
		return nil, d.fail(field+".keySecretRef", "is required: the Secret holding the base64url HMAC key")
	}
	return eab, nil
}

func parseSolver(d *document, field string, raw rawSolver) (Solver, error) {
	var s Solver
	if raw.Selector != nil {
		s.Selector = &SolverSelector{DNSNames: raw.Selector.DNSNames, DNSZones: raw.Selector.DNSZones, MatchLabels: raw.Selector.MatchLabels}
	}
	switch {
	case raw.HTTP01 != nil && raw.DNS01 != nil:
		return s, d.fail(field, "set exactly one of http01 and dns01")
	case raw.HTTP01 != nil:
		s.HTTP01 = &HTTP01Solver{}
	case raw.DNS01 != nil:
		dns, err := parseDNS01(d, field+".dns01", raw.DNS01)
		if err != nil {
			return s, err
		}
		s.DNS01 = dns
	default:
		return s, d.fail(field, "set one of http01 or dns01")
	}
	return s, nil
}

// dns01Schema is what certsync reads of one cert-manager DNS-01 provider
// block: its non-secret fields, its *SecretRef fields, the cert-manager
// fields it refuses (with what to do instead), and cert-manager's rules
// across fields.
type dns01Schema struct {
	settings []string
	secrets  []string
	refused  map[string]string
	check    func(d *document, field string, s *DNS01Solver) error
}

// dns01Schemas are cert-manager's provider blocks (field names from its
// acme/v1 API). Credentials are always *SecretRef fields: a manifest names
// a Secret, never a value or a variable of the agent's environment.
var dns01Schemas = map[string]dns01Schema{
	DNS01Cloudflare: {
		settings: []string{"email"},
		secrets:  []string{"apiTokenSecretRef", "apiKeySecretRef"},
		check:    checkCloudflare,
	},
	DNS01Route53: {
		settings: []string{"accessKeyID", "region", "hostedZoneID", "role"},
		secrets:  []string{"accessKeyIDSecretRef", "secretAccessKeySecretRef"},
		refused:  map[string]string{"auth": "Kubernetes ServiceAccount tokens are not supported by certsync: give the agent its own AWS identity (IRSA, EKS Pod Identity, instance role) and leave the credentials unset, or use accessKeyIDSecretRef and secretAccessKeySecretRef"},
		check:    checkRoute53,
	},
	DNS01DigitalOcean: {
		secrets: []string{"tokenSecretRef"},
		check:   requireSecrets("tokenSecretRef"),
	},
	DNS01RFC2136: {
		settings: []string{"nameserver", "tsigKeyName", "tsigAlgorithm", "protocol"},
		secrets:  []string{"tsigSecretSecretRef"},
		check:    checkRFC2136,
	},
	DNS01AzureDNS: {
		settings: []string{"clientID", "subscriptionID", "tenantID", "resourceGroupName", "hostedZoneName", "environment"},
		secrets:  []string{"clientSecretSecretRef"},
		refused:  map[string]string{"managedIdentity": "is not supported by certsync: leave clientID, clientSecretSecretRef and tenantID unset and the agent uses its own Azure identity (workload identity, managed identity) from its environment"},
		check:    checkAzureDNS,
	},
	DNS01CloudDNS: {
		settings: []string{"project", "hostedZoneName"},
		secrets:  []string{"serviceAccountSecretRef"},
		check:    requireSettings("project"),
	},
	DNS01AcmeDNS: {
		settings: []string{"host"},
		secrets:  []string{"accountSecretRef"},
		check:    all(requireSettings("host"), requireSecrets("accountSecretRef")),
	},
	DNS01Akamai: {
		settings: []string{"serviceConsumerDomain"},
		secrets:  []string{"clientTokenSecretRef", "clientSecretSecretRef", "accessTokenSecretRef"},
		check:    all(requireSettings("serviceConsumerDomain"), requireSecrets("clientTokenSecretRef", "clientSecretSecretRef", "accessTokenSecretRef")),
	},
	DNS01Webhook: {
		settings: []string{"solverName", "groupName"},
		// The old meaning of config (lego environment variables) let anyone
		// who merges to the repository configure the agent's process.
		refused: map[string]string{"config": "webhook.config would configure the agent's process from the repository; set the provider's variables in the agent's environment instead (and allow the provider with --dns01-allow-providers)"},
	},
}

func parseDNS01(d *document, field string, raw map[string]any) (*DNS01Solver, error) {
	var names []string
	for k := range raw {
		if k != "cnameStrategy" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	if len(names) != 1 {
		return nil, d.fail(field, "set exactly one DNS provider (found %d: %v)", len(names), names)
	}
	name := names[0]
	field += "." + name
	schema, ok := dns01Schemas[name]
	if !ok {
		return nil, d.failField(field, "unknown DNS-01 provider; use one of cert-manager's (%s) or webhook with solverName set to a lego provider", strings.Join(sortedKeys(dns01Schemas), ", "))
	}
	block, ok := raw[name].(map[string]any)
	if raw[name] != nil && !ok {
		return nil, d.fail(field, "must be a mapping of the provider's fields")
	}
	s := &DNS01Solver{Provider: name, Settings: map[string]string{}, Secrets: map[string]SecretKeySelector{}}
	for _, k := range sortedKeys(block) {
		v := block[k]
		switch {
		case slices.Contains(schema.settings, k):
			if !isScalar(v) {
				return nil, d.fail(field+"."+k, "must be a single value")
			}
			if v != nil {
				s.Settings[k] = scalar(v)
			}
		case slices.Contains(schema.secrets, k):
			ref, err := parseSecretRef(d, field+"."+k, v)
			if err != nil {
				return nil, err
			}
			s.Secrets[k] = ref
		case schema.refused[k] != "":
			return nil, d.failField(field+"."+k, "%s", schema.refused[k])
		default:
			return nil, d.failField(field+"."+k, "unknown field of the %s provider; it has %s", name, strings.Join(slices.Concat(schema.settings, schema.secrets), ", "))
		}
	}
	if name == DNS01Webhook {
		s.SolverName = s.Settings["solverName"]
		delete(s.Settings, "solverName")
		if s.SolverName == "" {
			return nil, d.fail(field+".solverName", "is required: the name of a lego DNS provider (e.g. httpreq, ovh), configured from the agent's environment")
		}
	}
	if schema.check != nil {
		if err := schema.check(d, field, s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// parseSecretRef reads a SecretKeySelector. As cert-manager validates the
// *SecretRef fields of issuers, both name and key are required.
func parseSecretRef(d *document, field string, v any) (SecretKeySelector, error) {
	m, ok := v.(map[string]any)
	if v != nil && !ok {
		return SecretKeySelector{}, d.fail(field, "must be a mapping with name and key")
	}
	var ref SecretKeySelector
	for _, k := range sortedKeys(m) {
		switch k {
		case "name":
			ref.Name = scalar(m[k])
		case "key":
			ref.Key = scalar(m[k])
		default:
			return ref, d.failField(field+"."+k, "unknown field; a Secret reference has name and key")
		}
	}
	if ref.Name == "" {
		return ref, d.fail(field+".name", "is required: the Secret holding the value, in the issuer's namespace (cert-manager's for a ClusterIssuer)")
	}
	if ref.Key == "" {
		return ref, d.fail(field+".key", "is required: the key of Secret %s that holds the value", ref.Name)
	}
	return ref, nil
}

func checkCloudflare(d *document, field string, s *DNS01Solver) error {
	_, key := s.Secrets["apiKeySecretRef"]
	_, token := s.Secrets["apiTokenSecretRef"]
	switch {
	case key && token:
		return d.fail(field, "apiKeySecretRef and apiTokenSecretRef cannot both be specified")
	case !key && !token:
		return d.fail(field, "apiTokenSecretRef (or apiKeySecretRef with email) is required")
	case key && s.Settings["email"] == "":
		return d.fail(field+".email", "is required with apiKeySecretRef")
	}
	return nil
}

func checkRoute53(d *document, field string, s *DNS01Solver) error {
	_, idRef := s.Secrets["accessKeyIDSecretRef"]
	_, secret := s.Secrets["secretAccessKeySecretRef"]
	id := idRef || s.Settings["accessKeyID"] != ""
	switch {
	case idRef && s.Settings["accessKeyID"] != "":
		return d.fail(field, "accessKeyID and accessKeyIDSecretRef cannot both be specified")
	case id && !secret:
		return d.fail(field+".secretAccessKeySecretRef", "is required with an access key ID")
	case secret && !id:
		return d.fail(field, "secretAccessKeySecretRef needs accessKeyID or accessKeyIDSecretRef (or leave all unset to use the agent's own AWS identity)")
	}
	return nil
}

// tsigAlgorithms are cert-manager's spellings (case-insensitive). Its
// default, HMACMD5, is not one lego's RFC 2136 provider can sign with.
var tsigAlgorithms = []string{"HMACMD5", "HMACSHA1", "HMACSHA256", "HMACSHA512"}

func checkRFC2136(d *document, field string, s *DNS01Solver) error {
	ns := s.Settings["nameserver"]
	if ns == "" {
		return d.fail(field+".nameserver", "is required: the host:port of the DNS server accepting updates")
	}
	if err := validNameserver(ns); err != nil {
		return d.fail(field+".nameserver", "%q must be host:port (an IPv6 host in brackets; the port may be left out): %v", ns, err)
	}
	alg := strings.ToUpper(s.Settings["tsigAlgorithm"])
	if alg != "" && !slices.Contains(tsigAlgorithms, alg) {
		return d.fail(field+".tsigAlgorithm", "%q is not one of %s", s.Settings["tsigAlgorithm"], strings.Join(tsigAlgorithms, ", "))
	}
	_, secret := s.Secrets["tsigSecretSecretRef"]
	keyName := s.Settings["tsigKeyName"] != ""
	switch {
	case keyName && !secret:
		return d.fail(field+".tsigSecretSecretRef", "is required with tsigKeyName")
	case secret && !keyName:
		return d.fail(field+".tsigKeyName", "is required with tsigSecretSecretRef")
	case secret && (alg == "" || alg == "HMACMD5"):
		return d.fail(field+".tsigAlgorithm", "HMACMD5 (cert-manager's default when tsigAlgorithm is unset) is not supported by certsync: use a key with HMACSHA256 (or HMACSHA1, HMACSHA512) and set tsigAlgorithm")
	}
	switch s.Settings["protocol"] {
	case "", "udp":
	case "tcp":
		return d.fail(field+".protocol", "tcp is not supported by certsync: updates are sent over UDP; remove the field or set udp")
	default:
		return d.fail(field+".protocol", "%q is not one of tcp, udp", s.Settings["protocol"])
	}
	return nil
}

// validNameserver accepts cert-manager's forms: host, host:port, [v6], [v6]:port.
func validNameserver(ns string) error {
	host, port, err := net.SplitHostPort(ns)
	if err != nil {
		if strings.Count(ns, ":") > 1 && !strings.HasPrefix(ns, "[") {
			return errors.New("enclose an IPv6 address in brackets")
		}
		host, port = strings.TrimSuffix(strings.TrimPrefix(ns, "["), "]"), ""
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return errors.New("no host")
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("bad port %q", port)
		}
	}
	return nil
}

// azureEnvironments are cert-manager's names that lego can reach;
// AzureGermanCloud was shut down and the Azure SDK no longer knows it.
var azureEnvironments = []string{"AzurePublicCloud", "AzureChinaCloud", "AzureUSGovernmentCloud"}

func checkAzureDNS(d *document, field string, s *DNS01Solver) error {
	_, secret := s.Secrets["clientSecretSecretRef"]
	if secret || s.Settings["clientID"] != "" || s.Settings["tenantID"] != "" {
		for _, k := range []string{"clientID", "tenantID"} {
			if s.Settings[k] == "" {
				return d.fail(field+"."+k, "is required with a service principal (clientID, clientSecretSecretRef and tenantID go together)")
			}
		}
		if !secret {
			return d.fail(field+".clientSecretSecretRef", "is required with a service principal (clientID, clientSecretSecretRef and tenantID go together)")
		}
	}
	if err := requireSettings("subscriptionID", "resourceGroupName")(d, field, s); err != nil {
		return err
	}
	if env := s.Settings["environment"]; env != "" && !slices.Contains(azureEnvironments, env) {
		return d.fail(field+".environment", "%q is not one of %s", env, strings.Join(azureEnvironments, ", "))
	}
	return nil
}

func requireSettings(names ...string) func(*document, string, *DNS01Solver) error {
	return func(d *document, field string, s *DNS01Solver) error {
		for _, n := range names {
			if s.Settings[n] == "" {
				return d.fail(field+"."+n, "is required")
			}
		}
		return nil
	}
}

func requireSecrets(names ...string) func(*document, string, *DNS01Solver) error {
	return func(d *document, field string, s *DNS01Solver) error {
		for _, n := range names {
			if _, ok := s.Secrets[n]; !ok {
				return d.fail(field+"."+n, "is required: a Secret reference with name and key")
			}
		}
		return nil
	}
}

func all(checks ...func(*document, string, *DNS01Solver) error) func(*document, string, *DNS01Solver) error {
	return func(d *document, field string, s *DNS01Solver) error {
		for _, c := range checks {
			if err := c(d, field, s); err != nil {
				return err
			}
		}
		return nil
	}
}

// isScalar reports whether a decoded YAML value is a single value.
func isScalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

func scalar(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
