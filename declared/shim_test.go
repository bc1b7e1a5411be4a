package declared

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// localIssuerYAML is an Issuer in namespace shop, for cert-manager.io/issuer.
const localIssuerYAML = `apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: local
  namespace: shop
spec:
  acme:
    server: https://acme.example/dir
    privateKeySecretRef:
      name: local-account
    solvers:
    - http01:
        ingress: {}
`

// ingressDoc is an Ingress shop/web in ing.yaml: its first annotation is
// on line 7; spec follows the annotations.
func ingressDoc(annotations, tls string) string {
	return "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: shop\n  annotations:\n" +
		annotations + "spec:\n  tls:\n" + tls
}

const (
	clusterIssuerAnn = "    cert-manager.io/cluster-issuer: letsencrypt\n"
	webTLS           = "  - hosts: [web.example.com]\n    secretName: web-tls\n"
)

// parseShims parses files next to the ClusterIssuer letsencrypt and the
// Issuer shop/local.
func parseShims(files ...File) Set {
	return Parse(append([]File{
		{Path: "issuers.yaml", Content: []byte(issuerYAML + "---\n" + localIssuerYAML)},
	}, files...))
}

// webCert is the Certificate of ingressDoc(clusterIssuerAnn, webTLS),
// changed by mod.
func webCert(mod func(*Certificate)) Certificate {
	c := Certificate{
		Namespace: "shop", Name: "web-tls", Source: Source{File: "ing.yaml", Line: 1, Column: 1},
		SecretName: "web-tls",
		DNSNames:   []string{"web.example.com"},
		Duration:   DefaultDuration,
		PrivateKey: KeySpec{Algorithm: RSA, Size: 2048, Encoding: "PKCS1", RotationPolicy: RotateAlways},
		IssuerRef:  IssuerRef{Name: "letsencrypt", Kind: KindClusterIssuer, Group: "cert-manager.io"},
	}
	if mod != nil {
		mod(&c)
	}
	return c
}

func TestIngressShim(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []Certificate
	}{
		{
			// cert-manager's documentation ("Securing Ingress Resources"),
			// with names Kubernetes accepts (the page's myIngress is not).
			name: "cert-manager's documented Ingress",
			doc: `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  annotations:
    # add an annotation indicating the issuer to use.
    cert-manager.io/cluster-issuer: letsencrypt
  name: myingress
  namespace: myingress
spec:
  rules:
  - host: example.com
    http:
      paths:
      - pathType: Prefix
        path: /
        backend:
          service:
            name: myservice
            port:
              number: 80
  tls: # < placing a host in the TLS config will determine what ends up in the cert's subjectAltNames
  - hosts:
    - example.com
    secretName: myingress-cert # < cert-manager will store the created certificate in this secret.
`,
			want: []Certificate{webCert(func(c *Certificate) {
				c.Namespace, c.Name, c.SecretName, c.DNSNames = "myingress", "myingress-cert", "myingress-cert", []string{"example.com"}
			})},
		},
		{
			name: "issuer in the Ingress's namespace",
			doc:  ingressDoc("    cert-manager.io/issuer: local\n", webTLS),
			want: []Certificate{webCert(func(c *Certificate) {
				c.IssuerRef = IssuerRef{Name: "local", Kind: KindIssuer, Group: "cert-manager.io"}
			})},
		},
		{
			name: "issuer with issuer-kind and issuer-group",
			doc:  ingressDoc("    cert-manager.io/issuer: letsencrypt\n    cert-manager.io/issuer-kind: ClusterIssuer\n    cert-manager.io/issuer-group: cert-manager.io\n", webTLS),
			want: []Certificate{webCert(nil)},
		},
		{
			name: "kubernetes.io/tls-acme with a cluster-issuer",
			doc:  ingressDoc("    kubernetes.io/tls-acme: \"true\"\n"+clusterIssuerAnn, webTLS),
			want: []Certificate{webCert(nil)},
		},
		{
			name: "one Certificate per TLS entry; hosts listed once; labels but applyset's",
			doc: strings.Replace(ingressDoc(clusterIssuerAnn, webTLS+"  - hosts: [a.example.com, b.example.com, a.example.com]\n    secretName: ab-tls\n"),
				"  annotations:\n", "  labels: {team: web, applyset.kubernetes.io/part-of: x}\n  annotations:\n", 1),
			want: []Certificate{
				webCert(func(c *Certificate) { c.Labels = map[string]string{"team": "web"} }),
				webCert(func(c *Certificate) {
					c.Name, c.SecretName, c.DNSNames = "ab-tls", "ab-tls", []string{"a.example.com", "b.example.com"}
					c.Labels = map[string]string{"team": "web"}
				}),
			},
		},
		{
			name: "names",
			doc: ingressDoc(clusterIssuerAnn+"    cert-manager.io/common-name: web.example.com\n    cert-manager.io/alt-names: www.example.com,static.example.com\n",
				"  - hosts: [web.example.com]\n    secretName: web-tls\n"),
			want: []Certificate{webCert(func(c *Certificate) {
				c.CommonName = "web.example.com"
				c.DNSNames = []string{"web.example.com", "www.example.com", "static.example.com"}
			})},
		},
		{
			name: "lifetime",
			doc:  ingressDoc(clusterIssuerAnn+"    cert-manager.io/duration: 2160h\n    cert-manager.io/renew-before: 720h\n", webTLS),
			want: []Certificate{webCert(func(c *Certificate) { c.Duration, c.RenewBefore = 2160*time.Hour, 720*time.Hour })},
		},
		{
			name: "renew-before-percentage",
			doc:  ingressDoc(clusterIssuerAnn+"    cert-manager.io/renew-before-percentage: \"25\"\n", webTLS),
			want: []Certificate{webCert(func(c *Certificate) { c.RenewBeforePercentage = 25 })},
		},
		{
			name: "private key",
			doc: ingressDoc(clusterIssuerAnn+"    cert-manager.io/private-key-algorithm: ECDSA\n    cert-manager.io/private-key-size: \"384\"\n"+
				"    cert-manager.io/private-key-encoding: PKCS8\n    cert-manager.io/private-key-rotation-policy: Never\n", webTLS),
			want: []Certificate{webCert(func(c *Certificate) {
				c.PrivateKey = KeySpec{Algorithm: ECDSA, Size: 384, Encoding: "PKCS8", RotationPolicy: RotateNever}
			})},
		},
		{
			name: "RSA size alone",
			doc:  ingressDoc(clusterIssuerAnn+"    cert-manager.io/private-key-size: \"4096\"\n", webTLS),
			want: []Certificate{webCert(func(c *Certificate) { c.PrivateKey.Size = 4096 })},
		},
		{
			name: "Ed25519 ignores the size",
			doc:  ingressDoc(clusterIssuerAnn+"    cert-manager.io/private-key-algorithm: Ed25519\n    cert-manager.io/private-key-size: \"0\"\n", webTLS),
			want: []Certificate{webCert(func(c *Certificate) {
				c.PrivateKey = KeySpec{Algorithm: Ed25519, Encoding: "PKCS1", RotationPolicy: RotateAlways}
			})},
		},
		{
			name: "usages an ACME CA issues; a revision history limit",
			doc: ingressDoc(clusterIssuerAnn+"    cert-manager.io/usages: digital signature, key encipherment,server auth\n"+
				"    cert-manager.io/revision-history-limit: \"3\"\n", webTLS),
			want: []Certificate{webCert(func(c *Certificate) {
				c.Usages = []string{"digital signature", "key encipherment", "server auth"}
				c.RevisionHistoryLimit = 3
			})},
		},
		{
			name: "IP SANs through an HTTP-01 issuer",
			doc:  ingressDoc("    cert-manager.io/issuer: local\n    cert-manager.io/ip-sans: 10.0.0.1\n", "  - hosts: [web.example.com, 192.0.2.1]\n    secretName: web-tls\n"),
			want: []Certificate{webCert(func(c *Certificate) {
				c.IssuerRef = IssuerRef{Name: "local", Kind: KindIssuer, Group: "cert-manager.io"}
				c.IPAddresses = []string{"192.0.2.1", "10.0.0.1"}
			})},
		},
		{
			name: "secret template",
			doc:  ingressDoc(clusterIssuerAnn+"    cert-manager.io/secret-template: '{\"labels\": {\"app\": \"web\"}, \"annotations\": {\"example.com/owner\": \"web\"}}'\n", webTLS),
			want: []Certificate{webCert(func(c *Certificate) {
				c.SecretTemplate = SecretTemplate{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"example.com/owner": "web"}}
			})},
		},
		{
			name: "HTTP-01 routing annotations change nothing",
			doc: ingressDoc(clusterIssuerAnn+"    acme.cert-manager.io/http01-edit-in-place: \"true\"\n    acme.cert-manager.io/http01-ingress-class: nginx\n"+
				"    acme.cert-manager.io/http01-ingress-ingressclassname: nginx\n", webTLS),
			want: []Certificate{webCert(nil)},
		},
		{
			name: "certsync's delivery annotations",
			doc:  ingressDoc(clusterIssuerAnn+"    certsync.io/clusters: prod-eu,prod-us\n", webTLS),
			want: []Certificate{webCert(func(c *Certificate) {
				c.Delivery = Delivery{Clusters: []string{"prod-eu", "prod-us"}, Line: 8, Column: 27}
			})},
		},
		{
			name: "namespace defaults to default",
			doc:  strings.Replace(ingressDoc(clusterIssuerAnn, webTLS), "  namespace: shop\n", "", 1),
			want: []Certificate{webCert(func(c *Certificate) { c.Namespace = "default" })},
		},
		{
			name: "no spec.tls: nothing to issue, as with cert-manager",
			doc:  "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  annotations:\n" + clusterIssuerAnn + "spec:\n  rules: []\n",
		},
		{
			name: "not cert-manager's: no annotation of its own",
			doc:  ingressDoc("    nginx.ingress.kubernetes.io/ssl-redirect: \"true\"\n    cert-manager.io/duration: not read\n", webTLS),
		},
		{
			name: "not cert-manager's: kubernetes.io/tls-acme false",
			doc:  ingressDoc("    kubernetes.io/tls-acme: \"false\"\n", webTLS),
		},
		{
			name: "removed Ingress API without cert-manager's annotations is someone else's",
			doc:  strings.Replace(ingressDoc("    example.com/x: y\n", webTLS), "networking.k8s.io/v1", "extensions/v1beta1", 1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkShimCertificates(t, parseShims(File{Path: "ing.yaml", Content: []byte(tt.doc)}), tt.want)
		})
	}
}

func TestIngressShimProblems(t *testing.T) {
	const dur = `metadata.annotations["cert-manager.io/duration"]`
	tests := []struct {
		name     string
		doc      string
		want     string // "path:line:column"
		msg      string
		keepCert int // certificates of the Ingress still read
	}{
		// The issuer.
		{"issuer and cluster-issuer", ingressDoc("    cert-manager.io/issuer: local\n"+clusterIssuerAnn, webTLS),
			"ing.yaml:8:5", `Ingress shop/web: metadata.annotations["cert-manager.io/cluster-issuer"]: cannot be combined with cert-manager.io/issuer`, 0},
		{"cluster-issuer and issuer-kind", ingressDoc(clusterIssuerAnn+"    cert-manager.io/issuer-kind: ClusterIssuer\n", webTLS),
			"ing.yaml:8:5", `metadata.annotations["cert-manager.io/issuer-kind"]: cannot be combined with cert-manager.io/cluster-issuer`, 0},
		{"cluster-issuer and issuer-group", ingressDoc(clusterIssuerAnn+"    cert-manager.io/issuer-group: cert-manager.io\n", webTLS),
			"ing.yaml:8:5", `metadata.annotations["cert-manager.io/issuer-group"]: cannot be combined with cert-manager.io/cluster-issuer`, 0},
		{"empty cluster-issuer", ingressDoc("    cert-manager.io/cluster-issuer: \"\"\n", webTLS),
			"ing.yaml:7:37", `metadata.annotations["cert-manager.io/cluster-issuer"]: is empty`, 0},
		{"tls-acme without an issuer", ingressDoc("    kubernetes.io/tls-acme: \"true\"\n", webTLS),
			"ing.yaml:7:5", `Ingress shop/web: metadata.annotations["kubernetes.io/tls-acme"]: asks for cert-manager's default issuer (its --default-issuer-name flag), which certsync has no equivalent of: name the issuer with cert-manager.io/cluster-issuer`, 0},
		{"bad issuer-kind", ingressDoc("    cert-manager.io/issuer: local\n    cert-manager.io/issuer-kind: Foo\n", webTLS),
			"ing.yaml:8:34", `metadata.annotations["cert-manager.io/issuer-kind"]: "Foo" is not one of Issuer, ClusterIssuer`, 0},
		{"external issuer", ingressDoc("    cert-manager.io/issuer: pca\n    cert-manager.io/issuer-kind: AWSPCAClusterIssuer\n    cert-manager.io/issuer-group: awspca.cert-manager.io\n", webTLS),
			"ing.yaml:9:35", `metadata.annotations["cert-manager.io/issuer-group"]: external issuers (awspca.cert-manager.io AWSPCAClusterIssuer) are not supported by certsync`, 0},
		{"external issuer group", ingressDoc("    cert-manager.io/issuer: pca\n    cert-manager.io/issuer-group: awspca.cert-manager.io\n", webTLS),
			"ing.yaml:8:35", `metadata.annotations["cert-manager.io/issuer-group"]: external issuers (awspca.cert-manager.io Issuer) are not supported by certsync`, 0},
		{"undeclared issuer", ingressDoc("    cert-manager.io/cluster-issuer: nope\n", webTLS),
			"ing.yaml:1:1", `Certificate shop/web-tls: spec.issuerRef: unknown issuer: ClusterIssuer nope is not declared`, 0},
		{"typo in an annotation key", ingressDoc("    cert-manager.io/cluster-isuer: letsencrypt\n", webTLS),
			"ing.yaml:7:5", `Ingress shop/web: metadata.annotations["cert-manager.io/cluster-isuer"]: is not one of cert-manager's annotations: did you mean cert-manager.io/cluster-issuer?`, 0},
		{"typo in an annotation's case", ingressDoc(clusterIssuerAnn+"    cert-manager.io/Duration: 2160h\n", webTLS),
			"ing.yaml:8:5", `did you mean cert-manager.io/duration?`, 0},

		// Lifetime: the Certificate's own rules, at the annotation.
		{"duration not a duration", ingressDoc(clusterIssuerAnn+"    cert-manager.io/duration: 90 days\n", webTLS),
			"ing.yaml:8:31", `Ingress shop/web: ` + dur + `: "90 days" is not a duration`, 0},
		{"duration too short", ingressDoc(clusterIssuerAnn+"    cert-manager.io/duration: 30m\n", webTLS),
			"ing.yaml:8:31", dur + `: 30m0s is shorter than the minimum 1h0m0s`, 0},
		{"renew-before too short", ingressDoc(clusterIssuerAnn+"    cert-manager.io/renew-before: 1m\n", webTLS),
			"ing.yaml:8:35", `metadata.annotations["cert-manager.io/renew-before"]: 1m0s is shorter than the minimum 5m0s`, 0},
		{"renew-before past the duration", ingressDoc(clusterIssuerAnn+"    cert-manager.io/duration: 24h\n    cert-manager.io/renew-before: 48h\n", webTLS),
			"ing.yaml:9:35", `metadata.annotations["cert-manager.io/renew-before"]: 48h0m0s must be shorter than the duration 24h0m0s`, 0},
		{"renew-before and its percentage", ingressDoc(clusterIssuerAnn+"    cert-manager.io/renew-before-percentage: \"20\"\n    cert-manager.io/renew-before: 48h\n", webTLS),
			"ing.yaml:9:5", `metadata.annotations["cert-manager.io/renew-before"]: renewBefore and renewBeforePercentage are mutually exclusive`, 0},
		{"percentage not a number", ingressDoc(clusterIssuerAnn+"    cert-manager.io/renew-before-percentage: a third\n", webTLS),
			"ing.yaml:8:46", `metadata.annotations["cert-manager.io/renew-before-percentage"]: "a third" is not a whole number`, 0},
		{"percentage out of range", ingressDoc(clusterIssuerAnn+"    cert-manager.io/renew-before-percentage: \"100\"\n", webTLS),
			"ing.yaml:8:46", `metadata.annotations["cert-manager.io/renew-before-percentage"]: 100 must be between 1 and 99`, 0},

		// Key.
		{"algorithm", ingressDoc(clusterIssuerAnn+"    cert-manager.io/private-key-algorithm: DSA\n", webTLS),
			"ing.yaml:8:44", `metadata.annotations["cert-manager.io/private-key-algorithm"]: "DSA" is not one of RSA, ECDSA, Ed25519`, 0},
		{"size not a number", ingressDoc(clusterIssuerAnn+"    cert-manager.io/private-key-size: big\n", webTLS),
			"ing.yaml:8:39", `metadata.annotations["cert-manager.io/private-key-size"]: "big" is not a whole number`, 0},
		{"RSA size", ingressDoc(clusterIssuerAnn+"    cert-manager.io/private-key-size: \"1024\"\n", webTLS),
			"ing.yaml:8:39", `metadata.annotations["cert-manager.io/private-key-size"]: RSA key size 1024 must be between 2048 and 8192`, 0},
		{"RSA size 0", ingressDoc(clusterIssuerAnn+"    cert-manager.io/private-key-size: \"0\"\n", webTLS),
			"ing.yaml:8:39", `metadata.annotations["cert-manager.io/private-key-size"]: 0 is not a valid key size`, 0},
		{"ECDSA size", ingressDoc(clusterIssuerAnn+"    cert-manager.io/private-key-algorithm: ECDSA\n    cert-manager.io/private-key-size: \"2048\"\n", webTLS),
			"ing.yaml:9:39", `metadata.annotations["cert-manager.io/private-key-size"]: ECDSA key size 2048 must be 256, 384 or 521`, 0},
		{"encoding", ingressDoc(clusterIssuerAnn+"    cert-manager.io/private-key-encoding: PKCS12\n", webTLS),
			"ing.yaml:8:43", `metadata.annotations["cert-manager.io/private-key-encoding"]: "PKCS12" is not one of PKCS1, PKCS8`, 0},
		{"rotation policy", ingressDoc(clusterIssuerAnn+"    cert-manager.io/private-key-rotation-policy: Sometimes\n", webTLS),
			"ing.yaml:8:50", `metadata.annotations["cert-manager.io/private-key-rotation-policy"]: "Sometimes" is not one of Always, Never`, 0},

		// What an ACME CA does not issue: refused as on a Certificate.
		{"client auth usage", ingressDoc(clusterIssuerAnn+"    cert-manager.io/usages: digital signature,client auth\n", webTLS),
			"ing.yaml:1:1", `Certificate shop/web-tls: spec.usages: "client auth": ClusterIssuer/letsencrypt is an ACME issuer, and the CA issues TLS server certificates with its own usages`, 0},
		{"unknown usage", ingressDoc(clusterIssuerAnn+"    cert-manager.io/usages: serverauth\n", webTLS),
			"ing.yaml:8:29", `metadata.annotations["cert-manager.io/usages"]: "serverauth" is not a key usage cert-manager knows`, 0},
		{"revision history limit 0", ingressDoc(clusterIssuerAnn+"    cert-manager.io/revision-history-limit: \"0\"\n", webTLS),
			"ing.yaml:8:45", `metadata.annotations["cert-manager.io/revision-history-limit"]: 0 must be a positive number`, 0},
		{"revision history limit not a number", ingressDoc(clusterIssuerAnn+"    cert-manager.io/revision-history-limit: many\n", webTLS),
			"ing.yaml:8:45", `metadata.annotations["cert-manager.io/revision-history-limit"]: "many" is not a whole number`, 0},
		{"IP SANs next to a DNS-01 name", ingressDoc(clusterIssuerAnn+"    cert-manager.io/ip-sans: 10.0.0.1\n", webTLS),
			"ing.yaml:1:1", `Certificate shop/web-tls: spec.dnsNames: ClusterIssuer/letsencrypt (issuers.yaml:1:1): no usable ACME solver: names [10.0.0.1] select HTTP-01 and [web.example.com] select DNS-01`, 0},
		{"bad IP SAN", ingressDoc(clusterIssuerAnn+"    cert-manager.io/ip-sans: 10.0.0.1, ten\n", webTLS),
			"ing.yaml:8:30", `metadata.annotations["cert-manager.io/ip-sans"]: "ten" is not a valid IP address`, 0},
		{"email SANs", ingressDoc(clusterIssuerAnn+"    cert-manager.io/email-sans: ops@example.com\n", webTLS),
			"ing.yaml:1:1", `Certificate shop/web-tls: spec.emailAddresses: ClusterIssuer/letsencrypt is an ACME issuer, and an ACME CA validates DNS names and IP addresses only: it cannot issue email SANs`, 0},
		{"bad email SAN", ingressDoc(clusterIssuerAnn+"    cert-manager.io/email-sans: ops\n", webTLS),
			"ing.yaml:8:33", `metadata.annotations["cert-manager.io/email-sans"]: "ops": invalid email address`, 0},
		{"URI SANs", ingressDoc(clusterIssuerAnn+"    cert-manager.io/uri-sans: spiffe://example.com/web\n", webTLS),
			"ing.yaml:8:5", `metadata.annotations["cert-manager.io/uri-sans"]: cert-manager's shim does not read this annotation (cert-manager only writes it on Secrets)`, 0},
		{"subject", ingressDoc(clusterIssuerAnn+"    cert-manager.io/subject-organizations: Example Ltd\n", webTLS),
			"ing.yaml:1:1", `Certificate shop/web-tls: spec.subject: ClusterIssuer/letsencrypt is an ACME issuer: the CA would drop organizations`, 0},
		{"subject not CSV", ingressDoc(clusterIssuerAnn+"    cert-manager.io/subject-organizations: 'Example \"Ltd'\n", webTLS),
			"ing.yaml:8:44", `metadata.annotations["cert-manager.io/subject-organizations"]: is not a comma-separated list`, 0},

		// Names.
		{"common-name too long", ingressDoc(clusterIssuerAnn+"    cert-manager.io/common-name: "+strings.Repeat("a", 60)+".example.com\n", webTLS),
			"ing.yaml:8:34", `metadata.annotations["cert-manager.io/common-name"]: is 72 bytes long; a commonName may be at most 64`, 0},
		{"common-name not among the hosts", ingressDoc(clusterIssuerAnn+"    cert-manager.io/common-name: other.example.com\n", webTLS),
			"ing.yaml:1:1", `Certificate shop/web-tls: spec.commonName "other.example.com" is not in spec.dnsNames`, 0},
		{"alt-names are split, not trimmed, as by cert-manager", ingressDoc(clusterIssuerAnn+"    cert-manager.io/alt-names: www.example.com, static.example.com\n", webTLS),
			"ing.yaml:8:32", `metadata.annotations["cert-manager.io/alt-names"]: " static.example.com": not a valid DNS name`, 0},
		{"alt-name repeats a host", ingressDoc(clusterIssuerAnn+"    cert-manager.io/alt-names: web.example.com\n", webTLS),
			"ing.yaml:8:32", `metadata.annotations["cert-manager.io/alt-names"]: "web.example.com" is listed twice`, 0},
		{"bad host, next to a good entry", ingressDoc(clusterIssuerAnn, "  - hosts: [ok.example.com, Web.Example.com]\n    secretName: web-tls\n  - hosts: [b.example.com]\n    secretName: b-tls\n"),
			"ing.yaml:10:29", `Ingress shop/web: spec.tls[0].hosts[1]: "Web.Example.com": must be lower case`, 1},
		{"IP host next to a DNS-01 name", ingressDoc(clusterIssuerAnn, "  - hosts:\n    - web.example.com\n    - 192.0.2.1\n    secretName: web-tls\n"),
			"ing.yaml:1:1", `no usable ACME solver: names [192.0.2.1] select HTTP-01 and [web.example.com] select DNS-01`, 0},
		{"TLS entry without secretName", ingressDoc(clusterIssuerAnn, "  - hosts: [a.example.com]\n"+webTLS),
			"ing.yaml:10:5", `Ingress shop/web: spec.tls[0]: secretName is required: cert-manager skips a TLS entry without one`, 1},
		{"TLS entry without hosts", ingressDoc(clusterIssuerAnn, "  - secretName: a-tls\n"+webTLS),
			"ing.yaml:10:5", `spec.tls[0]: hosts is required`, 1},
		{"two TLS entries with one secretName", ingressDoc(clusterIssuerAnn, webTLS+"  - hosts: [www.example.com]\n    secretName: web-tls\n"),
			"ing.yaml:13:17", `spec.tls[1].secretName: "web-tls" is also the secretName of spec.tls[0]: a secret name must only appear in a single TLS entry`, 0},
		{"bad secretName", ingressDoc(clusterIssuerAnn, "  - hosts: [web.example.com]\n    secretName: Web_TLS\n"),
			"ing.yaml:11:17", `spec.tls[0].secretName: "Web_TLS" is not a valid Secret name`, 0},

		// Secret template.
		{"secret template not JSON", ingressDoc(clusterIssuerAnn+"    cert-manager.io/secret-template: 'labels: {a: b}'\n", webTLS),
			"ing.yaml:8:38", `metadata.annotations["cert-manager.io/secret-template"]: is not a secretTemplate in JSON`, 0},
		{"secret template unknown field", ingressDoc(clusterIssuerAnn+"    cert-manager.io/secret-template: '{\"label\": {\"a\": \"b\"}}'\n", webTLS),
			"ing.yaml:8:38", `unknown field "label"`, 0},
		{"secret template reserved annotation", ingressDoc(clusterIssuerAnn+"    cert-manager.io/secret-template: '{\"annotations\": {\"cert-manager.io/issuer\": \"x\"}}'\n", webTLS),
			"ing.yaml:8:38", `metadata.annotations["cert-manager.io/secret-template"]: "cert-manager.io/issuer" is reserved`, 0},

		// certsync's annotations, as on a Certificate.
		{"bad delivery", ingressDoc(clusterIssuerAnn+"    certsync.io/clusters: all,prod\n", webTLS),
			"ing.yaml:8:27", `Ingress shop/web: metadata.annotations["certsync.io/clusters"]: "all" cannot be combined with cluster names`, 0},
		{"delivery without cert-manager's annotations", ingressDoc("    certsync.io/clusters: prod\n", webTLS),
			"ing.yaml:7:5", `Ingress shop/web: metadata.annotations["certsync.io/clusters"]: has no effect: this Ingress has none of cert-manager's annotations`, 0},
		{"misspelt delivery", ingressDoc(clusterIssuerAnn+"    certsync.io/cluster: prod\n", webTLS),
			"ing.yaml:8:5", `metadata.annotations["certsync.io/cluster"]: is not a certsync annotation`, 0},

		// The document.
		{"removed Ingress API", strings.Replace(ingressDoc(clusterIssuerAnn, webTLS), "networking.k8s.io/v1", "networking.k8s.io/v1beta1", 1),
			"ing.yaml:1:13", `Ingress shop/web: apiVersion: networking.k8s.io/v1beta1 Ingress is a removed API (no longer served since Kubernetes 1.22), which cert-manager does not read: use apiVersion: networking.k8s.io/v1`, 0},
		{"removed extensions Ingress API", strings.Replace(ingressDoc("    kubernetes.io/tls-acme: \"true\"\n", webTLS), "networking.k8s.io/v1", "extensions/v1beta1", 1),
			"ing.yaml:1:13", `extensions/v1beta1 Ingress is a removed API`, 0},
		{"bad Ingress name", strings.Replace(ingressDoc(clusterIssuerAnn, webTLS), "name: web", "name: Web", 1),
			"ing.yaml:4:9", `metadata.name: "Web"`, 0},
		{"Ingress with annotations inside a List", "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSuffix(ingressDoc(clusterIssuerAnn, webTLS), "\n"), "\n", "\n  ") + "\n",
			"ing.yaml:4:3", `items[0]: networking.k8s.io/v1 Ingress inside a List`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := parseShims(File{Path: "ing.yaml", Content: []byte(tt.doc)})
			wantOneProblem(t, set, tt.want, tt.msg)
			if got := len(set.Certificates); got != tt.keepCert {
				t.Errorf("%d certificates read, want %d", got, tt.keepCert)
			}
		})
	}
}

// The Certificate an Ingress stands for is a Certificate like another:
// two for one Secret are a duplicate, wherever they are declared.
func TestShimCertificatesAreCrossChecked(t *testing.T) {
	set := parseShims(
		File{Path: "ing.yaml", Content: []byte(ingressDoc(clusterIssuerAnn, webTLS))},
		File{Path: "cert.yaml", Content: []byte(cert("web", "shop", "web-tls", "  dnsNames: [web.example.com]\n"))},
	)
	if len(set.Certificates) != 0 || len(set.Problems) != 2 {
		t.Fatalf("want both refused: certificates %v, problems %v", set.Certificates, set.Problems)
	}
	for _, p := range set.Problems {
		if !strings.Contains(p.Error(), "spec.secretName shop/web-tls is used by 2 Certificates (") {
			t.Errorf("problem %q is not about the shared Secret", p)
		}
	}
	if set.Problems[1].Source.String() != "ing.yaml:1:1" {
		t.Errorf("the Ingress's problem is at %s", set.Problems[1].Source)
	}

	// Two Ingresses of one namespace naming one Secret.
	other := strings.Replace(ingressDoc(clusterIssuerAnn, webTLS), "name: web\n", "name: other\n", 1)
	set = parseShims(
		File{Path: "ing.yaml", Content: []byte(ingressDoc(clusterIssuerAnn, webTLS))},
		File{Path: "other.yaml", Content: []byte(other)},
	)
	if len(set.Certificates) != 0 || len(set.Problems) != 2 || !strings.Contains(set.Problems[0].Error(), "Certificate shop/web-tls is declared 2 times (ing.yaml:1:1, other.yaml:1:1)") {
		t.Fatalf("want a duplicate: certificates %v, problems %v", set.Certificates, set.Problems)
	}
}

// cert-manager's documented self-signed setup: the Ingress stands for a
// Certificate of the selfSigned issuer.
func TestSelfSignedIngress(t *testing.T) {
	const issuer = `apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: selfsigned-issuer
  namespace: sandbox
spec:
  selfSigned: {}
`
	const ing = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: my-app
  namespace: sandbox
  annotations:
    cert-manager.io/issuer: selfsigned-issuer
spec:
  tls:
  - hosts:
    - my-app.example.com
    secretName: my-app-tls
`
	part := ParseFile(File{Path: "ing.yaml", Content: []byte(ing)})
	if len(part.Problems) != 0 || len(part.Certificates) != 1 {
		t.Fatalf("certificates %v, problems %v", part.Certificates, part.Problems)
	}
	c := part.Certificates[0]
	if c.Key() != "sandbox/my-app-tls" || c.IssuerRef != (IssuerRef{Name: "selfsigned-issuer", Kind: KindIssuer, Group: "cert-manager.io"}) {
		t.Errorf("certificate %+v", c)
	}
	set := Parse([]File{{Path: "issuer.yaml", Content: []byte(issuer)}, {Path: "ing.yaml", Content: []byte(ing)}})
	if len(set.Problems) != 0 || len(set.Certificates) != 1 || set.IssuerFor(&set.Certificates[0]).SelfSigned == nil {
		t.Errorf("certificates %v, problems %v", set.Certificates, set.Problems)
	}
}

// gatewayDoc is a Gateway shop/gw in gw.yaml, listeners from line 10.
func gatewayDoc(annotations, listeners string) string {
	return "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n  namespace: shop\n  annotations:\n" +
		annotations + "spec:\n  gatewayClassName: eg\n  listeners:\n" + listeners
}

// listener is one HTTPS listener referring to secret.
func listener(name, hostname, secret string) string {
	return "  - name: " + name + "\n    hostname: " + hostname + "\n    port: 443\n    protocol: HTTPS\n    tls:\n      certificateRefs:\n      - name: " + secret + "\n"
}

func TestGatewayShim(t *testing.T) {
	gwCert := func(secret string, names ...string) Certificate {
		return webCert(func(c *Certificate) {
			c.Name, c.SecretName, c.DNSNames, c.Source.File = secret, secret, names, "gw.yaml"
		})
	}
	tests := []struct {
		name string
		doc  string
		want []Certificate
	}{
		{
			// cert-manager's documentation ("Annotated Gateways").
			name: "cert-manager's documented Gateway",
			doc: `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: example
  namespace: shop
  annotations:
    cert-manager.io/issuer: local
spec:
  gatewayClassName: foo
  listeners:
    - name: http
      hostname: example.com
      port: 443
      protocol: HTTPS
      allowedRoutes:
        namespaces:
          from: All
      tls:
        mode: Terminate
        certificateRefs:
          - name: example-com-tls
            kind: Secret
            group: core
`,
			want: []Certificate{webCert(func(c *Certificate) {
				c.Name, c.SecretName, c.DNSNames, c.Source.File = "example-com-tls", "example-com-tls", []string{"example.com"}, "gw.yaml"
				c.IssuerRef = IssuerRef{Name: "local", Kind: KindIssuer, Group: "cert-manager.io"}
			})},
		},
		{
			name: "listeners sharing a Secret make one Certificate; hostnames once each",
			doc: gatewayDoc(clusterIssuerAnn, listener("a", "example.com", "example-tls")+listener("b", "www.example.com", "example-tls")+
				listener("c", "example.com", "example-tls")+listener("d", "api.example.com", "api-tls")),
			want: []Certificate{gwCert("example-tls", "example.com", "www.example.com"), gwCert("api-tls", "api.example.com")},
		},
		{
			name: "not cert-manager's listeners are skipped",
			doc: gatewayDoc(clusterIssuerAnn+"    cert-manager.io/ignore-tls-listeners: legacy, other\n",
				"  - name: http\n    hostname: example.com\n    port: 80\n    protocol: HTTP\n"+
					"  - name: passthrough\n    hostname: db.example.com\n    port: 5432\n    protocol: TLS\n    tls:\n      mode: Passthrough\n"+
					listener("legacy", "", "")+
					listener("tls", "mail.example.com", "mail-tls")),
			want: []Certificate{gwCert("mail-tls", "mail.example.com")},
		},
		{
			name: "explicit defaults; a Secret of the Gateway's namespace",
			doc: gatewayDoc(clusterIssuerAnn, "  - name: a\n    hostname: example.com\n    port: 443\n    protocol: HTTPS\n    tls:\n      mode: Terminate\n"+
				"      certificateRefs:\n      - {name: example-tls, kind: Secret, group: \"\", namespace: shop}\n"),
			want: []Certificate{gwCert("example-tls", "example.com")},
		},
		{
			name: "several certificateRefs on one listener",
			doc: gatewayDoc(clusterIssuerAnn+"    cert-manager.io/private-key-algorithm: ECDSA\n", "  - name: a\n    hostname: example.com\n    port: 443\n    protocol: HTTPS\n    tls:\n"+
				"      certificateRefs:\n      - name: one-tls\n      - name: two-tls\n"),
			want: []Certificate{
				webCert(func(c *Certificate) {
					c.Name, c.SecretName, c.DNSNames, c.Source.File = "one-tls", "one-tls", []string{"example.com"}, "gw.yaml"
					c.PrivateKey = KeySpec{Algorithm: ECDSA, Size: 256, Encoding: "PKCS1", RotationPolicy: RotateAlways}
				}),
				webCert(func(c *Certificate) {
					c.Name, c.SecretName, c.DNSNames, c.Source.File = "two-tls", "two-tls", []string{"example.com"}, "gw.yaml"
					c.PrivateKey = KeySpec{Algorithm: ECDSA, Size: 256, Encoding: "PKCS1", RotationPolicy: RotateAlways}
				}),
			},
		},
		{
			name: "v1beta1",
			doc:  strings.Replace(gatewayDoc(clusterIssuerAnn, listener("a", "example.com", "example-tls")), "/v1\n", "/v1beta1\n", 1),
			want: []Certificate{gwCert("example-tls", "example.com")},
		},
		{
			name: "kubernetes.io/tls-acme is not cert-manager's on a Gateway",
			doc:  gatewayDoc("    kubernetes.io/tls-acme: \"true\"\n", listener("a", "example.com", "example-tls")),
		},
		{
			name: "no annotation",
			doc:  gatewayDoc("    example.com/x: y\n", listener("a", "example.com", "example-tls")),
		},
		{
			name: "an Istio Gateway is not Gateway API's",
			doc:  strings.Replace(gatewayDoc(clusterIssuerAnn, "  - name: a\n"), "gateway.networking.k8s.io/v1", "networking.istio.io/v1", 1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkShimCertificates(t, parseShims(File{Path: "gw.yaml", Content: []byte(tt.doc)}), tt.want)
		})
	}
}

func TestGatewayShimProblems(t *testing.T) {
	good := listener("good", "good.example.com", "good-tls")
	tests := []struct {
		name, doc, want, msg string
		keepCert             int
	}{
		{"listener without hostname", gatewayDoc(clusterIssuerAnn, good+"  - name: any\n    port: 443\n    protocol: HTTPS\n    tls:\n      certificateRefs:\n      - name: any-tls\n"),
			"gw.yaml:18:5", `Gateway shop/gw: spec.listeners[1]: hostname is required: cert-manager skips a TLS listener without one (nothing is issued for it); if its certificate comes from elsewhere, name the listener in cert-manager.io/ignore-tls-listeners`, 1},
		{"listener without tls", gatewayDoc(clusterIssuerAnn, good+"  - name: bare\n    hostname: bare.example.com\n    port: 443\n    protocol: HTTPS\n"),
			"gw.yaml:18:5", `spec.listeners[1]: tls is required on an HTTPS listener`, 1},
		{"listener without certificateRefs", gatewayDoc(clusterIssuerAnn, good+"  - name: bare\n    hostname: bare.example.com\n    port: 443\n    protocol: HTTPS\n    tls: {mode: Terminate}\n"),
			"gw.yaml:22:10", `spec.listeners[1].tls: certificateRefs is required`, 1},
		{"unknown TLS mode", gatewayDoc(clusterIssuerAnn, "  - name: a\n    hostname: a.example.com\n    port: 443\n    protocol: TLS\n    tls:\n      mode: terminate\n      certificateRefs: [{name: a-tls}]\n"),
			"gw.yaml:16:13", `spec.listeners[0].tls.mode: "terminate" is not a TLS mode cert-manager issues for`, 0},
		{"certificateRef of another kind", gatewayDoc(clusterIssuerAnn, "  - name: a\n    hostname: a.example.com\n    port: 443\n    protocol: HTTPS\n    tls:\n      certificateRefs:\n      - name: a\n        kind: ConfigMap\n"),
			"gw.yaml:18:15", `spec.listeners[0].tls.certificateRefs[0].kind: "ConfigMap" is not supported: cert-manager writes a Secret`, 0},
		{"certificateRef of another group", gatewayDoc(clusterIssuerAnn, "  - name: a\n    hostname: a.example.com\n    port: 443\n    protocol: HTTPS\n    tls:\n      certificateRefs:\n      - name: a\n        group: example.com\n"),
			"gw.yaml:18:16", `spec.listeners[0].tls.certificateRefs[0].group: "example.com" is not supported`, 0},
		{"cross-namespace certificateRef", gatewayDoc(clusterIssuerAnn, good+"  - name: a\n    hostname: a.example.com\n    port: 443\n    protocol: HTTPS\n    tls:\n      certificateRefs:\n      - name: a\n        namespace: other\n"),
			"gw.yaml:25:20", `spec.listeners[1].tls.certificateRefs[0].namespace: "other": cross-namespace secret references are not allowed in listeners`, 1},
		{"bad hostname", gatewayDoc(clusterIssuerAnn, good+listener("bad", "bad..example.com", "bad-tls")),
			"gw.yaml:19:15", `spec.listeners[1].hostname: "bad..example.com": has an empty label`, 1},
		{"bad annotation", gatewayDoc(clusterIssuerAnn+"    cert-manager.io/duration: forever\n", good),
			"gw.yaml:8:31", `Gateway shop/gw: metadata.annotations["cert-manager.io/duration"]: "forever" is not a duration`, 0},
		{"v1alpha2 Gateway", strings.Replace(gatewayDoc(clusterIssuerAnn, good), "/v1\n", "/v1alpha2\n", 1),
			"gw.yaml:1:13", `apiVersion: gateway.networking.k8s.io/v1alpha2 Gateway is not read by certsync: use apiVersion: gateway.networking.k8s.io/v1`, 0},
		{"ListenerSet", strings.Replace(gatewayDoc(clusterIssuerAnn, good), "kind: Gateway", "kind: ListenerSet", 1),
			"gw.yaml:7:5", `ListenerSet shop/gw: metadata.annotations["cert-manager.io/cluster-issuer"]: certsync does not read the Certificates of a ListenerSet`, 0},
		{"typo on a Gateway", gatewayDoc("    cert-manager.io/isuer: local\n", good),
			"gw.yaml:7:5", `did you mean cert-manager.io/issuer?`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := parseShims(File{Path: "gw.yaml", Content: []byte(tt.doc)})
			wantOneProblem(t, set, tt.want, tt.msg)
			if got := len(set.Certificates); got != tt.keepCert {
				t.Errorf("%d certificates read, want %d", got, tt.keepCert)
			}
		})
	}
}

// The Ingress of examples/ingress is read with the example repository's
// issuer, without a problem.
func TestIngressExample(t *testing.T) {
	var files []File
	for _, p := range []string{"../examples/repo/issuers/letsencrypt-staging.yaml", "../examples/ingress/blog.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, File{Path: p, Content: b})
	}
	set := Parse(files)
	if len(set.Problems) != 0 || len(set.Certificates) != 1 {
		t.Fatalf("certificates %+v, problems %v", set.Certificates, set.Problems)
	}
	c := set.Certificates[0]
	if c.IssuerRef.Name != "letsencrypt-staging" || c.IssuerRef.Kind != KindClusterIssuer || len(c.DNSNames) == 0 {
		t.Errorf("certificate %+v", c)
	}
}

// checkShimCertificates wants no problems and exactly the certificates want.
func checkShimCertificates(t *testing.T, set Set, want []Certificate) {
	t.Helper()
	if len(set.Problems) > 0 {
		t.Fatalf("problems: %v", set.Problems)
	}
	if len(set.Certificates) != len(want) {
		t.Fatalf("got %d certificates, want %d: %+v", len(set.Certificates), len(want), set.Certificates)
	}
	for i, w := range want {
		if got := set.Certificates[i]; !reflect.DeepEqual(got, w) {
			t.Errorf("certificate %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
}
