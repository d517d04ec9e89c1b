{{/*
The Ray Serve config (serveConfigV2), built as data and rendered with toYaml so that it is
always valid YAML. The model deployment is in it only with serving.modelDeployment.enabled
(then args.model_deployment: true); otherwise the ingress replicas assign. Secrets never enter it: the pods get them as env from Secrets and Ray
worker processes inherit that environment.
*/}}
{{- define "clustra.serveConfig" -}}
{{- $s := .Values.serving -}}
{{- $args := deepCopy (default dict $s.app.args) -}}
{{- $_ := set $args "registry" (include "clustra.registryLocation" .) -}}
{{- $envVars := dict "CLUSTRA_REGISTRY" (include "clustra.registryLocation" .) -}}
{{- range $k, $val := $s.app.env -}}
{{- $_ := set $envVars $k (toString $val) -}}
{{- end -}}

{{- $ingress := dict "name" $s.ingressDeployment.name "num_replicas" (int $s.ingressDeployment.numReplicas) "max_ongoing_requests" (int $s.ingressDeployment.maxOngoingRequests) "health_check_period_s" (float64 $s.ingressDeployment.healthCheckPeriodS) "ray_actor_options" (dict "num_cpus" (float64 $s.ingressDeployment.numCpus)) -}}
{{- with $s.ingressDeployment.userConfig -}}
{{- $_ := set $ingress "user_config" (deepCopy .) -}}
{{- end -}}

{{- $m := $s.modelDeployment -}}
{{- $actor := dict "num_cpus" (float64 $m.numCpus) -}}
{{- if gt (float64 $m.numGpus) 0.0 -}}
{{- $_ := set $actor "num_gpus" (float64 $m.numGpus) -}}
{{- end -}}
{{- $userConfig := dict "max_batch_size" (int $m.batching.maxBatchSize) "batch_wait_timeout_s" (float64 $m.batching.batchWaitTimeoutS) -}}
{{- $userConfig = merge (deepCopy (default dict $m.userConfig)) $userConfig -}}
{{- $model := dict "name" $m.name "max_ongoing_requests" (int $m.maxOngoingRequests) "health_check_period_s" (float64 $m.healthCheckPeriodS) "ray_actor_options" $actor "user_config" $userConfig -}}
{{- if $m.autoscaling.enabled -}}
{{- $_ := set $model "autoscaling_config" (dict "min_replicas" (int $m.autoscaling.minReplicas) "max_replicas" (int $m.autoscaling.maxReplicas) "target_ongoing_requests" (float64 $m.autoscaling.targetOngoingRequests)) -}}
{{- else -}}
{{- $_ := set $model "num_replicas" (int $m.numReplicas) -}}
{{- end -}}

{{- $deployments := list $ingress -}}
{{- if $m.enabled -}}
{{- $_ := set $args "model_deployment" true -}}
{{- $deployments = append $deployments $model -}}
{{- end -}}
{{- $app := dict "name" $s.app.name "import_path" $s.app.importPath "route_prefix" $s.app.routePrefix "args" $args "runtime_env" (dict "env_vars" $envVars) "deployments" $deployments -}}
{{- $config := dict "proxy_location" $s.proxyLocation "http_options" (dict "host" "0.0.0.0" "port" (int $s.port)) "applications" (list $app) -}}
{{- toYaml $config -}}
{{- end -}}
