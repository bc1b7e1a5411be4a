package encrypt_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	goyaml "go.yaml.in/yaml/v3"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/encrypt"
	"github.com/certsync/certsync/internal/testbed"
)

// secretYAML is a TLS Secret with throwaway, clearly fake key material:
// what matters is that it must never appear in encrypted output.
const secretYAML = `apiVersion: v1
kind: Secret
metadata:
  name: web-tls
  namespace: shop
  annotations:
    certsync.io/serial: 0abc
type: kubernetes.io/tls
data:
  tls.crt: Q0VSVElGSUNBVEUtQllURVM=
  tls.key: UExBSU5URVhULUtFWS1NQVRFUklBTA==
`

type key struct {
	id   *age.X25519Identity
	file string
}

func newKey(t *testing.T) key {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(f, []byte("# test\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return key{id, f}
}

func (k key) recipient() string { return k.id.Recipient().String() }

func sopsConfig(rules ...string) []byte {
	return []byte("creation_rules:\n" + strings.Join(rules, ""))
}

func ruleYAML(pathRegex, recipient, extra string) string {
	return "  - path_regex: " + pathRegex + "\n    age: " + recipient + "\n" + extra
}

func newSOPS(t *testing.T, conf []byte, ids ...key) *encrypt.SOPS {
	t.Helper()
	var text []string
	for _, k := range ids {
		text = append(text, k.id.String())
	}
	s, err := encrypt.New(encrypt.Config{SOPSConfig: conf, AgeIdentities: []byte(strings.Join(text, "\n"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sopsCLI runs the real sops binary with one key file.
func sopsCLI(t *testing.T, k key, args ...string) ([]byte, error) {
	cmd := exec.Command(testbed.Tool(t, "sops"), args...)
	cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE="+k.file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, errors.New(err.Error() + ": " + stderr.String())
	}
	return out, nil
}

func sameYAML(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := goyaml.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := goyaml.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := goyaml.Marshal(x)
	ya, _ := goyaml.Marshal(y)
	return bytes.Equal(xa, ya)
}

func TestEncryptDecryptsWithSOPSCLI(t *testing.T) {
	k := newKey(t)
	s := newSOPS(t, sopsConfig(ruleYAML(`^secrets/.*\.yaml$`, k.recipient(), "")), k)
	path := "secrets/default/shop/web-tls.yaml"
	enc, err := s.Encrypt(context.Background(), path, []byte(secretYAML))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"UExBSU5URVhULUtFWS1NQVRFUklBTA==", "PLAINTEXT-KEY-MATERIAL"} {
		if bytes.Contains(enc, []byte(leak)) {
			t.Fatalf("encrypted output contains %q", leak)
		}
	}
	rec, err := committed.Read(path, enc)
	if err != nil {
		t.Fatalf("metadata must stay readable without a key: %v", err)
	}
	if rec.Serial != "0abc" || len(rec.Recipients) != 1 || rec.Recipients[0] != k.recipient() {
		t.Errorf("plaintext metadata: serial %q recipients %v", rec.Serial, rec.Recipients)
	}
	if !bytes.Contains(enc, []byte("encrypted_regex: ^(data|stringData)$")) || !bytes.Contains(enc, []byte("tls.key: ENC[")) {
		t.Errorf("default encrypted_regex not applied:\n%s", enc)
	}

	f := filepath.Join(t.TempDir(), "web-tls.yaml")
	os.WriteFile(f, enc, 0o600)
	out, err := sopsCLI(t, k, "--decrypt", f)
	if err != nil {
		t.Fatalf("sops CLI cannot decrypt our output: %v", err)
	}
	if !sameYAML(t, out, []byte(secretYAML)) {
		t.Errorf("sops CLI decrypted different content:\n%s", out)
	}
	ours, err := s.Decrypt(context.Background(), path, enc)
	if err != nil || !sameYAML(t, ours, []byte(secretYAML)) {
		t.Fatalf("library round trip: %v\n%s", err, ours)
	}
}

func TestDecryptsSOPSCLIOutput(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	conf := sopsConfig(ruleYAML(`.*\.yaml$`, k.recipient(), "    encrypted_regex: ^(data|stringData)$\n"))
	os.WriteFile(filepath.Join(dir, ".sops.yaml"), conf, 0o600)
	f := filepath.Join(dir, "web.yaml")
	os.WriteFile(f, []byte(secretYAML), 0o600)
	cmd := exec.Command(testbed.Tool(t, "sops"), "--encrypt", "web.yaml")
	cmd.Dir = dir
	enc, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sops --encrypt: %v\n%s", err, enc)
	}
	s := newSOPS(t, conf, k)
	out, err := s.Decrypt(context.Background(), "web.yaml", enc)
	if err != nil || !sameYAML(t, out, []byte(secretYAML)) {
		t.Fatalf("cannot decrypt the CLI's output: %v", err)
	}
}

func TestCreationRules(t *testing.T) {
	eu, us := newKey(t), newKey(t)
	conf := sopsConfig(
		ruleYAML(`^secrets/eu/.*$`, eu.recipient(), ""),
		ruleYAML(`^secrets/us/.*$`, us.recipient(), "    unencrypted_regex: ^(apiVersion|kind|metadata|type)$\n"),
	)
	s := newSOPS(t, conf, eu)
	tests := []struct {
		path    string
		want    string
		regex   string
		wantErr error
	}{
		{"secrets/eu/shop/web-tls.yaml", eu.recipient(), "encrypted_regex: ^(data|stringData)$", nil},
		{"secrets/us/shop/web-tls.yaml", us.recipient(), "unencrypted_regex: ^(apiVersion|kind|metadata|type)$", nil},
		{"secrets/asia/shop/web-tls.yaml", "", "", encrypt.ErrNoRule},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			enc, err := s.Encrypt(context.Background(), tt.path, []byte(secretYAML))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.path) {
					t.Errorf("error does not name the path: %v", err)
				}
				return
			}
			got, _ := s.Recipients(tt.path)
			rec, _ := committed.Read(tt.path, enc)
			if len(got) != 1 || got[0] != tt.want || len(rec.Recipients) != 1 || rec.Recipients[0] != tt.want {
				t.Errorf("rule recipients %v, file recipients %v, want %s", got, rec.Recipients, tt.want)
			}
			if !bytes.Contains(enc, []byte(tt.regex)) {
				t.Errorf("want %q in metadata", tt.regex)
			}
		})
	}
}

func TestDecryptErrors(t *testing.T) {
	k, other := newKey(t), newKey(t)
	conf := sopsConfig(ruleYAML(`.*`, k.recipient(), ""))
	path := "secrets/default/shop/web-tls.yaml"
	enc, err := newSOPS(t, conf, k).Encrypt(context.Background(), path, []byte(secretYAML))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content []byte
		ids     []key
		want    error
	}{
		{"wrong identity", enc, []key{other}, encrypt.ErrNoKey},
		{"no identity", enc, nil, encrypt.ErrNoKey},
		{"tampered metadata", bytes.Replace(enc, []byte("0abc"), []byte("0abd"), 1), []key{k}, encrypt.ErrTampered},
		{"tampered ciphertext", tamperValue(t, enc), []key{k}, encrypt.ErrTampered},
		{"not SOPS", []byte(secretYAML), []key{k}, encrypt.ErrTampered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := newSOPS(t, conf, tt.ids...).Decrypt(context.Background(), path, tt.content)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "UExBSU5") || out != nil {
				t.Errorf("error must name the path and not leak content: %v", err)
			}
		})
	}
}

// tamperValue flips one character inside the tls.key ciphertext.
func tamperValue(t *testing.T, enc []byte) []byte {
	i := bytes.Index(enc, []byte("tls.key: ENC[AES256_GCM,data:"))
	if i < 0 {
		t.Fatal("no encrypted tls.key")
	}
	out := bytes.Clone(enc)
	j := i + len("tls.key: ENC[AES256_GCM,data:") + 2
	if out[j] == 'A' {
		out[j] = 'B'
	} else {
		out[j] = 'A'
	}
	return out
}

func TestIdentitiesFromEnv(t *testing.T) {
	k := newKey(t)
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".config", "sops", "age"), 0o700)
	os.WriteFile(filepath.Join(home, ".config", "sops", "age", "keys.txt"), []byte("default-file"), 0o600)
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SOPS_AGE_KEY": "inline"}, "inline"},
		{map[string]string{"SOPS_AGE_KEY_FILE": k.file}, k.id.String()},
		{map[string]string{"HOME": home}, "default-file"},
		{map[string]string{}, ""},
	} {
		got, err := encrypt.IdentitiesFromEnv(func(n string) string { return tt.env[n] })
		if err != nil || !strings.Contains(string(got), tt.want) {
			t.Errorf("env %v: got %q, %v", tt.env, got, err)
		}
	}
}

func BenchmarkEncrypt(b *testing.B) {
	id, _ := age.GenerateX25519Identity()
	s, err := encrypt.New(encrypt.Config{SOPSConfig: []byte("creation_rules:\n  - age: " + id.Recipient().String() + "\n")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		if _, err := s.Encrypt(context.Background(), "secrets/a.yaml", []byte(secretYAML)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	id, _ := age.GenerateX25519Identity()
	s, err := encrypt.New(encrypt.Config{SOPSConfig: []byte("creation_rules:\n  - age: " + id.Recipient().String() + "\n"), AgeIdentities: []byte(id.String())})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	enc, err := s.Encrypt(context.Background(), "secrets/a.yaml", []byte(secretYAML))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Decrypt(context.Background(), "secrets/a.yaml", enc); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRefusesPlaintext: a creation rule that leaves data alone makes
// Encrypt fail with encrypt.ErrPlaintext naming the keys and the rule, never the
// values.
func TestRefusesPlaintext(t *testing.T) {
	k := newKey(t)
	const path = "secrets/default/shop/a.yaml"
	withStringData := strings.Replace(secretYAML, "type: kubernetes.io/tls\n", "type: kubernetes.io/tls\nstringData:\n  password: UExBSU5URVhULVBBU1M=\n", 1)
	tests := []struct {
		name, extra, content string
		want                 string // "" when the output is fine
	}{
		{"encrypted_regex matching nothing", "    encrypted_regex: ^nothing$\n", secretYAML,
			"encrypt secrets/default/shop/a.yaml: refusing to write data.tls.crt, data.tls.key in plaintext: .sops.yaml creation_rules[0] (path_regex ^secrets/) sets encrypted_regex ^nothing$; data and stringData must be encrypted — fix the rule"},
		{"unencrypted_regex on data", "    unencrypted_regex: ^data$\n", withStringData,
			"refusing to write data.tls.crt, data.tls.key in plaintext: .sops.yaml creation_rules[0] (path_regex ^secrets/) sets unencrypted_regex ^data$"},
		{"unencrypted_suffix matching a key", "    unencrypted_suffix: .key\n", secretYAML,
			"refusing to write data.tls.key in plaintext: .sops.yaml creation_rules[0] (path_regex ^secrets/) sets unencrypted_suffix .key"},
		{"encrypted_suffix matching nothing", "    encrypted_suffix: _secret\n", withStringData,
			"refusing to write data.tls.crt, data.tls.key, stringData.password in plaintext"},
		{"metadata left readable", "    unencrypted_regex: ^(apiVersion|kind|metadata|type)$\n", withStringData, ""},
		{"default", "", withStringData, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSOPS(t, sopsConfig(ruleYAML(`^secrets/`, k.recipient(), tt.extra)), k)
			out, err := s.Encrypt(context.Background(), path, []byte(tt.content))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if keys, _ := committed.Exposed(path, out); len(keys) != 0 {
					t.Fatalf("exposed %v", keys)
				}
				return
			}
			if !errors.Is(err, encrypt.ErrPlaintext) || !strings.Contains(err.Error(), tt.want) || out != nil {
				t.Fatalf("err = %v\nwant encrypt.ErrPlaintext with %q", err, tt.want)
			}
			for _, leak := range []string{"UExBSU5", "Q0VSVElG"} {
				if strings.Contains(err.Error(), leak) {
					t.Fatalf("error quotes a value: %v", err)
				}
			}
		})
	}
}

// cliDocument has the shapes of a manifest a person or Flux user writes.
const cliDocument = `apiVersion: v1
kind: Secret
metadata:
  name: web-tls
  namespace: shop
  labels: {app: web}
  annotations:
    cert-manager.io/common-name: web.example.org
  finalizers: [one, two]
type: kubernetes.io/tls
data:
  tls.crt: Q0VSVElGSUNBVEU=
  tls.key: S0VZ
stringData:
  nested:
    - {port: 8443, weight: 0.5, on: true}
`

// TestSOPSCLIFilesTakeTheOwnWay: files the real sops CLI writes (a Flux
// user's, a person's edit) are read and walked by this package, with the
// same result as sops' own store and walk.
func TestSOPSCLIFilesTakeTheOwnWay(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	s, err := encrypt.New(encrypt.Config{AgeIdentities: []byte(id.String())})
	if err != nil {
		t.Fatal(err)
	}
	for _, rule := range []string{
		"encrypted_regex: ^(data|stringData)$",
		"unencrypted_regex: ^(apiVersion|kind|metadata|type)$",
		"encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: true",
	} {
		t.Run(rule, func(t *testing.T) {
			dir := t.TempDir()
			conf := "creation_rules:\n  - path_regex: .*\\.yaml$\n    age: " + id.Recipient().String() + "\n    " + rule + "\n"
			if err := os.WriteFile(filepath.Join(dir, ".sops.yaml"), []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(cliDocument), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(testbed.Tool(t, "sops"), "--encrypt", "web.yaml")
			cmd.Dir = dir
			file, err := cmd.Output()
			if err != nil {
				t.Fatalf("sops --encrypt: %v", err)
			}
			if !encrypt.ReadsOwnWay(t, s, file) {
				t.Fatal("sops' walk was needed")
			}
			got, err := s.Decrypt(context.Background(), "web.yaml", file)
			if err != nil || !sameYAML(t, got, []byte(cliDocument)) {
				t.Fatalf("Decrypt: %v\n%s", err, got)
			}
		})
	}
}
