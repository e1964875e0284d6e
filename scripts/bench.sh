#!/usr/bin/env bash
# Runs every benchmark in test/bench/ (each prints its own ratio lines against its peer).
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
for b in test/bench/*.sh; do
  [ -e "$b" ] || continue
  echo "=== $(basename "$b")"
  bash "$b" || { echo "benchmark $b failed"; rc=1; }
done
exit $rc
