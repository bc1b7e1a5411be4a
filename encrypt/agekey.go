package encrypt

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// openAgeDataKey decrypts a sops data key stored for an age recipient (an
// armored age file holding the 32-byte key), as sops' age key source
// does, with less garbage: age's streaming reader allocates two 64 KiB
// chunk buffers for every file, which for a restore of 10,000 Secrets was
// half of everything allocated and drove most of its collections. The
// ReaderAt form decrypts and authenticates the (single) final chunk into a
// buffer of its own size.
func openAgeDataKey(armored string, identities []age.Identity) ([]byte, error) {
	raw, err := io.ReadAll(armor.NewReader(strings.NewReader(armored)))
	if err != nil {
		return nil, fmt.Errorf("read the age-encrypted data key: %w", err)
	}
	r, size, err := age.DecryptReaderAt(bytes.NewReader(raw), int64(len(raw)), identities...)
	if err != nil {
		return nil, fmt.Errorf("decrypt the data key with age: %w", err)
	}
	key := make([]byte, size)
	if n, err := r.ReadAt(key, 0); int64(n) != size || (err != nil && err != io.EOF) {
		return nil, fmt.Errorf("decrypt the data key with age: read %d of %d bytes: %v", n, size, err)
	}
	return key, nil
}
