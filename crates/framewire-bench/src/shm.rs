//! `framewire bench shm`: raw 1080p BGRA frames (8 MB) from one producer
//! process to 1, 4 and 16 consumer processes, over framewire's shared-memory
//! edge, over loopback TCP (the same 8-byte framing, one writer copying each
//! frame into every consumer's socket), and through GStreamer's
//! `shmsink`/`shmsrc`, in one run.
//!
//! framewire's producers publish as fast as the consumers take frames (a
//! producer whose consumers all hold their budget waits a moment instead of
//! skipping), so the rate is the delivered rate. Shared-memory consumers
//! read one word per 4 KiB page of every frame (every page is touched);
//! TCP consumers read every byte off the socket; GStreamer consumers end in
//! `fakesink`. CPU per frame is the producer's CPU time over the frames it
//! published.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use framewire_shm::{Consumer, Event, FrameMeta, Producer, ProducerConfig};
use serde::{Deserialize, Serialize};

use crate::gst;
use crate::procs::{self, Capture, KillGuard, Proc};

const WIDTH: usize = 1920;
const HEIGHT: usize = 1080;
const FRAME: usize = WIDTH * HEIGHT * 4;

/// Shared-memory edge against loopback TCP and GStreamer shmsink/shmsrc.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Consumer counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    consumers: Vec<usize>,
    /// Seconds measured per cell.
    #[arg(long, default_value_t = 4)]
    secs: u64,
    /// Skip the GStreamer rows.
    #[arg(long)]
    no_gst: bool,
}

/// (internal) The producing end.
#[derive(Debug, clap::Args)]
pub struct ProducerArgs {
    /// `shm` or `tcp`.
    #[arg(long)]
    transport: String,
    /// Socket path (shm) or port (tcp).
    #[arg(long)]
    at: String,
    #[arg(long)]
    consumers: usize,
    #[arg(long)]
    secs: u64,
}

/// (internal) A consuming end; prints a JSON report.
#[derive(Debug, clap::Args)]
pub struct ConsumerArgs {
    #[arg(long)]
    transport: String,
    #[arg(long)]
    at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ProducerReport {
    published: u64,
    cpu_s: f64,
    wall_s: f64,
    /// Pool buffers the shm producer had made by the end (8 MB each).
    #[serde(default)]
    buffers: Option<usize>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ConsumerReport {
    frames: u64,
    lost: u64,
    wall_s: f64,
}

fn picture() -> Vec<u8> {
    (0..FRAME)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect()
}

/// The producer process.
pub fn run_producer(a: ProducerArgs) -> anyhow::Result<()> {
    let pic = picture();
    let me = std::process::id();
    let report = match a.transport.as_str() {
        "shm" => {
            let cfg = ProducerConfig {
                max_held: 2,
                max_buffers: 64,
                ..Default::default()
            };
            let mut p = Producer::bind(std::path::Path::new(&a.at), cfg)?;
            anyhow::ensure!(
                p.wait_for_consumers(a.consumers, Duration::from_secs(30))?,
                "consumers did not come"
            );
            let cpu0 = procs::cpu_seconds(me).unwrap_or(0.0);
            let start = Instant::now();
            let mut seq = 0;
            while start.elapsed() < Duration::from_secs(a.secs) {
                // `publish` services the sockets first (one `poll`), and
                // `wait` does when it wakes: no separate `service` per frame.
                if !p.can_publish() {
                    // Every consumer holds its budget: sleep until one returns a buffer.
                    p.wait(Duration::from_millis(5))?;
                    continue;
                }
                let meta = FrameMeta {
                    sequence: seq,
                    timestamp_ns: 0,
                    flags: 0,
                    planes: vec![],
                };
                p.publish(&meta, &pic)?;
                seq += 1;
            }
            let r = ProducerReport {
                published: seq,
                cpu_s: procs::cpu_seconds(me).unwrap_or(0.0) - cpu0,
                wall_s: start.elapsed().as_secs_f64(),
                buffers: Some(p.stats().buffers),
            };
            p.end();
            r
        }
        "tcp" => {
            let l = TcpListener::bind(("127.0.0.1", a.at.parse::<u16>()?))?;
            let mut socks = Vec::new();
            while socks.len() < a.consumers {
                let (s, _) = l.accept()?;
                s.set_nodelay(true)?;
                socks.push(s);
            }
            let cpu0 = procs::cpu_seconds(me).unwrap_or(0.0);
            let start = Instant::now();
            let mut seq = 0;
            let mut header = [0u8; 8];
            header[..2].copy_from_slice(&1u16.to_le_bytes());
            header[4..].copy_from_slice(&(FRAME as u32).to_le_bytes());
            while start.elapsed() < Duration::from_secs(a.secs) {
                for s in &mut socks {
                    s.write_all(&header)?;
                    s.write_all(&pic)?;
                }
                seq += 1;
            }
            ProducerReport {
                published: seq,
                cpu_s: procs::cpu_seconds(me).unwrap_or(0.0) - cpu0,
                wall_s: start.elapsed().as_secs_f64(),
                buffers: None,
            }
        }
        t => anyhow::bail!("unknown transport {t}"),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// A consumer process.
pub fn run_consumer(a: ConsumerArgs) -> anyhow::Result<()> {
    let mut r = ConsumerReport::default();
    let mut first = None;
    let mut last = Instant::now();
    let mut sink = 0u64;
    match a.transport.as_str() {
        "shm" => {
            let mut c = Consumer::connect(std::path::Path::new(&a.at))?;
            while let Ok(Event::Frame(f)) = c.recv(Some(Duration::from_secs(60))) {
                first.get_or_insert_with(Instant::now);
                last = Instant::now();
                for page in f.data.chunks(4096) {
                    sink = sink.wrapping_add(page[0] as u64);
                }
                r.frames += 1;
                r.lost += f.lost;
            }
        }
        "tcp" => {
            let mut s = TcpStream::connect(("127.0.0.1", a.at.parse::<u16>()?))?;
            let mut buf = vec![0u8; FRAME];
            let mut header = [0u8; 8];
            while s.read_exact(&mut header).is_ok() {
                let len = u32::from_le_bytes(header[4..].try_into()?) as usize;
                buf.resize(len, 0);
                if s.read_exact(&mut buf).is_err() {
                    break;
                }
                first.get_or_insert_with(Instant::now);
                last = Instant::now();
                sink = sink.wrapping_add(buf[len / 2] as u64);
                r.frames += 1;
            }
        }
        t => anyhow::bail!("unknown transport {t}"),
    }
    std::hint::black_box(sink);
    r.wall_s = first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0);
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

#[derive(Debug)]
struct Row {
    transport: &'static str,
    consumers: usize,
    /// Lowest and mean delivered rate per consumer.
    min_fps: f64,
    mean_fps: f64,
    /// Producer CPU per published frame, ms; producer CPU share.
    cpu_ms_per_frame: Option<f64>,
    cpu_pct: Option<f64>,
    /// Frame buffers the producer cycled through (framewire shm only).
    buffers: Option<usize>,
}

fn framewire_cell(transport: &'static str, n: usize, secs: u64, dir: &std::path::Path) -> anyhow::Result<Row> {
    let exe = std::env::current_exe()?;
    let at = match transport {
        "shm" => dir.join(format!("shm-{n}.sock")).display().to_string(),
        _ => procs::free_port()?.to_string(),
    };
    let mut pc = Command::new(&exe);
    pc.args(["bench", "shm-producer", "--transport", transport, "--at", &at])
        .args(["--consumers", &n.to_string(), "--secs", &secs.to_string()]);
    let prod = procs::spawn(
        &format!("{transport} producer"),
        &mut pc,
        Capture::Text,
        Some(&dir.join("producer.log")),
    )?;
    // Let the producer listen.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        let ready = match transport {
            "shm" => std::path::Path::new(&at).exists(),
            _ => procs::listening(at.parse()?),
        };
        if ready {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut cons: Vec<Proc> = Vec::new();
    for i in 0..n {
        let mut cc = Command::new(&exe);
        cc.args(["bench", "shm-consumer", "--transport", transport, "--at", &at]);
        cons.push(procs::spawn(
            &format!("{transport} consumer {i}"),
            &mut cc,
            Capture::Text,
            None,
        )?);
    }
    let limit = Duration::from_secs(secs + 40);
    let p: ProducerReport = serde_json::from_str(prod.output(limit).trim()).context("producer report")?;
    let mut rates = Vec::new();
    for c in cons {
        let r: ConsumerReport = serde_json::from_str(c.output(Duration::from_secs(20)).trim()).unwrap_or_default();
        rates.push(if r.wall_s > 0.0 {
            (r.frames.saturating_sub(1)) as f64 / r.wall_s
        } else {
            0.0
        });
    }
    Ok(Row {
        transport: if transport == "shm" {
            "framewire shm"
        } else {
            "loopback TCP"
        },
        consumers: n,
        min_fps: rates.iter().copied().fold(f64::INFINITY, f64::min),
        mean_fps: rates.iter().sum::<f64>() / rates.len() as f64,
        cpu_ms_per_frame: (p.published > 0).then(|| p.cpu_s * 1000.0 / p.published as f64),
        cpu_pct: Some(p.cpu_s * 100.0 / p.wall_s.max(1e-9)),
        buffers: p.buffers,
    })
}

fn gst_cell(n: usize, secs: u64, dir: &std::path::Path) -> anyhow::Result<Row> {
    let path = dir.join(format!("gst-{n}.sock"));
    let _ = std::fs::remove_file(&path);
    let caps = format!("video/x-raw,format=BGRA,width={WIDTH},height={HEIGHT},framerate=30/1");
    // imagefreeze re-pushes one buffer; shmsink would then hand the same
    // shm block out again while clients still hold it (it aborts with
    // `had_client` once a second client attaches). drop-allocation makes
    // shmsink copy each frame into its area once, as a real producer
    // writes each frame once, like the framewire rows.
    let src = format!(
        "videotestsrc is-live=false pattern=smpte num-buffers=1 ! {caps} ! imagefreeze ! identity drop-allocation=true ! shmsink socket-path={} \
         shm-size={} wait-for-connection=true sync=false",
        path.display(),
        FRAME * 8
    );
    let prod = gst::launch("gst shmsink", &src, false, Capture::Nothing, &dir.join("gst-src.log"))?;
    let t = Instant::now();
    while !path.exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut cons = Vec::new();
    for i in 0..n {
        let pipe = format!(
            // shmsrc's buffers carry no caps: rawvideoparse gives them the
            // geometry (a capsfilter alone lets no frame through to
            // fpsdisplaysink), and do-timestamp stamps them on arrival.
            "shmsrc socket-path={} is-live=true do-timestamp=true ! rawvideoparse width={WIDTH} height={HEIGHT} \
             format=bgra framerate=30/1 ! fpsdisplaysink video-sink=fakesink text-overlay=false sync=false \
             fps-update-interval=1000",
            path.display()
        );
        cons.push(gst::launch(
            &format!("gst shmsrc {i}"),
            &pipe,
            true,
            Capture::TimedLines,
            &dir.join("gst-sink.log"),
        )?);
    }
    std::thread::sleep(Duration::from_secs(2));
    let start = crate::now_ns();
    let cpu0 = procs::cpu_seconds(prod.pid);
    std::thread::sleep(Duration::from_secs(secs));
    let cpu1 = procs::cpu_seconds(prod.pid);
    let end = crate::now_ns();
    let rates: Vec<f64> = cons
        .into_iter()
        .map(|c| gst::rate(&c.timed_lines(), start, end + 500_000_000).unwrap_or(0.0))
        .collect();
    procs::kill(prod.pid);
    let cpu = cpu0.zip(cpu1).map(|(a, b)| b - a);
    let max = rates.iter().copied().fold(0.0, f64::max);
    anyhow::ensure!(
        max > 0.0,
        "no frame reached a shmsrc consumer (see {})",
        dir.join("gst-sink.log").display()
    );
    Ok(Row {
        transport: "GStreamer shmsink/shmsrc",
        consumers: n,
        min_fps: rates.iter().copied().fold(f64::INFINITY, f64::min),
        mean_fps: rates.iter().sum::<f64>() / rates.len() as f64,
        // shmsink produces at the pace its readers release buffers.
        cpu_ms_per_frame: cpu.filter(|_| max > 0.0).map(|c| c * 1000.0 / (max * secs as f64)),
        cpu_pct: cpu.map(|c| c * 100.0 / secs as f64),
        buffers: None,
    })
}

/// Runs every cell and prints the table.
pub async fn run(a: Args) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || run_blocking(a)).await?
}

fn run_blocking(a: Args) -> anyhow::Result<()> {
    let _guard = KillGuard;
    let dir: PathBuf = std::env::temp_dir().join(format!("framewire-bench-shm-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let gst_ok = !a.no_gst && gst::version().is_some();
    let mut rows = Vec::new();
    for &n in &a.consumers {
        for t in ["shm", "tcp"] {
            eprintln!("bench shm: {t}, {n} consumer(s), {} s", a.secs);
            rows.push(framewire_cell(t, n, a.secs, &dir)?);
        }
        if gst_ok {
            eprintln!("bench shm: GStreamer shmsink/shmsrc, {n} consumer(s), {} s", a.secs);
            match gst_cell(n, a.secs, &dir) {
                Ok(r) => rows.push(r),
                Err(e) => eprintln!("bench shm: GStreamer row failed: {e:#}"),
            }
        }
    }
    println!(
        "raw 1920x1080 BGRA frames ({FRAME} bytes), {} s per cell, load {}",
        a.secs,
        procs::loadavg()
    );
    println!();
    println!(
        "| transport | consumers | frames/s per consumer (min) | mean | producer CPU per frame | producer CPU | buffers |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let ms = r
            .cpu_ms_per_frame
            .map(|v| format!("{v:.3} ms"))
            .unwrap_or_else(|| "n/a".into());
        let pct = r.cpu_pct.map(|v| format!("{v:.0} %")).unwrap_or_else(|| "n/a".into());
        let bufs = r.buffers.map(|b| b.to_string()).unwrap_or_else(|| "–".into());
        println!(
            "| {} | {} | {:.0} | {:.0} | {ms} | {pct} | {bufs} |",
            r.transport, r.consumers, r.min_fps, r.mean_fps
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
