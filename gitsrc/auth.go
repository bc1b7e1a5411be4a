package gitsrc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Auth holds Git credentials.
type Auth struct {
	// Username and Password authenticate HTTPS (a token goes in Password).
	Username, Password string
	// SSHKey is a PEM private key for ssh:// URLs; SSHKeyPassphrase
	// opens an encrypted one.
	SSHKey           []byte
	SSHKeyPassphrase string
	// KnownHosts is the content of a known_hosts file. Host keys are
	// verified strictly: an unknown or changed key is refused.
	KnownHosts []byte
	// InsecureIgnoreHostKey skips host key verification (tests only).
	InsecureIgnoreHostKey bool
}

// method picks the transport auth for the URL. known_hosts is written next
// to the local repository because x/crypto's parser reads files.
func (a Auth) method(rawURL, dir string) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return nil, fmt.Errorf("repository URL %s: %w", redact(rawURL), err)
	}
	switch ep.Protocol {
	case "http", "https":
		if a.Password == "" {
			return nil, nil
		}
		user := a.Username
		if user == "" {
			user = "certsync"
		}
		return &githttp.BasicAuth{Username: user, Password: a.Password}, nil
	case "ssh":
		if len(a.SSHKey) == 0 {
			return nil, errors.New("ssh:// repository needs a private key (--git-ssh-key-file)")
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeys(user, a.SSHKey, a.SSHKeyPassphrase)
		if err != nil {
			return nil, fmt.Errorf("SSH private key: cannot parse it (%s)", sshKeyProblem(err))
		}
		if a.InsecureIgnoreHostKey {
			keys.HostKeyCallback = ssh.InsecureIgnoreHostKey()
			return keys, nil
		}
		cb, err := a.hostKeyCallback(dir)
		if err != nil {
			return nil, err
		}
		keys.HostKeyCallback = cb
		return keys, nil
	}
	return nil, nil // file:// and local paths need no credentials
}

func sshKeyProblem(err error) string {
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return "it is encrypted: set CERTSYNC_GIT_SSH_KEY_PASSPHRASE"
	}
	return "not an OpenSSH or PEM private key"
}

// hostKeyCallback verifies host keys against KnownHosts and explains a
// refusal: which host, which key it offered, what to do.
func (a Auth) hostKeyCallback(dir string) (ssh.HostKeyCallback, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f := filepath.Join(dir, "certsync_known_hosts")
	if err := os.WriteFile(f, a.KnownHosts, 0o600); err != nil {
		return nil, fmt.Errorf("write known_hosts: %w", err)
	}
	check, err := knownhosts.New(f)
	if err != nil {
		return nil, fmt.Errorf("parse known_hosts: %w", err)
	}
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := check(host, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			fp := ssh.FingerprintSHA256(key)
			if len(ke.Want) == 0 {
				return fmt.Errorf("SSH host %s is not in known_hosts (it offered %s key %s): add it with `ssh-keyscan -p PORT HOST >> known_hosts` after checking the fingerprint, and pass --git-known-hosts-file", host, key.Type(), fp)
			}
			return fmt.Errorf("SSH host key of %s CHANGED (it offered %s key %s, known_hosts has another): refusing to connect; if the server's key really changed, update known_hosts", host, key.Type(), fp)
		}
		return err
	}, nil
}
