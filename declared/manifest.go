package declared

// The raw shapes of the cert-manager.io/v1 resources certsync reads, field
// names as in cert-manager's API so a manifest is read exactly as kubectl
// would send it. Fields certsync does not act on are still listed when
// accepting them silently would issue something other than what the user
// asked for: parse rejects those with a clear message.

type rawMeta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
	// Annotations are read for certsync's own settings (AnnotationClusters,
	// AnnotationClusterSelector); other annotations are left alone.
	Annotations map[string]string `yaml:"annotations"`
}

type rawCertificate struct {
	Metadata rawMeta `yaml:"metadata"`
	Spec     struct {
		SecretName            string      `yaml:"secretName"`
		CommonName            string      `yaml:"commonName"`
		DNSNames              []string    `yaml:"dnsNames"`
		Duration              string      `yaml:"duration"`
		RenewBefore           string      `yaml:"renewBefore"`
		RenewBeforePercentage *int        `yaml:"renewBeforePercentage"`
		IPAddresses           []string    `yaml:"ipAddresses"`
		URIs                  []string    `yaml:"uris"`
		EmailAddresses        []string    `yaml:"emailAddresses"`
		IsCA                  bool        `yaml:"isCA"`
		PrivateKey            *rawKeySpec `yaml:"privateKey"`
		IssuerRef             struct {
			Name  string `yaml:"name"`
			Kind  string `yaml:"kind"`
			Group string `yaml:"group"`
		} `yaml:"issuerRef"`
		SecretTemplate *rawSecretTemplate `yaml:"secretTemplate"`

		Subject                 *rawSubject         `yaml:"subject"`
		LiteralSubject          string              `yaml:"literalSubject"`
		OtherNames              []rawOtherName      `yaml:"otherNames"`
		Usages                  []string            `yaml:"usages"`
		EncodeUsagesInRequest   *bool               `yaml:"encodeUsagesInRequest"`
		NameConstraints         *rawNameConstraints `yaml:"nameConstraints"`
		AdditionalOutputFormats []struct {
			Type string `yaml:"type"`
		} `yaml:"additionalOutputFormats"`
		Keystores            *rawKeystores `yaml:"keystores"`
		RevisionHistoryLimit *int          `yaml:"revisionHistoryLimit"`
	} `yaml:"spec"`
}

type rawSubject struct {
	Organizations       []string `yaml:"organizations"`
	Countries           []string `yaml:"countries"`
	OrganizationalUnits []string `yaml:"organizationalUnits"`
	Localities          []string `yaml:"localities"`
	Provinces           []string `yaml:"provinces"`
	StreetAddresses     []string `yaml:"streetAddresses"`
	PostalCodes         []string `yaml:"postalCodes"`
	SerialNumber        string   `yaml:"serialNumber"`
}

type rawOtherName struct {
	OID       string `yaml:"oid"`
	UTF8Value string `yaml:"utf8Value"`
}

type rawNameConstraints struct {
	Critical  bool                   `yaml:"critical"`
	Permitted *rawNameConstraintItem `yaml:"permitted"`
	Excluded  *rawNameConstraintItem `yaml:"excluded"`
}

type rawNameConstraintItem struct {
	DNSDomains     []string `yaml:"dnsDomains"`
	IPRanges       []string `yaml:"ipRanges"`
	EmailAddresses []string `yaml:"emailAddresses"`
	URIDomains     []string `yaml:"uriDomains"`
}

// rawKeystores is spec.keystores. Pointers tell a password written
// empty (refused) from one not written.
type rawKeystores struct {
	JKS *struct {
		Create            bool                 `yaml:"create"`
		Alias             *string              `yaml:"alias"`
		PasswordSecretRef rawSecretKeySelector `yaml:"passwordSecretRef"`
		Password          *string              `yaml:"password"`
	} `yaml:"jks"`
	PKCS12 *struct {
		Create            bool                 `yaml:"create"`
		Profile           string               `yaml:"profile"`
		PasswordSecretRef rawSecretKeySelector `yaml:"passwordSecretRef"`
		Password          *string              `yaml:"password"`
	} `yaml:"pkcs12"`
}

// rawSecretTemplate is spec.secretTemplate, also read as JSON from
// cert-manager.io/secret-template (see shim.go).
type rawSecretTemplate struct {
	Labels      map[string]string `yaml:"labels" json:"labels"`
	Annotations map[string]string `yaml:"annotations" json:"annotations"`
}

// rawIngress is what cert-manager's ingress-shim reads of a
// networking.k8s.io/v1 Ingress: its metadata and spec.tls.
type rawIngress struct {
	Metadata rawMeta `yaml:"metadata"`
	Spec     struct {
		TLS []struct {
			Hosts      []string `yaml:"hosts"`
			SecretName string   `yaml:"secretName"`
		} `yaml:"tls"`
	} `yaml:"spec"`
}

// rawGateway is what cert-manager's gateway-shim reads of a Gateway API
// Gateway (gateway.networking.k8s.io/v1 or v1beta1, of the same shape).
// Pointers tell an omitted field, which the API server defaults (tls.mode
// Terminate, a certificateRef's group "" and kind Secret), from one
// written empty.
type rawGateway struct {
	Metadata rawMeta `yaml:"metadata"`
	Spec     struct {
		Listeners []struct {
			Name     string  `yaml:"name"`
			Hostname *string `yaml:"hostname"`
			Protocol string  `yaml:"protocol"`
			TLS      *struct {
				Mode            *string `yaml:"mode"`
				CertificateRefs []struct {
					Group     *string `yaml:"group"`
					Kind      *string `yaml:"kind"`
					Name      string  `yaml:"name"`
					Namespace *string `yaml:"namespace"`
				} `yaml:"certificateRefs"`
			} `yaml:"tls"`
		} `yaml:"listeners"`
	} `yaml:"spec"`
}

type rawIssuer struct {
	Metadata rawMeta `yaml:"metadata"`
	Spec     struct {
		ACME       *rawACME `yaml:"acme"`
		CA         any      `yaml:"ca"`
		SelfSigned any      `yaml:"selfSigned"`
		Vault      any      `yaml:"vault"`
		Venafi     any      `yaml:"venafi"`
	} `yaml:"spec"`
}

type rawSecretKeySelector struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type rawACME struct {
	Server                      string `yaml:"server"`
	Email                       string `yaml:"email"`
	SkipTLSVerify               bool   `yaml:"skipTLSVerify"`
	CABundle                    []byte `yaml:"caBundle"`
	DisableAccountKeyGeneration bool   `yaml:"disableAccountKeyGeneration"`
	EnableDurationFeature       bool   `yaml:"enableDurationFeature"`
	Profile                     string `yaml:"profile"`
	PreferredChain              string `yaml:"preferredChain"`
	PrivateKeySecretRef         struct {
		Name string `yaml:"name"`
	} `yaml:"privateKeySecretRef"`
	ExternalAccountBinding *struct {
		KeyID        string               `yaml:"keyID"`
		KeySecretRef rawSecretKeySelector `yaml:"keySecretRef"`
	} `yaml:"externalAccountBinding"`
	Solvers []rawSolver `yaml:"solvers"`
}

type rawSolver struct {
	Selector *struct {
		DNSNames    []string          `yaml:"dnsNames"`
		DNSZones    []string          `yaml:"dnsZones"`
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	HTTP01 *struct {
		Ingress          any `yaml:"ingress"`
		GatewayHTTPRoute any `yaml:"gatewayHTTPRoute"`
	} `yaml:"http01"`
	DNS01 map[string]any `yaml:"dns01"`
}
