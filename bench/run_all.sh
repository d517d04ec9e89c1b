#!/usr/bin/env bash
# Run every Clustra benchmark in sequence and print their Markdown tables.
# Usage: bench/run_all.sh [output-file]   (takes about an hour and a half on a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
out=${1:-bench/out/all.md}
mkdir -p bench/out
{
  echo "# run at $(date -u +%FT%TZ) on $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
  echo "## clustering suite (algorithms on the reference preparation)"; $PY bench/clustering_suite.py --prep common 2>/dev/null
  echo "## clustering suite (full feature pipeline)"; $PY bench/clustering_suite.py --prep pipeline 2>/dev/null
  echo "## kmeans"; $PY bench/kmeans_peers.py 2>/dev/null; $PY bench/kmeans_peers.py --data blobs 2>/dev/null
  echo "## gmm"; $PY bench/gmm_peers.py 2>/dev/null
  echo "## hdbscan"; $PY bench/hdbscan_peers.py 2>/dev/null
  echo "## silhouette"; $PY bench/silhouette.py 2>/dev/null
  echo "## end to end vs Spark MLlib"; $PY bench/e2e_spark.py 2>/dev/null | grep -v WARN
  echo "## out of core"; $PY bench/out_of_core.py 2>/dev/null | grep -v "^\[\|done:"
  echo "## streaming featurize pass (pandas vs Arrow)"; $PY bench/streaming_pass.py 2>/dev/null | sed -n '/^same features/,$p'
  echo "## serving (wrk vs no-op Ray Serve apps)"; $PY bench/serve_load.py 2>/dev/null
  echo "## serving latency and bulk, default configuration (issue 20)"; $PY bench/serve_latency.py --profiles default,haproxy 2>/dev/null
  echo "## insights cost"; $PY bench/insights_cost.py 2>/dev/null
  echo "## end to end vs pandas + scikit-learn"; $PY bench/e2e_small.py 2>/dev/null | sed -n '/^| rows/,$p'; $PY bench/e2e_kmeans_peer.py 2>/dev/null | sed -n '/^| rows/,$p'
  echo "## recommendation (suite without k; held-out tables)"; $PY bench/recommendation.py --sets suite 2>/dev/null | tail -1; $PY bench/recommendation.py --sets packages 2>/dev/null
  echo "## serving drills (killed replica, moved alias)"; $PY bench/serve_replica_drill.py 2>/dev/null; $PY bench/serve_alias_drill.py 2>/dev/null
} | tee "$out"
