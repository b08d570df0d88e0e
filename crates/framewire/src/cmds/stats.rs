//! `framewire stats ADDR`: per-input, per-output and input-event counters.

use std::time::{Duration, Instant};

use framewire_proto::control::{Name, OutputStats, Stats};
use framewire_proto::{Request, Response};

use crate::util;

/// Show a node's counters: per input, frames and bytes in; per output
/// (subscription), frames sent, drops by reason, queue, budget and send
/// latency; per stream that viewers sent keyboard or mouse events for,
/// events received (by kind), injected into the display and forwarded
/// upstream. Rates (FPS, Mbit/s, drops) are measured over a short window
/// (two samples, --window apart); with --watch, over each second.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire stats 127.0.0.1:7400              rates over 1 s, labels shortened to fit\n  \
framewire stats 127.0.0.1:7400 --wide       peers and upstreams in full\n  \
framewire stats 127.0.0.1:7400 --window 0   totals only, at once\n  \
framewire stats 127.0.0.1:7400 --json       totals as JSON (one line)")]
pub struct Args {
    /// The node, HOST[:PORT].
    addr: String,
    /// Only this stream.
    #[arg(long, default_value = "")]
    stream: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Refresh every second until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// The window rates are measured over, in seconds (0: totals only).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    window: f64,
    /// Show peers and upstreams in full instead of shortening them.
    #[arg(long)]
    wide: bool,
    /// Flag an output that dropped more than this share (0 to 1) of the
    /// frames offered to it over the window, as the controller's alert
    /// does (at least 10 frames offered).
    #[arg(long, default_value_t = 0.05, value_name = "SHARE", value_parser = super::node::parse_share)]
    alert_drop_share: f64,
}

async fn sample(client: &mut framewire_net::Client, stream: &str) -> anyhow::Result<Stats> {
    let req = Request::GetStats(Name {
        name: stream.to_owned(),
    });
    let Response::GetStats(stats) = client.request(req).await? else {
        anyhow::bail!("the node answered GET_STATS with something else");
    };
    Ok(stats)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !(0.0..=60.0).contains(&args.window) {
        anyhow::bail!("--window {} is out of range (0 to 60 seconds)", args.window);
    }
    let mut client = util::connect(&args.addr, Duration::from_secs(5)).await?;
    let mut prev: Option<(Instant, Stats)> = None;
    if !args.json && !args.watch && args.window > 0.0 {
        // Once: a first sample, then the window, so rates are rates.
        prev = Some((Instant::now(), sample(&mut client, &args.stream).await?));
        tokio::time::sleep(Duration::from_secs_f64(args.window)).await;
    }
    loop {
        let stats = sample(&mut client, &args.stream).await?;
        let now = Instant::now();
        if args.json {
            println!("{}", serde_json::to_string(&stats_json(&stats))?);
        } else {
            if args.watch {
                print!("\x1b[H\x1b[2J");
            }
            println!("{} ({})", client.peer().name, client.addr());
            print!(
                "{}",
                table(
                    &stats,
                    prev.as_ref().map(|(t, s)| (now.duration_since(*t), s)),
                    args.wide,
                    args.alert_drop_share
                )
            );
        }
        if !args.watch {
            return Ok(());
        }
        prev = Some((now, stats));
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The counters as JSON.
pub fn stats_json(s: &Stats) -> serde_json::Value {
    framewire_proto::json::stats(s)
}

fn drops(o: &OutputStats) -> u64 {
    o.drops.iter().map(|d| d.count).sum()
}

/// Fewer frames offered over the window raise no alert (as the controller's).
const ALERT_MIN_FRAMES: u64 = 10;

/// A text table; with a previous sample, rates instead of totals, and the
/// outputs that dropped more than `alert` of their frames over the window
/// listed under ALERTS. Long peers and upstreams are shortened (keeping a
/// trailing `[state]`) unless `wide`.
pub fn table(s: &Stats, prev: Option<(Duration, &Stats)>, wide: bool, alert: f64) -> String {
    let fit = |label: &str, n: usize| if wide { label.to_owned() } else { shorten(label, n) };
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<20} {:<12} {:<34} {:>10} {:>12} {:>10}",
        "INPUT", "STATE", "UPSTREAM", "FRAMES", "BYTES", "RECONNECTS"
    );
    for i in &s.inputs {
        let _ = writeln!(
            t,
            "{:<20} {:<12} {:<34} {:>10} {:>12} {:>10}",
            i.stream,
            format!("{:?}", i.state).to_lowercase(),
            if i.upstream.is_empty() {
                "(local source)".to_owned()
            } else {
                fit(&i.upstream, 34)
            },
            i.frames_in,
            util::human_bytes(i.bytes_in as f64),
            i.reconnects
        );
    }
    let _ = writeln!(
        t,
        "\n{:<20} {:<30} {:<12} {:<4} {:>9} {:>10} {:>8} {:>9} {:>16}",
        "OUTPUT", "PEER", "MODE", "VIA", "FPS", "Mbit/s", "DROPS", "QUEUE", "LATENCY p50/p99"
    );
    let mut alerts = Vec::new();
    for o in &s.outputs {
        let (fps, mbps, dropped) = match prev.and_then(|(dt, p)| {
            p.outputs
                .iter()
                .find(|q| q.stream == o.stream && q.peer == o.peer && q.channel == o.channel)
                .map(|q| (dt, q))
        }) {
            Some((dt, q)) => {
                let secs = dt.as_secs_f64().max(1e-3);
                let dropped = drops(o).saturating_sub(drops(q));
                let offered = o.frames_sent.saturating_sub(q.frames_sent) + dropped;
                #[allow(clippy::cast_precision_loss)]
                let share = dropped as f64 / offered.max(1) as f64;
                if offered >= ALERT_MIN_FRAMES && share > alert {
                    alerts.push(format!(
                        "{} -> {}: dropped {:.0} % of the {offered} frames offered over {secs:.1} s (alert above {:.0} %)",
                        o.stream,
                        o.peer,
                        share * 100.0,
                        alert * 100.0
                    ));
                }
                (
                    format!("{:.1}", o.frames_sent.saturating_sub(q.frames_sent) as f64 / secs),
                    format!(
                        "{:.1}",
                        o.bytes_sent.saturating_sub(q.bytes_sent) as f64 * 8.0 / secs / 1e6
                    ),
                    drops(o).saturating_sub(drops(q)),
                )
            }
            None => ("-".into(), "-".into(), drops(o)),
        };
        let _ = writeln!(
            t,
            "{:<20} {:<30} {:<12} {:<4} {:>9} {:>10} {:>8} {:>9} {:>16}",
            o.stream,
            fit(&o.peer, 30),
            o.mode.to_string(),
            via(o.transport),
            fps,
            mbps,
            dropped,
            format!("{}/{}", o.queue_frames, o.max_frames),
            format!(
                "{:.2}/{:.2} ms",
                f64::from(o.latency_p50_us) / 1e3,
                f64::from(o.latency_p99_us) / 1e3
            )
        );
    }
    if !alerts.is_empty() {
        let _ = writeln!(t, "\nALERTS");
        for a in alerts {
            let _ = writeln!(t, "{a}");
        }
    }
    if !s.input_events.is_empty() {
        let _ = writeln!(
            t,
            "\n{:<20} {:>10} {:>10} {:>10}  BY KIND",
            "INPUT EVENTS", "RECEIVED", "INJECTED", "FORWARDED"
        );
        for e in &s.input_events {
            let kinds: Vec<String> = e
                .kinds
                .iter()
                .map(|k| format!("{}={}", k.kind.label(), k.count))
                .collect();
            let _ = writeln!(
                t,
                "{:<20} {:>10} {:>10} {:>10}  {}",
                e.stream,
                e.received,
                e.injected,
                e.forwarded,
                kinds.join(" ")
            );
        }
    }
    if !s.pass_through.is_empty() {
        let _ = writeln!(
            t,
            "\n{:<20} {:>8} {:>10} {:>12} {:>8}",
            "PASSED THROUGH", "TYPE", "MESSAGES", "BYTES", "DROPPED"
        );
        for p in &s.pass_through {
            let kind = if p.message_type == 6 {
                "audio".to_owned()
            } else {
                format!("{:#06x}", p.message_type)
            };
            let _ = writeln!(
                t,
                "{:<20} {:>8} {:>10} {:>12} {:>8}",
                p.stream, kind, p.messages, p.bytes, p.dropped
            );
        }
    }
    t
}

/// How an output's frames travel: `tcp`, `shm`, or `raw` (opaque bytes).
fn via(t: framewire_proto::TransportMode) -> &'static str {
    match t {
        framewire_proto::TransportMode::Encapsulated => "tcp",
        framewire_proto::TransportMode::Shm => "shm",
        framewire_proto::TransportMode::Opaque => "raw",
        _ => "?",
    }
}

/// `s` in at most `n` characters: the start, `…`, and a trailing
/// `[state]` (an archive's state ends its label), whose start is kept
/// when it does not fit whole.
fn shorten(s: &str, n: usize) -> String {
    let len = s.chars().count();
    if len <= n {
        return s.to_owned();
    }
    let cut = |t: &str, k: usize| t.chars().take(k).collect::<String>();
    match s.rfind(" [") {
        Some(i) if s.ends_with(']') && n > 12 => {
            let tail = &s[i..];
            let t = tail.chars().count();
            if t + 8 < n {
                cut(s, n - 1 - t) + "…" + tail
            } else {
                cut(s, 6) + "…" + &cut(tail, n - 8) + "…"
            }
        }
        _ => cut(s, n - 1) + "…",
    }
}

#[cfg(test)]
mod tests {
    use framewire_proto::control::{DropCount, DropReason, OutputStats, Stats};
    use framewire_proto::{DeliveryMode, TransportMode};

    use super::{shorten, table};

    fn output(peer: &str, sent: u64, dropped: u64) -> OutputStats {
        OutputStats {
            channel: 1,
            stream: "cam".into(),
            peer: peer.into(),
            mode: DeliveryMode::LowLatency,
            transport: TransportMode::Encapsulated,
            priority: 128,
            frames_in: sent + dropped,
            frames_sent: sent,
            bytes_sent: sent * 1000,
            drops: vec![DropCount {
                reason: DropReason::Replaced,
                count: dropped,
            }],
            queue_frames: 0,
            queue_bytes: 0,
            max_frames: 1,
            max_bytes: 0,
            oldest_age_us: 0,
            latency_p50_us: 0,
            latency_p99_us: 0,
            latency_max_us: 0,
            waiting_keyframe: false,
        }
    }

    #[test]
    fn an_output_dropping_more_than_the_share_over_the_window_is_flagged() {
        let stats = |a: (u64, u64), b: (u64, u64), c: (u64, u64)| Stats {
            outputs: vec![
                output("slow", a.0, a.1),
                output("fine", b.0, b.1),
                output("idle", c.0, c.1),
            ],
            ..Stats::default()
        };
        let before = stats((100, 0), (100, 0), (100, 0));
        // Over 1 s: slow 21 sent + 9 dropped (30 %), fine 29 + 1 (3.3 %),
        // idle 1 + 4 (80 % of too few frames to say).
        let after = stats((121, 9), (129, 1), (101, 4));
        let t = table(&after, Some((std::time::Duration::from_secs(1), &before)), true, 0.05);
        let alerts: Vec<&str> = t.lines().skip_while(|l| *l != "ALERTS").skip(1).collect();
        assert_eq!(
            alerts,
            ["cam -> slow: dropped 30 % of the 30 frames offered over 1.0 s (alert above 5 %)"],
            "{t}"
        );
        // A share of 0.5 flags nothing; totals (no window) flag nothing.
        assert!(!table(&after, Some((std::time::Duration::from_secs(1), &before)), true, 0.5).contains("ALERTS"));
        assert!(!table(&after, None, true, 0.0).contains("ALERTS"));
    }

    #[test]
    fn a_long_label_keeps_its_start_and_its_state() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("abcdefghijkl", 10), "abcdefghi…");
        let archive = "sink:archive:/var/lib/framewire/archive/cam [storage-failed]";
        let s = shorten(archive, 30);
        assert_eq!(s.chars().count(), 30);
        assert!(
            s.starts_with("sink:archive") && s.ends_with("… [storage-failed]"),
            "{s}"
        );
        let long = "sink:archive:/srv/a [STORAGE FAILED (no space left on device), 3 segments closed]";
        let s = shorten(long, 30);
        assert_eq!(s.chars().count(), 30, "{s}");
        assert!(s.contains("[STORAGE FAILED"), "{s}");
    }
}
