//! `framewire bench soak`: a small deployment run for a long time, with
//! clients coming and going all the time, sampled at a fixed interval and
//! judged at the end.
//!
//! Every node is a real process of this binary: a camera node (an MJPEG
//! and an H.264 test pattern, served over RTSP too), a relay pulling both,
//! a recorder pulling both from the relay into an archive, a viewer window
//! on an Xvfb display pulling from the relay, and a controller with its
//! web UI watching them all. Around them, in this process: subscribers
//! that join and leave every few seconds (either delivery mode, either
//! node, either stream), web clients (the graph, alerts, thumbnails, MJPEG
//! previews, the state WebSocket) and RTSP players (ffmpeg, TCP and UDP).
//! docs/reliability.md has the method and the figures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

mod load;
mod plot;
mod sample;
mod verdict;

use crate::procs::{self, Capture, KillGuard, Proc};

/// Run a small deployment for a long time with clients joining and leaving
/// all the time, sample every process (RSS, descriptors, threads, CPU),
/// the end-to-end latency of the subscribers and the drops of every node,
/// and judge the run at the end: memory, descriptors and threads flat
/// after the warm-up, latency without an upward trend, every frame a
/// subscriber missed counted as a drop by a sender, the archive's index
/// matching its files, no process lost, no panic. Writes samples.csv,
/// report.md and SVG plots to --out. Exits non-zero when a check fails.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire bench soak --duration 1h          the long run (docs/reliability.md)\n  \
framewire bench soak --duration 90s --sample 3s  the variant CI runs\n\n\
Needs ffmpeg (archive, RTSP players) and Xvfb (the viewer window): scripts/setup.sh installs them.")]
pub struct Args {
    /// How long to run: 90s, 2m, 1h.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    duration: Duration,
    /// Time between samples.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    sample: Duration,
    /// The start of the run that is not judged [default: a fifth of
    /// --duration, at most 5 minutes].
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Subscribers joining and leaving at once.
    #[arg(long, default_value_t = 6)]
    subscribers: usize,
    /// Web clients at once.
    #[arg(long, default_value_t = 3)]
    web_clients: usize,
    /// RTSP players at once (ffmpeg).
    #[arg(long, default_value_t = 2)]
    rtsp_clients: usize,
    /// Picture size of the test patterns, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360")]
    size: String,
    /// Frames per second of the test patterns.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Seed of the clients' choices [default: from the clock; printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Where samples.csv, report.md, the plots and the nodes' logs go
    /// [default: ./soak-UNIXTIME].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `90s`, `2m`, `1h`, `500ms`, or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (90s, 2m, 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("`{s}` is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A node of the deployment.
#[derive(Debug)]
pub(crate) struct NodeProc {
    pub name: &'static str,
    pub addr: String,
    pub proc: Proc,
    pub log: PathBuf,
}

/// The deployment: its nodes and where to reach its services.
#[derive(Debug)]
pub(crate) struct Deployment {
    pub nodes: Vec<NodeProc>,
    pub rtsp: String,
    pub web: String,
    pub archive_dir: PathBuf,
    pub _xvfb: Proc,
}

impl Deployment {
    pub(crate) fn addr(&self, name: &str) -> &str {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .map_or("", |n| n.addr.as_str())
    }
}

fn needs(program: &str, why: &str) -> anyhow::Result<()> {
    let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    if !found {
        bail!("{program} is not installed ({why}); scripts/setup.sh installs it");
    }
    Ok(())
}

/// A display number nobody holds.
fn free_display() -> u32 {
    let base = 100 + std::process::id() % 400;
    (base..base + 100)
        .find(|n| !Path::new(&format!("/tmp/.X{n}-lock")).exists())
        .unwrap_or(base)
}

fn start_node(out: &Path, name: &'static str, args: &[String], env: &[(&str, String)]) -> anyhow::Result<NodeProc> {
    let port = procs::free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let exe = std::env::current_exe().context("cannot find this program")?;
    let log = out.join("logs").join(format!("{}.log", name.replace(':', "-")));
    let mut cmd = Command::new(exe);
    cmd.args([
        "--log",
        "info",
        "node",
        "--name",
        name,
        "--listen",
        &addr,
        "--discovery",
        "off",
    ])
    .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let proc = procs::spawn(name, &mut cmd, Capture::Nothing, Some(&log))?;
    procs::wait_listening(port, Duration::from_secs(20), &proc)?;
    Ok(NodeProc { name, addr, proc, log })
}

fn start(a: &Args, out: &Path) -> anyhow::Result<Deployment> {
    needs("ffmpeg", "the archive and the RTSP players")?;
    needs("Xvfb", "the viewer window's display")?;
    std::fs::create_dir_all(out.join("logs"))?;
    let archive_dir = out.join("archive");
    let display = free_display();
    let mut xcmd = Command::new("Xvfb");
    xcmd.args([
        &format!(":{display}"),
        "-screen",
        "0",
        "1280x720x24",
        "-nolisten",
        "tcp",
    ]);
    let xvfb = procs::spawn("Xvfb", &mut xcmd, Capture::Nothing, Some(&out.join("logs/xvfb.log")))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(&format!("/tmp/.X11-unix/X{display}")).exists() {
        if Instant::now() > deadline || !xvfb.alive() {
            bail!("Xvfb did not start on :{display} (logs/xvfb.log)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let rtsp_port = procs::free_port()?;
    let rtsp = format!("127.0.0.1:{rtsp_port}");
    let pattern = |name: &str, extra: &str| format!("test-pattern:{name},size={},fps={}{extra}", a.size, a.fps);
    let s = |v: &str| v.to_owned();
    let cam = start_node(
        out,
        "soak:cam",
        &[
            s("--source"),
            pattern("bars", ",format=mjpeg"),
            s("--source"),
            pattern("h264", ",format=h264,gop=60"),
            s("--rtsp"),
            rtsp.clone(),
        ],
        &[],
    )?;
    let up = |node: &NodeProc, stream: &str| vec![s("--upstream"), format!("{}/{stream}", node.addr)];
    let relay = start_node(out, "soak:relay", &[up(&cam, "bars"), up(&cam, "h264")].concat(), &[])?;
    let dir = archive_dir.display().to_string();
    let archive = |stream: &str| {
        vec![
            s("--sink"),
            format!("archive:{stream},dir={dir},format=passthrough,segment=10,max-total-bytes=200000000"),
        ]
    };
    let rec = start_node(
        out,
        "soak:rec",
        &[up(&relay, "bars"), up(&relay, "h264"), archive("bars"), archive("h264")].concat(),
        &[],
    )?;
    let view = start_node(
        out,
        "soak:view",
        &[up(&relay, "bars"), vec![s("--sink"), s("view:bars")]].concat(),
        &[("DISPLAY", format!(":{display}"))],
    )?;
    let web_port = procs::free_port()?;
    let web = format!("127.0.0.1:{web_port}");
    let mut ctl_args = vec![
        s("--controller"),
        s("--web"),
        web.clone(),
        s("--state-dir"),
        out.join("state").display().to_string(),
    ];
    for n in [&cam, &relay, &rec, &view] {
        ctl_args.extend([s("--controller-node"), n.addr.clone()]);
    }
    let ctl = start_node(out, "soak:ctl", &ctl_args, &[])?;
    procs::wait_listening(web_port, Duration::from_secs(10), &ctl.proc)?;
    Ok(Deployment {
        nodes: vec![cam, relay, rec, view, ctl],
        rtsp,
        web,
        archive_dir,
        _xvfb: xvfb,
    })
}

/// Runs the soak; an error when it could not run or a check failed.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let _guard = KillGuard;
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        procs::stop_all();
        std::process::exit(130);
    });
    let warmup = a
        .warmup
        .unwrap_or_else(|| (a.duration / 5).min(Duration::from_secs(300)));
    if warmup >= a.duration {
        bail!(
            "--warmup ({warmup:?}) must be shorter than --duration ({:?})",
            a.duration
        );
    }
    if a.sample * 6 > a.duration - warmup {
        bail!(
            "--sample {:?} leaves fewer than 6 samples after the warm-up of {warmup:?}: run longer or sample more often",
            a.sample
        );
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("soak-{}", crate::now_ns() / 1_000_000_000)));
    let seed = a.seed.unwrap_or(crate::now_ns());
    eprintln!(
        "soak: {:?} (warm-up {warmup:?}), a sample every {:?}, seed {seed}, into {}",
        a.duration,
        a.sample,
        out.display()
    );
    let dep = Arc::new(start(&a, &out)?);
    eprintln!(
        "soak: nodes up: {}; rtsp {}; web http://{}",
        dep.nodes
            .iter()
            .map(|n| format!("{} {}", n.name, n.addr))
            .collect::<Vec<_>>()
            .join(", "),
        dep.rtsp,
        dep.web
    );
    let started = Instant::now();
    let end = started + a.duration;
    let counters = Arc::new(load::Counters::default());
    let mut tasks = Vec::new();
    for i in 0..a.subscribers {
        tasks.push(tokio::spawn(load::subscriber(
            dep.clone(),
            counters.clone(),
            i,
            seed ^ ((i as u64 + 1) * 0x9e37_79b9),
            end,
        )));
    }
    for i in 0..a.web_clients {
        tasks.push(tokio::spawn(load::web_client(
            dep.clone(),
            counters.clone(),
            seed ^ ((i as u64 + 101) * 0x85eb_ca6b),
            end,
        )));
    }
    for i in 0..a.rtsp_clients {
        tasks.push(tokio::spawn(load::rtsp_client(
            dep.clone(),
            counters.clone(),
            seed ^ ((i as u64 + 201) * 0xc2b2_ae35),
            end,
        )));
    }
    let samples = sample::run(&dep, &counters, started, end, a.sample).await;
    for t in tasks {
        let _ = t.await;
    }
    let finals = sample::finals(&dep, &counters).await;
    let report = verdict::judge(&samples, &finals, &counters, warmup, &dep);
    verdict::write(&out, &samples, &report, &a_summary(&a, warmup, seed))?;
    plot::write_all(&out, &samples, warmup)?;
    print!("{}", report.table);
    procs::kill_all();
    if report.failed.is_empty() {
        eprintln!("soak: every check passed ({})", out.display());
        Ok(())
    } else {
        bail!(
            "soak: {} check(s) failed: {}",
            report.failed.len(),
            report.failed.join("; ")
        )
    }
}

fn a_summary(a: &Args, warmup: Duration, seed: u64) -> String {
    format!(
        "{:?} run, warm-up {warmup:?}, sample every {:?}; {} subscribers, {} web clients, {} RTSP players at once; \
         test patterns {} at {} fps; seed {seed}",
        a.duration, a.sample, a.subscribers, a.web_clients, a.rtsp_clients, a.size, a.fps
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("1d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
