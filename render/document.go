package render

import (
	"encoding/base64"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// FromDocument is Parse for a manifest already decoded into maps and
// lists (encrypt.DecryptDocument), by Parse's rules. The fields certsync
// writes are read directly, at a tenth of the cost of writing the
// manifest out and parsing it again; a manifest with anything else takes
// that way, through Parse itself.
func FromDocument(doc map[string]any) (*corev1.Secret, error) {
	s, ok := secretOf(doc)
	if !ok {
		text, err := yaml.Marshal(doc)
		if err != nil {
			// Never quote the input: it holds a private key.
			return nil, fmt.Errorf("parse Secret: malformed manifest")
		}
		return Parse(text)
	}
	if s.Kind != "Secret" {
		return nil, fmt.Errorf("parse Secret: kind is %q", s.Kind)
	}
	return s, nil
}

// secretOf reads the fields Marshal writes; ok is false for anything else.
func secretOf(doc map[string]any) (s *corev1.Secret, ok bool) {
	s = &corev1.Secret{}
	for k, v := range doc {
		switch k {
		case "apiVersion":
			s.APIVersion, ok = v.(string)
		case "kind":
			s.Kind, ok = v.(string)
		case "type":
			var t string
			t, ok = v.(string)
			s.Type = corev1.SecretType(t)
		case "metadata":
			ok = metadataOf(v, s)
		case "data":
			s.Data, ok = bytesMap(v)
		case "stringData":
			s.StringData, ok = stringMap(v)
		default:
			ok = false
		}
		if !ok {
			return nil, false
		}
	}
	return s, true
}

func metadataOf(v any, s *corev1.Secret) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range m {
		switch k {
		case "name":
			s.Name, ok = v.(string)
		case "namespace":
			s.Namespace, ok = v.(string)
		case "labels":
			s.Labels, ok = stringMap(v)
		case "annotations":
			s.Annotations, ok = stringMap(v)
		default:
			ok = false
		}
		if !ok {
			return false
		}
	}
	return true
}

func stringMap(v any) (map[string]string, bool) {
	return mapOf(v, func(v any) (string, bool) { s, ok := v.(string); return s, ok })
}

func bytesMap(v any) (map[string][]byte, bool) {
	return mapOf(v, func(v any) ([]byte, bool) {
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		b, err := base64.StdEncoding.DecodeString(s)
		return b, err == nil
	})
}

// mapOf converts a decoded map's values, or fails on the first that does
// not convert.
func mapOf[V any](v any, convert func(any) (V, bool)) (map[string]V, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		if out[k], ok = convert(v); !ok {
			return nil, false
		}
	}
	return out, true
}
