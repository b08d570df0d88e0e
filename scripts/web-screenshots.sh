#!/usr/bin/env bash
# Takes the screenshots docs/web.md shows, by running the browser tests
# (headless Chromium against `framewire demo` and `framewire up`, and
# against a node on vivid in the test VM for the camera controls), and
# copies them into docs/web/. Needs what scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test -p framewire --test browser -- --test-threads=1
V4L2_BENCH=0 bash scripts/v4l2-vm-tests.sh
mkdir -p docs/web
for f in $(grep -o 'web/[a-z0-9-]*\.png' docs/web.md | sort -u); do
  cp "target/browser-artifacts/${f#web/}" "docs/$f"
  echo "docs/$f"
done
