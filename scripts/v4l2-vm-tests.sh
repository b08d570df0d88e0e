#!/usr/bin/env bash
# The V4L2 tests on a real device: the kernel's `vivid` driver in a
# throw-away qemu guest (scripts/vivid-vm.sh). Called by
# scripts/test.sh; runnable alone.
#
#   scripts/v4l2-vm-tests.sh            build the test binaries on the host, run them in the VM
#   scripts/v4l2-vm-tests.sh --guest …  (inside the VM) run the given test binaries
#   scripts/v4l2-vm-tests.sh --guest-web BIN DIR  (inside the VM) serve the camera's
#                                        web UI on :7480 until DIR/stop appears
#
# Then the camera controls in the browser: a node with its controller and
# web UI runs in the guest on vivid, headless Chromium here drives the page
# through a forwarded loopback port (web-tests/camera.test.mjs).
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

if [ "${1:-}" = "--guest-web" ]; then
  bin=$2 dir=$3
  state=$(mktemp -d)
  for u in otto:operator vera:viewer; do
    echo "${u%%:*}-password" | "$bin" user add "${u%%:*}" --role "${u#*:}" --state-dir "$state" >/dev/null
  done
  # No camera yet: the browser test opens it.
  "$bin" node --name vm:cam --controller \
    --web 0.0.0.0:7480 --state-dir "$state" --listen 127.0.0.1:0 --discovery off >"$dir/node.log" 2>&1 &
  node=$!
  n=0
  until [ -e "$dir/stop" ] || ! kill -0 $node 2>/dev/null; do
    n=$((n + 1)); [ $n -gt 3000 ] && break; sleep 0.1
  done
  kill $node 2>/dev/null && wait $node
  exit 0
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

# The camera controls in the browser, against the node in the guest.
for tool in node "${CHROMIUM:-/usr/bin/chromium}"; do
  command -v "$tool" >/dev/null || { echo "v4l2: FAILED: the browser test needs $tool (scripts/setup.sh)"; exit 1; }
done
[ -d web-tests/node_modules/playwright-core ] || { echo "v4l2: FAILED: web-tests/node_modules is missing (scripts/setup.sh)"; exit 1; }
cargo build --locked -p framewire --quiet
web=$PWD/target/vm-web
rm -rf "$web" && mkdir -p "$web"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
FW_VM_FORWARD=$port:7480 FW_VM_TIMEOUT=400 "$VM" bash scripts/v4l2-vm-tests.sh --guest-web "$PWD/target/debug/framewire" "$web" \
  >"$web/vm.log" 2>&1 &
vm=$!
stop() { touch "$web/stop"; wait $vm 2>/dev/null || true; }
t0=$(date +%s)
# qemu answers on the forwarded port at once; the node's web UI only once the guest is up.
answers() { # any HTTP answer, even a refusal
  python3 -c 'import sys, urllib.request, urllib.error
try: urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError: pass' "$1" 2>/dev/null
}
until answers "http://127.0.0.1:$port/api/session"; do
  if ! kill -0 $vm 2>/dev/null || [ $(($(date +%s) - t0)) -gt 240 ]; then
    stop
    echo "v4l2: FAILED: the guest's web UI did not answer"; cat "$web/vm.log" "$web/node.log" 2>/dev/null
    exit 1
  fi
  sleep 0.5
done
echo "v4l2: the guest's web UI answers after $(($(date +%s) - t0)) s"
set +e
(cd web-tests && FW_URL="http://127.0.0.1:$port" FW_OPERATOR=otto:otto-password FW_VIEWER=vera:vera-password \
  FW_ARTIFACTS="$PWD/../target/browser-artifacts" timeout 300 node --test --test-timeout=120000 camera.test.mjs)
rc=$?
set -e
stop
if [ $rc != 0 ]; then
  echo "v4l2: FAILED: the camera controls in the browser"; cat "$web/node.log" 2>/dev/null
  exit 1
fi
echo "v4l2: camera controls tested in the browser on vivid in the VM"
exit 0
