package reconcile

import (
	"context"
	"fmt"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/render"
)

// keystorePasswords resolves the passwords of the keystores c creates
// (spec.keystores): the literal password, or the key of a Secret in the
// Certificate's namespace, read as issuers read theirs (secrets: a
// SOPS-encrypted Secret in the repository, or the cluster when the
// operator allows it), as cert-manager reads it from the Certificate's
// namespace. Errors name the Secret and key, never a value; an empty
// value wraps issuer.ErrPermanent, as does a missing Secret.
func keystorePasswords(ctx context.Context, secrets issuer.SecretGetter, c *declared.Certificate) (render.Passwords, error) {
	var out render.Passwords
	read := func(kind string, pw declared.KeystorePassword) ([]byte, error) {
		if pw.SecretRef.Name == "" {
			return []byte(pw.Literal), nil
		}
		ref := pw.SecretRef
		v, err := secrets.SecretKey(ctx, c.Namespace, ref.Name, ref.Key)
		if err != nil {
			return nil, fmt.Errorf("%s keystore password: %w", kind, err)
		}
		if len(v) == 0 {
			return nil, fmt.Errorf("%w: %s keystore password Secret %s/%s contains no data for key %q", issuer.ErrPermanent, kind, c.Namespace, ref.Name, ref.Key)
		}
		return v, nil
	}
	var err error
	if k := c.Keystores.PKCS12; k != nil && k.Create {
		if out.PKCS12, err = read("PKCS12", k.Password); err != nil {
			return out, err
		}
	}
	if k := c.Keystores.JKS; k != nil && k.Create {
		if out.JKS, err = read("JKS", k.Password); err != nil {
			return out, err
		}
	}
	return out, nil
}
