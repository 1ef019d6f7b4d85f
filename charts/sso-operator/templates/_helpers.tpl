{{/* Names, labels and checks shared by the templates. */}}

{{- define "sso-operator.fullname" -}}
{{- if contains "sso-operator" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-sso-operator" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sso-operator.labels" -}}
app.kubernetes.io/name: sso-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sso-operator.selector" -}}
app.kubernetes.io/name: sso-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sso-operator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* A cluster-scoped name unique per release and namespace. */}}
{{- define "sso-operator.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "sso-operator.fullname" .) | trunc 55 | trimSuffix "-" -}}
{{- end -}}

{{/* The namespace of the compiled configuration and the session keys. */}}
{{- define "sso-operator.configNamespace" -}}
{{- .Values.configNamespace.name | default (printf "%s-config" .Release.Namespace | trunc 63 | trimSuffix "-") -}}
{{- end -}}

{{- define "sso-operator.serverReplicasOk" -}}
{{- if eq .Values.database.type "sqlite" -}}
{{- if or (gt (int .Values.server.replicas) 1) .Values.server.autoscaling.enabled -}}
{{- fail "database.type sqlite supports exactly one server replica (a SQLite file cannot be shared): set server.replicas to 1 and server.autoscaling.enabled to false, or use database.type postgres" -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.database.type "postgres") (not .Values.database.postgres.existingSecret) -}}
{{- fail "database.type postgres needs database.postgres.existingSecret: the name of a Secret holding the connection string (postgres://USER:PASSWORD@HOST/DB) under database.postgres.key" -}}
{{- end -}}
{{- if and .Values.configNamespace.create (eq (include "sso-operator.configNamespace" .) .Release.Namespace) -}}
{{- fail "configNamespace.name is the release namespace, which the chart cannot create: leave it empty for a namespace of its own (recommended: the server then reads no Secret of the release namespace), or set configNamespace.create=false" -}}
{{- end -}}
{{- if not .Values.externalUrl -}}
{{- fail "externalUrl is required: the base URL browsers and the IdP use to reach the server, e.g. --set externalUrl=https://sso.example.com" -}}
{{- end -}}
{{- end -}}

{{/* The hardened container security context. */}}
{{- define "sso-operator.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sso-operator.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}
