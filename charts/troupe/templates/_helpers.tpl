{{- define "troupe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "troupe.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "troupe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "troupe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "troupe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "troupe.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "troupe.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "troupe.secretName" -}}
{{- default (printf "%s-secrets" (include "troupe.fullname" .)) .Values.existingSecret -}}
{{- end -}}

{{- define "troupe.natsUrl" -}}
{{- if .Values.nats.enabled -}}
{{- printf "nats://%s-nats:4222" .Release.Name -}}
{{- else -}}
{{- required "natsUrl is required when nats.enabled=false" .Values.natsUrl -}}
{{- end -}}
{{- end -}}

{{/* The environment of every Troupe container; `role` is APP or WORKER. */}}
{{- define "troupe.env" -}}
- name: AP_CONTAINER_TYPE
  value: {{ .role | quote }}
- name: AP_CONFIG_PATH
  value: /data
- name: AP_NATS_URL
  value: {{ include "troupe.natsUrl" .root | quote }}
{{- with .root.Values.natsAuth }}
- name: AP_NATS_USER
  value: {{ if .enabled }}{{ if eq $.role "WORKER" }}troupe-worker{{ else }}troupe-app{{ end }}{{ end }}
- name: AP_NATS_PASSWORD
  {{- if .enabled }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ if eq $.role "WORKER" }}worker{{ else }}app{{ end }}
  {{- else }}
  value: ""
  {{- end }}
- name: AP_NATS_CREDS
  value: {{ .credsFile | quote }}
{{- end }}
- name: AP_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "troupe.secretName" .root }}
      key: AP_API_KEY
- name: AP_ENCRYPTION_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "troupe.secretName" .root }}
      key: AP_ENCRYPTION_KEY
- name: AP_ADMIN_EMAIL
  value: {{ .root.Values.admin.email | quote }}
- name: AP_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "troupe.secretName" .root }}
      key: AP_ADMIN_PASSWORD
      optional: true
- name: AP_APP_WEBHOOK_SECRETS
  valueFrom:
    secretKeyRef:
      name: {{ include "troupe.secretName" .root }}
      key: AP_APP_WEBHOOK_SECRETS
      optional: true
{{- with .root.Values.config }}
- name: AP_SHARDS
  value: {{ .shards | quote }}
- name: AP_NATS_REPLICAS
  value: {{ .natsReplicas | quote }}
- name: AP_FRONTEND_URL
  value: {{ .frontendUrl | quote }}
- name: AP_FLOW_TIMEOUT_SECONDS
  value: {{ .flowTimeoutSeconds | quote }}
- name: AP_WEBHOOK_TIMEOUT_SECONDS
  value: {{ .webhookTimeoutSeconds | quote }}
- name: AP_MAX_FILE_SIZE_MB
  value: {{ .maxFileSizeMb | quote }}
- name: AP_PAUSED_FLOW_TIMEOUT_DAYS
  value: {{ .pausedFlowTimeoutDays | quote }}
- name: AP_EXECUTION_DATA_RETENTION_DAYS
  value: {{ .executionDataRetentionDays | quote }}
- name: AP_TRIGGER_DEFAULT_POLL_INTERVAL
  value: {{ .triggerDefaultPollInterval | quote }}
- name: AP_MAX_CONCURRENT_JOBS_PER_PROJECT
  value: {{ .maxConcurrentJobsPerProject | quote }}
- name: AP_SANDBOX_MEMORY_LIMIT_MB
  value: {{ .sandboxMemoryLimitMb | quote }}
- name: AP_SANDBOX_FUEL
  value: {{ .sandboxFuel | int64 | quote }}
- name: AP_SANDBOX_CONCURRENCY
  value: {{ .sandboxConcurrency | quote }}
- name: AP_SANDBOX_CACHE_DIR
  value: /data/sandbox-cache
- name: AP_WEBHOOK_STREAM_MAX_BYTES
  value: {{ .webhookStreamMaxBytes | int64 | quote }}
- name: AP_SSRF_PROTECTION_ENABLED
  value: {{ .ssrfProtectionEnabled | quote }}
- name: AP_SSRF_ALLOW_LIST
  value: {{ .ssrfAllowList | quote }}
- name: AP_NATIVE_PIECES
  value: {{ .nativePieces | quote }}
- name: AP_ENABLE_FLOW_ON_PUBLISH
  value: {{ .enableFlowOnPublish | quote }}
- name: AP_TRIGGER_TIMEOUT_SECONDS
  value: {{ .triggerTimeoutSeconds | quote }}
- name: AP_TRIGGER_FAILURE_THRESHOLD
  value: {{ .triggerFailureThreshold | quote }}
- name: AP_MAX_FLOW_RUN_LOG_SIZE_MB
  value: {{ .maxFlowRunLogSizeMb | quote }}
- name: AP_MAX_WEBHOOK_PAYLOAD_SIZE_MB
  value: {{ .maxWebhookPayloadSizeMb | quote }}
- name: AP_MAX_STORE_ENTRY_VALUE_SIZE_KB
  value: {{ .maxStoreEntryValueSizeKb | quote }}
- name: AP_PROJECT_RATE_LIMITER_ENABLED
  value: {{ .projectRateLimiterEnabled | quote }}
- name: RUST_LOG
  value: {{ .logLevel | quote }}
{{- range $k, $v := .extraEnv }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "troupe.probes" -}}
startupProbe:
  httpGet: {path: /health, port: http}
  periodSeconds: 2
  failureThreshold: 90
livenessProbe:
  httpGet: {path: /health, port: http}
  periodSeconds: 10
readinessProbe:
  httpGet: {path: /ready, port: http}
  periodSeconds: 5
{{- end -}}
