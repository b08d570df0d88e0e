#!/usr/bin/env bash
# The V4L2 tests on a real device: the kernel's `vivid` driver in a
# throw-away qemu guest (scripts/vivid-vm.sh). Called by
# scripts/test.sh; runnable alone.
#
#   scripts/v4l2-vm-tests.sh            build the test binaries on the host, run them in the VM
#   scripts/v4l2-vm-tests.sh --guest …  (inside the VM) run the given test binaries
#
# Without qemu or the guest kernel it fails, saying what is missing
# (scripts/setup.sh installs and prepares both).
# Knobs: V4L2_BENCH=0 (skip the CPU
# benchmark), FRAMEWIRE_V4L2_BENCH_SECONDS (window per case, default 6).
# The benchmark's table lands in target/v4l2-bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--guest" ]; then
  shift
  ip link set lo up 2>/dev/null || busybox ip link set lo up
  export FRAMEWIRE_V4L2_DEVICE=/dev/video0 RUST_BACKTRACE=1
  echo "guest: $(uname -r), $(v4l2-ctl -d /dev/video0 --info 2>/dev/null | grep -m1 'Card type' | sed 's/.*: //') on /dev/video0"
  rc=0
  for bin in "$@"; do
    echo "== $(basename "$bin")"
    "$bin" --test-threads=1 --nocapture || rc=1
  done
  exit $rc
fi

VM=scripts/vivid-vm.sh
if ! "$VM" --check; then
  echo "v4l2: FAILED: the V4L2 device tests cannot run here (above: what is missing)"
  exit 1
fi

# Test executables (built here, run there: the guest sees this tree read-write).
bins=()
while IFS= read -r exe; do bins+=("$exe"); done < <(
  cargo test --locked --no-run --message-format=json -p framewire-media --test v4l2_device -p framewire --test v4l2 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("v4l2", "v4l2_device"):
        print(m["executable"])')
[ ${#bins[@]} -eq 2 ] || { echo "v4l2: could not find the test binaries (${bins[*]:-none})"; exit 1; }

# The benchmark measures the release build.
export FRAMEWIRE_V4L2_BENCH_OUT=$PWD/target/v4l2-bench.md
if [ "${V4L2_BENCH:-1}" = 1 ]; then
  cargo build --locked --release -p framewire --quiet
  export FRAMEWIRE_BENCH_BIN=$PWD/target/release/framewire
else
  export FRAMEWIRE_V4L2_BENCH_SECONDS=1
fi
rm -f "$FRAMEWIRE_V4L2_BENCH_OUT"

# The guest gets the host's environment only through the command line.
env_args=(FRAMEWIRE_V4L2_BENCH_OUT="$FRAMEWIRE_V4L2_BENCH_OUT")
[ -n "${FRAMEWIRE_BENCH_BIN:-}" ] && env_args+=(FRAMEWIRE_BENCH_BIN="$FRAMEWIRE_BENCH_BIN")
[ -n "${FRAMEWIRE_V4L2_BENCH_SECONDS:-}" ] && env_args+=(FRAMEWIRE_V4L2_BENCH_SECONDS="$FRAMEWIRE_V4L2_BENCH_SECONDS")
FW_VM_TIMEOUT=${FW_VM_TIMEOUT:-900} "$VM" env "${env_args[@]}" bash scripts/v4l2-vm-tests.sh --guest "${bins[@]}"
echo "v4l2: device tests passed on vivid in the VM"
[ -s "$FRAMEWIRE_V4L2_BENCH_OUT" ] && cat "$FRAMEWIRE_V4L2_BENCH_OUT"
exit 0
