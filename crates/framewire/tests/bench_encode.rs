//! `framewire bench encode` end to end on a small picture: both encoders
//! (OpenH264 in process, libx264 through ffmpeg) and the node's output
//! measured, every row with figures; bounded in time.

// test-runner: alone (a benchmark: it measures the encoders' CPU and delay; scripts/run-tests.py)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn bench_encode_measures_both_encoders_and_a_node() {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["--log", "warn", "bench", "encode"])
        .args([
            "--size",
            "320x240",
            "--frames",
            "30",
            "--secs",
            "1",
            "--bitrate",
            "500000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start framewire bench encode");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(90))
        .expect("bench encode ends within 90 s")
        .expect("bench encode ran");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for row in [
        "| OpenH264, in process (framewire) |",
        "| libx264 ultrafast zerolatency, ffmpeg child |",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("{row} in\n{text}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let cpu: f64 = cells[2].trim_end_matches(" %").parse().expect("a CPU figure");
        let delay: f64 = cells[3].trim_end_matches(" ms").parse().expect("a delay figure");
        let rate: f64 = cells[5].trim_end_matches(" Mbit/s").parse().expect("a bit rate");
        assert!(cpu > 0.0 && delay > 0.0 && rate > 0.05, "{line}");
    }
    assert!(text.contains("per H.264 stream on a node:"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(90));
}
