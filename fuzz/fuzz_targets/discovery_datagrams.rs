//! A site gateway's discovery (two site legs and a cross-site link) fed
//! any datagrams from any addresses on any leg, with the clock stepping
//! between them: announcements and goodbyes with any site, port, name and
//! extensions, and plain garbage. The engines never panic, every table
//! stays within its limits (peers in all, peers per source address), the
//! events held stay bounded, and every datagram the gateway sends is a
//! well-formed announcement or goodbye that fits a datagram.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use framewire_discovery::{Config, Gateway, LegConfig, LegKind, MAX_QUEUED_EVENTS};
use framewire_proto::{FunctionFlags, HEADER_LEN, Header, Message, NodeAnnouncement};
use libfuzzer_sys::fuzz_target;

const MAX_PEERS: usize = 24;
const PER_ADDRESS: usize = 4;

include!("input_common.rs");

const NAMES: &[&str] = &["lab:cam", "lab:relay", "a:b", "x:y", "gw:one", "cam:pi"];

fn datagram(b: &mut Input) -> Vec<u8> {
    if b.u8() % 5 == 0 {
        let n = usize::from(b.u16()) % 1500;
        return b.bytes(n);
    }
    let name = match b.u8() % 4 {
        0 => {
            let n = usize::from(b.u8());
            String::from_utf8_lossy(&b.bytes(n)).into_owned()
        }
        _ => format!("{}{}", NAMES[usize::from(b.u8()) % NAMES.len()], b.u8() % 8),
    };
    let extensions = match b.u8() % 3 {
        0 => Bytes::new(),
        1 => Bytes::from(vec![0x02, 4, b.u8(), b.u8(), b.u8(), b.u8()]),
        _ => {
            let n = usize::from(b.u8()) % 64;
            Bytes::from(b.bytes(n))
        }
    };
    let a = NodeAnnouncement {
        protocol_version: b.u8() % 3,
        site_id: u16::from(b.u8() % 4),
        tcp_port: b.u16(),
        function_flags: FunctionFlags(b.u16()),
        name,
        extensions,
    };
    let msg = if b.u8() % 4 == 0 {
        Message::NodeGoodbye(a)
    } else {
        Message::NodeAnnouncement(a)
    };
    let Ok(e) = msg.encode() else { return Vec::new() };
    let mut out = e.head.to_vec();
    out.extend_from_slice(&e.body);
    // Sometimes cut or padded.
    match b.u8() % 8 {
        0 => out.truncate(usize::from(b.u8())),
        1 => out.push(b.u8()),
        _ => {}
    }
    out
}

/// A sent datagram is one announcement or goodbye that fits.
fn check_sent(payload: &[u8]) {
    assert!(
        payload.len() <= framewire_discovery::DEFAULT_MAX_DATAGRAM,
        "a datagram too long"
    );
    let raw = payload.first_chunk::<HEADER_LEN>().expect("a whole header");
    let header = Header::from_bytes(*raw);
    assert_eq!(header.payload_len as usize, payload.len() - HEADER_LEN);
    let msg = Message::parse(header, Bytes::from(BytesMut::from(&payload[HEADER_LEN..]))).expect("it parses");
    assert!(matches!(msg, Message::NodeAnnouncement(_) | Message::NodeGoodbye(_)));
}

fuzz_target!(|data: &[u8]| {
    let mut b = Input(data);
    let start = Instant::now();
    let mut now = start;
    let config = Config::new()
        .with_max_peers(MAX_PEERS)
        .with_max_peers_per_address(PER_ADDRESS)
        .with_interval(Duration::from_millis(100));
    let local = NodeAnnouncement {
        protocol_version: 1,
        site_id: 1,
        tcp_port: 7400,
        function_flags: FunctionFlags::RELAY,
        name: "gw:one".into(),
        extensions: Bytes::new(),
    };
    let legs = vec![
        LegConfig {
            label: "a".into(),
            kind: LegKind::Site { site_id: 1 },
        },
        LegConfig {
            label: "b".into(),
            kind: LegKind::Site { site_id: 2 },
        },
        LegConfig {
            label: "link".into(),
            kind: LegKind::Link,
        },
    ];
    let mut gw = Gateway::new(config, Some(local), legs, now).expect("a valid gateway");
    while !b.0.is_empty() {
        match b.u8() % 4 {
            0 => now += Duration::from_millis(u64::from(b.u16())),
            1 => gw.handle_timeout(now),
            _ => {
                let leg = usize::from(b.u8() % 3);
                let from = SocketAddr::from((Ipv4Addr::new(127, 0, 0, b.u8() % 8), b.u16()));
                let d = datagram(&mut b);
                gw.handle_input(leg, &d, from, now);
            }
        }
        let mut events = 0;
        while gw.poll_event().is_some() {
            events += 1;
        }
        assert!(events <= 3 * MAX_QUEUED_EVENTS + 64, "{events} events held");
        while let Some((leg, t)) = gw.poll_transmit() {
            assert!(leg < 3);
            check_sent(&t.payload);
        }
        for leg in 0..3 {
            let e = gw.engine(leg).expect("three legs");
            let peers: Vec<_> = e.peers().collect();
            assert!(peers.len() <= MAX_PEERS, "{} peers", peers.len());
            for p in &peers {
                let same = peers.iter().filter(|q| q.addr.ip() == p.addr.ip()).count();
                assert!(same <= PER_ADDRESS, "{same} peers from {}", p.addr.ip());
            }
        }
    }
    gw.close();
    while let Some((_, t)) = gw.poll_transmit() {
        check_sent(&t.payload);
    }
});
