package export

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestWrite(t *testing.T) {
	// Not real PEM: Write copies bytes and never parses them.
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-tls"}, Data: map[string][]byte{
		corev1.TLSCertKey: []byte("CERT\nINTERMEDIATE\n"), corev1.TLSPrivateKeyKey: []byte("KEY\n"), "ca.crt": []byte("ROOT\n")}}
	dir := filepath.Join(t.TempDir(), "out")
	changed, err := Write(dir, s)
	if err != nil || !changed {
		t.Fatalf("first write: changed %v, err %v", changed, err)
	}
	for _, tt := range []struct {
		name, content string
		mode          os.FileMode
	}{
		{KeyFile, "KEY\n", 0o600},
		{CombinedFile, "KEY\nCERT\nINTERMEDIATE\n", 0o600},
		{CertFile, "CERT\nINTERMEDIATE\n", 0o644},
		{CAFile, "ROOT\n", 0o644},
	} {
		p := filepath.Join(dir, tt.name)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != tt.content {
			t.Errorf("%s = %q (%v), want %q", tt.name, b, err, tt.content)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != tt.mode {
			t.Errorf("%s mode %v, want %v", tt.name, fi.Mode().Perm(), tt.mode)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	if changed, err := Write(dir, s); err != nil || changed {
		t.Fatalf("same content written again: changed %v, err %v", changed, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	s.Data[corev1.TLSPrivateKeyKey] = nil
	if _, err := Write(dir, s); err == nil || !strings.Contains(err.Error(), "shop/web-tls") {
		t.Fatalf("a Secret without a key must be refused naming it: %v", err)
	}
}
