//! One stream to many subscribers: a node's 320x180 MJPEG test pattern at
//! a low rate, subscribed by N clients of this process (low-latency
//! delivery). Over a common window: the node's CPU and memory, the frames
//! each subscriber got against those sent, end-to-end latency, and every
//! frame a subscriber missed counted by the node as a drop. Then N is
//! doubled until delivery falls under 95 % (or a subscriber gets under
//! 90 % of the window's frames), p99 latency passes two frame intervals,
//! or the node refuses a subscriber.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use framewire_net::{Client, ClientIdentity, NetError, now_ns};
use framewire_proto::control::Stats;
use framewire_proto::{Message, SubscribeParams};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Args, Found, Usage, fds_threads, mib, quantile, start_node, stats};

/// What one subscriber saw within the window.
#[derive(Debug, Default)]
struct Seen {
    frames: u64,
    missed: u64,
    latency_us: Vec<u64>,
    /// Sequence numbers of the first and last frame in the window.
    first: Option<u64>,
    last: Option<u64>,
}

/// Subscribers joined, 128 at a time; the first refusal's reason.
async fn join(addr: &str, n: usize, round: usize) -> (Vec<Client>, Option<NetError>) {
    let (mut clients, mut refused) = (Vec::with_capacity(n), None);
    let mut i = 0;
    while i < n {
        let mut set = JoinSet::new();
        for k in i..(i + 128).min(n) {
            let addr = addr.to_owned();
            set.spawn(async move {
                let who = ClientIdentity::tool(&format!("scale:r{round}s{k}"));
                let mut c = Client::connect(&addr, &who, Duration::from_secs(20)).await?;
                c.subscribe("bars", SubscribeParams::default()).await?;
                Ok::<_, NetError>(c)
            });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(c)) => clients.push(c),
                Ok(Err(e)) => {
                    refused.get_or_insert(e);
                }
                Err(e) => {
                    refused.get_or_insert(NetError::Protocol {
                        peer: addr.to_owned(),
                        message: format!("the subscribing task failed: {e}"),
                    });
                }
            }
        }
        i += 128;
    }
    (clients, refused)
}

/// Reads frames until `end`, counting those from `start` on; gives the
/// client back, so that its output (and its drops) stays in the node's
/// statistics until they are read.
async fn read(mut c: Client, start: Instant, end: Instant) -> Result<(Seen, Client), NetError> {
    let mut seen = Seen::default();
    let mut last = None::<u64>;
    loop {
        let msg = match tokio::time::timeout_at(end, c.next_message()).await {
            Err(_) => break,
            Ok(m) => m?,
        };
        let Some(Message::VideoFrame(v)) = msg else {
            if msg.is_none() {
                return Err(NetError::Closed("the node closed the subscription".into()));
            }
            continue;
        };
        if Instant::now() >= start {
            seen.frames += 1;
            seen.latency_us.push(now_ns().saturating_sub(v.timestamp_ns) / 1000);
            if let Some(l) = last {
                seen.missed += v.sequence.saturating_sub(l + 1);
            }
            seen.first.get_or_insert(v.sequence);
            seen.last = Some(v.sequence);
        }
        last = Some(v.sequence);
    }
    Ok((seen, c))
}

/// Drops counted per subscriber (by its HELLO name) of the stream.
fn drops_by_peer(s: &Stats) -> HashMap<String, u64> {
    s.outputs
        .iter()
        .filter(|o| o.stream == "bars")
        .map(|o| {
            let peer = o.peer.rsplit(' ').next().unwrap_or(&o.peer).to_owned();
            (peer, o.drops.iter().map(|d| d.count).sum())
        })
        .collect()
}

/// Frames the node's source produced so far.
fn produced(s: &Stats) -> u64 {
    s.inputs
        .iter()
        .filter(|i| i.stream == "bars")
        .map(|i| i.frames_in)
        .sum()
}

/// One size; whether it held.
async fn measure(a: &Args, f: &mut Found, addr: &str, pid: u32, n: usize, round: usize) -> anyhow::Result<bool> {
    let t = std::time::Instant::now();
    let (clients, refused) = join(addr, n, round).await;
    if let Some(e) = refused {
        let how = match &e {
            NetError::Remote { status, message, .. } => format!("{status:?}: {message}"),
            other => format!("without a reason: {other}"),
        };
        f.row(
            format!("{n} subscribers"),
            format!("{} joined, then refused {how}", clients.len()),
        );
        f.check(matches!(e, NetError::Remote { .. }), || {
            format!("subscriber {} of {n} refused {how}", clients.len() + 1)
        });
        f.limit = format!("{} subscribers joined; the next was refused {how}", clients.len());
        return Ok(false);
    }
    let joined_in = t.elapsed();
    let s0 = stats(addr).await?;
    let u0 = Usage::of(pid);
    let start = Instant::now() + Duration::from_millis(300);
    let end = start + a.hold;
    let mut set = JoinSet::new();
    for c in clients {
        set.spawn(read(c, start, end));
    }
    tokio::time::sleep_until(start + a.hold / 2).await;
    let (fds, threads) = fds_threads(pid);
    let mut all = Seen::default();
    let mut fewest = None;
    let mut failed = Vec::new();
    let mut kept = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok((s, c))) => {
                kept.push(c);
                all.frames += s.frames;
                all.missed += s.missed;
                all.latency_us.extend(s.latency_us);
                all.first = all.first.min(s.first).or(all.first).or(s.first);
                fewest = Some(fewest.map_or(s.frames, |m: u64| m.min(s.frames)));
                all.last = all.last.max(s.last);
            }
            Ok(Err(e)) => failed.push(e.to_string()),
            Err(e) => failed.push(e.to_string()),
        }
    }
    let u1 = Usage::of(pid);
    let s1 = stats(addr).await?;
    drop(kept);
    let (d0, d1) = (drops_by_peer(&s0), drops_by_peer(&s1));
    let counted: u64 = d1
        .iter()
        .map(|(p, n)| n - d0.get(p).copied().unwrap_or(0).min(*n))
        .sum();
    // The window's frames: from the first any subscriber got in it to the
    // last (the source's sequence numbers count every frame it made).
    let made = match (all.first, all.last) {
        (Some(a), Some(b)) => b - a + 1,
        _ => (produced(&s1) - produced(&s0)).max(1),
    };
    // Of the frames that came along each subscriber's stretch, those it got
    // (a slow one drops frames, counted as missed); and the subscriber that
    // got the fewest of the window's frames.
    let share = all.frames as f64 / (all.frames + all.missed).max(1) as f64;
    let fewest = fewest.unwrap_or(0);
    let p50 = quantile(&mut all.latency_us, 0.5);
    let p99 = quantile(&mut all.latency_us, 0.99);
    let interval_us = (1e6 / a.fanout_fps) as u64;
    f.row(
        format!("{n} subscribers at {} fps", a.fanout_fps),
        format!(
            "joined in {:.1} s; node CPU {:.1} % of a core, RSS {}, {fds} descriptors, {threads} threads",
            joined_in.as_secs_f64(),
            u0.cpu_percent(&u1),
            mib(u1.rss)
        ),
    );
    f.row(
        format!("{n} subscribers: delivered, latency"),
        format!(
            "{:.1} % delivered, the fewest any got {fewest} of the window's {made}; p50 {:.1} ms, p99 {:.1} ms; {} missed, {counted} counted as drops",
            share * 100.0,
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0,
            all.missed
        ),
    );
    f.check(failed.is_empty(), || {
        format!("{} of {n} subscribers failed: {}", failed.len(), failed[0])
    });
    f.check(all.missed <= counted, || {
        format!(
            "{n} subscribers missed {} frames, the node counted {counted}",
            all.missed
        )
    });
    let held = failed.is_empty() && share >= 0.95 && fewest * 10 >= made * 9 && p99 <= 2 * interval_us;
    if round == 0 {
        f.check(held, || {
            format!(
                "{n} subscribers did not hold: {:.1} % delivered, p99 {:.1} ms",
                share * 100.0,
                p99 as f64 / 1000.0
            )
        });
    }
    if !held {
        f.limit = format!(
            "{n} subscribers of one {} fps stream: {:.1} % delivered, p99 {:.1} ms (every missed frame counted as a drop by the node)",
            a.fanout_fps,
            share * 100.0,
            p99 as f64 / 1000.0
        );
    }
    Ok(held)
}

pub(crate) async fn run(a: &Args, out: &Path) -> anyhow::Result<Found> {
    let mut f = Found::default();
    let mut args = vec![
        "--source".to_owned(),
        format!("test-pattern:bars,size=320x180,fps={},format=mjpeg", a.fanout_fps),
    ];
    if let Some(cap) = a.fanout_cap {
        let cfg = out.join("fanout.toml");
        let conns = cap + 64;
        std::fs::write(
            &cfg,
            format!("[limits]\nmax_outputs = {cap}\nmax_connections = {conns}\n"),
        )?;
        args.extend(["--config".to_owned(), cfg.display().to_string()]);
    }
    let node = start_node(out, "scale:fan", &args)?;
    let mut n = a.fanout;
    for round in 0..=a.fanout_steps {
        if !measure(a, &mut f, &node.addr, node.proc.pid, n, round).await? {
            break;
        }
        if round == a.fanout_steps {
            f.limit = format!("none found up to {n} subscribers (this machine's bench client shares its 2 cores)");
        }
        n *= 2;
        // The round's connections close before the next one opens more.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    f.check(node.proc.alive(), || "the node died".to_owned());
    Ok(f)
}
