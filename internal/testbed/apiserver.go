package testbed

import (
	"context"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// APIServer is a real kube-apiserver with etcd (controller-runtime's
// envtest), built by hack/build-tools.sh.
type APIServer struct {
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for the CLI.
	Kubeconfig string
}

// StartAPIServer starts the API server and stops it on cleanup.
func StartAPIServer(t TB) *APIServer {
	t.Helper()
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		Tool(t, bin)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: ToolsDir()}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start the API server (envtest): %v", err)
	}
	t.Cleanup(func() { env.Stop() })
	user, err := env.AddUser(envtest.User{Name: "certsync-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("API server user: %v", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatalf("write kubeconfig: %v", err)
	}
	return &APIServer{Config: cfg, Kubeconfig: path}
}

// CreateNamespace creates a namespace.
func (a *APIServer) CreateNamespace(t TB, name string) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(a.Config)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}
