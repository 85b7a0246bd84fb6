{{/* Names and labels shared by every manifest. */}}
{{- define "provisiond.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "provisiond.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "provisiond.labels" -}}
{{ include "provisiond.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "provisiond.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "provisiond.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "provisiond.secretName" -}}
{{- default (printf "%s-proxmox" (include "provisiond.fullname" .)) .Values.proxmox.existingSecret -}}
{{- end -}}

{{/* provisiond's settings file (config/provisiond.example.yaml documents every key). */}}
{{- define "provisiond.settings" -}}
{{- $settings := dict
  "proxmox" (dict
    "url" .Values.proxmox.url
    "token_id" .Values.proxmox.tokenId
    "token_secret_file" "/var/run/secrets/provisiond/proxmox-token-secret"
    "verify_tls" .Values.proxmox.verifyTls)
  "log" (dict "format" "json" "level" .Values.log.level)
  "spec" (dict "paths" (list "/etc/provisiond/fleet.d"))
  "daemon" (dict "interval" .Values.daemon.interval "read_only" .Values.daemon.readOnly)
  "metrics" (dict "enabled" true "bind" (printf "0.0.0.0:%d" (int .Values.metrics.port)))
  "leader_election" (dict
    "enabled" .Values.leaderElection.enabled
    "name" .Values.leaderElection.leaseName
    "namespace" .Release.Namespace
    "lease_duration" .Values.leaderElection.leaseDuration
    "renew_deadline" .Values.leaderElection.renewDeadline
    "retry_period" .Values.leaderElection.retryPeriod)
-}}
{{- if .Values.proxmox.caBundle }}
{{- $_ := set $settings.proxmox "ca_bundle" "/etc/provisiond/ca/ca.pem" }}
{{- end }}
{{- if .Values.daemon.cluster }}
{{- $_ := set $settings.daemon "cluster" .Values.daemon.cluster }}
{{- end }}
{{- toYaml (merge $settings (deepCopy .Values.extraSettings)) }}
{{- end -}}
