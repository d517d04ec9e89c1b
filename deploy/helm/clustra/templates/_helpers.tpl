{{/* vim: set filetype=mustache: */}}
{{/*
Expand the name of the chart.
*/}}
{{- define "clustra.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name, truncated at 43 characters: the longest suffix the chart adds is
"-dask-scheduler" and KubeRay appends its own suffixes to the RayService name, so every
name stays within the 63-character DNS label limit.
*/}}
{{- define "clustra.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 43 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Chart name and version as used by the chart label.
*/}}
{{- define "clustra.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels of the whole release (NetworkPolicy selects on these).
*/}}
{{- define "clustra.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clustra.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Common labels.
*/}}
{{- define "clustra.labels" -}}
helm.sh/chart: {{ include "clustra.chart" . }}
{{ include "clustra.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clustra
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Labels of one component. Call with (dict "ctx" $ "component" "jobs-api").
*/}}
{{- define "clustra.componentLabels" -}}
{{ include "clustra.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Selector labels of one component. KubeRay rewrites app.kubernetes.io/name on Ray pods, so
selectors of Ray pods rely on the instance and component labels only.
*/}}
{{- define "clustra.componentSelectorLabels" -}}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Pod labels of one component: its labels plus podLabels.
*/}}
{{- define "clustra.podLabels" -}}
{{ include "clustra.componentLabels" . }}
{{- with .ctx.Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Names of the resources.
*/}}
{{- define "clustra.rayServiceName" -}}
{{- printf "%s-serving" (include "clustra.fullname" .) -}}
{{- end -}}

{{- define "clustra.servingServiceName" -}}
{{- printf "%s-serving" (include "clustra.fullname" .) -}}
{{- end -}}

{{- define "clustra.jobsApiName" -}}
{{- printf "%s-jobs-api" (include "clustra.fullname" .) -}}
{{- end -}}

{{/* The DaskCluster name; the Dask operator names its scheduler Service NAME-scheduler. */}}
{{- define "clustra.daskName" -}}
{{- printf "%s-dask" (include "clustra.fullname" .) -}}
{{- end -}}

{{/* The scheduler Service, the same name in both Dask modes. */}}
{{- define "clustra.daskSchedulerName" -}}
{{- printf "%s-scheduler" (include "clustra.daskName" .) -}}
{{- end -}}

{{/* The scheduler address the jobs API connects to; empty means an in-process LocalCluster. */}}
{{- define "clustra.daskSchedulerAddress" -}}
{{- if .Values.dask.enabled -}}
{{- printf "tcp://%s.%s.svc:%d" (include "clustra.daskSchedulerName" .) .Release.Namespace (int .Values.dask.scheduler.port) -}}
{{- else -}}
{{- .Values.dask.externalSchedulerAddress -}}
{{- end -}}
{{- end -}}

{{- define "clustra.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "clustra.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "clustra.authSecretName" -}}
{{- default (printf "%s-auth" (include "clustra.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "clustra.registryClaimName" -}}
{{- default (printf "%s-registry" (include "clustra.fullname" .)) .Values.registry.persistence.existingClaim -}}
{{- end -}}

{{- define "clustra.dataClaimName" -}}
{{- default (printf "%s-data" (include "clustra.fullname" .)) .Values.data.persistence.existingClaim -}}
{{- end -}}

{{- define "clustra.jobsStoreClaimName" -}}
{{- default (printf "%s-jobs-store" (include "clustra.fullname" .)) .Values.jobsApi.persistence.existingClaim -}}
{{- end -}}

{{/*
Images.
*/}}
{{- define "clustra.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "clustra.gpuImage" -}}
{{- printf "%s:%s" .Values.image.repository (default (printf "%s-gpu" (default .Chart.AppVersion .Values.image.tag)) .Values.image.gpuTag) -}}
{{- end -}}

{{/*
The registry location: registry.url, or the registry volume's mount path.
*/}}
{{- define "clustra.registryLocation" -}}
{{- if .Values.registry.url -}}
{{- .Values.registry.url -}}
{{- else -}}
{{- .Values.registry.persistence.mountPath -}}
{{- end -}}
{{- end -}}

{{/*
Where job outputs go: jobsApi.outputRoot, else outputs/ on the data volume, else outputs/ on the
job store's volume (a local path in every case: the jobs service writes outputs under a local
root, never to a URL; an s3:// outputRoot fails in clustra.validate).
*/}}
{{- define "clustra.outputRoot" -}}
{{- if .Values.jobsApi.outputRoot -}}
{{- .Values.jobsApi.outputRoot -}}
{{- else if .Values.data.persistence.enabled -}}
{{- printf "%s/outputs" (trimSuffix "/" .Values.data.persistence.mountPath) -}}
{{- else -}}
{{- printf "%s/outputs" (dir .Values.jobsApi.storePath) -}}
{{- end -}}
{{- end -}}

{{- define "clustra.registryVolumeEnabled" -}}
{{- if and (not .Values.registry.url) .Values.registry.persistence.enabled -}}true{{- end -}}
{{- end -}}

{{/*
Environment of the Clustra containers: registry, object storage and (with "auth" true) the
bearer token. Secrets are always referenced, never inlined.
Call with (dict "ctx" $ "auth" true); "ray" true adds Ray's token auth (serving.rayTokenAuth:
RAY_AUTH_MODE=token, RAY_AUTH_TOKEN from the same Secret) to the Ray containers.
*/}}
{{- define "clustra.env" -}}
{{- $v := .ctx.Values -}}
- name: CLUSTRA_REGISTRY
  value: {{ include "clustra.registryLocation" .ctx | quote }}
{{- if and .ray $v.serving.haproxy }}
- name: RAY_SERVE_ENABLE_HA_PROXY
  value: "1"
{{- end }}
{{- if and .auth $v.auth.enabled }}
- name: CLUSTRA_AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "clustra.authSecretName" .ctx }}
      key: {{ $v.auth.secretKey }}
{{- if and .ray $v.serving.rayTokenAuth }}
- name: RAY_AUTH_MODE
  value: token
- name: RAY_AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "clustra.authSecretName" .ctx }}
      key: {{ $v.auth.secretKey }}
{{- end }}
{{- end }}
{{- if $v.objectStorage.enabled }}
{{- with $v.objectStorage.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
- name: FSSPEC_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with $v.objectStorage.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- if not $v.objectStorage.workloadIdentity }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $v.objectStorage.existingSecret }}
      key: {{ $v.objectStorage.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $v.objectStorage.existingSecret }}
      key: {{ $v.objectStorage.secretAccessKeyKey }}
{{- with $v.objectStorage.sessionTokenKey }}
- name: AWS_SESSION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $v.objectStorage.existingSecret }}
      key: {{ . }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Shared volumes (registry, data) and their mounts. Call with (dict "ctx" $ "data" true).
*/}}
{{- define "clustra.volumes" -}}
{{- if include "clustra.registryVolumeEnabled" .ctx }}
- name: registry
  persistentVolumeClaim:
    claimName: {{ include "clustra.registryClaimName" .ctx }}
{{- end }}
{{- if and .data .ctx.Values.data.persistence.enabled }}
- name: data
  persistentVolumeClaim:
    claimName: {{ include "clustra.dataClaimName" .ctx }}
{{- end }}
{{- end -}}

{{- define "clustra.volumeMounts" -}}
{{- if include "clustra.registryVolumeEnabled" .ctx }}
- name: registry
  mountPath: {{ .ctx.Values.registry.persistence.mountPath }}
{{- end }}
{{- if and .data .ctx.Values.data.persistence.enabled }}
- name: data
  mountPath: {{ .ctx.Values.data.persistence.mountPath }}
{{- end }}
{{- end -}}

{{/*
A PersistentVolumeClaim spec from a persistence block.
*/}}
{{- define "clustra.pvcSpec" -}}
accessModes:
  {{- toYaml .accessModes | nindent 2 }}
{{- with .storageClass }}
storageClassName: {{ . | quote }}
{{- end }}
resources:
  requests:
    storage: {{ .size | quote }}
{{- end -}}

{{/*
Scheduling fields of a pod spec from a block with nodeSelector, tolerations and affinity.
*/}}
{{- define "clustra.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Pod-level fields shared by every Clustra pod. Call with (dict "ctx" $ "serviceAccount" true).
*/}}
{{- define "clustra.podCommon" -}}
{{- $v := .ctx.Values -}}
{{- if .serviceAccount }}
serviceAccountName: {{ include "clustra.serviceAccountName" .ctx }}
automountServiceAccountToken: {{ $v.serviceAccount.automountToken }}
{{- end }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
{{- end -}}

{{/*
Container resources with every quantity rendered as a string ("2", "500m", "4Gi"): the Dask
operator's CRDs type quantities as strings (Kubernetes' PodSpec takes an integer or a string), so
`cpu: 2` in values must not reach a DaskCluster as an integer. Call with the resources dict.
*/}}
{{- define "clustra.resources" -}}
{{- $out := dict -}}
{{- range $section, $quantities := (default dict .) -}}
{{- $strings := dict -}}
{{- range $name, $q := $quantities -}}
{{- $_ := set $strings $name (toString $q) -}}
{{- end -}}
{{- $_ := set $out $section $strings -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
Resources with an nvidia.com/gpu limit (and request) added, quantities as strings (see
clustra.resources). Call with (dict "resources" R "gpus" N).
*/}}
{{- define "clustra.gpuResources" -}}
{{- $res := deepCopy (default dict .resources) -}}
{{- $limits := default dict $res.limits -}}
{{- $_ := set $limits "nvidia.com/gpu" (int .gpus) -}}
{{- $_ := set $res "limits" $limits -}}
{{- $requests := default dict $res.requests -}}
{{- $_ := set $requests "nvidia.com/gpu" (int .gpus) -}}
{{- $_ := set $res "requests" $requests -}}
{{- include "clustra.resources" $res -}}
{{- end -}}

{{/*
Checks of values that the schema cannot express. Included by every template that depends on them.
*/}}
{{- define "clustra.validate" -}}
{{- $v := .Values -}}
{{- if and $v.objectStorage.enabled (not $v.objectStorage.existingSecret) (not $v.objectStorage.workloadIdentity) -}}
{{- fail "objectStorage.existingSecret is empty: name an existing Secret with the access key pair (or set objectStorage.workloadIdentity=true); credentials are never taken from values" -}}
{{- end -}}
{{- if and $v.serving.enabled $v.serving.rayTokenAuth (not $v.auth.enabled) -}}
{{- fail "serving.rayTokenAuth=true needs auth.enabled=true: Ray's token is the bearer token's Secret" -}}
{{- end -}}
{{- $multiNode := "pods on several nodes mount it at once: use ReadWriteMany (a storage class that offers it: NFS, CephFS, EFS, Filestore, Azure Files), or existingClaim, or set singleNode=true for a one-node cluster (kind, k3d)" -}}
{{- with $v.registry.persistence -}}
{{- if and (include "clustra.registryVolumeEnabled" $) (not .existingClaim) (not (has "ReadWriteMany" .accessModes)) (not $v.singleNode) -}}
{{- fail (printf "registry.persistence.accessModes=%v: the registry volume is mounted by the Ray pods, the jobs API and the Dask workers; %s; or keep the registry in object storage (registry.url=s3://..., objectStorage.enabled=true)" .accessModes $multiNode) -}}
{{- end -}}
{{- end -}}
{{- with $v.data.persistence -}}
{{- if and .enabled (or $v.jobsApi.enabled $v.dask.enabled) (not .existingClaim) (not (has "ReadWriteMany" .accessModes)) (not $v.singleNode) -}}
{{- fail (printf "data.persistence.accessModes=%v: the data volume is mounted by the jobs API and every Dask worker; %s; or use s3:// data roots with data.persistence.enabled=false" .accessModes $multiNode) -}}
{{- end -}}
{{- end -}}
{{- if and $v.dask.enabled (not $v.data.persistence.enabled) -}}
{{- $shared := false -}}
{{- range $v.data.roots -}}{{- if hasPrefix "s3://" . -}}{{- $shared = true -}}{{- end -}}{{- end -}}
{{- if not $shared -}}
{{- fail (printf "data.persistence.enabled=false and data.roots=%v has no s3:// root: the Dask workers could not read what the jobs API names; enable the data volume or add an s3:// root (objectStorage.enabled=true)" $v.data.roots) -}}
{{- end -}}
{{- end -}}
{{- if contains "://" $v.jobsApi.outputRoot -}}
{{- fail (printf "jobsApi.outputRoot=%s is a URL: the jobs API writes run directories and scored datasets under a local path (the data volume, or leave it empty); publish: in a train spec puts models into an s3:// registry" $v.jobsApi.outputRoot) -}}
{{- end -}}
{{- if and (not $v.registry.url) (not $v.registry.persistence.enabled) -}}
{{- fail "registry.url is empty and registry.persistence.enabled=false: set registry.url (e.g. s3://bucket/registry) or enable the registry volume" -}}
{{- end -}}
{{- if and (hasPrefix "s3://" $v.registry.url) (not $v.objectStorage.enabled) -}}
{{- fail (printf "registry.url=%s needs objectStorage.enabled=true" $v.registry.url) -}}
{{- end -}}
{{- range $v.data.roots -}}
{{- if and (hasPrefix "s3://" .) (not $v.objectStorage.enabled) -}}
{{- fail (printf "data.roots contains %s: s3:// roots need objectStorage.enabled=true" .) -}}
{{- end -}}
{{- end -}}
{{- if and $v.serving.enabled (gt (float64 $v.serving.modelDeployment.numGpus) 0.0) (not $v.serving.modelDeployment.enabled) -}}
{{- fail (printf "serving.modelDeployment.numGpus=%v needs serving.modelDeployment.enabled=true: GPU replicas are model replicas" $v.serving.modelDeployment.numGpus) -}}
{{- end -}}
{{- if and $v.serving.enabled (gt (float64 $v.serving.modelDeployment.numGpus) 0.0) (not $v.serving.gpuWorkers.enabled) -}}
{{- fail (printf "serving.modelDeployment.numGpus=%v needs serving.gpuWorkers.enabled=true: no Ray node would have a GPU" $v.serving.modelDeployment.numGpus) -}}
{{- end -}}
{{- if and $v.serving.enabled (not $v.serving.workers.enabled) (not $v.serving.gpuWorkers.enabled) -}}
{{- fail "serving.workers.enabled and serving.gpuWorkers.enabled are both false: the Serve replicas need at least one worker group" -}}
{{- end -}}
{{- with $v.serving.modelDeployment.autoscaling -}}
{{- if and .enabled (gt (int .minReplicas) (int .maxReplicas)) -}}
{{- fail (printf "serving.modelDeployment.autoscaling.minReplicas=%v should be <= maxReplicas=%v" .minReplicas .maxReplicas) -}}
{{- end -}}
{{- end -}}
{{- range $group := list "workers" "gpuWorkers" -}}
{{- with index $v.serving $group -}}
{{- if and .enabled (gt (int .minReplicas) (int .maxReplicas)) -}}
{{- fail (printf "serving.%s.minReplicas=%v should be <= maxReplicas=%v" $group .minReplicas .maxReplicas) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (not $v.dask.enabled) $v.dask.gpuWorkers.enabled -}}
{{- fail "dask.gpuWorkers.enabled=true needs dask.enabled=true" -}}
{{- end -}}
{{- if and $v.dask.enabled $v.dask.externalSchedulerAddress -}}
{{- fail (printf "dask.externalSchedulerAddress=%s is only used with dask.enabled=false" $v.dask.externalSchedulerAddress) -}}
{{- end -}}
{{- end -}}

{{/*
rayStartParams as a map of strings (the CRD's type); an empty map renders as {}.
*/}}
{{- define "clustra.rayStartParams" -}}
{{- $params := dict -}}
{{- range $k, $val := . -}}
{{- $_ := set $params $k (toString $val) -}}
{{- end -}}
{{- toYaml $params -}}
{{- end -}}
