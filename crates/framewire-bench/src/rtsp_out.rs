//! `framewire bench rtsp`: one 1080p30 H.264 camera restreamed over RTSP
//! to 1, 10 and 100 TCP clients, by a node's RTSP server (`--rtsp`) and by
//! GStreamer's RTSP server, in one run.
//!
//! **Method.** GStreamer's RTSP server (`tests/tools/rtsp_server.py`)
//! plays the camera: a live 1920x1080 30 fps H.264 picture (x264enc
//! ultrafast, the given bit rate, a keyframe every 2 s, `snow` so the rate
//! is real). Two restreamers pull it once each and serve it to N clients:
//! - framewire: a node with `--source rtsp:cam,url=CAMERA --rtsp ADDR`;
//! - GStreamer: a second `rtsp_server.py --relay CAMERA` (`rtspsrc !
//!   rtph264depay ! rtph264pay`, one shared media for every client), what a
//!   user of gst-rtsp-server would run to restream a camera.
//!
//! The clients are tasks of this process: DESCRIBE, SETUP with RTP
//! interleaved on TCP, PLAY, then read and drop, counting bytes. After 3 s
//! of warm-up the restreamer's CPU (user + system from /proc) is taken over
//! S seconds, with the bytes each client got; memory per client is the
//! restreamer's resident size with N clients above its size with none.
//! Each case is measured R times, framewire and GStreamer in turn (the
//! camera and the clients share the machine with them, so one round is
//! noisy); the table gives the median round of each and every round's
//! ratio.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::procs::{self, Capture};

/// RTSP restreaming to many clients, beside GStreamer's RTSP server.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Client counts, one case each.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    clients: Vec<u32>,
    /// Seconds each case is measured (after 3 s of warm-up).
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Times each case is measured, framewire and GStreamer in turn; the
    /// table gives the medians.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// The camera's picture size.
    #[arg(long, default_value = "1920x1080")]
    size: String,
    /// The camera's bit rate in kbit/s.
    #[arg(long, default_value_t = 4000)]
    kbit: u32,
    /// GStreamer's RTSP server script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../framewire/tests/tools/rtsp_server.py"))]
    rtsp_server: String,
}

/// What one case measured.
struct Measured {
    /// Percent of one core.
    cpu: f64,
    /// MB of resident memory per client.
    mb: f64,
    /// Mbit/s each client got, the least and the most.
    mbit: (f64, f64),
}

fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn server(script: &str, port: u16, extra: &[&str]) -> anyhow::Result<procs::Proc> {
    let mut cmd = Command::new(python());
    cmd.arg(script).args(["--port", &port.to_string()]).args(extra);
    let p = procs::spawn("rtsp server", &mut cmd, Capture::Nothing, None)?;
    let end = Instant::now() + Duration::from_secs(20);
    while !procs::listening(port) {
        if Instant::now() > end || !p.alive() {
            bail!("GStreamer's RTSP server did not start ({script})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(p)
}

/// Reads one response head (past any interleaved packet before it); its
/// headers.
async fn head(r: &mut BufReader<TcpStream>) -> anyhow::Result<Vec<(String, String)>> {
    while r.fill_buf().await?.first() == Some(&b'$') {
        let mut frame = [0u8; 4];
        r.read_exact(&mut frame).await?;
        let mut skip = vec![0u8; usize::from(u16::from_be_bytes([frame[2], frame[3]]))];
        r.read_exact(&mut skip).await?;
    }
    let mut status = String::new();
    r.read_line(&mut status).await?;
    if !status.starts_with("RTSP/1.0 200") {
        bail!("the server answered {}", status.trim());
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            bail!("the server closed");
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(headers);
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
}

fn get<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// One client: plays `url` over TCP and counts the bytes it gets until
/// `stop`.
async fn client(url: String, bytes: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let hostport = url
        .trim_start_matches("rtsp://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut r = BufReader::new(TcpStream::connect(&hostport).await?);
    let ask = |m: &str, u: &str, cseq: u32, extra: &str| format!("{m} {u} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n");
    r.get_mut()
        .write_all(ask("DESCRIBE", &url, 1, "Accept: application/sdp\r\n").as_bytes())
        .await?;
    let h = head(&mut r).await?;
    let len: usize = get(&h, "content-length").unwrap_or("0").parse()?;
    let mut sdp = vec![0; len];
    r.read_exact(&mut sdp).await?;
    let sdp = String::from_utf8_lossy(&sdp);
    let base = get(&h, "content-base").map_or_else(|| format!("{url}/"), str::to_owned);
    let control = sdp
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a=control:"))
        .next_back()
        .context("no a=control in the SDP")?;
    let track = if control.starts_with("rtsp://") {
        control.to_owned()
    } else {
        format!("{}/{control}", base.trim_end_matches('/'))
    };
    let transport = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n";
    r.get_mut()
        .write_all(ask("SETUP", &track, 2, transport).as_bytes())
        .await?;
    let h = head(&mut r).await?;
    let session = get(&h, "session")
        .and_then(|s| s.split(';').next())
        .context("no session")?
        .to_owned();
    let play = ask("PLAY", &url, 3, &format!("Session: {session}\r\nRange: npt=0.000-\r\n"));
    r.get_mut().write_all(play.as_bytes()).await?;
    head(&mut r).await?;
    let mut buf = vec![0u8; 64 << 10];
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(200), r.read(&mut buf)).await {
            Ok(Ok(0)) => bail!("the server closed"),
            Ok(Ok(n)) => {
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {}
        }
    }
    Ok(())
}

/// N clients of `url` against the restreamer `pid`.
async fn case(a: &Args, pid: u32, url: &str, n: u32) -> anyhow::Result<Measured> {
    let base_rss = procs::rss(pid).map_or(0, |(r, _)| r);
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let mut tasks = Vec::new();
    for c in &counters {
        tasks.push(tokio::spawn(client(url.to_owned(), c.clone(), stop.clone())));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let (c0, t0) = (
        procs::cpu_seconds(pid).context("the restreamer exited")?,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs_f64(a.secs)).await;
    let cpu = (procs::cpu_seconds(pid).context("the restreamer exited")? - c0) / t0.elapsed().as_secs_f64() * 100.0;
    let secs = t0.elapsed().as_secs_f64();
    let rss = procs::rss(pid).map_or(0, |(r, _)| r);
    let rates: Vec<f64> = counters
        .iter()
        .zip(before)
        .map(|(c, b)| (c.load(Ordering::Relaxed) - b) as f64 * 8.0 / 1e6 / secs)
        .collect();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            eprintln!("bench rtsp: a client of {url} failed: {e:#}");
        }
    }
    let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rates.iter().copied().fold(0.0, f64::max);
    Ok(Measured {
        cpu,
        mb: rss.saturating_sub(base_rss) as f64 / 1e6 / f64::from(n),
        mbit: (lo, hi),
    })
}

/// The round with the median CPU.
fn median(mut v: Vec<Measured>) -> Measured {
    v.sort_by(|a, b| a.cpu.total_cmp(&b.cpu));
    v.swap_remove(v.len() / 2)
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    if !Command::new("gst-launch-1.0")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        bail!("GStreamer is needed as the peer (scripts/setup.sh installs it)");
    }
    let cam_port = procs::free_port()?;
    let camera = server(
        &a.rtsp_server,
        cam_port,
        &[
            "--codec",
            "h264",
            "--size",
            &a.size,
            "--gop",
            "60",
            "--bitrate",
            &a.kbit.to_string(),
            "--pattern",
            "snow",
        ],
    )?;
    let camera_url = format!("rtsp://127.0.0.1:{cam_port}/cam");

    let exe = std::env::current_exe()?;
    let (port, rtsp_port) = (procs::free_port()?, procs::free_port()?);
    let mut cmd = Command::new(&exe);
    cmd.args(["node", "--name", "bench:rtsp", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--discovery",
            "off",
            "--no-shm",
            "--source",
            &format!("rtsp:cam,url={camera_url}"),
        ])
        .args(["--rtsp", &format!("127.0.0.1:{rtsp_port}")]);
    let node = procs::spawn("node", &mut cmd, Capture::Nothing, None)?;
    procs::wait_listening(rtsp_port, Duration::from_secs(20), &node)?;
    let gst_port = procs::free_port()?;
    let gst = server(&a.rtsp_server, gst_port, &["--relay", &camera_url])?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    println!(
        "RTSP restreaming: one {} H.264 camera at 30 fps, {} kbit/s, to N clients over TCP; {} s per case, {} rounds in turn, medians (one core = 100 %)\n",
        a.size, a.kbit, a.secs, a.rounds
    );
    println!(
        "| clients | framewire CPU | GStreamer RTSP server CPU | framewire / GStreamer (each round) | MB per client: framewire, GStreamer | Mbit/s per client (least-most): framewire | GStreamer |"
    );
    println!("|---|---|---|---|---|---|---|");
    let fw_url = format!("rtsp://127.0.0.1:{rtsp_port}/cam");
    let gst_url = format!("rtsp://127.0.0.1:{gst_port}/cam");
    for &n in &a.clients {
        let (mut fws, mut gs) = (Vec::new(), Vec::new());
        for _ in 0..a.rounds.max(1) {
            fws.push(case(&a, node.pid, &fw_url, n).await?);
            gs.push(case(&a, gst.pid, &gst_url, n).await?);
        }
        let ratios: Vec<f64> = fws.iter().zip(&gs).map(|(f, g)| f.cpu / g.cpu.max(0.01)).collect();
        let (fw, g) = (median(fws), median(gs));
        println!(
            "| {n} | {:.1} % | {:.1} % | {:.2} ({}) | {:.2}, {:.2} | {:.2}-{:.2} | {:.2}-{:.2} |",
            fw.cpu,
            g.cpu,
            fw.cpu / g.cpu.max(0.01),
            ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", "),
            fw.mb,
            g.mb,
            fw.mbit.0,
            fw.mbit.1,
            g.mbit.0,
            g.mbit.1
        );
    }
    procs::kill(gst.pid);
    procs::kill(node.pid);
    procs::kill(camera.pid);
    Ok(())
}
