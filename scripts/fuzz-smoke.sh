#!/usr/bin/env bash
# Runs every fuzz target for a bounded number of inputs (FUZZ_RUNS, default
# one million) or time (FUZZ_SECONDS, default 20), whichever ends first,
# seeded with the protocol document's hex vectors and the configuration
# document's examples. Stable toolchain: no
# sanitizer (the fuzzed crates hold no unsafe code of their own).
# FUZZ_PROFILE=release fuzzes an optimized build (ten times the inputs a
# second, twice the build time); the default, dev, is the smoke's.
# FUZZ_JOBS (default 2) targets run at a time, each on one core.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
RUNS=${FUZZ_RUNS:-1000000}
SECS=${FUZZ_SECONDS:-20}
case "${FUZZ_PROFILE:-dev}" in
  dev) PROFILE=--dev ;;
  release) PROFILE=--release ;;
  *) echo "fuzz: FUZZ_PROFILE is dev or release, not ${FUZZ_PROFILE}"; exit 1 ;;
esac

# Seed corpus for the protocol decoder: each documented vector, prefixed with
# the byte the target reads as its split size.
mkdir -p corpus/proto_decode
python3 - <<'PY'
import re, pathlib
text = pathlib.Path("../docs/protocol.md").read_text()
for m in re.finditer(r"```hex (\S+)\n(.*?)```", text, re.S):
    hexs = "".join(line.split("#")[0] for line in m.group(2).splitlines())
    data = bytes.fromhex("".join(hexs.split()))
    pathlib.Path(f"corpus/proto_decode/{m.group(1)}").write_bytes(bytes([7]) + data)
PY
# Seeds for a node's command session: the documented requests, one at a
# time and all in a row.
mkdir -p corpus/node_session
python3 - <<'PY'
import re, pathlib
text = pathlib.Path("../docs/protocol.md").read_text()
every = b""
for m in re.finditer(r"```hex (\S+)\n(.*?)```", text, re.S):
    hexs = "".join(line.split("#")[0] for line in m.group(2).splitlines())
    data = bytes.fromhex("".join(hexs.split()))
    if data[:2] == b"\x02\x00":  # a control request
        pathlib.Path(f"corpus/node_session/{m.group(1)}").write_bytes(data)
        every += data
pathlib.Path("corpus/node_session/all-requests").write_bytes(every)
PY

# Seeds for the configuration parser: docs/config.md's TOML examples.
mkdir -p corpus/config_toml
python3 - <<'PY'
import re, pathlib
text = pathlib.Path("../docs/config.md").read_text()
for i, m in enumerate(re.finditer(r"```toml\n(.*?)```", text, re.S)):
    pathlib.Path(f"corpus/config_toml/config-md-{i}").write_text(m.group(1))
PY

# Seeds for the wanted graph: docs/controller.md's TOML examples, as TOML
# (first byte 0) and as JSON (first byte 1).
mkdir -p corpus/wanted_graph
python3 - <<'PY'
import json, re, pathlib, tomllib
text = pathlib.Path("../docs/controller.md").read_text()
for i, m in enumerate(re.finditer(r"```toml\n(.*?)```", text, re.S)):
    doc = m.group(1)
    pathlib.Path(f"corpus/wanted_graph/controller-md-{i}.toml").write_bytes(b"\0" + doc.encode())
    try:
        as_json = json.dumps(tomllib.loads(doc))
    except tomllib.TOMLDecodeError:
        continue
    pathlib.Path(f"corpus/wanted_graph/controller-md-{i}.json").write_bytes(b"\1" + as_json.encode())
PY

# Every target in one build: the dependencies compile once, the targets in
# parallel.
cargo fuzz build "$PROFILE" --sanitizer none >/dev/null 2>&1 || cargo fuzz build "$PROFILE" --sanitizer none

# Two targets at a time (FUZZ_JOBS): a fuzzer runs on one core.
JOBS=${FUZZ_JOBS:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fuzz_one() {
  local target=$1 t0 execs
  t0=$(date +%s)
  mkdir -p "corpus/$target"
  if ! cargo fuzz run "$PROFILE" --sanitizer none "$target" "corpus/$target" -- \
      -runs="$RUNS" -max_total_time="$SECS" -print_final_stats=1 >"$out/$target.log" 2>&1; then
    { tail -40 "$out/$target.log"
      echo "fuzz: $target FAILED (artifacts in fuzz/artifacts/$target)"; } >"$out/$target.failed"
    return
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$target.log" | grep -o '[0-9]*$' || echo 0)
  echo "$execs" >"$out/$target.execs"
  echo "fuzz: $target: $execs inputs in $(($(date +%s) - t0)) s, no crash"
}
targets=$(cargo fuzz list)
for target in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  fuzz_one "$target" &
done
wait
total=0
failed=0
for target in $targets; do
  if [ -e "$out/$target.failed" ]; then
    cat "$out/$target.failed"
    failed=1
  elif [ -e "$out/$target.execs" ]; then
    total=$((total + $(cat "$out/$target.execs")))
  else
    echo "fuzz: $target did not report"
    failed=1
  fi
done
[ $failed = 0 ] || exit 1
echo "fuzz: $total inputs in all"
