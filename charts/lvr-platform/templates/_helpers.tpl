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

{{- define "lvr.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Environment shared by every component: Kafka and the object store (credentials from the named Secret). */}}
{{- define "lvr.commonEnv" -}}
- name: LVR_KAFKA_BROKERS
  value: {{ .Values.kafka.brokers | quote }}
- name: LVR_S3_ENDPOINT
  value: {{ .Values.objectStore.endpoint | quote }}
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
