package declared

import (
	"strings"
	"testing"
)

// parseWithBase parses files next to a valid issuer and Certificate, which
// must survive whatever the other files hold.
func parseWithBase(t *testing.T, files ...File) Set {
	t.Helper()
	base := []File{
		{Path: "issuer.yaml", Content: []byte(issuerYAML)},
		{Path: "good.yaml", Content: []byte(cert("good", "a", "good-tls", "  dnsNames: [good.example.com]\n"))},
	}
	set := Parse(append(base, files...))
	if !hasCertificate(set, "a/good") {
		t.Errorf("the valid Certificate was lost: problems %v", set.Problems)
	}
	return set
}

func hasCertificate(set Set, key string) bool {
	for _, c := range set.Certificates {
		if c.Key() == key {
			return true
		}
	}
	return false
}

// wantOneProblem checks that set has exactly one problem, at want
// ("path:line:column", or "path:line" when the column is unknown), whose
// message contains every one of msgs.
func wantOneProblem(t *testing.T, set Set, want string, msgs ...string) {
	t.Helper()
	if len(set.Problems) != 1 {
		t.Fatalf("got %d problems, want 1 at %s: %v", len(set.Problems), want, set.Problems)
	}
	p := set.Problems[0]
	if p.Source.String() != want {
		t.Errorf("problem at %s, want %s: %v", p.Source, want, p)
	}
	for _, m := range msgs {
		if !strings.Contains(p.Error(), m) {
			t.Errorf("problem %q does not say %q", p.Error(), m)
		}
	}
}

func TestMisspelledKindsAreProblems(t *testing.T) {
	const meta = "metadata: {name: web, namespace: a}\nspec: {}\n"
	tests := []struct {
		name, doc string
		want      string // "t.yaml:line:column"
		msgs      []string
	}{
		{"kind typo", "apiVersion: cert-manager.io/v1\nkind: Certficate\n" + meta,
			"t.yaml:2:7", []string{"kind: Certficate: did you mean kind: Certificate? certsync reads cert-manager.io/v1 Certificate, Issuer and ClusterIssuer; until this is fixed nothing is pruned"}},
		{"ClusterIssuer typo", "apiVersion: cert-manager.io/v1\nkind: ClusterIsuser\n" + meta,
			"t.yaml:2:7", []string{"did you mean kind: ClusterIssuer?"}},
		{"Issuer typo", "apiVersion: cert-manager.io/v1\nkind: Isuer\n" + meta,
			"t.yaml:2:7", []string{"did you mean kind: Issuer?"}},
		{"kind in lower case", "apiVersion: cert-manager.io/v1\nkind: certificate\n" + meta,
			"t.yaml:2:7", []string{"did you mean kind: Certificate?"}},
		{"plural kind", "apiVersion: cert-manager.io/v1\nkind: Certificates\n" + meta,
			"t.yaml:2:7", []string{"did you mean kind: Certificate?"}},
		{"other kind under cert-manager.io", "apiVersion: cert-manager.io/v1\nkind: Widget\n" + meta,
			"t.yaml:2:7", []string{"Widget is not a kind certsync reads under cert-manager.io", "nothing is pruned"}},
		{"List kind under cert-manager.io", "apiVersion: cert-manager.io/v1\nkind: CertificateList\nitems: []\n",
			"t.yaml:2:7", []string{"does not read Lists"}},
		{"no kind under cert-manager.io", "apiVersion: cert-manager.io/v1\n" + meta,
			"t.yaml:1:13", []string{"with no kind"}},
		{"group typo", "apiVersion: cert-manger.io/v1\nkind: Certificate\n" + meta,
			"t.yaml:1:13", []string{"cert-manger.io/v1: did you mean apiVersion: cert-manager.io/v1?", whatIsRead}},
		{"group typo with any kind", "# a comment\napiVersion: cert-manager.oi/v1\nkind: Whatever\n" + meta,
			"t.yaml:2:13", []string{"did you mean apiVersion: cert-manager.io/v1?"}},
		{"group without dash", "apiVersion: certmanager.io/v1\nkind: Certificate\n" + meta,
			"t.yaml:1:13", []string{"did you mean apiVersion: cert-manager.io/v1?"}},
		{"group in upper case", "apiVersion: Cert-Manager.io/v1\nkind: Issuer\n" + meta,
			"t.yaml:1:13", []string{"did you mean apiVersion: cert-manager.io/v1?"}},
		{"group without its domain", "apiVersion: cert-manager/v1\nkind: Issuer\n" + meta,
			"t.yaml:1:13", []string{"did you mean apiVersion: cert-manager.io/v1?"}},
		{"group without a version", "apiVersion: cert-manager.io\nkind: Whatever\n" + meta,
			"t.yaml:1:13", []string{"did you mean apiVersion: cert-manager.io/v1?"}},
		{"no apiVersion", "kind: Certificate\n" + meta,
			"t.yaml:1:7", []string{"Certificate has no apiVersion: did you mean apiVersion: cert-manager.io/v1?"}},
		{"no apiVersion, kind typo", "metadata: {name: web}\nkind: ClusterIssuers\n",
			"t.yaml:2:7", []string{"did you mean apiVersion: cert-manager.io/v1 and kind: ClusterIssuer?"}},
		{"empty apiVersion", "apiVersion: \"\"\nkind: Issuer\n" + meta,
			"t.yaml:2:7", []string{"Issuer has no apiVersion"}},
		{"core group", "apiVersion: v1\nkind: Certificate\n" + meta,
			"t.yaml:1:13", []string{"v1 with kind: Certificate: did you mean apiVersion: cert-manager.io/v1?"}},
		{"another group", "apiVersion: example.com/v1\nkind: Certficate\n" + meta,
			"t.yaml:1:13", []string{"did you mean apiVersion: cert-manager.io/v1 and kind: Certificate?"}},
		{"cert-manager before 0.11", "apiVersion: certmanager.k8s.io/v1alpha1\nkind: ClusterIssuer\n" + meta,
			"t.yaml:1:13", []string{"cert-manager's API before 0.11"}},
		{"second document", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: cert-manager.io/v1\nkind: Certficate\n" + meta,
			"t.yaml:6:7", []string{"did you mean kind: Certificate?"}},
		{"kind set twice", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nkind: Certificate\n",
			"t.yaml:4:1", []string{"kind: is set more than once"}},
		{"merge key with a typo", "apiVersion: cert-manager.io/v1\n<<: {kind: Certficate}\n" + meta,
			"t.yaml:2:12", []string{"did you mean kind: Certificate?"}},
		{"alias to a typo", "apiVersion: cert-manager.io/v1\nx: &k Certficate\nkind: *k\n" + meta,
			"t.yaml:3:7", []string{"did you mean kind: Certificate?"}},
		{"Certificate inside a List", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n- apiVersion: cert-manager.io/v1\n  kind: Certificate\n  " + strings.ReplaceAll(strings.TrimSpace(meta), "\n", "\n  ") + "\n",
			"t.yaml:6:3", []string{"cert-manager.io/v1 Certificate inside a List", "its own document"}},
		{"wrong version", "apiVersion: cert-manager.io/v1beta1\nkind: Certificate\n" + meta,
			"t.yaml:1:13", []string{"is not supported: use cert-manager.io/v1", "nothing is pruned"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := parseWithBase(t, File{Path: "t.yaml", Content: []byte(tt.doc)})
			wantOneProblem(t, set, tt.want, tt.msgs...)
		})
	}
}

func TestOtherKindsAreSkipped(t *testing.T) {
	heads := [][2]string{
		{"apps/v1", "Deployment"}, {"apps/v1", "StatefulSet"}, {"apps/v1", "DaemonSet"},
		{"batch/v1", "Job"}, {"batch/v1", "CronJob"},
		{"v1", "Service"}, {"v1", "ConfigMap"}, {"v1", "Namespace"}, {"v1", "ServiceAccount"},
		{"v1", "Secret"}, {"v1", "PersistentVolumeClaim"}, {"v1", "Endpoints"},
		// Ingresses and Gateways without cert-manager's annotations (see
		// shim_test.go for those with them).
		{"networking.k8s.io/v1", "Ingress"}, {"networking.k8s.io/v1beta1", "Ingress"},
		{"extensions/v1beta1", "Ingress"}, {"networking.k8s.io/v1", "NetworkPolicy"},
		{"networking.k8s.io/v1", "IngressClass"},
		{"rbac.authorization.k8s.io/v1", "Role"}, {"rbac.authorization.k8s.io/v1", "ClusterRole"},
		{"rbac.authorization.k8s.io/v1", "ClusterRoleBinding"},
		{"kustomize.config.k8s.io/v1beta1", "Kustomization"},
		{"kustomize.toolkit.fluxcd.io/v1", "Kustomization"},
		{"helm.toolkit.fluxcd.io/v2", "HelmRelease"}, {"source.toolkit.fluxcd.io/v1", "GitRepository"},
		{"argoproj.io/v1alpha1", "Application"},
		{"gateway.networking.k8s.io/v1", "Gateway"}, {"gateway.networking.k8s.io/v1beta1", "Gateway"},
		{"gateway.networking.k8s.io/v1", "ListenerSet"}, {"gateway.networking.k8s.io/v1", "HTTPRoute"},
		{"networking.istio.io/v1", "Gateway"},
		{"cluster.x-k8s.io/v1beta1", "Cluster"},
		{"apiextensions.k8s.io/v1", "CustomResourceDefinition"},
		{"admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"},
		{"certificates.k8s.io/v1", "CertificateSigningRequest"},
		{"certificates.k8s.io/v1beta1", "ClusterTrustBundle"},
		{"networking.gke.io/v1", "ManagedCertificate"},
		// cert-manager's own kinds certsync does not need (see verdict).
		{"cert-manager.io/v1", "CertificateRequest"},
		{"acme.cert-manager.io/v1", "Order"}, {"acme.cert-manager.io/v1", "Challenge"},
		{"trust.cert-manager.io/v1alpha1", "Bundle"},
		{"policy.cert-manager.io/v1alpha1", "CertificateRequestPolicy"},
		{"awspca.cert-manager.io/v1beta1", "AWSPCAClusterIssuer"},
		{"cas-issuer.jetstack.io/v1beta1", "GoogleCASClusterIssuer"},
		{"certmanager.step.sm/v1beta1", "StepClusterIssuer"},
		// Other projects' kinds of the same names.
		{"acm.services.k8s.aws/v1alpha1", "Certificate"},
		{"acmpca.services.k8s.aws/v1alpha1", "Certificate"},
		{"acm.aws.upbound.io/v1beta1", "Certificate"},
		{"networking.internal.knative.dev/v1alpha1", "Certificate"},
		{"cert.gardener.cloud/v1alpha1", "Issuer"},
	}
	var docs []string
	for _, h := range heads {
		docs = append(docs, "apiVersion: "+h[0]+"\nkind: "+h[1]+"\nmetadata:\n  name: x\n")
	}
	docs = append(docs,
		// cert-manager.io in comments is not a document, and an Ingress
		// without cert-manager's annotations stands for no Certificate.
		`# apiVersion: cert-manager.io/v1
# kind: Certificate
# cert-manager.io/cluster-issuer: letsencrypt
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations:
    nginx.ingress.kubernetes.io/ssl-redirect: "true"
spec:
  tls: [{hosts: [web.example.com], secretName: web-tls}]
`,
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n",
		"just a string\n",
		"- a\n- list\n",
	)
	set := parseWithBase(t, File{Path: "other.yaml", Content: []byte(strings.Join(docs, "---\n"))})
	if len(set.Problems) != 0 {
		t.Errorf("unrelated documents reported: %v", set.Problems)
	}
}

func TestAliasesAndMergeKeysAreRead(t *testing.T) {
	for name, doc := range map[string]string{
		"alias":     "apiVersion: cert-manager.io/v1\nx: &k Certificate\nkind: *k\n",
		"merge key": "<<: {apiVersion: cert-manager.io/v1, kind: Certificate}\n",
	} {
		t.Run(name, func(t *testing.T) {
			doc += "metadata: {name: web, namespace: a}\nspec:\n  secretName: web-tls\n  dnsNames: [web.example.com]\n  issuerRef: {name: letsencrypt, kind: ClusterIssuer}\n"
			set := parseWithBase(t, File{Path: "t.yaml", Content: []byte(doc)})
			if len(set.Problems) != 0 || !hasCertificate(set, "a/web") {
				t.Errorf("not read as a Certificate: problems %v", set.Problems)
			}
		})
	}
}

func TestTypoDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"Certificate", "Certificate", 0},
		{"certificate", "Certificate", 0},
		{"Certficate", "Certificate", 1},
		{"Cretificate", "Certificate", 1}, // transposition
		{"ClusterIsuser", "ClusterIssuer", 1},
		{"cert-manger.io", "cert-manager.io", 1},
		{"Ingress", "Issuer", 5},
		{"User", "Issuer", 3},
		{"", "Issuer", 3},
		{strings.Repeat("x", 1<<20), "Issuer", 3},
	} {
		if got := typoDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("typoDistance(%.20q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
