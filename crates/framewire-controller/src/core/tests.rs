use framewire_proto::control::{DropCount, DropReason, OutputStats, StreamState};

use std::time::{Duration, Instant};

use framewire_proto::control::{EdgeOrigin, EdgeStatus};
use framewire_proto::{DeliveryMode, Format, SubscribeParams, TransportMode};

use super::*;
use crate::model::{CurrentGraph, EdgeView, WantedEdge, WantedGraph};

pub(super) use super::fixtures::report;

pub(super) fn pulled(local: &str, up_port: u16, stream: &str, origin: EdgeOrigin) -> EdgeStatus {
    EdgeStatus {
        local_name: local.into(),
        upstream: format!("127.0.0.1:{up_port}"),
        stream: stream.into(),
        origin,
        state: StreamState::Live,
        failed_attempts: 0,
        params: SubscribeParams::default(),
    }
}

pub(super) fn wanted(from: &str, stream: &str, to: &str) -> WantedEdge {
    WantedEdge::new(from, stream, to)
}

pub(super) fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// cam (port 1) serves `bars` (QOI); relay (2) and desk (3) serve nothing.
pub(super) fn three(t: Instant) -> Core {
    let mut c = Core::new(WantedGraph::default());
    c.on_report(&addr(1), report("cam", 1, &[("bars", Format::Qoi)], vec![]), t);
    c.on_report(&addr(2), report("relay", 2, &[], vec![]), t);
    let mut desk = report("desk", 3, &[], vec![]);
    desk.accept_formats = vec![Format::Mjpeg, Format::Qoi];
    c.on_report(&addr(3), desk, t);
    c
}

#[test]
fn addresses_compare_by_listener() {
    assert!(same_addr("127.0.0.1:7400", "127.0.0.1:7400"));
    assert!(same_addr("localhost:7400", "127.0.0.1:7400"));
    assert!(same_addr("[::1]:7400", "127.0.0.1:7400"));
    assert!(!same_addr("127.0.0.1:7400", "127.0.0.1:7401"));
    assert!(!same_addr("10.0.0.1:7400", "10.0.0.2:7400"));
    assert!(!same_addr("nonsense", "127.0.0.1:7400"));
}

#[test]
fn chains_validate_in_one_document_and_formats_follow_the_chain() {
    let t = Instant::now();
    let c = three(t);
    let mut w = WantedGraph {
        edges: vec![wanted("cam", "bars", "relay"), wanted("relay", "bars", "desk")],
        ..Default::default()
    };
    assert_eq!(c.validate(&w), Ok(()));
    // The desk accepts MJPEG and QOI only; a raw stream two hops up is refused.
    let mut c2 = three(t);
    c2.on_report(&addr(1), report("cam", 1, &[("bars", Format::Raw)], vec![]), t);
    let r = c2.validate(&w).unwrap_err();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].index, 1);
    assert!(r[0].reason.contains("accepts only mjpeg, qoi"), "{}", r[0].reason);
    // Without the first edge the relay has no stream `bars`.
    w.edges.remove(0);
    let r = c.validate(&w).unwrap_err();
    assert!(
        r[0].reason.contains("has no stream \"bars\" (streams: none)"),
        "{}",
        r[0].reason
    );
}

#[test]
fn an_edge_may_pull_a_transcoded_stream() {
    let t = Instant::now();
    let c = three(t);
    // The desk accepts MJPEG and QOI; cam's `bars` is QOI, `bars~mjpeg` MJPEG.
    let w = WantedGraph {
        edges: vec![wanted("cam", "bars~mjpeg", "desk")],
        ..Default::default()
    };
    assert_eq!(c.validate(&w), Ok(()));
    let w = WantedGraph {
        edges: vec![wanted("cam", "bars~raw", "desk")],
        ..Default::default()
    };
    assert!(c.validate(&w).unwrap_err()[0].reason.contains("accepts only"));
    let w = WantedGraph {
        edges: vec![wanted("cam", "nope~mjpeg", "desk")],
        ..Default::default()
    };
    assert!(c.validate(&w).is_err());
}

#[test]
fn cycles_are_refused_on_the_edge_that_closes_them() {
    let t = Instant::now();
    let mut c = three(t);
    // Live: cam -> relay (configured on the relay).
    c.on_report(
        &addr(2),
        report(
            "relay",
            2,
            &[("bars", Format::Qoi)],
            vec![pulled("bars", 1, "bars", EdgeOrigin::Config)],
        ),
        t,
    );
    let w = WantedGraph {
        edges: vec![
            wanted("relay", "bars", "desk"),
            WantedEdge {
                local_name: "back".into(),
                ..wanted("desk", "bars", "cam")
            },
        ],
        ..Default::default()
    };
    let r = c.validate(&w).unwrap_err();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].index, 1);
    assert_eq!(r[0].reason, "closes a cycle: desk -> cam -> relay -> desk");
    let selfloop = WantedGraph {
        edges: vec![WantedEdge {
            local_name: "again".into(),
            ..wanted("cam", "bars", "cam")
        }],
        ..Default::default()
    };
    assert!(c.validate(&selfloop).unwrap_err()[0].reason.contains("to itself"));
}

#[test]
fn plan_connects_then_waits_then_retries() {
    let t = Instant::now();
    let mut c = three(t);
    let w = WantedGraph {
        edges: vec![wanted("cam", "bars", "relay")],
        ..Default::default()
    };
    c.validate(&w).unwrap();
    c.set_wanted(w);
    let a = c.plan(t);
    assert_eq!(
        a,
        vec![Action::Connect {
            node: "relay".into(),
            connect: Connect {
                upstream: addr(1),
                stream: "bars".into(),
                local_name: "bars".into(),
                params: SubscribeParams::default(),
                weight: 1,
                max_rate: 0,
            },
        }]
    );
    assert_eq!(find(&c.graph(), "relay/bars").state, "connecting");
    // In flight: nothing new until RETRY_AFTER.
    assert!(c.plan(t + Duration::from_millis(500)).is_empty());
    assert_eq!(c.plan(t + RETRY_AFTER).len(), 1);
    // The relay reports the edge: confirmed, nothing more to do.
    c.on_report(
        &addr(2),
        report(
            "relay",
            2,
            &[("bars", Format::Qoi)],
            vec![pulled("bars", 1, "bars", EdgeOrigin::Connect)],
        ),
        t,
    );
    assert!(c.plan(t + RETRY_AFTER * 3).is_empty());
    let g = c.graph();
    let e = find(&g, "relay/bars");
    assert!(e.wanted);
    assert_eq!((e.state.as_str(), e.upstream.as_str()), ("live", "cam"));
    // The relay goes offline: its edge shows offline; nothing is sent to it.
    c.on_down(&addr(2), "connection reset");
    assert_eq!(find(&c.graph(), "relay/bars").state, "offline");
    assert!(c.plan(t + RETRY_AFTER * 4).is_empty());
    // It restarts with no edges: CONNECT again at once.
    c.on_report(&addr(2), report("relay", 2, &[], vec![]), t + RETRY_AFTER * 4);
    assert_eq!(c.plan(t + RETRY_AFTER * 4).len(), 1);
}

#[test]
fn removal_disconnects_only_edges_made_by_connect() {
    let t = Instant::now();
    let mut c = three(t);
    let w = WantedGraph {
        edges: vec![wanted("cam", "bars", "relay"), wanted("cam", "bars", "desk")],
        ..Default::default()
    };
    c.set_wanted(w);
    c.on_report(
        &addr(2),
        report("relay", 2, &[], vec![pulled("bars", 1, "bars", EdgeOrigin::Connect)]),
        t,
    );
    // The desk's edge comes from its own config.
    c.on_report(
        &addr(3),
        report("desk", 3, &[], vec![pulled("bars", 1, "bars", EdgeOrigin::Config)]),
        t,
    );
    c.set_wanted(WantedGraph::default());
    let a = c.plan(t);
    assert_eq!(
        a,
        vec![Action::Disconnect {
            node: "relay".into(),
            local_name: "bars".into()
        }]
    );
    // Confirmed gone: nothing more, even after the retry delay.
    c.on_report(&addr(2), report("relay", 2, &[], vec![]), t);
    assert!(c.plan(t + RETRY_AFTER * 2).is_empty());
    // The desk's configured edge is still in the graph, not wanted.
    let g = c.graph();
    assert!(!find(&g, "desk/bars").wanted);
    assert!(g.edges.iter().all(|e| e.id != "relay/bars"));
}

#[test]
fn a_changed_edge_is_replaced() {
    let t = Instant::now();
    let mut c = three(t);
    c.set_wanted(WantedGraph {
        edges: vec![WantedEdge {
            mode: "completeness".into(),
            ..wanted("cam", "bars", "relay")
        }],
        ..Default::default()
    });
    c.on_report(
        &addr(2),
        report("relay", 2, &[], vec![pulled("bars", 1, "bars", EdgeOrigin::Connect)]),
        t,
    );
    assert_eq!(
        c.plan(t),
        vec![Action::Disconnect {
            node: "relay".into(),
            local_name: "bars".into()
        }]
    );
    // One entry per id: the live edge, saying it is being replaced.
    let g = c.graph();
    assert_eq!(g.edges.iter().filter(|e| e.id == "relay/bars").count(), 1);
    let e = find(&g, "relay/bars");
    assert!(!e.wanted);
    assert_eq!(
        e.error.as_deref(),
        Some("being replaced by the wanted edge from cam/bars")
    );
    // Gone: the CONNECT follows at once, not after the retry delay.
    c.on_report(&addr(2), report("relay", 2, &[], vec![]), t);
    assert!(
        matches!(&c.plan(t)[..], [Action::Connect { connect, .. }] if connect.params.mode == DeliveryMode::Completeness)
    );
}

#[test]
fn an_edge_whose_budgets_changed_is_updated_in_place() {
    let t = Instant::now();
    let mut c = three(t);
    c.set_wanted(WantedGraph {
        edges: vec![WantedEdge {
            max_frames: 64,
            ..wanted("cam", "bars", "relay")
        }],
        ..Default::default()
    });
    // The node reports the edge with its old budgets: a CONNECT with the
    // new ones (changed in place), not a DISCONNECT.
    c.on_report(
        &addr(2),
        report("relay", 2, &[], vec![pulled("bars", 1, "bars", EdgeOrigin::Connect)]),
        t,
    );
    assert!(
        matches!(&c.plan(t)[..], [Action::Connect { connect, .. }] if connect.params.max_frames == 64),
        "{:?}",
        c.plan(t + RETRY_AFTER)
    );
}

#[test]
fn edge_figures_join_the_upstream_output_and_rates_come_from_deltas() {
    let t = Instant::now();
    let mut c = three(t);
    let out = |frames: u64, bytes: u64| OutputStats {
        channel: 1,
        stream: "bars".into(),
        peer: "127.0.0.1:5555 relay".into(),
        mode: DeliveryMode::LowLatency,
        transport: TransportMode::Encapsulated,
        priority: 128,
        frames_in: frames,
        frames_sent: frames,
        bytes_sent: bytes,
        drops: vec![DropCount {
            reason: DropReason::Replaced,
            count: 3,
        }],
        queue_frames: 0,
        queue_bytes: 0,
        max_frames: 1,
        max_bytes: 0,
        oldest_age_us: 0,
        latency_p50_us: 40,
        latency_p99_us: 90,
        latency_max_us: 100,
        waiting_keyframe: false,
    };
    let mut r = report("cam", 1, &[("bars", Format::Qoi)], vec![]);
    r.stats.outputs = vec![out(100, 1_000_000)];
    c.on_report(&addr(1), r.clone(), t);
    c.on_report(
        &addr(2),
        report("relay", 2, &[], vec![pulled("bars", 1, "bars", EdgeOrigin::Config)]),
        t,
    );
    // 30 frames and 1.25 MB in the next second.
    r.stats.outputs = vec![out(130, 2_250_000)];
    c.on_report(&addr(1), r.clone(), t + Duration::from_secs(1));
    let g = c.graph();
    let e = find(&g, "relay/bars");
    assert_eq!((e.fps, e.mbit_s, e.drops), (30.0, 10.0, 3));
    assert_eq!((e.latency_p50_us, e.latency_p99_us), (40, 90));
    let cam = g.nodes.iter().find(|n| n.name == "cam").unwrap();
    assert_eq!(cam.streams[0].outputs[0].fps, 30.0);
    // A report 10 ms later (a change) keeps the last figures.
    r.stats.outputs = vec![out(131, 2_290_000)];
    c.on_report(&addr(1), r, t + Duration::from_millis(1010));
    assert_eq!(find(&c.graph(), "relay/bars").fps, 30.0);
}

#[test]
fn a_second_node_with_the_same_name_is_ignored_while_the_first_lives() {
    let t = Instant::now();
    let mut c = three(t);
    c.on_report(&addr(9), report("cam", 9, &[("other", Format::Raw)], vec![]), t);
    let g = c.graph();
    let cam = g.nodes.iter().find(|n| n.name == "cam").unwrap();
    assert_eq!(cam.addr, addr(1));
    assert_eq!(cam.streams[0].name, "bars");
    assert!(cam.error.as_deref().unwrap().contains("127.0.0.1:9"), "{cam:?}");
    // Once the first is offline, the other takes the name.
    c.on_down(&addr(1), "gone");
    c.on_report(&addr(9), report("cam", 9, &[("other", Format::Raw)], vec![]), t);
    let g = c.graph();
    let cam = g.nodes.iter().find(|n| n.name == "cam").unwrap();
    assert_eq!(
        (cam.addr.as_str(), cam.online, cam.error.is_none()),
        ("127.0.0.1:9", true, true)
    );
}

#[test]
fn a_stored_edge_with_a_refused_format_is_not_attempted() {
    let t = Instant::now();
    let mut c = three(t);
    let mut desk = report("desk", 3, &[], vec![]);
    desk.accept_formats = vec![Format::Mjpeg];
    c.on_report(&addr(3), desk, t);
    // Loaded from disk: not validated.
    c.set_wanted(WantedGraph {
        edges: vec![wanted("cam", "bars", "desk")],
        ..Default::default()
    });
    assert!(c.plan(t).is_empty());
    let g = c.graph();
    let e = find(&g, "desk/bars");
    assert_eq!(e.state, "missing");
    assert_eq!(
        e.error.as_deref(),
        Some("desk accepts only mjpeg on pulled edges, not qoi")
    );
}

#[test]
fn fifty_nodes_assemble_and_validate_quickly() {
    // A chain of 50 nodes, each serving 4 streams and pulling 4 from
    // the one before it: 196 edges, each joined to an upstream output.
    let t = Instant::now();
    let mut c = Core::new(WantedGraph::default());
    let streams = [
        ("s0", Format::Qoi),
        ("s1", Format::Qoi),
        ("s2", Format::Raw),
        ("s3", Format::Mjpeg),
    ];
    let mut wanted_edges = Vec::new();
    for i in 0..50u16 {
        let edges = if i == 0 {
            vec![]
        } else {
            streams
                .iter()
                .map(|(n, _)| EdgeStatus {
                    local_name: format!("{n}-{i}"),
                    ..pulled(n, 1000 + i - 1, n, EdgeOrigin::Connect)
                })
                .collect()
        };
        let mut r = report(&format!("n{i}"), 1000 + i, &streams, edges);
        r.stats.outputs = streams
            .iter()
            .map(|(n, _)| framewire_proto::control::OutputStats {
                channel: 1,
                stream: (*n).into(),
                peer: format!("127.0.0.1:1 n{}", i + 1),
                mode: DeliveryMode::LowLatency,
                transport: TransportMode::Encapsulated,
                priority: 128,
                frames_in: 0,
                frames_sent: 0,
                bytes_sent: 0,
                drops: vec![],
                queue_frames: 0,
                queue_bytes: 0,
                max_frames: 1,
                max_bytes: 0,
                oldest_age_us: 0,
                latency_p50_us: 0,
                latency_p99_us: 0,
                latency_max_us: 0,
                waiting_keyframe: false,
            })
            .collect();
        c.on_report(&addr(1000 + i), r, t);
        if i > 0 {
            for (n, _) in &streams[..2] {
                wanted_edges.push(WantedEdge {
                    local_name: format!("{n}-{i}"),
                    ..wanted(&format!("n{}", i - 1), n, &format!("n{i}"))
                });
            }
        }
    }
    let w = WantedGraph {
        edges: wanted_edges,
        ..Default::default()
    };
    let start = Instant::now();
    let g = c.graph();
    let assemble = start.elapsed();
    let start = Instant::now();
    assert_eq!(c.validate(&w), Ok(()));
    let validate = start.elapsed();
    println!(
        "50 nodes, {} edges: graph assembled in {:.2} ms; {} wanted edges validated in {:.2} ms",
        g.edges.len(),
        assemble.as_secs_f64() * 1e3,
        w.edges.len(),
        validate.as_secs_f64() * 1e3
    );
    assert_eq!(g.edges.len(), 196);
    assert!(g.edges.iter().all(|e| e.upstream.starts_with('n')));
    // Generous bounds for a debug build on a busy machine.
    assert!(assemble < Duration::from_millis(200) && validate < Duration::from_millis(500));
}

pub(super) fn find<'a>(g: &'a CurrentGraph, id: &str) -> &'a EdgeView {
    g.edges
        .iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("no edge {id} in {g:#?}"))
}

#[test]
fn only_an_offline_node_is_forgotten_and_its_wanted_edges_stay() {
    let t = Instant::now();
    let mut c = three(t);
    c.set_wanted(WantedGraph {
        edges: vec![wanted("cam", "bars", "relay")],
        ..Default::default()
    });
    assert_eq!(c.forget("relay"), Forget::Online);
    assert!(c.graph().nodes.iter().any(|n| n.name == "relay"));
    assert_eq!(c.forget("nobody"), Forget::Unknown);
    c.on_down(&addr(2), "connection refused");
    assert_eq!(c.forget("relay"), Forget::Forgotten(addr(2)));
    let g = c.graph();
    assert!(!g.nodes.iter().any(|n| n.name == "relay"), "{:?}", g.nodes);
    assert_eq!(c.wanted.edges.len(), 1, "the wanted edge stays wanted");
    assert!(c.plan(t).is_empty(), "nothing is sent to a forgotten node");
    // A report from it brings it back.
    c.on_report(&addr(2), report("relay", 2, &[], vec![]), t);
    assert!(c.graph().nodes.iter().any(|n| n.name == "relay" && n.online));
}

#[test]
fn the_wanted_graph_version_follows_its_content() {
    let a = WantedGraph {
        edges: vec![wanted("cam", "bars", "relay")],
        ..Default::default()
    };
    let mut b = a.clone();
    assert_eq!(a.version(), b.version());
    assert_eq!(a.version().len(), 16);
    b.edges[0].priority = 129;
    assert_ne!(a.version(), b.version());
    assert_ne!(WantedGraph::default().version(), a.version());
}

fn source(node: &str, name: &str, extra: &str) -> crate::model::WantedSource {
    let t: toml::Table = toml::from_str(&format!("kind = \"test-pattern\"\nname = \"{name}\"\n{extra}")).unwrap();
    crate::model::WantedSource::new(node, t)
}

fn graph_with_sources(edges: Vec<WantedEdge>, sources: Vec<crate::model::WantedSource>) -> WantedGraph {
    WantedGraph { edges, sources }
}

#[test]
fn wanted_sources_validate_and_feed_edges_in_one_document() {
    let t = Instant::now();
    let c = three(t);
    // A source on the relay and an edge pulling it to the desk, at once.
    let w = graph_with_sources(
        vec![wanted("relay", "screen", "desk")],
        vec![source("relay", "screen", "")],
    );
    assert_eq!(c.validate(&w), Ok(()));
    let bad = graph_with_sources(
        vec![wanted("cam", "bars", "relay")],
        vec![
            source("ghost", "x", ""),
            source("relay", "a/b", ""),
            source("desk", "y", ""),
            source("desk", "y", "fps = 5"),
            source("relay", "bars", ""),
        ],
    );
    let r = c.validate(&bad).unwrap_err();
    let reasons: Vec<(usize, &str)> = r.iter().map(|x| (x.index, x.reason.as_str())).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(
        reasons[0].0 == 1 && reasons[0].1.contains("no node named \"ghost\""),
        "{reasons:?}"
    );
    assert!(reasons[1].0 == 2 && reasons[1].1.starts_with("name:"), "{reasons:?}");
    assert!(
        reasons[2].0 == 4 && reasons[2].1.contains("already gets a source"),
        "{reasons:?}"
    );
    assert!(
        reasons[3].0 == 5 && reasons[3].1.contains("a wanted edge serves"),
        "{reasons:?}"
    );
}

#[test]
fn wanted_sources_are_started_changed_restarted_and_removed() {
    let t = Instant::now();
    let mut c = three(t);
    c.set_wanted(graph_with_sources(vec![], vec![source("relay", "screen", "")]));
    let add = c.plan(t);
    assert!(
        matches!(&add[..], [Action::Source { node, set: false, .. }] if node == "relay"),
        "{add:?}"
    );
    c.on_action_result(&add[0], Ok(()));
    // Not sent again while the node's report catches up.
    assert!(c.plan(t).is_empty());
    c.on_report(&addr(2), report("relay", 2, &[("screen", Format::Mjpeg)], vec![]), t);
    let later = t + RETRY_AFTER;
    assert!(c.plan(later).is_empty(), "a source that runs is left alone");
    // The node restarts without it: started again.
    c.on_down(&addr(2), "gone");
    c.on_report(&addr(2), report("relay", 2, &[], vec![]), later);
    assert!(matches!(&c.plan(later)[..], [Action::Source { set: false, .. }]));
    c.on_report(
        &addr(2),
        report("relay", 2, &[("screen", Format::Mjpeg)], vec![]),
        later,
    );
    // A changed table: SOURCE_SET.
    c.set_wanted(graph_with_sources(vec![], vec![source("relay", "screen", "fps = 5")]));
    let set = c.plan(later);
    assert!(
        matches!(&set[..], [Action::Source { set: true, table, .. }] if table.get("fps").is_some()),
        "{set:?}"
    );
    c.on_action_result(&set[0], Ok(()));
    // Dropped from the wanted graph: removed, as this controller made it.
    c.set_wanted(WantedGraph::default());
    let rm = c.plan(later + RETRY_AFTER);
    assert!(
        matches!(&rm[..], [Action::RemoveSource { name, .. }] if name == "screen"),
        "{rm:?}"
    );
    c.on_action_result(&rm[0], Ok(()));
    c.on_report(&addr(2), report("relay", 2, &[], vec![]), later);
    assert!(c.plan(later + RETRY_AFTER * 2).is_empty());
    // A source the controller did not make is never removed; a refused
    // one is not asked for again until the wanted graph changes.
    c.on_report(&addr(3), report("desk", 3, &[("own", Format::Mjpeg)], vec![]), later);
    // Newly wanted, and the node serves it already: set to the table once.
    c.set_wanted(graph_with_sources(vec![], vec![source("desk", "own", "fps = 5")]));
    let set = c.plan(later);
    assert!(
        matches!(&set[..], [Action::Source { node, set: true, .. }] if node == "desk"),
        "{set:?}"
    );
    c.on_action_result(&set[0], Ok(()));
    assert!(
        c.plan(later + RETRY_AFTER).is_empty(),
        "set once: {:?}",
        c.plan(later + RETRY_AFTER)
    );
    c.set_wanted(graph_with_sources(
        vec![],
        vec![source("desk", "own", ""), source("desk", "cam", "")],
    ));
    c.set_wanted(graph_with_sources(vec![], vec![source("desk", "cam", "")]));
    let add = c.plan(later);
    assert!(matches!(&add[..], [Action::Source { set: false, .. }]), "{add:?}");
    c.on_action_result(&add[0], Err("device busy".into()));
    assert!(c.plan(later + RETRY_AFTER * 3).is_empty());
    assert!(
        c.graph()
            .nodes
            .iter()
            .any(|n| n.error.as_deref().is_some_and(|e| e.contains("device busy")))
    );
}

#[test]
fn an_edge_that_drops_too_many_frames_raises_an_alert_that_clears() {
    let t = Instant::now();
    let mut c = three(t);
    let out = |offered: u64, dropped: u64| OutputStats {
        channel: 1,
        stream: "bars".into(),
        peer: "127.0.0.1:5555 relay".into(),
        mode: DeliveryMode::Completeness,
        transport: TransportMode::Encapsulated,
        priority: 128,
        frames_in: offered,
        frames_sent: offered - dropped,
        bytes_sent: 0,
        drops: vec![DropCount {
            reason: DropReason::FrameBudget,
            count: dropped,
        }],
        queue_frames: 0,
        queue_bytes: 0,
        max_frames: 8,
        max_bytes: 0,
        oldest_age_us: 0,
        latency_p50_us: 0,
        latency_p99_us: 0,
        latency_max_us: 0,
        waiting_keyframe: false,
    };
    c.on_report(
        &addr(2),
        report("relay", 2, &[], vec![pulled("bars", 1, "bars", EdgeOrigin::Config)]),
        t,
    );
    let mut r = report("cam", 1, &[("bars", Format::Qoi)], vec![]);
    let at = |s: u64| t + Duration::from_secs(s);
    // 30 of the first 100 frames dropped: 30 % > 5 %.
    for (s, offered, dropped) in [(0, 0, 0), (1, 100, 30)] {
        r.stats.outputs = vec![out(offered, dropped)];
        c.on_report(&addr(1), r.clone(), at(s));
    }
    let g = c.graph();
    let e = find(&g, "relay/bars");
    assert_eq!(e.drop_share, 0.3);
    assert!(e.alert.as_deref().is_some_and(|a| a.contains("dropped 30 %")), "{e:?}");
    // No more drops: once the bad second leaves the 10 s window, it clears.
    for s in 2..=12 {
        r.stats.outputs = vec![out(100 + 30 * (s - 1), 30)];
        c.on_report(&addr(1), r.clone(), at(s));
    }
    let g = c.graph();
    let e = find(&g, "relay/bars");
    assert_eq!((e.drop_share, e.alert.clone()), (0.0, None), "{e:?}");
    // A lower limit flags a smaller share.
    c.alerts.share = 0.0;
    r.stats.outputs = vec![out(100 + 30 * 12, 31)];
    c.on_report(&addr(1), r, at(13));
    assert!(find(&c.graph(), "relay/bars").alert.is_some());
}

#[test]
fn an_edges_weight_and_rate_go_with_its_connect() {
    let t = Instant::now();
    let mut c = three(t);
    c.set_wanted(WantedGraph {
        edges: vec![WantedEdge {
            weight: 3,
            max_rate: 250_000,
            ..wanted("cam", "bars", "relay")
        }],
        ..Default::default()
    });
    assert!(
        matches!(&c.plan(t)[..], [Action::Connect { connect, .. }] if connect.weight == 3 && connect.max_rate == 250_000),
        "{:?}",
        c.plan(t)
    );
    // In the document, defaults are left out.
    let doc = toml::to_string(&WantedGraph {
        edges: vec![wanted("cam", "bars", "relay")],
        ..Default::default()
    })
    .unwrap();
    assert!(!doc.contains("weight") && !doc.contains("max_rate"), "{doc}");
}
