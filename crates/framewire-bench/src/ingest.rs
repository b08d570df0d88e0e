//! `framewire bench ingest`: RTSP cameras passed through and relayed, and
//! a new subscriber's first picture with and without the group-of-pictures
//! cache, beside the peers a user would pick instead, in one run.
//!
//! **Cameras.** GStreamer's RTSP server (`tests/tools/rtsp_server.py`)
//! serves a pre-encoded 1080p30 H.264 clip (10 s of x264enc at the given
//! bit rate, a keyframe every 2 s, encoded once at its start) in a loop
//! from memory, so the cameras cost payloading and not encoding; each
//! "camera" is its own RTSP session (TCP) to it, so every receiver
//! depacketizes every camera on its own. Then, for N cameras, in turn:
//! - framewire: one node with N `rtsp` sources, and two subscribers per
//!   camera (low-latency, on loopback TCP, in this process); and again
//!   with no subscriber (ingest alone);
//! - GStreamer: one `gst-launch-1.0` with N `rtspsrc ! rtph264depay ! tee`
//!   branches, each tee to two `tcpclientsink`s (the same job: every
//!   camera sent on to two readers over loopback TCP), and again to two
//!   `fakesink`s (sending nothing on: cheaper than serving subscribers);
//! - ffmpeg: N processes `ffmpeg -i rtsp://… -c copy` to two raw H.264
//!   outputs over TCP, and again to two null outputs.
//!
//! The readers of the peers' TCP outputs are threads of this process that
//! read and drop (as framewire's subscribers are tasks of it); the bytes
//! they read are printed beside framewire's, to show the same job was done.
//!
//! Each is measured over S seconds after warm-up: CPU (user + system from
//! /proc) per camera, and for the node its resident memory per camera
//! above the node with no camera.
//!
//! **First picture.** A node serves an H.264 test pattern with a 2 s GOP
//! (60 frames at 30 fps); a subscriber joins at a random moment and the
//! time to its first keyframe is taken, 10 times, with the relay's cache
//! on (default) and off (`gop_cache_bytes = 0`).

use std::io::{ErrorKind, Read};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Accepts TCP connections on loopback and reads and drops what they send,
/// counting the bytes.
struct Drain {
    port: u16,
    bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drain {
    fn start() -> anyhow::Result<Drain> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, st) = (bytes.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let (b, st) = (b.clone(), st.clone());
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
                        std::thread::spawn(move || {
                            let mut buf = vec![0u8; 256 << 10];
                            while !st.load(Ordering::Relaxed) {
                                match conn.read(&mut buf) {
                                    Ok(0) => return,
                                    Ok(n) => {
                                        b.fetch_add(n as u64, Ordering::Relaxed);
                                    }
                                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                                    Err(_) => return,
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Drain { port, bytes, stop })
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
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

/// Two low-latency subscribers of each stream, counting frames and bytes
/// while `counting` is set (the measurement: not the group each gets at
/// joining), until stopped.
async fn subscribers(
    addr: &str,
    streams: &[String],
    counting: &Arc<AtomicBool>,
) -> anyhow::Result<(
    tokio::sync::watch::Sender<bool>,
    Vec<tokio::task::JoinHandle<(u64, u64)>>,
)> {
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
        let counting = counting.clone();
        tasks.push(tokio::spawn(async move {
            let (mut n, mut bytes) = (0, 0);
            loop {
                tokio::select! {
                    m = c.next_message() => match m {
                        Ok(Some(Message::VideoFrame(v))) if v.channel == ch => {
                            if counting.load(Ordering::Relaxed) {
                                n += 1;
                                bytes += v.data.len() as u64;
                            }
                        }
                        Ok(Some(Message::ControlRequest(r))) => { let _ = c.ack(&r).await; }
                        Ok(Some(_)) => {}
                        _ => return (n, bytes),
                    },
                    _ = rx.changed() => return (n, bytes),
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

/// What one case measured.
#[derive(Debug, Default, Clone, Copy)]
struct Measured {
    /// CPU percent of one core per camera.
    cpu: f64,
    /// Resident MB per camera (framewire only).
    mb: f64,
    /// Frames per second each reader got (framewire only).
    fps: f64,
    /// Kbit/s each reader got (0 when nothing is sent on).
    kbit: f64,
}

/// framewire: CPU per camera, MB per camera, frames and bits per
/// subscriber per second (with `subs`, two subscribers per camera; else
/// none).
async fn framewire_case(a: &Args, url: &str, n: u32, subs: bool) -> anyhow::Result<Measured> {
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
    let counting = Arc::new(AtomicBool::new(false));
    let (stop, tasks) = subscribers(&addr, if subs { &streams[..] } else { &[] }, &counting).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = p.pid;
    let secs = a.secs;
    counting.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let cpu = tokio::task::spawn_blocking(move || cpu_of(&[pid], secs)).await??;
    counting.store(false, Ordering::Relaxed);
    let window = t0.elapsed().as_secs_f64();
    let rss = rss_mb(p.pid);
    let _ = stop.send(true);
    let (mut frames, mut bytes) = (0, 0);
    for t in tasks {
        let (f, b) = t.await.unwrap_or_default();
        frames += f;
        bytes += b;
    }
    procs::kill(p.pid);
    // The subscribers counted during the measurement only.
    let per_reader = |x: u64| {
        if subs {
            x as f64 / f64::from(2 * n) / window
        } else {
            0.0
        }
    };
    Ok(Measured {
        cpu: cpu / f64::from(n),
        mb: (rss - base_rss) / f64::from(n),
        fps: per_reader(frames),
        kbit: per_reader(bytes) * 8.0 / 1e3,
    })
}

/// CPU per camera of the peer processes `pids` over the measurement, and
/// what each of the `2 n` readers of `drain` got.
fn peer_measure(a: &Args, pids: &[u32], n: u32, drain: Option<&Drain>) -> anyhow::Result<Measured> {
    std::thread::sleep(Duration::from_secs(4));
    let b0 = drain.map_or(0, Drain::bytes);
    let t0 = Instant::now();
    let cpu = cpu_of(pids, a.secs)?;
    let bytes = drain.map_or(0, Drain::bytes) - b0;
    for p in pids {
        procs::kill(*p);
    }
    Ok(Measured {
        cpu: cpu / f64::from(n),
        kbit: bytes as f64 * 8.0 / 1e3 / f64::from(2 * n) / t0.elapsed().as_secs_f64(),
        ..Measured::default()
    })
}

fn gst_case(a: &Args, url: &str, n: u32, drain: Option<&Drain>) -> anyhow::Result<Measured> {
    let out = match drain {
        None => "fakesink sync=false".to_owned(),
        Some(d) => format!("tcpclientsink host=127.0.0.1 port={} sync=false", d.port),
    };
    let mut pipeline = String::new();
    for i in 0..n {
        pipeline.push_str(&format!(
            "rtspsrc location={url} protocols=tcp latency=0 ! rtph264depay ! tee name=t{i} \
             t{i}. ! queue ! {out} t{i}. ! queue ! {out} "
        ));
    }
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-q").args(pipeline.split_whitespace());
    let p = procs::spawn("gst-launch-1.0", &mut cmd, Capture::Nothing, None)?;
    peer_measure(a, &[p.pid], n, drain)
}

fn ffmpeg_case(a: &Args, url: &str, n: u32, drain: Option<&Drain>) -> anyhow::Result<Measured> {
    let out: Vec<String> = match drain {
        None => ["-f", "null", "-"].map(String::from).to_vec(),
        Some(d) => vec!["-f".into(), "h264".into(), format!("tcp://127.0.0.1:{}", d.port)],
    };
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
        .args(["-map", "0:v", "-c", "copy"])
        .args(&out)
        .args(["-map", "0:v", "-c", "copy"])
        .args(&out);
        pids.push(procs::spawn("ffmpeg", &mut cmd, Capture::Nothing, None)?.pid);
    }
    peer_measure(a, &pids, n, drain)
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
        .args(["--gop", "60", "--bitrate", &a.kbit.to_string(), "--pattern", "snow"])
        .args(["--clip", "10"]);
    let server = procs::spawn("rtsp server", &mut cmd, Capture::Nothing, None)?;
    // The server encodes its 10 s clip before it listens.
    let end = Instant::now() + Duration::from_secs(120);
    while !procs::listening(port) {
        if Instant::now() > end || !server.alive() {
            bail!("GStreamer's RTSP server did not start ({})", a.rtsp_server);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    println!(
        "RTSP ingest: {} H.264 at 30 fps, {} kbit/s, GOP 2 s; two subscribers per camera; {} s per case",
        a.size, a.kbit, a.secs
    );
    println!(
        "CPU per camera (one core = 100 %); each peer sending every camera to two TCP readers (the same job), and to null sinks\n"
    );
    println!(
        "| cameras | framewire | (no subscribers) | GStreamer to TCP | (to fakesink) | ffmpeg -c copy to TCP | (to null) | framewire / GStreamer | framewire / ffmpeg | framewire MB/camera | kbit/s per reader: framewire, GStreamer, ffmpeg | fps per subscriber |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &a.cameras {
        let fw = framewire_case(&a, &url, n, true).await?;
        let alone = framewire_case(&a, &url, n, false).await?;
        let peer = |f: fn(&Args, &str, u32, Option<&Drain>) -> anyhow::Result<Measured>, tcp: bool| {
            let (args, u) = (a.clone(), url.clone());
            tokio::task::spawn_blocking(move || {
                let drain = if tcp { Some(Drain::start()?) } else { None };
                f(&args, &u, n, drain.as_ref())
            })
        };
        let gst = peer(gst_case, true).await??;
        let gst_null = peer(gst_case, false).await??;
        let ff = peer(ffmpeg_case, true).await??;
        let ff_null = peer(ffmpeg_case, false).await??;
        println!(
            "| {n} | {:.2} % | {:.2} % | {:.2} % | {:.2} % | {:.2} % | {:.2} % | {:.2} | {:.2} | {:.1} | {:.0}, {:.0}, {:.0} | {:.1} |",
            fw.cpu,
            alone.cpu,
            gst.cpu,
            gst_null.cpu,
            ff.cpu,
            ff_null.cpu,
            fw.cpu / gst.cpu.max(0.01),
            fw.cpu / ff.cpu.max(0.01),
            fw.mb,
            fw.kbit,
            gst.kbit,
            ff.kbit,
            fw.fps
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
