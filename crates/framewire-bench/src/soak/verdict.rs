//! The judgement of a soak: each check with its figures, the table and
//! the samples written out.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Deployment;
use super::load::Counters;
use super::sample::{Finals, Sample};

/// The run's table and the checks that failed.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub table: String,
    pub failed: Vec<String>,
}

/// Memory may grow this much after the warm-up (median of the last third
/// of the samples against the first third).
pub(crate) const RSS_GROWTH: f64 = 0.05;

/// In a run under 10 minutes (CI's), a step of the allocator (an arena
/// taken for a burst, seen as 8 MiB steps in the controller) weighs more
/// than a trend can: growth within this many bytes passes too.
pub(crate) const SHORT_RUN_RSS_SLACK: f64 = 12.0 * 1024.0 * 1024.0;
/// Descriptors and threads may differ by this much between the thirds:
/// clients come and go, so a sample catches a few more or fewer.
const FD_SLACK: u64 = 8;
const THREAD_SLACK: u64 = 2;
/// Latency p99 of the last third against the first: at most this factor,
/// plus 5 ms.
const P99_FACTOR: f64 = 1.25;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn lock<T: Clone>(m: &std::sync::Mutex<Vec<T>>) -> Vec<T> {
    m.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

struct Checks {
    lines: String,
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: String) {
        let _ = writeln!(self.lines, "| {} | {what} |", if ok { "pass" } else { "**FAIL**" });
        if !ok {
            self.failed.push(what);
        }
    }
}

pub(crate) fn judge(samples: &[Sample], f: &Finals, c: &Counters, warmup: Duration, dep: &Deployment) -> Report {
    let judged: Vec<&Sample> = samples.iter().filter(|s| s.t >= warmup.as_secs_f64()).collect();
    let short = samples.last().is_none_or(|s| s.t < 600.0);
    let k = (judged.len() / 3).max(1);
    let (first, last) = (
        &judged[..k.min(judged.len())],
        &judged[judged.len().saturating_sub(k)..],
    );
    let mut t = String::new();
    let mut ch = Checks {
        lines: String::new(),
        failed: Vec::new(),
    };
    let _ = writeln!(
        t,
        "\n| process | RSS after warm-up → end (MiB) | change | fds | threads | CPU % (mean) |\n|---|---|---|---|---|---|"
    );
    for n in &dep.nodes {
        let get = |s: &[&Sample], f: &dyn Fn(&super::sample::ProcSample) -> f64| {
            median(s.iter().filter_map(|x| x.procs.get(n.name)).map(f).collect())
        };
        let (r0, r1) = (get(first, &|p| p.rss as f64), get(last, &|p| p.rss as f64));
        let (f0, f1) = (get(first, &|p| p.fds as f64), get(last, &|p| p.fds as f64));
        let (h0, h1) = (get(first, &|p| p.threads as f64), get(last, &|p| p.threads as f64));
        let cpu: Vec<f64> = judged
            .iter()
            .filter_map(|x| x.procs.get(n.name))
            .map(|p| p.cpu_pct)
            .collect();
        let cpu_mean = cpu.iter().sum::<f64>() / cpu.len().max(1) as f64;
        let growth = if r0 > 0.0 { r1 / r0 - 1.0 } else { 0.0 };
        let mib = |b: f64| b / f64::from(1 << 20);
        let _ = writeln!(
            t,
            "| {} | {:.1} → {:.1} | {:+.1} % | {f0:.0} → {f1:.0} | {h0:.0} → {h1:.0} | {cpu_mean:.1} |",
            n.name,
            mib(r0),
            mib(r1),
            growth * 100.0
        );
        ch.check(
            growth <= RSS_GROWTH || (short && r1 - r0 <= SHORT_RUN_RSS_SLACK),
            format!(
                "{}: RSS {:.1} → {:.1} MiB ({:+.1} %, at most +5 %{})",
                n.name,
                mib(r0),
                mib(r1),
                growth * 100.0,
                if short {
                    ", or +12 MiB in a run under 10 minutes"
                } else {
                    ""
                }
            ),
        );
        ch.check(
            f1 <= f0 + FD_SLACK as f64,
            format!("{}: descriptors {f0:.0} → {f1:.0} (at most +{FD_SLACK})", n.name),
        );
        ch.check(
            h1 <= h0 + THREAD_SLACK as f64,
            format!("{}: threads {h0:.0} → {h1:.0} (at most +{THREAD_SLACK})", n.name),
        );
    }
    let p99 = |s: &[&Sample]| median(s.iter().filter(|x| x.frames > 0).map(|x| x.p99_ms).collect());
    let p50 = |s: &[&Sample]| median(s.iter().filter(|x| x.frames > 0).map(|x| x.p50_ms).collect());
    let (l0, l1) = (p99(first), p99(last));
    let _ = writeln!(
        t,
        "\nSubscribers' capture-to-arrival latency (median of the window figures): p50 {:.1} → {:.1} ms, p99 {l0:.1} → {l1:.1} ms (first and last third after the warm-up).",
        p50(first),
        p50(last)
    );
    ch.check(
        l1 <= l0 * P99_FACTOR + 5.0,
        format!("latency p99 {l0:.1} → {l1:.1} ms (at most ×{P99_FACTOR} + 5 ms)"),
    );
    let visits = lock(&c.visits);
    let frames: u64 = visits.iter().map(|v| v.frames).sum();
    let missed: u64 = visits.iter().map(|v| v.missed).sum();
    let unjudged: u64 = visits.iter().map(|v| v.unjudged).sum();
    let silent: Vec<_> = visits.iter().filter(|v| v.missed > v.counted).collect();
    let _ = writeln!(
        t,
        "\n{} subscriber visits, {frames} frames received, {missed} missed between them, all {} counted as drops by a sender \
         ({unjudged} more missed right after a frame from the relay's group-of-pictures cache, not judged: the camera may have counted them before the visit).",
        visits.len(),
        if silent.is_empty() { "of them" } else { "NOT" }
    );
    ch.check(
        silent.is_empty(),
        format!(
            "unaccounted frames: {} visits missed more than their senders counted{}",
            silent.len(),
            silent
                .first()
                .map(|v| format!(
                    " (e.g. {}/{} {:?}: {} missed, {} counted; {})",
                    v.node, v.stream, v.mode, v.missed, v.counted, v.detail
                ))
                .unwrap_or_default()
        ),
    );
    let unbalanced: Vec<String> = samples.iter().flat_map(|s| s.unbalanced.clone()).collect();
    ch.check(
        unbalanced.is_empty(),
        format!(
            "outputs whose frames in ≠ sent + dropped + queued: {}{}",
            unbalanced.len(),
            unbalanced.first().map(|u| format!(" (e.g. {u})")).unwrap_or_default()
        ),
    );
    let disorder = c.disorder.load(Ordering::Relaxed);
    ch.check(
        disorder == 0,
        format!("frames out of order or twice at a subscriber: {disorder}"),
    );
    let sub_errors = lock(&c.sub_errors);
    ch.check(
        sub_errors.is_empty(),
        format!(
            "subscriber visits that failed: {}{}",
            sub_errors.len(),
            sub_errors.first().map(|e| format!(" (e.g. {e})")).unwrap_or_default()
        ),
    );
    let web_failed = lock(&c.web_failed);
    let web_ok = c.web_ok.load(Ordering::Relaxed);
    ch.check(
        web_failed.is_empty() && web_ok > 0,
        format!(
            "web requests: {web_ok} answered as expected, {} not{}",
            web_failed.len(),
            web_failed.first().map(|e| format!(" (e.g. {e})")).unwrap_or_default()
        ),
    );
    let rtsp_failed = lock(&c.rtsp_failed);
    let rtsp_ok = c.rtsp_ok.load(Ordering::Relaxed);
    ch.check(
        rtsp_failed.is_empty() && rtsp_ok > 0,
        format!(
            "RTSP plays (ffmpeg): {rtsp_ok} whole, {} failed{}",
            rtsp_failed.len(),
            rtsp_failed.first().map(|e| format!(" (e.g. {e})")).unwrap_or_default()
        ),
    );
    ch.check(
        f.archive_missing.is_empty() && f.archive_orphans.is_empty() && f.archive_segments > 0,
        format!(
            "archive: {} segments in the index; {} missing or of another size on disk, {} files the index does not name{}",
            f.archive_segments,
            f.archive_missing.len(),
            f.archive_orphans.len(),
            f.archive_missing
                .first()
                .or(f.archive_orphans.first())
                .map(|e| format!(" (e.g. {e})"))
                .unwrap_or_default()
        ),
    );
    let none = |v: &[String]| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
    ch.check(f.dead.is_empty(), format!("processes lost: {}", none(&f.dead)));
    ch.check(
        f.panics.is_empty(),
        format!(
            "panics in the logs: {}{}",
            f.panics.len(),
            f.panics.first().map(|e| format!(" ({e})")).unwrap_or_default()
        ),
    );
    ch.check(
        f.not_live.is_empty(),
        format!("streams not live at the end: {}", none(&f.not_live)),
    );
    let drops = samples.last().map(|s| s.drops.clone()).unwrap_or_default();
    let _ = writeln!(
        t,
        "Drops counted by the nodes' outputs, by reason: {}.",
        if drops.is_empty() {
            "none".to_owned()
        } else {
            drops
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(t, "\n| check | figures |\n|---|---|\n{}", ch.lines);
    Report {
        table: t,
        failed: ch.failed,
    }
}

/// samples.csv and report.md into `out`.
pub(crate) fn write(out: &Path, samples: &[Sample], report: &Report, summary: &str) -> anyhow::Result<()> {
    let names: Vec<&str> = samples
        .first()
        .map(|s| s.procs.keys().copied().collect())
        .unwrap_or_default();
    let mut csv = String::from("t_s,latency_p50_ms,latency_p99_ms,frames,send_p99_ms,drops");
    for n in &names {
        let n = n.trim_start_matches("soak:");
        let _ = write!(csv, ",{n}_rss,{n}_fds,{n}_threads,{n}_cpu_pct");
    }
    csv.push('\n');
    for s in samples {
        let drops: u64 = s.drops.values().sum();
        let _ = write!(
            csv,
            "{:.1},{:.2},{:.2},{},{:.2},{drops}",
            s.t, s.p50_ms, s.p99_ms, s.frames, s.send_p99_ms
        );
        for n in &names {
            let p = s.procs.get(n).cloned().unwrap_or_default();
            let _ = write!(csv, ",{},{},{},{:.1}", p.rss, p.fds, p.threads, p.cpu_pct);
        }
        csv.push('\n');
    }
    std::fs::write(out.join("samples.csv"), csv)?;
    let md = format!(
        "# Soak\n\n{summary}\n{}\n\n![RSS](rss.svg)\n![descriptors](fds.svg)\n![threads](threads.svg)\n![CPU](cpu.svg)\n![latency](latency.svg)\n",
        report.table
    );
    std::fs::write(out.join("report.md"), md)?;
    Ok(())
}
