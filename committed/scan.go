package committed

import (
	"bytes"
	"slices"
	"strings"
	"unique"
)

// scan reads the plaintext parts of a committed file as the sops YAML
// store writes it (block style, four-space indent) without a YAML parser:
// a pass reads every committed file, and this is several times faster.
// Anything it does not recognise — other indents, flow style, multi-line
// or escaped values, anchors, several documents — makes it give up (ok
// false), and readFile parses the file with the YAML library instead.
//
// The data and stringData sections, most of the file, are only checked
// line by line for values that are not ENC[…] ciphertexts; their keys are
// copied only when a value is in the clear.
func scan(content []byte) (f file, ok bool) {
	var section, sub string
	ann := map[string]string{}
	var age, pgp []string
	sawSOPS := false
	var data dataScan
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
		indent := 0
		for indent < len(line) && line[indent] == ' ' {
			indent++
		}
		if indent == len(line) {
			continue // blank
		}
		switch {
		case indent == 0:
			key, val, found := strings.Cut(string(line), ":")
			if !found {
				return f, false
			}
			section, sub = key, ""
			data = dataScan{section: key}
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
			if !data.line(indent, line[indent:], &f.plaintext) {
				return f, false
			}
		case section == "metadata" && indent == 4:
			key, val, found := strings.Cut(string(line[indent:]), ":")
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
			key, val, found := bytes.Cut(line[indent:], []byte(": "))
			if !found {
				return f, false
			}
			v, ok := scalarBytes(bytes.TrimSpace(val))
			if !ok {
				return f, false
			}
			k := string(key)
			ann[k] = annotationValue(k, v)
		case section == "metadata":
			if indent != 8 {
				return f, false
			}
		case section == "sops" && indent == 4:
			k, _, _ := bytes.Cut(line[indent:], []byte(":"))
			sub = string(k)
		case section == "sops" && (indent == 8 && bytes.HasPrefix(line[indent:], []byte("- ")) || indent == 10):
			// A key entry: "- recipient: …" or, after "- enc: |" and its
			// block, "  recipient: …" at the entry's indent.
			key, val, found := strings.Cut(strings.TrimPrefix(string(line[indent:]), "- "), ":")
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
			// Interned: every file of a repository names the same few
			// recipients, and a record keeps them (not the file's line).
			switch {
			case sub == "age" && key == "recipient":
				age = append(age, unique.Make(v).Value())
			case sub == "pgp" && key == "fp":
				pgp = append(pgp, unique.Make(v).Value())
			}
		}
	}
	f.Metadata.Annotations = ann
	slices.Sort(f.plaintext)
	f.plaintext = slices.Compact(f.plaintext)
	if !sawSOPS {
		return f, true
	}
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

// annotationValue copies an annotation's value out of the file, so a
// record (a pass keeps 10,000) holds the value alone, not the line or the
// file it was read from. The values most records share (issuer, key
// type, reason) are interned: one copy for the whole repository.
func annotationValue(key string, v []byte) string {
	switch key {
	case AnnotationCMIssuerName, AnnotationCMIssuerKind, AnnotationCMIssuerGroup, AnnotationPrivateKey, AnnotationReason:
		return unique.Make(string(v)).Value()
	}
	return string(v)
}

// dataScan follows the lines of one data or stringData section.
type dataScan struct {
	section string
	// last is what the previous entry's value was, which decides what a
	// more-indented line after it means.
	last valueKind
	key  []byte
}

type valueKind int

const (
	valueNone       valueKind = iota // no entry yet
	valueSettled                     // ciphertext or empty: nothing may follow
	valueBlock                       // "|" or ">": following lines are its text
	valuePlaintext                   // a plain value in the clear, already listed
	valueBlockShown                  // a block scalar with text, already listed
)

// line reads one line of the section (text without its indent) and
// appends "<section>.<key>" to plaintext for a value in the clear. It
// reports false for anything the scanner does not handle.
func (d *dataScan) line(indent int, text []byte, plaintext *[]string) bool {
	if text[0] == '#' {
		return true // a comment
	}
	if indent > 4 {
		switch d.last {
		case valueBlock:
			*plaintext = append(*plaintext, d.section+"."+string(d.key))
			d.last = valueBlockShown
			return true
		case valuePlaintext, valueBlockShown:
			return true // more of a value already listed
		}
		return false // a nested value, or a multi-line ciphertext: let YAML decide
	}
	if indent != 4 {
		return false
	}
	i := bytes.IndexByte(text, ':')
	if i <= 0 || !plainKey(text[:i]) || (i+1 < len(text) && text[i+1] != ' ') {
		return false
	}
	key, v := text[:i], bytes.TrimSpace(text[i+1:])
	d.key, d.last = key, valueSettled
	switch {
	case len(v) == 0 || isNull(v) || isCiphertext(v):
		return true
	case v[0] == '|' || v[0] == '>':
		d.last = valueBlock // in the clear if any text follows
		return true
	}
	s, ok := scalarBytes(v)
	if !ok {
		return false
	}
	if len(s) == 0 || isCiphertext(s) {
		return true
	}
	*plaintext = append(*plaintext, d.section+"."+string(key))
	d.last = valuePlaintext
	return true
}

// plainKey accepts the keys sops writes unquoted (tls.key, ca.crt, …).
func plainKey(k []byte) bool {
	for _, c := range k {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return k[0] != '-'
}

func isNull(v []byte) bool {
	switch string(v) {
	case "~", "null", "Null", "NULL":
		return true
	}
	return false
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

// scalarBytes is scalar on a trimmed value, without copying it: data
// values are most of a file.
func scalarBytes(v []byte) ([]byte, bool) {
	if len(v) == 0 {
		return v, true
	}
	switch v[0] {
	case '"':
		if len(v) < 2 || v[len(v)-1] != '"' || bytes.ContainsAny(v[1:len(v)-1], `\"`) {
			return nil, false
		}
		return v[1 : len(v)-1], true
	case '\'':
		if len(v) < 2 || v[len(v)-1] != '\'' || bytes.ContainsRune(v[1:len(v)-1], '\'') {
			return nil, false
		}
		return v[1 : len(v)-1], true
	case '{', '[', '|', '>', '&', '*', '!', '%', '@', '`':
		return nil, false
	}
	if bytes.Contains(v, []byte(" #")) {
		return nil, false
	}
	return v, true
}
