package pki

import (
	"encoding/pem"
	"strings"
	"testing"

	"github.com/certsync/certsync/declared"
)

func TestKeys(t *testing.T) {
	tests := []struct {
		spec     declared.KeySpec
		pemType  string
		wantSpec string
	}{
		{declared.KeySpec{Algorithm: declared.RSA, Size: 2048, Encoding: "PKCS1"}, "RSA PRIVATE KEY", "RSA-2048"},
		{declared.KeySpec{Algorithm: declared.RSA, Size: 3072, Encoding: "PKCS8"}, "PRIVATE KEY", "RSA-3072"},
		{declared.KeySpec{Algorithm: declared.ECDSA, Size: 256, Encoding: "PKCS1"}, "EC PRIVATE KEY", "ECDSA-256"},
		{declared.KeySpec{Algorithm: declared.ECDSA, Size: 384, Encoding: "PKCS8"}, "PRIVATE KEY", "ECDSA-384"},
		{declared.KeySpec{Algorithm: declared.Ed25519, Encoding: "PKCS1"}, "PRIVATE KEY", "Ed25519"},
	}
	for _, tt := range tests {
		t.Run(tt.wantSpec+"/"+tt.spec.Encoding, func(t *testing.T) {
			key, err := GenerateKey(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			pemBytes, err := MarshalKey(key, tt.spec.Encoding)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(pemBytes), "-----BEGIN "+tt.pemType+"-----") {
				t.Errorf("PEM type: %.40s", pemBytes)
			}
			back, err := ParseKey(pemBytes)
			if err != nil {
				t.Fatal(err)
			}
			if got := KeySpecOf(back.Public()); got != tt.wantSpec || got != tt.spec.String() {
				t.Errorf("spec %s, want %s", got, tt.wantSpec)
			}
			c := &declared.Certificate{CommonName: "a.example.com", DNSNames: []string{"a.example.com", "b.example.com"}}
			csr, err := CSR(c, key)
			if err != nil {
				t.Fatal(err)
			}
			if csr.Subject.CommonName != "a.example.com" || len(csr.DNSNames) != 2 || csr.CheckSignature() != nil {
				t.Errorf("CSR: %+v", csr.Subject)
			}
		})
	}
}

func TestParseKeyErrorsDoNotQuote(t *testing.T) {
	// A PEM block of the right type around bytes that are no key.
	garbage := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("SECRETSECRET")})
	_, err := ParseKey(garbage)
	if err == nil || strings.Contains(err.Error(), "U0VDUkVU") || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("err = %v", err)
	}
}
