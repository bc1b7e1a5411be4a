package committed

import (
	"bytes"
	"strings"
)

// scan reads the plaintext parts of a Secret file as the sops YAML store
// writes it (block style, four-space indent) without a YAML parser: a pass
// reads every committed file, and this is several times faster. Anything
// it does not recognise — other indents, flow style, multi-line or escaped
// values, anchors — makes it give up (ok false), and Read parses the file
// with the YAML library instead.
func scan(content []byte) (f file, ok bool) {
	var section, sub string
	ann := map[string]string{}
	var age, pgp []string
	sawSOPS := false
	for len(content) > 0 {
		var line []byte
		if i := bytes.IndexByte(content, '\n'); i >= 0 {
			line, content = content[:i], content[i+1:]
		} else {
			line, content = content, nil
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		indent := len(line) - len(bytes.TrimLeft(line, " "))
		text := string(line[indent:])
		switch {
		case indent == 0:
			key, val, found := strings.Cut(text, ":")
			if !found {
				return f, false
			}
			section, sub = key, ""
			switch key {
			case "metadata", "data", "stringData":
				if strings.TrimSpace(val) != "" {
					return f, false // flow style
				}
			case "kind":
				v, ok := scalar(val)
				if !ok {
					return f, false
				}
				f.Kind = v
			case "sops":
				if strings.TrimSpace(val) != "" {
					return f, false
				}
				sawSOPS = true
			}
		case section == "data" || section == "stringData":
			// ciphertext: not needed to plan
		case section == "metadata" && indent == 4:
			key, val, found := strings.Cut(text, ":")
			if !found {
				return f, false
			}
			sub = key
			switch key {
			case "name", "namespace":
				v, ok := scalar(val)
				if !ok {
					return f, false
				}
				if key == "name" {
					f.Metadata.Name = v
				} else {
					f.Metadata.Namespace = v
				}
			}
		case section == "metadata" && indent == 8 && sub == "annotations":
			key, val, found := strings.Cut(text, ": ")
			if !found {
				return f, false
			}
			v, ok := scalar(" " + val)
			if !ok {
				return f, false
			}
			ann[key] = v
		case section == "metadata":
			if indent != 8 {
				return f, false
			}
		case section == "sops" && indent == 4:
			sub, _, _ = strings.Cut(text, ":")
		case section == "sops" && (indent == 8 && strings.HasPrefix(text, "- ") || indent == 10):
			// A key entry: "- recipient: …" or, after "- enc: |" and its
			// block, "  recipient: …" at the entry's indent.
			key, val, found := strings.Cut(strings.TrimPrefix(text, "- "), ":")
			if !found {
				return f, false
			}
			if strings.TrimSpace(val) == "|" {
				continue // the enc block follows
			}
			v, ok := scalar(val)
			if !ok {
				return f, false
			}
			switch {
			case sub == "age" && key == "recipient":
				age = append(age, v)
			case sub == "pgp" && key == "fp":
				pgp = append(pgp, v)
			}
		}
	}
	if !sawSOPS {
		return f, true // Read reports the missing sops section
	}
	f.Metadata.Annotations = ann
	f.SOPS = &sopsMeta{}
	for _, r := range age {
		f.SOPS.Age = append(f.SOPS.Age, struct {
			Recipient string `yaml:"recipient"`
		}{r})
	}
	for _, fp := range pgp {
		f.SOPS.PGP = append(f.SOPS.PGP, struct {
			FP string `yaml:"fp"`
		}{fp})
	}
	return f, true
}

// scalar reads a plain, single- or double-quoted value without escapes.
func scalar(raw string) (string, bool) {
	v := strings.TrimSpace(raw)
	if v == "" {
		return "", true
	}
	switch v[0] {
	case '"':
		if len(v) < 2 || v[len(v)-1] != '"' || strings.ContainsAny(v[1:len(v)-1], `\"`) {
			return "", false
		}
		return v[1 : len(v)-1], true
	case '\'':
		if len(v) < 2 || v[len(v)-1] != '\'' || strings.Contains(v[1:len(v)-1], "'") {
			return "", false
		}
		return v[1 : len(v)-1], true
	case '{', '[', '|', '>', '&', '*', '!', '%', '@', '`':
		return "", false
	}
	if strings.Contains(v, " #") {
		return "", false
	}
	return v, true
}
