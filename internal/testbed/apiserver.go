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
	env        *envtest.Environment
	stopped    bool
}

// Stop stops the API server and etcd and deletes etcd's data: the
// cluster is gone, as when a real one is destroyed.
func (a *APIServer) Stop(t TB) {
	t.Helper()
	a.stopped = true
	if err := a.env.Stop(); err != nil {
		t.Fatalf("stop the API server: %v", err)
	}
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
	a := &APIServer{Config: cfg, env: env}
	t.Cleanup(func() {
		if !a.stopped {
			env.Stop()
		}
	})
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
	a.Kubeconfig = path
	return a
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
