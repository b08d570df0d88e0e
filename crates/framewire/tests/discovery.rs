//! Discovery with real sockets and real `framewire` processes.
//!
//! Loopback tests: every test picks its own multicast group and port and
//! announces through 127.0.0.1 only, so tests never hear each other and
//! nothing leaves the machine. Namespace tests (`netns_*`) build their own
//! network namespaces, veth pairs and one bridge per site, run nodes inside
//! them with `ip netns exec`, and delete everything when done (even on
//! failure); they fail, saying why, when they cannot (not root, no
//! `ip netns`): CI runs them as root.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{BIN, Netns, spawn_in};
use common::{eventually_every, group_args, private_group};
use framewire_discovery::{Event, GoneReason, announcement};
use framewire_net::{DiscoveryConfig, DiscoveryHandle, MulticastConfig, NetError};
use framewire_proto::{FunctionFlags, Message, Status, SubscribeParams};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A listen-only discovery driver in this process, on loopback.
fn listener(group: Ipv4Addr, port: u16) -> DiscoveryHandle {
    let mut net = MulticastConfig::on(Ipv4Addr::LOCALHOST);
    net.group = group;
    net.port = port;
    DiscoveryHandle::start(&DiscoveryConfig::single(net), None).expect("listener starts")
}

/// Waits for an event matching `f`; the instant it arrived.
async fn wait_event(
    rx: &mut tokio::sync::broadcast::Receiver<(usize, Event)>,
    timeout: Duration,
    mut f: impl FnMut(&Event) -> bool,
) -> Option<(Instant, Event)> {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Ok((_, e))) if f(&e) => return Some((Instant::now(), e)),
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => return None,
        }
    }
}

fn appeared(name: &'static str) -> impl FnMut(&Event) -> bool {
    move |e| matches!(e, Event::Appeared(p) if p.name == name)
}

fn gone(name: &'static str) -> impl FnMut(&Event) -> bool {
    move |e| matches!(e, Event::Gone { peer, .. } if peer.name == name)
}

fn discover_json(group: Ipv4Addr, port: u16, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(BIN)
        .args(["discover", "--json", "--seconds", "1.5", "--group"])
        .arg(group.to_string())
        .arg("--port")
        .arg(port.to_string())
        .args(extra)
        .env("NO_COLOR", "1")
        .output()
        .expect("discover runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("a JSON array")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_one_host_see_each_other_and_a_goodbye_removes_at_once() {
    let (group, port) = private_group();
    let l = listener(group, port);
    let mut ev = l.subscribe();
    let g = group_args(group, port);
    let a = spawn_in(None, &[args(&["--name", "t:a"]), g.clone()].concat());
    let mut b = spawn_in(
        None,
        &[
            args(&["--name", "t:b", "--source", "test-pattern:bars,size=64x64,fps=5"]),
            g.clone(),
        ]
        .concat(),
    );
    let c = spawn_in(None, &[args(&["--name", "t:c"]), g.clone()].concat());
    for name in ["t:a", "t:b", "t:c"] {
        let mut seen = false;
        for (_, p) in l.peers().await {
            seen |= p.name == name;
        }
        if !seen {
            assert!(
                wait_event(
                    &mut ev,
                    Duration::from_secs(3),
                    |e| matches!(e, Event::Appeared(p) if p.name == name)
                )
                .await
                .is_some(),
                "{name} never appeared"
            );
        }
    }
    let peers = l.peers().await;
    let b_row = peers.iter().find(|(_, p)| p.name == "t:b").unwrap().1.clone();
    assert_eq!(b_row.addr, b.addr, "the table holds the node's TCP address");
    assert_eq!(b_row.qualified(), "0:t:b");
    assert!(b_row.function_flags.contains(FunctionFlags::SOURCE));
    // Every node sees the two others (multicast loopback between processes).
    for (n, others) in [(&a, ["0:t:b", "0:t:c"]), (&c, ["0:t:a", "0:t:b"])] {
        for o in others {
            assert!(
                n.wait_log(&format!("peer appeared leg=lan peer={o} "), Duration::from_secs(3)),
                "{o} not seen:\n{}",
                n.log()
            );
        }
    }
    // A clean exit says goodbye: gone at once, not after three intervals.
    let t = Instant::now();
    b.signal("TERM");
    let (at, e) = wait_event(&mut ev, Duration::from_secs(2), gone("t:b"))
        .await
        .expect("goodbye");
    assert!(matches!(
        e,
        Event::Gone {
            reason: GoneReason::Goodbye,
            ..
        }
    ));
    assert!(at - t < Duration::from_millis(900), "{:?}", at - t);
    assert_eq!(b.wait_exit(Duration::from_secs(5)), Some(0));
    l.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_shows_the_table_with_manual_peers_and_conflicts() {
    let (group, port) = private_group();
    let g = group_args(group, port);
    let _x1 = spawn_in(None, &[args(&["--name", "t:dup"]), g.clone()].concat());
    let _x2 = spawn_in(None, &[args(&["--name", "t:dup"]), g.clone()].concat());
    // A node without multicast, reachable over TCP only.
    let quiet = spawn_in(None, &args(&["--name", "t:quiet", "--discovery", "off"]));
    let target = quiet.addr.to_string();
    let rows = discover_json(group, port, &["--peer", &target, "--peer", "127.0.0.1:1"]);
    let dup: Vec<_> = rows.iter().filter(|r| r["name"] == "t:dup").collect();
    assert_eq!(dup.len(), 2, "{rows:#?}");
    assert!(dup.iter().all(|r| r["conflict"] == true), "both claimants are flagged");
    assert_ne!(dup[0]["addr"], dup[1]["addr"]);
    let q = rows
        .iter()
        .find(|r| r["name"] == "t:quiet")
        .expect("manual peer listed");
    assert_eq!(q["origin"], "manual");
    assert_eq!(q["address"], "0:t:quiet");
    assert_eq!(q["addr"], target);
    assert_eq!(q["reachable"], true);
    let dead = rows
        .iter()
        .find(|r| r["origin"] == "manual" && r["reachable"] == false)
        .expect("unreachable manual peer listed");
    assert!(dead["error"].as_str().is_some_and(|e| !e.is_empty()));
    // The human table says the same.
    let out = Command::new(BIN)
        .args(["discover", "--seconds", "1.2", "--group"])
        .arg(group.to_string())
        .arg("--port")
        .arg(port.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0:t:dup") && text.contains("CONFLICT"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_datagrams_are_counted_and_dropped_and_the_table_survives() {
    let (group, port) = private_group();
    let node = spawn_in(None, &[args(&["--name", "t:victim"]), group_args(group, port)].concat());
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sock.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    sock.set_multicast_loop_v4(true).unwrap();
    let to: socket2::SockAddr = SocketAddr::from((group, port)).into();
    let good = Message::NodeAnnouncement(announcement(
        "t:good",
        0,
        7999,
        FunctionFlags::SINK,
        Duration::from_secs(1),
    ))
    .to_vec()
    .unwrap();
    let mut trailing = good.clone();
    trailing.push(0);
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x10, 0x00],
        good[..good.len() - 3].to_vec(),
        trailing,
        vec![0xff; 9000],
        {
            let mut v = good.clone();
            v[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
            v
        },
    ];
    for _ in 0..5 {
        for g in &garbage {
            sock.send_to(g, &to).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    sock.send_to(&good, &to).unwrap();
    assert!(
        node.wait_log("peer appeared leg=lan peer=0:t:good ", Duration::from_secs(3)),
        "{}",
        node.log()
    );
    let log = node.log();
    assert!(log.contains("bad discovery datagram dropped"), "{log}");
    assert_eq!(
        log.matches("bad discovery datagram dropped").count(),
        1,
        "rate-limited: {log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_gateway_translates_site_ids_and_refuses_site_zero_on_a_link() {
    // Two groups on loopback stand for two networks.
    let (ga, pa) = private_group();
    let (gb, pb) = private_group();
    let (gl, pl) = private_group();
    let leg = |g: Ipv4Addr, p: u16, rest: &str| format!("interface=127.0.0.1,group={g},port={p},{rest}");
    let gw_node = spawn_in(
        None,
        &args(&[
            "--name",
            "gw:ab",
            "--gateway-leg",
            &leg(ga, pa, "site=1,label=a"),
            "--gateway-leg",
            &leg(gb, pb, "site=2,label=b"),
            "--gateway-leg",
            &leg(gl, pl, "link=true,label=wan"),
        ]),
    );
    let _cam = spawn_in(None, &[args(&["--name", "lab:cam"]), group_args(ga, pa)].concat());
    let view = spawn_in(None, &[args(&["--name", "home:view"]), group_args(gb, pb)].concat());
    // B sees A's node as site 1, at the gateway's port; the gateway itself as local.
    assert!(
        view.wait_log("peer appeared leg=lan peer=1:lab:cam ", Duration::from_secs(3)),
        "{}",
        view.log()
    );
    assert!(view.wait_log("peer=0:gw:ab ", Duration::from_secs(3)));
    assert!(
        !view.log().contains("peer=0:lab:cam"),
        "untranslated leak:\n{}",
        view.log()
    );
    let rows = discover_json(gl, pl, &["--interface", "127.0.0.1"]);
    let names: Vec<&str> = rows.iter().filter_map(|r| r["address"].as_str()).collect();
    assert!(
        names.contains(&"1:lab:cam") && names.contains(&"2:home:view"),
        "{names:?}"
    );
    assert!(
        names.contains(&"1:gw:ab"),
        "on a link the gateway carries its site id: {names:?}"
    );
    // Site 0 on the link: a protocol error, logged and dropped.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sock.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    let rogue = Message::NodeAnnouncement(announcement(
        "rogue:x",
        0,
        7000,
        FunctionFlags::SOURCE,
        Duration::from_secs(1),
    ))
    .to_vec()
    .unwrap();
    sock.send_to(&rogue, &SocketAddr::from((gl, pl)).into()).unwrap();
    assert!(
        gw_node.wait_log("discovery protocol error", Duration::from_secs(3)),
        "{}",
        gw_node.log()
    );
    assert!(gw_node.log().contains("site 0 on a cross-site link"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!view.log().contains("rogue:x"), "dropped, not forwarded");
}

/// A subscription through a gateway to another site's node that has no
/// such stream: the client gets that node's answer (not-found, with its
/// reason) at once, and the gateway keeps no edge for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_from_another_site_reaches_the_client_and_leaves_no_edge() {
    let (ga, pa) = private_group();
    let (gb, pb) = private_group();
    let leg = |g: Ipv4Addr, p: u16, rest: &str| format!("interface=127.0.0.1,group={g},port={p},{rest}");
    let gw = spawn_in(
        None,
        &args(&[
            "--name",
            "gw:ab",
            "--gateway-leg",
            &leg(ga, pa, "site=1,label=a"),
            "--gateway-leg",
            &leg(gb, pb, "site=2,label=b"),
        ]),
    );
    let _cam = spawn_in(
        None,
        &[
            args(&["--name", "lab:cam", "--source", "test-pattern:bars,size=160x120,fps=10"]),
            group_args(ga, pa),
        ]
        .concat(),
    );
    assert!(
        gw.wait_log(":lab:cam addr", Duration::from_secs(5)),
        "the gateway hears the camera node:\n{}",
        gw.log()
    );
    let mut client = common::client(gw.addr, "test:viewer").await;
    let t0 = Instant::now();
    let answer = client.subscribe("nope@1:lab:cam", SubscribeParams::default()).await;
    let took = t0.elapsed();
    match answer {
        Err(NetError::Remote { status, message, .. }) => {
            assert_eq!(status, Status::NotFound, "{message}");
            assert!(message.contains("no stream named `nope`"), "{message}");
        }
        other => panic!("expected the other site's not-found, got {other:?}\n{}", gw.log()),
    }
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    // No edge left redialling on the gateway.
    let report = common::status_report(gw.addr).await;
    assert!(report.edges.is_empty(), "edges left: {:?}", report.edges);
    std::thread::sleep(Duration::from_millis(1500));
    let report = common::status_report(gw.addr).await;
    assert!(report.edges.is_empty(), "edges came back: {:?}", report.edges);
    // A stream that exists there still comes through the same gateway.
    let channel = client
        .subscribe("bars@1:lab:cam", SubscribeParams::default())
        .await
        .expect("the other site's stream");
    assert!(channel > 0);
}

/// Start → appearance and SIGKILL → removal, measured against a listener
/// in this process, at the default 1 s interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_expiry_times() {
    let (group, port) = private_group();
    let l = listener(group, port);
    let mut ev = l.subscribe();
    let g = group_args(group, port);
    let mut appear = Vec::new();
    let mut expire = Vec::new();
    for i in 0..3 {
        let name: &'static str = ["t:m0", "t:m1", "t:m2"][i];
        let t0 = Instant::now();
        let mut n = spawn_in(None, &[args(&["--name", name]), g.clone()].concat());
        let (at, _) = wait_event(&mut ev, Duration::from_secs(3), appeared(name))
            .await
            .expect("appears");
        appear.push(at - t0);
        // Kill at a random phase of the announce cycle.
        tokio::time::sleep(Duration::from_millis(300 + 350 * i as u64)).await;
        let k = Instant::now();
        n.kill();
        let (at, e) = wait_event(&mut ev, Duration::from_secs(5), gone(name))
            .await
            .expect("expires");
        assert!(matches!(
            e,
            Event::Gone {
                reason: GoneReason::Expired,
                ..
            }
        ));
        expire.push(at - k);
    }
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let appear_ms: Vec<f64> = appear.iter().map(ms).collect();
    let expire_ms: Vec<f64> = expire.iter().map(ms).collect();
    println!("discovery: start (process spawn) -> appearance, ms: {appear_ms:.1?}");
    println!("discovery: SIGKILL -> removal at 1 s interval, ms: {expire_ms:.1?} (bound: 3 intervals = 3000 ms)");
    let mut sorted = appear_ms.clone();
    sorted.sort_by(f64::total_cmp);
    // Target: under 100 ms on one segment (the first announcement goes out
    // as the node starts). Measured from the process spawn, so this includes
    // exec and runtime start-up.
    assert!(sorted[1] < 100.0, "median appearance {:.1} ms", sorted[1]);
    for e in &expire_ms {
        assert!(*e <= 3000.0 + 150.0, "removed after {e:.0} ms: more than 3 intervals");
        assert!(*e >= 1900.0, "removed after {e:.0} ms: before 2 silent intervals");
    }
    l.close().await;
}

// ------------------------------------------------------------ namespaces

#[test]
fn netns_two_hosts_on_one_site_discover_each_other() {
    let mut ns = Netns::new();
    let sw = ns.add("sw").unwrap();
    let h1 = ns.add("h1").unwrap();
    let h2 = ns.add("h2").unwrap();
    ns.bridge(&sw, "br0");
    ns.plug(&sw, "br0", "p1", &h1, "eth0", "10.77.1.1/24");
    ns.plug(&sw, "br0", "p2", &h2, "eth0", "10.77.1.2/24");
    // Default discovery (224.0.0.251:5353) on the interface of --listen.
    let a = spawn_in(Some(&h1), &args(&["--name", "lab:one", "--listen", "10.77.1.1:7400"]));
    let b = spawn_in(Some(&h2), &args(&["--name", "lab:two", "--listen", "10.77.1.2:7400"]));
    assert!(
        a.wait_log(
            "peer appeared leg=lan peer=0:lab:two addr=10.77.1.2:7400",
            Duration::from_secs(5)
        ),
        "{}",
        a.log()
    );
    assert!(
        b.wait_log(
            "peer appeared leg=lan peer=0:lab:one addr=10.77.1.1:7400",
            Duration::from_secs(5)
        ),
        "{}",
        b.log()
    );
    // `framewire discover` inside a host sees both.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &h2,
            BIN,
            "discover",
            "--json",
            "--seconds",
            "1.5",
            "--interface",
            "10.77.1.2",
        ])
        .output()
        .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    let names: Vec<&str> = rows.iter().filter_map(|r| r["address"].as_str()).collect();
    assert!(
        names.contains(&"0:lab:one") && names.contains(&"0:lab:two"),
        "{names:?}"
    );
    drop((a, b));
}

#[test]
fn netns_two_sites_joined_by_a_gateway() {
    let mut ns = Netns::new();
    let sw = ns.add("sw").unwrap();
    let ha = ns.add("ha").unwrap();
    let hb = ns.add("hb").unwrap();
    let gw = ns.add("gw").unwrap();
    ns.bridge(&sw, "bra");
    ns.bridge(&sw, "brb");
    ns.plug(&sw, "bra", "pa", &ha, "eth0", "10.77.1.1/24");
    ns.plug(&sw, "brb", "pb", &hb, "eth0", "10.77.2.1/24");
    ns.plug(&sw, "bra", "pga", &gw, "eth0", "10.77.1.254/24");
    ns.plug(&sw, "brb", "pgb", &gw, "eth1", "10.77.2.254/24");
    let dir = common::temp_dir("netns-gateway");
    let out = dir.join("bars.mjpeg");
    let cam = spawn_in(
        Some(&ha),
        &args(&[
            "--name",
            "lab:cam",
            "--listen",
            "10.77.1.1:7400",
            "--source",
            "test-pattern:bars,size=160x120,fps=20",
        ]),
    );
    let gate = spawn_in(
        Some(&gw),
        &args(&[
            "--name",
            "gw:ab",
            "--listen",
            "0.0.0.0:7400",
            "--gateway-leg",
            "interface=10.77.1.254,site=1,label=a",
            "--gateway-leg",
            "interface=10.77.2.254,site=2,label=b",
        ]),
    );
    // The sink in site B asks the gateway for A's stream by its qualified name.
    let view = spawn_in(
        Some(&hb),
        &args(&[
            "--name",
            "home:view",
            "--listen",
            "10.77.2.1:7400",
            "--upstream",
            "10.77.2.254:7400/bars@1:lab:cam,as=bars",
            "--sink",
            &format!("file:bars,path={}", out.display()),
        ]),
    );
    // Each side sees the other's nodes under the translated site id, at the gateway.
    assert!(
        view.wait_log(
            "peer appeared leg=lan peer=1:lab:cam addr=10.77.2.254:7400",
            Duration::from_secs(5)
        ),
        "{}",
        view.log()
    );
    assert!(
        cam.wait_log(
            "peer appeared leg=lan peer=2:home:view addr=10.77.1.254:7400",
            Duration::from_secs(5)
        ),
        "{}",
        cam.log()
    );
    assert!(
        view.wait_log("peer=0:gw:ab ", Duration::from_secs(3)),
        "the gateway is a named node:\n{}",
        view.log()
    );
    // Each leg hears its own network only: no node comes back translated.
    assert!(!view.log().contains(":home:view addr"), "{}", view.log());
    assert!(!cam.log().contains(":lab:cam addr"), "{}", cam.log());
    assert!(!view.log().contains("peer=0:lab:cam") && !cam.log().contains("peer=0:home:view"));
    // Frames of A's source reach B's sink through the gateway.
    let mut jpegs = 0;
    eventually_every(Duration::from_secs(15), Duration::from_millis(100), || {
        let bytes = std::fs::read(&out).unwrap_or_default();
        jpegs = bytes.windows(2).filter(|w| w == &[0xff, 0xd8]).count();
        (jpegs >= 10).then_some(())
    });
    assert!(
        jpegs >= 10,
        "only {jpegs} frames reached site B\n--- gateway\n{}\n--- view\n{}",
        gate.log(),
        view.log()
    );
    assert!(gate.log().contains("gateway: pulling a stream for another site"));
}
