//! `framewire bench latency`: capture to shown on a viewer window, through
//! a relay, for framewire and for GStreamer doing the same job, read by the
//! same reader in one run (docs/latency.md).
//!
//! **Method.** One Xvfb screen the size of the picture. The pictures are
//! the test pattern's, with the time code of their capture time drawn in
//! (`framewire_media::timecode`), stamped just before they are drawn.
//! - framewire: a source node (`test-pattern`, MJPEG at the given
//!   quality), a relay node pulling it, `framewire view` of the relay in a
//!   window at 0,0;
//! - GStreamer: `framewire bench pattern` draws the same pictures as raw
//!   BGRA into `fdsrc ! rawvideoparse ! videoconvert ! jpegenc ! gdppay !
//!   tcpclientsink`; a relay `tcpserversrc ! gdpdepay ! tee ! queue !
//!   gdppay ! tcpserversink`; a viewer `tcpclientsrc ! gdpdepay ! jpegdec !
//!   videoconvert ! ximagesink sync=false` (a window at 0,0).
//! - The reader for both: `framewire latency --x11` over the window's
//!   rectangle, N new pictures after 1 s of warm-up.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use framewire_codec::EncodeSpec;
use framewire_media::testpattern::{TestPattern, TestPatternConfig};

use crate::procs::{self, Capture};

/// Capture to shown through a relay, beside GStreamer.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Picture size.
    #[arg(long, default_value = "1920x1080")]
    size: String,
    /// Frames a second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// JPEG quality of both.
    #[arg(long, default_value_t = 85)]
    quality: u8,
    /// New pictures read per case.
    #[arg(long, default_value_t = 300)]
    frames: u32,
    /// Times each case runs, framewire and GStreamer in turn.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Skip the browser rows (headless Chromium: framewire's MJPEG and
    /// WebRTC beside ffmpeg's MJPEG).
    #[arg(long)]
    no_browser: bool,
}

/// (internal) The test pattern as raw BGRA on stdout, paced.
#[derive(Debug, Clone, clap::Args)]
pub struct PatternArgs {
    /// Picture size.
    #[arg(long, default_value = "1920x1080")]
    size: String,
    /// Frames a second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
}

fn size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s.split_once('x').context("size is WxH")?;
    Ok((w.parse()?, h.parse()?))
}

/// Writes test-pattern pictures (time code included) to stdout until the
/// reader goes.
pub fn run_pattern(a: &PatternArgs) -> anyhow::Result<()> {
    let (width, height) = size(&a.size)?;
    let pattern = TestPattern::new(TestPatternConfig {
        name: "bench".into(),
        width,
        height,
        fps_num: a.fps,
        fps_den: 1,
        encode: EncodeSpec::raw(framewire_proto::PixelFormat::Bgra),
    })?;
    let mut out = std::io::stdout().lock();
    let period = Duration::from_secs_f64(1.0 / f64::from(a.fps.max(1)));
    let start = Instant::now();
    for seq in 0u64.. {
        let due = start + period.mul_f64(seq as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let pic = pattern.render(seq, crate::now_ns());
        if out.write_all(pic.data()).and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// An Xvfb screen of `w`x`h`; its display name.
fn xvfb(w: u32, h: u32) -> anyhow::Result<String> {
    let mut cmd = Command::new("Xvfb");
    cmd.args(["-displayfd", "1", "-nolisten", "tcp", "-noreset", "-screen", "0"])
        .arg(format!("{w}x{h}x24"));
    cmd.stdout(Stdio::piped()).stderr(Stdio::null()).stdin(Stdio::null());
    let mut child = cmd.spawn().context("cannot run Xvfb (package xvfb)")?;
    let out = child.stdout.take().context("Xvfb stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    procs::adopt("Xvfb", child);
    let n = rx.recv_timeout(Duration::from_secs(20)).context("Xvfb did not start")?;
    Ok(format!(":{}", n.trim()))
}

/// `framewire latency ARGS --json`: its verdict.
fn reader(reader_args: &[String], frames: u32) -> anyhow::Result<serde_json::Value> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("latency")
        .args(reader_args)
        .args(["--frames", &frames.to_string(), "--json", "--idle-timeout", "20"]);
    let log = std::env::temp_dir().join(format!("framewire-bench-latency-{}.log", std::process::id()));
    let p = procs::spawn("reader", &mut cmd, Capture::Text, Some(&log))?;
    let text = p.output(Duration::from_secs(u64::from(frames) / 10 + 60));
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    serde_json::from_str(text.trim())
        .with_context(|| format!("the reader said {text:?}, and on stderr: {}", said.trim()))
}

/// p50, p95, p99 of a verdict, in ms.
type Figures = (f64, f64, f64);

fn figures(v: &serde_json::Value) -> Figures {
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    (f("p50_ms"), f("p95_ms"), f("p99_ms"))
}

/// The reader's verdict on the screen.
fn read_screen(display: &str, w: u32, h: u32, frames: u32) -> anyhow::Result<Figures> {
    let args = ["--x11", display, "--rect", &format!("0,0,{w},{h}")].map(String::from);
    Ok(figures(&reader(&args, frames)?))
}

/// Where framewire's time goes, p50s in ms.
#[derive(Debug, Default)]
struct Stages {
    /// Capture to a frame's arrival at a subscriber of the relay.
    arrived: f64,
    /// Decoding there.
    decode: f64,
    /// Capture to decoded there.
    decoded: f64,
}

/// Drawing and encoding one picture at the source, p50 of 30, in ms.
fn draw_and_encode(a: &Args, w: u32, h: u32) -> anyhow::Result<f64> {
    let mut pattern = TestPattern::new(TestPatternConfig {
        name: "bench".into(),
        width: w,
        height: h,
        fps_num: a.fps,
        fps_den: 1,
        encode: EncodeSpec::mjpeg(a.quality),
    })?;
    let mut took = Vec::new();
    for seq in 0..30 {
        let t = Instant::now();
        pattern.frame(seq, crate::now_ns())?;
        took.push(t.elapsed().as_secs_f64() * 1e3);
    }
    took.sort_by(f64::total_cmp);
    Ok(took[took.len() / 2])
}

/// A source node serving `pattern` (a `test-pattern:cam,…` spec) and a
/// relay node pulling `cam` from it with `relay_args` more; both
/// listening. Returns them and the relay's port.
pub(crate) fn source_and_relay(
    pattern: &str,
    relay_args: &[String],
) -> anyhow::Result<(procs::Proc, procs::Proc, u16)> {
    let exe = std::env::current_exe()?;
    let (src, relay) = (procs::free_port()?, procs::free_port()?);
    let mut cmd = Command::new(&exe);
    cmd.args(["node", "--name", "bench:src", "--listen", &format!("127.0.0.1:{src}")])
        .args(["--discovery", "off", "--no-shm", "--source", pattern]);
    let s = procs::spawn("source node", &mut cmd, Capture::Nothing, None)?;
    procs::wait_listening(src, Duration::from_secs(20), &s)?;
    let mut cmd = Command::new(&exe);
    cmd.args([
        "node",
        "--name",
        "bench:relay",
        "--listen",
        &format!("127.0.0.1:{relay}"),
    ])
    .args([
        "--discovery",
        "off",
        "--no-shm",
        "--upstream",
        &format!("127.0.0.1:{src}/cam"),
    ])
    .args(relay_args);
    let r = procs::spawn("relay node", &mut cmd, Capture::Nothing, None)?;
    procs::wait_listening(relay, Duration::from_secs(20), &r)?;
    Ok((s, r, relay))
}

fn framewire_case(a: &Args, display: &str, w: u32, h: u32) -> anyhow::Result<(Figures, Stages)> {
    let exe = std::env::current_exe()?;
    let pattern = format!("test-pattern:cam,size={w}x{h},fps={},quality={}", a.fps, a.quality);
    let (s, r, relay) = source_and_relay(&pattern, &[])?;
    // The stages, before the viewer runs: decoded at a subscriber of the
    // relay, as the viewer would decode it.
    let v = reader(&[format!("127.0.0.1:{relay}"), "cam".into()], a.frames.min(150))?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let stages = Stages {
        arrived: f("arrived_p50_ms"),
        decode: f("decode_p50_ms"),
        decoded: f("p50_ms"),
    };
    let mut cmd = Command::new(&exe);
    cmd.args([
        "view",
        &format!("127.0.0.1:{relay}"),
        "cam",
        "--size",
        &format!("{w}x{h}"),
    ])
    .args(["--position", "0,0"])
    .env("DISPLAY", display);
    let v = procs::spawn("viewer", &mut cmd, Capture::Nothing, None)?;
    std::thread::sleep(Duration::from_secs(2));
    for p in [&s, &r, &v] {
        if !p.alive() {
            bail!("the {} exited", p.label);
        }
    }
    let got = read_screen(display, w, h, a.frames);
    for p in [v.pid, r.pid, s.pid] {
        procs::kill(p);
    }
    Ok((got?, stages))
}

fn gst_case(a: &Args, display: &str, w: u32, h: u32) -> anyhow::Result<Figures> {
    let exe = std::env::current_exe()?;
    let (p0, p1) = (procs::free_port()?, procs::free_port()?);
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args(["-q"]).args(
        format!(
            "tcpserversrc host=127.0.0.1 port={p0} ! gdpdepay ! tee name=t t. ! queue ! gdppay ! \
             tcpserversink host=127.0.0.1 port={p1} sync=false"
        )
        .split(' '),
    );
    let relay = procs::spawn("GStreamer relay", &mut cmd, Capture::Nothing, None)?;
    procs::wait_listening(p0, Duration::from_secs(20), &relay)?;
    procs::wait_listening(p1, Duration::from_secs(20), &relay)?;
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args(["-q"])
        .args(
            format!(
                "tcpclientsrc host=127.0.0.1 port={p1} ! gdpdepay ! jpegdec ! videoconvert ! ximagesink sync=false"
            )
            .split(' '),
        )
        .env("DISPLAY", display);
    let viewer = procs::spawn("GStreamer viewer", &mut cmd, Capture::Nothing, None)?;
    std::thread::sleep(Duration::from_millis(500));
    if !viewer.alive() {
        bail!("the GStreamer viewer exited (ximagesink: package gstreamer1.0-x, scripts/setup-bench.sh)");
    }
    let source = format!(
        "{} bench pattern --size {w}x{h} --fps {} | gst-launch-1.0 -q fdsrc fd=0 blocksize={} ! \
         rawvideoparse format=bgra width={w} height={h} framerate={}/1 ! videoconvert ! jpegenc quality={} ! \
         gdppay ! tcpclientsink host=127.0.0.1 port={p0} sync=false",
        exe.display(),
        a.fps,
        w * h * 4,
        a.fps,
        a.quality
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &source]).process_group(0);
    let src = procs::spawn("GStreamer source", &mut cmd, Capture::Nothing, None)?;
    let got = read_screen(display, w, h, a.frames);
    // The source is a shell pipeline: its whole process group.
    procs::kill_group(src.pid);
    for p in [viewer.pid, relay.pid] {
        procs::kill(p);
    }
    got
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let _guard = procs::KillGuard;
    let (w, h) = size(&a.size)?;
    if !Command::new("gst-launch-1.0")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        bail!("GStreamer is needed as the peer (scripts/setup.sh installs it)");
    }
    let display = xvfb(w, h)?;
    println!(
        "Capture to shown: {w}x{h} MJPEG (quality {}) at {} fps, source -> relay -> viewer window (Xvfb {display}), {} new pictures per case read off the screen; ms\n",
        a.quality, a.fps, a.frames
    );
    println!("| round | framewire p50 / p95 / p99 | GStreamer p50 / p95 / p99 | p50 framewire / GStreamer |");
    println!("|---|---|---|---|");
    let a2 = a.clone();
    let d2 = display.clone();
    let stages = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(Stages, f64)>> {
        let mut stages = Vec::new();
        for round in 1..=a2.rounds.max(1) {
            let (fw, st) = framewire_case(&a2, &d2, w, h)?;
            let g = gst_case(&a2, &d2, w, h)?;
            println!(
                "| {round} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.2} |",
                fw.0,
                fw.1,
                fw.2,
                g.0,
                g.1,
                g.2,
                fw.0 / g.0
            );
            stages.push((st, fw.0));
        }
        Ok(stages)
    })
    .await??;
    let encode = draw_and_encode(&a, w, h)?;
    println!(
        "\nframewire's stages (p50, ms): drawing and encoding at the source (in this process); capture to arrival at a"
    );
    println!(
        "subscriber of the relay, and decoding there (`framewire latency`, before the viewer runs); the rest to shown\n"
    );
    println!("| round | draw + encode | then to arrived | decode | then to shown | shown |");
    println!("|---|---|---|---|---|---|");
    for (round, (st, shown)) in stages.iter().enumerate() {
        println!(
            "| {} | {encode:.1} | {:.1} | {:.1} | {:.1} | {shown:.1} |",
            round + 1,
            st.arrived - encode,
            st.decode,
            shown - st.decoded
        );
    }
    if !a.no_browser {
        let a = a.clone();
        tokio::task::spawn_blocking(move || crate::latency_browser::run(&a.size, a.fps, a.quality, a.frames, a.rounds))
            .await??;
    }
    procs::kill_all();
    Ok(())
}
