package gitsrc

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"golang.org/x/crypto/ssh"
)

// A CommitSigner signs certsync's commits so `git verify-commit` can tell
// them from anyone else's: the audit trail of issuance then rests on a key,
// not on an author name anybody can type.
type CommitSigner interface {
	// Sign returns the armored signature of a commit's encoded bytes, as
	// Git stores it in the commit's gpgsig header.
	Sign(commit []byte) (string, error)
}

// NewCommitSigner reads a signing key: an armored OpenPGP private key, or
// an OpenSSH private key (Git's gpg.format=ssh). passphrase unlocks an
// encrypted key; nil for none. Errors never quote the key.
func NewCommitSigner(key, passphrase []byte) (CommitSigner, error) {
	switch {
	case bytes.Contains(key, []byte("PGP PRIVATE KEY BLOCK")):
		return newOpenPGPSigner(key, passphrase)
	case bytes.Contains(key, []byte("OPENSSH PRIVATE KEY")):
		return newSSHSigner(key, passphrase)
	}
	return nil, errors.New("signing key: not an armored OpenPGP private key nor an OpenSSH private key")
}

type openPGPSigner struct{ entity *openpgp.Entity }

func newOpenPGPSigner(key, passphrase []byte) (CommitSigner, error) {
	entities, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(key))
	if err != nil {
		return nil, fmt.Errorf("signing key: read OpenPGP key: %w", err)
	}
	if len(entities) != 1 || entities[0].PrivateKey == nil {
		return nil, errors.New("signing key: want exactly one OpenPGP private key")
	}
	e := entities[0]
	if e.PrivateKey.Encrypted {
		if passphrase == nil {
			return nil, errors.New("signing key: the OpenPGP key is encrypted; give its passphrase")
		}
		if err := e.DecryptPrivateKeys(passphrase); err != nil {
			return nil, fmt.Errorf("signing key: unlock the OpenPGP key: %w", err)
		}
	}
	return openPGPSigner{e}, nil
}

func (s openPGPSigner) Sign(commit []byte) (string, error) {
	var b strings.Builder
	if err := openpgp.ArmoredDetachSign(&b, s.entity, bytes.NewReader(commit), nil); err != nil {
		return "", fmt.Errorf("sign commit (OpenPGP): %w", err)
	}
	return b.String(), nil
}

// sshSigner writes SSH signatures (OpenSSH's PROTOCOL.sshsig) in the "git"
// namespace, which `git verify-commit` checks with gpg.format=ssh and an
// allowed-signers file.
type sshSigner struct{ signer ssh.Signer }

func newSSHSigner(key, passphrase []byte) (CommitSigner, error) {
	var signer ssh.Signer
	var err error
	if passphrase != nil {
		signer, err = ssh.ParsePrivateKeyWithPassphrase(key, passphrase)
	} else {
		signer, err = ssh.ParsePrivateKey(key)
	}
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, errors.New("signing key: the SSH key is encrypted; give its passphrase")
	}
	if err != nil {
		return nil, fmt.Errorf("signing key: read SSH key: %w", err)
	}
	return sshSigner{signer}, nil
}

const (
	sshsigMagic     = "SSHSIG"
	sshsigNamespace = "git"
	sshsigHash      = "sha512"
)

func (s sshSigner) Sign(commit []byte) (string, error) {
	digest := sha512.Sum512(commit)
	signed := append([]byte(sshsigMagic), ssh.Marshal(struct {
		Namespace, Reserved, Hash string
		Digest                    []byte
	}{sshsigNamespace, "", sshsigHash, digest[:]})...)
	var sig *ssh.Signature
	var err error
	if as, ok := s.signer.(ssh.AlgorithmSigner); ok && s.signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		sig, err = as.SignWithAlgorithm(rand.Reader, signed, ssh.KeyAlgoRSASHA512) // ssh-rsa (SHA-1) is refused by OpenSSH
	} else {
		sig, err = s.signer.Sign(rand.Reader, signed)
	}
	if err != nil {
		return "", fmt.Errorf("sign commit (SSH): %w", err)
	}
	blob := append([]byte(sshsigMagic), ssh.Marshal(struct {
		Version                   uint32
		PublicKey                 []byte
		Namespace, Reserved, Hash string
		Signature                 []byte
	}{1, s.signer.PublicKey().Marshal(), sshsigNamespace, "", sshsigHash, ssh.Marshal(sig)})...)
	enc := base64.StdEncoding.EncodeToString(blob)
	var b strings.Builder
	b.WriteString("-----BEGIN SSH SIGNATURE-----\n")
	for len(enc) > 70 {
		b.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	b.WriteString(enc + "\n-----END SSH SIGNATURE-----\n")
	return b.String(), nil
}

var (
	_ CommitSigner = openPGPSigner{}
	_ CommitSigner = sshSigner{}
)
