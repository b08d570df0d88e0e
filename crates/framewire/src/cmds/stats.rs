//! `framewire stats ADDR`: per-input, per-output and input-event counters.

use std::time::{Duration, Instant};

use framewire_proto::control::{Name, OutputStats, Stats};
use framewire_proto::{Request, Response};

use crate::util;

/// Show a node's counters: per input, frames and bytes in; per output
/// (subscription), frames sent, drops by reason, queue, budget and send
/// latency; per stream that viewers sent keyboard or mouse events for,
/// events received (by kind), injected into the display and forwarded
/// upstream. With --watch, rates over each second.
#[derive(Debug, clap::Args)]
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
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = util::connect(&args.addr, Duration::from_secs(5)).await?;
    let mut prev: Option<(Instant, Stats)> = None;
    loop {
        let Response::GetStats(stats) = client
            .request(Request::GetStats(Name {
                name: args.stream.clone(),
            }))
            .await?
        else {
            anyhow::bail!("the node answered GET_STATS with something else");
        };
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
                table(&stats, prev.as_ref().map(|(t, s)| (now.duration_since(*t), s)))
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

/// A text table; with a previous sample, rates instead of totals.
pub fn table(s: &Stats, prev: Option<(Duration, &Stats)>) -> String {
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
                "(local source)"
            } else {
                &i.upstream
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
    for o in &s.outputs {
        let (fps, mbps, dropped) = match prev.and_then(|(dt, p)| {
            p.outputs
                .iter()
                .find(|q| q.stream == o.stream && q.peer == o.peer && q.channel == o.channel)
                .map(|q| (dt, q))
        }) {
            Some((dt, q)) => {
                let secs = dt.as_secs_f64().max(1e-3);
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
            truncate(&o.peer, 30),
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

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}
