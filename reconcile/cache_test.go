package reconcile

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
)

// plainSecret is a committed Secret the parse step reads (in the clear:
// parsing never decrypts).
func plainSecret(name, serial string) string {
	return `apiVersion: v1
kind: Secret
metadata:
    annotations:
        certsync.io/certificate: ns/` + name + `
        certsync.io/serial: "` + serial + `"
    name: ` + name + `-tls
    namespace: ns
type: kubernetes.io/tls
`
}

// parseTree runs the parse step of a pass over every file of tree, as
// readState does: records under secrets/, declarations elsewhere.
func parseTree(t *testing.T, c *parseCache, tree Tree) (g *generation, declPaths []string, parts []declared.Set, fresh int) {
	t.Helper()
	var recordPaths []string
	for _, p := range tree.Paths() {
		if strings.HasPrefix(p, committed.SecretsDir) {
			recordPaths = append(recordPaths, p)
		} else {
			declPaths = append(declPaths, p)
		}
	}
	g = c.next(tree)
	parts, fresh, err := g.parse(context.Background(), committed.Layout{}, recordPaths, declPaths)
	if err != nil {
		t.Fatal(err)
	}
	c.store(g)
	return g, declPaths, parts, fresh
}

// The parse cache reuses a file's record, and what verification found of
// it, only while its blob is the same; a changed file is read anew with
// nothing carried over, a removed one is forgotten, and a tree without
// blob ids is read whole every time.
func TestParseCacheReusesByBlob(t *testing.T) {
	a, b := committed.SecretPath("default", "ns", "a-tls"), committed.SecretPath("default", "ns", "b-tls")
	bad := committed.SecretPath("default", "ns", "bad-tls")
	files := map[string][]byte{
		"le.yaml": []byte(testIssuer), "a.yaml": []byte(testCert("a")),
		a: []byte(plainSecret("a", "01")), b: []byte(plainSecret("b", "02")),
	}
	var c parseCache
	for i, step := range []struct {
		name   string
		change func(map[string][]byte)
		hashed bool
		fresh  int
		// serials are the records read, by path; unreadable the files
		// that could not be; verified the files whose verification (set
		// on a after the first step) is remembered.
		serials    map[string]string
		unreadable []string
		verified   []string
	}{
		{name: "first pass", hashed: true, fresh: 2, serials: map[string]string{a: "01", b: "02"}, verified: []string{a}},
		{name: "same blobs", hashed: true, fresh: 0, serials: map[string]string{a: "01", b: "02"}, verified: []string{a}},
		{name: "b renewed", change: func(f map[string][]byte) { f[b] = []byte(plainSecret("b", "03")) },
			hashed: true, fresh: 1, serials: map[string]string{a: "01", b: "03"}, verified: []string{a}},
		{name: "a renewed", change: func(f map[string][]byte) { f[a] = []byte(plainSecret("a", "04")) },
			hashed: true, fresh: 1, serials: map[string]string{a: "04", b: "03"}},
		{name: "b removed, a file that is no Secret added", change: func(f map[string][]byte) {
			delete(f, b)
			f[bad] = []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad-tls, namespace: ns}\n")
		}, hashed: true, fresh: 1, serials: map[string]string{a: "04"}, unreadable: []string{bad}},
		{name: "no blob ids", hashed: false, fresh: 2, serials: map[string]string{a: "04"}, unreadable: []string{bad}},
	} {
		if step.change != nil {
			step.change(files)
		}
		var tree Tree = &memTree{id: step.name, files: maps.Clone(files)}
		if step.hashed {
			tree = hashedTree{tree.(*memTree)}
		}
		g, _, _, fresh := parseTree(t, &c, tree)
		if i == 0 {
			st := g.files[a]
			st.checked, st.verified = true, true
			g.setState(a, st)
		}
		if fresh != step.fresh {
			t.Errorf("%s: %d files read anew, want %d", step.name, fresh, step.fresh)
		}
		got := map[string]string{}
		for path, rec := range g.committed {
			got[path] = rec.Serial
		}
		if !maps.Equal(got, step.serials) {
			t.Errorf("%s: records %v, want %v", step.name, got, step.serials)
		}
		if len(g.files) != len(step.serials)+len(step.unreadable) {
			t.Errorf("%s: %d files known, want %d", step.name, len(g.files), len(step.serials)+len(step.unreadable))
		}
		for _, path := range step.unreadable {
			if _, st := g.record(path); st.err == nil {
				t.Errorf("%s: %s read, want it unreadable", step.name, path)
			}
		}
		for path := range step.serials {
			_, st := g.record(path)
			if want := contains(step.verified, path); st.verified != want || st.checked != want {
				t.Errorf("%s: %s checked %v verified %v, want %v", step.name, path, st.checked, st.verified, want)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// The cached declarations share the pass's combined set when Combine kept
// every Certificate, so a pass holds one copy of each; when it dropped
// one (a duplicate), the cache keeps its own and the next pass still
// combines the same set.
func TestCachedDeclarationsShareTheCombinedSet(t *testing.T) {
	for _, tt := range []struct {
		name   string
		files  map[string]string
		shared bool
		certs  int // in the combined set
	}{
		{name: "every Certificate kept", files: map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a"), "b.yaml": testCert("b") + "---\n" + testCert("c")},
			shared: true, certs: 3},
		{name: "a duplicate dropped", files: map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a"), "b.yaml": testCert("a") + "---\n" + testCert("c")},
			shared: false, certs: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string][]byte{}
			for p, s := range tt.files {
				files[p] = []byte(s)
			}
			var c parseCache
			var keys []string
			for pass := range 2 {
				g, declPaths, parts, _ := parseTree(t, &c, hashedTree{&memTree{id: "c0", files: files}})
				set := declared.Combine(parts)
				g.shareCertificates(declPaths, parts, set.Certificates)
				if len(set.Certificates) != tt.certs {
					t.Fatalf("pass %d: %d certificates, want %d", pass, len(set.Certificates), tt.certs)
				}
				var got []string
				for i := range set.Certificates {
					got = append(got, set.Certificates[i].Key())
				}
				if pass == 0 {
					keys = got
				} else if strings.Join(got, ",") != strings.Join(keys, ",") {
					t.Errorf("pass %d combined %v, the first %v", pass, got, keys)
				}
				for _, path := range declPaths {
					cached := g.decls[path].set.Certificates
					if len(cached) == 0 {
						continue
					}
					inCombined := false
					for i := range set.Certificates {
						inCombined = inCombined || &set.Certificates[i] == &cached[0]
					}
					if inCombined != tt.shared {
						t.Errorf("pass %d: %s shares the combined set: %v, want %v", pass, path, inCombined, tt.shared)
					}
					if tt.shared && cap(cached) != len(cached) {
						t.Errorf("pass %d: %s: cap %d, want %d: an append would write over the next file's", pass, path, cap(cached), len(cached))
					}
				}
			}
		})
	}
}

// An error reading a declaration stops the parse; the cache keeps the
// last generation that was whole.
func TestParseErrorKeepsLastGeneration(t *testing.T) {
	var c parseCache
	first, _, _, _ := parseTree(t, &c, hashedTree{&memTree{id: "c0", files: map[string][]byte{"a.yaml": []byte(testCert("a"))}}})
	g := c.next(brokenTree{hashedTree{&memTree{id: "c1", files: map[string][]byte{"a.yaml": []byte(testCert("b"))}}}})
	if _, _, err := g.parse(context.Background(), committed.Layout{}, nil, []string{"a.yaml"}); err == nil {
		t.Fatal("parse of an unreadable declaration did not fail")
	}
	if c.last != first {
		t.Error("a failed parse replaced the cache")
	}
}

// brokenTree fails every read.
type brokenTree struct{ hashedTree }

func (brokenTree) ReadFile(string) ([]byte, error) { return nil, errors.New("disk on fire") }
