package reconcile

// What a pass keeps of the certificates it has already pushed: a pass
// ordering thousands must not hold their keys, nor grow with them beyond
// the records it reports.

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/render"
)

// keyCluster is an API server in memory that keeps the Secrets it was
// handed and counts those that carried a private key when applied.
type keyCluster struct {
	mu      sync.Mutex
	applied []*corev1.Secret
	withKey int
}

func (c *keyCluster) Observe(context.Context) ([]ObservedSecret, error) { return nil, nil }
func (c *keyCluster) Delete(context.Context, string, string) error      { return nil }
func (c *keyCluster) Apply(_ context.Context, s *corev1.Secret) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(s.Data[corev1.TLSPrivateKeyKey]) > 0 {
		c.withKey++
	}
	c.applied = append(c.applied, s)
	return nil
}

// plainSpy is fakeEnc that keeps every plaintext buffer it was given, to
// check afterwards what the caller left in them.
type plainSpy struct {
	fakeEnc
	mu    sync.Mutex
	plain [][]byte
}

func (e *plainSpy) Encrypt(ctx context.Context, path string, plain []byte) ([]byte, error) {
	e.mu.Lock()
	e.plain = append(e.plain, plain)
	e.mu.Unlock()
	return e.fakeEnc.Encrypt(ctx, path, plain)
}

func TestPushedBatchesKeepNoKeys(t *testing.T) {
	const certs = 7
	files := map[string]string{"le.yaml": testIssuer}
	for i := range certs {
		files[fmt.Sprintf("c%d.yaml", i)] = testCert(fmt.Sprintf("c%d", i))
	}
	repo := newMemRepo(files)
	cluster := &keyCluster{}
	spy := &plainSpy{}
	now := t0
	ca := newTestCA(t)
	r, err := New(Config{
		Repo:       repo,
		Encryption: func([]byte) (Encrypter, error) { return spy, nil },
		Issuers: func(context.Context, *declared.Issuer, crypto.Signer, issuer.SecretGetter) (issuer.Issuer, error) {
			return ca, nil
		},
		Cluster:  cluster,
		Clock:    func() time.Time { return now },
		Agent:    "agent-1",
		Batching: Batching{Size: 2, Interval: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Reconcile(context.Background(), Options{})
	if err != nil || len(res.Problems) > 0 {
		t.Fatalf("pass: %v, problems %v", err, res.Problems)
	}
	if len(res.Issued) != certs || res.Pushes < certs/2 {
		t.Fatalf("issued %d in %d pushes, want %d in batches of 2", len(res.Issued), res.Pushes, certs)
	}

	// Every Secret went to the cluster with its key, and the pass kept
	// none of the keys once its batch was pushed and applied.
	if cluster.withKey != certs || len(cluster.applied) != certs {
		t.Fatalf("applied %d Secrets, %d with a private key; want %d with keys", len(cluster.applied), cluster.withKey, certs)
	}
	for _, s := range cluster.applied {
		for _, k := range keyData {
			if _, ok := s.Data[k]; ok {
				t.Errorf("Secret %s/%s still holds %s after its batch was pushed", s.Namespace, s.Name, k)
			}
		}
		if len(s.Data[corev1.TLSCertKey]) == 0 {
			t.Errorf("Secret %s/%s lost its certificate: only keys are forgotten", s.Namespace, s.Name)
		}
	}
	// The rendered plaintext was wiped once encrypted.
	if len(spy.plain) < certs {
		t.Fatalf("%d encryptions, want at least %d", len(spy.plain), certs)
	}
	for i, plain := range spy.plain {
		if len(bytes.Trim(plain, "\x00")) > 0 {
			t.Errorf("plaintext %d (%d bytes) was left readable after encryption", i, len(plain))
		}
	}

	// The records the pass reports follow every push, the first batch's
	// as well as the last.
	if len(res.Records) != certs {
		t.Errorf("%d records after the pass, want %d", len(res.Records), certs)
	}
	for _, is := range res.Issued {
		if rec, ok := res.Records[is.Path]; !ok || rec.Serial != is.Serial {
			t.Errorf("record of %s: %+v, want serial %s", is.Path, rec.Serial, is.Serial)
		}
	}
}

func TestForgetKeys(t *testing.T) {
	for _, tc := range []struct {
		name     string
		data     map[string][]byte
		wantKept []string
	}{
		{
			name:     "tls.key goes, the certificate and CA stay",
			data:     map[string][]byte{corev1.TLSPrivateKeyKey: []byte("KEY"), corev1.TLSCertKey: []byte("CERT"), "ca.crt": []byte("CA")},
			wantKept: []string{corev1.TLSCertKey, "ca.crt"},
		},
		{
			name: "every output that embeds the key goes, truststores stay",
			data: map[string][]byte{corev1.TLSPrivateKeyKey: []byte("KEY"), render.KeyCombinedPEM: []byte("KEY+CERT"), render.KeyDER: []byte("DER"),
				render.KeyPKCS12: []byte("P12"), render.KeyJKS: []byte("JKS"), render.KeyPKCS12Truststore: []byte("TRUST"), render.KeyJKSTruststore: []byte("TRUST")},
			wantKept: []string{render.KeyPKCS12Truststore, render.KeyJKSTruststore},
		},
		{name: "nothing to forget", data: map[string][]byte{corev1.TLSCertKey: []byte("CERT")}, wantKept: []string{corev1.TLSCertKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held := map[string][]byte{}
			for k, v := range tc.data {
				held[k] = v
			}
			s := &corev1.Secret{Data: tc.data}
			forgetKeys(s)
			if len(s.Data) != len(tc.wantKept) {
				t.Errorf("kept %d entries, want %v", len(s.Data), tc.wantKept)
			}
			for _, k := range tc.wantKept {
				if !bytes.Equal(s.Data[k], held[k]) {
					t.Errorf("%s changed: %q", k, s.Data[k])
				}
			}
			// The bytes themselves are overwritten, not only unreferenced.
			for k, v := range held {
				if _, kept := s.Data[k]; !kept && len(bytes.Trim(v, "\x00")) > 0 {
					t.Errorf("%s was dropped but its bytes still read %q", k, v)
				}
			}
		})
	}
}
