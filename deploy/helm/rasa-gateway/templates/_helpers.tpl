{{/* Chart name, truncated for label values. */}}
{{- define "rasa-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name alone when it already contains the chart name. */}}
{{- define "rasa-gateway.fullname" -}}
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

{{- define "rasa-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rasa-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rasa-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rasa-gateway.labels" -}}
helm.sh/chart: {{ include "rasa-gateway.chart" . }}
{{ include "rasa-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rasa-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rasa-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Namespace of the Rasa Deployments/Services: rasa.namespace or the release namespace. */}}
{{- define "rasa-gateway.rasaNamespace" -}}
{{- default .Release.Namespace .Values.rasa.namespace }}
{{- end }}

{{/* Namespace of one pool. Call with (dict "root" $ "pool" $poolValues). */}}
{{- define "rasa-gateway.poolNamespace" -}}
{{- $k := default (dict) .pool.kubernetes }}
{{- default (include "rasa-gateway.rasaNamespace" .root) $k.namespace }}
{{- end }}

{{/* Comma-separated, de-duplicated, sorted namespaces of the pools that use Kubernetes discovery. */}}
{{- define "rasa-gateway.discoveryNamespaces" -}}
{{- $root := . }}
{{- $nss := list }}
{{- range $name, $pool := .Values.config.pools }}
{{- if $pool.kubernetes }}
{{- $nss = append $nss (include "rasa-gateway.poolNamespace" (dict "root" $root "pool" $pool)) }}
{{- end }}
{{- end }}
{{- $nss | uniq | sortAlpha | join "," }}
{{- end }}

{{/* "true" when the replicas form a cluster: cluster.enabled true, or auto with more than one replica. */}}
{{- define "rasa-gateway.clusterEnabled" -}}
{{- $e := .Values.cluster.enabled | toString }}
{{- if or (eq $e "true") (and (eq $e "auto") (gt (int .Values.replicaCount) 1)) }}true{{ end }}
{{- end }}

{{/* The gateway config as YAML; empty pool namespaces are filled in, and the cluster section when the cluster is on. */}}
{{- define "rasa-gateway.config" -}}
{{- $root := . }}
{{- $cfg := deepCopy .Values.config }}
{{- if and (include "rasa-gateway.clusterEnabled" .) (not (hasKey $cfg "cluster")) }}
{{- $c := .Values.cluster }}
{{- $_ := set $cfg "cluster" (dict "listen" (dict "host" "0.0.0.0" "port" (int $c.port)) "kubernetes" (dict "namespace" .Release.Namespace "service" (printf "%s-cluster" (include "rasa-gateway.fullname" .)) "port" "cluster" "leaseDurationSeconds" (int $c.leaseDurationSeconds)) "heartbeatMs" (int $c.heartbeatMs) "deadAfterMs" (int $c.deadAfterMs)) }}
{{- end }}
{{- range $name, $pool := $cfg.pools }}
{{- if $pool.kubernetes }}
{{- $_ := set $pool.kubernetes "namespace" (include "rasa-gateway.poolNamespace" (dict "root" $root "pool" $pool)) }}
{{- if and $root.Values.deletionCost.enabled (not (hasKey $pool "deletionCost")) }}
{{- $_ := set $pool "deletionCost" (dict "enabled" true "leaseName" (printf "%s-deletion-cost-%s" (include "rasa-gateway.fullname" $root) $name)) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* Per-pod target of gateway_pool_demand for one autoscaled pool (dict "root" $ "name" $poolName). */}}
{{/* The external metric the autoscaler follows (autoscaling.signal) and its per-pod AverageValue target. */}}
{{- define "rasa-gateway.signalMetric" -}}
{{- if eq .root.Values.autoscaling.signal "demand" }}gateway_pool_demand{{ else }}gateway_pool_desired_pods{{ end }}
{{- end }}

{{- define "rasa-gateway.signalTarget" -}}
{{- if eq .root.Values.autoscaling.signal "demand" }}{{ include "rasa-gateway.demandTarget" . }}{{ else }}1{{ end }}
{{- end }}

{{/* The HPA behaviour: autoscaling.behavior, with the signal's scale-down window where none is set. */}}
{{- define "rasa-gateway.behavior" -}}
{{- $b := deepCopy .Values.autoscaling.behavior }}
{{- $down := $b.scaleDown | default dict }}
{{- $set := "" }}
{{- if hasKey $down "stabilizationWindowSeconds" }}{{ $set = toString (index $down "stabilizationWindowSeconds") }}{{ end }}
{{- if or (eq $set "") (eq $set "<nil>") }}
{{- $_ := set $down "stabilizationWindowSeconds" (index .Values.autoscaling.scaleDownWindowSeconds .Values.autoscaling.signal | int) }}
{{- end }}
{{- $_ := set $b "scaleDown" $down }}
{{- toYaml $b }}
{{- end }}

{{- define "rasa-gateway.demandTarget" -}}
{{- $as := index .root.Values.autoscaling.pools .name }}
{{- $pool := index .root.Values.config.pools .name }}
{{- if $as.targetAverageValue }}
{{- $as.targetAverageValue | toString }}
{{- else }}
{{- $pool.slotsPerEndpoint | default 1 | int | toString }}
{{- end }}
{{- end }}

{{/* Render-time checks: fail with a message that says what to change. */}}
{{- define "rasa-gateway.validate" -}}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are mutually exclusive: KEDA creates its own HorizontalPodAutoscaler for the same Rasa Deployment, and two HPAs on one target fight over its replica count. Enable only one of them." }}
{{- end }}
{{- $drainSeconds := div (add (int .Values.config.shutdown.drainTimeoutMs) 999) 1000 }}
{{- $needed := add (int .Values.lifecycle.preStopSleepSeconds) $drainSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed lifecycle.preStopSleepSeconds (%d) + config.shutdown.drainTimeoutMs/1000 (%d) = %d, or Kubernetes kills the gateway before it has drained." (int .Values.terminationGracePeriodSeconds) (int .Values.lifecycle.preStopSleepSeconds) (int $drainSeconds) (int $needed)) }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled .Values.podDisruptionBudget.minAvailable .Values.podDisruptionBudget.maxUnavailable }}
{{- fail "podDisruptionBudget: set either minAvailable or maxUnavailable, not both (set the other one to \"\")." }}
{{- end }}
{{- if or .Values.autoscaling.enabled .Values.keda.enabled }}
{{- if not (has .Values.autoscaling.signal (list "desiredPods" "demand")) }}
{{- fail (printf "autoscaling.signal is %q: use desiredPods (gateway_pool_desired_pods, target 1 per pod) or demand (in flight + queued, target slotsPerEndpoint per pod)." (toString .Values.autoscaling.signal)) }}
{{- end }}
{{- $root := . }}
{{- $seen := dict }}
{{- range $name, $as := .Values.autoscaling.pools }}
{{- if not (hasKey $root.Values.config.pools $name) }}
{{- fail (printf "autoscaling.pools.%s: there is no pool %q in config.pools." $name $name) }}
{{- end }}
{{- $pool := index $root.Values.config.pools $name }}
{{- if not $pool.kubernetes }}
{{- fail (printf "autoscaling.pools.%s: the pool uses static endpoints; only a pool discovered through Kubernetes (config.pools.%s.kubernetes) can be autoscaled." $name $name) }}
{{- end }}
{{- $ns := include "rasa-gateway.poolNamespace" (dict "root" $root "pool" $pool) }}
{{- $key := printf "%s/%s/%s" $ns $as.scaleTargetRef.kind $as.scaleTargetRef.name }}
{{- if hasKey $seen $key }}
{{- fail (printf "autoscaling.pools.%s and autoscaling.pools.%s both scale %s: two autoscalers on one Deployment fight over its replica count. Autoscale only one of the pools that share a Rasa Deployment." (get $seen $key) $name $key) }}
{{- end }}
{{- $_ := set $seen $key $name }}
{{- end }}
{{- end }}
{{- end }}
