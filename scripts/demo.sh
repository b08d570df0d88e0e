#!/usr/bin/env bash
# Sets up what the demo needs (scripts/setup-demo.sh: the build's system
# packages and ffmpeg), builds framewire, and runs `framewire demo`: a
# source, a relay, a viewer (a window when there is a display) and an
# archive recording into a temporary directory, on 127.0.0.1, with live
# per-edge figures and a controller whose web UI it prints first
# (http://127.0.0.1:7480/). A progress line per step. Extra arguments go
# to the demo (see `framewire demo --help`), e.g.
#   ./scripts/demo.sh --size 1920x1080 --fps 60
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
step() { printf 'demo  [%3ss] %s\n' "$(($(date +%s) - t0))" "$*"; }
step "setting up (system packages for the build and ffmpeg)"
bash scripts/setup-demo.sh
step "building framewire (release profile; the first build takes a few minutes)"
cargo build --release --locked -p framewire
step "starting the demo"
exec ./target/release/framewire demo "$@"
