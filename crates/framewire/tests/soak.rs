//! The soak's CI variant: `framewire bench soak` for 90 s (a camera
//! node, a relay, a recorder with an archive, a viewer window on Xvfb, a
//! controller with its web UI, and subscribers, web clients and ffmpeg
//! RTSP players joining and leaving all the time), which judges the run
//! itself: memory, descriptors and threads flat after the warm-up,
//! latency without an upward trend, every missed frame counted as a drop,
//! the archive's index matching its files, no process lost, no panic.
//! The hour-long run is `framewire bench soak` (docs/reliability.md).

// test-runner: alone (its verdict compares latency p99 early and late in the run; scripts/run-tests.py)

mod common;

use std::process::Command;
use std::time::Duration;

#[test]
fn ninety_seconds_of_clients_coming_and_going_leave_every_node_as_it_was() {
    let out = common::temp_dir("soak");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_framewire"));
    cmd.args([
        "bench",
        "soak",
        "--duration",
        "90s",
        "--sample",
        "3s",
        "--warmup",
        "30s",
        "--out",
    ])
    .arg(&out);
    let run = common::media::run(cmd, Duration::from_secs(240));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap_or_default();
    assert!(
        run.status.success(),
        "{}\n{report}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    for plot in ["rss.svg", "fds.svg", "threads.svg", "cpu.svg", "latency.svg"] {
        let svg = std::fs::read_to_string(out.join(plot)).unwrap();
        assert!(svg.contains("<polyline"), "{plot} has no line");
    }
    let csv = std::fs::read_to_string(out.join("samples.csv")).unwrap();
    assert!(csv.lines().count() >= 20, "{csv}");
    let _ = std::fs::remove_dir_all(&out);
}
