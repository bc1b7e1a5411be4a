package reconcile

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

// ruleEnc is fakeEnc with two creation rules: paths of the "bad"
// certificates fall under rule 1, which cannot encrypt; it counts the
// probes encrypted before ordering, by path.
type ruleEnc struct {
	fakeEnc
	mu     sync.Mutex
	probes map[string]int
}

func (e *ruleEnc) RuleIndex(path string) (int, error) {
	if strings.Contains(path, "/bad") {
		return 1, nil
	}
	return 0, nil
}

func (e *ruleEnc) Encrypt(ctx context.Context, path string, plain []byte) ([]byte, error) {
	if strings.Contains(string(plain), "certsync-probe") {
		e.mu.Lock()
		e.probes[path]++
		e.mu.Unlock()
	}
	if rule, _ := e.RuleIndex(path); rule == 1 {
		return nil, errors.New("rule 1 would leave data in plaintext")
	}
	return e.fakeEnc.Encrypt(ctx, path, plain)
}

// TestProbeOncePerRule: before ordering, certsync checks that each result
// can be committed encrypted; with an Encrypter that names its creation
// rules, that takes one probe per rule that passes, while a failing rule
// is still reported path by path.
func TestProbeOncePerRule(t *testing.T) {
	files := map[string]string{"le.yaml": testIssuer}
	for i := range 5 {
		files[fmt.Sprintf("good%d.yaml", i)] = testCert(fmt.Sprintf("good%d", i))
	}
	for i := range 2 {
		files[fmt.Sprintf("bad%d.yaml", i)] = testCert(fmt.Sprintf("bad%d", i))
	}
	enc := &ruleEnc{probes: map[string]int{}}
	ca := newTestCA(t)
	now := t0
	r, err := New(Config{
		Repo:       newMemRepo(files),
		Encryption: func([]byte) (Encrypter, error) { return enc, nil },
		Issuers: func(context.Context, *declared.Issuer, crypto.Signer, issuer.SecretGetter) (issuer.Issuer, error) {
			return ca, nil
		},
		Clock: func() time.Time { return now },
		Agent: "agent-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Reconcile(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Issued) != 5 || ca.orders != 5 {
		t.Fatalf("issued %d with %d orders, want the 5 good ones", len(res.Issued), ca.orders)
	}
	good, bad := 0, 0
	for path, n := range enc.probes {
		if strings.Contains(path, "/bad") {
			bad += n
		} else {
			good += n
		}
	}
	// The account key's path falls under rule 0 too.
	if good != 1 || bad != 2 {
		t.Errorf("probes: %d under the passing rule, %d under the failing one; want 1 and 2 (%v)", good, bad, enc.probes)
	}
	for _, name := range []string{"bad0-tls", "bad1-tls"} {
		found := false
		for _, p := range res.Problems {
			found = found || strings.Contains(p.Error(), name)
		}
		if !found {
			t.Errorf("no problem names %s: %v", name, res.Problems)
		}
	}
}
