{{/*
Names and labels shared by every object. The kustomize base
(deploy/kustomize) spells out what these render to for a release named
"certsync"; deploy's tests compare the two.
*/}}

{{/* The full name: the release name, or "<release>-certsync". */}}
{{- define "certsync.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "certsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "certsync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false: the ServiceAccount the Pods run as" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the Pods: they never change across upgrades. */}}
{{- define "certsync.selectorLabels" -}}
app.kubernetes.io/name: certsync
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "certsync.labels" -}}
{{ include "certsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "certsync.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/*
The namespaces certsync may hold Secrets in, as a list: rbac.secretNamespaces,
or the release namespace when that is empty. Rendered as JSON for fromJsonArray.
*/}}
{{- define "certsync.secretNamespaces" -}}
{{- if .Values.rbac.secretNamespaces -}}
{{- .Values.rbac.secretNamespaces | uniq | toJson -}}
{{- else -}}
{{- list .Release.Namespace | toJson -}}
{{- end -}}
{{- end -}}

{{/*
What certsync does with Secrets and Events, and nothing more (see
cluster/cluster.go):
  get     read a Secret before pruning it (is it this agent's?)
  list    find the Secrets this agent applied (label selector), to prune and
          to notice drift
  watch   keep their metadata between passes (certsync run), so an idle
          pass lists nothing; without it the agent lists each pass
  create  server-side apply of a Secret that does not exist yet is a create
  patch   server-side apply; taking over the fields a restore created
  delete  prune a Secret no longer committed for this cluster
Events: create only (Issued, Renewed, Failed on each Secret).
No update, no other resource.
*/}}
{{- define "certsync.secretRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}
