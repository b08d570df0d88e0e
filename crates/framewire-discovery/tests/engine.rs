//! The engine under simulated time: announce, expiry, goodbye, conflicts,
//! table limit, hostile datagrams, manual peers, gateway translation.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use framewire_discovery::{
    Config, Discovery, Event, FORWARD_BURST, FORWARD_RATE, Gateway, GatewayError, GoneReason, LegConfig, LegKind,
    MAX_PEER_INTERVAL, Origin, ProbeReply, announcement, interval_extension, translate,
};
use framewire_proto::{FunctionFlags, Message, NodeAnnouncement};

const SEC: Duration = Duration::from_secs(1);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ann(name: &str, site: u16, port: u16) -> NodeAnnouncement {
    announcement(name, site, port, FunctionFlags::SOURCE, SEC)
}

fn datagram(m: Message) -> Vec<u8> {
    m.to_vec().unwrap()
}

fn events(d: &mut Discovery) -> Vec<Event> {
    std::iter::from_fn(|| d.poll_event()).collect()
}

fn transmits(d: &mut Discovery) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| d.poll_transmit()).map(|t| t.payload).collect()
}

/// Several engines on one simulated segment; every datagram reaches every
/// other engine at once. Time advances to the earliest deadline.
struct Segment {
    nodes: Vec<(Discovery, SocketAddr)>,
    now: Instant,
}

impl Segment {
    fn deliver(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(t) = self.nodes[i].0.poll_transmit() {
                    moved = true;
                    let from = self.nodes[i].1;
                    for (j, (d, _)) in self.nodes.iter_mut().enumerate() {
                        if j != i {
                            d.handle_input(&t.payload, from, self.now);
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs until `until`, always waking the earliest engine.
    fn run_until(&mut self, until: Instant) {
        loop {
            self.deliver();
            let next = self.nodes.iter().filter_map(|(d, _)| d.poll_timeout()).min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    for (d, _) in &mut self.nodes {
                        if d.poll_timeout().is_some_and(|x| x <= self.now) {
                            d.handle_timeout(self.now);
                        }
                    }
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
    }
}

#[test]
fn announces_at_start_then_every_interval() {
    let t0 = Instant::now();
    let mut d = Discovery::new(Config::new(), Some(ann("lab:cam", 0, 7400)), t0);
    assert_eq!(d.poll_timeout(), Some(t0), "first announcement due at start");
    d.handle_timeout(t0);
    let sent = transmits(&mut d);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        framewire_proto::Decoder::new()
            .decode(&mut bytes::BytesMut::from(&sent[0][..]))
            .unwrap(),
        Some(Message::NodeAnnouncement(ann("lab:cam", 0, 7400)))
    );
    assert_eq!(d.poll_timeout(), Some(t0 + SEC));
    d.handle_timeout(t0 + SEC / 2);
    assert!(transmits(&mut d).is_empty(), "nothing before the interval");
    d.handle_timeout(t0 + SEC);
    assert_eq!(transmits(&mut d).len(), 1);
    // Woken very late: one announcement, not a burst, and the pace realigns.
    d.handle_timeout(t0 + 10 * SEC);
    assert_eq!(transmits(&mut d).len(), 1);
    assert_eq!(d.poll_timeout(), Some(t0 + 11 * SEC));
}

#[test]
fn peers_appear_and_expire_after_three_silent_intervals() {
    let t0 = Instant::now();
    let cfg = Config::new();
    let mut seg = Segment {
        nodes: vec![
            (
                Discovery::new(cfg.clone(), Some(ann("lab:a", 0, 7400)), t0),
                addr("10.0.0.1:5353"),
            ),
            (
                Discovery::new(cfg.clone(), Some(ann("lab:b", 0, 7400)), t0),
                addr("10.0.0.2:5353"),
            ),
            (
                Discovery::new(cfg, Some(ann("lab:c", 0, 7401)), t0),
                addr("10.0.0.3:5353"),
            ),
        ],
        now: t0,
    };
    seg.run_until(t0);
    for (d, _) in &mut seg.nodes {
        let ev = events(d);
        assert_eq!(
            ev.iter().filter(|e| matches!(e, Event::Appeared(_))).count(),
            2,
            "{ev:?}"
        );
        assert_eq!(d.peers().count(), 2);
    }
    // Run for a minute: nobody expires while everyone announces.
    seg.run_until(t0 + 60 * SEC);
    for (d, _) in &mut seg.nodes {
        assert!(events(d).is_empty());
        assert_eq!(d.counters().own, 0, "own datagrams are not looped back here");
    }
    // c dies at t0+60.5 (its last announcement was at t0+60).
    let (c, _) = seg.nodes.pop().unwrap();
    drop(c);
    let died = t0 + 60 * SEC + SEC / 2;
    seg.run_until(died);
    let mut gone_at = None;
    while gone_at.is_none() {
        let t = seg.nodes[0].0.poll_timeout().unwrap();
        seg.run_until(t);
        for e in events(&mut seg.nodes[0].0) {
            if let Event::Gone { peer, reason } = e {
                assert_eq!((peer.qualified().as_str(), reason), ("0:lab:c", GoneReason::Expired));
                gone_at = Some(seg.now);
            }
        }
    }
    let gone_at = gone_at.unwrap();
    assert_eq!(gone_at, t0 + 63 * SEC, "three intervals after the last announcement");
    assert!(gone_at - died <= 3 * SEC);
    assert_eq!(seg.nodes[0].0.peers().count(), 1);
}

#[test]
fn expiry_follows_the_peers_advertised_interval() {
    let t0 = Instant::now();
    let mut d = Discovery::new(Config::new(), None, t0);
    let slow = announcement("lab:slow", 0, 7400, FunctionFlags::SINK, 5 * SEC);
    d.handle_input(&datagram(Message::NodeAnnouncement(slow)), addr("10.0.0.9:5353"), t0);
    d.handle_timeout(t0 + 14 * SEC);
    assert_eq!(d.peers().count(), 1, "a 5 s peer lives 15 s");
    d.handle_timeout(t0 + 15 * SEC);
    assert_eq!(d.peers().count(), 0);
    // Without the extension: our own interval.
    let mut plain = ann("lab:plain", 0, 7400);
    plain.extensions = bytes::Bytes::new();
    d.handle_input(&datagram(Message::NodeAnnouncement(plain)), addr("10.0.0.9:5353"), t0);
    d.handle_timeout(t0 + 3 * SEC);
    assert_eq!(d.peers().count(), 0);
}

#[test]
fn goodbye_drops_at_once_and_close_says_goodbye() {
    let t0 = Instant::now();
    let mut a = Discovery::new(Config::new(), Some(ann("lab:a", 0, 7400)), t0);
    let mut b = Discovery::new(Config::new(), None, t0);
    a.handle_timeout(t0);
    for t in transmits(&mut a) {
        b.handle_input(&t, addr("10.0.0.1:1"), t0);
    }
    assert!(matches!(events(&mut b)[..], [Event::Appeared(_)]));
    a.close();
    let sent = transmits(&mut a);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        u16::from_le_bytes([sent[0][0], sent[0][1]]),
        0x0011,
        "a goodbye, not an announcement"
    );
    for t in &sent {
        b.handle_input(t, addr("10.0.0.1:1"), t0 + SEC / 10);
    }
    match &events(&mut b)[..] {
        [Event::Gone { peer, reason }] => {
            assert_eq!(peer.name, "lab:a");
            assert_eq!(*reason, GoneReason::Goodbye);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b.peers().count(), 0);
    // A closed engine announces nothing more.
    a.handle_timeout(t0 + 5 * SEC);
    assert!(transmits(&mut a).is_empty());
    // A goodbye for an unknown peer changes nothing.
    b.handle_input(&sent[0], addr("10.0.0.1:1"), t0 + SEC);
    assert!(events(&mut b).is_empty());
}

#[test]
fn two_nodes_claiming_one_name_are_a_conflict_not_a_merge() {
    let t0 = Instant::now();
    let mut d = Discovery::new(Config::new(), None, t0);
    let a = datagram(Message::NodeAnnouncement(ann("lab:cam", 0, 7400)));
    d.handle_input(&a, addr("10.0.0.1:5353"), t0);
    d.handle_input(&a, addr("10.0.0.2:5353"), t0);
    let ev = events(&mut d);
    assert_eq!(ev.len(), 3, "{ev:?}");
    match &ev[2] {
        Event::Conflict { site_id, name, addrs } => {
            assert_eq!((*site_id, name.as_str()), (0, "lab:cam"));
            assert_eq!(addrs, &[addr("10.0.0.1:7400"), addr("10.0.0.2:7400")]);
        }
        other => panic!("{other:?}"),
    }
    let peers: Vec<_> = d.peers().collect();
    assert_eq!(peers.len(), 2, "both kept");
    assert!(peers.iter().all(|p| p.conflict));
    // The same name in another site is not a conflict.
    d.handle_input(
        &datagram(Message::NodeAnnouncement(ann("lab:cam", 2, 7400))),
        addr("10.0.0.3:5353"),
        t0,
    );
    assert!(matches!(events(&mut d)[..], [Event::Appeared(_)]));
    assert!(!d.find(2, "lab:cam").next().unwrap().conflict);
    // One claimant leaves: the other is no longer in conflict.
    d.handle_input(
        &datagram(Message::NodeGoodbye(ann("lab:cam", 0, 7400))),
        addr("10.0.0.2:5353"),
        t0,
    );
    let left: Vec<_> = d.find(0, "lab:cam").collect();
    assert_eq!(left.len(), 1);
    assert!(!left[0].conflict);
}

#[test]
fn changed_flags_are_an_event_refresh_is_not() {
    let t0 = Instant::now();
    let mut d = Discovery::new(Config::new(), None, t0);
    let from = addr("10.0.0.1:5353");
    d.handle_input(&datagram(Message::NodeAnnouncement(ann("lab:cam", 0, 7400))), from, t0);
    d.handle_input(
        &datagram(Message::NodeAnnouncement(ann("lab:cam", 0, 7400))),
        from,
        t0 + SEC,
    );
    assert_eq!(events(&mut d).len(), 1);
    let mut changed = ann("lab:cam", 0, 7400);
    changed.function_flags = FunctionFlags::SOURCE | FunctionFlags::SINK;
    d.handle_input(&datagram(Message::NodeAnnouncement(changed)), from, t0 + 2 * SEC);
    match &events(&mut d)[..] {
        [Event::Changed(p)] => assert_eq!(p.function_flags, FunctionFlags::SOURCE | FunctionFlags::SINK),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.peers().next().unwrap().last_seen, t0 + 2 * SEC);
}

#[test]
fn own_announcements_heard_back_are_ignored() {
    let t0 = Instant::now();
    let mut d = Discovery::new(Config::new(), Some(ann("lab:a", 0, 7400)), t0);
    d.handle_timeout(t0);
    for t in transmits(&mut d) {
        d.handle_input(&t, addr("127.0.0.1:5353"), t0);
    }
    assert_eq!(d.peers().count(), 0);
    assert_eq!(d.counters().own, 1);
}

#[test]
fn a_storm_of_names_is_bounded_and_reported_once() {
    let t0 = Instant::now();
    // One address per name here: the per-address share is another test's.
    let mut d = Discovery::new(
        Config::new().with_max_peers(100).with_max_peers_per_address(usize::MAX),
        None,
        t0,
    );
    for i in 0..10_000u32 {
        let a = ann(&format!("storm:{i}"), 0, 7400);
        d.handle_input(&datagram(Message::NodeAnnouncement(a)), addr("10.0.0.66:5353"), t0);
    }
    assert_eq!(d.peers().count(), 100);
    assert_eq!(d.counters().table_full, 9_900);
    let ev = events(&mut d);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::TableFull { limit: 100 }))
            .count(),
        1
    );
    // Known peers still refresh while full.
    d.handle_input(
        &datagram(Message::NodeAnnouncement(ann("storm:5", 0, 7400))),
        addr("10.0.0.66:5353"),
        t0 + 2 * SEC,
    );
    d.handle_timeout(t0 + 3 * SEC);
    assert_eq!(d.peers().count(), 1, "the storm expired, the refreshed one stayed");
    // Room again: a new episode is reported again.
    for i in 0..200u32 {
        let a = ann(&format!("again:{i}"), 0, 7400);
        d.handle_input(
            &datagram(Message::NodeAnnouncement(a)),
            addr("10.0.0.66:5353"),
            t0 + 3 * SEC,
        );
    }
    assert_eq!(
        events(&mut d)
            .iter()
            .filter(|e| matches!(e, Event::TableFull { .. }))
            .count(),
        1
    );
}

#[test]
fn malformed_truncated_oversize_and_foreign_datagrams_are_counted_and_dropped() {
    let t0 = Instant::now();
    let mut d = Discovery::new(Config::new(), None, t0);
    let from = addr("10.0.0.7:5353");
    let good = datagram(Message::NodeAnnouncement(ann("lab:cam", 0, 7400)));
    d.handle_input(&[], from, t0); // truncated
    d.handle_input(&good[..5], from, t0); // truncated header
    d.handle_input(&good[..good.len() - 1], from, t0); // truncated payload
    let mut trailing = good.clone();
    trailing.push(0);
    d.handle_input(&trailing, from, t0); // malformed: bytes after the message
    let mut bad_len = good.clone();
    bad_len[8 + 7] = 200; // name_len beyond the payload
    d.handle_input(&bad_len, from, t0); // malformed
    let mut bad_utf8 = good.clone();
    bad_utf8[8 + 8] = 0xff; // first byte of the name
    d.handle_input(&bad_utf8, from, t0); // malformed
    d.handle_input(&vec![0u8; 5000], from, t0); // oversize
    let frame = datagram(Message::AudioFrame {
        channel: 1,
        payload: bytes::Bytes::from_static(b"x"),
    });
    d.handle_input(&frame, from, t0); // another type
    let mut huge = good.clone();
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    d.handle_input(&huge, from, t0); // truncated (declares 4 GiB)
    let c = d.counters();
    assert_eq!(
        (c.received, c.truncated, c.malformed, c.oversize, c.other_types),
        (9, 4, 3, 1, 1)
    );
    assert_eq!(d.peers().count(), 0);
    assert!(events(&mut d).is_empty());
    // The table is not poisoned: a good one still lands.
    d.handle_input(&good, from, t0);
    assert_eq!(d.peers().count(), 1);
}

#[test]
fn manual_peers_share_the_table() {
    let t0 = Instant::now();
    let mut d = Discovery::new(Config::new(), None, t0);
    d.add_manual("far.example:7400", addr("192.0.2.50:7400"), t0);
    let p = d.peers().next().unwrap().clone();
    assert!(matches!(p.origin, Origin::Manual { reachable: false, .. }));
    assert!(events(&mut d).is_empty());
    let reply = ProbeReply {
        name: "far:cam".into(),
        site_id: 0,
        function_flags: FunctionFlags::SOURCE,
        protocol_version: 1,
        addr: addr("192.0.2.50:7400"),
    };
    d.handle_probe("far.example:7400", Ok(reply.clone()), t0);
    assert!(matches!(&events(&mut d)[..], [Event::Appeared(p)] if p.name == "far:cam"));
    d.handle_probe("far.example:7400", Ok(reply), t0 + SEC);
    assert!(events(&mut d).is_empty());
    d.handle_probe("far.example:7400", Err("connection refused".into()), t0 + 2 * SEC);
    assert!(matches!(
        &events(&mut d)[..],
        [Event::Gone {
            reason: GoneReason::Unreachable,
            ..
        }]
    ));
    // Still listed, marked unreachable; manual peers never expire by silence.
    d.handle_timeout(t0 + 100 * SEC);
    let p = d.peers().next().unwrap();
    assert!(matches!(&p.origin, Origin::Manual { reachable: false, error: Some(e), .. } if e == "connection refused"));
}

// ---------------------------------------------------------------- gateway

fn site(label: &str, site_id: u16) -> LegConfig {
    LegConfig {
        label: label.into(),
        kind: LegKind::Site { site_id },
    }
}

fn link(label: &str) -> LegConfig {
    LegConfig {
        label: label.into(),
        kind: LegKind::Link,
    }
}

#[test]
fn translation_rules() {
    let a = LegKind::Site { site_id: 1 };
    let b = LegKind::Site { site_id: 2 };
    assert_eq!(translate(0, a, b), Some(1), "a local node of A is site 1 in B");
    assert_eq!(translate(7, a, b), None, "already translated: one hop");
    assert_eq!(translate(0, a, LegKind::Link), Some(1));
    assert_eq!(translate(3, LegKind::Link, b), Some(3), "from a link: kept");
    assert_eq!(
        translate(2, LegKind::Link, b),
        None,
        "B's own nodes never come back into B"
    );
    assert_eq!(translate(0, LegKind::Link, b), None);
}

#[test]
fn gateway_config_is_checked() {
    let t0 = Instant::now();
    let me = ann("gw:ab", 0, 7400);
    let cfg = Config::new();
    assert_eq!(
        Gateway::new(cfg.clone(), Some(me.clone()), vec![], t0).unwrap_err(),
        GatewayError::NoLegs
    );
    assert!(matches!(
        Gateway::new(cfg.clone(), Some(me.clone()), vec![site("a", 0), site("b", 2)], t0),
        Err(GatewayError::SiteZero(_))
    ));
    assert!(matches!(
        Gateway::new(cfg.clone(), Some(me.clone()), vec![site("a", 2), site("b", 2)], t0),
        Err(GatewayError::DuplicateSite(..))
    ));
    assert!(matches!(
        Gateway::new(cfg.clone(), Some(me.clone()), vec![link("l"), link("m")], t0),
        Err(GatewayError::LinkOnly)
    ));
    let one = Gateway::new(cfg, Some(me), vec![site("lan", 0)], t0).unwrap();
    assert!(!one.is_gateway(), "one leg: an ordinary node");
}

fn drain_gw(g: &mut Gateway) -> Vec<(usize, Vec<u8>)> {
    std::iter::from_fn(|| g.poll_transmit())
        .map(|(l, t)| (l, t.payload))
        .collect()
}

fn decode(b: &[u8]) -> Message {
    framewire_proto::Decoder::new()
        .decode(&mut bytes::BytesMut::from(b))
        .unwrap()
        .unwrap()
}

#[test]
fn gateway_forwards_each_sites_nodes_under_its_site_id() {
    let t0 = Instant::now();
    let cfg = Config::new();
    let mut gw = Gateway::new(
        cfg.clone(),
        Some(ann("gw:ab", 0, 7500)),
        vec![site("a", 1), site("b", 2)],
        t0,
    )
    .unwrap();
    gw.handle_timeout(t0);
    let first = drain_gw(&mut gw);
    // The gateway is a named node on both legs, local (site 0) on each.
    assert_eq!(first.len(), 2);
    for (_, d) in &first {
        assert!(matches!(decode(d), Message::NodeAnnouncement(a) if a.name == "gw:ab" && a.site_id == 0));
    }
    // lab:cam (site A) and home:view (site B) announce locally.
    gw.handle_input(
        0,
        &datagram(Message::NodeAnnouncement(ann("lab:cam", 0, 7400))),
        addr("10.1.0.2:5353"),
        t0,
    );
    gw.handle_input(
        1,
        &datagram(Message::NodeAnnouncement(ann("home:view", 0, 7400))),
        addr("10.2.0.2:5353"),
        t0,
    );
    let out = drain_gw(&mut gw);
    assert_eq!(out.len(), 2, "{out:?}");
    for (leg, d) in &out {
        let Message::NodeAnnouncement(a) = decode(d) else {
            panic!()
        };
        assert_eq!(a.tcp_port, 7500, "streams are served by the gateway");
        match leg {
            1 => assert_eq!((a.name.as_str(), a.site_id), ("lab:cam", 1)),
            0 => assert_eq!((a.name.as_str(), a.site_id), ("home:view", 2)),
            _ => panic!(),
        }
    }
    // The forwarded announcements heard back on their leg are not peers.
    for (leg, d) in &out {
        gw.handle_input(*leg, d, addr("10.9.9.9:5353"), t0);
    }
    assert!(drain_gw(&mut gw).is_empty(), "no loop");
    assert_eq!(gw.engine(1).unwrap().counters().own, 1);
    // Routes: site 1 is leg a, its node dialled directly for the bare stream.
    let r = gw.route(1, "lab:cam").unwrap();
    assert_eq!((r.leg, r.addr, r.via_gateway), (0, addr("10.1.0.2:7400"), false));
    assert!(gw.route(2, "lab:cam").is_none());
    assert!(gw.route(1, "nobody:here").is_none());
    // Forwarded peers are re-announced every interval with the gateway's own.
    gw.handle_timeout(t0 + SEC);
    assert_eq!(drain_gw(&mut gw).len(), 4);
    // lab:cam says goodbye: B hears a goodbye for 1:lab:cam at once.
    gw.handle_input(
        0,
        &datagram(Message::NodeGoodbye(ann("lab:cam", 0, 7400))),
        addr("10.1.0.2:5353"),
        t0 + SEC,
    );
    let out = drain_gw(&mut gw);
    assert!(
        matches!(&out[..], [(1, d)] if matches!(decode(d), Message::NodeGoodbye(a) if a.site_id == 1 && a.name == "lab:cam"))
    );
    // home:view dies silently: expired, then a goodbye on A for it.
    let mut now = t0 + SEC;
    let mut saw = false;
    while now < t0 + 10 * SEC && !saw {
        now = gw.poll_timeout().unwrap();
        gw.handle_timeout(now);
        saw = drain_gw(&mut gw)
            .iter()
            .any(|(l, d)| *l == 0 && matches!(decode(d), Message::NodeGoodbye(a) if a.name == "home:view"));
    }
    assert!(saw);
    // Close: goodbyes for the gateway itself on both legs.
    gw.close();
    assert_eq!(drain_gw(&mut gw).len(), 2);
}

#[test]
fn site_zero_on_a_cross_site_link_is_a_protocol_error() {
    let t0 = Instant::now();
    let mut gw = Gateway::new(
        Config::new(),
        Some(ann("gw:a", 0, 7500)),
        vec![site("a", 1), link("wan")],
        t0,
    )
    .unwrap();
    gw.handle_timeout(t0);
    let first = drain_gw(&mut gw);
    // On the link the gateway announces itself with its site's id.
    assert!(first.iter().any(
        |(l, d)| *l == 1 && matches!(decode(d), Message::NodeAnnouncement(a) if a.site_id == 1 && a.name == "gw:a")
    ));
    let _ = std::iter::from_fn(|| gw.poll_event()).count();
    gw.handle_input(
        1,
        &datagram(Message::NodeAnnouncement(ann("rogue:node", 0, 7400))),
        addr("172.16.0.9:5353"),
        t0,
    );
    let ev: Vec<_> = std::iter::from_fn(|| gw.poll_event()).collect();
    assert!(matches!(&ev[..], [(1, Event::ProtocolError { reason, .. })] if reason.contains("site 0")));
    assert_eq!(gw.engine(1).unwrap().counters().site_zero_on_link, 1);
    assert_eq!(gw.engine(1).unwrap().peers().count(), 0, "dropped");
    assert!(drain_gw(&mut gw).is_empty(), "not forwarded");
    // A translated announcement on the link is fine and forwarded into A.
    gw.handle_input(
        1,
        &datagram(Message::NodeAnnouncement(ann("home:view", 2, 7600))),
        addr("172.16.0.2:5353"),
        t0,
    );
    let out = drain_gw(&mut gw);
    assert!(
        matches!(&out[..], [(0, d)] if matches!(decode(d), Message::NodeAnnouncement(a) if a.site_id == 2 && a.tcp_port == 7500))
    );
    let r = gw.route(2, "home:view").unwrap();
    assert_eq!((r.addr, r.via_gateway), (addr("172.16.0.2:7600"), true));
}

#[test]
fn two_gateways_over_a_link_join_two_sites() {
    // A --gw1-- link --gw2-- B, all simulated: a node of A appears in B as
    // site 1, and B's as site 2 in A.
    let t0 = Instant::now();
    let cfg = Config::new();
    let mut gw1 = Gateway::new(
        cfg.clone(),
        Some(ann("gw:1", 0, 7500)),
        vec![site("a", 1), link("wan")],
        t0,
    )
    .unwrap();
    let mut gw2 = Gateway::new(
        cfg.clone(),
        Some(ann("gw:2", 0, 7500)),
        vec![site("b", 2), link("wan")],
        t0,
    )
    .unwrap();
    let mut in_a = Discovery::new(cfg.clone(), Some(ann("lab:cam", 0, 7400)), t0);
    let mut in_b = Discovery::new(cfg, Some(ann("home:view", 0, 7400)), t0);
    let (gw1_link, gw2_link) = (addr("172.16.0.1:5353"), addr("172.16.0.2:5353"));
    let mut now = t0;
    for _ in 0..5 {
        in_a.handle_timeout(now);
        in_b.handle_timeout(now);
        gw1.handle_timeout(now);
        gw2.handle_timeout(now);
        for _ in 0..4 {
            for t in transmits(&mut in_a) {
                gw1.handle_input(0, &t, addr("10.1.0.2:5353"), now);
            }
            for t in transmits(&mut in_b) {
                gw2.handle_input(0, &t, addr("10.2.0.2:5353"), now);
            }
            for (leg, t) in drain_gw(&mut gw1) {
                match leg {
                    0 => in_a.handle_input(&t, addr("10.1.0.254:5353"), now),
                    _ => gw2.handle_input(1, &t, gw1_link, now),
                }
            }
            for (leg, t) in drain_gw(&mut gw2) {
                match leg {
                    0 => in_b.handle_input(&t, addr("10.2.0.254:5353"), now),
                    _ => gw1.handle_input(1, &t, gw2_link, now),
                }
            }
        }
        now += SEC;
    }
    let names = |d: &Discovery| -> Vec<String> { d.peers().map(|p| p.qualified()).collect() };
    assert_eq!(names(&in_b), vec!["0:gw:2", "1:gw:1", "1:lab:cam"]);
    assert_eq!(names(&in_a), vec!["0:gw:1", "2:gw:2", "2:home:view"]);
    let cam = in_b.find(1, "lab:cam").next().unwrap();
    assert_eq!(cam.addr, addr("10.2.0.254:7500"), "reached through gw2");
    // gw2 routes 1:lab:cam over the link to gw1, which routes to the node.
    assert_eq!(gw2.route(1, "lab:cam").unwrap().addr, addr("172.16.0.1:7500"));
    assert!(gw2.route(1, "lab:cam").unwrap().via_gateway);
    assert_eq!(gw1.route(1, "lab:cam").unwrap().addr, addr("10.1.0.2:7400"));
    for g in [&gw1, &gw2] {
        for leg in 0..2 {
            assert_eq!(g.engine(leg).unwrap().counters().site_zero_on_link, 0);
        }
    }
}

#[test]
fn a_spoofer_holds_at_most_its_address_share_and_a_short_stay() {
    let t0 = Instant::now();
    let mut d = Discovery::new(Config::new().with_max_peers_per_address(8), None, t0);
    // 1,024 names from one address, each claiming an hour's interval.
    for i in 0..1024u32 {
        let mut a = ann(&format!("spoof:{i}"), 0, 7400);
        a.extensions = interval_extension(Duration::from_secs(3600));
        d.handle_input(&datagram(Message::NodeAnnouncement(a)), addr("10.0.0.66:5353"), t0);
    }
    assert_eq!(d.peers().count(), 8);
    assert_eq!(d.counters().address_full, 1024 - 8);
    // Another host still gets in.
    d.handle_input(
        &datagram(Message::NodeAnnouncement(ann("lab:cam", 0, 7400))),
        addr("10.0.0.7:5353"),
        t0,
    );
    assert_eq!(d.peers().count(), 9);
    // The hour was cut to minutes: silent spoofed peers leave within 3 x 5 min.
    assert!(d.peers().all(|p| p.interval <= MAX_PEER_INTERVAL));
    assert_eq!(MAX_PEER_INTERVAL, Duration::from_secs(300));
    d.handle_timeout(t0 + Duration::from_secs(3 * 300 + 1));
    assert_eq!(d.peers().count(), 0);
}

#[test]
fn a_contested_name_keeps_its_first_claimant_and_the_conflict_is_reported() {
    let t0 = Instant::now();
    let mut d = Discovery::new(Config::new(), None, t0);
    // The real node at a high address, then an impostor at a lower one.
    d.handle_input(
        &datagram(Message::NodeAnnouncement(ann("lab:cam", 0, 7400))),
        addr("10.0.0.200:5353"),
        t0,
    );
    d.handle_input(
        &datagram(Message::NodeAnnouncement(ann("lab:cam", 0, 7400))),
        addr("10.0.0.2:5353"),
        t0 + SEC,
    );
    let first = d.find(0, "lab:cam").next().unwrap();
    assert_eq!(first.addr, addr("10.0.0.200:7400"), "the first claimant keeps the name");
    assert_eq!(d.counters().conflicts, 1);
    assert!(events(&mut d).iter().any(|e| matches!(e, Event::Conflict { .. })));
}

#[test]
fn a_gateway_forwards_a_storm_of_new_names_at_its_rate() {
    let t0 = Instant::now();
    let mut gw = Gateway::new(
        Config::new(),
        Some(ann("gw:ab", 0, 7500)),
        vec![site("a", 1), site("b", 2)],
        t0,
    )
    .unwrap();
    // 500 names appear at once on site A (from many addresses).
    for i in 0..500u32 {
        let from = addr(&format!("10.1.{}.{}:5353", i / 200, i % 200 + 1));
        // A long interval: they stay while the test waits.
        let mut a = ann(&format!("storm:{i}"), 0, 7400);
        a.extensions = interval_extension(Duration::from_secs(120));
        gw.handle_input(0, &datagram(Message::NodeAnnouncement(a)), from, t0);
    }
    let forwarded = |gw: &Gateway| {
        (0..500u32)
            .filter(|i| gw.engine(1).unwrap().is_proxied(1, &format!("storm:{i}")))
            .count()
    };
    assert_eq!(forwarded(&gw), FORWARD_BURST as usize, "a burst at once");
    // The rest follows at the rate, and the gateway says when to come back.
    let next = gw.poll_timeout().unwrap();
    assert!(next <= t0 + Duration::from_millis(100), "{:?}", next - t0);
    // Run as the driver does: wake at each deadline.
    let run_until = |gw: &mut Gateway, end: Instant| {
        while let Some(t) = gw.poll_timeout().filter(|t| *t <= end) {
            gw.handle_timeout(t);
            let _ = drain_gw(gw);
        }
    };
    run_until(&mut gw, t0 + 5 * SEC);
    let after5 = forwarded(&gw);
    let want = FORWARD_BURST as usize + 5 * FORWARD_RATE as usize;
    assert!(
        (want - 1..=want + 1).contains(&after5),
        "{after5} forwarded after 5 s, want about {want}"
    );
    run_until(&mut gw, t0 + 60 * SEC);
    assert_eq!(forwarded(&gw), 500);
    assert_eq!(gw.forward_dropped(), 0);
}
