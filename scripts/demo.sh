#!/usr/bin/env bash
# Sets up (system packages, release build) and runs `framewire demo`: a
# source, a relay, a low-latency viewer and a completeness archive on
# 127.0.0.1, with live per-edge figures, and a controller whose web UI it
# prints (http://127.0.0.1:7480/). Extra arguments go to the demo
# (see `framewire demo --help`), e.g. ./scripts/demo.sh --size 1920x1080 --fps 60
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "demo: building (release; the first build takes a few minutes)"
cargo build --release --locked -p framewire --quiet
exec ./target/release/framewire demo "$@"
