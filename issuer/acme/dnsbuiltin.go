package acme

// Builders for cert-manager's DNS-01 provider blocks. Each starts from the
// lego provider's NewDefaultConfig (which reads only timeouts, TTLs and
// similar operator defaults from the environment), fills it from the
// manifest's settings and the Secrets it names, gives it the issuer's HTTP
// client where lego takes one, and builds the provider with
// NewDNSProviderConfig. Leaving a block's credentials out uses the agent's
// own identity (AWS, Azure, Google ambient credentials), as cert-manager
// does.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	awsroute53 "github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/providers/dns/azuredns"
	"github.com/go-acme/lego/v4/providers/dns/cloudflare"
	"github.com/go-acme/lego/v4/providers/dns/digitalocean"
	"github.com/go-acme/lego/v4/providers/dns/edgedns"
	"github.com/go-acme/lego/v4/providers/dns/gcloud"
	"github.com/go-acme/lego/v4/providers/dns/rfc2136"
	"github.com/go-acme/lego/v4/providers/dns/route53"
	"github.com/miekg/dns"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	gdns "google.golang.org/api/dns/v1"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

// blockBuilder builds the lego provider of one of cert-manager's provider
// blocks for one issuer: credentials from the issuer's Secrets, HTTP
// through the issuer's DNS API transport (Config.DNSAPITransport).
type blockBuilder struct {
	secrets   secretSource
	transport http.RoundTripper
	// customTransport is set when transport is the operator's
	// (DNSAPITransport) rather than certsync's default.
	customTransport bool
}

// dnsAPITimeout bounds one request to a provider's API.
const dnsAPITimeout = 30 * time.Second

// build builds s's provider. A provider that calls an HTTP API is wrapped
// so that, when the API refuses its credentials, the error names the
// Secrets to check (credentialHint).
func (b blockBuilder) build(ctx context.Context, s *declared.DNS01Solver) (challenge.Provider, error) {
	// Each provider gets its own client: lego's digitalocean provider
	// rewrites its client's Transport, and the watch is per provider.
	watch := &apiWatch{base: b.transport}
	hc := &http.Client{Transport: watch, Timeout: dnsAPITimeout}
	hint := newCredentialHint(s, b.secrets.namespace, watch)
	var p challenge.Provider
	var err error
	switch s.Provider {
	case declared.DNS01RFC2136:
		// DNS UPDATE, no HTTP: lego's provider is used as is (its
		// Sequential capability must stay visible to the router).
		return b.rfc2136(ctx, s)
	case declared.DNS01Cloudflare:
		p, err = b.cloudflare(ctx, s, hc)
	case declared.DNS01Route53:
		p, err = b.route53(ctx, s, hc, watch)
	case declared.DNS01DigitalOcean:
		p, err = b.digitalOcean(ctx, s, hc)
	case declared.DNS01AzureDNS:
		p, err = b.azureDNS(ctx, s)
	case declared.DNS01CloudDNS:
		p, err = b.cloudDNS(ctx, s, hc)
	case declared.DNS01AcmeDNS:
		p, err = b.acmeDNS(ctx, s, hc)
	case declared.DNS01Akamai:
		p, err = b.akamai(ctx, s)
	default:
		return nil, fmt.Errorf("%w: certsync cannot build this provider", issuer.ErrPermanent)
	}
	if err != nil {
		// lego's Azure provider lists the zones while it is built.
		return nil, hint.explain(err, 0)
	}
	hint.Provider = p
	return hint, nil
}

func (b blockBuilder) cloudflare(ctx context.Context, s *declared.DNS01Solver, hc *http.Client) (challenge.Provider, error) {
	cfg := cloudflare.NewDefaultConfig()
	cfg.HTTPClient = hc
	cfg.AuthEmail = s.Settings["email"]
	var err error
	if cfg.AuthToken, err = b.secrets.optional(ctx, s, "apiTokenSecretRef"); err != nil {
		return nil, err
	}
	if cfg.AuthKey, err = b.secrets.optional(ctx, s, "apiKeySecretRef"); err != nil {
		return nil, err
	}
	return cloudflare.NewDNSProviderConfig(cfg)
}

// route53Config is lego's route53 configuration from the block.
func route53Config(ctx context.Context, s *declared.DNS01Solver, sec secretSource) (*route53.Config, error) {
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
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		return nil, fmt.Errorf("%w: an access key ID (accessKeyID or accessKeyIDSecretRef) and secretAccessKeySecretRef go together", issuer.ErrPermanent)
	}
	return cfg, nil
}

func (b blockBuilder) route53(ctx context.Context, s *declared.DNS01Solver, hc *http.Client, watch *apiWatch) (challenge.Provider, error) {
	cfg, err := route53Config(ctx, s, b.secrets)
	if err != nil {
		return nil, err
	}
	// lego's route53 provider takes a ready SDK client but no transport:
	// build the configuration as lego's createAWSConfig does, and give
	// hc to the route53 and STS clients. The SDK's own HTTP client still
	// serves the credential chain (IMDS, SSO, web identity).
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRetryMaxAttempts(cfg.MaxRetries),
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if !b.customTransport {
		keepAWSCABundle(awsCfg, watch)
	}
	if cfg.AssumeRoleArn != "" {
		client := sts.NewFromConfig(awsCfg, func(o *sts.Options) { o.HTTPClient = hc })
		awsCfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(client, cfg.AssumeRoleArn))
	}
	cfg.Client = awsroute53.NewFromConfig(awsCfg, func(o *awsroute53.Options) { o.HTTPClient = hc })
	return route53.NewDNSProviderConfig(cfg)
}

// keepAWSCABundle gives watch's transport the roots of AWS_CA_BUNDLE (or
// the shared config's ca_bundle), which the SDK put in its own client, so
// Route 53 is reached with them as lego reaches it. Only for certsync's
// default transport: an operator's DNSAPITransport keeps its own trust.
func keepAWSCABundle(awsCfg aws.Config, watch *apiWatch) {
	bc, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient)
	if !ok {
		return
	}
	sdk := bc.GetTransport()
	base, ok := watch.base.(*http.Transport)
	if !ok || sdk.TLSClientConfig == nil || sdk.TLSClientConfig.RootCAs == nil {
		return
	}
	base = base.Clone()
	if base.TLSClientConfig == nil {
		base.TLSClientConfig = &tls.Config{}
	}
	base.TLSClientConfig.RootCAs = sdk.TLSClientConfig.RootCAs
	watch.base = base
}

func (b blockBuilder) digitalOcean(ctx context.Context, s *declared.DNS01Solver, hc *http.Client) (challenge.Provider, error) {
	cfg := digitalocean.NewDefaultConfig()
	cfg.HTTPClient = hc
	var err error
	if cfg.AuthToken, err = b.secrets.value(ctx, "tokenSecretRef", s.Secrets["tokenSecretRef"]); err != nil {
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

func (b blockBuilder) rfc2136(ctx context.Context, s *declared.DNS01Solver) (challenge.Provider, error) {
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
		secret, err := b.secrets.value(ctx, "tsigSecretSecretRef", s.Secrets["tsigSecretSecretRef"])
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

// azureDNSConfig is lego's azuredns configuration from the block.
func azureDNSConfig(ctx context.Context, s *declared.DNS01Solver, sec secretSource) (*azuredns.Config, error) {
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
	return cfg, nil
}

// azureDNS builds lego's provider, which cannot take the issuer's
// transport: it builds its Azure SDK clients with azcore's default one.
func (b blockBuilder) azureDNS(ctx context.Context, s *declared.DNS01Solver) (challenge.Provider, error) {
	cfg, err := azureDNSConfig(ctx, s, b.secrets)
	if err != nil {
		return nil, err
	}
	return azuredns.NewDNSProviderConfig(cfg)
}

func (b blockBuilder) cloudDNS(ctx context.Context, s *declared.DNS01Solver, hc *http.Client) (challenge.Provider, error) {
	cfg := gcloud.NewDefaultConfig()
	cfg.Project = s.Settings["project"]
	if z := s.Settings["hostedZoneName"]; z != "" {
		cfg.ZoneID = z
	}
	key, err := b.secrets.optional(ctx, s, "serviceAccountSecretRef")
	if err != nil {
		return nil, err
	}
	// The provider outlives this call: its token source must not stop
	// with the order that built it. oauth2 takes the client it fetches
	// tokens with, and wraps for API calls, from the context.
	bg := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, hc)
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
	cfg.HTTPClient.Timeout = dnsAPITimeout
	return gcloud.NewDNSProviderConfig(cfg)
}

// akamaiConfig is lego's edgedns configuration from the block.
func akamaiConfig(ctx context.Context, s *declared.DNS01Solver, sec secretSource) (*edgedns.Config, error) {
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
	return cfg, nil
}

// akamai builds lego's provider, which cannot take the issuer's
// transport: its EdgeGrid session uses http.DefaultClient.
func (b blockBuilder) akamai(ctx context.Context, s *declared.DNS01Solver) (challenge.Provider, error) {
	cfg, err := akamaiConfig(ctx, s, b.secrets)
	if err != nil {
		return nil, err
	}
	return edgedns.NewDNSProviderConfig(cfg)
}
