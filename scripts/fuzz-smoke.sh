#!/usr/bin/env bash
# Runs every fuzz target for a bounded number of inputs (FUZZ_RUNS, default
# one million) or time (FUZZ_SECONDS, default 20), whichever ends first,
# seeded with the protocol document's hex vectors and the configuration
# document's examples. Stable toolchain: no
# sanitizer (the fuzzed crates hold no unsafe code of their own).
# FUZZ_PROFILE=release fuzzes an optimized build (ten times the inputs a
# second, twice the build time); the default, dev, is the smoke's.
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

total=0
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  t0=$(date +%s)
  log=$(mktemp)
  if ! cargo fuzz run "$PROFILE" --sanitizer none "$target" "corpus/$target" -- \
      -runs="$RUNS" -max_total_time="$SECS" -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $target FAILED (artifacts in fuzz/artifacts/$target)"
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  echo "fuzz: $target: $execs inputs in $(($(date +%s) - t0)) s (build included), no crash"
  total=$((total + execs))
  rm -f "$log"
done
echo "fuzz: $total inputs in all"
