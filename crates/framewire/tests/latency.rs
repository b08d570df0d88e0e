//! `framewire latency`: the time code in the test pattern's pictures read
//! back after a relay, decoded (MJPEG and H.264), as a user runs it.

mod common;

use std::process::Command;
use std::time::Duration;

#[test]
fn latency_reads_every_pictures_code_through_a_relay() {
    let src = common::spawn_node(&[
        "--name",
        "t:src",
        "--discovery",
        "off",
        "--source",
        "test-pattern:cam,size=640x360,fps=30",
        "--source",
        "test-pattern:h,size=640x360,fps=30,format=h264",
    ]);
    let relay = common::spawn_node(&[
        "--name",
        "t:relay",
        "--discovery",
        "off",
        "--upstream",
        &format!("{}/cam", src.addr),
        "--upstream",
        &format!("{}/h", src.addr),
    ]);
    for stream in ["cam", "h"] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_framewire"));
        cmd.args(["latency", &relay.addr.to_string(), stream, "--frames", "60", "--json"]);
        let out = common::media::run(cmd, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stream}: {err}\n{}", relay.log());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        println!("{stream}: {v}");
        assert_eq!(v["frames"], 60, "{v}");
        assert_eq!(
            (v["no_code"].as_u64(), v["undecodable"].as_u64()),
            (Some(0), Some(0)),
            "{v}"
        );
        // Capture to decoded after a relay on loopback: milliseconds, not
        // a frame interval behind (and never negative).
        let p50 = v["p50_ms"].as_f64().unwrap();
        assert!(p50 > 0.0 && p50 < 100.0, "{stream}: p50 {p50} ms");
        assert!(v["max_ms"].as_f64().unwrap() < 1000.0, "{stream}: {v}");
    }
}
