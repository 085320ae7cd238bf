{{- define "lvr.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lvr.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "lvr.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* repository@digest when a digest is set, else repository:tag (tag defaults to the chart's appVersion). */}}
{{- define "lvr.imageRef" -}}
{{- if .image.digest -}}
{{ .image.repository }}@{{ .image.digest }}
{{- else -}}
{{ .image.repository }}:{{ .image.tag | default .root.Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "lvr.image" -}}
{{ include "lvr.imageRef" (dict "image" .Values.image "root" .) }}
{{- end -}}

{{- define "lvr.kafkaBrokers" -}}
{{- if .Values.bundled.kafka.enabled -}}
{{ include "lvr.fullname" . }}-kafka:9092
{{- else -}}
{{ .Values.kafka.brokers }}
{{- end -}}
{{- end -}}

{{- define "lvr.objectStoreEndpoint" -}}
{{- if .Values.bundled.minio.enabled -}}
http://{{ include "lvr.fullname" . }}-minio:9000
{{- else -}}
{{ .Values.objectStore.endpoint }}
{{- end -}}
{{- end -}}

{{/* Environment shared by every component: Kafka and the object store (credentials from the named Secret). */}}
{{- define "lvr.commonEnv" -}}
- name: LVR_KAFKA_BROKERS
  value: {{ include "lvr.kafkaBrokers" . | quote }}
- name: LVR_S3_ENDPOINT
  value: {{ include "lvr.objectStoreEndpoint" . | quote }}
- name: LVR_S3_REGION
  value: {{ .Values.objectStore.region | quote }}
- name: LVR_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef: { name: {{ .Values.objectStore.existingSecret | quote }}, key: accessKey }
- name: LVR_S3_SECRET_KEY
  valueFrom:
    secretKeyRef: { name: {{ .Values.objectStore.existingSecret | quote }}, key: secretKey }
{{- end -}}

{{- define "lvr.probes" -}}
livenessProbe:
  httpGet: { path: /health/live, port: http }
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /health/ready, port: http }
  periodSeconds: 5
  failureThreshold: 2
startupProbe:
  httpGet: { path: /health/live, port: http }
  periodSeconds: 5
  failureThreshold: 60
{{- end -}}

{{/* Pod-level settings every workload shares: restricted Pod Security, pull secrets, placement. */}}
{{- define "lvr.podSpecCommon" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "lvr.placement" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
