//! Per-hop latency: what the relay adds between a subscriber on the
//! source node and subscribers behind the relay, for the same frames.

use super::*;

/// Per-hop latency at a fixed rate.
#[derive(Debug)]
pub(super) struct Latency {
    pub(super) frames: usize,
    pub(super) subs: usize,
    /// (label, p50, p99, max) in µs.
    pub(super) rows: Vec<(String, [f64; 3])>,
}

pub(super) fn latency_run(plan: &Plan, cx: &Ctx, wl: &Workload) -> anyhow::Result<Latency> {
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
pub(super) fn ordinal(k: usize) -> String {
    let suffix = match (k % 10, k % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{k}{suffix}")
}
