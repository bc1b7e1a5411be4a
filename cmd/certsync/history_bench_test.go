package main

// BenchmarkHistoryYear (make bench): a repository after a year of
// 160-hour certificates, side by side with a fresh repository of the same
// certificates, to show what history costs a fresh agent.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/encrypt"
	"github.com/certsync/certsync/internal/benchdata"
	"github.com/certsync/certsync/internal/testbed"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
	"github.com/certsync/certsync/render"
)

// yearSim is the simulated year: Let's Encrypt's `shortlived` profile
// (160-hour certificates), renewed every renewEvery, by an agent passing
// every passInterval (certsync's default --interval). A pass that finds
// certificates due writes what certsync writes: a commit claiming them,
// then a commit with their new Secrets that releases the claim.
type yearSim struct {
	certs        int
	lifetime     time.Duration
	renewEvery   time.Duration
	passInterval time.Duration
	length       time.Duration
}

var shortlivedYear = yearSim{
	certs:        1000,
	lifetime:     160 * time.Hour,
	renewEvery:   80 * time.Hour, // 365 days / 80 h ≈ 110 renewals each
	passInterval: time.Minute,
	length:       365 * 24 * time.Hour,
}

// renewal is one certificate renewed at one time.
type renewal struct {
	cert int
	at   time.Time
}

// schedule lays out every renewal of the year, oldest first. Each
// certificate was last renewed within the final 70 hours and every
// renewEvery before that, back to the year's start: the certificates are
// spread evenly over the year, as renewals drift apart, and none is due
// for at least eight hours after end (renewal at 80 h, 2% jitter).
func (y yearSim) schedule(rng *mrand.Rand, end time.Time) []renewal {
	start := end.Add(-y.length)
	var out []renewal
	for i := range y.certs {
		last := end.Add(-time.Duration(rng.Int64N(int64(70 * time.Hour))))
		for at := last; !at.Before(start); at = at.Add(-y.renewEvery) {
			out = append(out, renewal{cert: i, at: at})
		}
	}
	slices.SortFunc(out, func(a, b renewal) int { return a.at.Compare(b.at) })
	return out
}

// yearRepo is the two repositories the benchmark compares, served by git
// http-backend: year, after a year of renewals, and fresh, one commit
// holding year's head tree.
type yearRepo struct {
	git                   *testbed.GitHTTP
	year, fresh           string // bare repository paths
	args                  []string
	commits, renewals     int
	generated, gcTook     time.Duration
	yearBytes, freshBytes int64
}

// bench certificate world: the CA that signs the simulated renewals, the
// encrypter, the declared certificates.
type benchWorld struct {
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	enc    *encrypt.SOPS
	certs  []declared.Certificate
	srcs   []gitFile
}

type gitFile struct {
	path    string
	content []byte
}

// secret renders and encrypts certificate i issued at `at`: a new key, a
// new certificate, a fresh SOPS encryption — a new blob every time, as
// every renewal is.
func (w *benchWorld) secret(ctx context.Context, i int, at time.Time, lifetime time.Duration, reason string) (gitFile, string, time.Time, error) {
	c := &w.certs[i]
	key, err := pki.GenerateKey(c.PrivateKey)
	if err != nil {
		return gitFile{}, "", time.Time{}, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{SerialNumber: serial, DNSNames: c.DNSNames, NotBefore: at.Add(-time.Minute), NotAfter: at.Add(lifetime)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, w.caCert, key.Public(), w.caKey)
	if err != nil {
		return gitFile{}, "", time.Time{}, err
	}
	leaf, _ := x509.ParseCertificate(der)
	keyPEM, err := pki.MarshalKey(key, c.PrivateKey.Encoding)
	if err != nil {
		return gitFile{}, "", time.Time{}, err
	}
	s, err := render.TLSSecret(render.TLS{Certificate: c, Issued: &issuer.Certificate{ChainPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Leaf: leaf}, KeyPEM: keyPEM, IssuedAt: at, Reason: reason})
	if err != nil {
		return gitFile{}, "", time.Time{}, err
	}
	plain, err := render.Marshal(s)
	if err != nil {
		return gitFile{}, "", time.Time{}, err
	}
	path := committed.SecretPath("default", c.Namespace, c.SecretName)
	content, err := w.enc.Encrypt(ctx, path, plain)
	if err != nil {
		return gitFile{}, "", time.Time{}, err
	}
	return gitFile{path, content}, pki.Serial(leaf), leaf.NotAfter, nil
}

// newYearRepo generates both repositories. The renewals are rendered and
// encrypted on every core, in order, and streamed into `git fast-import`
// (certsync's own commit path would take as long for the encryption and
// far longer for the ~200,000 commits' loose objects); the messages are
// certsync's, with their trailers.
func newYearRepo(b *testing.B, y yearSim) *yearRepo {
	b.Helper()
	ctx := context.Background()
	started := time.Now()
	a, port := theACME(b)
	g := testbed.StartGitHTTP(b, "", "")
	yr := &yearRepo{git: g, year: g.CreateRepo("year"), fresh: g.CreateRepo("fresh")}
	dir := b.TempDir()
	id, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(dir, "age.key")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	sopsConfig := "creation_rules:\n  - path_regex: ^(secrets|accounts)/.*\\.yaml$\n    age: " + id.Recipient().String() + "\n"
	enc, err := encrypt.New(encrypt.Config{SOPSConfig: []byte(sopsConfig)})
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	w := &benchWorld{enc: enc}
	w.caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	end := time.Now().Truncate(time.Second)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"}, NotBefore: end.Add(-2 * y.length), NotAfter: end.Add(2 * y.length), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, w.caKey.Public(), w.caKey)
	w.caCert, _ = x509.ParseCertificate(caDER)

	w.srcs = []gitFile{
		{".sops.yaml", []byte(sopsConfig)},
		{"issuers/le.yaml", []byte(`apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: le}
spec:
  acme:
    server: ` + a.DirectoryURL + `
    profile: shortlived
    privateKeySecretRef: {name: le-account}
    solvers: [{http01: {}}]
`)},
	}
	for i := range y.certs {
		src, _, _, manifest := benchdata.Certificate(i, "renewBefore: "+y.renewEvery.String())
		set := declared.ParseFile(declared.File{Path: src, Content: manifest})
		if len(set.Certificates) != 1 {
			b.Fatalf("%s: %v", src, set.Problems)
		}
		w.certs = append(w.certs, set.Certificates[0])
		w.srcs = append(w.srcs, gitFile{src, manifest})
	}

	rng := mrand.New(mrand.NewPCG(1, 2))
	plan := y.schedule(rng, end)
	yr.renewals = len(plan)
	fi := exec.Command("git", "-C", yr.year, "fast-import", "--quiet", "--done")
	stdin, _ := fi.StdinPipe()
	var fiErr strings.Builder
	fi.Stderr = &fiErr
	if err := fi.Start(); err != nil {
		b.Fatal(err)
	}
	out := bufio.NewWriterSize(stdin, 1<<20)
	stream := &fastImport{w: out}

	// The initial state: every certificate declared and issued just
	// before the year starts.
	start := end.Add(-y.length)
	seed := append([]gitFile{}, w.srcs...)
	for i := range y.certs {
		f, _, _, err := w.secret(ctx, i, start.Add(-time.Hour), y.lifetime, "new certificate")
		if err != nil {
			b.Fatal(err)
		}
		seed = append(seed, f)
	}
	stream.commit(start.Add(-time.Hour), "Declare certificates and issue them\n", seed, nil)

	// Render and encrypt on every core, results taken in order.
	type result struct {
		f        gitFile
		serial   string
		notAfter time.Time
		err      error
	}
	results := make([]chan result, len(plan))
	for i := range results {
		results[i] = make(chan result, 1)
	}
	// At most window renewals wait to be written: the heap stays small.
	const window = 512
	jobs, slots := make(chan int), make(chan struct{}, window)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				ev := plan[j]
				var r result
				r.f, r.serial, r.notAfter, r.err = w.secret(ctx, ev.cert, ev.at, y.lifetime, "")
				results[j] <- r
			}
		}()
	}
	go func() {
		for j := range plan {
			slots <- struct{}{}
			jobs <- j
		}
		close(jobs)
	}()
	agent := "certsync-0"
	claimPath := committed.ClaimPath(agent)
	for j := 0; j < len(plan); {
		// One pass: every renewal due by its time.
		pass := plan[j].at.Truncate(y.passInterval).Add(y.passInterval)
		k := j
		for k < len(plan) && plan[k].at.Before(pass) {
			k++
		}
		var paths []string
		for _, ev := range plan[j:k] {
			c := &w.certs[ev.cert]
			paths = append(paths, committed.SecretPath("default", c.Namespace, c.SecretName))
		}
		claim, err := committed.MarshalClaim(committed.Claim{Agent: agent, Expires: pass.Add(10 * time.Minute), Certificates: paths})
		if err != nil {
			b.Fatal(err)
		}
		stream.commit(pass, fmt.Sprintf("certsync: claim certificates for ordering\n\n- %s: agent %s orders %d %s (claim until %s)\n",
			claimPath, agent, k-j, plural(k-j, "certificate"), committed.FormatTime(pass.Add(10*time.Minute))), []gitFile{{claimPath, claim}}, nil)
		var files []gitFile
		var lines, trailers []string
		for i := j; i < k; i++ {
			r := <-results[i]
			<-slots
			if r.err != nil {
				b.Fatal(r.err)
			}
			c := &w.certs[plan[i].cert]
			reason := fmt.Sprintf("renewal time %s reached (expires %s)", committed.FormatTime(plan[i].at), committed.FormatTime(plan[i].at.Add(y.renewEvery)))
			files = append(files, r.f)
			lines = append(lines, fmt.Sprintf("- %s → %s: %s (serial %s, expires %s)", c.Key(), r.f.path, reason, r.serial, committed.FormatTime(r.notAfter)))
			trailers = append(trailers, "Certificate: "+c.Key(), "Serial: "+r.serial, "Not-After: "+committed.FormatTime(r.notAfter), "Reason: "+reason)
		}
		msg := fmt.Sprintf("certsync: issue %d %s\n\n%s\n\n- %s: order claim released\n\n%s\n", k-j, plural(k-j, "certificate"),
			strings.Join(lines, "\n"), claimPath, strings.Join(trailers, "\n"))
		stream.commit(pass.Add(20*time.Second), msg, files, []string{claimPath})
		j = k
	}
	wg.Wait()
	fmt.Fprintf(out, "done\n")
	if err := out.Flush(); err != nil {
		b.Fatal(err)
	}
	stdin.Close()
	if err := fi.Wait(); err != nil {
		b.Fatalf("git fast-import: %v\n%s", err, fiErr.String())
	}
	yr.commits = stream.commits
	yr.generated = time.Since(started)

	// The fresh repository: year's head tree as its only commit.
	tree := gitOut(b, yr.year, "rev-parse", "main^{tree}")
	seedCommit := gitOut(b, yr.year, "-c", "user.name=Platform Team", "-c", "user.email=platform@example.com", "commit-tree", tree, "-m", "Declare certificates")
	gitOut(b, yr.year, "update-ref", "refs/fresh", seedCommit)
	gitOut(b, yr.fresh, "fetch", "--quiet", yr.year, "refs/fresh:refs/heads/main")
	gitOut(b, yr.year, "update-ref", "-d", "refs/fresh")

	gcStart := time.Now()
	for _, repo := range []string{yr.year, yr.fresh} {
		gitOut(b, repo, "gc", "--quiet", "--prune=now")
	}
	yr.gcTook = time.Since(gcStart)
	yr.yearBytes, yr.freshBytes = dirBytes(b, yr.year), dirBytes(b, yr.fresh)

	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, a.ServerCAPEM, 0o600)
	yr.args = []string{"--branch", "main", "--age-key-file", keyFile,
		"--http01-addr", fmt.Sprintf("127.0.0.1:%d", port), "--acme-ca-file", caFile, "--log-level", "error", "--concurrency", "16"}
	return yr
}

// fastImport writes commits on refs/heads/main in git fast-import's
// stream format, with inline file contents.
type fastImport struct {
	w       io.Writer
	commits int
}

func (f *fastImport) commit(at time.Time, msg string, files []gitFile, deletes []string) {
	f.commits++
	fmt.Fprintf(f.w, "commit refs/heads/main\ncommitter certsync <certsync@localhost> %d +0000\ndata %d\n%s\n", at.Unix(), len(msg), msg)
	for _, p := range deletes {
		fmt.Fprintf(f.w, "D %s\n", p)
	}
	for _, file := range files {
		fmt.Fprintf(f.w, "M 100644 inline %s\ndata %d\n", file.path, len(file.content))
		f.w.Write(file.content)
		io.WriteString(f.w, "\n")
	}
	io.WriteString(f.w, "\n")
}

func gitOut(b *testing.B, dir string, args ...string) string {
	b.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		b.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func dirBytes(b *testing.B, dir string) int64 {
	b.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		n += info.Size()
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkHistoryYear: 1,000 certificates on 160-hour certificates
// after a year (~110 renewals each, ~200,000 commits) against a fresh
// repository of the same 1,000 certificates (year's head tree as its
// only commit), both served by git http-backend. Each iteration times,
// for each repository:
//
//   - git-clone-s: `git clone --bare` with the git CLI (the yardstick of
//     what the history weighs over the wire);
//   - first-pass-s: certsync's first pass as a fresh agent, `certsync
//     reconcile --no-apply` with an empty --cache-dir (a child process,
//     its wall time: fetch, read, decrypt and verify every Secret, plan;
//     nothing is due);
//
// and, for the year, gogit-full-clone-s: go-git fetching the whole branch
// into a bare repository, what certsync's first fetch did before it
// fetched the head alone. Reported with the packed sizes (after git gc)
// and ratio = year first pass / fresh first pass (the goal: at most 2).
func BenchmarkHistoryYear(b *testing.B) {
	y := newYearRepo(b, shortlivedYear)
	b.Logf("generated %d commits (%d renewals) in %s, git gc %s; packed: year %.0f MB, fresh %.1f MB",
		y.commits, y.renewals, y.generated.Round(time.Second), y.gcTook.Round(time.Second), float64(y.yearBytes)/(1<<20), float64(y.freshBytes)/(1<<20))
	bin := buildCertsync(b)
	gitClone := func(repo string, flags ...string) (float64, string) {
		dst := filepath.Join(b.TempDir(), "clone.git")
		start := time.Now()
		if out, err := exec.Command("git", append(append([]string{"clone", "--quiet", "--bare"}, flags...), y.git.URL(repo), dst)...).CombinedOutput(); err != nil {
			b.Fatalf("git clone %v %s: %v\n%s", flags, repo, err, out)
		}
		return time.Since(start).Seconds(), dst
	}
	clone := func(repo string) float64 {
		took, dst := gitClone(repo)
		os.RemoveAll(dst)
		return took
	}
	shallowClone := func(repo string) float64 {
		took, dst := gitClone(repo, "--depth", "1")
		os.RemoveAll(dst)
		return took
	}
	// The audit trail as a person reads it: a blobless clone (every
	// commit and tree, no ciphertext) and the Serial trailers of the
	// whole history, one per renewal.
	gitOut(b, y.year, "config", "uploadpack.allowFilter", "true")
	audit := func() (cloneS, logS float64) {
		cloneS, dst := gitClone("year", "--filter=blob:none")
		start := time.Now()
		serials := gitOut(b, dst, "log", "--format=%(trailers:key=Serial,valueonly)", "main")
		logS = time.Since(start).Seconds()
		n := 0
		for _, line := range strings.Split(serials, "\n") {
			if line != "" {
				n++
			}
		}
		if n != y.renewals {
			b.Fatalf("the history holds %d Serial trailers, want one per renewal, %d", n, y.renewals)
		}
		os.RemoveAll(dst)
		return cloneS, logS
	}
	firstPass := func(repo string) float64 {
		cache := b.TempDir()
		bare := filepath.Join(y.git.Root, repo+".git")
		head := gitOut(b, bare, "rev-parse", "main")
		cmd := exec.Command(bin, append([]string{"reconcile", "--no-apply", "--repo", y.git.URL(repo), "--cache-dir", cache}, y.args...)...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start).Seconds()
		// Nothing is due: a pass that orders or commits anything is not
		// the pass this measures.
		if err != nil || !strings.Contains(string(out), "no commit: Git is up to date") || gitOut(b, bare, "rev-parse", "main") != head {
			b.Fatalf("certsync reconcile on %s: %v\n%s", repo, err, out)
		}
		os.RemoveAll(cache)
		return took
	}
	goGitClone := func(repo string) float64 {
		dst := b.TempDir()
		start := time.Now()
		_, err := git.PlainCloneContext(context.Background(), dst, true, &git.CloneOptions{
			URL: y.git.URL(repo), ReferenceName: plumbing.NewBranchReferenceName("main"), SingleBranch: true, Tags: git.NoTags})
		took := time.Since(start).Seconds()
		if err != nil {
			b.Fatalf("go-git clone %s: %v", repo, err)
		}
		os.RemoveAll(dst)
		return took
	}
	// The machine's other work shows in a one-off run: the clones and
	// passes are each the median of three, taken in turns.
	median3 := func(run func(string) float64, repo string) float64 {
		t := []float64{run(repo), run(repo), run(repo)}
		slices.Sort(t)
		return t[1]
	}
	var freshClone, freshShallow, freshPass, yearClone, yearShallow, yearPass, yearGoGit, auditClone, auditLog float64
	n := 0
	for b.Loop() {
		freshClone += median3(clone, "fresh")
		yearClone += median3(clone, "year")
		freshShallow += median3(shallowClone, "fresh")
		yearShallow += median3(shallowClone, "year")
		freshPass += median3(firstPass, "fresh")
		yearPass += median3(firstPass, "year")
		yearGoGit += goGitClone("year")
		c, l := audit()
		auditClone, auditLog = auditClone+c, auditLog+l
		n++
	}
	f := float64(n)
	b.ReportMetric(float64(y.yearBytes)/(1<<20), "year-MB")
	b.ReportMetric(float64(y.freshBytes)/(1<<20), "fresh-MB")
	b.ReportMetric(float64(y.commits), "year-commits")
	b.ReportMetric(yearClone/f, "year-git-clone-s")
	b.ReportMetric(freshClone/f, "fresh-git-clone-s")
	b.ReportMetric(yearShallow/f, "year-git-depth1-clone-s")
	b.ReportMetric(freshShallow/f, "fresh-git-depth1-clone-s")
	b.ReportMetric(yearGoGit/f, "year-gogit-full-clone-s")
	b.ReportMetric(auditClone/f, "year-git-blobless-clone-s")
	b.ReportMetric(auditLog/f, "year-git-log-trailers-s")
	b.ReportMetric(yearPass/f, "year-first-pass-s")
	b.ReportMetric(freshPass/f, "fresh-first-pass-s")
	b.ReportMetric(yearPass/freshPass, "ratio")
}
