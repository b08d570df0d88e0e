//! `framewire bench compose`: CPU of a compositor drawing N MJPEG streams
//! in a grid and encoding the canvas as MJPEG, beside ffmpeg's `xstack`
//! and GStreamer's `compositor` doing the same job on the same streams, in
//! one run (docs/compose.md).
//!
//! **Method.** One source node draws N test patterns (MJPEG at the given
//! size and rate) and serves each also on a headerless TCP port (the bytes
//! of its JPEGs, `--opaque`). Then, in turn, for each round:
//! - framewire: a node with `compose:wall,size=1920x1080,inputs=…` pulling
//!   the N streams over framewire's protocol;
//! - ffmpeg: `-f mjpeg -i tcp://…` per stream, each scaled to its tile,
//!   `xstack` into 1920x1080, `-c:v mjpeg`, output discarded;
//! - GStreamer: `tcpclientsrc do-timestamp=true ! jpegparse ! jpegdec` per
//!   stream into `compositor` (each pad sized to its tile), `jpegenc`,
//!   `fpsdisplaysink` counting.
//!
//! After 3 s of warm-up each runs a window; its CPU time over the window
//! (from /proc) and the frames it made are reported. Both decode every
//! JPEG they are given (ffmpeg all of them; framewire the newest per
//! output frame, at the smallest size libjpeg-turbo scales to that still
//! fills the tile).

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::procs::{self, Capture};

/// CPU of a compositor beside ffmpeg's xstack.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Inputs (a square number: 4, 9, 16).
    #[arg(long, default_value_t = 4)]
    inputs: u32,
    /// Each input's picture size.
    #[arg(long, default_value = "1920x1080")]
    size: String,
    /// Frames a second of the inputs and the canvas.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Seconds measured per case.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Times each case runs, in turn.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Seconds of the added-latency measurement (0: none).
    #[arg(long, default_value_t = 10.0)]
    latency_seconds: f64,
}

/// CPU share of one core and frames a second over the window.
struct Measured {
    cpu: f64,
    fps: f64,
}

fn frames_out(exe: &std::path::Path, port: u16) -> Option<u64> {
    let out = Command::new(exe)
        .args(["stats", &format!("127.0.0.1:{port}"), "--json"])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["inputs"].as_array()?.iter().find(|i| i["stream"] == "wall")?["frames_in"].as_u64()
}

/// A compose node pulling the N streams of `src`; its port.
fn compose_node(a: &Args, src: u16) -> anyhow::Result<(procs::Proc, u16)> {
    let exe = std::env::current_exe()?;
    let port = procs::free_port()?;
    let inputs: Vec<String> = (0..a.inputs).map(|i| format!("127.0.0.1:{src}/c{i}")).collect();
    let mut cmd = Command::new(&exe);
    cmd.args(["node", "--name", "bench:wall", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--discovery", "off", "--no-shm", "--source"])
        .arg(format!(
            "compose:wall,size=1920x1080,fps={},quality=85,inputs={}",
            a.fps,
            inputs.join(";")
        ));
    let p = procs::spawn("compose node", &mut cmd, Capture::Nothing, None)?;
    procs::wait_listening(port, Duration::from_secs(20), &p)?;
    Ok((p, port))
}

fn framewire_case(a: &Args, src: u16) -> anyhow::Result<Measured> {
    let exe = std::env::current_exe()?;
    let (p, port) = compose_node(a, src)?;
    std::thread::sleep(Duration::from_secs(3));
    let (c0, f0, t0) = (procs::cpu_seconds(p.pid), frames_out(&exe, port), Instant::now());
    std::thread::sleep(Duration::from_secs(a.seconds));
    let (c1, f1, took) = (
        procs::cpu_seconds(p.pid),
        frames_out(&exe, port),
        t0.elapsed().as_secs_f64(),
    );
    procs::kill(p.pid);
    let (Some(c0), Some(c1), Some(f0), Some(f1)) = (c0, c1, f0, f1) else {
        bail!("the compose node could not be measured (it exited?)");
    };
    Ok(Measured {
        cpu: (c1 - c0) / took,
        fps: (f1 - f0) as f64 / took,
    })
}

fn ffmpeg_case(a: &Args, ports: &[u16]) -> anyhow::Result<Measured> {
    let side = (1..=a.inputs).find(|s| s * s >= a.inputs).unwrap_or(1);
    let (tw, th) = (1920 / side, 1080 / side);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostats", "-progress", "pipe:1"]);
    for p in ports {
        // The rate given: the mjpeg demuxer would assume 25 fps.
        cmd.args([
            "-f",
            "mjpeg",
            "-framerate",
            &a.fps.to_string(),
            "-i",
            &format!("tcp://127.0.0.1:{p}"),
        ]);
    }
    let mut graph = String::new();
    let mut layout = Vec::new();
    for i in 0..a.inputs {
        graph.push_str(&format!("[{i}:v]scale={tw}:{th}[t{i}];"));
        layout.push(format!("{}_{}", (i % side) * tw, (i / side) * th));
    }
    for i in 0..a.inputs {
        graph.push_str(&format!("[t{i}]"));
    }
    graph.push_str(&format!("xstack=inputs={}:layout={}[out]", a.inputs, layout.join("|")));
    cmd.args(["-filter_complex", &graph, "-map", "[out]", "-c:v", "mjpeg", "-q:v", "5"])
        .args(["-t", &(a.seconds + 3).to_string(), "-f", "null", "-"])
        .process_group(0);
    let p = procs::spawn("ffmpeg xstack", &mut cmd, Capture::Text, None)?;
    std::thread::sleep(Duration::from_secs(3));
    let (c0, t0) = (procs::cpu_seconds(p.pid), Instant::now());
    std::thread::sleep(Duration::from_secs(a.seconds).saturating_sub(Duration::from_millis(500)));
    let (c1, took) = (procs::cpu_seconds(p.pid), t0.elapsed().as_secs_f64());
    let pid = p.pid;
    let progress = p.output(Duration::from_secs(10));
    procs::kill_group(pid);
    let (Some(c0), Some(c1)) = (c0, c1) else {
        bail!("ffmpeg could not be measured (it exited early?): {progress}");
    };
    // ffmpeg's own `fps=` (frames over wall time since it began) of its
    // last progress block.
    let fps = progress
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("fps="))
        .find_map(|v| v.trim().parse::<f64>().ok())
        .context("ffmpeg reported no progress")?;
    Ok(Measured {
        cpu: (c1 - c0) / took,
        fps,
    })
}

fn gst_case(a: &Args, ports: &[u16]) -> anyhow::Result<Measured> {
    let side = (1..=a.inputs).find(|s| s * s >= a.inputs).unwrap_or(1);
    let (tw, th) = (1920 / side, 1080 / side);
    let mut p = String::from("compositor name=c background=black");
    for i in 0..a.inputs {
        p.push_str(&format!(
            " sink_{i}::xpos={} sink_{i}::ypos={} sink_{i}::width={tw} sink_{i}::height={th}",
            (i % side) * tw,
            (i / side) * th
        ));
    }
    p.push_str(&format!(
        " ! video/x-raw,width=1920,height=1080,framerate={}/1 ! jpegenc quality=85 ! fpsdisplaysink \
         video-sink=fakesink text-overlay=false sync=false fps-update-interval=1000",
        a.fps
    ));
    // The JPEG bytes stamped as they arrive, parsed into pictures, decoded.
    for (i, port) in ports.iter().enumerate() {
        p.push_str(&format!(
            " tcpclientsrc host=127.0.0.1 port={port} do-timestamp=true ! image/jpeg,framerate={}/1 ! jpegparse \
             ! jpegdec ! queue ! c.sink_{i}",
            a.fps
        ));
    }
    let log = std::env::temp_dir().join(format!("framewire-bench-compose-{}.log", std::process::id()));
    let g = crate::gst::launch("GStreamer compositor", &p, true, Capture::TimedLines, &log)?;
    std::thread::sleep(Duration::from_secs(3));
    let (c0, t0, w0) = (procs::cpu_seconds(g.pid), Instant::now(), crate::now_ns());
    std::thread::sleep(Duration::from_secs(a.seconds));
    let (c1, took, w1) = (procs::cpu_seconds(g.pid), t0.elapsed().as_secs_f64(), crate::now_ns());
    let lines = g.timed_lines();
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let (Some(c0), Some(c1)) = (c0, c1) else {
        bail!("GStreamer could not be measured (it exited early?): {}", said.trim());
    };
    let fps =
        crate::gst::rate(&lines, w0, w1).with_context(|| format!("GStreamer reported no frames: {}", said.trim()))?;
    Ok(Measured {
        cpu: (c1 - c0) / took,
        fps,
    })
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || run_blocking(&a)).await?
}

fn run_blocking(a: &Args) -> anyhow::Result<()> {
    let _guard = procs::KillGuard;
    if !(1..=16).contains(&a.inputs) {
        bail!("1 to 16 inputs");
    }
    let exe = std::env::current_exe()?;
    let src = procs::free_port()?;
    let ports: Vec<u16> = (0..a.inputs).map(|_| procs::free_port()).collect::<Result<_, _>>()?;
    let mut cmd = Command::new(&exe);
    cmd.args(["node", "--name", "bench:cams", "--listen", &format!("127.0.0.1:{src}")])
        .args(["--discovery", "off", "--no-shm"]);
    for (i, p) in ports.iter().enumerate() {
        cmd.arg("--source")
            .arg(format!("test-pattern:c{i},size={},fps={},quality=85", a.size, a.fps))
            .arg("--opaque")
            .arg(format!("c{i}=127.0.0.1:{p},allow-unauthenticated=true"));
    }
    let s = procs::spawn("source node", &mut cmd, Capture::Nothing, None)?;
    procs::wait_listening(src, Duration::from_secs(20), &s)?;
    println!(
        "{} x {} MJPEG at {} fps → 1920x1080 grid, MJPEG out; CPU over {} s after 3 s of warm-up (one core = 100 %)\n",
        a.inputs, a.size, a.fps, a.seconds
    );
    println!(
        "| round | framewire CPU / fps | ffmpeg xstack CPU / fps | GStreamer compositor CPU / fps | CPU framewire / cheaper peer |"
    );
    println!("|---|---|---|---|---|");
    for round in 1..=a.rounds.max(1) {
        let fw = framewire_case(a, src)?;
        let ff = ffmpeg_case(a, &ports)?;
        let gs = gst_case(a, &ports)?;
        println!(
            "| {round} | {:.0} % / {:.1} | {:.0} % / {:.1} | {:.0} % / {:.1} | {:.2} |",
            fw.cpu * 100.0,
            fw.fps,
            ff.cpu * 100.0,
            ff.fps,
            gs.cpu * 100.0,
            gs.fps,
            fw.cpu / ff.cpu.min(gs.cpu)
        );
    }
    if a.latency_seconds > 0.0 {
        added_latency(a, src)?;
    }
    procs::kill(s.pid);
    procs::kill_all();
    Ok(())
}

/// The added-latency row: input arrival to the output frame that first
/// shows it, for the first input's tile (`compose_latency`).
fn added_latency(a: &Args, src: u16) -> anyhow::Result<()> {
    let (p, port) = compose_node(a, src)?;
    let side = (1..=a.inputs).find(|s| s * s >= a.inputs).unwrap_or(1);
    let tile = (0, 0, 1920 / side, 1080 / side);
    let addr = format!("127.0.0.1:{port}");
    let measured = tokio::runtime::Handle::current().block_on(crate::compose_latency::measure(
        &addr,
        "wall.c0",
        "wall",
        tile,
        a.latency_seconds,
    ));
    procs::kill(p.pid);
    let mut ms = measured?;
    let interval = 1000.0 / f64::from(a.fps.max(1));
    let (p50, p99) = (
        crate::encode::percentile(&mut ms, 0.5),
        crate::encode::percentile(&mut ms, 0.99),
    );
    println!(
        "\nAdded latency (input arrival at the compose node to the output frame that first shows it, \
         {} input pictures): p50 {p50:.1} ms, p99 {p99:.1} ms; one output frame is {interval:.1} ms \
         (p50 / frame interval {:.2}, target < 1)",
        ms.len(),
        p50 / interval
    );
    Ok(())
}
