//! `framewire latency`: the time code in the test pattern's pictures read
//! back after a relay, decoded (MJPEG and H.264), as a user runs it.

// test-runner: alone (it holds latencies to bounds; scripts/run-tests.py)

mod common;

use std::process::Command;
use std::time::Duration;

/// A node serving `cam`, a 640x360 30 fps MJPEG test pattern, and `more`.
fn source(more: &[&str]) -> common::NodeProc {
    let mut args = vec![
        "--name",
        "t:src",
        "--discovery",
        "off",
        "--source",
        "test-pattern:cam,size=640x360,fps=30",
    ];
    args.extend_from_slice(more);
    common::spawn_node(&args)
}

/// `framewire latency ADDR STREAM --frames N --json`'s result.
fn latency(addr: &str, stream: &str, frames: u32) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_framewire"));
    cmd.args(["latency", addr, stream, "--frames", &frames.to_string(), "--json"]);
    let out = common::media::run(cmd, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stream} at {addr}: {err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("{stream} at {addr}: {v}");
    v
}

#[test]
fn latency_reads_every_pictures_code_through_a_relay() {
    let src = source(&["--source", "test-pattern:h,size=640x360,fps=30,format=h264"]);
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
        let v = latency(&relay.addr.to_string(), stream, 60);
        assert_eq!(v["frames"], 60, "{v}");
        assert_eq!(
            (v["no_code"].as_u64(), v["undecodable"].as_u64()),
            (Some(0), Some(0)),
            "{v}"
        );
        // Capture to decoded after a relay on loopback: milliseconds, not
        // a frame interval behind (and never negative).
        let p50 = v["p50_ms"].as_f64().unwrap();
        assert!(p50 > 0.0 && p50 < 100.0, "{stream}: p50 {p50} ms\n{}", relay.log());
        assert!(v["max_ms"].as_f64().unwrap() < 1000.0, "{stream}: {v}");
        // The stages: arrival before decoding, both within the whole.
        let (arrived, decode) = (
            v["arrived_p50_ms"].as_f64().unwrap(),
            v["decode_p50_ms"].as_f64().unwrap(),
        );
        assert!(
            arrived > 0.0 && decode > 0.0 && arrived < p50 && decode < p50,
            "{stream}: {v}"
        );
    }
}

/// The meter reads back a delay added on purpose: the same stream through
/// a proxy that holds every byte 50 ms is 50 ms older, within 2 ms.
#[test]
fn a_link_that_adds_50_ms_reads_50_ms_more() {
    let src = source(&[]);
    let delayed = common::delay::delay_proxy(src.addr, Duration::from_millis(50));
    // In turn, twice each, so a busy moment of the machine hits both.
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        direct.push(latency(&src.addr.to_string(), "cam", 90)["p50_ms"].as_f64().unwrap());
        through.push(latency(&delayed.to_string(), "cam", 90)["p50_ms"].as_f64().unwrap());
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let added = best(&through) - best(&direct);
    println!("p50 direct {direct:?} ms, through the 50 ms link {through:?} ms: {added:.2} ms added");
    assert!((added - 50.0).abs() <= 2.0, "read {added:.2} ms for a 50 ms link");
}

/// Capture to shown: `framewire view` in an Xvfb window, read back off
/// the screen by `framewire latency --x11` (MIT-SHM grabs).
#[test]
fn latency_reads_the_pictures_a_viewer_window_shows() {
    let Some(x) = common::xvfb::Xvfb::start(&["640x360x24"]) else {
        return;
    };
    let src = source(&[]);
    let mut viewer = std::process::Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args([
            "view",
            &src.addr.to_string(),
            "cam",
            "--size",
            "640x360",
            "--position",
            "0,0",
        ])
        .args(["--exit-after", "60"])
        .env("DISPLAY", &x.display)
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("framewire view runs");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_framewire"));
    cmd.args([
        "latency",
        "--x11",
        &x.display,
        "--rect",
        "0,0,640,360",
        "--frames",
        "60",
        "--json",
    ]);
    cmd.args(["--idle-timeout", "20"]);
    let out = common::media::run(cmd, Duration::from_secs(60));
    let _ = viewer.kill();
    let _ = viewer.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("viewer window: {v}\n{err}");
    assert_eq!(v["frames"], 60, "{v}");
    let p50 = v["p50_ms"].as_f64().unwrap();
    // Drawn in software (llvmpipe) on two shared cores: tens of ms, not a
    // second.
    assert!(p50 > 0.0 && p50 < 200.0, "p50 {p50} ms");
}

/// A source that is not the test pattern carries the code when asked
/// (`timecode=true`): a screen grab of an Xvfb display, read at a relay.
#[test]
fn a_screen_grab_with_the_overlay_carries_the_code() {
    let Some(x) = common::xvfb::Xvfb::start(&["640x360x24"]) else {
        return;
    };
    let spec = format!("x11:desk,display={},fps=30,format=mjpeg,timecode=true", x.display);
    let src = common::spawn_node(&["--name", "t:desk", "--discovery", "off", "--source", &spec]);
    let relay = common::spawn_node(&[
        "--name",
        "t:relay",
        "--discovery",
        "off",
        "--upstream",
        &format!("{}/desk", src.addr),
    ]);
    let v = latency(&relay.addr.to_string(), "desk", 30);
    assert_eq!(v["frames"], 30, "{v}");
    assert_eq!(v["no_code"].as_u64(), Some(0), "{v}\n{}", src.log());
    let p50 = v["p50_ms"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 < 200.0, "p50 {p50} ms");
}
