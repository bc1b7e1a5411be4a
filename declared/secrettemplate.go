package declared

import (
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// validateSecretTemplate checks spec.secretTemplate as the API server
// would check the Secret's metadata, so a bad template is refused before
// anything is ordered instead of after the certificate was issued: label
// keys and values, annotation keys, and the annotations' total size (first,
// since it is the cheap bound on everything after it).
//
// It also refuses keys that would overwrite what certsync and cert-manager
// write on the Secret: anything under certsync.io/ or cert-manager.io/
// (and their subdomains, such as controller.cert-manager.io), and the
// label app.kubernetes.io/managed-by, which marks the Secrets certsync may
// prune. cert-manager refuses cert-manager.io/* annotations too, except
// cert-manager.io/allow-direct-injection, which is the user's to set.
func validateSecretTemplate(d *document, t SecretTemplate) error {
	const (
		labels      = "spec.secretTemplate.labels"
		annotations = "spec.secretTemplate.annotations"
	)
	total := 0
	for k, v := range t.Annotations {
		total += len(k) + len(v)
	}
	if total > MaxAnnotationsSize {
		return d.failKey("spec.secretTemplate", "annotations", "are %d bytes in total; the API server accepts at most %d (256 KiB) of annotations on a Secret", total, MaxAnnotationsSize)
	}
	for _, k := range slices.Sorted(maps.Keys(t.Annotations)) {
		if msgs := validation.IsQualifiedName(strings.ToLower(k)); len(msgs) > 0 {
			return d.failKey(annotations, k, "%q is not a valid annotation key: %s", clip(k), strings.Join(msgs, "; "))
		}
		if reservedKey(k) && k != "cert-manager.io/allow-direct-injection" {
			return d.failKey(annotations, k, "%q is reserved: %s", clip(k), reservedWhy)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(t.Labels)) {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			return d.failKey(labels, k, "%q is not a valid label key: %s", clip(k), strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(t.Labels[k]); len(msgs) > 0 {
			return d.failValue(labels, k, "the value of %q, %q, is not a valid label value: %s", clip(k), clip(t.Labels[k]), strings.Join(msgs, "; "))
		}
		if reservedKey(k) || k == managedByLabel {
			return d.failKey(labels, k, "%q is reserved: %s", clip(k), reservedWhy)
		}
	}
	return nil
}

const (
	// managedByLabel is committed.ManagedByLabel (declared cannot import
	// committed, which sits downstream of it).
	managedByLabel = "app.kubernetes.io/managed-by"
	reservedWhy    = "certsync and cert-manager write the keys under certsync.io/ and cert-manager.io/ (and the label " + managedByLabel + ") on the Secret themselves"
)

// reservedKey reports whether a label or annotation key is under
// certsync.io or cert-manager.io, or a subdomain of either.
func reservedKey(k string) bool {
	prefix, _, ok := strings.Cut(strings.ToLower(k), "/")
	if !ok {
		return false
	}
	for _, domain := range []string{"certsync.io", "cert-manager.io"} {
		if prefix == domain || strings.HasSuffix(prefix, "."+domain) {
			return true
		}
	}
	return false
}
