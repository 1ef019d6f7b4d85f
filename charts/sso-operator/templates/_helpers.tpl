{{/* Names, labels and checks shared by the templates. */}}

{{/* The chart's name (nameOverride): the app.kubernetes.io/name label. */}}
{{- define "sso-operator.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object's name (fullnameOverride); 50 characters leave room for the
longest suffix, -controller-metrics. */}}
{{- define "sso-operator.fullname" -}}
{{- $name := include "sso-operator.name" . -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount a component runs as: called with (list $ "controller"). */}}
{{- define "sso-operator.serviceAccountName" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $sa := (index $root.Values $component).serviceAccount -}}
{{- if $sa.create -}}
{{- $sa.name | default (printf "%s-%s" (include "sso-operator.fullname" $root) $component) -}}
{{- else -}}
{{- $sa.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "sso-operator.labels" -}}
app.kubernetes.io/name: {{ include "sso-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sso-operator.selector" -}}
app.kubernetes.io/name: {{ include "sso-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* repository@digest when image.digest is set (the tag is then ignored), else repository:tag. */}}
{{- define "sso-operator.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
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

{{/* What every pod template takes from its component's values: called with (list $ "server"). */}}
{{- define "sso-operator.podOptions" -}}
{{- $root := index . 0 -}}
{{- $v := index $root.Values (index . 1) -}}
{{- with $v.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.topologySpreadConstraints }}
{{- $selector := fromYaml (include "sso-operator.selector" $root) }}
{{- $_ := set $selector "app.kubernetes.io/component" (index $ 1) }}
topologySpreadConstraints:
  {{- /* A constraint without a labelSelector spreads this component's pods. */}}
  {{- range . }}
  {{- $constraint := deepCopy . }}
  {{- if not (hasKey $constraint "labelSelector") }}
  {{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) }}
  {{- end }}
  - {{- toYaml $constraint | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}
