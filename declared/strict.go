package declared

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// A misspelt field is not ignored: `privatekey: {algorithm: ECDSA}` read
// as nothing would issue an RSA key, `namepsace: shop` would put the
// Secret in "default", `renewbefore` would renew on another day. The API
// server refuses such fields too (kubectl apply's strict field
// validation); certsync refuses them with the line and the likely name.

// allowedKeys are keys the raw types do not list but a manifest may
// carry: the object's own envelope and the metadata the API server keeps.
var allowedKeys = map[string][]string{
	"metadata": {"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
		"deletionGracePeriodSeconds", "ownerReferences", "finalizers", "managedFields", "generateName", "selfLink"},
	// cert-manager's deprecated field, still accepted by its API.
	"spec.acme.externalAccountBinding": {"keyAlgorithm"},
}

// unsupportedKeys are cert-manager fields certsync does not implement:
// refused by name rather than as unknown.
var unsupportedKeys = map[string]string{
	"spec.signatureAlgorithm": "certsync signs with cert-manager's default for the key type (an ACME CA chooses its own): remove it",
}

// checkKnown refuses the first key of the document that the raw type v
// (a pointer to a struct) does not have.
func (d *document) checkKnown(v any) error {
	return d.checkNode(d.root, reflect.TypeOf(v), "")
}

func (d *document) checkNode(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // a wrong type is decode's to report
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if key == "<<" { // a merge key: its mapping's keys are this one's
				if err := d.checkNode(n.Content[i+1], t, path); err != nil {
					return err
				}
				continue
			}
			if path == "" && fields[key] == nil {
				continue // the envelope beyond metadata and spec is not certsync's to judge
			}
			p := key
			if path != "" {
				p = path + "." + key
			}
			ft, ok := fields[key]
			switch {
			case ok:
				if err := d.checkNode(n.Content[i+1], ft, p); err != nil {
					return err
				}
			case contains(allowedKeys[path], key):
			case unsupportedKeys[p] != "":
				return &fieldError{node: n.Content[i], field: p, msg: "is not supported by certsync yet: " + unsupportedKeys[p]}
			default:
				msg := "unknown field"
				if near := closest(key, fields); near != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", near)
				}
				return &fieldError{node: n.Content[i], field: p, msg: msg}
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode || t.Elem().Kind() == reflect.Uint8 {
			return nil
		}
		for i, item := range n.Content {
			if err := d.checkNode(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	// Maps and `any` hold user data or blocks read elsewhere.
	return nil
}

// yamlFields maps a struct's yaml keys to their types (inline structs
// merged).
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
		case strings.Contains(opts, "inline"):
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					out[k] = v
				}
			}
		case name != "":
			out[name] = f.Type
		}
	}
	return out
}

// closest is the known key a misspelling most likely meant (within
// maxTypo edits, case ignored).
func closest(key string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	best, bestDist := "", maxTypo+1
	for _, k := range names {
		if d := typoDistance(k, key); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}
