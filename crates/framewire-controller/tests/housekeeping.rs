//! The controller's housekeeping against real nodes on 127.0.0.1: an
//! offline node forgotten, and writes of the wanted graph that carry a
//! version.

mod common;

use std::time::Duration;

use common::*;
use framewire_codec::EncodeSpec;
use framewire_controller::{ControllerError, WantedGraph};
use framewire_net::{Node, NodeConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_node_is_forgotten_and_no_longer_dialled() {
    bounded(async {
        let src = source("test:src", "bars", EncodeSpec::qoi()).await;
        let relay = plain("test:relay").await;
        let relay_addr = relay.local_addr();
        let dir = state_dir("forget");
        let h = controller(&dir, &[&src, &relay]).await;
        wait_graph(&h, "both nodes", |g| online(g, &["test:src", "test:relay"])).await;
        h.apply(WantedGraph {
            edges: vec![edge("test:src", "bars", "test:relay")],
            ..Default::default()
        })
        .await
        .unwrap();
        // Online: refused, nothing changes.
        let e = h.forget_node("test:relay").await.unwrap_err();
        assert!(matches!(e, ControllerError::Online(_)), "{e}");
        assert!(matches!(
            h.forget_node("test:nobody").await,
            Err(ControllerError::UnknownNode(_))
        ));
        relay.shutdown().await;
        wait_graph(&h, "relay offline", |g| {
            g.nodes.iter().any(|n| n.name == "test:relay" && !n.online)
        })
        .await;
        h.forget_node("test:relay").await.unwrap();
        let g = wait_graph(&h, "relay gone", |g| !g.nodes.iter().any(|n| n.name == "test:relay")).await;
        // Its wanted edge stays wanted, shown as not made.
        let e = find_edge(&g, "test:relay/bars").expect("the wanted edge is still shown");
        assert!(e.wanted && e.state != "live", "{e:?}");
        assert_eq!(h.wanted().await.edges.len(), 1);
        // A node at its old address is not dialled again: it stays out of
        // the graph for longer than the longest redial delay.
        let again = Node::start(NodeConfig::new("test:relay", relay_addr)).await.unwrap();
        tokio::time::sleep(framewire_controller::RECONNECT_MAX + Duration::from_secs(1)).await;
        let g = h.graph().borrow().clone();
        assert!(
            !g.nodes.iter().any(|n| n.name == "test:relay"),
            "a forgotten node was dialled again: {:?}",
            g.nodes
        );
        assert_eq!(
            again.status_report().edges.len(),
            0,
            "a CONNECT reached a forgotten node"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_stale_version_changes_nothing() {
    bounded(async {
        let src = source("test:src", "bars", EncodeSpec::qoi()).await;
        let relay = plain("test:relay").await;
        let dir = state_dir("stale");
        let h = controller(&dir, &[&src, &relay]).await;
        wait_graph(&h, "both nodes", |g| online(g, &["test:src", "test:relay"])).await;
        let v0 = h.wanted().await.version();
        let mut first = edge("test:src", "bars", "test:relay");
        first.priority = 200;
        let v1 = h
            .apply_if(
                WantedGraph {
                    edges: vec![first],
                    ..Default::default()
                },
                Some(v0.clone()),
            )
            .await
            .unwrap();
        assert_eq!(h.wanted().await.version(), v1);
        let second = edge("test:src", "bars", "test:relay");
        match h
            .apply_if(
                WantedGraph {
                    edges: vec![second],
                    ..Default::default()
                },
                Some(v0.clone()),
            )
            .await
        {
            Err(ControllerError::Stale { expected, current }) => {
                assert_eq!((expected, current), (v0, v1.clone()));
            }
            other => panic!("a stale write was not refused: {other:?}"),
        }
        assert_eq!(
            h.wanted().await.edges[0].priority,
            200,
            "the stale write changed the graph"
        );
        // The file on disk holds the first write too.
        let stored = framewire_controller::store::load(&dir.join(framewire_controller::store::WANTED_FILE)).unwrap();
        assert_eq!(stored.version(), v1);
    })
    .await;
}

fn pattern_source(node: &str, name: &str, extra: &str) -> framewire_controller::WantedSource {
    let t: toml::Table = toml::from_str(&format!(
        "kind = \"test-pattern\"\nname = \"{name}\"\nsize = \"64x48\"\nfps = 10\n{extra}"
    ))
    .unwrap();
    framewire_controller::WantedSource::new(node, t)
}

fn stream_of<'a>(
    g: &'a framewire_controller::CurrentGraph,
    node: &str,
    name: &str,
) -> Option<&'a framewire_controller::StreamView> {
    g.nodes
        .iter()
        .find(|n| n.name == node && n.online)
        .and_then(|n| n.streams.iter().find(|s| s.name == name))
}

/// A wanted source is started on its node, started again when the node
/// restarts, changed when its table changes, and removed when the wanted
/// graph drops it; an edge can pull it in the same document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wanted_sources_follow_the_wanted_graph() {
    bounded(async {
        let cam = plain("test:cam").await;
        let cam_addr = cam.local_addr();
        let desk = plain("test:desk").await;
        let dir = state_dir("sources");
        let h = controller(&dir, &[&cam, &desk]).await;
        wait_graph(&h, "both nodes", |g| online(g, &["test:cam", "test:desk"])).await;
        h.apply(WantedGraph {
            edges: vec![edge("test:cam", "screen", "test:desk")],
            sources: vec![pattern_source("test:cam", "screen", "")],
        })
        .await
        .unwrap();
        wait_graph(&h, "the source and the edge live", |g| {
            stream_of(g, "test:cam", "screen").is_some()
                && find_edge(g, "test:desk/screen").is_some_and(|e| e.state == "live")
        })
        .await;
        // Restart the node: the controller starts the source again.
        cam.shutdown().await;
        wait_graph(&h, "cam offline", |g| {
            g.nodes.iter().any(|n| n.name == "test:cam" && !n.online)
        })
        .await;
        let cam = Node::start(NodeConfig::new("test:cam", cam_addr)).await.unwrap();
        wait_graph(&h, "the source back after a restart", |g| {
            stream_of(g, "test:cam", "screen").is_some()
        })
        .await;
        // A changed table: the same stream at another size.
        h.apply(WantedGraph {
            edges: vec![edge("test:cam", "screen", "test:desk")],
            sources: vec![pattern_source("test:cam", "screen", "").with_key("size", "96x64")],
        })
        .await
        .unwrap();
        wait_graph(&h, "the source changed", |g| {
            stream_of(g, "test:cam", "screen").is_some_and(|s| s.width == 96)
        })
        .await;
        // Dropped: removed from the node.
        h.apply(WantedGraph::default()).await.unwrap();
        wait_graph(&h, "the source removed", |g| {
            online(g, &["test:cam"]) && stream_of(g, "test:cam", "screen").is_none()
        })
        .await;
        assert!(cam.status_report().streams.is_empty());
    })
    .await;
}
