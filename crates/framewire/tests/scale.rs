//! The scale benchmark's CI variant: `framewire bench scale` at small
//! sizes. Each part checks itself (every connection, subscriber, peer and
//! edge served, every missed frame counted) and goes past its size until
//! the node or controller refuses, which must be with a reason: a BUSY
//! answer past `max_connections`, discovery's refusals counted by reason,
//! a 503 with its reason past the web server's connections. The full
//! sizes are `framewire bench scale` (docs/reliability.md).

mod common;

use std::process::Command;
use std::time::Duration;

#[test]
fn every_part_serves_its_size_and_refuses_past_its_limit_with_a_reason() {
    let out = common::temp_dir("scale");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_framewire"));
    cmd.args(["bench", "scale", "--idle", "200", "--idle-cap", "300"])
        .args(["--fanout", "40", "--fanout-steps", "1", "--peers", "100"])
        .args([
            "--nodes",
            "10",
            "--edges",
            "16",
            "--web-clients",
            "20",
            "--web-steps",
            "6",
        ])
        .args(["--hold", "3s", "--out"])
        .arg(&out);
    let run = common::media::run(cmd, Duration::from_secs(420));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}\n{stdout}\n{report}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    // Each limit was found, and found as a refusal with a reason.
    assert!(
        report.contains("answered BUSY") && report.contains("at most 300"),
        "{report}"
    );
    assert!(report.contains("table-full"), "{report}");
    // 20 doubled six times passes the web server's 1024 connections.
    assert!(report.contains("503") && report.contains("connections"), "{report}");
    let _ = std::fs::remove_dir_all(&out);
}
