{{/* The run id: `runId`, or the release name. Same rule as the contract's ids (Kafka key, label, path segment). */}}
{{- define "run.id" -}}
{{- $id := .Values.runId | default .Release.Name -}}
{{- if not (regexMatch "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" $id) -}}
{{- fail (printf "run id %q (runId or the release name) must be lowercase letters, digits and dashes, 1-63 characters, starting and ending alphanumeric" $id) -}}
{{- end -}}
{{- $id -}}
{{- end -}}

{{/* A submitted run cannot be changed: the trainer owns it once accepted. */}}
{{- define "run.refuseUpgrade" -}}
{{- if .Release.IsUpgrade -}}
{{- fail (printf "release %s already submitted training run %s; a run cannot be changed after submission. Install a new release (a new run id) instead, or `helm uninstall %s` first (it cancels the run if it is still active)." .Release.Name (include "run.id" .) .Release.Name) -}}
{{- end -}}
{{- end -}}

{{- define "run.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
lvr.dev/run-id: {{ include "run.id" . }}
{{- end -}}

{{- define "run.image" -}}
{{- $image := .Values.submit.image -}}
{{- if $image.digest -}}
{{ $image.repository }}@{{ $image.digest }}
{{- else -}}
{{ $image.repository }}:{{ $image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The request exactly as published, less the envelope id and timestamp the hook stamps. */}}
{{- define "run.request" -}}
{{- $request := dict "apiVersion" "lvr.training/v1" "runId" (include "run.id" .) -}}
{{- range $field := list "stage" "model" "data" "hyperparameters" "resources" "checkpoint" "output" -}}
{{- if hasKey $.Values $field -}}
{{- $_ := set $request $field (index $.Values $field) -}}
{{- end -}}
{{- end -}}
{{- toPrettyJson $request -}}
{{- end -}}

{{/*
The hook Job around the CLI apps/trainer/src/cli/submit.ts. Restricted Pod Security; no retries, so a run is never
published twice by one hook.
*/}}
{{- define "run.hookJob" -}}
{{- $root := .root -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .name }}
  labels:
    {{- include "run.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  annotations:
    helm.sh/hook: {{ .hook }}
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: 0
  activeDeadlineSeconds: {{ add .timeout 120 }}
  template:
    metadata:
      labels:
        {{- include "run.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        seccompProfile: { type: RuntimeDefault }
      {{- with $root.Values.submit.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: submit
          image: {{ include "run.image" $root }}
          imagePullPolicy: {{ $root.Values.submit.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          env:
            - { name: LVR_KAFKA_BROKERS, value: {{ $root.Values.submit.kafkaBrokers | quote }} }
            - { name: LVR_TERMINATION_LOG, value: /dev/termination-log }
            {{- range $name, $topic := $root.Values.submit.topics }}
            {{- if $topic }}
            - { name: {{ printf "LVR_TRAINER_%s_TOPIC" (upper $name) }}, value: {{ $topic | quote }} }
            {{- end }}
            {{- end }}
          terminationMessagePolicy: FallbackToLogsOnError
          resources:
            {{- toYaml $root.Values.submit.resources | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: { drop: ['ALL'] }
          volumeMounts:
            - { name: request, mountPath: /etc/lvr/run, readOnly: true }
      volumes:
        - name: request
          configMap:
            name: {{ $root.Release.Name }}-request
      {{- with $root.Values.submit.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.submit.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
