//! The result table, with ratios against the peers and the targets.

use super::*;

/// Everything the table shows.
#[derive(Debug)]
pub(super) struct Summary<'a> {
    pub(super) started: u64,
    pub(super) load0: String,
    pub(super) load1: String,
    pub(super) workloads: &'a [Workload],
    pub(super) iperf: &'a [f64],
    pub(super) rows: &'a [(Kind, usize, Option<Agg>, Option<Agg>)],
    /// With `--tls`: per case, framewire over plain TCP and over TLS.
    pub(super) tls: &'a [TlsRow],
    /// With `--tls`: one stream's Gbit/s on loopback over TCP and over TLS.
    pub(super) bare_tls: Option<(f64, f64)>,
    pub(super) latency: Option<&'a Latency>,
    pub(super) stalls: &'a [Stall],
}

pub(super) fn utc(ns: u64) -> String {
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

pub(super) fn num(x: f64, prec: usize) -> String {
    if x.is_finite() {
        format!("{x:.prec$}")
    } else {
        "-".into()
    }
}

pub(super) fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

pub(super) fn mb(b: u64) -> f64 {
    b as f64 / 1048576.0
}

pub(super) fn table(plan: &Plan, cx: &Ctx, s: &Summary<'_>) -> String {
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
    tls_table(&mut o, s.tls, s.bare_tls);
    targets(&mut o, s, ceiling);
    o
}

/// One case over plain TCP and over TLS.
#[derive(Debug)]
pub(super) struct TlsRow {
    pub(super) kind: Kind,
    pub(super) n: usize,
    pub(super) plain: Option<Agg>,
    pub(super) tls: Option<Agg>,
    /// TLS Gbit/s over plain Gbit/s of each repetition, the two run one
    /// after the other.
    pub(super) pairs: Vec<f64>,
}

impl TlsRow {
    /// The median of the paired ratios, NaN without a pair.
    pub(super) fn ratio(&self) -> f64 {
        if self.pairs.is_empty() {
            f64::NAN
        } else {
            median(&self.pairs)
        }
    }
}

/// framewire over TLS against framewire over plain TCP, case by case.
fn tls_table(o: &mut String, rows: &[TlsRow], bare: Option<(f64, f64)>) {
    if rows.is_empty() {
        return;
    }
    if let Some((tcp, tls)) = bare {
        let _ = writeln!(
            o,
            "\nOne stream on loopback, no relay: TCP {tcp:.2} Gbit/s, TLS {tls:.2} Gbit/s = {} of TCP \
             (the most any TLS hop can keep of plain on this machine)",
            ratio(tls, tcp)
        );
    }
    let _ = writeln!(
        o,
        "\nTLS 1.3 (rustls, aws-lc-rs) on every hop against plain TCP, framewire only, same run; \
         each repetition runs plain then TLS, TLS/pl is the median of their ratios\n\
         {:<9} {:>4} {:>10} {:>10} {:>8} {:>9} {:>9} {:>8} {:>12}  each pair",
        "frames", "subs", "plain fps", "TLS fps", "TLS/pl", "plain Gb/s", "TLS Gb/s", "relay%", "relay% TLS"
    );
    for row in rows {
        let (Some(p), Some(t)) = (&row.plain, &row.tls) else {
            continue;
        };
        let pairs: Vec<String> = row.pairs.iter().map(|r| format!("{r:.2}")).collect();
        let _ = writeln!(
            o,
            "{:<9} {:>4} {:>10} {:>10} {:>7.2}x {:>9} {:>9} {:>8.0} {:>12.0}  {}",
            row.kind.label(),
            row.n,
            num(p.fps_med, 1),
            num(t.fps_med, 1),
            row.ratio(),
            num(p.gbps, 2),
            num(t.gbps, 2),
            p.cpu_pct,
            t.cpu_pct,
            pairs.join(" ")
        );
    }
}

pub(super) fn targets(o: &mut String, s: &Summary<'_>, ceiling: f64) {
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
    for row in s.tls {
        if let (Some(p), Some(t)) = (&row.plain, &row.tls) {
            let r = row.ratio();
            let _ = writeln!(
                o,
                "  TLS {} x{}: {:.2} Gbit/s against {:.2} plain (medians); paired ratio {:.0} % (target >= 70 %): {}",
                row.kind.label(),
                row.n,
                t.gbps,
                p.gbps,
                r * 100.0,
                verdict(r >= 0.7)
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(gbps: f64) -> Option<Agg> {
        Some(Agg { gbps, ..Agg::default() })
    }

    #[test]
    fn the_tls_ratio_is_the_median_of_the_pairs_not_of_the_medians() {
        // Medians alone would say 6 / 10 = 60 %; the pairs, each run back
        // to back, say 72 %.
        let row = TlsRow {
            kind: Kind::Mjpeg,
            n: 1,
            plain: agg(10.0),
            tls: agg(6.0),
            pairs: vec![0.75, 0.5, 0.72],
        };
        assert_eq!(row.ratio(), 0.72);
        let mut o = String::new();
        tls_table(&mut o, std::slice::from_ref(&row), None);
        let line = o.lines().find(|l| l.starts_with("mjpeg")).unwrap();
        assert!(line.contains("0.72x") && line.ends_with("0.75 0.50 0.72"), "{line}");
        let none = TlsRow {
            pairs: Vec::new(),
            ..row
        };
        assert!(none.ratio().is_nan());
    }
}
