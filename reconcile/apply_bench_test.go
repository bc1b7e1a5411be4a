package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/certsync/certsync/internal/testbed"
)

// BenchmarkApply9k: 9,000 new Secrets, just issued, applied with their
// Events as a pass does it (applyIssued per pushed batch of 50, then the
// pass's Event summaries), on a fresh API server, side by side in the same
// run with the yardstick `kubectl apply --server-side -f DIR` of the same
// plaintext Secrets on another fresh API server. Reported: both times,
// their ratio and the Events certsync created. certsync uses the agent's
// own client-side rate limit (cluster.DefaultQPS). kubectl comes from
// `make bench`.
func BenchmarkApply9k(b *testing.B) {
	const secrets, namespaceCount, batchSize = 9000, 50, 50
	kubectl, err := testbed.ToolPath("kubectl")
	if err != nil {
		b.Fatalf("kubectl is the yardstick of this benchmark and is not built: run `make bench`: %v", err)
	}
	var namespaces []string
	for i := range namespaceCount {
		namespaces = append(namespaces, fmt.Sprintf("ns%d", i))
	}
	plainDir := b.TempDir()
	var nsYAML strings.Builder
	for _, ns := range namespaces {
		fmt.Fprintf(&nsYAML, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", ns)
	}
	if err := os.WriteFile(filepath.Join(plainDir, "00-namespaces.yaml"), []byte(nsYAML.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, batch := range issuedBatches(namespaces, secrets, batchSize, "", 0) {
		for _, s := range batch.secrets {
			s := s.DeepCopy()
			s.APIVersion, s.Kind = "v1", "Secret"
			doc, err := json.Marshal(s) // kubectl reads JSON as YAML
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(plainDir, s.Namespace+"."+s.Name+".yaml"), doc, 0o600); err != nil {
				b.Fatal(err)
			}
		}
	}
	var certsyncS, kubectlS float64
	var events int
	for b.Loop() {
		b.StopTimer()
		func() {
			api := testbed.StartAPIServer(b)
			defer api.Stop(b)
			for _, ns := range namespaces {
				api.CreateNamespace(b, ns)
			}
			r := newLiveReconciler(b, api.Config, 0, 0) // the defaults
			batches := issuedBatches(namespaces, secrets, batchSize, "", 0)
			res := &Result{cluster: "default"}
			b.StartTimer()
			start := time.Now()
			for _, batch := range batches {
				r.applyIssued(context.Background(), res, batch)
			}
			r.flushEvents(context.Background(), res)
			took := time.Since(start)
			b.StopTimer()
			if len(res.Applied) != secrets || len(res.Problems) > 0 {
				b.Fatalf("applied %d, problems %v", len(res.Applied), res.Problems)
			}
			certsyncS += took.Seconds()
			cs := kubernetes.NewForConfigOrDie(api.Config)
			events = 0
			for _, ns := range namespaces {
				l, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
				if err != nil {
					b.Fatal(err)
				}
				events += len(l.Items)
			}
		}()
		func() {
			api := testbed.StartAPIServer(b)
			defer api.Stop(b)
			cmd := exec.Command(kubectl, "apply", "--server-side", "--kubeconfig", api.Kubeconfig, "-f", plainDir)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)
			if n := strings.Count(out.String(), "serverside-applied"); err != nil || n != secrets+namespaceCount {
				b.Fatalf("kubectl apply --server-side: %v (%d objects applied)\n%s", err, n, errb.String())
			}
			kubectlS += took.Seconds()
		}()
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(certsyncS/n, "certsync-s")
	b.ReportMetric(kubectlS/n, "kubectl-s")
	b.ReportMetric(certsyncS/kubectlS, "ratio")
	b.ReportMetric(float64(events), "events")
}
