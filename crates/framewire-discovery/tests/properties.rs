//! Arbitrary datagrams never panic the engine, never grow the table past
//! its limit, and every datagram is counted exactly once.

// test-runner: alone (property tests keep both cores busy; scripts/run-tests.py)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use framewire_discovery::{Config, Discovery, Gateway, LegConfig, LegKind, announcement};
use framewire_proto::{FunctionFlags, Message};
use proptest::prelude::*;

fn mutated_announcement() -> impl Strategy<Value = Vec<u8>> {
    (
        "[a-z]{0,6}:[a-z0-9]{0,6}",
        any::<u16>(),
        any::<u16>(),
        any::<bool>(),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        0usize..40,
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(name, site, port, goodbye, flips, cut, tail)| {
            let a = announcement(
                &name,
                site % 4,
                port,
                FunctionFlags(port),
                Duration::from_millis(u64::from(port)),
            );
            let m = if goodbye {
                Message::NodeGoodbye(a)
            } else {
                Message::NodeAnnouncement(a)
            };
            let mut v = m.to_vec().unwrap();
            for (i, b) in flips {
                let n = v.len();
                v[i % n] ^= b;
            }
            v.truncate(v.len().saturating_sub(cut % 3));
            v.extend(tail.iter().take(cut % 2));
            v
        })
}

fn datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 1390..1500),
        mutated_announcement(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_datagrams_never_panic(input in proptest::collection::vec((datagram(), 0u64..5000, 0u8..4), 1..60)) {
        let t0 = Instant::now();
        let mut d = Discovery::new(Config::new().with_max_peers(8), Some(announcement("me:node", 0, 7400, FunctionFlags::RELAY, Duration::from_secs(1))), t0);
        let mut gw = Gateway::new(
            Config::new().with_max_peers(8),
            Some(announcement("gw:x", 0, 7500, FunctionFlags::RELAY, Duration::from_secs(1))),
            vec![
                LegConfig { label: "a".into(), kind: LegKind::Site { site_id: 1 } },
                LegConfig { label: "l".into(), kind: LegKind::Link },
            ],
            t0,
        ).unwrap();
        let mut now = t0;
        for (bytes, dt, host) in &input {
            now += Duration::from_millis(*dt);
            let from = SocketAddr::from(([10, 0, 0, *host], 5353));
            d.handle_input(bytes, from, now);
            d.handle_timeout(now);
            gw.handle_input(usize::from(*host % 2), bytes, from, now);
            gw.handle_timeout(now);
            while d.poll_event().is_some() {}
            while d.poll_transmit().is_some() {}
            while gw.poll_event().is_some() {}
            while gw.poll_transmit().is_some() {}
            prop_assert!(d.peers().count() <= 8);
        }
        let c = d.counters();
        prop_assert_eq!(c.received, input.len() as u64);
        prop_assert_eq!(
            c.received,
            c.announcements + c.goodbyes + c.own + c.oversize + c.truncated + c.malformed + c.other_types + c.site_zero_on_link
        );
    }
}
