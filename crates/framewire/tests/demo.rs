//! `framewire demo` as a newcomer meets it: the web UI's address first,
//! the viewer in a real window when there is a display, and the archive
//! recording into a directory that `framewire archive ls` reads afterwards.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::eventually_every;
use common::xvfb::{Xvfb, close, screenshot};

#[test]
fn the_demo_shows_a_window_records_and_says_where() {
    let Some(x) = Xvfb::start(&["1024x768x24"]) else { return };
    let dir = common::temp_dir("demo-archive");
    let archive = dir.join("archive");
    let mut child = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args([
            "demo",
            "--duration",
            "8",
            "--size",
            "640x360",
            "--fps",
            "10",
            "--view-port",
            "0",
        ])
        .args(["--web", "127.0.0.1:0", "--state-dir"])
        .arg(dir.join("state"))
        .arg("--archive-dir")
        .arg(&archive)
        .env("DISPLAY", &x.display)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = Arc::new(Mutex::new(String::new()));
    let (o2, stdout) = (out.clone(), child.stdout.take().unwrap());
    let (read_all, all_read) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut o = o2.lock().unwrap();
            o.push_str(&line);
            o.push('\n');
        }
        drop(read_all);
    });
    // A picture in the window at 0,0 while it runs: the bars differ.
    let start = Instant::now();
    let every = Duration::from_millis(300);
    let shown = eventually_every(Duration::from_secs(15), every, || {
        let px = screenshot(&x.display);
        let (left, right) = (px(40, 100), px(600, 100));
        (left != 0 && !close(left, right, 40)).then_some(())
    })
    .is_some();
    let left = Duration::from_secs(60).saturating_sub(start.elapsed());
    let ended =
        eventually_every(left, Duration::from_millis(100), || child.try_wait().unwrap()).expect("the demo did not end");
    // Everything it said, once its output is closed.
    let _ = all_read.recv_timeout(Duration::from_secs(5));
    let text = out.lock().unwrap().clone();
    assert!(ended.success(), "{text}");
    assert!(shown, "no picture in the viewer's window:\n{text}");
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("web UI: http://127.0.0.1:"), "first line: {first}");
    assert!(
        text.contains(&format!("viewer:          a window on display {}", x.display)),
        "{text}"
    );
    assert!(
        text.contains(&format!("recording into {}", archive.display())),
        "{text}"
    );
    // The viewer's window takes frames (its sink's row in the live table).
    assert!(
        text.lines()
            .any(|l| l.starts_with("demo:viewer") && l.contains("sink:view")),
        "{text}"
    );
    assert!(
        text.contains(&format!("framewire archive ls --dir {}", archive.display())),
        "{text}"
    );
    // What the demo recorded, as the command it names reads it.
    let ls = common::run_cli(&["archive", "ls", "--json", "--dir", archive.to_str().unwrap()]);
    assert!(ls.status.success(), "{}", String::from_utf8_lossy(&ls.stderr));
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let frames: u64 = v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["frames"].as_u64().unwrap_or(0))
        .sum();
    assert!(frames >= 30, "{frames} frames recorded in 8 s at 10 fps: {v}");
}
