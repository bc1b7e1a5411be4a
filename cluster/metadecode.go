package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// A page of a metadata list of 500 Secrets is a few megabytes, mostly
// managedFields and annotations certsync never reads; client-go's
// generated code turns all of it into Go values. metaDecoder reads the
// page in place instead and copies out only what Observe reports.
//
// The wire format, with the field numbers of k8s.io/apimachinery v0.37.2:
//
//	the envelope: "k8s\x00", then a runtime.Unknown (pkg/runtime/generated.proto)
//	Unknown                   typeMeta = 1 (TypeMeta), raw = 2, contentEncoding = 3, contentType = 4
//	TypeMeta                  apiVersion = 1, kind = 2
//	raw is a PartialObjectMetadataList (pkg/apis/meta/v1/generated.proto)
//	PartialObjectMetadataList metadata = 1 (ListMeta), items = 2 (PartialObjectMetadata)
//	ListMeta                  selfLink = 1, resourceVersion = 2, continue = 3, remainingItemCount = 4
//	PartialObjectMetadata     metadata = 1 (ObjectMeta)
//	ObjectMeta                name = 1, namespace = 3, resourceVersion = 6, labels = 11,
//	                          annotations = 12, managedFields = 17, …
//	map<string, string>       a repeated entry message: key = 1, value = 2
//
// Fields are read as protobuf defines them: any order, unknown ones
// skipped, the last of a repeated scalar wins, a repeated message merges.
// A known field with another wire type is an error, as in the generated
// code: guessing would be a misreading.
const (
	protobufMagic    = "k8s\x00"
	metaListKind     = "PartialObjectMetadataList"
	metaListVersion  = "meta.k8s.io/v1"
	ownAnnotationTag = "certsync.io/"
)

// listedMeta is what Observe needs of one listed Secret.
type listedMeta struct {
	namespace, name, resourceVersion string
	// annotations are certsync's own (certsync.io/…).
	annotations map[string]string
}

// metaDecoder decodes the pages of one list. Not safe for concurrent use.
type metaDecoder struct {
	// interned: the strings every Secret repeats (namespaces, annotation
	// keys, the owner), looked up without allocating.
	interned map[string]string
	item     itemViews // scratch for the item being decoded
}

// itemViews are an item's fields as views into the page.
type itemViews struct {
	name, namespace, resourceVersion []byte
	own                              [][2][]byte // certsync.io annotations: key, value
}

// errMetaList prefixes what decoding a page reports.
var errMetaList = errors.New("malformed Secret metadata list")

// decodePage appends the Secrets of page (a whole response body) to items
// and returns them with the list's continue token. The strings it returns
// do not share memory with page, which the caller reuses.
func (d *metaDecoder) decodePage(page []byte, items []listedMeta) ([]listedMeta, string, error) {
	if !bytes.HasPrefix(page, []byte(protobufMagic)) {
		return items, "", fmt.Errorf("%w: no Kubernetes protobuf envelope", errMetaList)
	}
	raw, err := unknownRaw(page[len(protobufMagic):])
	if err != nil {
		return items, "", fmt.Errorf("%w: envelope: %w", errMetaList, err)
	}
	var cont []byte
	for n := 0; len(raw) > 0; {
		f, rest, err := nextField(raw)
		if err != nil {
			return items, "", fmt.Errorf("%w: list: %w", errMetaList, err)
		}
		raw = rest
		switch f.num {
		case 1:
			if cont, err = listContinue(f, cont); err != nil {
				return items, "", fmt.Errorf("%w: list metadata: %w", errMetaList, err)
			}
		case 2:
			if err := f.want("items"); err != nil {
				return items, "", fmt.Errorf("%w: %w", errMetaList, err)
			}
			item, err := d.decodeItem(f.val)
			if err != nil {
				return items, "", fmt.Errorf("%w: items[%d]: %w", errMetaList, n, err)
			}
			items = append(items, item)
			n++
		}
	}
	return items, string(cont), nil
}

// unknownRaw is the raw object of a runtime.Unknown, checked to be a
// PartialObjectMetadataList: a server that ignored the Accept header's
// "as=" would send whole Secrets, which must not pass for metadata.
func unknownRaw(b []byte) ([]byte, error) {
	var raw, kind, apiVersion []byte
	for len(b) > 0 {
		f, rest, err := nextField(b)
		if err != nil {
			return nil, err
		}
		b = rest
		switch f.num {
		case 1:
			if kind, apiVersion, err = typeMeta(f, kind, apiVersion); err != nil {
				return nil, err
			}
		case 2:
			if err := f.want("raw"); err != nil {
				return nil, err
			}
			raw = f.val
		case 3:
			if err := f.want("contentEncoding"); err != nil {
				return nil, err
			}
			if len(f.val) > 0 {
				return nil, errors.New("contentEncoding is set: the object is encoded further, which the API server never does")
			}
		}
	}
	if string(kind) != metaListKind || string(apiVersion) != metaListVersion {
		return nil, fmt.Errorf("holds a %.40q of %.40q, want a %s of %s", kind, apiVersion, metaListKind, metaListVersion)
	}
	return raw, nil
}

// typeMeta merges the TypeMeta f into kind and apiVersion.
func typeMeta(f field, kind, apiVersion []byte) ([]byte, []byte, error) {
	if err := f.want("typeMeta"); err != nil {
		return nil, nil, err
	}
	for b := f.val; len(b) > 0; {
		g, rest, err := nextField(b)
		if err != nil {
			return nil, nil, fmt.Errorf("typeMeta: %w", err)
		}
		b = rest
		switch g.num {
		case 1:
			if err := g.want("typeMeta.apiVersion"); err != nil {
				return nil, nil, err
			}
			apiVersion = g.val
		case 2:
			if err := g.want("typeMeta.kind"); err != nil {
				return nil, nil, err
			}
			kind = g.val
		}
	}
	return kind, apiVersion, nil
}

// listContinue merges the ListMeta f into the continue token cont.
func listContinue(f field, cont []byte) ([]byte, error) {
	if err := f.want("metadata"); err != nil {
		return nil, err
	}
	for b := f.val; len(b) > 0; {
		g, rest, err := nextField(b)
		if err != nil {
			return nil, err
		}
		b = rest
		if g.num == 3 {
			if err := g.want("continue"); err != nil {
				return nil, err
			}
			cont = g.val
		}
	}
	return cont, nil
}

// decodeItem reads one PartialObjectMetadata.
func (d *metaDecoder) decodeItem(b []byte) (listedMeta, error) {
	v := &d.item
	*v = itemViews{own: v.own[:0]}
	for len(b) > 0 {
		f, rest, err := nextField(b)
		if err != nil {
			return listedMeta{}, err
		}
		b = rest
		if f.num != 1 {
			continue
		}
		if err := f.want("metadata"); err != nil {
			return listedMeta{}, err
		}
		if err := v.objectMeta(f.val); err != nil {
			return listedMeta{}, fmt.Errorf("metadata: %w", err)
		}
	}
	switch {
	case len(v.name) == 0:
		return listedMeta{}, errors.New("no name")
	case len(v.namespace) == 0:
		return listedMeta{}, errors.New("no namespace")
	case len(v.resourceVersion) == 0:
		return listedMeta{}, errors.New("no resourceVersion")
	}
	return d.copyOut(v), nil
}

// objectMeta merges the ObjectMeta b into v, skipping everything else
// (managedFields above all) without looking into it.
func (v *itemViews) objectMeta(b []byte) error {
	for len(b) > 0 {
		f, rest, err := nextField(b)
		if err != nil {
			return err
		}
		b = rest
		switch f.num {
		case 1:
			err = f.want("name")
			v.name = f.val
		case 3:
			err = f.want("namespace")
			v.namespace = f.val
		case 6:
			err = f.want("resourceVersion")
			v.resourceVersion = f.val
		case 12:
			err = v.annotation(f)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// annotation keeps the map entry f when its key is certsync's.
func (v *itemViews) annotation(f field) error {
	if err := f.want("annotations"); err != nil {
		return err
	}
	var key, value []byte
	for b := f.val; len(b) > 0; {
		g, rest, err := nextField(b)
		if err != nil {
			return fmt.Errorf("annotations: %w", err)
		}
		b = rest
		switch g.num {
		case 1:
			err = g.want("annotations key")
			key = g.val
		case 2:
			err = g.want("annotations value")
			value = g.val
		}
		if err != nil {
			return err
		}
	}
	if bytes.HasPrefix(key, []byte(ownAnnotationTag)) {
		v.own = append(v.own, [2][]byte{key, value})
	}
	return nil
}

// copyOut makes v's listedMeta: the namespace, annotation keys and owner
// interned, the name, resourceVersion and other annotation values copied
// into one allocation (they live and die together, in one Observed).
func (d *metaDecoder) copyOut(v *itemViews) listedMeta {
	size := len(v.name) + len(v.resourceVersion)
	for _, kv := range v.own {
		if string(kv[0]) != OwnerAnnotation {
			size += len(kv[1])
		}
	}
	var sb strings.Builder
	sb.Grow(size)
	sb.Write(v.name)
	sb.Write(v.resourceVersion)
	for _, kv := range v.own {
		if string(kv[0]) != OwnerAnnotation {
			sb.Write(kv[1])
		}
	}
	s := sb.String()
	m := listedMeta{
		namespace:       d.intern(v.namespace),
		name:            s[:len(v.name)],
		resourceVersion: s[len(v.name) : len(v.name)+len(v.resourceVersion)],
		annotations:     make(map[string]string, len(v.own)),
	}
	s = s[len(v.name)+len(v.resourceVersion):]
	for _, kv := range v.own {
		key := d.intern(kv[0])
		if key == OwnerAnnotation {
			m.annotations[key] = d.intern(kv[1])
			continue
		}
		m.annotations[key], s = s[:len(kv[1])], s[len(kv[1]):]
	}
	return m
}

// intern is the canonical copy of b; a string seen before in this list
// costs no allocation.
func (d *metaDecoder) intern(b []byte) string {
	if s, ok := d.interned[string(b)]; ok {
		return s
	}
	if d.interned == nil {
		d.interned = make(map[string]string)
	}
	s := intern(string(b))
	d.interned[s] = s
	return s
}

// field is one field of a protobuf message; val holds the value of a
// length-delimited one (string, bytes, message).
type field struct {
	num protowire.Number
	typ protowire.Type
	val []byte
}

// want checks that f, named name in errors, is length-delimited.
func (f field) want(name string) error {
	if f.typ != protowire.BytesType {
		return fmt.Errorf("%s: wire type %d, want %d (length-delimited)", name, f.typ, protowire.BytesType)
	}
	return nil
}

// nextField consumes the first field of b.
func nextField(b []byte) (field, []byte, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return field{}, nil, protowire.ParseError(n)
	}
	b = b[n:]
	if typ == protowire.BytesType {
		val, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return field{}, nil, fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		return field{num: num, typ: typ, val: val}, b[n:], nil
	}
	if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
		return field{}, nil, fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
	}
	return field{num: num, typ: typ}, b[n:], nil
}
