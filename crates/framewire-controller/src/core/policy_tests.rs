//! `on_alert` policies: what the reconciler sends when an edge in alert
//! names one, step by step, and what it keeps when the wanted edge changes.

use std::time::{Duration, Instant};

use framewire_proto::control::{DropCount, DropReason, EdgeOrigin, OutputStats};
use framewire_proto::{DeliveryMode, Format, TransportMode};

use super::tests::{addr, find, pulled, report, three, wanted};
use super::*;
use crate::model::{WantedEdge, WantedGraph};

/// The upstream `cam`'s output for the relay, `offered` frames of which
/// `dropped` were dropped.
fn out(stream: &str, offered: u64, dropped: u64) -> OutputStats {
    OutputStats {
        channel: 1,
        stream: stream.into(),
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
    }
}

/// A core with the wanted edge cam/`stream` -> relay (policy `on_alert`),
/// made by CONNECT with the parameters `edge` has.
fn wired(t: Instant, edge: &WantedEdge) -> Core {
    let mut c = three(t);
    c.set_wanted(WantedGraph {
        edges: vec![edge.clone()],
        ..Default::default()
    });
    let mut status = pulled("bars", 1, &edge.stream, EdgeOrigin::Connect);
    status.params = params(edge).unwrap();
    c.on_report(&addr(2), report("relay", 2, &[], vec![status]), t);
    c
}

/// Reports from cam, one a second from `from` on, with `per_second`
/// frames offered and `dropped` of them dropped each second; returns the
/// policy steps taken.
fn drops(c: &mut Core, t: Instant, stream: &str, from: u64, to: u64, dropped: u64) -> Vec<String> {
    let mut steps = Vec::new();
    for s in from..=to {
        let mut r = report("cam", 1, &[("bars", Format::Qoi)], vec![]);
        r.stats.outputs = vec![out(stream, 100 * s, dropped * s)];
        let now = t + Duration::from_secs(s);
        c.on_report(&addr(1), r, now);
        steps.extend(c.apply_policies(now));
    }
    steps
}

#[test]
fn shrink_halves_the_queue_in_place_once_per_window() {
    let t = Instant::now();
    let edge = WantedEdge {
        max_frames: 16,
        on_alert: "shrink".into(),
        mode: "completeness".into(),
        ..wanted("cam", "bars", "relay")
    };
    let mut c = wired(t, &edge);
    assert!(c.plan(t).is_empty(), "the edge is as wanted");
    // 30 % dropped: the alert rises and the queue is halved, in place (a
    // CONNECT, which the node turns into UPDATE_SUBSCRIPTION upstream).
    let steps = drops(&mut c, t, "bars", 0, 1, 30);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert!(steps[0].contains("queue shrunk to 8"), "{steps:?}");
    let plan = c.plan(t + Duration::from_secs(1));
    assert!(
        matches!(&plan[..], [Action::Connect { connect, .. }] if connect.params.max_frames == 8),
        "{plan:?}"
    );
    let g = c.graph();
    let e = find(&g, "relay/bars");
    assert_eq!(e.policy.as_deref(), Some("on alert: queue shrunk to 8 frame(s)"));
    // Still in alert within the window: no second step yet; a window later
    // the queue is halved again.
    assert!(drops(&mut c, t, "bars", 2, 10, 30).is_empty());
    let steps = drops(&mut c, t, "bars", 11, 11, 30);
    assert!(steps.len() == 1 && steps[0].contains("queue shrunk to 4"), "{steps:?}");
    // The stored wanted graph is as written; changing the edge drops the
    // adjustment.
    assert_eq!(c.wanted.edges[0].max_frames, 16);
    c.set_wanted(WantedGraph {
        edges: vec![WantedEdge {
            max_frames: 32,
            ..edge.clone()
        }],
        ..Default::default()
    });
    assert_eq!(find(&c.graph(), "relay/bars").policy, None);
}

#[test]
fn low_latency_switches_the_mode_and_lower_quality_steps_the_transcode() {
    let t = Instant::now();
    let edge = WantedEdge {
        on_alert: "low-latency".into(),
        mode: "completeness".into(),
        ..wanted("cam", "bars", "relay")
    };
    let mut c = wired(t, &edge);
    let steps = drops(&mut c, t, "bars", 0, 1, 30);
    assert!(
        steps.len() == 1 && steps[0].contains("switched to low-latency"),
        "{steps:?}"
    );
    // A mode is no budget: the edge is replaced (DISCONNECT, then CONNECT).
    let plan = c.plan(t + Duration::from_secs(1));
    assert!(matches!(&plan[..], [Action::Disconnect { .. }]), "{plan:?}");
    // Once switched, nothing more to do.
    assert!(drops(&mut c, t, "bars", 12, 30, 30).is_empty());

    let edge = WantedEdge {
        on_alert: "lower-quality".into(),
        local_name: "bars".into(),
        ..wanted("cam", "bars~mjpeg-q70", "relay")
    };
    let mut c = wired(t, &edge);
    let steps = drops(&mut c, t, "bars~mjpeg-q70", 0, 1, 30);
    assert!(
        steps.len() == 1 && steps[0].contains("quality lowered to 50"),
        "{steps:?}"
    );
    // The same local name pulls the lower quality: the old edge goes first.
    let plan = c.plan(t + Duration::from_secs(1));
    assert!(
        matches!(&plan[..], [Action::Disconnect { local_name, .. }] if local_name == "bars"),
        "{plan:?}"
    );
    c.on_report(&addr(2), report("relay", 2, &[], vec![]), t + Duration::from_secs(1));
    let plan = c.plan(t + Duration::from_secs(1) + RETRY_AFTER);
    assert!(
        matches!(&plan[..], [Action::Connect { connect, .. }] if connect.stream == "bars~mjpeg-q50" && connect.local_name == "bars"),
        "{plan:?}"
    );
    // 50 -> 30 -> 20, then no lower.
    let mut status = pulled("bars", 1, "bars~mjpeg-q50", EdgeOrigin::Connect);
    status.params = params(&edge).unwrap();
    c.on_report(
        &addr(2),
        report("relay", 2, &[], vec![status]),
        t + Duration::from_secs(2),
    );
    let later: Vec<String> = drops(&mut c, t, "bars~mjpeg-q50", 2, 40, 30);
    assert_eq!(later.len(), 2, "{later:?}");
    assert!(later[0].contains("to 30") && later[1].contains("to 20"), "{later:?}");
}

#[test]
fn a_policy_is_checked_when_the_graph_is_applied() {
    let t = Instant::now();
    let c = three(t);
    for (stream, policy, want) in [
        ("bars", "lower-quality", "needs a transcoded MJPEG stream"),
        ("bars", "restart", "is not one of shrink, low-latency, lower-quality"),
    ] {
        let g = WantedGraph {
            edges: vec![WantedEdge {
                on_alert: policy.into(),
                ..wanted("cam", stream, "relay")
            }],
            ..Default::default()
        };
        let refused = c.validate(&g).unwrap_err();
        assert!(refused[0].reason.contains(want), "{refused:?}");
    }
    let g = WantedGraph {
        edges: vec![WantedEdge {
            on_alert: "shrink".into(),
            ..wanted("cam", "bars", "relay")
        }],
        ..Default::default()
    };
    assert_eq!(c.validate(&g), Ok(()));
}
