//! `framewire bench ingest`: RTSP cameras passed through and relayed, and
//! a new subscriber's first picture with and without the group-of-pictures
//! cache, beside the peers a user would pick instead, in one run.
//!
//! **Cameras.** GStreamer's RTSP server (`tests/tools/rtsp_server.py`)
//! serves one live 1080p30 H.264 picture (x264enc, the given bit rate,
//! a keyframe every 2 s) from one shared encoder; each "camera" is its own
//! RTSP session (TCP) to it, so every receiver depacketizes every camera
//! on its own. Then, for N cameras, in turn:
//! - framewire: one node with N `rtsp` sources, and two subscribers per
//!   camera (low-latency, on loopback TCP, in this process); and again
//!   with no subscriber (ingest alone);
//! - GStreamer: one `gst-launch-1.0` with N `rtspsrc ! rtph264depay ! tee`
//!   branches, two `fakesink`s each (it sends nothing on: cheaper than
//!   serving subscribers);
//! - ffmpeg: N processes `ffmpeg -i rtsp://… -c copy` to two null outputs.
//!
//! Each is measured over S seconds after warm-up: CPU (user + system from
//! /proc) per camera, and for the node its resident memory per camera
//! above the node with no camera.
//!
//! **First picture.** A node serves an H.264 test pattern with a 2 s GOP
//! (60 frames at 30 fps); a subscriber joins at a random moment and the
//! time to its first keyframe is taken, 10 times, with the relay's cache
//! on (default) and off (`gop_cache_bytes = 0`).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use framewire_net::{Client, ClientIdentity};
use framewire_proto::{DeliveryMode, Message, SubscribeParams};

use crate::procs::{self, Capture};

/// RTSP ingest and first-picture time, beside GStreamer and ffmpeg.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Cameras (RTSP sessions), one or more counts.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    cameras: Vec<u32>,
    /// Seconds each case is measured (after 3 s of warm-up).
    #[arg(long, default_value_t = 8.0)]
    secs: f64,
    /// The cameras' picture size.
    #[arg(long, default_value = "1920x1080")]
    size: String,
    /// The cameras' bit rate in kbit/s.
    #[arg(long, default_value_t = 4000)]
    kbit: u32,
    /// First-picture tries per case.
    #[arg(long, default_value_t = 10)]
    joins: u32,
    /// GStreamer's RTSP server script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../framewire/tests/tools/rtsp_server.py"))]
    rtsp_server: String,
}

fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// CPU percent of the processes `pids` over `secs`.
fn cpu_of(pids: &[u32], secs: f64) -> anyhow::Result<f64> {
    let sum = |pids: &[u32]| -> anyhow::Result<f64> {
        pids.iter()
            .map(|p| procs::cpu_seconds(*p).context("a measured process exited"))
            .sum()
    };
    let (c0, t0) = (sum(pids)?, Instant::now());
    std::thread::sleep(Duration::from_secs_f64(secs));
    Ok((sum(pids)? - c0) / t0.elapsed().as_secs_f64() * 100.0)
}

fn rss_mb(pid: u32) -> f64 {
    procs::rss(pid).map_or(0.0, |(rss, _)| rss as f64 / 1e6)
}

/// Two low-latency subscribers of each stream, counting frames until stopped.
async fn subscribers(
    addr: &str,
    streams: &[String],
) -> anyhow::Result<(tokio::sync::watch::Sender<bool>, Vec<tokio::task::JoinHandle<u64>>)> {
    let who = ClientIdentity::tool("bench:ingest");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for s in streams.iter().flat_map(|s| [s, s]) {
        let mut c = Client::connect(addr, &who, Duration::from_secs(5)).await?;
        let ch = c
            .subscribe(s, SubscribeParams::default())
            .await
            .with_context(|| format!("subscribe {s}"))?;
        let mut rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            loop {
                tokio::select! {
                    m = c.next_message() => match m {
                        Ok(Some(Message::VideoFrame(v))) if v.channel == ch => n += 1,
                        Ok(Some(Message::ControlRequest(r))) => { let _ = c.ack(&r).await; }
                        Ok(Some(_)) => {}
                        _ => return n,
                    },
                    _ = rx.changed() => return n,
                }
            }
        }));
    }
    Ok((stop, tasks))
}

fn node(exe: &std::path::Path, port: u16, extra: &[String]) -> anyhow::Result<procs::Proc> {
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(exe);
    cmd.args([
        "node",
        "--name",
        "bench:ingest",
        "--listen",
        &addr,
        "--discovery",
        "off",
        "--no-shm",
    ]);
    cmd.args(extra);
    let p = procs::spawn("node", &mut cmd, Capture::Nothing, None)?;
    procs::wait_listening(port, Duration::from_secs(20), &p)?;
    Ok(p)
}

/// framewire: CPU per camera, MB per camera, frames per subscriber per
/// second (with `subs`, two subscribers per camera; else none).
async fn framewire_case(a: &Args, url: &str, n: u32, subs: bool) -> anyhow::Result<(f64, f64, f64)> {
    let exe = std::env::current_exe()?;
    let port = procs::free_port()?;
    let empty = node(&exe, port, &[])?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base_rss = rss_mb(empty.pid);
    procs::kill(empty.pid);
    let port = procs::free_port()?;
    let mut extra = Vec::new();
    let streams: Vec<String> = (0..n).map(|i| format!("cam{i}")).collect();
    for s in &streams {
        extra.push("--source".to_owned());
        extra.push(format!("rtsp:{s},url={url}"));
    }
    let p = node(&exe, port, &extra)?;
    let addr = format!("127.0.0.1:{port}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (stop, tasks) = subscribers(&addr, if subs { &streams[..] } else { &[] }).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = p.pid;
    let secs = a.secs;
    let cpu = tokio::task::spawn_blocking(move || cpu_of(&[pid], secs)).await??;
    let rss = rss_mb(p.pid);
    let _ = stop.send(true);
    let mut frames = 0;
    for t in tasks {
        frames += t.await.unwrap_or(0);
    }
    procs::kill(p.pid);
    let fps = if subs {
        frames as f64 / f64::from(2 * n) / (a.secs + 1.0)
    } else {
        0.0
    };
    Ok((cpu / f64::from(n), (rss - base_rss) / f64::from(n), fps))
}

fn gst_case(a: &Args, url: &str, n: u32) -> anyhow::Result<f64> {
    let mut pipeline = String::new();
    for i in 0..n {
        pipeline.push_str(&format!(
            "rtspsrc location={url} protocols=tcp latency=0 ! rtph264depay ! tee name=t{i} \
             t{i}. ! queue ! fakesink sync=false t{i}. ! queue ! fakesink sync=false "
        ));
    }
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-q").args(pipeline.split_whitespace());
    let p = procs::spawn("gst-launch-1.0", &mut cmd, Capture::Nothing, None)?;
    std::thread::sleep(Duration::from_secs(4));
    let cpu = cpu_of(&[p.pid], a.secs)?;
    procs::kill(p.pid);
    Ok(cpu / f64::from(n))
}

fn ffmpeg_case(a: &Args, url: &str, n: u32) -> anyhow::Result<f64> {
    let mut pids = Vec::new();
    for _ in 0..n {
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
        ])
        .args(["-map", "0:v", "-c", "copy", "-f", "null", "-"])
        .args(["-map", "0:v", "-c", "copy", "-f", "null", "-"]);
        pids.push(procs::spawn("ffmpeg", &mut cmd, Capture::Nothing, None)?.pid);
    }
    std::thread::sleep(Duration::from_secs(4));
    let cpu = cpu_of(&pids, a.secs)?;
    for p in pids {
        procs::kill(p);
    }
    Ok(cpu / f64::from(n))
}

/// Milliseconds from SUBSCRIBE to the first keyframe, `joins` times.
async fn first_pictures(cache: bool, joins: u32) -> anyhow::Result<Vec<f64>> {
    let exe = std::env::current_exe()?;
    let port = procs::free_port()?;
    let dir = std::env::temp_dir().join(format!("fw-bench-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("node.toml");
    std::fs::write(
        &cfg,
        format!("[defaults]\ngop_cache_bytes = {}\n", if cache { 8 << 20 } else { 0 }),
    )?;
    let p = node(
        &exe,
        port,
        &[
            "--config".into(),
            cfg.display().to_string(),
            "--source".into(),
            "test-pattern:cam,size=640x360,fps=30,format=h264,gop=60".into(),
        ],
    )?;
    let addr = format!("127.0.0.1:{port}");
    let who = ClientIdentity::tool("bench:ingest");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut out = Vec::new();
    for i in 0..joins {
        // Join at spread-out moments of the 2 s group of pictures.
        tokio::time::sleep(Duration::from_millis(450 + 137 * u64::from(i % 7))).await;
        let mut c = Client::connect(&addr, &who, Duration::from_secs(5)).await?;
        let params = SubscribeParams {
            mode: DeliveryMode::LowLatency,
            ..SubscribeParams::default()
        };
        let t0 = Instant::now();
        let ch = c.subscribe("cam", params).await?;
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), c.next_message())
                .await
                .context("no keyframe within 5 s")??;
            match m {
                Some(Message::VideoFrame(v)) if v.channel == ch && v.flags.is_keyframe() => break,
                Some(Message::ControlRequest(r)) => c.ack(&r).await?,
                Some(_) => {}
                None => bail!("the node closed"),
            }
        }
        out.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    procs::kill(p.pid);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

fn summary(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!("{:.0} / {:.0} / {:.0} ms", at(0.0), at(0.5), v[v.len() - 1])
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    for (tool, flag) in [("ffmpeg", "-version"), ("gst-launch-1.0", "--version")] {
        if !Command::new(tool).arg(flag).output().is_ok_and(|o| o.status.success()) {
            bail!("{tool} is needed as a peer (scripts/setup.sh installs it)");
        }
    }
    let port = procs::free_port()?;
    let mut cmd = Command::new(python());
    cmd.arg(&a.rtsp_server)
        .args(["--port", &port.to_string(), "--codec", "h264", "--size", &a.size])
        .args(["--gop", "60", "--bitrate", &a.kbit.to_string(), "--pattern", "snow"]);
    let server = procs::spawn("rtsp server", &mut cmd, Capture::Nothing, None)?;
    let end = Instant::now() + Duration::from_secs(20);
    while !procs::listening(port) {
        if Instant::now() > end || !server.alive() {
            bail!("GStreamer's RTSP server did not start ({})", a.rtsp_server);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    println!(
        "RTSP ingest: {} H.264 at 30 fps, {} kbit/s, GOP 2 s; two subscribers per camera; {} s per case (one core = 100 %)\n",
        a.size, a.kbit, a.secs
    );
    println!(
        "| cameras | framewire CPU/camera | (no subscribers) | GStreamer CPU/camera | ffmpeg -c copy CPU/camera | framewire / GStreamer | framewire / ffmpeg | framewire MB/camera | fps per subscriber |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in &a.cameras {
        let (fw, mb, fps) = framewire_case(&a, &url, n, true).await?;
        let (alone, _, _) = framewire_case(&a, &url, n, false).await?;
        let (args, u) = (a.clone(), url.clone());
        let gst = tokio::task::spawn_blocking(move || gst_case(&args, &u, n)).await??;
        let (args, u) = (a.clone(), url.clone());
        let ff = tokio::task::spawn_blocking(move || ffmpeg_case(&args, &u, n)).await??;
        println!(
            "| {n} | {fw:.2} % | {alone:.2} % | {gst:.2} % | {ff:.2} % | {:.2} | {:.2} | {mb:.1} | {fps:.1} |",
            fw / gst.max(0.01),
            fw / ff.max(0.01)
        );
    }
    procs::kill(server.pid);

    println!(
        "\nA new subscriber's first keyframe (H.264, GOP 2 s), min / median / max of {}:\n",
        a.joins
    );
    println!("| relay | time to first picture |");
    println!("|---|---|");
    println!(
        "| GOP cache on (default) | {} |",
        summary(first_pictures(true, a.joins).await?)
    );
    println!("| GOP cache off | {} |", summary(first_pictures(false, a.joins).await?));
    Ok(())
}
