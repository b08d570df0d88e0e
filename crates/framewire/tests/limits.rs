//! A node's memory is bounded by the node, never by a peer
//! (docs/security.md, "Threat model of a node"). Each test plays one kind
//! of hostile peer against a real node process and checks the node's
//! resident memory and what a well-behaved viewer keeps receiving
//! (at least 95 % of its frames, its p99 frame gap within 20 % of an
//! attack-free run).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use framewire_proto::control::{Name, Subscribe, WatchStatus};
use framewire_proto::{DeliveryMode, Request, Response, Status, SubscribeParams};

/// How long each viewer window lasts.
const WINDOW: Duration = Duration::from_secs(3);

fn node_with(dir_tag: &str, toml: &str) -> NodeProc {
    let dir = temp_dir(dir_tag);
    let cfg = config_file(&dir, toml);
    spawn_node(&["--config", &cfg, "--discovery", "off"])
}

fn raw(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Whether the node closed `s` within `within` (reading and discarding).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 65536];
    let end = Instant::now() + within;
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => {}
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_claim_64_mib_cost_nothing() {
    let node = node_with(
        "limits-header",
        "name = \"t:target\"\n[[source]]\nkind = \"test-pattern\"\nname = \"bars\"\nsize = \"320x240\"\nfps = 30\n",
    );
    let (addr, pid) = (node.addr, node.child.id());
    let base = watch(addr, "bars", WINDOW).await;
    let idle = rss_mb(pid);
    let attack = tokio::task::spawn_blocking(move || {
        // Before HELLO: a claimed payload far over a HELLO's size closes the connection.
        let mut early: Vec<TcpStream> = (0..8).map(|_| raw(addr)).collect();
        for s in &mut early {
            s.write_all(&raw::frame_header(64 << 20)).unwrap();
        }
        for s in &mut early {
            assert!(
                closed_within(s, Duration::from_secs(2)),
                "a 64 MiB claim before HELLO was kept open"
            );
        }
        // After HELLO: the claim alone reserves nothing.
        let mut late: Vec<TcpStream> = (0..8).map(|_| raw(addr)).collect();
        for s in &mut late {
            s.write_all(&raw::hello("test:claims")).unwrap();
            s.write_all(&raw::frame_header(64 << 20)).unwrap();
            s.write_all(&[0u8; 1000]).unwrap();
        }
        late
    });
    let (watched, peak) = peak_rss_during(pid, async {
        let w = watch(addr, "bars", WINDOW).await;
        let held = attack.await.unwrap();
        (w, held)
    })
    .await;
    let (watched, held) = watched;
    let grown = peak - idle;
    eprintln!("16 connections claiming 64 MiB each: RSS +{grown:.1} MiB; viewer {watched:?} (base {base:?})");
    assert!(grown < 32.0, "the node reserved what peers claimed: +{grown:.1} MiB");
    watched.kept_up_with(&base).unwrap();
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completeness_budgets_are_clamped_to_the_nodes_maximum() {
    // 320x240 BGRA at 60 fps: 18 MB/s for a subscriber that never reads.
    let node = node_with(
        "limits-budget",
        "name = \"t:target\"\n[[source]]\nkind = \"test-pattern\"\nname = \"bars\"\nsize = \"320x240\"\nfps = 60\nformat = \"raw\"\n\
         [limits]\nmax_output_bytes = 16777216\nmax_output_frames = 1000\n",
    );
    let (addr, pid) = (node.addr, node.child.id());
    let base = watch(addr, "bars", WINDOW).await;
    let idle = rss_mb(pid);
    let greedy = tokio::task::spawn_blocking(move || {
        let mut s = raw(addr);
        s.write_all(&raw::hello("test:greedy")).unwrap();
        let params = SubscribeParams {
            mode: DeliveryMode::Completeness,
            max_frames: u32::MAX,
            max_bytes: u64::MAX,
            ..SubscribeParams::default()
        };
        let sub = Request::Subscribe(Subscribe::new("bars", params));
        s.write_all(&raw::request(sub, 0, 2)).unwrap();
        s // never read
    })
    .await
    .unwrap();
    let (watched, peak) = peak_rss_during(pid, async {
        let w = watch(addr, "bars", WINDOW).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        w
    })
    .await;
    let grown = peak - idle;
    eprintln!("a subscriber asking for an unbounded queue: RSS +{grown:.1} MiB; viewer {watched:?}");
    assert!(
        grown < 40.0,
        "the queue grew past the node's 16 MiB maximum: +{grown:.1} MiB"
    );
    // The budget it got is the node's maximum, and says so.
    let s = stats(addr).await;
    let out = s
        .outputs
        .iter()
        .find(|o| o.peer.contains("test:greedy"))
        .expect("the greedy output");
    assert_eq!(out.max_bytes, 16 << 20, "{out:?}");
    watched.kept_up_with(&base).unwrap();
    drop(greedy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_and_snapshots_that_are_never_read_hold_little() {
    let node = node_with(
        "limits-watch",
        "name = \"t:target\"\n[[source]]\nkind = \"test-pattern\"\nname = \"bars\"\nsize = \"640x360\"\nfps = 30\nformat = \"raw\"\n",
    );
    let (addr, pid) = (node.addr, node.child.id());
    let base = watch(addr, "bars", WINDOW).await;
    let idle = rss_mb(pid);
    let socks = tokio::task::spawn_blocking(move || {
        let mut socks = Vec::new();
        for _ in 0..4 {
            let mut s = raw(addr);
            s.write_all(&raw::hello("test:watcher")).unwrap();
            s.write_all(&raw::request(
                Request::WatchStatus(WatchStatus { interval_ms: 50 }),
                0,
                2,
            ))
            .unwrap();
            for i in 0..300u16 {
                let snap = Request::Snapshot(Name { name: "bars".into() });
                s.write_all(&raw::request(snap, 0, 3 + i)).unwrap();
            }
            socks.push(s); // never read
        }
        socks
    })
    .await
    .unwrap();
    let (watched, peak) = peak_rss_during(pid, async {
        let w = watch(addr, "bars", WINDOW).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        w
    })
    .await;
    let grown = peak - idle;
    eprintln!("4 watchers with 300 snapshots each, never read: RSS +{grown:.1} MiB; viewer {watched:?}");
    assert!(grown < 48.0, "unread answers piled up: +{grown:.1} MiB");
    watched.kept_up_with(&base).unwrap();
    drop(socks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_names_are_refused_and_stats_never_fail() {
    let node = node_with(
        "limits-names",
        "name = \"t:target\"\n[[source]]\nkind = \"test-pattern\"\nname = \"bars\"\nsize = \"160x120\"\nfps = 10\n\
         [limits]\nmax_subscriptions_per_connection = 64\n",
    );
    let addr = node.addr;
    // A HELLO with a 65,532-byte name is over what a node reads before
    // HELLO is done: the connection is closed at its header.
    let closed = tokio::task::spawn_blocking(move || {
        let mut s = raw(addr);
        let _ = s.write_all(&raw::hello(&"n".repeat(65_532)));
        closed_within(&mut s, Duration::from_secs(2))
    })
    .await
    .unwrap();
    assert!(closed, "a 65 KB HELLO was read");
    // One with a 300-byte name is answered with the reason.
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = raw(addr);
        s.write_all(&raw::hello(&"n".repeat(300))).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(
        answer.contains("255"),
        "no reason given for a 300-byte name: {answer:?}"
    );
    // Many subscriptions on one connection stop at the cap, with a reason.
    let mut c = client(addr, "test:many").await;
    let mut refused = None;
    for i in 0..200 {
        match c.subscribe("bars", SubscribeParams::default()).await {
            Ok(_) => {}
            Err(framewire_net::NetError::Remote { status, message, .. }) => {
                refused = Some((i, status, message));
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let (i, status, message) = refused.expect("the 200th subscription was still granted");
    assert_eq!((i, status), (64, Status::Busy), "{message}");
    // GET_STATS still answers, quickly.
    let t = Instant::now();
    let s = stats(addr).await;
    assert!(s.outputs.len() >= 64);
    assert!(t.elapsed() < Duration::from_secs(1), "GET_STATS took {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_floods_stop_at_the_edge_cap() {
    let node = node_with("limits-connect", "name = \"t:target\"\n[limits]\nmax_edges = 16\n");
    let mut c = client(node.addr, "test:flood").await;
    let mut busy = 0;
    for i in 0..200 {
        let req = Request::Connect(framewire_proto::control::Connect {
            upstream: "127.0.0.1:1".into(),
            stream: "nothing".into(),
            local_name: format!("e{i}"),
            params: SubscribeParams::default(),
            weight: 1,
            max_rate: 0,
        });
        match c.request(req).await {
            Ok(Response::Connect(_)) => {}
            Err(framewire_net::NetError::Remote { status, message, .. }) => {
                assert_eq!(status, Status::Busy, "{message}");
                assert!(message.contains("16"), "{message}");
                busy += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(busy, 200 - 16);
    assert_eq!(stats(node.addr).await.inputs.len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_names_are_escaped_in_the_log_and_input_events_are_quiet() {
    let node = node_with(
        "limits-log",
        "name = \"t:target\"\n[[source]]\nkind = \"test-pattern\"\nname = \"bars\"\nsize = \"160x120\"\nfps = 10\n",
    );
    let addr = node.addr;
    tokio::task::spawn_blocking(move || {
        let mut s = raw(addr);
        s.write_all(&raw::hello("evil\nERROR forged line")).unwrap();
        let _ = closed_within(&mut s, Duration::from_secs(2));
    })
    .await
    .unwrap();
    // Many input events on a subscription.
    let mut c = client(addr, "test:input").await;
    let ch = subscribe(&mut c, "bars", SubscribeParams::default()).await;
    for i in 0..2000u32 {
        let ev = framewire_proto::InputEvent {
            kind: framewire_proto::InputKind::MouseMove,
            timestamp_ns: 0,
            modifiers: framewire_proto::Modifiers(0),
            keysym: 0,
            scancode: 0,
            button: 0,
            x: (i % 160) as i32,
            y: (i % 120) as i32,
            wheel_x: 0,
            wheel_y: 0,
        };
        c.send(&framewire_proto::Message::InputEvent { channel: ch, event: ev })
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = node.log();
    assert!(
        !log.lines().any(|l| l.starts_with("ERROR forged")),
        "a peer forged a log line:\n{log}"
    );
    let input_lines = log.lines().filter(|l| l.contains("input event")).count();
    assert!(input_lines < 20, "{input_lines} log lines for 2000 input events");
}
