//! `framewire bench transcode`: CPU per stream transcoded on a node's
//! output (`STREAM~FORMAT`), beside ffmpeg encoding the same size and rate
//! in the same run.
//!
//! A node process serves a raw YUV 4:2:0 test pattern (1080p30 by
//! default). Its CPU is read from /proc while subscribers take, in turn:
//! the raw stream (the baseline: making the pattern and sending it), one
//! and two subscribers of `bars~mjpeg` (one transcoder, shared), and
//! `bars~mjpeg` with `bars~qoi` (two). The cost of a transcoded stream is
//! the node's CPU above the baseline divided by the transcoders running.
//! ffmpeg makes `testsrc2` at the same size and rate in real time (`-re`)
//! once with no encoder and once encoding MJPEG; the difference is its
//! cost per encoded stream.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use framewire_net::{Client, ClientIdentity};
use framewire_proto::{DeliveryMode, Message, SubscribeParams};

use crate::procs::{self, Capture};

/// CPU per transcoded stream, beside ffmpeg.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds each case is measured (after 1 s of warm-up).
    #[arg(long, default_value_t = 8.0)]
    secs: f64,
    /// Picture size.
    #[arg(long, default_value = "1920x1080")]
    size: String,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
}

struct Case {
    label: &'static str,
    streams: &'static [&'static str],
    transcoders: u32,
}

const CASES: &[Case] = &[
    Case {
        label: "raw, no transcoding (baseline)",
        streams: &["bars"],
        transcoders: 0,
    },
    Case {
        label: "1 subscriber of bars~mjpeg",
        streams: &["bars~mjpeg"],
        transcoders: 1,
    },
    Case {
        label: "2 subscribers of bars~mjpeg",
        streams: &["bars~mjpeg", "bars~mjpeg"],
        transcoders: 1,
    },
    Case {
        label: "bars~mjpeg and bars~qoi",
        streams: &["bars~mjpeg", "bars~qoi"],
        transcoders: 2,
    },
];

/// Frames received by each subscriber while `f` runs.
async fn subscribed<F: std::future::Future<Output = f64>>(
    addr: &str,
    streams: &[&str],
    f: F,
) -> anyhow::Result<(f64, Vec<u64>)> {
    let who = ClientIdentity::tool("bench:transcode");
    let mut tasks = Vec::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for s in streams {
        let mut c = Client::connect(addr, &who, Duration::from_secs(5)).await?;
        let params = SubscribeParams {
            mode: DeliveryMode::LowLatency,
            ..SubscribeParams::default()
        };
        let ch = c.subscribe(s, params).await.with_context(|| format!("subscribe {s}"))?;
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                tokio::select! {
                    m = c.next_message() => match m {
                        Ok(Some(Message::VideoFrame(v))) if v.channel == ch => n += 1,
                        Ok(Some(Message::ControlRequest(r))) => { let _ = c.ack(&r).await; }
                        Ok(Some(_)) => {}
                        _ => return n,
                    },
                    _ = stop.changed() => return n,
                }
            }
        }));
    }
    let cpu = f.await;
    let _ = stop_tx.send(true);
    let mut frames = Vec::new();
    for t in tasks {
        frames.push(t.await.unwrap_or(0));
    }
    Ok((cpu, frames))
}

/// Percent of one core `pid` used over `secs` after 1 s of warm-up.
async fn cpu_percent(pid: u32, secs: f64) -> f64 {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (c0, t0) = (procs::cpu_seconds(pid).unwrap_or(0.0), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let c1 = procs::cpu_seconds(pid).unwrap_or(0.0);
    (c1 - c0) / t0.elapsed().as_secs_f64() * 100.0
}

fn ffmpeg_cpu(size: &str, fps: u32, secs: f64, encode: bool) -> anyhow::Result<f64> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
    ])
    .arg(format!("testsrc2=size={size}:rate={fps}"))
    .args(["-pix_fmt", "yuv420p"]);
    if encode {
        cmd.args(["-c:v", "mjpeg", "-q:v", "3"]);
    } else {
        cmd.args(["-c:v", "rawvideo"]);
    }
    cmd.args(["-threads", "1", "-f", "null", "-"]);
    let p = procs::spawn("ffmpeg", &mut cmd, Capture::Nothing, None)?;
    std::thread::sleep(Duration::from_secs(1));
    let (c0, t0) = (procs::cpu_seconds(p.pid).context("ffmpeg exited")?, Instant::now());
    std::thread::sleep(Duration::from_secs_f64(secs));
    let c1 = procs::cpu_seconds(p.pid).context("ffmpeg exited early")?;
    procs::kill(p.pid);
    Ok((c1 - c0) / t0.elapsed().as_secs_f64() * 100.0)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if Command::new("ffmpeg").arg("-version").output().is_err() {
        bail!("ffmpeg is needed as the peer (scripts/setup.sh installs it)");
    }
    let exe = std::env::current_exe()?;
    let port = procs::free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let source = format!(
        "test-pattern:bars,size={},fps={},format=raw,pixel-format=yuv420p",
        args.size, args.fps
    );
    let node = procs::spawn(
        "node",
        Command::new(&exe).args([
            "node",
            "--name",
            "bench:transcode",
            "--listen",
            &addr,
            "--discovery",
            "off",
            "--no-shm",
            "--source",
            &source,
        ]),
        Capture::Nothing,
        None,
    )?;
    procs::wait_listening(port, Duration::from_secs(20), &node)?;
    println!(
        "transcoding on a node's output: {} at {} fps, {} s per case (one core = 100 %)\n",
        args.size, args.fps, args.secs
    );
    println!("| case | node CPU | per transcoded stream | fps per subscriber |");
    println!("|---|---|---|---|");
    let mut baseline = 0.0;
    let mut per_stream = Vec::new();
    for case in CASES {
        let (cpu, frames) = subscribed(&addr, case.streams, cpu_percent(node.pid, args.secs)).await?;
        let fps: Vec<String> = frames
            .iter()
            .map(|n| format!("{:.1}", *n as f64 / (args.secs + 1.0)))
            .collect();
        let each = if case.transcoders == 0 {
            baseline = cpu;
            "-".to_owned()
        } else {
            let e = (cpu - baseline) / f64::from(case.transcoders);
            per_stream.push(e);
            format!("{e:.1} %")
        };
        println!("| {} | {cpu:.1} % | {each} | {} |", case.label, fps.join(", "));
    }
    procs::kill(node.pid);
    let plain = ffmpeg_cpu(&args.size, args.fps, args.secs, false)?;
    let mjpeg = ffmpeg_cpu(&args.size, args.fps, args.secs, true)?;
    let ff = mjpeg - plain;
    println!("| ffmpeg testsrc2, no encoder (baseline) | {plain:.1} % | - | - |");
    println!("| ffmpeg testsrc2 → MJPEG (-q:v 3, 1 thread) | {mjpeg:.1} % | {ff:.1} % | - |");
    if let Some(one) = per_stream.first() {
        println!(
            "\nframewire per MJPEG stream / ffmpeg per MJPEG stream: {:.2} (lower is less CPU)",
            one / ff.max(0.1)
        );
    }
    Ok(())
}
