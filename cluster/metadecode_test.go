package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/encoding/protowire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// secretMarker stands for what must never reach an error: the value of
// an annotation certsync does not read (kubectl's last-applied
// configuration can hold a Secret's data).
const secretMarker = "TOP-SECRET-tls.key-bytes"

// sampleItem is a Secret's metadata as the API server lists it: besides
// what certsync reads, labels, foreign annotations, owner references,
// finalizers and two managers' managedFields. bulky adds more of what
// certsync skips.
func sampleItem(i int, bulky bool) metav1.PartialObjectMetadata {
	now := metav1.Unix(1_760_000_000, 0)
	m := metav1.ObjectMeta{
		Name: fmt.Sprintf("web-%d-tls", i), Namespace: "team-" + strconv.Itoa(i%3), UID: types.UID("6f0e3c1a-0000-4000-8000-00000000000" + strconv.Itoa(i%10)),
		ResourceVersion: strconv.Itoa(1000 + i), Generation: 1, CreationTimestamp: now,
		Labels: map[string]string{ManagedByLabel: ManagedByValue, InstanceLabel: testOwner.Instance(), "controller.cert-manager.io/fao": "true"},
		Annotations: map[string]string{
			AppliedHashAnnotation: fmt.Sprintf("%064x", i), OwnerAnnotation: testOwner.String(), "certsync.io/serial": fmt.Sprintf("%02x", i),
			"cert-manager.io/certificate-name": "web", "cert-manager.io/issuer-name": "letsencrypt",
			"kubectl.kubernetes.io/last-applied-configuration": secretMarker,
		},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "u"}},
		Finalizers:      []string{"example.com/keep"},
		ManagedFields: []metav1.ManagedFieldsEntry{
			{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1", Time: &now, FieldsType: "FieldsV1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{"f:tls.crt":{},"f:tls.key":{}},"f:metadata":{"f:annotations":{"f:certsync.io/serial":{}}}}`)}},
			{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &now, FieldsType: "FieldsV1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{"f:team":{}}}}`)}},
		},
	}
	if bulky {
		for j := range 20 {
			m.Annotations[fmt.Sprintf("example.com/note-%d", j)] = strings.Repeat("n", 200)
			m.Labels[fmt.Sprintf("example.com/label-%d", j)] = "x"
			m.ManagedFields = append(m.ManagedFields, metav1.ManagedFieldsEntry{Manager: fmt.Sprintf("tool-%d", j), Operation: metav1.ManagedFieldsOperationUpdate,
				APIVersion: "v1", Time: &now, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: bytes.Repeat([]byte(`{"f:x":{}}`), 50)}})
		}
	}
	return metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"}, ObjectMeta: m}
}

func sampleList(n int, cont string, bulky bool) *metav1.PartialObjectMetadataList {
	list := &metav1.PartialObjectMetadataList{ListMeta: metav1.ListMeta{ResourceVersion: "4242", Continue: cont}}
	for i := range n {
		list.Items = append(list.Items, sampleItem(i, bulky))
	}
	return list
}

// encodePage is list as the API server sends it: the protobuf envelope
// around a runtime.Unknown of the given kind (what client-go's protobuf
// serializer writes), with client-go's generated code.
func encodePage(t testing.TB, list *metav1.PartialObjectMetadataList, kind string) []byte {
	t.Helper()
	raw, err := list.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	unk := runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: metaListVersion, Kind: kind}, Raw: raw}
	b, err := unk.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(protobufMagic), b...)
}

// decodeGenerated is page decoded by client-go's generated code, as
// Observe used to report it.
func decodeGenerated(page []byte) ([]listedMeta, string, error) {
	if !bytes.HasPrefix(page, []byte(protobufMagic)) {
		return nil, "", errors.New("no envelope")
	}
	var unk runtime.Unknown
	if err := unk.Unmarshal(page[len(protobufMagic):]); err != nil {
		return nil, "", err
	}
	var list metav1.PartialObjectMetadataList
	if err := list.Unmarshal(unk.Raw); err != nil {
		return nil, "", err
	}
	var out []listedMeta
	for i := range list.Items {
		out = append(out, listedOf(&list.Items[i]))
	}
	return out, list.Continue, nil
}

func sameListed(t *testing.T, what string, got, want []listedMeta) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d items, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.namespace != w.namespace || g.name != w.name || g.resourceVersion != w.resourceVersion || !maps.Equal(g.annotations, w.annotations) {
			t.Fatalf("%s: item %d is %+v, want %+v", what, i, g, w)
		}
	}
}

// TestDecodePage: what the hand decoder reads of a page is what the
// generated code reads of it (namespace, name, resourceVersion, certsync's
// annotations, the continue token), page after page with one decoder.
func TestDecodePage(t *testing.T) {
	var d metaDecoder
	for _, tc := range []struct {
		name string
		list *metav1.PartialObjectMetadataList
	}{
		{"a page with more to come", sampleList(7, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDI0Mn0", false)},
		{"the last page, bulky", sampleList(5, "", true)},
		{"no Secrets", sampleList(0, "", false)},
		{"a Secret without annotations", &metav1.PartialObjectMetadataList{Items: []metav1.PartialObjectMetadata{
			{ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: "shop", ResourceVersion: "7"}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := encodePage(t, tc.list, metaListKind)
			got, cont, err := d.decodePage(page, nil)
			if err != nil {
				t.Fatal(err)
			}
			want, wantCont, err := decodeGenerated(page)
			if err != nil {
				t.Fatal(err)
			}
			sameListed(t, tc.name, got, want)
			if cont != wantCont {
				t.Errorf("continue %q, want %q", cont, wantCont)
			}
			for _, m := range got {
				if m.annotations == nil {
					t.Errorf("%s: nil annotations, want an empty map as before", m.name)
				}
				if _, ok := m.annotations["cert-manager.io/certificate-name"]; ok {
					t.Errorf("%s: kept a foreign annotation", m.name)
				}
			}
		})
	}
}

// TestDecodePageRejects: a page that is not a well-formed metadata list
// is an error that says what was being decoded, and never quotes what
// the page holds.
func TestDecodePageRejects(t *testing.T) {
	good := encodePage(t, sampleList(3, "next", false), metaListKind)
	var d metaDecoder
	for _, tc := range []struct {
		name, want string
		page       []byte
	}{
		{"JSON", "no Kubernetes protobuf envelope", []byte(`{"kind":"PartialObjectMetadataList"}`)},
		{"empty", "no Kubernetes protobuf envelope", nil},
		{"whole Secrets", `holds a "SecretList"`, encodePage(t, sampleList(1, "", false), "SecretList")},
		{"truncated", "unexpected EOF", good[:len(good)-10]},
		{"an item without a name", "items[0]: no name", encodePage(t, &metav1.PartialObjectMetadataList{Items: []metav1.PartialObjectMetadata{
			{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", ResourceVersion: "1"}}}}, metaListKind)},
		{"an item without a resourceVersion", "items[0]: no resourceVersion", encodePage(t, &metav1.PartialObjectMetadataList{Items: []metav1.PartialObjectMetadata{
			{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "shop"}}}}, metaListKind)},
		{"a name that is a number", "items[0]: metadata: name: wire type 0", envelope(t,
			protowire.AppendTag(nil, 2, protowire.BytesType), message(
				field1(1, message(
					protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7),
				)),
			))},
		{"an annotation key that is a number", "items[0]: metadata: annotations key: wire type 0", envelope(t,
			protowire.AppendTag(nil, 2, protowire.BytesType), message(
				field1(1, message(
					field1(1, []byte("a")), field1(3, []byte("shop")), field1(6, []byte("1")),
					field1(12, message(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7))),
				)),
			))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := d.decodePage(tc.page, nil)
			if err == nil || !errors.Is(err, errMetaList) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
	// Cut anywhere, the page is refused or read as fewer Secrets; it never
	// panics, and no error quotes an annotation value. (Its last 4 bytes
	// are the envelope's empty contentEncoding and contentType: cut there,
	// the list is whole.)
	for n := range len(good) {
		items, _, err := d.decodePage(good[:n], nil)
		if err == nil && len(items) >= 3 && n < len(good)-4 {
			t.Fatalf("a page cut at %d of %d bytes read as whole", n, len(good))
		}
		if err != nil && strings.Contains(err.Error(), secretMarker) {
			t.Fatalf("cut at %d: the error quotes an annotation: %v", n, err)
		}
	}
}

// field1 is a length-delimited field.
func field1(num protowire.Number, val []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), val)
}

func message(fields ...[]byte) []byte { return bytes.Join(fields, nil) }

// envelope wraps the list fields given (a tag, then its value) in the
// protobuf envelope of a PartialObjectMetadataList.
func envelope(t *testing.T, tag, val []byte) []byte {
	t.Helper()
	raw := append(tag, protowire.AppendVarint(nil, uint64(len(val)))...)
	raw = append(raw, val...)
	unk := runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: metaListVersion, Kind: metaListKind}, Raw: raw}
	b, err := unk.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(protobufMagic), b...)
}

// TestDecodePageSkipsWithoutAllocating: what certsync does not read
// (managedFields, labels, foreign annotations) costs no allocation; a
// Secret costs its strings (one allocation) and its annotation map.
func TestDecodePageSkipsWithoutAllocating(t *testing.T) {
	const n = 50
	allocs := func(bulky bool) float64 {
		page := encodePage(t, sampleList(n, "next", bulky), metaListKind)
		var d metaDecoder
		items := make([]listedMeta, 0, n)
		return testing.AllocsPerRun(20, func() {
			if _, _, err := d.decodePage(page, items[:0]); err != nil {
				t.Fatal(err)
			}
		})
	}
	lean, bulky := allocs(false), allocs(true)
	if bulky != lean {
		t.Errorf("a page with 20× the managedFields, labels and foreign annotations made %.0f allocations, the lean one %.0f: skipping allocates", bulky, lean)
	}
	// Per Secret: its strings, its annotation map (header and group); per
	// page: the continue token.
	if lean > 3*n+1 {
		t.Errorf("%.0f allocations for %d Secrets, want at most 3 each (its strings, its annotation map) and 1 per page", lean, n)
	}
}

// TestReadPage: a page is read whole whatever the Content-Length says,
// into the caller's buffer when it is large enough.
func TestReadPage(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 10_000) // 160 KB
	for _, tc := range []struct {
		name   string
		size   int64
		buf    []byte
		reuses bool
	}{
		{"Content-Length", int64(len(body)), nil, false},
		{"no Content-Length (gzip)", -1, nil, false},
		{"a Content-Length too small", 10, nil, false},
		{"a Content-Length too large", int64(len(body)) * 3, nil, false},
		{"a large enough buffer", int64(len(body)), make([]byte, 5, len(body)+1), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readPage(iotest.HalfReader(bytes.NewReader(body)), tc.buf, tc.size)
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("read %d bytes (%v), want the %d of the body", len(got), err, len(body))
			}
			if reused := tc.buf != nil && &got[0] == &tc.buf[:1][0]; reused != tc.reuses {
				t.Errorf("buffer reused: %v, want %v", reused, tc.reuses)
			}
		})
	}
	if _, err := readPage(iotest.ErrReader(io.ErrUnexpectedEOF), nil, -1); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a failed read: %v", err)
	}
}

// FuzzDecodePage: no input makes the decoder panic; what it accepts is a
// plausible list (every Secret named, in a namespace, at a
// resourceVersion, with certsync's annotations only) and, when the
// generated code reads the same bytes, the same list.
func FuzzDecodePage(f *testing.F) {
	f.Add(encodePage(f, sampleList(3, "next", false), metaListKind))
	f.Add(encodePage(f, sampleList(1, "", true), metaListKind))
	f.Add(encodePage(f, sampleList(0, "", false), metaListKind))
	f.Add([]byte(protobufMagic))
	f.Add(encodePage(f, &metav1.PartialObjectMetadataList{ListMeta: metav1.ListMeta{Continue: "c"}, Items: []metav1.PartialObjectMetadata{
		{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "b", ResourceVersion: "1", Annotations: map[string]string{OwnerAnnotation: "o", "x/y": "z"}}}}}, metaListKind))
	f.Fuzz(func(t *testing.T, page []byte) {
		var d metaDecoder
		got, cont, err := d.decodePage(page, nil)
		if err != nil {
			if !errors.Is(err, errMetaList) {
				t.Fatalf("error %v does not say it is the list", err)
			}
			return
		}
		for i, m := range got {
			if m.namespace == "" || m.name == "" || m.resourceVersion == "" {
				t.Fatalf("item %d accepted without namespace, name or resourceVersion: %+v", i, m)
			}
			for k := range m.annotations {
				if !strings.HasPrefix(k, ownAnnotationTag) {
					t.Fatalf("item %d keeps annotation %q", i, k)
				}
			}
		}
		want, wantCont, err := decodeGenerated(page)
		if err != nil {
			return // the generated code is stricter about fields certsync skips
		}
		sameListed(t, "fuzzed page", got, want)
		if cont != wantCont {
			t.Fatalf("continue %q, generated code %q", cont, wantCont)
		}
	})
}
