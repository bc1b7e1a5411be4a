// Package deploy holds what runs certsync in a Kubernetes cluster, and the
// tests that prove it against a real API server. It has no Go API: the
// package exists for its tests.
//
// # What is here
//
//	helm/certsync/   the Helm chart: a Deployment of `certsync run` (two
//	                 replicas, one Lease), its ServiceAccount and
//	                 least-privilege RBAC, a Service, and optionally a
//	                 ServiceMonitor and a NetworkPolicy
//	kustomize/       the same objects as a kustomize base, with components
//	                 for the chart's options (cluster-wide, service-monitor,
//	                 network-policy)
//	monitoring/      the PrometheusRule alerts and the Grafana dashboard
//	                 (package monitoring, tested with promtool)
//	README.md        the install walkthrough: a namespace, two Secrets, one
//	                 `helm install`
//	testdata/        overlays the tests build, and a minimal ServiceMonitor CRD
//
// # Least privilege
//
// certsync's cluster calls are few (cluster/cluster.go, leader/): Secrets
// get, list, create, patch and delete; Events create; a Lease created once
// and then read and renewed. The chart grants exactly those: Secrets and
// Events through a Role in each namespace certsync applies Secrets in
// (rbac.secretNamespaces, default the release namespace) and nowhere else
// unless rbac.clusterWide asks for it, and the Lease in the release
// namespace only. certsync is told the same namespaces
// (CERTSYNC_NAMESPACES), so it never lists beyond what it may read.
//
// # What the tests prove
//
// helm lint passes; every rendering (chart defaults and the interesting
// values, the kustomize base and overlays) is applied with server-side
// dry-run and strict field validation to a real kube-apiserver, and its Pod
// passes the "restricted" Pod Security admission; the chart and the
// kustomize base render the same objects; and the certsync binary, started
// from the rendered Deployment as kubelet would start it (its ConfigMap,
// Secret volumes and environment) with the chart's ServiceAccount token,
// issues, applies and prunes a certificate and holds the Lease. With any one
// verb removed from the Roles certsync names it (verb, resource, namespace):
// the pass fails, or, for Events, which are best effort, it warns.
package deploy
