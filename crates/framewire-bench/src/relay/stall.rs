//! A stalled subscriber: relay memory while a completeness subscriber
//! with a byte budget never reads.

use super::*;

/// Relay memory behind a stalled subscriber.
#[derive(Debug)]
pub(super) struct Stall {
    pub(super) system: &'static str,
    /// Peak RSS before the stall (VmHWM).
    pub(super) base: u64,
    /// RSS just before the stall (VmRSS).
    pub(super) base_rss: u64,
    pub(super) budget: Option<u64>,
    /// (seconds since the stall began, RSS).
    pub(super) series: Vec<(f64, u64)>,
    /// Median fps of the other subscribers before and during the stall.
    pub(super) fps_before: f64,
    pub(super) fps_during: f64,
    pub(super) note: String,
}

impl Stall {
    pub(super) fn max_rss(&self) -> u64 {
        self.series.iter().map(|s| s.1).max().unwrap_or(0)
    }
}

/// Wall-clock plan of a stall run: warm-up, base phase, stall phase.
pub(super) fn stall_times(plan: &Plan) -> (u64, u64, u64, u64) {
    let t = now_ns();
    let base_secs = if plan.a.quick { 1.0 } else { 5.0 };
    let start = t + secs_ns(plan.warmup);
    let stall_at = start + secs_ns(base_secs);
    (t, start, stall_at, stall_at + secs_ns(plan.stall))
}

pub(super) fn rss_series(
    pid: u32,
    from: u64,
    end: u64,
    limit: Option<u64>,
) -> anyhow::Result<(Vec<(f64, u64)>, String)> {
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

pub(super) fn stall_run(plan: &Plan, cx: &Ctx, wl: &Workload) -> anyhow::Result<Stall> {
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
pub(super) fn stalled_queue(cx: &Ctx, port: u16) -> Option<(u64, u64)> {
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
pub(super) fn phase_rates(reports: &[Report], start: u64, stall_at: u64, end: u64) -> (f64, f64) {
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
