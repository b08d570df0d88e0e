//! The browser rows of `framewire bench latency`: capture to drawn in
//! headless Chromium, read by the web UI's own time-code reader
//! (`web-tests/bench-latency.mjs`), for framewire and for ffmpeg serving
//! the same pictures (docs/latency.md).
//!
//! - MJPEG over HTTP, both in an `<img>`: framewire a source node, a relay
//!   node with `--web`, its `/stream/…/cam.mjpeg`; ffmpeg `framewire bench
//!   pattern | ffmpeg -f rawvideo … -c:v mjpeg -f mpjpeg -listen 1 http://…`
//!   (encoder and HTTP server in one process: one hop fewer than
//!   framewire's path).
//! - WebRTC (WHEP): framewire's live view of the relay's stream in its web
//!   UI, as the page reported it to the controller (`/api/latency`).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::procs::{self, Capture};

/// p50, p95, p99 in ms, and pictures read.
type Figures = (f64, f64, f64, u64);

/// `web-tests/bench-latency.mjs` of this source tree, with its packages.
fn script() -> anyhow::Result<PathBuf> {
    let dir = [
        PathBuf::from("web-tests"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web-tests"),
    ]
    .into_iter()
    .find(|d| d.join("bench-latency.mjs").is_file())
    .context("web-tests/bench-latency.mjs not found: run from the source tree (or pass --no-browser)")?;
    if !dir.join("node_modules/playwright-core").is_dir() {
        bail!(
            "{}/node_modules is missing: `npm ci --prefix web-tests` (scripts/setup.sh), or pass --no-browser",
            dir.display()
        );
    }
    Ok(dir.join("bench-latency.mjs"))
}

/// Runs the browser's reader with `args`; its figures.
fn chromium(script: &PathBuf, args: &[String]) -> anyhow::Result<Figures> {
    let mut cmd = Command::new("node");
    cmd.arg(script).args(args);
    let log = std::env::temp_dir().join(format!("framewire-bench-browser-{}.log", std::process::id()));
    let p = procs::spawn("browser reader", &mut cmd, Capture::Text, Some(&log))?;
    let text = p.output(Duration::from_secs(150));
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let v: serde_json::Value = serde_json::from_str(text.trim()).with_context(|| {
        let why: Vec<&str> = said.lines().filter(|l| l.starts_with("bench-latency")).collect();
        format!("the browser reader said {text:?} ({})", why.join("; "))
    })?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    Ok((f("p50_ms"), f("p95_ms"), f("p99_ms"), v["frames"].as_u64().unwrap_or(0)))
}

/// framewire's MJPEG over HTTP and live view: (mjpeg, whep).
fn framewire_case(
    script: &PathBuf,
    size: &str,
    fps: u32,
    quality: u8,
    seconds: u32,
) -> anyhow::Result<(Figures, Figures)> {
    let web = procs::free_port()?;
    let pattern = format!("test-pattern:cam,size={size},fps={fps},quality={quality}");
    let (s, r, _) = crate::latency::source_and_relay(&pattern, &["--web".into(), format!("127.0.0.1:{web}")])?;
    procs::wait_listening(web, Duration::from_secs(20), &r)?;
    let base = format!("http://127.0.0.1:{web}");
    let got = (|| {
        let mjpeg = chromium(
            script,
            &[
                "mjpeg".into(),
                format!("{base}/stream/bench:relay/cam.mjpeg"),
                seconds.to_string(),
                format!("{base}/api/session"),
            ],
        )?;
        let whep = chromium(
            script,
            &[
                "live".into(),
                format!("{base}/"),
                "bench:relay".into(),
                "cam".into(),
                seconds.to_string(),
            ],
        )?;
        Ok((mjpeg, whep))
    })();
    for p in [r.pid, s.pid] {
        procs::kill(p);
    }
    got
}

/// ffmpeg encoding the same pictures and serving them as multipart MJPEG.
fn ffmpeg_case(script: &PathBuf, size: &str, fps: u32, quality: u8, seconds: u32) -> anyhow::Result<Figures> {
    let exe = std::env::current_exe()?;
    let port = procs::free_port()?;
    // ffmpeg's scale of 2 (best) to 31: about JPEG quality 95 to 20.
    let q = (2 + (100 - u32::from(quality.min(100))) / 4).min(31);
    // The flags keep ffmpeg from queueing pictures: without them the same
    // run read p50 130 ms.
    let line = format!(
        "{} bench pattern --size {size} --fps {fps} | ffmpeg -hide_banner -loglevel error -fflags nobuffer \
         -thread_queue_size 1 -f rawvideo -pix_fmt bgra -s {size} -r {fps} -i - -fps_mode passthrough -threads 1 \
         -c:v mjpeg -q:v {q} -flush_packets 1 -f mpjpeg -content_type 'multipart/x-mixed-replace;boundary=ffmpeg' \
         -listen 1 http://127.0.0.1:{port}/cam.mjpeg",
        exe.display()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &line]).process_group(0);
    let p = procs::spawn("ffmpeg server", &mut cmd, Capture::Nothing, None)?;
    // ffmpeg takes one connection: no probing it; it listens within a second.
    std::thread::sleep(Duration::from_millis(1500));
    if !p.alive() {
        bail!("ffmpeg exited (ffmpeg with the mpjpeg muxer and HTTP: scripts/setup-bench.sh)");
    }
    let got = chromium(
        script,
        &[
            "mjpeg".into(),
            format!("http://127.0.0.1:{port}/cam.mjpeg"),
            seconds.to_string(),
        ],
    );
    procs::kill_group(p.pid);
    got
}

/// The browser rows: a table per round.
pub(crate) fn run(size: &str, fps: u32, quality: u8, frames: u32, rounds: u32) -> anyhow::Result<()> {
    let script = script()?;
    let seconds = frames.div_ceil(fps.max(1)).max(5);
    println!(
        "\nCapture to drawn in headless Chromium (software rendering): {size} MJPEG (quality {quality}) at {fps} fps, \
         {seconds} s per case; ms\n"
    );
    println!(
        "| round | framewire MJPEG `<img>` p50 / p95 / p99 | ffmpeg MJPEG `<img>` p50 / p95 / p99 | p50 framewire / ffmpeg | framewire WebRTC p50 / p95 / p99 |"
    );
    println!("|---|---|---|---|---|");
    for round in 1..=rounds.max(1) {
        let (fw, whep) = framewire_case(&script, size, fps, quality, seconds)?;
        let ff = ffmpeg_case(&script, size, fps, quality, seconds)?;
        println!(
            "| {round} | {:.1} / {:.1} / {:.1} ({} pictures) | {:.1} / {:.1} / {:.1} ({} pictures) | {:.2} | {:.1} / {:.1} / {:.1} ({} pictures) |",
            fw.0,
            fw.1,
            fw.2,
            fw.3,
            ff.0,
            ff.1,
            ff.2,
            ff.3,
            fw.0 / ff.0,
            whep.0,
            whep.1,
            whep.2,
            whep.3
        );
    }
    Ok(())
}
