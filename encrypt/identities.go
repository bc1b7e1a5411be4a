package encrypt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// IdentitiesFromEnv finds age identities where sops looks for them:
// SOPS_AGE_KEY (the key itself), SOPS_AGE_KEY_FILE, then
// $XDG_CONFIG_HOME/sops/age/keys.txt (~/.config/… by default). None found
// is not an error: planning and committing need no key; decryption then
// fails with ErrNoKey naming the file. getenv is os.Getenv in main.
func IdentitiesFromEnv(getenv func(string) string) ([]byte, error) {
	if k := getenv("SOPS_AGE_KEY"); k != "" {
		return []byte(k), nil
	}
	if f := getenv("SOPS_AGE_KEY_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read SOPS_AGE_KEY_FILE: %w", err)
		}
		return b, nil
	}
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return nil, nil
		}
		dir = filepath.Join(home, ".config")
	}
	b, err := os.ReadFile(filepath.Join(dir, "sops", "age", "keys.txt"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read age keys: %w", err)
	}
	return b, nil
}
