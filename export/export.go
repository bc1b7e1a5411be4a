// Package export writes a certificate as PEM files, for what runs outside
// Kubernetes: a VM's web server, a load balancer, an appliance.
//
// The files are the ones cert-manager's Secret holds, plus its
// CombinedPEM output: tls.crt (the chain), tls.key (the private key,
// mode 0600), ca.crt when the issuer gives one, and tls-combined.pem (the
// key followed by the chain, as HAProxy and others want it). Each file is
// written to a temporary name and renamed, so a reader never sees half a
// key, and a file is rewritten only when its content changed.
package export

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
)

// File names, as in the Secret and in cert-manager's CombinedPEM.
const (
	CertFile     = corev1.TLSCertKey
	KeyFile      = corev1.TLSPrivateKeyKey
	CAFile       = "ca.crt"
	CombinedFile = "tls-combined.pem"
)

// Write writes the files of a TLS Secret into dir (created 0700 if
// missing) and reports whether any of them changed.
func Write(dir string, s *corev1.Secret) (changed bool, err error) {
	cert, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	if len(cert) == 0 || len(key) == 0 {
		return false, fmt.Errorf("Secret %s/%s has no %s or %s", s.Namespace, s.Name, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("create %s: %w", dir, err)
	}
	combined := append(append(bytes.TrimRight(bytes.Clone(key), "\n"), '\n'), cert...)
	files := []file{
		{KeyFile, key, 0o600},
		{CombinedFile, combined, 0o600},
		{CertFile, cert, 0o644},
	}
	if ca := s.Data[CAFile]; len(ca) > 0 {
		files = append(files, file{CAFile, ca, 0o644})
	}
	for _, f := range files {
		c, err := writeFile(filepath.Join(dir, f.name), f.content, f.mode)
		if err != nil {
			return changed, err
		}
		changed = changed || c
	}
	return changed, nil
}

type file struct {
	name    string
	content []byte
	mode    fs.FileMode
}

// writeFile replaces path with content unless it already holds it.
func writeFile(path string, content []byte, mode fs.FileMode) (bool, error) {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, content) {
		return false, os.Chmod(path, mode)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}
