package committed

import (
	"bytes"
	"errors"
	"io"
	"sort"

	yaml "go.yaml.in/yaml/v3"
)

// file is what certsync reads from a committed file without a key: the
// plaintext metadata, the sops section's recipients, and which data values
// are not encrypted.
type file struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	SOPS *sopsMeta `yaml:"sops"`

	// plaintext are the "data.<key>" / "stringData.<key>" whose values are
	// not SOPS ciphertexts, sorted.
	plaintext []string
}

type sopsMeta struct {
	Age []struct {
		Recipient string `yaml:"recipient"`
	} `yaml:"age"`
	PGP []struct {
		FP string `yaml:"fp"`
	} `yaml:"pgp"`
}

// readFile reads a committed file with the fast scanner, or with the YAML
// library when the scanner does not recognise the layout.
func readFile(p string, content []byte) (file, error) {
	if f, ok := scan(content); ok {
		sort.Strings(f.plaintext)
		return f, nil
	}
	f, err := parseYAML(content)
	if err != nil {
		return file{}, errorf(p, "malformed YAML: %v", err)
	}
	return f, nil
}

// parseYAML is the slow path: every document is parsed; the metadata comes
// from the first, plaintext data keys from all of them (the sops YAML store
// writes one sops section per document).
func parseYAML(content []byte) (file, error) {
	type document struct {
		file       `yaml:",inline"`
		Data       yaml.Node `yaml:"data"`
		StringData yaml.Node `yaml:"stringData"`
	}
	var out file
	seen := map[string]bool{}
	dec := yaml.NewDecoder(bytes.NewReader(content))
	for i := 0; ; i++ {
		var d document
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return file{}, err
		}
		if i == 0 {
			out = d.file
		}
		for _, section := range []struct {
			name string
			node *yaml.Node
		}{{"data", &d.Data}, {"stringData", &d.StringData}} {
			for _, k := range plaintextKeys(section.node) {
				if key := section.name + "." + k; !seen[key] {
					seen[key] = true
					out.plaintext = append(out.plaintext, key)
				}
			}
		}
	}
	sort.Strings(out.plaintext)
	return out, nil
}

// plaintextKeys lists the keys of a data mapping whose values are not
// ciphertexts. Anything but a string value (a number, a nested mapping, a
// list) counts as plaintext: sops would have turned it into ENC[…].
func plaintextKeys(n *yaml.Node) []string {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.ScalarNode && (v.Tag == "!!null" || v.Value == "" || isCiphertext([]byte(v.Value))) {
			continue
		}
		out = append(out, k.Value)
	}
	return out
}

// isCiphertext reports whether a value is a SOPS ciphertext, as the aes
// cipher writes it: ENC[AES256_GCM,data:…,iv:…,tag:…,type:…].
func isCiphertext(v []byte) bool {
	return len(v) > len(encPrefix) && string(v[:len(encPrefix)]) == encPrefix && v[len(v)-1] == ']'
}

const encPrefix = "ENC[AES256_GCM,"
