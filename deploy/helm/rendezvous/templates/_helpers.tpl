{{- define "rendezvous.name" -}}{{ .Release.Name }}-rendezvous{{- end }}

{{- define "rendezvous.labels" -}}
app.kubernetes.io/name: rendezvous
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "rendezvous.selector" -}}
app.kubernetes.io/name: rendezvous
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The consumer group (Faust app id) of a role: rdv-<pipeline>-<role with : as -> */}}
{{- define "rendezvous.consumerGroup" -}}rdv-{{ .pipeline }}-{{ .role | replace ":" "-" }}{{- end }}

{{- define "rendezvous.env" -}}
- name: RDV_BROKER
  value: {{ .Values.broker.url | quote }}
- name: RDV_SECURITY_PROTOCOL
  value: {{ .Values.broker.securityProtocol | quote }}
{{- if .Values.broker.saslMechanism }}
- name: RDV_SASL_MECHANISM
  value: {{ .Values.broker.saslMechanism | quote }}
- name: RDV_SASL_USERNAME
  valueFrom: {secretKeyRef: {name: {{ .Values.broker.existingSecret | default (printf "%s-broker" (include "rendezvous.name" .)) }}, key: username}}
- name: RDV_SASL_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .Values.broker.existingSecret | default (printf "%s-broker" (include "rendezvous.name" .)) }}, key: password}}
{{- end }}
- name: RDV_STORE
  value: {{ required "store.url is required: pods share only Kafka and the store (s3://bucket/prefix …)" .Values.store.url | quote }}
{{- if .Values.store.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ .Values.store.endpoint | quote }}
{{- end }}
{{- if .Values.store.region }}
- name: AWS_REGION
  value: {{ .Values.store.region | quote }}
{{- end }}
{{- if .Values.store.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ .Values.store.existingSecret }}, key: AWS_ACCESS_KEY_ID}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ .Values.store.existingSecret }}, key: AWS_SECRET_ACCESS_KEY}}
{{- end }}
{{- if or .Values.tokens.existingSecret .Values.tokens.value }}
- name: RDV_TOKENS
  valueFrom: {secretKeyRef: {name: {{ .Values.tokens.existingSecret | default (printf "%s-tokens" (include "rendezvous.name" .)) }}, key: tokens}}
{{- end }}
- name: RDV_DATA_DIR
  value: /data
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{- define "rendezvous.volumes" -}}
- name: spec
  configMap: {name: {{ include "rendezvous.name" . }}-spec}
- name: data          # the store's local mirror and caches: nothing here is shared
  emptyDir: {}
{{- end }}

{{- define "rendezvous.mounts" -}}
- {name: spec, mountPath: /etc/rendezvous, readOnly: true}
- {name: data, mountPath: /data}
{{- end }}

{{- define "rendezvous.security" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 0
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL]}
{{- end }}
