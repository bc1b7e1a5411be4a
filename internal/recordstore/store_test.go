package recordstore

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/reconcile"
)

func sample() reconcile.StoredRecords {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	return reconcile.StoredRecords{Folder: "secrets/{cluster}", Blobs: map[string]reconcile.BlobID{
		"secrets/default/ns/a-tls.yaml": {1, 2, 3},
		"secrets/default/ns/b-tls.yaml": {4},
	}, Records: map[string]committed.Certificate{
		"secrets/default/ns/a-tls.yaml": {
			Path: "secrets/default/ns/a-tls.yaml", Cluster: "default", Namespace: "ns", SecretName: "a-tls",
			Certificate: "ns/a", CommonName: "a.example", DNSNames: []string{"a.example", "www.a.example"},
			IssuerName: "le", IssuerKind: "ClusterIssuer", PrivateKey: "ECDSA-256", Serial: "03e8",
			NotBefore: at, NotAfter: at.Add(90 * 24 * time.Hour), IssuedAt: at,
			Recipients: []string{"age1example"}, Source: "certificates/a.yaml", Encrypted: true,
		},
		"secrets/default/ns/b-tls.yaml": {Path: "secrets/default/ns/b-tls.yaml", Serial: "01"},
	}}
}

// TestRoundTrip: what is saved loads back the same, with its folder.
func TestRoundTrip(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "certsync_records"))
	if got, err := s.Load(context.Background()); err != nil || got.Records != nil || got.Folder != "" {
		t.Fatalf("missing file: %+v %v; want nothing, no error", got, err)
	}
	want := sample()
	if err := s.Save(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loaded %+v, want %+v", got, want)
	}
	if entries, _ := os.ReadDir(filepath.Dir(s.path)); len(entries) != 1 {
		t.Errorf("files left: %v, want only the store", entries)
	}
}

// TestRefuses: a damaged file, or one another build wrote, gives an
// error, never records.
func TestRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string)
		build  string
	}{
		{name: "a byte changed", damage: func(p string) {
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 1
			os.WriteFile(p, b, 0o600)
		}},
		{name: "truncated", damage: func(p string) {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-40], 0o600)
		}},
		{name: "empty", damage: func(p string) { os.WriteFile(p, nil, 0o600) }},
		{name: "another build", build: "go-build-id:other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "certsync_records")
			if err := New(path).Save(context.Background(), sample()); err != nil {
				t.Fatal(err)
			}
			if tc.damage != nil {
				tc.damage(path)
			}
			s := New(path)
			if tc.build != "" {
				s.build = func() (string, error) { return tc.build, nil }
			}
			if got, err := s.Load(context.Background()); err == nil || got.Records != nil {
				t.Errorf("loaded %d records, err %v; want an error", len(got.Records), err)
			}
		})
	}
}

// TestRunningBuild: the build is named by the executable's Go build ID.
func TestRunningBuild(t *testing.T) {
	b, err := runningBuild()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < len("go-build-id:")+20 || b[:len("go-build-id:")] != "go-build-id:" {
		t.Errorf("build %q, want the Go build ID of this ELF test binary", b)
	}
}
