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

use super::frames::{self, Kind, Workload};
use super::procs::{self, Capture, KillGuard, Proc};
use super::sub::{Report, pct};
use super::{gst, now_ns};

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
        let size = crate::config::parse_size(&a.size)?;
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
}

impl Ctx {
    fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    fn fw(&self) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(["--log", "warn"]);
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

/// Results of one throughput run.
#[derive(Debug, Clone, Default)]
struct Run {
    /// Per subscriber frames/s.
    fps: Vec<f64>,
    /// Payload bits per second, all subscribers.
    gbps: f64,
    cpu_pct: f64,
    src_cpu_pct: f64,
    /// Source rate (0: unpaced).
    source_fps: f64,
    /// Median fps per subscriber with the source unpaced (framewire's probe).
    unpaced_fps: Option<f64>,
    rss: u64,
    hwm: u64,
    /// Frames lost upstream of the subscribers (sequence gaps), % of sent.
    lost_pct: Option<f64>,
    note: String,
}

impl Run {
    /// Lowest per-subscriber rate; NaN when none is known.
    fn fps_min(&self) -> f64 {
        self.fps
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .reduce(f64::min)
            .unwrap_or(f64::NAN)
    }

    fn fps_med(&self) -> f64 {
        median(&self.fps)
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Medians over repeats of one case.
#[derive(Debug, Clone, Default)]
struct Agg {
    fps_min: f64,
    fps_med: f64,
    gbps: f64,
    cpu_pct: f64,
    src_cpu_pct: f64,
    source_fps: f64,
    unpaced_fps: Option<f64>,
    rss_mb: f64,
    hwm_mb: f64,
    lost_pct: Option<f64>,
    notes: String,
}

fn aggregate(runs: &[Run]) -> Option<Agg> {
    if runs.is_empty() {
        return None;
    }
    let m = |f: &dyn Fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let lost: Vec<f64> = runs.iter().filter_map(|r| r.lost_pct).collect();
    let notes: Vec<&str> = runs.iter().map(|r| r.note.as_str()).filter(|s| !s.is_empty()).collect();
    Some(Agg {
        fps_min: m(&Run::fps_min),
        fps_med: m(&Run::fps_med),
        gbps: m(&|r| r.gbps),
        cpu_pct: m(&|r| r.cpu_pct),
        src_cpu_pct: m(&|r| r.src_cpu_pct),
        source_fps: m(&|r| r.source_fps),
        unpaced_fps: {
            let u: Vec<f64> = runs.iter().filter_map(|r| r.unpaced_fps).collect();
            if u.is_empty() { None } else { Some(median(&u)) }
        },
        rss_mb: m(&|r| r.rss as f64 / 1048576.0),
        hwm_mb: m(&|r| r.hwm as f64 / 1048576.0),
        lost_pct: if lost.is_empty() { None } else { Some(median(&lost)) },
        notes: notes.join("; "),
    })
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
    // Throughput.
    let mut rows: Vec<(Kind, usize, Option<Agg>, Option<Agg>)> = Vec::new();
    for wl in &workloads {
        for &n in &plan.a.subscribers {
            let (mut fw, mut gs) = (Vec::new(), Vec::new());
            for rep in 1..=plan.a.reps {
                match fw_case(plan, cx, wl, n) {
                    Ok(r) => {
                        progress("framewire", wl, n, rep, &r);
                        fw.push(r);
                    }
                    Err(e) => eprintln!("bench: framewire {} x{n} rep {rep} failed: {e:#}", wl.kind.label()),
                }
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
            latency: latency.as_ref(),
            stalls: &stalls,
        },
    );
    print!("{out}");
    Ok(())
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

/// What the relay process did inside a window.
#[derive(Debug, Default)]
struct Sample {
    cpu_pct: f64,
    /// CPU % of the source process over the same window, when given.
    src_cpu_pct: f64,
    rss: u64,
    hwm: u64,
    aborted: Option<String>,
}

/// Samples `pid` over [start, end]: CPU time at both ends, RSS each 250 ms;
/// stops early if RSS passes `limit`.
fn sample(pid: u32, src: Option<u32>, start: u64, end: u64, limit: Option<u64>) -> anyhow::Result<Sample> {
    sleep_until(start)?;
    let c0 = procs::cpu_seconds(pid).context("relay process gone")?;
    let s0 = src.and_then(procs::cpu_seconds);
    let t0 = Instant::now();
    let mut s = Sample::default();
    while now_ns() < end {
        sleep_until((now_ns() + 250_000_000).min(end))?;
        if let Some((rss, _)) = procs::rss(pid)
            && let Some(l) = limit
            && rss > l
        {
            s.aborted = Some(format!("stopped early: relay RSS {} MB", rss >> 20));
            break;
        }
    }
    let c1 = procs::cpu_seconds(pid).context("relay process gone")?;
    let secs = t0.elapsed().as_secs_f64();
    s.cpu_pct = (c1 - c0) / secs * 100.0;
    s.src_cpu_pct = src
        .and_then(procs::cpu_seconds)
        .zip(s0)
        .map_or(0.0, |(b, a)| (b - a) / secs * 100.0);
    (s.rss, s.hwm) = procs::rss(pid).unwrap_or_default();
    Ok(s)
}

/// Starts the framewire source node; returns it and its port.
fn fw_source(cx: &Ctx, wl: &Workload, fps: f64, max_secs: f64, tag: &str) -> anyhow::Result<(Proc, u16)> {
    let port = procs::free_port()?;
    let mut c = cx.fw();
    c.args([
        "bench",
        "source",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--stream",
        "s",
    ])
    .arg("--file")
    .arg(&wl.file)
    .args(["--raw-frame-size", &wl.raw_frame_size.to_string()])
    .args([
        "--pixel-format",
        if wl.kind == Kind::RawBgra { "bgra" } else { "yuv420p" },
    ])
    .args(["--width", &wl.size.0.to_string(), "--height", &wl.size.1.to_string()])
    .args(["--fps", &fps.to_string(), "--max-seconds", &max_secs.to_string()]);
    let p = procs::spawn(
        "framewire source",
        &mut c,
        Capture::Nothing,
        Some(&cx.log(&format!("{tag}-source"))),
    )?;
    procs::wait_listening(port, Duration::from_secs(10), &p)?;
    Ok((p, port))
}

/// Starts the framewire relay node pulling `s` from the source.
fn fw_relay(cx: &Ctx, src_port: u16, max_frames: u32, tag: &str) -> anyhow::Result<(Proc, u16)> {
    let port = procs::free_port()?;
    let mut c = cx.fw();
    c.args([
        "node",
        "--name",
        "bench:relay",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .args([
        "--upstream",
        // TCP like every hop of the GStreamer relay it is compared with
        // (the bench source offers no shared memory anyway).
        &format!("127.0.0.1:{src_port}/s,mode=completeness,max-frames={max_frames},transport=tcp"),
    ]);
    let p = procs::spawn(
        "framewire relay",
        &mut c,
        Capture::Nothing,
        Some(&cx.log(&format!("{tag}-relay"))),
    )?;
    procs::wait_listening(port, Duration::from_secs(10), &p)?;
    Ok((p, port))
}

/// Options of a measuring subscriber.
#[derive(Debug, Clone, Copy)]
struct SubOpts {
    start: u64,
    end: u64,
    max_frames: u32,
    max_bytes: u64,
    stall: bool,
    records: bool,
}

fn fw_sub(cx: &Ctx, port: u16, o: SubOpts, tag: &str) -> anyhow::Result<Proc> {
    let mut c = cx.fw();
    c.args(["bench", "sub", &format!("127.0.0.1:{port}"), "s"])
        .args(["--start-ns", &o.start.to_string(), "--end-ns", &o.end.to_string()])
        .args(["--mode", "completeness", "--max-frames", &o.max_frames.to_string()])
        .args(["--max-bytes", &o.max_bytes.to_string()]);
    if o.stall {
        c.arg("--stall");
    }
    if o.records {
        c.arg("--records");
    }
    procs::spawn("framewire subscriber", &mut c, Capture::Text, Some(&cx.log(tag)))
}

fn collect(subs: Vec<Proc>, end: u64) -> Vec<Report> {
    let grace = Duration::from_nanos(end.saturating_sub(now_ns())) + Duration::from_secs(5);
    subs.into_iter()
        .map(|p| {
            let label = p.label.clone();
            let out = p.output(grace);
            match serde_json::from_str::<Report>(out.trim()) {
                Ok(r) => {
                    if let Some(e) = &r.error {
                        eprintln!("bench: {label}: {e}");
                    }
                    r
                }
                Err(_) => Report {
                    error: Some(format!("{label}: no report")),
                    ..Report::default()
                },
            }
        })
        .collect()
}

/// One framewire run with the source at `fps` (0: unpaced).
fn fw_run(plan: &Plan, cx: &Ctx, wl: &Workload, n: usize, fps: f64, duration: f64, warmup: f64) -> anyhow::Result<Run> {
    let tag = format!("fw-{}-{n}-{fps:.0}", wl.kind.label());
    let (src, sport) = fw_source(cx, wl, fps, duration + 30.0, &tag)?;
    let (relay, rport) = fw_relay(cx, sport, plan.a.max_frames, &tag)?;
    let t = now_ns();
    let start = t + secs_ns(warmup);
    let end = t + secs_ns(duration);
    let opts = SubOpts {
        start,
        end,
        max_frames: plan.a.max_frames,
        max_bytes: 0,
        stall: false,
        records: false,
    };
    let mut subs = Vec::new();
    for i in 0..n {
        subs.push(fw_sub(cx, rport, opts, &format!("{tag}-sub{i}"))?);
    }
    let s = sample(relay.pid, Some(src.pid), start, end, None)?;
    let reports = collect(subs, end);
    procs::kill(relay.pid);
    procs::kill(src.pid);
    let window = (end - start) as f64 / 1e9;
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    let (frames, lost): (u64, u64) = reports.iter().fold((0, 0), |a, r| (a.0 + r.frames, a.1 + r.lost));
    Ok(Run {
        fps: reports.iter().map(|r| r.frames as f64 / window).collect(),
        gbps: reports.iter().map(|r| r.bytes).sum::<u64>() as f64 * 8.0 / window / 1e9,
        cpu_pct: s.cpu_pct,
        src_cpu_pct: s.src_cpu_pct,
        source_fps: fps,
        unpaced_fps: None,
        rss: s.rss,
        hwm: s.hwm,
        lost_pct: Some(lost as f64 * 100.0 / (frames + lost).max(1) as f64),
        note: if failed > 0 {
            format!("{failed} subscriber(s) failed")
        } else {
            String::new()
        },
    })
}

/// Loss a paced run may show and still count as sustained, %.
const SUSTAINED_LOSS_PCT: f64 = 2.0;

/// framewire's sustained rate for one case.
///
/// A framewire relay never slows its input: with an unpaced source it
/// reads every frame the source makes and drops, per output, what a
/// subscriber cannot take, so an unpaced source measures overload, with
/// CPU spent on frames that are dropped. So: one short probe with the
/// source unpaced (delivered rate D), then up to four short probes with the
/// source paced, from 2 D, raising the rate while the subscribers lose at
/// most 2 % of the frames and bisecting once they lose more; then the
/// measured run at the highest rate that held. Its delivered rate is
/// reported (the unpaced probe's rate is shown beside it). `--source-fps`
/// skips the search.
fn fw_case(plan: &Plan, cx: &Ctx, wl: &Workload, n: usize) -> anyhow::Result<Run> {
    if plan.a.source_fps > 0.0 || plan.a.no_search {
        return fw_run(plan, cx, wl, n, plan.a.source_fps, plan.duration, plan.warmup);
    }
    let (pd, pw) = if plan.a.quick { (1.5, 0.5) } else { (4.0, 1.5) };
    let probe0 = fw_run(plan, cx, wl, n, 0.0, pd, pw)?;
    let unpaced = probe0.fps_med();
    eprintln!(
        "bench:   probe {} x{n} unpaced source: {unpaced:.1} fps/sub, lost {:.1} %, source CPU {:.0} %",
        wl.kind.label(),
        probe0.lost_pct.unwrap_or(0.0),
        probe0.src_cpu_pct
    );
    let (mut good, mut bad): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = (unpaced * 2.0).max(10.0);
    for _ in 0..4 {
        let r = fw_run(plan, cx, wl, n, rate, pd, pw)?;
        let lost = r.lost_pct.unwrap_or(100.0);
        let ok = lost <= SUSTAINED_LOSS_PCT && r.fps_med() >= rate * 0.9;
        eprintln!(
            "bench:   probe {} x{n} source {rate:.0} fps: {:.1} fps/sub (min {:.1}), lost {lost:.1} %: {}",
            wl.kind.label(),
            r.fps_med(),
            r.fps_min(),
            if ok { "held" } else { "not held" }
        );
        if ok {
            good = Some(good.map_or(rate, |g: f64| g.max(rate)));
            rate = bad.map_or(rate * 1.5, |b| (rate + b) / 2.0);
        } else {
            bad = Some(bad.map_or(rate, |b: f64| b.min(rate)));
            rate = good.map_or(r.fps_med() * 0.9, |g| (g + rate) / 2.0);
        }
        if good.zip(bad).is_some_and(|(g, b)| b / g < 1.08) {
            break;
        }
    }
    let rate = good.unwrap_or(rate);
    let mut run = fw_run(plan, cx, wl, n, rate, plan.duration, plan.warmup)?;
    run.unpaced_fps = Some(unpaced);
    Ok(run)
}

fn secs_ns(s: f64) -> u64 {
    (s.max(0.0) * 1e9) as u64
}

fn gst_run(plan: &Plan, cx: &Ctx, wl: &Workload, n: usize) -> anyhow::Result<Run> {
    let tag = format!("gst-{}-{n}", wl.kind.label());
    let input = procs::free_port()?;
    let outs: Vec<u16> = (0..n).map(|_| procs::free_port()).collect::<anyhow::Result<_>>()?;
    let relay = gst::launch(
        "GStreamer relay",
        &gst::relay_pipeline(input, &outs),
        false,
        Capture::Nothing,
        &cx.log(&format!("{tag}-relay")),
    )?;
    procs::wait_listening(input, Duration::from_secs(10), &relay)?;
    for &p in &outs {
        procs::wait_listening(p, Duration::from_secs(10), &relay)?;
    }
    let mut cons = Vec::new();
    for (i, &p) in outs.iter().enumerate() {
        cons.push(gst::launch(
            "GStreamer consumer",
            &gst::consumer_pipeline(p),
            true,
            Capture::TimedLines,
            &cx.log(&format!("{tag}-cons{i}")),
        )?);
    }
    std::thread::sleep(Duration::from_millis(300));
    let t = now_ns();
    let src = gst::launch(
        "GStreamer source",
        &gst::source_pipeline(wl, input),
        false,
        Capture::Nothing,
        &cx.log(&format!("{tag}-source")),
    )?;
    let start = t + secs_ns(plan.warmup);
    let end = t + secs_ns(plan.duration);
    let s = sample(
        relay.pid,
        Some(src.pid),
        start,
        end,
        Some(plan.a.gst_rss_limit_mib << 20),
    )?;
    let end = if s.aborted.is_some() { now_ns() } else { end };
    let fps: Vec<f64> = cons
        .into_iter()
        .map(|c| gst::rate(&c.timed_lines(), start, end).unwrap_or(f64::NAN))
        .collect();
    let total: f64 = fps.iter().filter(|x| x.is_finite()).sum();
    Ok(Run {
        gbps: total * wl.mean_bytes * 8.0 / 1e9,
        fps,
        cpu_pct: s.cpu_pct,
        src_cpu_pct: s.src_cpu_pct,
        source_fps: 0.0,
        unpaced_fps: None,
        rss: s.rss,
        hwm: s.hwm,
        lost_pct: None,
        note: s.aborted.unwrap_or_default(),
    })
}

/// Per-hop latency at a fixed rate.
#[derive(Debug)]
struct Latency {
    frames: usize,
    subs: usize,
    /// (label, p50, p99, max) in µs.
    rows: Vec<(String, [f64; 3])>,
}

fn latency_run(plan: &Plan, cx: &Ctx, wl: &Workload) -> anyhow::Result<Latency> {
    let tag = "fw-latency";
    let n = plan.a.latency_subscribers.max(1);
    let (_src, sport) = fw_source(cx, wl, plan.a.latency_fps, plan.latency + 30.0, tag)?;
    let (relay, rport) = fw_relay(cx, sport, plan.a.max_frames, tag)?;
    let t = now_ns();
    let start = t + secs_ns(2.0);
    let end = start + secs_ns(plan.latency);
    let opts = SubOpts {
        start,
        end,
        max_frames: plan.a.max_frames,
        max_bytes: 0,
        stall: false,
        records: true,
    };
    let direct = fw_sub(cx, sport, opts, &format!("{tag}-direct"))?;
    let mut subs = Vec::new();
    for i in 0..n {
        subs.push(fw_sub(cx, rport, opts, &format!("{tag}-sub{i}"))?);
    }
    eprintln!(
        "bench: latency run: {} at {} fps, {n} subscribers on the relay + 1 on the source, {:.0} s",
        wl.kind.label(),
        plan.a.latency_fps,
        plan.latency
    );
    let s = sample(relay.pid, None, start, end, None)?;
    let d = collect(vec![direct], end).pop().unwrap_or_default();
    let reports = collect(subs, end);
    let arrival: std::collections::HashMap<u64, u64> = d.records.iter().map(|&(seq, _, a)| (seq, a)).collect();
    let (mut hop1, mut e2e, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for &(_, ts, a) in &d.records {
        hop1.push(a.saturating_sub(ts));
    }
    let mut neg = 0u64;
    for r in &reports {
        for &(seq, ts, a) in &r.records {
            e2e.push(a.saturating_sub(ts));
            if let Some(&ad) = arrival.get(&seq) {
                if a >= ad {
                    added.push(a - ad);
                } else {
                    neg += 1;
                    added.push(0);
                }
            }
        }
    }
    // The same added latency by arrival order: the k-th of the relay's
    // subscribers to have each frame (the relay writes a frame to its
    // subscribers one socket after another).
    let mut by_rank: Vec<Vec<u64>> = vec![Vec::new(); n];
    {
        let mut per_frame: std::collections::HashMap<u64, Vec<u64>> = std::collections::HashMap::new();
        for r in &reports {
            for &(seq, _, a) in &r.records {
                if let Some(&ad) = arrival.get(&seq) {
                    per_frame.entry(seq).or_default().push(a.saturating_sub(ad));
                }
            }
        }
        for v in per_frame.values_mut().filter(|v| v.len() == n) {
            v.sort_unstable();
            for (k, x) in v.iter().enumerate() {
                by_rank[k].push(*x);
            }
        }
    }
    let q = |v: &mut Vec<u64>| -> [f64; 3] {
        v.sort_unstable();
        [pct(v, 0.5), pct(v, 0.99), pct(v, 1.0)].map(|ns| ns as f64 / 1e3)
    };
    eprintln!(
        "bench: latency: {} frames direct, {} via relay, relay CPU {:.1} %, {neg} frames reached a relay subscriber \
         before the direct one (counted as 0)",
        d.records.len(),
        e2e.len(),
        s.cpu_pct
    );
    Ok(Latency {
        frames: d.records.len(),
        subs: n,
        rows: [
            (
                "source node -> subscriber (1 hop, capture to arrival)".to_string(),
                q(&mut hop1),
            ),
            (
                "source -> relay -> subscriber (2 hops, capture to arrival)".to_string(),
                q(&mut e2e),
            ),
        ]
        .into_iter()
        .chain(
            by_rank
                .iter_mut()
                .enumerate()
                .filter(|(_, v)| !v.is_empty() && n > 1)
                .map(|(k, v)| {
                    (
                        format!(
                            "  added, {} of the {n} relay subscribers to have the frame",
                            ordinal(k + 1)
                        ),
                        q(v),
                    )
                }),
        )
        .chain(std::iter::once((
            "added by the relay hop (per frame: via relay - direct)".to_string(),
            q(&mut added),
        )))
        .collect(),
    })
}

/// "1st", "2nd", "3rd", "4th"...
fn ordinal(k: usize) -> String {
    let suffix = match (k % 10, k % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{k}{suffix}")
}

/// Relay memory behind a stalled subscriber.
#[derive(Debug)]
struct Stall {
    system: &'static str,
    /// Peak RSS before the stall (VmHWM).
    base: u64,
    /// RSS just before the stall (VmRSS).
    base_rss: u64,
    budget: Option<u64>,
    /// (seconds since the stall began, RSS).
    series: Vec<(f64, u64)>,
    /// Median fps of the other subscribers before and during the stall.
    fps_before: f64,
    fps_during: f64,
    note: String,
}

impl Stall {
    fn max_rss(&self) -> u64 {
        self.series.iter().map(|s| s.1).max().unwrap_or(0)
    }
}

/// Wall-clock plan of a stall run: warm-up, base phase, stall phase.
fn stall_times(plan: &Plan) -> (u64, u64, u64, u64) {
    let t = now_ns();
    let base_secs = if plan.a.quick { 1.0 } else { 5.0 };
    let start = t + secs_ns(plan.warmup);
    let stall_at = start + secs_ns(base_secs);
    (t, start, stall_at, stall_at + secs_ns(plan.stall))
}

fn rss_series(pid: u32, from: u64, end: u64, limit: Option<u64>) -> anyhow::Result<(Vec<(f64, u64)>, String)> {
    let mut series = Vec::new();
    let mut k = 0u64;
    loop {
        let at = from + k * 1_000_000_000;
        if at > end {
            break;
        }
        sleep_until(at)?;
        let Some((rss, _)) = procs::rss(pid) else {
            return Ok((series, "relay exited".into()));
        };
        series.push(((now_ns() - from) as f64 / 1e9, rss));
        if limit.is_some_and(|l| rss > l) {
            return Ok((series, format!("stopped early: relay RSS {} MB", rss >> 20)));
        }
        k += 1;
    }
    Ok((series, String::new()))
}

fn stall_run(plan: &Plan, cx: &Ctx, wl: &Workload) -> anyhow::Result<Stall> {
    let tag = "fw-stall";
    let n = plan.a.stall_subscribers.max(1);
    let budget = plan.a.stall_budget_mib << 20;
    let (_src, sport) = fw_source(cx, wl, 0.0, plan.stall + 60.0, tag)?;
    let (relay, rport) = fw_relay(cx, sport, plan.a.max_frames, tag)?;
    let (_, start, stall_at, end) = stall_times(plan);
    let opts = SubOpts {
        start,
        end,
        max_frames: plan.a.max_frames,
        max_bytes: 0,
        stall: false,
        records: false,
    };
    let mut subs = Vec::new();
    for i in 0..n {
        subs.push(fw_sub(cx, rport, opts, &format!("{tag}-sub{i}"))?);
    }
    eprintln!(
        "bench: stall run: {n} subscribers, then at +{:.0} s one completeness subscriber (budget {} MiB) that never \
         reads, for {:.0} s",
        (stall_at - start) as f64 / 1e9 + plan.warmup,
        plan.a.stall_budget_mib,
        plan.stall
    );
    sleep_until(stall_at.saturating_sub(200_000_000))?;
    let (base_rss, base) = procs::rss(relay.pid).context("relay process gone")?;
    let stalled = SubOpts {
        max_frames: 1_000_000,
        max_bytes: budget,
        stall: true,
        ..opts
    };
    let _stalled = fw_sub(cx, rport, stalled, &format!("{tag}-stalled"))?;
    let (series, mut note) = rss_series(relay.pid, stall_at, end.saturating_sub(500_000_000), None)?;
    if let Some((q, f)) = stalled_queue(cx, rport) {
        let _ = write!(
            note,
            "{}the stalled output holds {f} frames, {:.1} MB by the relay's accounting",
            if note.is_empty() { "" } else { "; " },
            mb(q)
        );
    }
    let reports = collect(subs, end);
    let (before, during) = phase_rates(&reports, start, stall_at, end);
    Ok(Stall {
        system: "framewire",
        base,
        base_rss,
        budget: Some(budget),
        series,
        fps_before: before,
        fps_during: during,
        note,
    })
}

/// Queued bytes and frames of the relay's fullest output (the stalled
/// one), from `framewire stats --json`.
fn stalled_queue(cx: &Ctx, port: u16) -> Option<(u64, u64)> {
    let mut c = cx.fw();
    c.args(["stats", &format!("127.0.0.1:{port}"), "--json"]);
    let p = procs::spawn("framewire stats", &mut c, Capture::Text, None).ok()?;
    let out = p.output(Duration::from_secs(5));
    let j: serde_json::Value = serde_json::from_str(out.trim()).ok()?;
    j["outputs"]
        .as_array()?
        .iter()
        .filter_map(|o| Some((o["queue_bytes"].as_u64()?, o["queue_frames"].as_u64()?)))
        .max()
}

/// Median frames/s of the subscribers before and during the stall (the
/// first second of the stall is left out: the subscriber is connecting).
fn phase_rates(reports: &[Report], start: u64, stall_at: u64, end: u64) -> (f64, f64) {
    let rate = |r: &Report, from: u64, to: u64| -> f64 {
        let bucket = r.bucket_ms.max(1) * 1_000_000;
        let (a, b) = ((from - start) / bucket, (to - start) / bucket);
        let n: u64 = r
            .buckets
            .iter()
            .skip(usize::try_from(a).unwrap_or(usize::MAX))
            .take(usize::try_from(b - a).unwrap_or(0))
            .map(|x| x.0)
            .sum();
        n as f64 / ((b - a) as f64 * bucket as f64 / 1e9).max(1e-9)
    };
    let during_from = (stall_at + 1_000_000_000).min(end);
    let before: Vec<f64> = reports.iter().map(|r| rate(r, start, stall_at)).collect();
    let during: Vec<f64> = reports.iter().map(|r| rate(r, during_from, end)).collect();
    (median(&before), median(&during))
}

fn gst_stall_run(plan: &Plan, cx: &Ctx, wl: &Workload) -> anyhow::Result<Stall> {
    let tag = "gst-stall";
    let n = plan.a.stall_subscribers.max(1);
    let input = procs::free_port()?;
    let outs: Vec<u16> = (0..=n).map(|_| procs::free_port()).collect::<anyhow::Result<_>>()?;
    let relay = gst::launch(
        "GStreamer relay",
        &gst::relay_pipeline(input, &outs),
        false,
        Capture::Nothing,
        &cx.log(&format!("{tag}-relay")),
    )?;
    procs::wait_listening(input, Duration::from_secs(10), &relay)?;
    for &p in &outs {
        procs::wait_listening(p, Duration::from_secs(10), &relay)?;
    }
    let mut cons = Vec::new();
    for (i, &p) in outs.iter().enumerate() {
        cons.push(gst::launch(
            "GStreamer consumer",
            &gst::consumer_pipeline(p),
            true,
            Capture::TimedLines,
            &cx.log(&format!("{tag}-cons{i}")),
        )?);
    }
    std::thread::sleep(Duration::from_millis(300));
    let _src = gst::launch(
        "GStreamer source",
        &gst::source_pipeline(wl, input),
        false,
        Capture::Nothing,
        &cx.log(&format!("{tag}-source")),
    )?;
    let (_, start, stall_at, end) = stall_times(plan);
    eprintln!(
        "bench: GStreamer stall run: {n} consumers + 1 consumer stopped with SIGSTOP at +{:.0} s for {:.0} s",
        (stall_at - start) as f64 / 1e9 + plan.warmup,
        plan.stall
    );
    sleep_until(stall_at.saturating_sub(200_000_000))?;
    let (base_rss, base) = procs::rss(relay.pid).context("GStreamer relay gone")?;
    let stalled = cons.pop().context("no consumer")?;
    let stopped = Command::new("kill")
        .args(["-STOP", &stalled.pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !stopped {
        bail!("could not SIGSTOP the GStreamer consumer {}", stalled.pid);
    }
    let (series, note) = rss_series(relay.pid, stall_at, end, Some(plan.a.gst_rss_limit_mib << 20))?;
    let end = now_ns().min(end);
    procs::kill(stalled.pid);
    let during_from = (stall_at + 1_000_000_000).min(end);
    let (mut before, mut during) = (Vec::new(), Vec::new());
    for c in cons {
        let lines = c.timed_lines();
        before.push(gst::rate(&lines, start, stall_at).unwrap_or(f64::NAN));
        during.push(gst::rate(&lines, during_from, end).unwrap_or(f64::NAN));
    }
    Ok(Stall {
        system: "gstreamer",
        base,
        base_rss,
        budget: None,
        series,
        fps_before: median(&before),
        fps_during: median(&during),
        note,
    })
}

/// iperf3, one TCP stream over 127.0.0.1 for `secs`: receiver Gbit/s.
fn iperf3(cx: &Ctx, secs: f64) -> anyhow::Result<f64> {
    let port = procs::free_port()?;
    let mut s = Command::new("iperf3");
    s.args(["-s", "-1", "-B", "127.0.0.1", "-p", &port.to_string()]);
    let server = procs::spawn(
        "iperf3 server",
        &mut s,
        Capture::Nothing,
        Some(&cx.log("iperf3-server")),
    )?;
    procs::wait_listening(port, Duration::from_secs(5), &server)?;
    let mut c = Command::new("iperf3");
    c.args(["-c", "127.0.0.1", "-p", &port.to_string(), "-J", "-t"])
        .arg(format!("{}", secs.ceil().max(1.0)));
    let client = procs::spawn("iperf3 client", &mut c, Capture::Text, Some(&cx.log("iperf3-client")))?;
    let out = client.output(Duration::from_secs_f64(secs + 15.0));
    procs::kill(server.pid);
    let j: serde_json::Value = serde_json::from_str(&out).context("iperf3 printed no JSON")?;
    let bps = j["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no end.sum_received.bits_per_second in iperf3's JSON")?;
    Ok(bps / 1e9)
}

/// Everything the table shows.
#[derive(Debug)]
struct Summary<'a> {
    started: u64,
    load0: String,
    load1: String,
    workloads: &'a [Workload],
    iperf: &'a [f64],
    rows: &'a [(Kind, usize, Option<Agg>, Option<Agg>)],
    latency: Option<&'a Latency>,
    stalls: &'a [Stall],
}

fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = secs / 86400;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}Z")
}

fn num(x: f64, prec: usize) -> String {
    if x.is_finite() {
        format!("{x:.prec$}")
    } else {
        "-".into()
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

fn mb(b: u64) -> f64 {
    b as f64 / 1048576.0
}

fn table(plan: &Plan, cx: &Ctx, s: &Summary<'_>) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\nframewire bench relay, {} ({} cores, load avg 1 min {} at start, {} at end)",
        utc(s.started),
        cores(),
        s.load0,
        s.load1
    );
    for w in s.workloads {
        let _ = writeln!(
            o,
            "  frames {:<8} {}x{}, {} distinct, mean {:.0} B",
            w.kind.label(),
            w.size.0,
            w.size.1,
            w.count,
            w.mean_bytes
        );
    }
    let ceiling = median(s.iperf);
    if s.iperf.is_empty() {
        let _ = writeln!(
            o,
            "  loopback TCP ceiling: not measured (iperf3 not installed or --no-iperf)"
        );
    } else {
        let runs: Vec<String> = s.iperf.iter().map(|g| format!("{g:.2}")).collect();
        let _ = writeln!(
            o,
            "  loopback TCP ceiling (iperf3 -c 127.0.0.1, 1 stream, {:.0} s): {} Gbit/s (start / end), median {ceiling:.2}",
            plan.iperf.ceil().max(1.0),
            runs.join(" / ")
        );
    }
    let _ = writeln!(
        o,
        "  GStreamer: {}",
        cx.gst.as_deref().unwrap_or("not run (not installed or --no-gst)")
    );
    let _ = writeln!(
        o,
        "\nThroughput: {:.1} s per run, first {:.1} s not counted, medians over {} rep(s); subscribers in completeness \
         mode, {} frames budget",
        plan.duration, plan.warmup, plan.a.reps, plan.a.max_frames
    );
    let _ = writeln!(
        o,
        "framewire: the source runs at the highest rate (src fps) at which the subscribers lost <= {SUSTAINED_LOSS_PCT} % \
         of the frames, found by short probes; `unpaced` is the rate per subscriber with the source unpaced (the relay \
         then reads more than it can deliver and drops). GStreamer: source at full speed, back-pressured by the relay."
    );
    let _ = writeln!(
        o,
        "{:<9} {:>4} {:<10} {:>8} {:>9} {:>9} {:>9} {:>8} {:>7} {:>7} {:>6} {:>7} {:>7} {:>6}",
        "format",
        "subs",
        "system",
        "src fps",
        "fps min",
        "fps med",
        "unpaced",
        "Gbit/s",
        "%iperf",
        "relay%",
        "src%",
        "RSS MB",
        "HWM MB",
        "lost%"
    );
    for (kind, n, fw, gs) in s.rows {
        for (name, a) in [("framewire", fw), ("gstreamer", gs)] {
            let Some(a) = a else { continue };
            let pct_ceiling = if ceiling > 0.0 {
                num(a.gbps / ceiling * 100.0, 0)
            } else {
                "-".into()
            };
            let _ = writeln!(
                o,
                "{:<9} {:>4} {:<10} {:>8} {:>9} {:>9} {:>9} {:>8} {:>7} {:>7.0} {:>6.0} {:>7.0} {:>7.0} {:>6}{}",
                kind.label(),
                n,
                name,
                if a.source_fps > 0.0 {
                    num(a.source_fps, 0)
                } else {
                    "max".into()
                },
                num(a.fps_min, 1),
                num(a.fps_med, 1),
                a.unpaced_fps.map_or("-".into(), |u| num(u, 1)),
                num(a.gbps, 2),
                pct_ceiling,
                a.cpu_pct,
                a.src_cpu_pct,
                a.rss_mb,
                a.hwm_mb,
                a.lost_pct.map_or("-".into(), |l| format!("{l:.1}")),
                if a.notes.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", a.notes)
                }
            );
        }
        if let (Some(f), Some(g)) = (fw, gs) {
            let _ = writeln!(
                o,
                "{:<9} {:>4} {:<10} {:>8} {:>9} {:>9} {:>9} {:>8} {:>7} {:>7}",
                kind.label(),
                n,
                "fw/gst",
                "",
                ratio(f.fps_min, g.fps_min),
                ratio(f.fps_med, g.fps_med),
                ratio(f.unpaced_fps.unwrap_or(f64::NAN), g.fps_med),
                ratio(f.gbps, g.gbps),
                "",
                ratio(f.cpu_pct, g.cpu_pct)
            );
        }
    }
    if let Some(l) = s.latency {
        let _ = writeln!(
            o,
            "\nLatency: mjpeg at {} fps, {} subscribers on the relay + 1 on the source node, {:.0} s ({} frames)",
            plan.a.latency_fps, l.subs, plan.latency, l.frames
        );
        let _ = writeln!(o, "{:<62} {:>8} {:>8} {:>8}", "hop", "p50 ms", "p99 ms", "max ms");
        for (label, v) in &l.rows {
            let _ = writeln!(
                o,
                "{label:<62} {:>8.3} {:>8.3} {:>8.3}",
                v[0] / 1e3,
                v[1] / 1e3,
                v[2] / 1e3
            );
        }
    }
    for st in s.stalls {
        let _ = writeln!(
            o,
            "\nStalled subscriber ({}): mjpeg at full speed, {} reading subscribers + 1 that stops reading, {:.0} s",
            st.system, plan.a.stall_subscribers, plan.stall
        );
        let max = st.max_rss();
        match st.budget {
            Some(b) => {
                let limit = st.base + b;
                let _ = writeln!(
                    o,
                    "  relay RSS base {:.1} MB (VmHWM before the stall; VmRSS {:.1}) + budget {:.0} MB = limit {:.1} MB; \
                     max during stall {:.1} MB: {}",
                    mb(st.base),
                    mb(st.base_rss),
                    mb(b),
                    mb(limit),
                    mb(max),
                    if max <= limit {
                        "under the limit"
                    } else {
                        "OVER the limit"
                    }
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "  relay RSS base {:.1} MB (VmHWM; VmRSS {:.1}); max during stall {:.1} MB (growth {:.1} MB)",
                    mb(st.base),
                    mb(st.base_rss),
                    mb(max),
                    mb(max.saturating_sub(st.base))
                );
            }
        }
        let step = (st.series.len() / 12).max(1);
        let pts: Vec<String> = st
            .series
            .iter()
            .enumerate()
            .filter(|(i, _)| i % step == 0 || *i + 1 == st.series.len())
            .map(|(_, (t, r))| format!("{t:.0}s {:.0}", mb(*r)))
            .collect();
        let _ = writeln!(o, "  RSS MB over the stall: {}", pts.join(", "));
        let _ = writeln!(
            o,
            "  other subscribers, median fps: {} before, {} during ({}){}",
            num(st.fps_before, 1),
            num(st.fps_during, 1),
            ratio(st.fps_during, st.fps_before),
            if st.note.is_empty() {
                String::new()
            } else {
                format!("; {}", st.note)
            }
        );
    }
    targets(&mut o, s, ceiling);
    o
}

fn targets(o: &mut String, s: &Summary<'_>, ceiling: f64) {
    let _ = writeln!(o, "\nTargets");
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    for (kind, want) in [(Kind::Mjpeg, 2.0), (Kind::RawI420, 5.0)] {
        for (k, n, fw, gs) in s.rows {
            if *k != kind || *n < 4 {
                continue;
            }
            if let (Some(f), Some(g)) = (fw, gs) {
                let r = if g.fps_med > 0.0 {
                    f.fps_med / g.fps_med
                } else {
                    f64::INFINITY
                };
                let _ = writeln!(
                    o,
                    "  {} x{n}: fps per subscriber {:.1} vs GStreamer {:.1} = {r:.2}x (target >= {want}x): {}",
                    kind.label(),
                    f.fps_med,
                    g.fps_med,
                    verdict(r >= want)
                );
            }
        }
    }
    if ceiling > 0.0
        && let Some((k, n, Some(best))) = s
            .rows
            .iter()
            .map(|(k, n, f, _)| (k, n, f.as_ref()))
            .max_by(|a, b| a.2.map_or(0.0, |x| x.gbps).total_cmp(&b.2.map_or(0.0, |x| x.gbps)))
    {
        let p = best.gbps / ceiling * 100.0;
        let _ = writeln!(
            o,
            "  delivered bytes: best {:.2} Gbit/s ({} x{n}) = {p:.0} % of iperf3's {ceiling:.2} (target >= 70 %): {}",
            best.gbps,
            k.label(),
            verdict(p >= 70.0)
        );
    }
    if let Some(l) = s.latency
        && let Some((_, v)) = l.rows.last()
    {
        let _ = writeln!(
            o,
            "  latency added by the relay hop: p50 {:.3} ms (target < 0.2), p99 {:.3} ms (target < 1): {}",
            v[0] / 1e3,
            v[1] / 1e3,
            verdict(v[0] < 200.0 && v[1] < 1000.0)
        );
    }
    for st in s.stalls {
        if let Some(b) = st.budget {
            let _ = writeln!(
                o,
                "  stalled subscriber, {} samples: max RSS {:.1} MB <= base {:.1} + budget {:.0} MB: {}",
                st.series.len(),
                mb(st.max_rss()),
                mb(st.base),
                mb(b),
                verdict(st.max_rss() <= st.base + b)
            );
        }
    }
}
