#!/usr/bin/env bash
# Hunt flaky tests the way CI meets them: a fresh clone of the current commit, `make test`
# (the README's test command) run N times in a row in it. Prints one line per run and the
# failures of each failed run; exits non-zero when any run failed.
# Usage: bench/flake_hunt.sh [runs=5] [clone-dir]
set -uo pipefail
runs=${1:-5}
repo=$(cd "$(dirname "$0")/.." && pwd)
clone=${2:-$(mktemp -d /tmp/clustra-flake-hunt.XXXXXX)}
git clone --quiet "$repo" "$clone/repo" || exit 1
cd "$clone/repo" || exit 1
echo "# flake hunt: $runs x make test at $(git rev-parse --short HEAD), $(nproc) cores, $(date -u +%FT%TZ)"
failed=0
for i in $(seq 1 "$runs"); do
  started=$(date +%s)
  if make test >"$clone/run-$i.log" 2>&1; then verdict=passed; else verdict=FAILED; failed=$((failed + 1)); fi
  summary=$(grep -E "^=+ .*(passed|failed).* =+$" "$clone/run-$i.log" | tail -1)
  echo "run $i: $verdict in $(( $(date +%s) - started )) s: $summary"
  [ "$verdict" = FAILED ] && grep -E "^(FAILED|ERROR) " "$clone/run-$i.log" | sed 's/^/    /'
done
echo "# $((runs - failed)) of $runs runs passed (logs in $clone)"
[ "$failed" -eq 0 ]
