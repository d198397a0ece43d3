{{/* Names and labels, in the layout `helm create` uses. */}}
{{- define "alignwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "alignwatch.fullname" -}}
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

{{- define "alignwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alignwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "alignwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "alignwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ ternary "sidecar" "consumer" (eq .Values.mode "sidecar") }}
{{- end }}

{{- define "alignwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "alignwatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "alignwatch.image" -}}
{{- $tag := default (printf "%s-%s" .Chart.AppVersion .Values.image.variant) .Values.image.tag }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{/*
alignwatch.yaml: .Values.config with the api and metrics host and port taken from .Values.ports,
so the probes, the Service and the config cannot disagree.
*/}}
{{- define "alignwatch.config" -}}
{{- $endpoints := dict
  "api" (dict "host" "0.0.0.0" "port" (int .Values.ports.api))
  "metrics" (dict "host" "0.0.0.0" "port" (int .Values.ports.metrics)) }}
{{- toYaml (merge $endpoints (deepCopy .Values.config)) }}
{{- end }}

{{/* Refuse combinations that render but cannot work. */}}
{{- define "alignwatch.validate" -}}
{{- $source := .Values.config.source }}
{{- if eq .Values.mode "sidecar" }}
{{- if not .Values.modelServer.image }}
{{- fail "mode sidecar needs modelServer.image" }}
{{- end }}
{{- if or (ne $source.type "file") (not $source.file) }}
{{- fail "mode sidecar needs config.source.type file (the model server's record log)" }}
{{- end }}
{{- if not $source.file.follow }}
{{- fail "mode sidecar needs config.source.file.follow true" }}
{{- end }}
{{- if not (hasPrefix (printf "%s/" (trimSuffix "/" .Values.modelServer.recordDir)) (toString $source.file.path)) }}
{{- fail "mode sidecar needs config.source.file.path under modelServer.recordDir" }}
{{- end }}
{{- else if ne $source.type "kafka" }}
{{- fail "mode standalone needs config.source.type kafka (use mode sidecar to follow a file)" }}
{{- end }}
{{- if and (gt (int .Values.gpu) 0) (ne .Values.image.variant "cuda") }}
{{- fail "gpu > 0 needs image.variant cuda" }}
{{- end }}
{{- /* Every secret the config names must come from secrets.env, and not optionally. */}}
{{- $needed := list (dig "api" "token_env" "ALIGNWATCH_API_TOKEN" .Values.config) }}
{{- $needed = concat $needed (compact (list (dig "store" "url_env" "" .Values.config))) }}
{{- $sinks := concat (dig "alerts" "sinks" list .Values.config) (dig "triggers" "sinks" list .Values.config) }}
{{- range $sinks }}
{{- $needed = concat $needed (compact (list (default "" .secret_env) (default "" .routing_key_env))) }}
{{- end }}
{{- range $variable := uniq $needed }}
{{- $ref := get $.Values.secrets.env $variable }}
{{- if or (not $ref) $ref.optional }}
{{- fail (printf "config names the secret %s: give it in secrets.env with optional: false" $variable) }}
{{- end }}
{{- end }}
{{- end }}
