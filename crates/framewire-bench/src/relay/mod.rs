//! `framewire bench relay`: a framewire relay over TCP on loopback, measured
//! beside a GStreamer relay and the loopback TCP ceiling, in one run.
//!
//! Every process is a real process: this binary as a source node (`bench
//! source`, replaying prepared frames), as the relay (`framewire node
//! --upstream`, exactly as a user runs it) and as N measuring subscribers
//! (`bench sub`). See docs/benchmarks.md ("Relay over TCP") for the method.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

mod latency;
mod peers;
mod report;
mod search;
mod stall;
mod throughput;
mod tls;

use latency::*;
use peers::*;
use report::*;
use search::{RateSearch, SUSTAINED_LOSS_PCT};
use stall::*;
use throughput::*;

use crate::frames::{self, Kind, Workload};
use crate::procs::{self, Capture, KillGuard, Proc};
use crate::report::{Report, pct};
use crate::{gst, now_ns};

/// Measure a framewire relay over TCP on 127.0.0.1: a source node, a relay
/// node and N subscribers, all real processes of this binary, for MJPEG and
/// raw 1080p frames. Prints per case frames/s per subscriber (min/median),
/// Gbit/s delivered in total, the relay's CPU % and RSS; then per-hop
/// latency at 30 fps, and relay memory behind a stalled subscriber. When
/// `gst-launch-1.0` is installed the same workloads go through a GStreamer
/// relay (tcpserversrc ! gdpdepay ! tee ! queue ! gdppay ! tcpserversink) in
/// the same run, with ratios; when `iperf3` is installed, the loopback TCP
/// ceiling is measured and delivered bytes are shown as a share of it.
/// Progress goes to stderr, the result table to stdout.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire bench relay                      full run (about 9 minutes with GStreamer)\n  \
framewire bench relay --quick              smoke run (1-2 minutes)\n  \
framewire bench relay --subscribers 4 --formats mjpeg --reps 3 --no-gst\n\n\
Methods (details in docs/benchmarks.md):\n  \
src fps   framewire's source rate: the highest at which subscribers lost <= 2 %, found by short probes\n            \
(a relay never slows its input, so an unpaced source measures overload; shown as `unpaced`)\n  \
fps/sub   frames a subscriber received inside the window (after --warmup) / window length\n  \
Gbit/s    payload bytes received by all subscribers inside the window / window length\n  \
CPU %     relay's utime+stime (/proc/PID/stat) over the window, 100 = one core\n  \
latency   30 fps source; per frame: arrival at a subscriber behind the relay minus arrival at a\n            \
subscriber on the source node directly (same frame, same clock) = latency the relay hop adds;\n            \
also split by arrival order (per frame, the 1st, 2nd... of the relay's subscribers to have it)\n  \
stall     a completeness subscriber with a byte budget subscribes and never reads; relay RSS must\n            \
stay under base (its peak before the stall) + that budget\n\n\
Install the peers with scripts/setup-bench.sh.")]
pub struct Args {
    /// Subscriber counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    subscribers: Vec<usize>,
    /// Frame kinds, comma-separated: mjpeg, raw (I420 1080p, 3 MB), bgra (8 MB).
    #[arg(long, value_delimiter = ',', default_value = "mjpeg,raw", value_parser = Kind::parse)]
    formats: Vec<Kind>,
    /// Picture size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1920x1080")]
    size: String,
    /// Seconds per throughput run, warm-up included [default: 10; --quick: 2.5].
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds at the start of a run that are not counted [default: 3; --quick: 1].
    #[arg(long)]
    warmup: Option<f64>,
    /// Repeats of each throughput run; tables show medians over them.
    #[arg(long, default_value_t = 1)]
    reps: usize,
    /// Distinct JPEG frames to prepare [default: 300; --quick: 20].
    #[arg(long)]
    jpeg_frames: Option<usize>,
    /// JPEG quality.
    #[arg(long, default_value_t = 80)]
    quality: u8,
    /// Noise added to the test pattern before JPEG encoding (+- levels), for
    /// camera-like frame sizes.
    #[arg(long, default_value_t = 10)]
    noise: u8,
    /// Rate of the source in throughput runs; 0: as fast as the relay reads
    /// (the relay then drops what its subscribers cannot take).
    #[arg(long, default_value_t = 0.0)]
    source_fps: f64,
    /// Run framewire once per case with the source unpaced, without
    /// searching for the sustained rate.
    #[arg(long)]
    no_search: bool,
    /// Completeness frame budget of each subscriber (and of the relay's
    /// edge); 64 is a node's default.
    #[arg(long, default_value_t = 64)]
    max_frames: u32,
    /// Seconds of the 30 fps latency run; 0 skips it [default: 15; --quick: 2].
    #[arg(long)]
    latency_duration: Option<f64>,
    /// Subscribers on the relay in the latency run.
    #[arg(long, default_value_t = 4)]
    latency_subscribers: usize,
    /// Frame rate of the latency run.
    #[arg(long, default_value_t = 30.0)]
    latency_fps: f64,
    /// Seconds the stalled subscriber stays stalled; 0 skips it [default: 60; --quick: 2].
    #[arg(long)]
    stall_duration: Option<f64>,
    /// Byte budget of the stalled subscriber, MiB.
    #[arg(long, default_value_t = 32)]
    stall_budget_mib: u64,
    /// Subscribers that keep reading during the stall run.
    #[arg(long, default_value_t = 4)]
    stall_subscribers: usize,
    /// Skip GStreamer even if installed.
    #[arg(long)]
    no_gst: bool,
    /// Skip iperf3 even if installed.
    #[arg(long)]
    no_iperf: bool,
    /// Seconds per iperf3 run (one at the start, one at the end) [default: 5; --quick: 1].
    #[arg(long)]
    iperf_duration: Option<f64>,
    /// A GStreamer relay whose RSS passes this many MiB is stopped early.
    #[arg(long, default_value_t = 4096)]
    gst_rss_limit_mib: u64,
    /// Short smoke run: short durations, few frames (flags given explicitly win).
    #[arg(long)]
    quick: bool,
    /// Keep the temp dir (frames, child logs) and print its path.
    #[arg(long)]
    keep_temp: bool,
    /// Run every framewire case again with TLS 1.3 on every hop (a
    /// deployment CA made in the temp dir; certificates instead of a key)
    /// and show TLS against plain TCP.
    #[arg(long)]
    tls: bool,
}

/// The run's settings, quick defaults applied.
#[derive(Debug, Clone)]
struct Plan {
    a: Args,
    size: (u32, u32),
    duration: f64,
    warmup: f64,
    jpeg_frames: usize,
    latency: f64,
    stall: f64,
    iperf: f64,
}

impl Plan {
    fn new(a: Args) -> anyhow::Result<Plan> {
        let q = a.quick;
        let size = framewire_net::sources::parse_size(&a.size)?;
        let pick = |v: Option<f64>, full: f64, quick: f64| v.unwrap_or(if q { quick } else { full });
        let p = Plan {
            size,
            duration: pick(a.duration, 10.0, 2.5),
            warmup: pick(a.warmup, 3.0, 1.0),
            jpeg_frames: a.jpeg_frames.unwrap_or(if q { 20 } else { 300 }).max(1),
            latency: pick(a.latency_duration, 15.0, 2.0),
            stall: pick(a.stall_duration, 60.0, 2.0),
            iperf: pick(a.iperf_duration, 5.0, 1.0),
            a,
        };
        if p.duration <= p.warmup + 0.5 {
            bail!(
                "--duration ({}) must exceed --warmup ({}) by at least 0.5 s",
                p.duration,
                p.warmup
            );
        }
        if p.a.subscribers.iter().any(|&n| n == 0 || n > 256) || p.a.reps == 0 {
            bail!("--subscribers must be 1 to 256 each, --reps at least 1");
        }
        Ok(p)
    }
}

/// Paths and programs of a run.
#[derive(Debug)]
struct Ctx {
    exe: PathBuf,
    dir: PathBuf,
    gst: Option<String>,
    iperf: bool,
    /// Global flags every framewire process gets (`--tls-ca ...`).
    global: Vec<String>,
}

impl Ctx {
    fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    fn fw(&self) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(["--log", "warn"]).args(&self.global);
        c
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let _guard = KillGuard;
    let plan = Plan::new(args)?;
    let job = tokio::task::spawn_blocking(move || run_blocking(&plan));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let result = tokio::select! {
        r = job => r.context("the benchmark thread failed")?,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        () = sigterm => Err(anyhow::anyhow!("terminated")),
    };
    procs::stop_all();
    result
}

fn run_blocking(plan: &Plan) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("framewire-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs")).with_context(|| format!("cannot create {}", dir.display()))?;
    let cx = Ctx {
        exe: std::env::current_exe().context("cannot find this program's path")?,
        gst: if plan.a.no_gst { None } else { gst::version() },
        iperf: !plan.a.no_iperf && Command::new("iperf3").arg("--version").output().is_ok(),
        dir,
        global: Vec::new(),
    };
    let result = bench(plan, &cx);
    procs::kill_all();
    if plan.a.keep_temp {
        eprintln!("bench: temp files kept in {}", cx.dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&cx.dir);
    }
    result
}

fn bench(plan: &Plan, cx: &Ctx) -> anyhow::Result<()> {
    let started = now_ns();
    let load0 = procs::loadavg();
    eprintln!(
        "bench: {} cores, load {load0}; GStreamer: {}; iperf3: {}; temp dir {}",
        cores(),
        cx.gst.as_deref().unwrap_or("not used"),
        if cx.iperf { "yes" } else { "not used" },
        cx.dir.display()
    );
    // Frames.
    let mut workloads: Vec<Workload> = Vec::new();
    for &k in &plan.a.formats {
        let t = Instant::now();
        let (w, h) = plan.size;
        let wl = match k {
            Kind::Mjpeg => frames::mjpeg(&cx.dir, w, h, plan.jpeg_frames, plan.a.quality, plan.a.noise)?,
            _ => frames::raw(&cx.dir, k, w, h, 4)?,
        };
        eprintln!(
            "bench: prepared {} {} frames of {}x{}, mean {:.0} B, in {:.1} s",
            wl.count,
            k.label(),
            w,
            h,
            wl.mean_bytes,
            t.elapsed().as_secs_f64()
        );
        workloads.push(wl);
    }
    let mut iperf: Vec<f64> = Vec::new();
    if cx.iperf {
        match iperf3(cx, plan.iperf) {
            Ok(g) => {
                eprintln!("bench: iperf3 loopback: {g:.2} Gbit/s");
                iperf.push(g);
            }
            Err(e) => eprintln!("bench: iperf3 failed: {e:#}"),
        }
    }
    // With --tls, the same framewire processes with TLS flags, and the
    // bare link's own ceiling (TCP, then TLS, one stream).
    let (tls_cx, issued) = if plan.a.tls {
        let (c, me) = tls_ctx(cx)?;
        (Some(c), Some(me))
    } else {
        (None, None)
    };
    let mut bare = None;
    if let Some(me) = &issued {
        let bytes = if plan.a.quick { 256 << 20 } else { 4 << 30 };
        match tls::bare_link(&cx.dir.join("ca"), &me.cert, &me.key, bytes) {
            Ok((tcp, tls)) => {
                eprintln!("bench: one stream on loopback: TCP {tcp:.2} Gbit/s, TLS {tls:.2} Gbit/s");
                bare = Some((tcp, tls));
            }
            Err(e) => eprintln!("bench: the bare TLS link failed: {e:#}"),
        }
    }
    // Throughput.
    let mut rows: Vec<(Kind, usize, Option<Agg>, Option<Agg>)> = Vec::new();
    let mut tls_rows: Vec<TlsRow> = Vec::new();
    for wl in &workloads {
        for &n in &plan.a.subscribers {
            let (mut fw, mut gs, mut tl, mut pairs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for rep in 1..=plan.a.reps {
                let plain = match fw_case(plan, cx, wl, n) {
                    Ok(r) => {
                        progress("framewire", wl, n, rep, &r);
                        fw.push(r.clone());
                        Some(r)
                    }
                    Err(e) => {
                        eprintln!("bench: framewire {} x{n} rep {rep} failed: {e:#}", wl.kind.label());
                        None
                    }
                };
                procs::kill_all();
                if cx.gst.is_some() {
                    match gst_run(plan, cx, wl, n) {
                        Ok(r) => {
                            progress("gstreamer", wl, n, rep, &r);
                            gs.push(r);
                        }
                        Err(e) => eprintln!("bench: gstreamer {} x{n} rep {rep} failed: {e:#}", wl.kind.label()),
                    }
                    procs::kill_all();
                }
                // TLS right after plain, so each pair meets the machine in
                // the same state (its speed drifts between minutes here).
                if let Some(tcx) = &tls_cx {
                    match fw_case(plan, tcx, wl, n) {
                        Ok(r) => {
                            progress("fw+TLS", wl, n, rep, &r);
                            if let Some(p) = plain.as_ref().filter(|p| p.gbps > 0.0) {
                                pairs.push(r.gbps / p.gbps);
                            }
                            tl.push(r);
                        }
                        Err(e) => eprintln!("bench: framewire+TLS {} x{n} rep {rep} failed: {e:#}", wl.kind.label()),
                    }
                    procs::kill_all();
                }
            }
            if tls_cx.is_some() {
                tls_rows.push(TlsRow {
                    kind: wl.kind,
                    n,
                    plain: aggregate(&fw),
                    tls: aggregate(&tl),
                    pairs,
                });
            }
            rows.push((wl.kind, n, aggregate(&fw), aggregate(&gs)));
        }
    }
    // Latency.
    let latency = match workloads.iter().find(|w| w.kind == Kind::Mjpeg) {
        Some(wl) if plan.latency > 0.0 => {
            let r = latency_run(plan, cx, wl);
            procs::kill_all();
            match r {
                Ok(l) => Some(l),
                Err(e) => {
                    eprintln!("bench: latency run failed: {e:#}");
                    None
                }
            }
        }
        _ => None,
    };
    // Stalled subscriber.
    let mut stalls = Vec::new();
    if let Some(wl) = workloads.iter().find(|w| w.kind == Kind::Mjpeg)
        && plan.stall > 0.0
    {
        match stall_run(plan, cx, wl) {
            Ok(s) => stalls.push(s),
            Err(e) => eprintln!("bench: framewire stall run failed: {e:#}"),
        }
        procs::kill_all();
        if cx.gst.is_some() {
            match gst_stall_run(plan, cx, wl) {
                Ok(s) => stalls.push(s),
                Err(e) => eprintln!("bench: gstreamer stall run failed: {e:#}"),
            }
            procs::kill_all();
        }
    }
    if cx.iperf {
        match iperf3(cx, plan.iperf) {
            Ok(g) => {
                eprintln!("bench: iperf3 loopback: {g:.2} Gbit/s");
                iperf.push(g);
            }
            Err(e) => eprintln!("bench: iperf3 failed: {e:#}"),
        }
    }
    let out = table(
        plan,
        cx,
        &Summary {
            started,
            load0,
            load1: procs::loadavg(),
            workloads: &workloads,
            iperf: &iperf,
            rows: &rows,
            tls: &tls_rows,
            bare_tls: bare,
            latency: latency.as_ref(),
            stalls: &stalls,
        },
    );
    print!("{out}");
    Ok(())
}

/// A deployment CA in the run's temp dir and one certificate for every
/// process (127.0.0.1): the context that runs framewire over TLS.
fn tls_ctx(cx: &Ctx) -> anyhow::Result<(Ctx, framewire_tls::ca::Issued)> {
    let ca_dir = cx.dir.join("ca");
    framewire_tls::ca::init(&ca_dir, "bench CA", 2, true).context("the benchmark's CA")?;
    let me = framewire_tls::ca::issue(&ca_dir, "bench:node", &["127.0.0.1".into()], 2, true)
        .context("the benchmark's certificate")?;
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let tcx = Ctx {
        exe: cx.exe.clone(),
        dir: cx.dir.clone(),
        gst: None,
        iperf: false,
        global: vec![
            "--tls-ca".into(),
            path(&ca_dir.join(framewire_tls::ca::CA_CERT)),
            "--tls-cert".into(),
            path(&me.cert),
            "--tls-key".into(),
            path(&me.key),
        ],
    };
    Ok((tcx, me))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn progress(system: &str, wl: &Workload, n: usize, rep: usize, r: &Run) {
    eprintln!(
        "bench: {system:<9} {:<8} subs {n:>2} rep {rep}: fps/sub min {:.1} median {:.1}, {:.2} Gbit/s, relay CPU {:.0} %, \
         RSS {:.0} MB (HWM {:.0}){}{}, load {}",
        wl.kind.label(),
        r.fps_min(),
        r.fps_med(),
        r.gbps,
        r.cpu_pct,
        r.rss as f64 / 1048576.0,
        r.hwm as f64 / 1048576.0,
        r.lost_pct.map(|l| format!(", lost {l:.1} %")).unwrap_or_default(),
        if r.note.is_empty() {
            String::new()
        } else {
            format!(", {}", r.note)
        },
        procs::loadavg()
    );
}

/// Sleeps until wall-clock `ns` (returns early when the run is stopping).
fn sleep_until(ns: u64) -> anyhow::Result<()> {
    loop {
        if procs::stopping() {
            bail!("stopping");
        }
        let left = ns.saturating_sub(now_ns());
        if left == 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_nanos(left.min(50_000_000)));
    }
}
