//! framewire's runs: a source node, the relay and N subscribers, and
//! what one run measured (rates, CPU, memory), aggregated over repetitions.

use super::*;

/// Results of one throughput run.
#[derive(Debug, Clone, Default)]
pub(super) struct Run {
    /// Per subscriber frames/s.
    pub(super) fps: Vec<f64>,
    /// Payload bits per second, all subscribers.
    pub(super) gbps: f64,
    pub(super) cpu_pct: f64,
    pub(super) src_cpu_pct: f64,
    /// Source rate (0: unpaced).
    pub(super) source_fps: f64,
    /// Median fps per subscriber with the source unpaced (framewire's probe).
    pub(super) unpaced_fps: Option<f64>,
    pub(super) rss: u64,
    pub(super) hwm: u64,
    /// Frames lost upstream of the subscribers (sequence gaps), % of sent.
    pub(super) lost_pct: Option<f64>,
    pub(super) note: String,
}

impl Run {
    /// Lowest per-subscriber rate; NaN when none is known.
    pub(super) fn fps_min(&self) -> f64 {
        self.fps
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .reduce(f64::min)
            .unwrap_or(f64::NAN)
    }

    pub(super) fn fps_med(&self) -> f64 {
        median(&self.fps)
    }
}

pub(super) fn median(v: &[f64]) -> f64 {
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
pub(super) struct Agg {
    pub(super) fps_min: f64,
    pub(super) fps_med: f64,
    pub(super) gbps: f64,
    pub(super) cpu_pct: f64,
    pub(super) src_cpu_pct: f64,
    pub(super) source_fps: f64,
    pub(super) unpaced_fps: Option<f64>,
    pub(super) rss_mb: f64,
    pub(super) hwm_mb: f64,
    pub(super) lost_pct: Option<f64>,
    pub(super) notes: String,
}

pub(super) fn aggregate(runs: &[Run]) -> Option<Agg> {
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

/// What the relay process did inside a window.
#[derive(Debug, Default)]
pub(super) struct Sample {
    pub(super) cpu_pct: f64,
    /// CPU % of the source process over the same window, when given.
    pub(super) src_cpu_pct: f64,
    pub(super) rss: u64,
    pub(super) hwm: u64,
    pub(super) aborted: Option<String>,
}

/// Samples `pid` over [start, end]: CPU time at both ends, RSS each 250 ms;
/// stops early if RSS passes `limit`.
pub(super) fn sample(pid: u32, src: Option<u32>, start: u64, end: u64, limit: Option<u64>) -> anyhow::Result<Sample> {
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
pub(super) fn fw_source(cx: &Ctx, wl: &Workload, fps: f64, max_secs: f64, tag: &str) -> anyhow::Result<(Proc, u16)> {
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
pub(super) fn fw_relay(cx: &Ctx, src_port: u16, max_frames: u32, tag: &str) -> anyhow::Result<(Proc, u16)> {
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
pub(super) struct SubOpts {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) max_frames: u32,
    pub(super) max_bytes: u64,
    pub(super) stall: bool,
    pub(super) records: bool,
}

pub(super) fn fw_sub(cx: &Ctx, port: u16, o: SubOpts, tag: &str) -> anyhow::Result<Proc> {
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

pub(super) fn collect(subs: Vec<Proc>, end: u64) -> Vec<Report> {
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
pub(super) fn fw_run(
    plan: &Plan,
    cx: &Ctx,
    wl: &Workload,
    n: usize,
    fps: f64,
    duration: f64,
    warmup: f64,
) -> anyhow::Result<Run> {
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

/// framewire's sustained rate for one case.
///
/// A framewire relay never slows its input: with an unpaced source it
/// reads every frame the source makes and drops, per output, what a
/// subscriber cannot take, so an unpaced source measures overload, with
/// CPU spent on frames that are dropped. So: one short probe with the
/// source unpaced (delivered rate U), then up to [`search::MAX_PROBES`]
/// short probes with the source paced, from U ([`RateSearch`]); then the
/// measured run at the highest rate that held. Its delivered rate is
/// reported (the unpaced probe's rate is shown beside it). `--source-fps`
/// skips the search.
pub(super) fn fw_case(plan: &Plan, cx: &Ctx, wl: &Workload, n: usize) -> anyhow::Result<Run> {
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
    let mut search = RateSearch::new(unpaced);
    while let Some(rate) = search.next() {
        let r = fw_run(plan, cx, wl, n, rate, pd, pw)?;
        let lost = r.lost_pct.unwrap_or(100.0);
        let ok = search.record(rate, r.fps_med(), lost);
        eprintln!(
            "bench:   probe {} x{n} source {rate:.0} fps: {:.1} fps/sub (min {:.1}), lost {lost:.1} %: {}",
            wl.kind.label(),
            r.fps_med(),
            r.fps_min(),
            if ok { "held" } else { "not held" }
        );
    }
    let mut run = fw_run(plan, cx, wl, n, search.rate(), plan.duration, plan.warmup)?;
    run.unpaced_fps = Some(unpaced);
    Ok(run)
}

pub(super) fn secs_ns(s: f64) -> u64 {
    (s.max(0.0) * 1e9) as u64
}
