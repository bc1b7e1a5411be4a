package testbed

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// SSHSigningKey writes an OpenSSH private key for priv (an ed25519 or RSA
// private key made by the test) and the allowed-signers file with which
// `git -c gpg.format=ssh -c gpg.ssh.allowedSignersFile=FILE verify-commit`
// checks commits signed with it. Keys are made at run time: no private
// key is ever committed.
func SSHSigningKey(t TB, dir string, priv any) (keyPEM []byte, allowedSigners string) {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	allowedSigners = filepath.Join(dir, "allowed_signers")
	line := `certsync@localhost namespaces="git" ` + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + "\n"
	if err := os.WriteFile(allowedSigners, []byte(line), 0o600); err != nil {
		t.Fatalf("allowed signers: %v", err)
	}
	return pem.EncodeToMemory(block), allowedSigners
}
