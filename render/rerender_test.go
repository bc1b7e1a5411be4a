package render

import (
	"bytes"
	"strings"
	"testing"
	"time"

	jks "github.com/pavlo-v-chernykh/keystore-go/v4"
	corev1 "k8s.io/api/core/v1"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

// A Secret rendered again from an earlier render, for a declaration that
// now asks for keystores, another output format and another template:
// the same certificate, key, CA and issuance record, the new extras, and
// it verifies against its own metadata.
func TestRerenderFromSecret(t *testing.T) {
	before := outputsCert()
	before.AdditionalOutputFormats = []string{declared.OutputDER}
	before.SecretTemplate = declared.SecretTemplate{Labels: map[string]string{"team": "web", "old": "x"}, Annotations: map[string]string{"note": "a"}}
	tc := newTestChain(t, before)
	in := tc.in(true, Passwords{})
	in.Reason = "no Secret committed"
	in.Window = &issuer.RenewalWindow{Start: tc.issuedAt.Add(30 * time.Minute), End: tc.issuedAt.Add(40 * time.Minute)}
	old, err := TLSSecret(in)
	if err != nil {
		t.Fatal(err)
	}

	after := outputsCert()
	after.AdditionalOutputFormats = []string{declared.OutputCombinedPEM}
	after.SecretTemplate = declared.SecretTemplate{Labels: map[string]string{"team": "shop"}}
	after.Keystores = declared.Keystores{
		PKCS12: &declared.PKCS12Keystore{Create: true, Profile: declared.PKCS12Modern2023},
		JKS:    &declared.JKSKeystore{Create: true, Alias: declared.DefaultJKSAlias},
	}
	again, err := FromSecret(old)
	if err != nil {
		t.Fatal(err)
	}
	again.Certificate, again.Passwords, again.KeystorePasswordsHash = after, Passwords{PKCS12: []byte("p12pass"), JKS: []byte("jkspass")}, "0123456789abcdef"
	s, err := TLSSecret(again)
	if err != nil {
		t.Fatal(err)
	}

	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, "ca.crt"} {
		if !bytes.Equal(s.Data[k], old.Data[k]) {
			t.Errorf("%s changed", k)
		}
	}
	for _, k := range []string{committed.AnnotationSerial, committed.AnnotationNotBefore, committed.AnnotationNotAfter, committed.AnnotationIssuedAt,
		committed.AnnotationReason, committed.AnnotationRenewalWindowStart, committed.AnnotationRenewalWindowEnd, committed.AnnotationSpecHash} {
		if s.Annotations[k] != old.Annotations[k] || s.Annotations[k] == "" {
			t.Errorf("annotation %s = %q, was %q", k, s.Annotations[k], old.Annotations[k])
		}
	}
	// What the declaration asks for now, and nothing it no longer asks for
	// (cert-manager drops template keys removed from the Certificate).
	if _, ok := s.Data[KeyDER]; ok || len(s.Data[KeyCombinedPEM]) == 0 {
		t.Errorf("output formats: key.der kept %v, tls-combined.pem %d bytes", ok, len(s.Data[KeyCombinedPEM]))
	}
	if s.Labels["team"] != "shop" || s.Labels["old"] != "" || s.Annotations["note"] != "" {
		t.Errorf("template: labels %v, note %q", s.Labels, s.Annotations["note"])
	}
	if _, leaf, cas, err := pkcs12.DecodeChain(s.Data[KeyPKCS12], "p12pass"); err != nil || !leaf.Equal(tc.leaf) || len(cas) != 2 {
		t.Errorf("keystore.p12: %v (CA certificates %d)", err, len(cas))
	}
	ks := jks.New()
	if err := ks.Load(bytes.NewReader(s.Data[KeyJKS]), []byte("jkspass")); err != nil {
		t.Fatalf("keystore.jks: %v", err)
	}
	if e, err := ks.GetPrivateKeyEntry(declared.DefaultJKSAlias, []byte("jkspass")); err != nil || !e.CreationTime.Equal(tc.issuedAt) {
		t.Errorf("keystore.jks entry: %v, created %s (issued %s)", err, e.CreationTime, tc.issuedAt)
	}
	if len(s.Data[KeyPKCS12Truststore]) == 0 || len(s.Data[KeyJKSTruststore]) == 0 {
		t.Error("truststores missing although ca.crt is known")
	}
	rec := committed.FromAnnotations(s.Annotations)
	rec.Namespace, rec.SecretName = s.Namespace, s.Name
	if rec.TemplateHash != after.TemplateHash() || rec.OutputsHash != after.OutputsHash() || rec.KeystorePasswordsHash != "0123456789abcdef" ||
		strings.Join(rec.Outputs, ",") != "CombinedPEM,jks,pkcs12" {
		t.Errorf("recorded: template %q, outputs %q %v, passwords %q", rec.TemplateHash, rec.OutputsHash, rec.Outputs, rec.KeystorePasswordsHash)
	}
	if err := Verify(s, rec); err != nil {
		t.Errorf("the re-rendered Secret does not verify: %v", err)
	}
}

func TestFromSecretRefusesAKeyOfAnotherCertificate(t *testing.T) {
	tc := newTestChain(t, outputsCert())
	old, err := TLSSecret(tc.in(false, Passwords{}))
	if err != nil {
		t.Fatal(err)
	}
	other := newTestChain(t, outputsCert())
	old.Data[corev1.TLSPrivateKeyKey] = other.keyPEM
	if _, err := FromSecret(old); err == nil || !strings.Contains(err.Error(), "does not belong") || strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("err = %v", err)
	}
}
