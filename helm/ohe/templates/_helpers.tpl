{{/* ---------------------------------------------------------------- names --- */}}

{{- define "ohe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-ohe, or the release name alone when it already contains the chart name. Kept
short enough that "-worker-<pool>" suffixes stay within 63 characters. */}}
{{- define "ohe.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ohe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ohe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ohe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ohe.configMapName" -}}
{{- printf "%s-config" (include "ohe.fullname" .) }}
{{- end }}

{{/* The Secret the containers read: the operator's existingSecret, or the chart-managed one. */}}
{{- define "ohe.secretName" -}}
{{- default (printf "%s-secrets" (include "ohe.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/* ---------------------------------------------------------------- labels --- */}}

{{/* Labels of every object; call with (dict "ctx" $ "component" "web"). */}}
{{- define "ohe.labels" -}}
helm.sh/chart: {{ include "ohe.chart" .ctx }}
{{ include "ohe.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: open-health-exchange
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels; call with (dict "ctx" $ "component" "worker" "pool" "bulk"). */}}
{{- define "ohe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ohe.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with .pool }}
ohe/pool: {{ . }}
{{- end }}
{{- end }}

{{/* ----------------------------------------------------------------- image --- */}}

{{- define "ohe.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------- settings data --- */}}

{{/* Data of the settings ConfigMap (also of the migrations hook's copy). */}}
{{- define "ohe.configData" -}}
{{- range $name, $value := .Values.config }}
{{ $name }}: {{ toString $value | quote }}
{{- end }}
{{- end }}

{{/* Data of the chart-managed Secret (also of the migrations hook's copy): every non-optional
key, even when empty (the processes then stop with one line naming the variable), and the
optional ones that have a value. Never called when existingSecret is set. */}}
{{- define "ohe.secretData" -}}
{{- $values := .Values.secrets.values }}
{{- range $env, $key := .Values.secrets.keys }}
{{- $value := toString (default "" (index $values $env)) }}
{{- if or $value (not (has $env $.Values.secrets.optional)) }}
{{ $key }}: {{ $value | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* -------------------------------------------------------- container env --- */}}

{{/* envFrom and env of an OHE container. Call with
(dict "ctx" $ "configMap" <name> ["secret" <name>] ["flower" true] ["multiproc" true]);
"secret" defaults to ohe.secretName.
Non-secret settings come from the ConfigMap; each secret setting is a secretKeyRef to the
Secret (never a literal value); OHE_FLOWER_BASIC_AUTH only for Flower. */}}
{{- define "ohe.appEnv" -}}
{{- $ctx := .ctx -}}
{{- $secret := default (include "ohe.secretName" $ctx) .secret -}}
envFrom:
  - configMapRef:
      name: {{ .configMap }}
{{- with $ctx.Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
env:
{{- range $env, $key := $ctx.Values.secrets.keys }}
{{- if or (ne $env "OHE_FLOWER_BASIC_AUTH") $.flower }}
  - name: {{ $env }}
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: {{ $key }}
        {{- if and (has $env $ctx.Values.secrets.optional) (not (and $.flower (eq $env "OHE_FLOWER_BASIC_AUTH"))) }}
        optional: true
        {{- end }}
{{- end }}
{{- end }}
  # read-only root filesystem: $HOME (gunicorn's control socket) on the /tmp emptyDir
  - name: HOME
    value: /tmp
{{- if .multiproc }}
  - name: PROMETHEUS_MULTIPROC_DIR
    value: {{ $ctx.Values.prometheusMultiprocDir.path | quote }}
{{- end }}
{{- with $ctx.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------ pod boilerplate --- */}}

{{/* Pod-level settings shared by every OHE pod; call with (dict "ctx" $ "sa" <name>). */}}
{{- define "ohe.podSpecCommon" -}}
{{- with .ctx.Values.imagePullSecrets -}}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{ end -}}
{{- with .sa -}}
serviceAccountName: {{ . }}
{{ end -}}
automountServiceAccountToken: false
# No <SERVICE>_PORT/_SERVICE_HOST variables: a Service named like a setting's prefix (ohe-*,
# flower) would otherwise inject OHE_*/FLOWER_* variables the processes read.
enableServiceLinks: false
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/* Scheduling of a pod (may be empty); call with the component's (or pool's) values and
print with: with (include "ohe.scheduling" ...) | nindent 6. */}}
{{- define "ohe.scheduling" -}}
{{- with .nodeSelector -}}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{ end -}}
{{- with .tolerations -}}
tolerations:
  {{- toYaml . | nindent 2 }}
{{ end -}}
{{- with .affinity -}}
affinity:
  {{- toYaml . | nindent 2 }}
{{ end -}}
{{- with .topologySpreadConstraints -}}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{ end -}}
{{- end }}

{{/* Annotations that roll the pods when the settings change. */}}
{{- define "ohe.checksums" -}}
checksum/config: {{ include "ohe.configData" . | sha256sum }}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include "ohe.secretData" . | sha256sum }}
{{- end }}
{{- end }}

{{- define "ohe.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{- define "ohe.multiprocVolume" -}}
- name: prometheus-multiproc
  emptyDir:
    sizeLimit: {{ .Values.prometheusMultiprocDir.sizeLimit }}
{{- end }}

{{- define "ohe.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "ohe.multiprocMount" -}}
- name: prometheus-multiproc
  mountPath: {{ .Values.prometheusMultiprocDir.path }}
{{- end }}

{{/* ------------------------------------------------------------ validation --- */}}

{{/* The Celery queues the application declares (ohe.tasks.base.QUEUES; tests/deploy keeps this
list, the schema's enum and the code equal). Every one must be served by some worker pool. */}}
{{- define "ohe.queues" -}}
webhooks,sync,backfill,maintenance
{{- end }}

{{/* Cross-value rules JSON Schema cannot express; rendered (empty) by the ConfigMap template. */}}
{{- define "ohe.validate" -}}
{{- $names := list }}
{{- $served := list }}
{{- range .Values.worker.pools }}
{{- if has .name $names }}
{{- fail (printf "worker.pools: pool name %q is used twice" .name) }}
{{- end }}
{{- $names = append $names .name }}
{{- $served = concat $served .queues }}
{{- end }}
{{- range $queue := splitList "," (include "ohe.queues" .) }}
{{- if not (has $queue $served) }}
{{- fail (printf "worker.pools: no pool serves queue %q; its tasks would wait forever" $queue) }}
{{- end }}
{{- end }}
{{- range $env := .Values.secrets.optional }}
{{- if not (hasKey $.Values.secrets.keys $env) }}
{{- fail (printf "secrets.optional: %s is not a key of secrets.keys" $env) }}
{{- end }}
{{- end }}
{{- if .Values.celeryExporter.enabled }}
{{- if not (hasKey .Values.secrets.keys .Values.celeryExporter.brokerUrlFrom) }}
{{- fail (printf "celeryExporter.brokerUrlFrom: %s is not a key of secrets.keys" .Values.celeryExporter.brokerUrlFrom) }}
{{- end }}
{{- end }}
{{- end }}
