package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// docDecrypter "decrypts" a plaintext manifest into its values, or fails
// with err.
type docDecrypter struct{ err error }

func (d docDecrypter) Encrypt(context.Context, string, []byte) ([]byte, error) { return nil, nil }
func (d docDecrypter) Decrypt(context.Context, string, []byte) ([]byte, error) {
	return nil, errors.New("the long way was taken")
}
func (d docDecrypter) DecryptDocument(_ context.Context, _ string, b []byte) (map[string]any, error) {
	if d.err != nil {
		return nil, d.err
	}
	var doc map[string]any
	err := yaml.Unmarshal(b, &doc)
	return doc, err
}

func TestOpenSecret(t *testing.T) {
	const secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: web-tls, namespace: shop}\ntype: kubernetes.io/tls\ndata: {tls.key: S0VZ}\n"
	const path = "secrets/default/shop/web-tls.yaml"
	s, err := openSecret(context.Background(), docDecrypter{}, path, []byte(secret))
	if err != nil || s.Name != "web-tls" || string(s.Data["tls.key"]) != "KEY" {
		t.Fatalf("openSecret: %+v, %v", s, err)
	}
	if _, err := openSecret(context.Background(), docDecrypter{err: ErrNoKey}, path, []byte(secret)); !errors.Is(err, ErrNoKey) {
		t.Fatalf("a missing key must stay ErrNoKey: %v", err)
	}
	if _, err := openSecret(context.Background(), docDecrypter{}, path, []byte(strings.Replace(secret, "kind: Secret", "kind: ConfigMap", 1))); err == nil || !strings.HasPrefix(err.Error(), path+": ") {
		t.Fatalf("a file holding no Secret: %v", err)
	}
}
