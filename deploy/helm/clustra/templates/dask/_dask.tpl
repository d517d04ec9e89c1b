{{/*
Pod specs of the Dask scheduler and workers, shared by the plain Deployments and the
Dask operator's DaskCluster / DaskWorkerGroup (whose worker and scheduler specs are PodSpecs).
*/}}

{{- define "clustra.dask.schedulerPodSpec" -}}
{{- $d := .Values.dask -}}
{{- include "clustra.podCommon" (dict "ctx" . "serviceAccount" true) }}
{{- include "clustra.scheduling" $d.scheduler }}
containers:
  - name: scheduler
    image: {{ include "clustra.image" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command: ["dask"]
    args:
      - scheduler
      - --port
      - {{ $d.scheduler.port | quote }}
      - --dashboard-address
      - {{ printf ":%d" (int $d.scheduler.dashboardPort) | quote }}
      {{- range $d.scheduler.extraArgs }}
      - {{ . | quote }}
      {{- end }}
    ports:
      - name: tcp-comm
        containerPort: {{ $d.scheduler.port }}
      - name: http-dashboard
        containerPort: {{ $d.scheduler.dashboardPort }}
    readinessProbe:
      httpGet:
        path: /health
        port: http-dashboard
      initialDelaySeconds: 5
      periodSeconds: 10
    livenessProbe:
      httpGet:
        path: /health
        port: http-dashboard
      initialDelaySeconds: 15
      periodSeconds: 20
    resources:
      {{- include "clustra.resources" $d.scheduler.resources | nindent 6 }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
{{- end -}}

{{/*
A worker pod spec. Call with (dict "ctx" $ "gpu" BOOL "operator" BOOL).
*/}}
{{- define "clustra.dask.workerPodSpec" -}}
{{- $ctx := .ctx -}}
{{- $d := $ctx.Values.dask -}}
{{- $w := ternary $d.gpuWorkers $d.workers .gpu -}}
{{- include "clustra.podCommon" (dict "ctx" $ctx "serviceAccount" true) }}
{{- include "clustra.scheduling" $w }}
containers:
  - name: worker
    image: {{ ternary (include "clustra.gpuImage" $ctx) (include "clustra.image" $ctx) .gpu }}
    imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
    command: ["dask"]
    args:
      {{- if .gpu }}
      - cuda
      {{- end }}
      - worker
      - {{ include "clustra.daskSchedulerAddress" $ctx | quote }}
      {{- if .operator }}
      - --name
      - $(DASK_WORKER_NAME)
      {{- end }}
      {{- if not .gpu }}
      - --nthreads
      - {{ $w.nthreads | quote }}
      {{- end }}
      - --memory-limit
      - {{ $w.memoryLimit | quote }}
      - --dashboard-address
      - {{ printf ":%d" (int $d.workers.dashboardPort) | quote }}
      {{- range $w.extraArgs }}
      - {{ . | quote }}
      {{- end }}
    env:
      {{- include "clustra.env" (dict "ctx" $ctx "auth" false) | nindent 6 }}
      # image files named in data columns are read only under the jobs API's readable roots
      - name: CLUSTRA_IMAGE_ROOTS
        value: {{ join ":" (concat $ctx.Values.data.roots (list (include "clustra.outputRoot" $ctx))) | quote }}
      # keep glibc's adaptive malloc in the worker processes: Dask's default
      # MALLOC_TRIM_THRESHOLD_=65536 makes Clustra's kernels 3-10x slower (docs/benchmarks.md)
      - name: DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON
        value: "{'MALLOC_TRIM_THRESHOLD_': None}"
    ports:
      - name: http-dashboard
        containerPort: {{ $d.workers.dashboardPort }}
    livenessProbe:
      httpGet:
        path: /health
        port: http-dashboard
      initialDelaySeconds: 15
      periodSeconds: 20
      failureThreshold: 6
    resources:
      {{- if .gpu }}
      {{- include "clustra.gpuResources" (dict "resources" $w.resources "gpus" $w.gpusPerPod) | nindent 6 }}
      {{- else }}
      {{- include "clustra.resources" $w.resources | nindent 6 }}
      {{- end }}
    securityContext:
      {{- toYaml $ctx.Values.securityContext | nindent 6 }}
    {{- with (include "clustra.volumeMounts" (dict "ctx" $ctx "data" true) | trim) }}
    volumeMounts:
      {{- . | nindent 6 }}
    {{- end }}
{{- with (include "clustra.volumes" (dict "ctx" $ctx "data" true) | trim) }}
volumes:
  {{- . | nindent 2 }}
{{- end }}
{{- end -}}
