package acme

// Builders for cert-manager's DNS-01 provider blocks. Each starts from the
// lego provider's NewDefaultConfig (which reads only timeouts, TTLs and
// similar operator defaults from the environment), fills it from the
// manifest's settings and the Secrets it names, and builds the provider
// with NewDNSProviderConfig. Leaving a block's credentials out uses the
// agent's own identity (AWS, Azure, Google ambient credentials), as
// cert-manager does.

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/providers/dns/azuredns"
	"github.com/go-acme/lego/v4/providers/dns/cloudflare"
	"github.com/go-acme/lego/v4/providers/dns/digitalocean"
	"github.com/go-acme/lego/v4/providers/dns/edgedns"
	"github.com/go-acme/lego/v4/providers/dns/gcloud"
	"github.com/go-acme/lego/v4/providers/dns/rfc2136"
	"github.com/go-acme/lego/v4/providers/dns/route53"
	"github.com/miekg/dns"
	"golang.org/x/oauth2/google"
	gdns "google.golang.org/api/dns/v1"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

func cloudflareProvider(ctx context.Context, s *declared.DNS01Solver, sec secretSource) (challenge.Provider, error) {
	cfg := cloudflare.NewDefaultConfig()
	cfg.AuthEmail = s.Settings["email"]
	var err error
	if cfg.AuthToken, err = sec.optional(ctx, s, "apiTokenSecretRef"); err != nil {
		return nil, err
	}
	if cfg.AuthKey, err = sec.optional(ctx, s, "apiKeySecretRef"); err != nil {
		return nil, err
	}
	return cloudflare.NewDNSProviderConfig(cfg)
}

func route53Provider(ctx context.Context, s *declared.DNS01Solver, sec secretSource) (challenge.Provider, error) {
	cfg := route53.NewDefaultConfig()
	cfg.Region = s.Settings["region"]
	if z := s.Settings["hostedZoneID"]; z != "" {
		cfg.HostedZoneID = z
	}
	if r := s.Settings["role"]; r != "" {
		cfg.AssumeRoleArn = r
	}
	cfg.AccessKeyID = s.Settings["accessKeyID"]
	var err error
	if cfg.AccessKeyID == "" {
		if cfg.AccessKeyID, err = sec.optional(ctx, s, "accessKeyIDSecretRef"); err != nil {
			return nil, err
		}
	}
	if cfg.SecretAccessKey, err = sec.optional(ctx, s, "secretAccessKeySecretRef"); err != nil {
		return nil, err
	}
	return route53.NewDNSProviderConfig(cfg)
}

func digitalOceanProvider(ctx context.Context, s *declared.DNS01Solver, sec secretSource) (challenge.Provider, error) {
	cfg := digitalocean.NewDefaultConfig()
	var err error
	if cfg.AuthToken, err = sec.value(ctx, "tokenSecretRef", s.Secrets["tokenSecretRef"]); err != nil {
		return nil, err
	}
	return digitalocean.NewDNSProviderConfig(cfg)
}

// tsigAlgorithms maps cert-manager's spellings to miekg/dns's. HMACMD5,
// cert-manager's default, is refused by declared: lego cannot sign with it.
var tsigAlgorithms = map[string]string{
	"HMACSHA1":   dns.HmacSHA1,
	"HMACSHA256": dns.HmacSHA256,
	"HMACSHA512": dns.HmacSHA512,
}

func rfc2136Provider(ctx context.Context, s *declared.DNS01Solver, sec secretSource) (challenge.Provider, error) {
	cfg := rfc2136.NewDefaultConfig()
	cfg.Nameserver = s.Settings["nameserver"]
	// lego appends :53 to a bare host, but not to a bracketed IPv6 one.
	if h, ok := strings.CutPrefix(cfg.Nameserver, "["); ok && strings.HasSuffix(h, "]") {
		cfg.Nameserver = net.JoinHostPort(strings.TrimSuffix(h, "]"), "53")
	}
	if name := s.Settings["tsigKeyName"]; name != "" {
		alg, ok := tsigAlgorithms[strings.ToUpper(s.Settings["tsigAlgorithm"])]
		if !ok {
			return nil, fmt.Errorf("%w: tsigAlgorithm %q is not one of HMACSHA1, HMACSHA256, HMACSHA512", issuer.ErrPermanent, s.Settings["tsigAlgorithm"])
		}
		secret, err := sec.value(ctx, "tsigSecretSecretRef", s.Secrets["tsigSecretSecretRef"])
		if err != nil {
			return nil, err
		}
		cfg.TSIGKey, cfg.TSIGSecret, cfg.TSIGAlgorithm = name, secret, alg
	}
	return rfc2136.NewDNSProviderConfig(cfg)
}

// azureEnvironments maps cert-manager's environment names to the SDK's.
var azureEnvironments = map[string]cloud.Configuration{
	"":                       cloud.AzurePublic,
	"AzurePublicCloud":       cloud.AzurePublic,
	"AzureChinaCloud":        cloud.AzureChina,
	"AzureUSGovernmentCloud": cloud.AzureGovernment,
}

func azureDNSProvider(ctx context.Context, s *declared.DNS01Solver, sec secretSource) (challenge.Provider, error) {
	cfg := azuredns.NewDefaultConfig()
	env, ok := azureEnvironments[s.Settings["environment"]]
	if !ok {
		return nil, fmt.Errorf("%w: environment %q is not supported", issuer.ErrPermanent, s.Settings["environment"])
	}
	cfg.Environment = env
	cfg.SubscriptionID = s.Settings["subscriptionID"]
	cfg.ResourceGroup = s.Settings["resourceGroupName"]
	if z := s.Settings["hostedZoneName"]; z != "" {
		cfg.ZoneName = z
	}
	secret, err := sec.optional(ctx, s, "clientSecretSecretRef")
	if err != nil {
		return nil, err
	}
	if secret != "" {
		// A service principal; without one, the SDK's default chain finds
		// the agent's own identity (workload identity, managed identity).
		cfg.AuthMethod = "env"
		cfg.ClientID, cfg.ClientSecret, cfg.TenantID = s.Settings["clientID"], secret, s.Settings["tenantID"]
	}
	return azuredns.NewDNSProviderConfig(cfg)
}

func cloudDNSProvider(ctx context.Context, s *declared.DNS01Solver, sec secretSource) (challenge.Provider, error) {
	cfg := gcloud.NewDefaultConfig()
	cfg.Project = s.Settings["project"]
	if z := s.Settings["hostedZoneName"]; z != "" {
		cfg.ZoneID = z
	}
	key, err := sec.optional(ctx, s, "serviceAccountSecretRef")
	if err != nil {
		return nil, err
	}
	// The provider outlives this call: its token source must not stop
	// with the order that built it.
	bg := context.WithoutCancel(ctx)
	if key == "" {
		if cfg.HTTPClient, err = google.DefaultClient(bg, gdns.NdevClouddnsReadwriteScope); err != nil {
			return nil, fmt.Errorf("google default credentials: %w", err)
		}
	} else {
		jwt, err := google.JWTConfigFromJSON([]byte(key), gdns.NdevClouddnsReadwriteScope)
		if err != nil {
			// The parse error may quote the key file: keep it out.
			return nil, fmt.Errorf("%w: serviceAccountSecretRef: the Secret key holds no Google service account JSON key", issuer.ErrPermanent)
		}
		cfg.HTTPClient = jwt.Client(bg)
	}
	return gcloud.NewDNSProviderConfig(cfg)
}

func akamaiProvider(ctx context.Context, s *declared.DNS01Solver, sec secretSource) (challenge.Provider, error) {
	cfg := edgedns.NewDefaultConfig()
	cfg.Host = s.Settings["serviceConsumerDomain"]
	for _, f := range []struct {
		field string
		dst   *string
	}{
		{"clientTokenSecretRef", &cfg.ClientToken},
		{"clientSecretSecretRef", &cfg.ClientSecret},
		{"accessTokenSecretRef", &cfg.AccessToken},
	} {
		v, err := sec.value(ctx, f.field, s.Secrets[f.field])
		if err != nil {
			return nil, err
		}
		*f.dst = v
	}
	return edgedns.NewDNSProviderConfig(cfg)
}
