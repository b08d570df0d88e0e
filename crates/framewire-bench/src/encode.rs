//! `framewire bench encode`: H.264 encoders for a node's outputs, in one
//! run on the same frames — OpenH264 in process (what `STREAM~h264` uses)
//! and libx264 through an ffmpeg child (the other way a node could have
//! gone) — by CPU per stream and encoder delay.
//!
//! - **Frames.** `testsrc2` at the size asked (1080p by default), made
//!   once by ffmpeg as raw YUV 4:2:0 and held in memory.
//! - **OpenH264.** Each frame encoded in turn, paced at the frame rate;
//!   CPU is this process's user+system time over the run (nothing else
//!   runs in it meanwhile); delay is each `encode` call's duration: in
//!   process, the encoded frame is ready when the call returns.
//! - **libx264 through ffmpeg** (`-preset ultrafast -tune zerolatency`,
//!   the same bit rate and keyframe interval): the frames written to the
//!   child's stdin at the frame rate; CPU is the child's; delay is from
//!   writing frame `i` to the arrival of the `i`-th access unit delimiter
//!   on its stdout (delimiters inserted by `h264_metadata`): the start of
//!   that frame's output. A node would still have to find where each
//!   output ends in the byte stream (at the next delimiter: one more frame
//!   interval); that is not counted.
//! - **On a node.** `bars~h264` on a node serving the raw pattern: the
//!   node's CPU above the raw stream's, and the median capture-to-arrival
//!   time of the H.264 frames minus that of the raw ones.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use framewire_codec::{EncodeSpec, Encoder, PixelBuffer, PixelLayout};
use framewire_net::{Client, ClientIdentity};
use framewire_proto::{DeliveryMode, Message, SubscribeParams};

use crate::procs::{self, Capture};

/// H.264 encoders by CPU and delay, in one run.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Picture size.
    #[arg(long, default_value = "1920x1080")]
    size: String,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Frames encoded by each encoder.
    #[arg(long, default_value_t = 300)]
    frames: usize,
    /// Bit rate in bits per second.
    #[arg(long, default_value_t = 4_000_000)]
    bitrate: u32,
    /// Seconds the node case is measured (after 1 s of warm-up).
    #[arg(long, default_value_t = 8.0)]
    secs: f64,
}

fn parse_size(s: &str) -> anyhow::Result<(usize, usize)> {
    let (w, h) = s.split_once('x').context("--size is WIDTHxHEIGHT")?;
    Ok((w.parse()?, h.parse()?))
}

/// `n` distinct raw I420 frames of testsrc2, from ffmpeg (cycled up to
/// the frames asked).
fn test_frames(w: usize, h: usize, fps: u32, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={w}x{h}:rate={fps}"))
        .args([
            "-frames:v",
            &n.min(120).to_string(),
            "-pix_fmt",
            "yuv420p",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .context("ffmpeg runs (scripts/setup.sh installs it)")?;
    let size = w * h * 3 / 2;
    if !out.status.success() || out.stdout.len() < size {
        bail!("ffmpeg made no frames: {}", String::from_utf8_lossy(&out.stderr));
    }
    let made: Vec<Vec<u8>> = out.stdout.chunks_exact(size).map(<[u8]>::to_vec).collect();
    Ok((0..n).map(|i| made[i % made.len()].clone()).collect())
}

/// This process's CPU time, to the nanosecond: the sum of its threads'
/// `/proc/self/task/*/schedstat` (the `stat` figures count 10 ms ticks, and
/// a second of encoding small pictures can read as none of them).
fn own_cpu_seconds() -> f64 {
    let ns: u64 = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    if ns == 0 {
        return procs::cpu_seconds(std::process::id()).unwrap_or(0.0);
    }
    ns as f64 / 1e9
}

pub(crate) fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

struct Measured {
    cpu_percent: f64,
    delay_ms: Vec<f64>,
    bytes: usize,
}

fn openh264(frames: &[Vec<u8>], w: usize, h: usize, a: &Args) -> anyhow::Result<Measured> {
    let spec = EncodeSpec::h264(a.bitrate, 2 * a.fps);
    let mut enc = framewire_codec::h264::H264Encoder::new(&spec)?;
    let period = Duration::from_secs_f64(1.0 / f64::from(a.fps));
    let (c0, t0) = (own_cpu_seconds(), Instant::now());
    let mut delay_ms = Vec::new();
    let mut bytes = 0;
    for (i, f) in frames.iter().enumerate() {
        let pic = PixelBuffer::new(PixelLayout::I420, w as u32, h as u32, f.clone())?;
        let s = Instant::now();
        bytes += enc.encode(&pic)?.len();
        delay_ms.push(s.elapsed().as_secs_f64() * 1e3);
        let due = t0 + period * (i as u32 + 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let cpu = (own_cpu_seconds() - c0) / t0.elapsed().as_secs_f64() * 100.0;
    Ok(Measured {
        cpu_percent: cpu,
        delay_ms,
        bytes,
    })
}

fn x264(frames: &[Vec<u8>], w: usize, h: usize, a: &Args) -> anyhow::Result<Measured> {
    let mut child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-s", &format!("{w}x{h}"), "-r", &a.fps.to_string(), "-i", "pipe:0"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"])
        .args([
            "-b:v",
            &a.bitrate.to_string(),
            "-g",
            &(2 * a.fps).to_string(),
            "-bf",
            "0",
        ])
        .args([
            "-bsf:v",
            "h264_metadata=aud=insert",
            "-f",
            "h264",
            "-flush_packets",
            "1",
            "pipe:1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("ffmpeg runs")?;
    let pid = child.id();
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut stdout = child.stdout.take().context("stdout")?;
    // When each access unit's delimiter (00 00 01 09) arrives: the start of
    // the output of the frame with the same index.
    let reader = std::thread::spawn(move || {
        let (mut starts, mut bytes) = (Vec::new(), 0usize);
        let mut buf = vec![0u8; 1 << 20];
        let mut tail = [0xffu8; 3];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            let at = Instant::now();
            bytes += n;
            let mut joined = tail.to_vec();
            joined.extend_from_slice(&buf[..n]);
            starts.extend(joined.windows(4).filter(|x| x == &[0, 0, 1, 9]).map(|_| at));
            tail.copy_from_slice(&joined[joined.len() - 3..]);
        }
        (starts, bytes)
    });
    let period = Duration::from_secs_f64(1.0 / f64::from(a.fps));
    let (c0, t0) = (procs::cpu_seconds(pid).unwrap_or(0.0), Instant::now());
    let mut written = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        written.push(Instant::now());
        stdin.write_all(f)?;
        let due = t0 + period * (i as u32 + 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let cpu = (procs::cpu_seconds(pid).unwrap_or(0.0) - c0) / t0.elapsed().as_secs_f64() * 100.0;
    drop(stdin);
    let _ = child.wait();
    let (starts, bytes) = reader.join().map_err(|_| anyhow::anyhow!("the reader failed"))?;
    if starts.len() < frames.len() {
        bail!("ffmpeg wrote {} access units for {} frames", starts.len(), frames.len());
    }
    let delay_ms = written
        .iter()
        .zip(&starts)
        .map(|(w, s)| s.saturating_duration_since(*w).as_secs_f64() * 1e3)
        .collect();
    Ok(Measured {
        cpu_percent: cpu,
        delay_ms,
        bytes,
    })
}

/// Median capture-to-arrival (ms) of `stream` on `addr` and the node's CPU.
async fn on_node(addr: &str, stream: &str, pid: u32, secs: f64) -> anyhow::Result<(f64, f64, u64)> {
    let who = ClientIdentity::tool("bench:encode");
    let mut c = Client::connect(addr, &who, Duration::from_secs(5)).await?;
    let params = SubscribeParams {
        mode: DeliveryMode::LowLatency,
        ..SubscribeParams::default()
    };
    let ch = c
        .subscribe(stream, params)
        .await
        .with_context(|| format!("subscribe {stream}"))?;
    let warm = Instant::now() + Duration::from_secs(1);
    let mut ages = Vec::new();
    let mut c0 = None;
    let end = warm + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        let Ok(m) = tokio::time::timeout(Duration::from_secs(2), c.next_message()).await else {
            bail!("no frames of {stream}");
        };
        match m? {
            Some(Message::VideoFrame(v)) if v.channel == ch => {
                if Instant::now() >= warm {
                    c0.get_or_insert_with(|| (procs::cpu_seconds(pid).unwrap_or(0.0), Instant::now()));
                    ages.push(crate::now_ns().saturating_sub(v.timestamp_ns) as f64 / 1e6);
                }
            }
            Some(Message::ControlRequest(r)) => c.ack(&r).await?,
            Some(_) => {}
            None => bail!("the node closed"),
        }
    }
    let (c0, t0) = c0.context("no frames after warm-up")?;
    let cpu = (procs::cpu_seconds(pid).unwrap_or(0.0) - c0) / t0.elapsed().as_secs_f64() * 100.0;
    let n = ages.len() as u64;
    Ok((cpu, percentile(&mut ages, 0.5), n))
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let (w, h) = parse_size(&a.size)?;
    let frames = test_frames(w, h, a.fps, a.frames)?;
    println!(
        "H.264 encoders: {w}x{h} at {} fps, {} bit/s, a keyframe every {} frames, {} frames each (one core = 100 %)\n",
        a.fps,
        a.bitrate,
        2 * a.fps,
        frames.len()
    );
    println!("| encoder | CPU | delay p50 | delay p99 | bit rate |");
    println!("|---|---|---|---|---|");
    let secs = frames.len() as f64 / f64::from(a.fps);
    let mut rows = Vec::new();
    for (label, m) in [
        ("OpenH264, in process (framewire)", openh264(&frames, w, h, &a)?),
        ("libx264 ultrafast zerolatency, ffmpeg child", x264(&frames, w, h, &a)?),
    ] {
        let mut d = m.delay_ms.clone();
        let (p50, p99) = (percentile(&mut d, 0.5), percentile(&mut d, 0.99));
        println!(
            "| {label} | {:.1} % | {p50:.1} ms | {p99:.1} ms | {:.2} Mbit/s |",
            m.cpu_percent,
            m.bytes as f64 * 8.0 / secs / 1e6
        );
        rows.push((m.cpu_percent, p50));
    }
    println!(
        "\nOpenH264 / libx264: CPU {:.2}, delay p50 {:.2} (lower is better)",
        rows[0].0 / rows[1].0.max(0.1),
        rows[0].1 / rows[1].1.max(0.01)
    );

    // On a node's output.
    let exe = std::env::current_exe()?;
    let port = procs::free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let source = format!(
        "test-pattern:bars,size={w}x{h},fps={},format=raw,pixel-format=yuv420p",
        a.fps
    );
    let node = procs::spawn(
        "node",
        Command::new(&exe).args([
            "node",
            "--name",
            "bench:encode",
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
    let (raw_cpu, raw_age, _) = on_node(&addr, "bars", node.pid, a.secs).await?;
    let rate = format!("bars~h264-{}kbit", a.bitrate / 1000);
    let (h264_cpu, h264_age, n) = on_node(&addr, &rate, node.pid, a.secs).await?;
    procs::kill(node.pid);
    println!("\n| on a node's output | node CPU | capture to arrival p50 | frames |");
    println!("|---|---|---|---|");
    println!("| raw stream (baseline) | {raw_cpu:.1} % | {raw_age:.1} ms | - |");
    println!("| {rate} | {h264_cpu:.1} % | {h264_age:.1} ms | {n} |");
    println!(
        "\nper H.264 stream on a node: {:.1} % of a core, {:.1} ms added",
        h264_cpu - raw_cpu,
        h264_age - raw_age
    );
    Ok(())
}
