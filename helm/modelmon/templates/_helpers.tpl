{{/* Chart name, overridable. */}}
{{- define "modelmon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the objects: RELEASE-modelmon, or RELEASE when it contains the name. */}}
{{- define "modelmon.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels that select the operator pod; never change them in an upgrade. */}}
{{- define "modelmon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelmon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "modelmon.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "modelmon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: modelmon
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "modelmon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelmon.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "modelmon.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Whether the replicas share the monitors through Leases: above one replica, or asked. */}}
{{- define "modelmon.replicated" -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.replication.enabled }}true{{- end }}
{{- end }}

{{/*
The operator's RBAC rules. One list for the ClusterRole and for each namespaced Role, so
the two install modes cannot drift apart. README ("RBAC it needs") says why each is needed.
*/}}
{{- define "modelmon.rules" -}}
- apiGroups: [modelmon.io]
  resources: [modelmonitors]
  verbs: [get, list, watch]
- apiGroups: [modelmon.io]
  resources: [modelmonitors/status]
  verbs: [patch]
- apiGroups: [monitoring.coreos.com]
  resources: [prometheusrules]
  verbs: [get, create, update, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- if .Values.rbac.retraining }}
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, create]
{{- end }}
{{- if .Values.rbac.readSecretsAndConfigMaps }}
- apiGroups: [""]
  resources: [secrets, configmaps]
  verbs: [get]
{{- end }}
{{- end }}
