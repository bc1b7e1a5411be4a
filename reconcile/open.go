package reconcile

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/render"
)

// openSecret decrypts a committed Secret file into its Secret, the short
// way when enc is a DocumentDecrypter. Decryption errors come back as they
// are (they name the file; ErrNoKey among them); a file that holds no
// Secret is render's error with the path.
func openSecret(ctx context.Context, enc Encrypter, path string, content []byte) (*corev1.Secret, error) {
	var s *corev1.Secret
	if d, ok := enc.(DocumentDecrypter); ok {
		doc, err := d.DecryptDocument(ctx, path, content)
		if err != nil {
			return nil, err
		}
		s, err = render.FromDocument(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return s, nil
	}
	plain, err := enc.Decrypt(ctx, path, content)
	if err != nil {
		return nil, err
	}
	if s, err = render.Parse(plain); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
