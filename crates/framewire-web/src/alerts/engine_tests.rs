use framewire_controller::{EdgeView, NodeView, OutputView, StreamView};

use super::*;

fn node(name: &str, online: bool, streams: Vec<StreamView>) -> NodeView {
    NodeView {
        name: name.into(),
        online,
        streams,
        ..NodeView::default()
    }
}

fn stream(name: &str, state: &str, peers: &[&str]) -> StreamView {
    StreamView {
        name: name.into(),
        state: state.into(),
        outputs: peers
            .iter()
            .map(|p| OutputView {
                peer: (*p).into(),
                ..OutputView::default()
            })
            .collect(),
        ..StreamView::default()
    }
}

fn graph(nodes: Vec<NodeView>, edges: Vec<EdgeView>) -> CurrentGraph {
    CurrentGraph {
        nodes,
        edges,
        ..CurrentGraph::default()
    }
}

fn active(a: &Alerts) -> Vec<(Kind, String)> {
    a.list()
        .filter(|a| a.active)
        .map(|a| (a.kind, a.subject.clone()))
        .collect()
}

#[test]
fn a_node_that_goes_offline_is_raised_then_cleared() {
    let mut a = Alerts::default();
    let up = graph(vec![node("lab:cam", true, vec![])], vec![]);
    assert!(!a.observe(&up, None, 1));
    let mut down = graph(vec![node("lab:cam", false, vec![])], vec![]);
    down.nodes[0].error = Some("connection reset".into());
    assert!(a.observe(&down, None, 2));
    let first = a.list().next().unwrap().clone();
    assert_eq!(
        (first.kind, first.subject.as_str(), first.raised_ms),
        (Kind::NodeOffline, "lab:cam", 2)
    );
    assert_eq!(first.message, "node lab:cam is offline: connection reset");
    // Still offline: nothing new.
    let v = a.version();
    assert!(!a.observe(&down, None, 3));
    assert_eq!(a.version(), v);
    assert!(a.observe(&up, None, 4));
    let cleared = a.list().next().unwrap();
    assert_eq!((cleared.active, cleared.cleared_ms), (false, Some(4)));
    // Offline again: a new alert, the old one kept.
    assert!(a.observe(&down, None, 5));
    assert_eq!(a.list().map(|a| a.id).collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn a_node_never_reached_is_not_an_alert() {
    let mut a = Alerts::default();
    assert!(!a.observe(&graph(vec![node("lab:new", false, vec![])], vec![]), None, 1));
    assert_eq!(a.list().count(), 0);
}

#[test]
fn an_interrupted_source_is_a_lost_device_but_a_relayed_stream_is_not() {
    let mut a = Alerts::default();
    let g = graph(
        vec![
            node("lab:cam", true, vec![stream("video0", "interrupted", &[])]),
            node("lab:relay", true, vec![stream("video0", "interrupted", &[])]),
        ],
        vec![EdgeView {
            id: "lab:relay/video0".into(),
            upstream: "lab:cam".into(),
            stream: "video0".into(),
            downstream: "lab:relay".into(),
            local_name: "video0".into(),
            ..EdgeView::default()
        }],
    );
    assert!(a.observe(&g, None, 1));
    assert_eq!(active(&a), [(Kind::DeviceLost, "lab:cam/video0".to_owned())]);
}

#[test]
fn a_congested_edge_and_a_full_archive_are_raised_with_their_reasons() {
    let mut a = Alerts::default();
    let edge = EdgeView {
        id: "lab:view/bars".into(),
        alert: Some("dropping 40% of frames over 10 s".into()),
        ..EdgeView::default()
    };
    let s = stream(
        "bars",
        "live",
        &[
            "sink:archive:/srv/a [STORAGE FAILED (no space left on device), 3 segments closed, 1.0 MB, 0 restarts, 0 deleted]",
            "sink:archive:/srv/b [recording, 3 segments closed, 1.0 MB, 0 restarts, 0 deleted]",
            "127.0.0.1:4000 lab:view",
        ],
    );
    assert!(a.observe(&graph(vec![node("lab:cam", true, vec![s])], vec![edge]), None, 1));
    let msgs: Vec<_> = a
        .list()
        .map(|a| (a.kind, a.subject.clone(), a.message.clone()))
        .collect();
    assert_eq!(
        msgs,
        [
            (
                Kind::EdgeCongested,
                "lab:view/bars".to_owned(),
                "edge lab:view/bars is congested: dropping 40% of frames over 10 s".to_owned()
            ),
            (
                Kind::StorageFull,
                "lab:cam/bars sink:archive:/srv/a".to_owned(),
                "archive of lab:cam/bars cannot record: no space left on device".to_owned()
            ),
        ]
    );
}

#[test]
fn storage_faults_are_read_from_the_archive_label() {
    assert_eq!(
        storage_fault("sink:archive:/a [FULL (size limit 1 GB reached), 2 segments closed]"),
        Some("size limit 1 GB reached")
    );
    assert_eq!(
        storage_fault("sink:archive:/a [STORAGE FAILED (read-only)]"),
        Some("read-only")
    );
    assert_eq!(storage_fault("sink:archive:/a [recording, 2 segments closed]"), None);
    assert_eq!(storage_fault("sink:viewer [FULL (x)]"), None);
    assert_eq!(storage_fault("sink:archive:/a"), None);
}

#[test]
fn a_failed_supervised_node_is_raised_and_kept_while_the_status_is_unknown() {
    let mut a = Alerts::default();
    let g = graph(vec![], vec![]);
    let failed = [HostNode {
        name: "broken".into(),
        state: "failed".into(),
        reason: "ended 3 times in 60 s; last: exit status 2".into(),
    }];
    assert!(a.observe(&g, Some(&failed), 1));
    assert_eq!(
        a.list().next().unwrap().message,
        "supervised node broken failed: ended 3 times in 60 s; last: exit status 2"
    );
    assert!(!a.observe(&g, None, 2), "an unreadable status changes nothing");
    let running = [HostNode {
        name: "broken".into(),
        state: "running".into(),
        reason: String::new(),
    }];
    assert!(a.observe(&g, Some(&running), 3));
    assert!(active(&a).is_empty());
}

#[test]
fn an_acknowledgement_is_kept_with_who_and_when() {
    let mut a = Alerts::default();
    let up = graph(vec![node("n", true, vec![])], vec![]);
    a.observe(&up, None, 1);
    a.observe(&graph(vec![node("n", false, vec![])], vec![]), None, 2);
    let v = a.version();
    let acked = a.ack(1, "otto", 3).unwrap();
    assert_eq!(
        (acked.acked_by.as_deref(), acked.acked_ms, acked.active),
        (Some("otto"), Some(3), true)
    );
    assert!(a.version() > v);
    // A second acknowledgement keeps the first.
    assert_eq!(a.ack(1, "ada", 4).unwrap().acked_by.as_deref(), Some("otto"));
    assert!(a.ack(99, "otto", 4).is_none());
}

#[test]
fn the_list_keeps_every_active_alert_and_drops_the_oldest_cleared() {
    let mut a = Alerts::default();
    let names: Vec<String> = (0..MAX_ALERTS + 50).map(|i| format!("n{i}")).collect();
    let all = |online: bool| graph(names.iter().map(|n| node(n, online, vec![])).collect(), vec![]);
    a.observe(&all(true), None, 1);
    a.observe(&all(false), None, 2);
    assert_eq!(a.list().count(), MAX_ALERTS + 50, "active alerts are never dropped");
    a.observe(&all(true), None, 3);
    a.ack(MAX_ALERTS as u64 + 50, "otto", 4);
    a.observe(&all(false), None, 5);
    // 250 new active ones; every cleared one had to go.
    assert_eq!(a.list().count(), MAX_ALERTS + 50);
    assert!(a.list().all(|a| a.active && a.raised_ms == 5));
    a.observe(&all(true), None, 6);
    assert_eq!(a.list().count(), MAX_ALERTS, "cleared ones past the cap go");
}
