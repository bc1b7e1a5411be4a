package deploy

// Starting the chart's container without a container runtime: the certsync
// binary with the arguments, environment and files kubelet would give it:
// the rendered Deployment and ConfigMap, and the Secrets as they are in the
// API server.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// pod is the Deployment's container as kubelet would start it.
type pod struct {
	name, namespace string
	// args follow the image's entrypoint (/certsync).
	args []string
	env  map[string]string
	// mounts maps each mountPath to the local directory standing in for it.
	mounts map[string]string
}

// newPod prepares the Pod the Deployment of m would start, named name:
//   - each Secret volume becomes a directory holding its items (or all its
//     keys); a missing key fails the test, as it would keep the Pod in
//     ContainerCreating;
//   - each emptyDir becomes an empty directory;
//   - the environment is envFrom's ConfigMaps, then env: values, the Pod's
//     name and namespace (fieldRef) and Secret keys (secretKeyRef; an
//     optional one may be missing);
//   - a path under a mount, in the environment or the arguments, is
//     rewritten to that mount's directory: a Pod has a filesystem of its
//     own, the test process has not.
func newPod(t *testing.T, m *manifest, admin kubernetes.Interface, name string) *pod {
	t.Helper()
	ctx := context.Background()
	ns := m.deployment.Namespace
	p := &pod{name: name, namespace: ns, env: map[string]string{}, mounts: map[string]string{}}
	root := t.TempDir()
	secret := func(name string) *corev1.Secret {
		s, err := admin.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			t.Fatalf("kubelet: get Secret %s/%s: %v", ns, name, err)
		}
		return s
	}
	volumes := map[string]string{}
	for _, v := range m.deployment.Spec.Template.Spec.Volumes {
		dir := filepath.Join(root, "volumes", v.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		volumes[v.Name] = dir
		switch {
		case v.EmptyDir != nil:
		case v.Secret != nil:
			s := secret(v.Secret.SecretName)
			if s == nil {
				t.Fatalf("kubelet: volume %s: Secret %s/%s not found: the Pod would wait in ContainerCreating", v.Name, ns, v.Secret.SecretName)
			}
			items := v.Secret.Items
			if len(items) == 0 {
				for k := range s.Data {
					items = append(items, corev1.KeyToPath{Key: k, Path: k})
				}
			}
			for _, it := range items {
				data, ok := s.Data[it.Key]
				if !ok {
					t.Fatalf("kubelet: volume %s: Secret %s/%s has no key %q: the Pod would wait in ContainerCreating", v.Name, ns, s.Name, it.Key)
				}
				if err := os.WriteFile(filepath.Join(dir, it.Path), data, 0o400); err != nil {
					t.Fatal(err)
				}
			}
		default:
			t.Fatalf("kubelet: volume %s: only emptyDir and Secret volumes are expected", v.Name)
		}
	}
	for _, vm := range m.container.VolumeMounts {
		p.mounts[strings.TrimSuffix(vm.MountPath, "/")] = volumes[vm.Name]
	}
	for k, v := range m.settings {
		p.env[k] = v // the ConfigMaps of envFrom and literal env values
	}
	for _, e := range m.container.Env {
		switch {
		case e.ValueFrom == nil:
		case e.ValueFrom.FieldRef != nil:
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				p.env[e.Name] = name
			case "metadata.namespace":
				p.env[e.Name] = ns
			default:
				t.Fatalf("kubelet: env %s: field %s is not emulated", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s := secret(ref.Name)
			v, ok := []byte(nil), false
			if s != nil {
				v, ok = s.Data[ref.Key]
			}
			switch {
			case ok:
				p.env[e.Name] = string(v)
			case ref.Optional == nil || !*ref.Optional:
				t.Fatalf("kubelet: env %s: Secret %s/%s key %q not found", e.Name, ns, ref.Name, ref.Key)
			}
		default:
			t.Fatalf("kubelet: env %s: only fieldRef and secretKeyRef are emulated", e.Name)
		}
	}
	for k, v := range p.env {
		p.env[k] = p.local(v)
	}
	for _, a := range m.container.Args {
		p.args = append(p.args, p.local(a))
	}
	return p
}

// local rewrites a path inside one of the Pod's mounts to its directory.
func (p *pod) local(path string) string {
	for mountPath, dir := range p.mounts {
		if path == mountPath {
			return dir
		}
		if rest, ok := strings.CutPrefix(path, mountPath+"/"); ok {
			return filepath.Join(dir, rest)
		}
	}
	return path
}

// command is the container's process running bin, with its first argument
// (the subcommand, `run`) replaced by sub when sub is not empty, and extra
// arguments appended. It sees only the Pod's environment, plus PATH, a HOME
// and a TMPDIR of its own (the Pod's /tmp).
func (p *pod) command(ctx context.Context, t *testing.T, bin, sub string, extra ...string) *exec.Cmd {
	t.Helper()
	args := append([]string(nil), p.args...)
	if sub != "" {
		args[0] = sub
	}
	cmd := exec.CommandContext(ctx, bin, append(args, extra...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + p.local("/tmp")}
	for k, v := range p.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}
