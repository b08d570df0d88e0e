//! Chaos on real links: a camera node, a relay and a viewer node in network
//! namespaces of their own, joined by a bridge; the camera's link shaped to
//! 20 Mbit/s, the relay's path to it through a proxy adding 10 ms and up
//! to 10 ms of jitter, 1 % of its packets dropped by nftables, its own link
//! shaped to 20 Mbit/s and now and then squeezed to 1; a controller
//! (in a fourth namespace) keeping the wanted graph (camera → relay →
//! viewer) wired. For CHAOS_SECONDS (60 by default; the 30-minute run is
//! `CHAOS_SECONDS=1800 cargo test --release -p framewire --test chaos --
//! --nocapture`, docs/reliability.md) links go down and up, the relay is
//! stopped (SIGSTOP) and killed, the viewer node is killed, each restarted
//! as a supervisor would. A subscriber on the viewer node watches it all.
//!
//! Checked: no panic in any log; every frame the subscriber missed while
//! every edge stayed connected was counted as a drop by one of the outputs
//! on its path; after each fault the frames come back within a bound; at
//! the end the controller's graph shows what the nodes report within 2 s.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::delay::impaired_proxy_at;
use common::netns::{Netns, run, spawn_in, spawn_in_netns};
use framewire_net::{Client, ClientIdentity};
use framewire_proto::control::{Name, Stats, StreamState, SubscribeParams};
use framewire_proto::{DeliveryMode, Message, Request, Response};

const CAM: &str = "10.79.0.1:7400";
const RELAY: &str = "10.79.0.2:7400";
const VIEW: &str = "10.79.0.3:7400";
const WAN: &str = "10.79.0.5:7400";
const WEB: &str = "127.0.0.1:7480";
/// Frames come back within this long after a link returns or a node is
/// stopped and continued (TCP's retransmission timer, not the edge's
/// 250 ms backoff, is what waits after a link was down).
const BACK_AFTER_FAULT: Duration = Duration::from_secs(5);
/// The watcher compares what it missed with what was counted this often.
const WINDOW: Duration = Duration::from_secs(1);
/// ... and after a node is killed and started again (the process starts,
/// the controller notices it and wires it again).
const BACK_AFTER_RESTART: Duration = Duration::from_secs(10);

fn now_ns() -> u64 {
    framewire_net::now_ns()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the watching subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    frames: u64,
    /// Capture time of the newest frame received.
    newest_capture_ns: u64,
    /// Windows of a second checked (every edge connected throughout) and
    /// skipped (a node did not answer, an edge reconnected).
    checked: u64,
    skipped: u64,
    missed: u64,
    counted: u64,
    /// Frames missed in gaps that began before a steady run's counting.
    unjudged: u64,
    unaccounted: Vec<String>,
    /// The fault made last, for messages.
    last_fault: String,
}

/// Drops counted on the watcher's path, and what tells a connection on it
/// was replaced: `None` when a node does not answer at once or a hop's
/// output is not there exactly once.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Path {
    drops: u64,
    /// Frames offered to each hop's output (they only grow while its
    /// connection lasts).
    offered: [u64; 3],
    reconnects: u64,
}

impl Path {
    /// The same connections as `base`: no reconnection, no output new.
    fn continues(&self, base: &Path) -> bool {
        self.reconnects == base.reconnects && self.offered.iter().zip(base.offered).all(|(n, b)| *n >= b)
    }
}

async fn stats_of(addr: &str) -> Option<Stats> {
    let fetch = async {
        let mut c = Client::connect(addr, &ClientIdentity::tool("chaos:stats"), Duration::from_millis(500))
            .await
            .ok()?;
        match c.request(Request::GetStats(Name { name: String::new() })).await.ok()? {
            Response::GetStats(s) => Some(s),
            _ => None,
        }
    };
    tokio::time::timeout(Duration::from_millis(800), fetch)
        .await
        .ok()
        .flatten()
}

/// The one output of `bars` to `peer`: (frames offered, drops).
fn hop(s: &Stats, peer: &str) -> Option<(u64, u64)> {
    let mut outs = s
        .outputs
        .iter()
        .filter(|o| o.stream == "bars" && o.peer.ends_with(peer));
    let o = outs.next()?;
    if outs.next().is_some() {
        return None;
    }
    Some((o.frames_in, o.drops.iter().map(|d| d.count).sum()))
}

fn reconnects(s: &Stats) -> u64 {
    s.inputs
        .iter()
        .filter(|i| i.stream == "bars")
        .map(|i| u64::from(i.reconnects))
        .sum()
}

async fn path() -> Option<Path> {
    let (view, relay, cam) = (stats_of(VIEW).await?, stats_of(RELAY).await?, stats_of(CAM).await?);
    let hops = [
        hop(&view, "chaos:watch")?,
        hop(&relay, "chaos:view")?,
        hop(&cam, "chaos:relay")?,
    ];
    Some(Path {
        drops: hops.iter().map(|h| h.1).sum(),
        offered: hops.map(|h| h.0),
        reconnects: reconnects(&view) + reconnects(&relay),
    })
}

/// Subscribes to the viewer node's `bars` (completeness), again after every
/// loss of the connection; every second compares the frames missed with
/// the drops counted on the path in the same time.
async fn watch(seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let base = path().await;
        let Ok(mut c) = Client::connect(VIEW, &ClientIdentity::tool("chaos:watch"), Duration::from_secs(1)).await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let params = SubscribeParams {
            mode: DeliveryMode::Completeness,
            max_frames: 64,
            ..SubscribeParams::default()
        };
        if c.subscribe("bars", params).await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        // Missed and counted since the steady run began. A gap is the
        // run's when the frame before it was captured after the run's
        // counting began: the frames in it were captured, so dropped, after
        // that. Frames dropped before it can reach the watcher seconds
        // later over a squeezed link (its socket buffers hold that much).
        let (mut base, mut steady) = (base, None::<(u64, u64)>);
        let (mut last, mut last_ns, mut missed) = (None::<u64>, 0u64, 0u64);
        let mut judged_from_ns = u64::MAX;
        let mut check = Instant::now() + WINDOW;
        while !stop.load(Ordering::SeqCst) {
            match tokio::time::timeout(Duration::from_millis(200), c.next_message()).await {
                Err(_) => {}
                Ok(Ok(Some(Message::VideoFrame(f)))) => {
                    if let Some(l) = last
                        && f.sequence > l
                    {
                        if last_ns >= judged_from_ns {
                            missed += f.sequence - l - 1;
                        } else {
                            seen.lock().unwrap().unjudged += f.sequence - l - 1;
                        }
                    }
                    if last.is_none_or(|l| f.sequence > l) {
                        last_ns = f.timestamp_ns;
                    }
                    last = Some(last.map_or(f.sequence, |l| l.max(f.sequence)));
                    let mut s = seen.lock().unwrap();
                    s.frames += 1;
                    s.newest_capture_ns = s.newest_capture_ns.max(f.timestamp_ns);
                }
                Ok(Ok(Some(_))) => {}
                Ok(_) => break,
            }
            if Instant::now() < check {
                continue;
            }
            check = Instant::now() + WINDOW;
            let now = path().await;
            let mut s = seen.lock().unwrap();
            match (base, now) {
                // Judged over a run of steady windows, from the end of its
                // first: a gap from a reconnection, or from a drop, reaches
                // the watcher a moment after the event itself.
                (Some(b), Some(n)) if n.continues(&b) && steady.is_some() => {
                    let (m0, c0) = steady.unwrap_or_default();
                    let (m, c) = (m0 + missed, c0 + n.drops.saturating_sub(b.drops));
                    s.checked += 1;
                    s.missed += missed;
                    s.counted += n.drops.saturating_sub(b.drops);
                    if m > c {
                        let after = s.last_fault.clone();
                        s.unaccounted
                            .push(format!("{m} missed, {c} counted ({b:?} → {n:?}; after: {after})"));
                    }
                    steady = Some((m, c));
                }
                (Some(b), Some(n)) if n.continues(&b) => {
                    s.skipped += 1;
                    steady = Some((0, 0));
                    judged_from_ns = now_ns();
                }
                // A node did not answer or a connection on the path is new:
                // frames lost with a connection are not drops.
                _ => {
                    s.skipped += 1;
                    steady = None;
                    judged_from_ns = u64::MAX;
                }
            }
            base = now;
            missed = 0;
        }
    }
}

fn node(name: &str, listen: &str) -> Vec<String> {
    ["--name", name, "--listen", listen, "--discovery", "off"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// Waits until the watcher has a frame captured after `since_ns`; how long
/// after `since` that was.
fn back(seen: &Mutex<Seen>, since: Instant, since_ns: u64, limit: Duration) -> Option<Duration> {
    while since.elapsed() < limit {
        if seen.lock().unwrap().newest_capture_ns > since_ns {
            return Some(since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn chaos_on_shaped_lossy_links_with_kills_and_a_reconciling_controller() {
    let secs: u64 = std::env::var("CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ns() | 1);
    eprintln!("chaos: {secs} s, seed {seed} (CHAOS_SEED repeats the faults)");
    let mut rng = Rng(seed);

    let mut ns = Netns::new();
    let [sw, hcam, hrelay, hview, hctl, wan] =
        ["sw", "cam", "relay", "view", "ctl", "wan"].map(|r| ns.add(r).expect("a namespace"));
    ns.bridge(&sw, "br0");
    ns.plug(&sw, "br0", "pcam", &hcam, "eth0", "10.79.0.1/24");
    ns.plug(&sw, "br0", "prelay", &hrelay, "eth0", "10.79.0.2/24");
    ns.plug(&sw, "br0", "pview", &hview, "eth0", "10.79.0.3/24");
    ns.plug(&sw, "br0", "pctl", &hctl, "eth0", "10.79.0.4/24");
    ns.plug(&sw, "br0", "pwan", &wan, "eth0", "10.79.0.5/24");
    ns.shape(&hcam, "eth0", "20mbit");
    ns.shape(&hrelay, "eth0", "20mbit");
    // The relay reaches the camera through the impairing proxy in `wan`,
    // and 1 % of what comes back to it is lost.
    ns.redirect(&hrelay, "10.79.0.1", WAN);
    ns.nft(
        &hrelay,
        &[
            "add", "chain", "ip", "fw", "in", "{", "type", "filter", "hook", "input", "priority", "0", ";", "}",
        ],
    );
    ns.nft(
        &hrelay,
        &[
            "add",
            "rule",
            "ip",
            "fw",
            "in",
            "ip",
            "saddr",
            "10.79.0.5",
            "numgen",
            "random",
            "mod",
            "100",
            "<",
            "1",
            "drop",
        ],
    );
    spawn_in_netns(&wan, || {
        impaired_proxy_at(
            WAN.parse().unwrap(),
            CAM.parse().unwrap(),
            Duration::from_millis(10),
            Duration::from_millis(10),
            None,
        )
    })
    .join()
    .unwrap();

    let dir = common::temp_dir("chaos");
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::write(
        dir.join("state/wanted.toml"),
        "[[edge]]\nfrom = \"chaos:cam\"\nstream = \"bars\"\nto = \"chaos:relay\"\n\n\
         [[edge]]\nfrom = \"chaos:relay\"\nstream = \"bars\"\nto = \"chaos:view\"\n",
    )
    .unwrap();
    let cam_args = [
        node("chaos:cam", CAM),
        vec!["--source".into(), "test-pattern:bars,size=320x240,fps=25".into()],
    ]
    .concat();
    let relay_args = node("chaos:relay", RELAY);
    let view_args = node("chaos:view", VIEW);
    let mut ctl_args = node("chaos:ctl", "10.79.0.4:7400");
    ctl_args.extend(["--controller", "--web", WEB, "--state-dir"].map(str::to_owned));
    ctl_args.push(dir.join("state").display().to_string());
    for n in [CAM, RELAY, VIEW] {
        ctl_args.extend(["--controller-node".to_owned(), n.to_owned()]);
    }
    let cam = spawn_in(Some(&hcam), &cam_args);
    let mut relay = spawn_in(Some(&hrelay), &relay_args);
    let mut view = spawn_in(Some(&hview), &view_args);
    let ctl = spawn_in(Some(&hctl), &ctl_args);
    // Logs of the nodes killed on the way, for the panic check.
    let mut gone: Vec<String> = Vec::new();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, stop) = (seen.clone(), stop.clone());
        spawn_in_netns(&hview, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(watch(seen, stop));
        })
    };
    let start = Instant::now();
    let first = back(&seen, start, 0, Duration::from_secs(20));
    assert!(
        first.is_some(),
        "no frame reached the viewer node through the controller's edges"
    );
    eprintln!("chaos: frames through camera → relay → viewer after {first:?}");

    let mut recoveries: Vec<(String, Duration)> = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() + Duration::from_secs(8) < end {
        std::thread::sleep(Duration::from_millis(3000 + rng.next(4000)));
        let (what, limit) = match rng.next(6) {
            0 => {
                let port = if rng.next(2) == 0 { "pcam" } else { "pview" };
                run(&["ip", "-n", &sw, "link", "set", port, "down"]).unwrap();
                std::thread::sleep(Duration::from_millis(1000 + rng.next(2000)));
                run(&["ip", "-n", &sw, "link", "set", port, "up"]).unwrap();
                (format!("link {port} down and up"), BACK_AFTER_FAULT)
            }
            1 => {
                relay.signal("STOP");
                std::thread::sleep(Duration::from_millis(1000 + rng.next(2000)));
                relay.signal("CONT");
                ("relay stopped and continued".to_owned(), BACK_AFTER_FAULT)
            }
            2 => {
                relay.kill();
                gone.push(relay.log());
                std::thread::sleep(Duration::from_millis(500));
                relay = spawn_in(Some(&hrelay), &relay_args);
                ("relay killed and started".to_owned(), BACK_AFTER_RESTART)
            }
            3 => {
                view.kill();
                gone.push(view.log());
                std::thread::sleep(Duration::from_millis(500));
                view = spawn_in(Some(&hview), &view_args);
                ("viewer node killed and started".to_owned(), BACK_AFTER_RESTART)
            }
            4 => {
                // The relay's link squeezed below the stream's rate: its
                // output to the viewer node drops (and counts) frames
                // while every connection stays up.
                let tbf = |rate: &str| {
                    run(&[
                        "ip", "netns", "exec", &hrelay, "tc", "qdisc", "change", "dev", "eth0", "root", "tbf", "rate",
                        rate, "burst", "32kb", "latency", "100ms",
                    ])
                    .unwrap()
                };
                tbf("1mbit");
                std::thread::sleep(Duration::from_millis(2000 + rng.next(2000)));
                tbf("20mbit");
                ("relay's link squeezed to 1 Mbit/s".to_owned(), BACK_AFTER_FAULT)
            }
            _ => {
                // Both: the camera's link down while the relay is stopped.
                run(&["ip", "-n", &sw, "link", "set", "pcam", "down"]).unwrap();
                relay.signal("STOP");
                std::thread::sleep(Duration::from_millis(1500));
                run(&["ip", "-n", &sw, "link", "set", "pcam", "up"]).unwrap();
                relay.signal("CONT");
                ("camera link down with the relay stopped".to_owned(), BACK_AFTER_FAULT)
            }
        };
        seen.lock().unwrap().last_fault = what.clone();
        let (at, at_ns) = (Instant::now(), now_ns());
        match back(&seen, at, at_ns, limit) {
            Some(d) => recoveries.push((what, d)),
            None => panic!(
                "frames did not come back within {limit:?} after: {what}\nrelay:\n{}\nview:\n{}\nctl:\n{}",
                relay.log(),
                view.log(),
                ctl.log()
            ),
        }
    }

    // The controller's graph against what the nodes report, once both
    // edges report live.
    let live_at = {
        let t0 = Instant::now();
        loop {
            let live = spawn_in_netns(&hview, move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let (Some(v), Some(r)) = (stats_of(VIEW).await, stats_of(RELAY).await) else {
                        return false;
                    };
                    [v, r].iter().all(|s| {
                        s.inputs
                            .iter()
                            .any(|i| i.stream == "bars" && i.state == StreamState::Live)
                    })
                })
            })
            .join()
            .unwrap();
            if live {
                break Instant::now();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the nodes' edges are not live at the end"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let agreed = loop {
        let graph = spawn_in_netns(&hctl, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(framewire_web::client::request(
                &format!("http://{WEB}"),
                "GET",
                "/api/graph",
                &[],
                b"",
                Duration::from_secs(2),
            ))
            .ok()
            .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        })
        .join()
        .unwrap();
        let live = |from: &str, to: &str| {
            graph.as_ref().and_then(|g| g["edges"].as_array()).is_some_and(|edges| {
                edges.iter().any(|e| {
                    e["upstream"] == from && e["downstream"] == to && e["stream"] == "bars" && e["state"] == "live"
                })
            })
        };
        if live("chaos:cam", "chaos:relay") && live("chaos:relay", "chaos:view") {
            break live_at.elapsed();
        }
        assert!(
            live_at.elapsed() < Duration::from_secs(2),
            "the controller's graph does not show the live edges 2 s after the nodes do: {graph:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    let s = seen.lock().unwrap();
    for (what, d) in &recoveries {
        eprintln!("chaos: {what}: frames again after {} ms", d.as_millis());
    }
    eprintln!(
        "chaos: {} faults; {} frames; {} windows checked, {} skipped (a node away or an edge reconnected); \
         {} frames missed, {} counted as drops on the path ({} missed in gaps that began before a run, not judged); \
         controller agreed {} ms after the nodes",
        recoveries.len(),
        s.frames,
        s.checked,
        s.skipped,
        s.missed,
        s.counted,
        s.unjudged,
        agreed.as_millis()
    );
    assert!(
        recoveries.len() >= (secs as usize / 15).max(3),
        "too few faults: {recoveries:?}"
    );
    assert!(s.checked >= 3, "too few windows checked: {s:?}");
    assert!(
        s.unaccounted.is_empty(),
        "frames missed and not counted: {:?}",
        s.unaccounted
    );
    for log in gone.iter().chain([&cam.log(), &relay.log(), &view.log(), &ctl.log()]) {
        assert!(!log.contains("panicked"), "{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
