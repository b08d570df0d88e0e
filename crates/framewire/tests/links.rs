//! Links: subscriptions that leave a node over one rate-capped path take
//! turns by the node's scheduler (`--link`, docs/relay.md, "Links").
//! Two test-pattern streams of raw YUV 4:2:0 leave a node capped below
//! their sum.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::netns::{Netns, spawn_in};
use common::*;
use framewire_proto::control::{DropReason, OutputStats, Subscribe};
use framewire_proto::{Message, SubscribeParams};

/// Bytes of an 80×60 YUV 4:2:0 frame.
const SMALL_FRAME: u64 = 80 * 60 * 3 / 2;

/// A node with streams `hi` and `lo` of raw YUV 4:2:0 at this size and
/// rate, and this link rule (none: no `--link`).
fn source_node(size: &str, fps: u32, link: Option<&str>) -> NodeProc {
    let spec = |name| format!("test-pattern:{name},size={size},fps={fps},format=raw,pixel-format=yuv420p");
    let (hi, lo) = (spec("hi"), spec("lo"));
    let mut args = vec![
        "--name",
        "test:src",
        "--discovery",
        "off",
        "--no-shm",
        "--source",
        &hi,
        "--source",
        &lo,
    ];
    if let Some(l) = link {
        args.extend(["--link", l]);
    }
    spawn_node(&args)
}

/// The source node's output of `stream` to the peer named `peer`.
async fn output(addr: SocketAddr, stream: &str, peer: &str) -> Option<OutputStats> {
    stats(addr)
        .await
        .outputs
        .into_iter()
        .find(|o| o.stream == stream && o.peer.ends_with(peer))
}

fn dropped(o: &OutputStats, reason: DropReason) -> u64 {
    o.drops.iter().find(|d| d.reason == reason).map_or(0, |d| d.count)
}

fn all_dropped(o: &OutputStats) -> u64 {
    o.drops.iter().map(|d| d.count).sum()
}

/// Every frame offered to the output is sent, dropped with a reason, or
/// still held (queued, or the one being written).
fn accounted(o: &OutputStats) {
    let held = o.frames_in - o.frames_sent - all_dropped(o);
    assert!(
        held <= u64::from(o.queue_frames) + 1,
        "unaccounted frames on {}: {o:?}",
        o.stream
    );
}

/// What changed between two snapshots of an output: frames in, frames
/// sent, bytes sent, frames replaced.
fn delta(a: &OutputStats, b: &OutputStats) -> (u64, u64, u64, u64) {
    (
        b.frames_in - a.frames_in,
        b.frames_sent - a.frames_sent,
        b.bytes_sent - a.bytes_sent,
        dropped(b, DropReason::Replaced) - dropped(a, DropReason::Replaced),
    )
}

/// Reads frames on `c` for `window`; frames and bytes per channel.
async fn read_for(c: &mut framewire_net::Client, window: Duration) -> HashMap<u16, (u64, u64)> {
    let mut seen: HashMap<u16, (u64, u64)> = HashMap::new();
    let end = Instant::now() + window;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match next(c, left).await {
            Some(Message::VideoFrame(f)) => {
                let e = seen.entry(f.channel).or_default();
                e.0 += 1;
                e.1 += f.data.len() as u64;
            }
            Some(_) => {}
            None => break,
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_priority_keeps_the_high_stream_whole_on_a_capped_connection() {
    tokio::time::timeout(Duration::from_secs(60), async {
        // 1.2 MB/s for 1.73 MB/s of frames, on one connection.
        let src = source_node("160x120", 30, Some("*,scheduler=strict,max-rate=1200000"));
        let mut c = client(src.addr, "test:viewer").await;
        let params = |priority| SubscribeParams {
            priority,
            ..SubscribeParams::default()
        };
        let hi = subscribe(&mut c, "hi", params(200)).await;
        let lo = subscribe(&mut c, "lo", params(50)).await;
        read_for(&mut c, Duration::from_secs(1)).await;

        let (hi0, lo0) = (
            output(src.addr, "hi", "test:viewer").await,
            output(src.addr, "lo", "test:viewer").await,
        );
        let window = Duration::from_secs(4);
        let seen = read_for(&mut c, window).await;
        let (hi1, lo1) = (
            output(src.addr, "hi", "test:viewer").await,
            output(src.addr, "lo", "test:viewer").await,
        );
        let (hi0, lo0, hi1, lo1) = (hi0.unwrap(), lo0.unwrap(), hi1.unwrap(), lo1.unwrap());

        let (hi_in, hi_sent, _, hi_replaced) = delta(&hi0, &hi1);
        let (lo_in, lo_sent, _, lo_replaced) = delta(&lo0, &lo1);
        eprintln!(
            "high: {hi_sent}/{hi_in} sent, {hi_replaced} replaced; low: {lo_sent}/{lo_in} sent, {lo_replaced} replaced"
        );
        assert!(hi_in >= 60, "the source made only {hi_in} frames in 4 s");
        assert!(
            hi_sent * 100 >= hi_in * 95,
            "the high stream lost frames: {hi_sent} of {hi_in} sent"
        );
        assert!(
            lo_sent * 100 <= lo_in * 70,
            "the low stream was not held back: {lo_sent} of {lo_in}"
        );
        assert!(lo_replaced > 0, "the low stream's losses are counted as replaced");
        accounted(&hi1);
        accounted(&lo1);

        let bytes: u64 = seen.values().map(|v| v.1).sum();
        let rate = bytes as f64 / window.as_secs_f64();
        eprintln!("received {rate:.0} B/s over a 1 200 000 B/s link; channels {hi} {lo}: {seen:?}");
        assert!(rate < 1_200_000.0 * 1.1, "the cap did not hold: {rate:.0} B/s");
        assert!(seen.get(&hi).map_or(0, |v| v.0) * 100 >= hi_sent * 90);
    })
    .await
    .expect("within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drr_shares_a_capped_link_by_weight_across_edges() {
    tokio::time::timeout(Duration::from_secs(60), async {
        // Two edges (two connections) from one peer share the rule's link:
        // 2 × 432 kB/s of 7 200-byte frames over 300 kB/s.
        let src = source_node("80x60", 60, Some("127.0.0.1,scheduler=drr,max-rate=300000"));
        let up = src.addr.to_string();
        let relay = spawn_node(&[
            "--name",
            "test:relay",
            "--discovery",
            "off",
            "--no-shm",
            "--upstream",
            &format!("{up}/hi,weight=1"),
            "--upstream",
            &format!("{up}/lo,weight=3"),
        ]);
        let first = eventually_async(Duration::from_secs(15), async || {
            let a = output(src.addr, "hi", "test:relay").await?;
            let b = output(src.addr, "lo", "test:relay").await?;
            (a.frames_sent > 5 && b.frames_sent > 5).then_some((a, b))
        })
        .await;
        let (a0, b0) = first.expect("both edges carry frames");
        tokio::time::sleep(Duration::from_secs(5)).await;
        let a1 = output(src.addr, "hi", "test:relay").await.expect("the weight-1 output");
        let b1 = output(src.addr, "lo", "test:relay").await.expect("the weight-3 output");
        let (_, a_sent, a_bytes, a_replaced) = delta(&a0, &a1);
        let (_, b_sent, b_bytes, _) = delta(&b0, &b1);
        let ratio = b_bytes as f64 / a_bytes as f64;
        let total = (a_bytes + b_bytes) as f64 / 5.0;
        eprintln!("weight 1: {a_sent} frames {a_bytes} B; weight 3: {b_sent} frames {b_bytes} B; ratio {ratio:.2}; {total:.0} B/s");
        assert!((ratio - 3.0).abs() <= 0.3, "bytes by weight 1:3 came out {ratio:.2}");
        assert!(total < 300_000.0 * 1.1, "the cap did not hold: {total:.0} B/s");
        assert!(total > 300_000.0 * 0.7, "the link went unused: {total:.0} B/s");
        assert!(a_replaced > 0, "what the weight-1 edge lost is counted");
        assert_eq!(a_bytes % SMALL_FRAME, 0, "whole frames only");
        accounted(&a1);
        accounted(&b1);
        drop(relay);
    })
    .await
    .expect("within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_reaches_the_sender_and_without_a_link_streams_take_turns() {
    tokio::time::timeout(Duration::from_secs(30), async {
        // No --link: one connection's subscriptions round-robin, uncapped.
        let src = source_node("160x120", 30, None);
        let mut c = client(src.addr, "test:viewer").await;
        subscribe(&mut c, "hi", SubscribeParams::default()).await;
        let sub = Subscribe {
            weight: 7,
            ..Subscribe::new("lo", SubscribeParams::default())
        };
        c.subscribe_with(sub)
            .await
            .expect("a weighted subscription is accepted");
        let seen = read_for(&mut c, Duration::from_secs(2)).await;
        let counts: Vec<u64> = seen.values().map(|v| v.0).collect();
        assert_eq!(counts.len(), 2, "{seen:?}");
        assert!(counts.iter().all(|&n| n >= 30), "both streams flow in full: {seen:?}");
    })
    .await
    .expect("within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_or_an_upstream_with_max_rate_is_held_to_it() {
    tokio::time::timeout(Duration::from_secs(60), async {
        // No link rule: the caps come from the subscribers.
        let src = source_node("160x120", 30, None);
        // One connection: `hi` uncapped first, then `lo` at 200 kB/s.
        let mut c = client(src.addr, "test:viewer").await;
        let hi = subscribe(&mut c, "hi", SubscribeParams::default()).await;
        let sub = Subscribe {
            max_rate: 200_000,
            ..Subscribe::new("lo", SubscribeParams::default())
        };
        let lo = c.subscribe_with(sub).await.expect("subscribed with a cap").channel;
        // And an edge from another node with max-rate on its upstream.
        let relay = spawn_node(&[
            "--name",
            "test:relay",
            "--discovery",
            "off",
            "--no-shm",
            "--upstream",
            &format!("{}/hi,max-rate=2400kbit", src.addr),
        ]);
        read_for(&mut c, Duration::from_secs(1)).await;
        let e0 = output(src.addr, "hi", "test:relay").await;
        let window = Duration::from_secs(4);
        let seen = read_for(&mut c, window).await;
        let e1 = output(src.addr, "hi", "test:relay").await;
        let lo1 = output(src.addr, "lo", "test:viewer").await.expect("the capped output");

        let secs = window.as_secs_f64();
        let (hi_frames, lo_bytes) = (seen.get(&hi).map_or(0, |v| v.0), seen.get(&lo).map_or(0, |v| v.1));
        eprintln!(
            "uncapped: {hi_frames} frames; capped at 200 kB/s: {:.0} B/s",
            lo_bytes as f64 / secs
        );
        assert!(
            hi_frames as f64 >= 0.9 * 30.0 * secs,
            "the uncapped stream was held back: {hi_frames}"
        );
        let lo_rate = lo_bytes as f64 / secs;
        assert!(
            (140_000.0..=230_000.0).contains(&lo_rate),
            "the capped stream came at {lo_rate:.0} B/s"
        );
        assert!(dropped(&lo1, DropReason::Replaced) > 0, "what the cap cost is counted");
        accounted(&lo1);

        let (e0, e1) = (e0.expect("the edge's output"), e1.expect("the edge's output"));
        let (_, _, edge_bytes, edge_replaced) = delta(&e0, &e1);
        let edge_rate = edge_bytes as f64 / secs;
        eprintln!("edge capped at 300 kB/s: {edge_rate:.0} B/s, {edge_replaced} replaced");
        assert!(
            (210_000.0..=345_000.0).contains(&edge_rate),
            "the edge came at {edge_rate:.0} B/s"
        );
        assert!(edge_replaced > 0);
        accounted(&e1);
        drop(relay);
    })
    .await
    .expect("within 60 s");
}

/// Frames in and sent per output of `stream`, from `framewire stats --json`.
fn json_output(stats: &serde_json::Value, stream: &str) -> (u64, u64) {
    let o = stats["outputs"]
        .as_array()
        .and_then(|a| a.iter().find(|o| o["stream"] == stream))
        .unwrap_or_else(|| panic!("no output of {stream} in {stats}"));
    (o["frames_in"].as_u64().unwrap(), o["frames_sent"].as_u64().unwrap())
}

/// Over a link shaped to 8 Mbit/s with tc, the shares of two 6.9 Mbit/s
/// streams (one edge each) pulled by a node on the far side, without and
/// with a link rule: (high in, high sent, low in, low sent) over 4 s.
fn shaped_run(ns: &mut Netns, tag: &str, link: Option<&str>) -> (u64, u64, u64, u64) {
    let a = ns.add(&format!("{tag}a")).unwrap();
    let b = ns.add(&format!("{tag}b")).unwrap();
    ns.link(&a, "eth0", "10.78.1.1/24", &b, "eth0", "10.78.1.2/24");
    ns.shape(&a, "eth0", "8mbit");
    let spec = |name| format!("test-pattern:{name},size=160x120,fps=30,format=raw,pixel-format=yuv420p");
    let mut src_args = netns_args(&[
        "--name",
        "test:src",
        "--listen",
        "10.78.1.1:7400",
        "--discovery",
        "off",
        "--no-shm",
        "--source",
        &spec("hi"),
        "--source",
        &spec("lo"),
    ]);
    if let Some(l) = link {
        src_args.extend(netns_args(&["--link", l]));
    }
    let _src = spawn_in(Some(&a), &src_args);
    let _relay = spawn_in(
        Some(&b),
        &netns_args(&[
            "--name",
            "test:relay",
            "--listen",
            "10.78.1.2:7400",
            "--discovery",
            "off",
            "--no-shm",
            "--upstream",
            "10.78.1.1:7400/hi,priority=200",
            "--upstream",
            "10.78.1.1:7400/lo,priority=50",
        ]),
    );
    std::thread::sleep(Duration::from_secs(2));
    let read = || -> serde_json::Value {
        serde_json::from_str(&ns.framewire(&a, &["stats", "10.78.1.1:7400", "--json", "--window", "0"])).expect("JSON")
    };
    let s0 = read();
    std::thread::sleep(Duration::from_secs(4));
    let s1 = read();
    let ((h_in0, h_sent0), (l_in0, l_sent0)) = (json_output(&s0, "hi"), json_output(&s0, "lo"));
    let ((h_in1, h_sent1), (l_in1, l_sent1)) = (json_output(&s1, "hi"), json_output(&s1, "lo"));
    // The same subscriptions throughout: a starved edge that took its
    // upstream for a frozen one would have reconnected, and its counters
    // would have started again.
    let d = |a: u64, b: u64, what: &str| {
        b.checked_sub(a)
            .unwrap_or_else(|| panic!("the {what} edge reconnected"))
    };
    (
        d(h_in0, h_in1, "high"),
        d(h_sent0, h_sent1, "high"),
        d(l_in0, l_in1, "low"),
        d(l_sent0, l_sent1, "low"),
    )
}

fn netns_args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn netns_strict_priority_keeps_the_high_stream_whole_over_a_shaped_link() {
    let mut ns = Netns::new();
    // Without a rule the two connections share the 8 Mbit/s as TCP does:
    // both lose frames, priority or not.
    let (h_in, h_sent, l_in, l_sent) = shaped_run(&mut ns, "p", None);
    eprintln!("no link rule: high {h_sent}/{h_in}, low {l_sent}/{l_in}");
    assert!(
        h_sent * 100 < h_in * 90,
        "the link was not the bottleneck: high {h_sent} of {h_in}"
    );
    drop(ns);

    // A strict rule capped under the shaped rate: the high stream whole.
    let mut ns = Netns::new();
    let (h_in, h_sent, l_in, l_sent) = shaped_run(&mut ns, "q", Some("10.78.1.2,scheduler=strict,max-rate=7Mbit"));
    eprintln!("strict, 7 Mbit/s: high {h_sent}/{h_in}, low {l_sent}/{l_in}");
    assert!(h_in >= 60, "the source made only {h_in} frames in 4 s");
    assert!(
        h_sent * 100 >= h_in * 95,
        "the high stream lost frames: {h_sent} of {h_in}"
    );
    assert!(
        l_sent * 100 <= l_in * 50,
        "the low stream was not held back: {l_sent} of {l_in}"
    );
}

#[test]
fn bad_link_and_weight_specs_are_refused_with_the_reason() {
    let cases: [(&[&str], &str); 6] = [
        (&["--link", "*,scheduler=fifo"], "strict, rr, wrr, drr, suppress"),
        (&["--link", "*,max-rate=fast"], "is not a rate"),
        (&["--link", "example.com"], "IP address"),
        (&["--link", "*,max-rate=0"], "more than 0"),
        (
            &["--upstream", "127.0.0.1:1/bars,weight=0"],
            "weight must be at least 1",
        ),
        (&["--upstream", "127.0.0.1:1/bars,max-rate=lots"], "is not a rate"),
    ];
    for (args, want) in cases {
        let mut all = vec![
            "node",
            "--name",
            "test:bad",
            "--discovery",
            "off",
            "--listen",
            "127.0.0.1:0",
        ];
        all.extend_from_slice(args);
        let out = run_cli(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
