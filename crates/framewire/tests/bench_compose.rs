//! `framewire bench compose` end to end on small inputs: the compositor,
//! ffmpeg's xstack and GStreamer's compositor each measured, and the
//! compositor's added latency read off the time code; bounded in time.

// test-runner: alone (a benchmark: it measures the compositor's CPU and latency; scripts/run-tests.py)

use std::process::{Command, Stdio};
use std::time::Duration;

/// The number before `unit` after `label` in `line`.
fn figure(line: &str, label: &str, unit: &str) -> f64 {
    let rest = &line[line.find(label).unwrap_or_else(|| panic!("`{label}` in {line}")) + label.len()..];
    rest[..rest.find(unit).expect("a unit")]
        .trim()
        .parse()
        .expect("a figure")
}

#[test]
fn bench_compose_measures_the_three_and_the_added_latency() {
    let child = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["--log", "warn", "bench", "compose"])
        .args([
            "--size",
            "640x360",
            "--rounds",
            "1",
            "--seconds",
            "2",
            "--latency-seconds",
            "3",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start framewire bench compose");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("bench compose ends within 120 s")
        .expect("bench compose ran");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let row = text
        .lines()
        .find(|l| l.starts_with("| 1 |"))
        .unwrap_or_else(|| panic!("a round in\n{text}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    for cell in &cells[2..5] {
        let (cpu, fps) = cell.split_once(" % / ").unwrap_or_else(|| panic!("CPU / fps in {row}"));
        let (cpu, fps): (f64, f64) = (cpu.parse().expect("CPU"), fps.parse().expect("fps"));
        assert!(cpu > 0.0 && fps > 5.0, "{row}");
    }
    let line = text
        .lines()
        .find(|l| l.starts_with("Added latency"))
        .unwrap_or_else(|| panic!("the added latency in\n{text}"));
    let pictures = figure(line, "shows it, ", " input pictures");
    let (p50, p99) = (figure(line, "p50 ", " ms"), figure(line, "p99 ", " ms"));
    // Some pictures are never shown (two arrived within one output
    // frame); most are, within a few frames.
    assert!(pictures >= 20.0, "{line}");
    assert!(p50 > 0.0 && p50 <= p99 && p99 < 1000.0, "{line}");
}
