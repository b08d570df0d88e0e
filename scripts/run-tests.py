#!/usr/bin/env python3
"""Runs the workspace's tests two test binaries at a time.

`cargo test` runs its test binaries one after another. Most of ours start
nodes and wait on them (links, timers, restarts), so one binary at a time
leaves the machine three-quarters idle. This builds every test binary with
cargo (`cargo test --no-run`), runs them as cargo would (from the package's
directory), JOBS at a time, then runs the doc tests.

A test file that measures time or rates against a bound, or keeps the
cores busy on its own, says so with the line

    // test-runner: alone (why)

near its top, and runs with nothing beside it.

Each binary's output is kept in target/test-logs/ and printed whole when
it fails; every binary runs (no stop at the first failure), and the exit
status is 1 when any failed.

    scripts/run-tests.py [CARGO TEST ARGS...]    e.g. --locked
Knobs: TEST_JOBS (binaries at a time; default the CPU count, at most 2;
       1 runs them one after another), TEST_BINARY_TIMEOUT (seconds a
       binary may take, default 1200).
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "target" / "test-logs"
MARK = re.compile(r"^\s*//[/!]?\s*test-runner:\s*alone\b")


class Binary:
    def __init__(self, msg):
        target = msg["target"]
        self.exe = msg["executable"]
        self.dir = str(Path(msg["manifest_path"]).parent)
        self.src = target["src_path"]
        kind = target["kind"][0]
        self.integration = kind == "test"
        rel = os.path.relpath(self.src, self.dir)
        crate = Path(self.dir).name
        self.label = f"{crate} {rel}" if kind in ("test", "bench") else f"{crate} {kind} ({rel})"
        self.log = LOGS / (Path(self.exe).name + ".log")
        self.alone = alone(self.src)
        self.status = None
        self.secs = 0.0


def alone(src):
    """Whether the file asks to run with nothing beside it."""
    try:
        with open(src, encoding="utf-8") as f:
            head = [next(f, "") for _ in range(60)]
    except OSError:
        return False
    return any(MARK.match(line) for line in head)


def build(cargo_args):
    """Builds every test binary; returns them in cargo's order."""
    cmd = ["cargo", "test", "--workspace", "--no-run", "--message-format=json-render-diagnostics", *cargo_args]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    bins = []
    for line in p.stdout:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"]:
            bins.append(Binary(msg))
    if p.wait() != 0:
        sys.exit("tests: the build failed (above)")
    return bins


def run(b, timeout, lock):
    t0 = time.monotonic()
    with open(b.log, "w") as out:
        try:
            p = subprocess.run([b.exe], cwd=b.dir, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
            b.status = p.returncode
        except subprocess.TimeoutExpired:
            b.status = f"timed out after {timeout} s"
    b.secs = time.monotonic() - t0
    with lock:
        report(b)


def report(b):
    if b.status == 0:
        print(f"  ok    {b.label}  {b.secs:.1f} s", flush=True)
        return
    print(f"  FAIL  {b.label}  {b.secs:.1f} s ({b.status}); its output:", flush=True)
    print(b.log.read_text(errors="replace"), flush=True)


def main():
    cargo_args = sys.argv[1:]
    jobs = int(os.environ.get("TEST_JOBS", min(os.cpu_count() or 1, 2)))
    timeout = int(os.environ.get("TEST_BINARY_TIMEOUT", 1200))
    LOGS.mkdir(parents=True, exist_ok=True)
    bins = build(cargo_args)
    start = time.monotonic()
    print(f"\ntests: {len(bins)} test binaries, {jobs} at a time "
          f"({sum(b.alone for b in bins)} alone); logs in {os.path.relpath(LOGS)}", flush=True)
    lock = threading.Lock()
    running = []
    # Those that run alone first, one after another; then the others two
    # at a time, integration tests (which start processes and wait on
    # them: the long ones) before the unit tests, so short ones fill the
    # end.
    pending = [b for b in bins if b.alone]
    pending += sorted((b for b in bins if not b.alone), key=lambda b: not b.integration)
    while pending or running:
        running = [t for t in running if t[1].is_alive()]
        if pending:
            nxt = pending[0]
            room = not running if (nxt.alone or jobs == 1) else len(running) < jobs
            if room:
                pending.pop(0)
                t = threading.Thread(target=run, args=(nxt, timeout, lock))
                t.start()
                running.append((nxt, t))
                continue
        time.sleep(0.05)
    wall = time.monotonic() - start
    failed = [b for b in bins if b.status != 0]
    slow = sorted(bins, key=lambda b: -b.secs)[:5]
    print(f"\ntests: {len(bins) - len(failed)} of {len(bins)} binaries passed in {wall:.0f} s "
          f"({sum(b.secs for b in bins):.0f} s one after another); slowest: "
          + ", ".join(f"{b.label} {b.secs:.0f} s" for b in slow), flush=True)

    print("\ntests: doc tests", flush=True)
    doc = subprocess.run(["cargo", "test", "--workspace", "--doc", *cargo_args], cwd=ROOT).returncode
    if failed or doc != 0:
        names = [b.label for b in failed] + (["doc tests"] if doc != 0 else [])
        sys.exit("tests: FAILED: " + "; ".join(names))


if __name__ == "__main__":
    main()
