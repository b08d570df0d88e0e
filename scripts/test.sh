#!/usr/bin/env bash
# framewire's whole test run: what CI runs, and what a developer runs.
#   ./scripts/test.sh            everything (setup, fmt, clippy, tests, docs, fuzz smoke)
# Knobs: FUZZ_RUNS (inputs per fuzz target, default 1000000),
#        FUZZ_SECONDS (time cap per fuzz target, default 12 here), SKIP_FUZZ=1,
#        V4L2_BENCH=1 (the V4L2 capture benchmark on a release build),
#        TEST_JOBS=1 (test binaries one after another, as `cargo test` runs them).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# A whole run builds once: incremental state would only take disk (GBs).
export CARGO_INCREMENTAL=0
step() { printf '\n== %s (%ss)\n' "$*" "$(($(date +%s) - start))"; }

step "setup"
bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (two test binaries at a time: scripts/run-tests.py)"
python3 scripts/run-tests.py --locked

step "V4L2 device tests (the vivid driver in a qemu guest)"
# The capture benchmark runs too, on the debug build with short windows, so
# it keeps working; its figures come from scripts/v4l2-vm-tests.sh alone
# (a release build, docs/benchmarks.md). V4L2_BENCH=1 measures here too.
V4L2_BENCH=${V4L2_BENCH:-0} bash scripts/v4l2-vm-tests.sh

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  step "fuzz smoke"
  # 12 s a target keeps the whole run well under 30 minutes on 2 cores.
  FUZZ_SECONDS=${FUZZ_SECONDS:-12} bash scripts/fuzz-smoke.sh
fi

step "all passed"
