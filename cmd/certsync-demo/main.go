// Command certsync-demo runs certsync's whole loop on this machine with no
// outside service: it copies examples/repo to a local Git server, starts an
// ACME CA (Pebble) and a Kubernetes API server, generates an age key, runs
// one `certsync reconcile` and shows what happened. `make demo` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"filippo.io/age"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/internal/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	certsync := flag.String("certsync", "bin/certsync", "the certsync binary to run")
	example := flag.String("example", "examples/repo", "the example repository to copy")
	flag.Parse()
	env := &testbed.Process{}
	err := demo(ctx, env, *certsync, *example, os.Stdout)
	env.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "certsync-demo: %v\n", err)
		os.Exit(1)
	}
}

func demo(ctx context.Context, tb *testbed.Process, certsync, example string, out io.Writer) (err error) {
	// testbed helpers report setup failures through Fatalf.
	defer testbed.Recover(&err)
	step := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }
	started := time.Now()

	step("starting an ACME CA (Pebble) and its DNS server in-process")
	port, err := freePort()
	if err != nil {
		return err
	}
	ca := testbed.StartACME(tb, testbed.ACMEOptions{HTTP01Port: port})

	step("starting a Kubernetes API server (kube-apiserver + etcd from %s)", testbed.ToolsDir())
	api := testbed.StartAPIServer(tb)
	for _, ns := range []string{"shop", "api"} {
		api.CreateNamespace(tb, ns)
	}

	step("generating an age key and copying %s to a local Git server", example)
	dir := tb.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	keyFile := filepath.Join(dir, "age.key")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		return err
	}
	seed := filepath.Join(dir, "seed")
	// The issuer's DNS-01 solver is rfc2136: a local DNS server that
	// accepts TSIG-signed updates, its secret committed SOPS-encrypted.
	testbed.WriteExample(tb, example, seed, ca, ca.StartExampleDNS(tb), id.Recipient().String())
	caFile := filepath.Join(dir, "acme-ca.pem")
	if err := os.WriteFile(caFile, ca.ServerCAPEM, 0o600); err != nil {
		return err
	}
	git := testbed.StartGitHTTP(tb, "demo", "demo-token")
	bare := git.CreateRepo("certs")
	git.Seed("certs", seed, "main")

	step("running: certsync reconcile --repo %s --branch main --kubeconfig …", git.URL("certs"))
	reconcileStart := time.Now()
	cmd := exec.CommandContext(ctx, certsync, "reconcile",
		"--repo", git.URL("certs"), "--branch", "main", "--git-username", "demo",
		"--cache-dir", filepath.Join(dir, "clone"),
		"--kubeconfig", api.Kubeconfig,
		"--age-key-file", keyFile,
		"--http01-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--acme-ca-file", caFile,
		"--dns01-recursive-nameservers", ca.DNSAddr,
		// The local DNS server serves no zones (no SOA) for lego's
		// propagation check; the CA queries it directly.
		"--dns01-check-propagation=false",
	)
	// The local DNS server has no propagation delay: lego's rfc2136
	// provider need not wait its default 60 s between names.
	cmd.Env = append(os.Environ(), "CERTSYNC_GIT_PASSWORD=demo-token", "RFC2136_SEQUENCE_INTERVAL=1")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("certsync reconcile: %w", err)
	}
	reconcileTook := time.Since(reconcileStart)

	step("the commit certsync pushed")
	log, err := exec.Command("git", "-C", bare, "log", "-1", "--stat", "--format=%h %an%n%n%B", "main").CombinedOutput()
	if err != nil {
		return fmt.Errorf("git log: %v: %s", err, log)
	}
	fmt.Fprintln(out, indent(string(log)))

	step("TLS Secrets now in the cluster")
	kc, err := kubernetes.NewForConfig(api.Config)
	if err != nil {
		return err
	}
	list, err := kc.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: committed.ManagedByLabel + "=" + committed.ManagedByValue})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    NAMESPACE\tNAME\tTYPE\tDNS NAMES\tNOT AFTER\tSERIAL")
	for _, s := range list.Items {
		a := s.Annotations
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, s.Type, a[committed.AnnotationCMAltNames], a[committed.AnnotationNotAfter], a[committed.AnnotationSerial])
	}
	tw.Flush()

	step("decrypting one committed file with the real sops CLI")
	if sops, err := testbed.ToolPath("sops"); err == nil {
		path := committed.SecretPath("default", "shop", "checkout-tls")
		enc, _ := exec.Command("git", "-C", bare, "show", "main:"+path).Output()
		f := filepath.Join(dir, "checkout.yaml")
		os.WriteFile(f, enc, 0o600)
		c := exec.Command(sops, "--decrypt", "--extract", `["metadata"]["annotations"]["certsync.io/not-after"]`, f)
		c.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE="+keyFile)
		got, err := c.CombinedOutput()
		fmt.Fprintf(out, "    sops --decrypt %s → not-after %s (err: %v)\n", path, strings.TrimSpace(string(got)), err)
	}

	step("the cluster is lost: restoring a new, empty API server from Git alone (the CA is not asked)")
	rebuilt := testbed.StartAPIServer(tb)
	orders := ca.Orders()
	restoreStart := time.Now()
	rc := exec.CommandContext(ctx, certsync, "restore", "--create-namespace",
		"--repo", git.URL("certs"), "--branch", "main", "--git-username", "demo",
		"--cache-dir", filepath.Join(dir, "restore-clone"),
		"--kubeconfig", rebuilt.Kubeconfig, "--age-key-file", keyFile)
	rc.Env = append(os.Environ(), "CERTSYNC_GIT_PASSWORD=demo-token")
	rc.Stdout, rc.Stderr = out, out
	if err := rc.Run(); err != nil {
		return fmt.Errorf("certsync restore: %w", err)
	}
	fmt.Fprintf(out, "    restore took %s; ACME orders during the restore: %d\n", time.Since(restoreStart).Round(10*time.Millisecond), ca.Orders()-orders)

	fmt.Fprintf(out, "\ndone: reconcile took %s, the whole demo %s\n", reconcileTook.Round(10*time.Millisecond), time.Since(started).Round(100*time.Millisecond))
	return nil
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
