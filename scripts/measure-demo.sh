#!/usr/bin/env bash
# Times a newcomer's first run (docs/operations.md, "The demo"): a clean
# clone of this repository into a temporary directory, then
# ./scripts/demo.sh from it, until the demo prints the web UI's URL. The
# build starts from nothing (its own target directory); crates already in
# ~/.cargo's registry are not downloaded again. Runs outside CI: it takes
# minutes and both cores.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
t0=$(date +%s.%N)
git clone -q "$src" "$dir/framewire"
cd "$dir/framewire"
CARGO_TARGET_DIR="$dir/target" ./scripts/demo.sh --duration 20 > "$dir/out" 2>&1 &
pid=$!
until grep -q '^web UI: http' "$dir/out"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$dir/out"
    echo "measure-demo: the demo ended before printing its URL" >&2
    exit 1
  fi
  sleep 0.5
done
t1=$(date +%s.%N)
grep -E '^(setup|demo) +\[' "$dir/out" || true
grep -m1 '^web UI:' "$dir/out"
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "measure-demo: clean clone to the web UI URL in %.0f s (target: under 300 s)\n", b - a }'
