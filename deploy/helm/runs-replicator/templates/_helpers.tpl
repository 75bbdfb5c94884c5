{{/*
Names and labels, as trigger.dev's chart makes them (hosting/k8s/helm/templates/_helpers.tpl).
*/}}
{{- define "runs-replicator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "runs-replicator.fullname" -}}
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

{{- define "runs-replicator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "runs-replicator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "runs-replicator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: replicator
{{- end }}

{{- define "runs-replicator.labels" -}}
helm.sh/chart: {{ include "runs-replicator.chart" . }}
{{ include "runs-replicator.selectorLabels" . }}
app.kubernetes.io/version: {{ include "runs-replicator.imageTag" . | quote }}
app.kubernetes.io/part-of: trigger
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "runs-replicator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "runs-replicator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "runs-replicator.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
registry/repository:tag, or @digest when image.digest is set (it wins over the tag).
*/}}
{{- define "runs-replicator.image" -}}
{{- $registry := .Values.global.imageRegistry | default .Values.image.registry -}}
{{- $repo := ternary (printf "%s/%s" $registry .Values.image.repository) .Values.image.repository (ne $registry "") -}}
{{- if .Values.image.digest -}}
{{ $repo }}@{{ .Values.image.digest }}
{{- else -}}
{{ $repo }}:{{ include "runs-replicator.imageTag" . }}
{{- end -}}
{{- end }}

{{/*
The Secret this chart creates for credentials given as values (none when every credential comes
from an existing Secret).
*/}}
{{- define "runs-replicator.secretName" -}}
{{- printf "%s-credentials" (include "runs-replicator.fullname" .) }}
{{- end }}

{{- define "runs-replicator.needsSecret" -}}
{{- if or .Values.postgres.external.databaseUrl (and (not .Values.postgres.external.existingSecret) (not .Values.postgres.auth.existingSecret) .Values.postgres.auth.password) (and (not .Values.clickhouse.auth.existingSecret) .Values.clickhouse.auth.password) -}}
true
{{- end -}}
{{- end }}

{{/*
The Postgres connection as environment variables. The worker replicates through a walsender, so
this must be a direct connection, never a pooler (trigger.dev's chart keeps its direct URL under
postgres-direct-url). Built from host and credentials, the password is substituted by the kubelet
($(VAR) expansion, as trigger.dev's chart does): it must be URL-safe (trigger.dev's generated
passwords are hex).
*/}}
{{- define "runs-replicator.postgresEnv" -}}
{{- $pg := .Values.postgres -}}
{{- if $pg.external.databaseUrl }}
- name: RUNS_REPLICATOR_POSTGRES_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "runs-replicator.secretName" . }}
      key: postgres-url
{{- else if $pg.external.existingSecret }}
- name: RUNS_REPLICATOR_POSTGRES_URL
  valueFrom:
    secretKeyRef:
      name: {{ $pg.external.existingSecret }}
      key: {{ $pg.external.secretKeys.databaseUrlKey }}
{{- else }}
{{- if not $pg.host }}
{{- fail "postgres: set postgres.host (with postgres.auth), postgres.external.databaseUrl or postgres.external.existingSecret" }}
{{- end }}
- name: RUNS_REPLICATOR_PG_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- if $pg.auth.existingSecret }}
      name: {{ $pg.auth.existingSecret }}
      key: {{ $pg.auth.secretKeys.userPasswordKey }}
      {{- else }}
      name: {{ include "runs-replicator.secretName" . }}
      key: postgres-password
      {{- end }}
- name: RUNS_REPLICATOR_POSTGRES_URL
  value: {{ printf "postgres://%s:$(RUNS_REPLICATOR_PG_PASSWORD)@%s:%v/%s?sslmode=%s" (urlquery $pg.auth.username) $pg.host $pg.port $pg.auth.database $pg.connection.sslMode | quote }}
{{- end }}
{{- end }}

{{- define "runs-replicator.clickhouseEnv" -}}
{{- $ch := .Values.clickhouse -}}
{{- if not $ch.host }}
{{- fail "clickhouse: set clickhouse.host" }}
{{- end }}
- name: RUNS_REPLICATOR_CLICKHOUSE_URL
  value: {{ printf "%s://%s:%v" (ternary "https" "http" $ch.secure) $ch.host $ch.httpPort | quote }}
- name: RUNS_REPLICATOR_CLICKHOUSE_USER
  value: {{ $ch.auth.username | quote }}
- name: RUNS_REPLICATOR_CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- if $ch.auth.existingSecret }}
      name: {{ $ch.auth.existingSecret }}
      key: {{ $ch.auth.existingSecretKey }}
      {{- else }}
      name: {{ include "runs-replicator.secretName" . }}
      key: clickhouse-password
      {{- end }}
{{- end }}
