package examples_test

// The files certsync commits are meant to be applied by Flux or Argo CD
// instead of (or as well as) by certsync itself. This test proves that the
// two consumers get from them exactly the Secrets certsync applied to the
// API server, starting from the examples a user would copy:
//
//   - examples/flux is a repository in Flux's layout (clusters/<name>/),
//     with a Flux Kustomization pointing at secrets/<name>/;
//   - examples/argocd is what the same repository needs for Argo CD: an
//     Application and a kustomization whose generator is KSOPS.
//
// One real certsync pass (the binary, built here) issues the example's two
// selfSigned Certificates, commits them and applies them to a real API
// server; each consumer's view of the committed files is then decrypted
// with the cluster's age key alone and compared with the API server's
// Secrets, which are the truth.
//
// What is real and what is reproduced:
//
//   - kustomize and sops are the real programs (hack/build-tools.sh);
//   - Flux: kustomize-controller's decryptor is an internal package, so its
//     rules are reproduced from its source (fluxcd/kustomize-controller
//     internal/decryptor/decryptor.go and internal/controller's build(),
//     fluxcd/pkg kustomize generator and sourceignore), with the sops
//     library it uses: the artifact drops what .sourceignore names; a folder
//     without a kustomization.yaml gets one listing every .yaml/.yml file;
//     kustomize builds it with no load restrictions and no plugins; every
//     resource with a top-level sops.mac is marshalled to JSON and
//     decrypted as JSON with the age identities from the data keys ending
//     in .agekey of the Kustomization's decryption Secret, without the MAC
//     check (checkSopsMac is off in kustomize-controller);
//   - Argo CD: KSOPS itself is NOT built: the Go module proxy answers 403
//     for every version and commit of github.com/viaduct-ai/kustomize-sops.
//     In its place runs a stand-in with KSOPS's interface and model (this
//     test binary, on PATH as "ksops"): a KRM exec function that reads the
//     example's unchanged generator file from the ResourceList kustomize
//     sends and decrypts each listed file, relative to the kustomization's
//     folder, with the real sops CLI (KSOPS calls the sops library's
//     decrypt.DataWithFormat, which the CLI runs too: keys from
//     SOPS_AGE_KEY_FILE, MAC checked). kustomize build --enable-alpha-plugins
//     --enable-exec is the real one, as Argo CD's repo-server runs it.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/common"
	"github.com/getsops/sops/v3/cmd/sops/formats"
	sopsconfig "github.com/getsops/sops/v3/config"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/certsync/certsync/internal/testbed"
)

const (
	// The placeholder recipients of examples/flux/.sops.yaml, replaced by
	// fresh keys' recipients when the example is copied.
	exampleIssuerRecipient  = "age1dh8kn3qpspgrewt7jkauw43yqn3rryze2rvfz8c5dqwl0maknqdsevz0z6"
	exampleClusterRecipient = "age14nufpq8k8q9vcahnppk8wprtupmk4fxj4fkzulkpa8el0k9mcutsc9eyry"

	// cluster is the example's cluster: clusters/prod-eu, secrets/prod-eu.
	cluster = "prod-eu"

	// ksopsStandInEnv, when set (to the sops CLI's path), makes this test
	// binary the KSOPS stand-in instead of running tests.
	ksopsStandInEnv = "CERTSYNC_TEST_KSOPS_STANDIN_SOPS"

	managedBySelector = "app.kubernetes.io/managed-by=certsync"
)

func TestMain(m *testing.M) {
	if sopsPath := os.Getenv(ksopsStandInEnv); sopsPath != "" {
		if err := ksopsStandIn(sopsPath, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "ksops stand-in: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestFluxAndArgoCDConsumeCommittedSecrets: see the top of this file.
func TestFluxAndArgoCDConsumeCommittedSecrets(t *testing.T) {
	kustomize, sopsCLI := testbed.Tool(t, "kustomize"), testbed.Tool(t, "sops")
	dir := t.TempDir()
	issuerKey, clusterKey := newAgeKey(t, dir, "issuer"), newAgeKey(t, dir, cluster)

	// The repository: examples/flux at its root, examples/argocd as argocd/.
	seed := filepath.Join(dir, "seed")
	recipients := strings.NewReplacer(exampleIssuerRecipient, issuerKey.recipient, exampleClusterRecipient, clusterKey.recipient)
	testbed.CopyTree(t, "flux", seed, recipients)
	testbed.CopyTree(t, "argocd", filepath.Join(seed, "argocd"), recipients)
	bare := filepath.Join(dir, "certs.git")
	git(t, "", "init", "-q", "--bare", "-b", "main", bare)
	git(t, seed, "init", "-q", "-b", "main")
	git(t, seed, "add", "-A")
	git(t, seed, "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "examples/flux and examples/argocd")
	git(t, seed, "push", "-q", bare, "main")

	api := testbed.StartAPIServer(t)
	for _, ns := range []string{"shop", "api", "flux-system"} {
		api.CreateNamespace(t, ns)
	}
	kube, err := kubernetes.NewForConfig(api.Config)
	if err != nil {
		t.Fatalf("client for the API server: %v", err)
	}

	// One real pass: issue, commit, push, apply.
	certsync := buildCertsync(t, dir)
	run(t, exec.Command(certsync, "reconcile", "--repo", bare, "--branch", "main", "--cluster", cluster,
		"--kubeconfig", api.Kubeconfig, "--cache-dir", filepath.Join(dir, "cache"),
		"--age-key-file", issuerKey.file, "--log-level", "warn"), nil)
	checkout := filepath.Join(dir, "checkout")
	git(t, "", "clone", "-q", "--branch", "main", bare, checkout)

	live := map[string]corev1.Secret{}
	list, err := kube.CoreV1().Secrets("").List(t.Context(), metav1.ListOptions{LabelSelector: managedBySelector})
	if err != nil {
		t.Fatalf("list certsync's Secrets in the API server: %v", err)
	}
	for _, s := range list.Items {
		live[s.Namespace+"/"+s.Name] = s
	}
	if want := []string{"api/api-tls", "shop/web-tls"}; !slices.Equal(sortedKeys(live), want) {
		t.Fatalf("certsync applied %v, want %v: the example's Certificates changed, or the pass failed", sortedKeys(live), want)
	}

	t.Run("committed files keep what Flux reads in plaintext", func(t *testing.T) {
		files := committedFiles(t, checkout)
		if len(files) != len(live) {
			t.Fatalf("secrets/%s/ holds %v, the cluster %v", cluster, files, sortedKeys(live))
		}
		for _, rel := range files {
			checkPlaintextMetadata(t, checkout, rel, clusterKey.recipient)
		}
	})

	t.Run("Flux kustomize-controller", func(t *testing.T) {
		artifact := sourceArtifact(t, checkout)

		// What the flux-system Kustomization applies for this cluster:
		// the example's Kustomization, and no cert-manager kinds.
		var ks map[string]any
		for _, obj := range fluxBuild(t, kustomize, artifact, "clusters/"+cluster) {
			if obj["kind"] == "Kustomization" && obj["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1" {
				ks = obj
				continue
			}
			t.Errorf("Flux would apply %s %s from clusters/%s: a cluster without its CRD refuses the whole batch (see .sourceignore)",
				obj["apiVersion"], obj["kind"], cluster)
		}
		if ks == nil {
			t.Fatalf("clusters/%s builds to no kustomize.toolkit.fluxcd.io/v1 Kustomization", cluster)
		}
		path, _ := nested(ks, "spec", "path").(string)
		provider, _ := nested(ks, "spec", "decryption", "provider").(string)
		secretRef, _ := nested(ks, "spec", "decryption", "secretRef", "name").(string)
		namespace, _ := nested(ks, "metadata", "namespace").(string)
		if filepath.Clean(path) != "secrets/"+cluster || provider != "sops" || secretRef == "" {
			t.Fatalf("the Flux Kustomization has path %q, decryption provider %q, secretRef %q: want ./secrets/%s, sops and a Secret", path, provider, secretRef, cluster)
		}

		// The decryption Secret, created as the README says
		// (kubectl create secret generic sops-age --from-file=prod-eu.agekey=…),
		// and read back as kustomize-controller reads it.
		keyFile, err := os.ReadFile(clusterKey.file)
		if err != nil {
			t.Fatalf("read the cluster's age key: %v", err)
		}
		ageSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretRef, Namespace: namespace}, Data: map[string][]byte{cluster + ".agekey": keyFile}}
		if _, err := kube.CoreV1().Secrets(namespace).Create(t.Context(), ageSecret, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create the decryption Secret %s/%s: %v", namespace, secretRef, err)
		}
		ids := fluxImportKeys(t, kube, namespace, secretRef)

		var secrets []map[string]any
		for _, obj := range fluxBuild(t, kustomize, artifact, path) {
			if !hasSOPSMac(obj) {
				t.Errorf("%s %v in %s has no sops.mac: Flux would apply it as it is", obj["kind"], nested(obj, "metadata", "name"), path)
				continue
			}
			plain, macOK, err := fluxDecrypt(obj, ids)
			if err != nil {
				t.Errorf("decrypt %v as kustomize-controller does: %v", nested(obj, "metadata", "name"), err)
				continue
			}
			t.Logf("%v: the SOPS MAC still matches after kustomize and the JSON round trip: %v (Flux does not check it)", nested(obj, "metadata", "name"), macOK)
			if _, ok := plain["sops"]; ok {
				t.Errorf("%v still has a sops key after decryption: Flux refuses to apply it", nested(obj, "metadata", "name"))
			}
			secrets = append(secrets, plain)
		}
		compareWithCluster(t, "Flux", secrets, live)
	})

	t.Run("Argo CD with KSOPS (stand-in)", func(t *testing.T) {
		var app struct {
			Kind string
			Spec struct {
				Source struct{ Path string }
			}
		}
		readYAML(t, filepath.Join(checkout, "argocd", "application.yaml"), &app)
		if app.Kind != "Application" || app.Spec.Source.Path == "" {
			t.Fatalf("argocd/application.yaml: kind %q, spec.source.path %q: want an Application with a path", app.Kind, app.Spec.Source.Path)
		}
		bin := filepath.Join(t.TempDir(), "bin")
		self, err := os.Executable()
		if err != nil {
			t.Fatalf("find this test binary for the KSOPS stand-in: %v", err)
		}
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(self, filepath.Join(bin, "ksops")); err != nil {
			t.Fatalf("put the KSOPS stand-in on PATH: %v", err)
		}
		// The repo-server's environment: ksops on PATH, the cluster's key
		// mounted and named by SOPS_AGE_KEY_FILE.
		cmd := exec.Command(kustomize, "build", "--enable-alpha-plugins", "--enable-exec", filepath.Join(checkout, app.Spec.Source.Path))
		out := run(t, cmd, []string{
			"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
			"SOPS_AGE_KEY_FILE=" + clusterKey.file,
			ksopsStandInEnv + "=" + sopsCLI,
		})
		objs, err := decodeObjects(out)
		if err != nil {
			t.Fatalf("kustomize build output: %v\n%s", err, out)
		}
		compareWithCluster(t, "Argo CD (KSOPS)", objs, live)
	})
}

// ageKey is an age identity written to a key file, as age-keygen writes it.
type ageKey struct{ file, recipient string }

func newAgeKey(t *testing.T, dir, name string) ageKey {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatalf("generate the %s age key: %v", name, err)
	}
	file := filepath.Join(dir, name+".agekey")
	if err := os.WriteFile(file, []byte("# "+name+"\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatalf("write the %s age key: %v", name, err)
	}
	return ageKey{file: file, recipient: id.Recipient().String()}
}

// buildCertsync builds the certsync binary from this module, so the pass
// runs as a user runs it.
func buildCertsync(t *testing.T, dir string) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH; it builds certsync for this test: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "certsync")
	cmd := exec.Command(goCmd, "build", "-o", bin, "./cmd/certsync")
	cmd.Dir = root
	run(t, cmd, nil)
	return bin
}

// run runs cmd with extra environment variables (later ones win) and
// returns its standard output, failing the test with both outputs when
// it exits non-zero. CERTSYNC_* variables of the caller are dropped: they
// would configure the certsync under test.
func run(t *testing.T, cmd *exec.Cmd, env []string) []byte {
	t.Helper()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CERTSYNC_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(cmd.Args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(testbed.Git(t), args...)
	cmd.Dir = dir
	run(t, cmd, nil)
}

// committedFiles lists secrets/<cluster>/ of the checkout, relative to it.
func committedFiles(t *testing.T, checkout string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(checkout, "secrets", cluster), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(checkout, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatalf("list what certsync committed for %s: %v", cluster, err)
	}
	return files
}

// checkPlaintextMetadata checks a committed file against what
// kustomize-controller needs to find it (IsEncryptedSecret: apiVersion v1,
// kind Secret, a top-level sops key) and what a cluster key needs to open
// it: apiVersion, kind, type and all of metadata in plaintext, every data
// value encrypted, and the cluster's recipient among the age keys.
func checkPlaintextMetadata(t *testing.T, checkout, rel, clusterRecipient string) {
	t.Helper()
	var f struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Type       string         `json:"type"`
		Metadata   map[string]any `json:"metadata"`
		Data       map[string]any `json:"data"`
		SOPS       struct {
			Mac string `json:"mac"`
			Age []struct {
				Recipient string `json:"recipient"`
			} `json:"age"`
		} `json:"sops"`
	}
	readYAML(t, filepath.Join(checkout, rel), &f)
	parts := strings.Split(strings.TrimSuffix(rel, ".yaml"), "/") // secrets/<cluster>/<ns>/<name>
	if f.APIVersion != "v1" || f.Kind != "Secret" || f.Type != string(corev1.SecretTypeTLS) {
		t.Errorf("%s: apiVersion %q, kind %q, type %q: want v1 Secret kubernetes.io/tls in plaintext", rel, f.APIVersion, f.Kind, f.Type)
	}
	if len(parts) != 4 || f.Metadata["namespace"] != parts[2] || f.Metadata["name"] != parts[3] {
		t.Errorf("%s: metadata names %v/%v", rel, f.Metadata["namespace"], f.Metadata["name"])
	}
	if enc := encryptedValues(f.Metadata); len(enc) > 0 {
		t.Errorf("%s: metadata values encrypted, Flux and reviewers cannot read them: %v", rel, enc)
	}
	if len(f.Data) == 0 {
		t.Errorf("%s: no data", rel)
	}
	for k, v := range f.Data {
		if s, _ := v.(string); !strings.HasPrefix(s, "ENC[AES256_GCM,") {
			t.Errorf("%s: data.%s is not SOPS-encrypted", rel, k)
		}
	}
	var recipients []string
	for _, a := range f.SOPS.Age {
		recipients = append(recipients, a.Recipient)
	}
	if f.SOPS.Mac == "" || !slices.Contains(recipients, clusterRecipient) {
		t.Errorf("%s: sops.mac %q, age recipients %v: want a MAC and the cluster's recipient", rel, f.SOPS.Mac, recipients)
	}
}

// encryptedValues names the values under v that SOPS encrypted.
func encryptedValues(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			for _, p := range encryptedValues(e) {
				out = append(out, strings.TrimSuffix(k+"."+p, "."))
			}
		}
	case []any:
		for i, e := range v {
			for _, p := range encryptedValues(e) {
				out = append(out, strings.TrimSuffix(fmt.Sprintf("%d.%s", i, p), "."))
			}
		}
	case string:
		if strings.HasPrefix(v, "ENC[") {
			out = append(out, "")
		}
	}
	return out
}

// sourceArtifact copies the checkout as Flux's source-controller packs a
// GitRepository's artifact: without what its default patterns and the
// repository's .sourceignore files (at any depth, gitignore syntax scoped
// to their folder) exclude.
func sourceArtifact(t *testing.T, checkout string) string {
	t.Helper()
	var patterns []gitignore.Pattern
	for _, p := range strings.Split(".git/,.gitignore,.gitmodules,.gitattributes,"+
		"*.jpg,*.jpeg,*.gif,*.png,*.wmv,*.flv,*.tar.gz,*.zip,"+
		".github/,.circleci/,.travis.yml,.gitlab-ci.yml,appveyor.yml,.drone.yml,cloudbuild.yaml,codeship-services.yml,codeship-steps.yml,"+
		"**/.goreleaser.yml,**/.sops.yaml,**/.flux.yaml", ",") {
		patterns = append(patterns, gitignore.ParsePattern(p, nil))
	}
	err := filepath.WalkDir(checkout, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.IsDir() || d.Name() != ".sourceignore" {
			return nil
		}
		rel, err := filepath.Rel(checkout, filepath.Dir(p))
		if err != nil {
			return err
		}
		var domain []string
		if rel != "." {
			domain = strings.Split(filepath.ToSlash(rel), "/")
		}
		b, err := os.ReadFile(p)
		for _, line := range strings.Split(string(b), "\n") {
			if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") {
				patterns = append(patterns, gitignore.ParsePattern(s, domain))
			}
		}
		return err
	})
	if err != nil {
		t.Fatalf("read the .sourceignore files: %v", err)
	}
	matcher := gitignore.NewMatcher(patterns)
	artifact := filepath.Join(t.TempDir(), "artifact")
	if err := os.MkdirAll(artifact, 0o755); err != nil {
		t.Fatalf("pack the source artifact: %v", err)
	}
	err = filepath.WalkDir(checkout, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(checkout, p)
		if err != nil || rel == "." {
			return err
		}
		if matcher.Match(strings.Split(filepath.ToSlash(rel), "/"), d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(artifact, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(artifact, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("pack the source artifact: %v", err)
	}
	return artifact
}

var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

func hasKustomization(dir string) bool {
	for _, name := range kustomizationFiles {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && !fi.IsDir() {
			return true
		}
	}
	return false
}

// fluxBuild builds path (relative to the artifact) as kustomize-controller
// does: a folder without a kustomization file gets one whose resources are
// every .yaml/.yml file below it, and every sub-folder that has its own
// kustomization file instead of that folder's files; then kustomize builds
// it with no load restrictions and no plugins.
func fluxBuild(t *testing.T, kustomize, artifact, path string) []map[string]any {
	t.Helper()
	dir := filepath.Join(artifact, filepath.Clean(path))
	if !hasKustomization(dir) {
		var resources []string
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dir {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			if d.IsDir() {
				if hasKustomization(p) {
					resources = append(resources, "./"+filepath.ToSlash(rel))
					return filepath.SkipDir
				}
				return nil
			}
			if ext := filepath.Ext(p); ext == ".yaml" || ext == ".yml" {
				resources = append(resources, "./"+filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("scan %s for manifests: %v", path, err)
		}
		k := map[string]any{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}
		if len(resources) == 0 {
			k = map[string]any{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "_placeholder"}
		}
		b, err := sigsyaml.Marshal(k)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "kustomization.yaml"), b, 0o644)
		}
		if err != nil {
			t.Fatalf("write the generated kustomization of %s: %v", path, err)
		}
	}
	out := run(t, exec.Command(kustomize, "build", "--load-restrictor", "LoadRestrictionsNone", dir), nil)
	objs, err := decodeObjects(out)
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", path, err, out)
	}
	for _, obj := range objs {
		if obj["apiVersion"] == nil || obj["kind"] == nil || nested(obj, "metadata", "name") == nil {
			t.Fatalf("kustomize build %s: an object without apiVersion, kind or name, which Flux refuses: %v", path, obj)
		}
	}
	return objs
}

// fluxImportKeys reads the Kustomization's decryption Secret from the API
// server and imports, as kustomize-controller's ImportKeys does for the
// sops provider, every data entry whose name ends in .agekey.
func fluxImportKeys(t *testing.T, kube kubernetes.Interface, namespace, name string) sopsage.ParsedIdentities {
	t.Helper()
	s, err := kube.CoreV1().Secrets(namespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get the decryption Secret %s/%s: %v", namespace, name, err)
	}
	var ids sopsage.ParsedIdentities
	for key, value := range s.Data {
		if filepath.Ext(key) == ".agekey" {
			if err := ids.Import(string(value)); err != nil {
				t.Fatalf("import %s of %s/%s: %v", key, namespace, name, err)
			}
		}
	}
	if len(ids) == 0 {
		t.Fatalf("the decryption Secret %s/%s has no *.agekey entry", namespace, name)
	}
	return ids
}

func hasSOPSMac(obj map[string]any) bool {
	mac, _ := nested(obj, "sops", "mac").(string)
	return mac != ""
}

// fluxDecrypt is kustomize-controller's DecryptResource for a resource with
// a top-level sops.mac: the resource as JSON, loaded by SOPS's JSON store,
// its data key recovered by an age key service holding the imported
// identities, the tree decrypted and emitted as plain JSON. Like Flux, it
// does not require the MAC to match; macOK says whether it did.
func fluxDecrypt(obj map[string]any, ids sopsage.ParsedIdentities) (plain map[string]any, macOK bool, err error) {
	in, err := json.Marshal(obj)
	if err != nil {
		return nil, false, fmt.Errorf("marshal to JSON: %w", err)
	}
	store := common.StoreForFormat(formats.Json, sopsconfig.NewStoresConfig())
	tree, err := store.LoadEncryptedFile(in)
	if err != nil {
		return nil, false, fmt.Errorf("load encrypted JSON: %w", err)
	}
	key, err := ageDataKey(tree.Metadata, ids)
	if err != nil {
		return nil, false, err
	}
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(key, cipher)
	if err != nil {
		return nil, false, fmt.Errorf("decrypt the sops tree: %w", err)
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format(time.RFC3339))
	macOK = err == nil && stored == mac
	out, err := store.EmitPlainFile(tree.Branches)
	if err != nil {
		return nil, false, fmt.Errorf("emit plain JSON: %w", err)
	}
	if err := json.Unmarshal(out, &plain); err != nil {
		return nil, false, fmt.Errorf("read the decrypted JSON: %w", err)
	}
	return plain, macOK, nil
}

// ageDataKey recovers the data key as Flux's key service does for age:
// each age master key of the file, with the imported identities applied.
func ageDataKey(md sops.Metadata, ids sopsage.ParsedIdentities) ([]byte, error) {
	var errs []error
	for _, group := range md.KeyGroups {
		for _, k := range group {
			mk, ok := k.(*sopsage.MasterKey)
			if !ok {
				continue
			}
			ids.ApplyToMasterKey(mk)
			key, err := mk.Decrypt()
			if err == nil {
				return key, nil
			}
			errs = append(errs, fmt.Errorf("age recipient %s: %w", mk.Recipient, err))
		}
	}
	return nil, fmt.Errorf("cannot get the sops data key with the decryption Secret's age keys: %w", errors.Join(errs...))
}

// compareWithCluster checks that a consumer's Secrets are exactly the API
// server's: the same set, and for each the same type and every data key
// byte for byte; its labels and annotations must be the live ones (the
// cluster may have more: certsync's applier adds its instance label).
func compareWithCluster(t *testing.T, consumer string, objs []map[string]any, live map[string]corev1.Secret) {
	t.Helper()
	seen := map[string]bool{}
	for _, obj := range objs {
		var s corev1.Secret
		b, err := json.Marshal(obj)
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err != nil || s.APIVersion != "v1" || s.Kind != "Secret" {
			t.Errorf("%s produced %v %v (%v): certsync commits only v1 Secrets", consumer, obj["apiVersion"], obj["kind"], err)
			continue
		}
		id := s.Namespace + "/" + s.Name
		l, ok := live[id]
		if !ok {
			t.Errorf("%s produced Secret %s, which certsync did not apply", consumer, id)
			continue
		}
		seen[id] = true
		if s.Type != l.Type {
			t.Errorf("%s: %s has type %q, the cluster %q", consumer, id, s.Type, l.Type)
		}
		if got, want := sortedKeys(s.Data), sortedKeys(l.Data); !slices.Equal(got, want) {
			t.Errorf("%s: %s has data keys %v, the cluster %v", consumer, id, got, want)
		}
		for k, v := range l.Data {
			if got, ok := s.Data[k]; ok && !bytes.Equal(got, v) {
				t.Errorf("%s: %s data %s differs from the cluster's (%d bytes, %d live)", consumer, id, k, len(got), len(v))
			}
		}
		for k, v := range s.Annotations {
			if l.Annotations[k] != v {
				t.Errorf("%s: %s annotation %s = %q, the cluster has %q", consumer, id, k, v, l.Annotations[k])
			}
		}
		for k, v := range s.Labels {
			if l.Labels[k] != v {
				t.Errorf("%s: %s label %s = %q, the cluster has %q", consumer, id, k, v, l.Labels[k])
			}
		}
	}
	for _, id := range sortedKeys(live) {
		if !seen[id] {
			t.Errorf("%s did not produce Secret %s, which is in the cluster", consumer, id)
		}
	}
}

// ksopsStandIn is KSOPS's KRM exec-function mode, for this test only:
// kustomize sends a ResourceList whose items are the generator files
// (kind ksops); each file listed under files is decrypted, relative to
// the working directory kustomize gives (the kustomization's folder), by
// the sops CLI at sopsPath, and the results are returned as the
// ResourceList's items.
func ksopsStandIn(sopsPath string, in io.Reader, out io.Writer) error {
	b, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("read the ResourceList: %w", err)
	}
	var rl struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Files    []string              `json:"files"`
		} `json:"items"`
	}
	if err := sigsyaml.Unmarshal(b, &rl); err != nil {
		return fmt.Errorf("parse the ResourceList: %w", err)
	}
	var items []map[string]any
	for _, gen := range rl.Items {
		if len(gen.Files) == 0 {
			return fmt.Errorf("generator %q: missing the required 'files' key", gen.Metadata.Name)
		}
		for _, file := range gen.Files {
			cmd := exec.Command(sopsPath, "--decrypt", file)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			plain, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("error decrypting file %q: %v: %s", file, err, stderr.String())
			}
			objs, err := decodeObjects(plain)
			if err != nil {
				return fmt.Errorf("decrypted %q: %w", file, err)
			}
			items = append(items, objs...)
		}
	}
	res, err := sigsyaml.Marshal(map[string]any{"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items})
	if err != nil {
		return fmt.Errorf("write the ResourceList: %w", err)
	}
	_, err = out.Write(res)
	return err
}

// decodeObjects reads a stream of YAML documents, skipping empty ones.
func decodeObjects(b []byte) ([]map[string]any, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var objs []map[string]any
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, err
		}
		if obj != nil {
			objs = append(objs, obj)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err == nil {
		err = sigsyaml.Unmarshal(b, v)
	}
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
}

// nested is the value at a path of map keys, or nil.
func nested(obj map[string]any, keys ...string) any {
	var v any = obj
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
