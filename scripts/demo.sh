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
# The dev profile: the build the tests share, about two minutes from
# scratch on two cores (the codecs and the compositor are optimised in it;
# `cargo build --release` is for deployments and benchmarks).
step "building framewire (the first build takes about two minutes)"
cargo build --locked -p framewire
step "starting the demo"
exec "${CARGO_TARGET_DIR:-target}/debug/framewire" demo "$@"
