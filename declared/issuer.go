package declared

import (
	"fmt"
	"net/url"
	"sort"
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
	if err := validateObjectName(d, raw.Metadata.Name, iss.Namespace); err != nil {
		return iss, err
	}
	switch {
	case raw.Spec.ACME != nil:
	case raw.Spec.CA != nil, raw.Spec.SelfSigned != nil, raw.Spec.Vault != nil, raw.Spec.Venafi != nil:
		return iss, d.fail("spec", "only ACME issuers are supported by certsync yet")
	default:
		return iss, d.fail("spec", "no issuer type set: add spec.acme")
	}
	acme, err := parseACME(d, raw.Spec.ACME)
	if err != nil {
		return iss, err
	}
	iss.ACME = acme
	return iss, nil
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
	if raw.ExternalAccountBinding != nil {
		eab := raw.ExternalAccountBinding
		if eab.KeyID == "" || eab.KeySecretRef.Name == "" {
			return nil, d.fail("spec.acme.externalAccountBinding", "keyID and keySecretRef.name are required")
		}
		a.ExternalAccountBinding = &ExternalAccountBinding{KeyID: eab.KeyID, KeySecretRef: eab.KeySecretRef.Name}
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

// builtinDNS01 maps cert-manager's built-in DNS-01 provider blocks onto the
// lego provider for the same service, and the block's non-secret settings
// onto that provider's environment variables. Credentials stay where lego
// reads them: the agent's environment (or *_FILE variables), never Git.
var builtinDNS01 = map[string]struct {
	lego   string
	fields map[string]string
}{
	"cloudflare":   {"cloudflare", map[string]string{"email": "CLOUDFLARE_EMAIL"}},
	"route53":      {"route53", map[string]string{"region": "AWS_REGION", "hostedZoneID": "AWS_HOSTED_ZONE_ID", "role": "AWS_ASSUME_ROLE_ARN"}},
	"digitalocean": {"digitalocean", nil},
	"rfc2136":      {"rfc2136", map[string]string{"nameserver": "RFC2136_NAMESERVER", "tsigKeyName": "RFC2136_TSIG_KEY", "tsigAlgorithm": "RFC2136_TSIG_ALGORITHM"}},
	"azureDNS":     {"azuredns", map[string]string{"subscriptionID": "AZURE_SUBSCRIPTION_ID", "resourceGroupName": "AZURE_RESOURCE_GROUP", "hostedZoneName": "AZURE_ZONE_NAME", "tenantID": "AZURE_TENANT_ID", "clientID": "AZURE_CLIENT_ID"}},
	"cloudDNS":     {"gcloud", map[string]string{"project": "GCE_PROJECT"}},
	"acmeDNS":      {"acme-dns", map[string]string{"host": "ACME_DNS_API_BASE"}},
	"akamai":       {"edgedns", map[string]string{"serviceConsumerDomain": "AKAMAI_HOST"}},
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
	block, _ := raw[names[0]].(map[string]any)
	if names[0] == "webhook" {
		// webhook.solverName names any lego DNS provider; webhook.config
		// holds that provider's settings by environment variable name.
		name, _ := block["solverName"].(string)
		if name == "" {
			return nil, d.fail(field+".webhook.solverName", "is required: the name of a lego DNS provider (e.g. httpreq, exec, ovh)")
		}
		cfg := map[string]string{}
		if c, ok := block["config"].(map[string]any); ok {
			for k, v := range c {
				cfg[k] = fmt.Sprint(v)
			}
		}
		return &DNS01Solver{Provider: name, Config: cfg}, nil
	}
	b, ok := builtinDNS01[names[0]]
	if !ok {
		return nil, d.fail(field+"."+names[0], "unknown DNS-01 provider; use one of cert-manager's (cloudflare, route53, ...) or webhook with solverName set to a lego provider")
	}
	cfg := map[string]string{}
	for from, env := range b.fields {
		if v, ok := block[from]; ok {
			cfg[env] = fmt.Sprint(v)
		}
	}
	return &DNS01Solver{Provider: b.lego, Config: cfg}, nil
}
