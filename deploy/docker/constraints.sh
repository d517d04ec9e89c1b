#!/bin/sh
# Regenerate deploy/docker/constraints.txt from the project's .venv (run from the repository root).
set -eu
fsspec=$(.venv/bin/pip freeze | sed -n 's/^fsspec==//p')
{
  sed -n '1,4p' deploy/docker/constraints.txt
  .venv/bin/pip freeze | grep -v '^-e \|^torch=='
  echo "s3fs==${fsspec}"
} > deploy/docker/constraints.txt.new
mv deploy/docker/constraints.txt.new deploy/docker/constraints.txt
