//! Nodes, a controller and waits shared by the controller's tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use framewire_codec::EncodeSpec;
use framewire_controller::{ControllerConfig, ControllerHandle, CurrentGraph, EdgeView, WantedEdge};
use framewire_media::testpattern::TestPatternConfig;
use framewire_net::{Node, NodeConfig, SourceConfig};

pub const LIMIT: Duration = Duration::from_secs(60);

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn pattern(name: &str, encode: EncodeSpec) -> SourceConfig {
    SourceConfig::from(TestPatternConfig {
        name: name.into(),
        width: 64,
        height: 48,
        fps_num: 30,
        fps_den: 1,
        encode,
    })
}

pub async fn source(name: &str, stream: &str, encode: EncodeSpec) -> Node {
    let mut cfg = NodeConfig::new(name, loopback());
    cfg.sources.push(pattern(stream, encode));
    Node::start(cfg).await.unwrap()
}

pub async fn plain(name: &str) -> Node {
    Node::start(NodeConfig::new(name, loopback())).await.unwrap()
}

/// A test's state directory, removed when the test ends, passed or failed.
pub struct StateDir(tempfile::TempDir);

impl std::ops::Deref for StateDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

/// A new, empty state directory for `test`.
pub fn state_dir(test: &str) -> StateDir {
    StateDir(
        tempfile::Builder::new()
            .prefix(&format!("fw-ctl-{test}-"))
            .tempdir()
            .expect("a temporary directory"),
    )
}

pub async fn controller(dir: &std::path::Path, nodes: &[&Node]) -> ControllerHandle {
    let mut cfg = ControllerConfig::new("test:ctl", dir.to_path_buf());
    cfg.nodes = nodes.iter().map(|n| n.local_addr().to_string()).collect();
    framewire_controller::start(cfg).await.unwrap()
}

pub fn edge(from: &str, stream: &str, to: &str) -> WantedEdge {
    WantedEdge::new(from, stream, to)
}

/// Waits until the graph satisfies `pred`; returns that graph.
pub async fn wait_graph(h: &ControllerHandle, what: &str, pred: impl Fn(&CurrentGraph) -> bool) -> Arc<CurrentGraph> {
    let mut rx = h.graph();
    let r = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let g = rx.borrow_and_update().clone();
            if pred(&g) {
                return g;
            }
            rx.changed().await.expect("controller runs");
        }
    })
    .await;
    match r {
        Ok(g) => g,
        Err(_) => panic!("graph never showed {what}: {:#?}", rx.borrow()),
    }
}

pub fn find_edge<'a>(g: &'a CurrentGraph, id: &str) -> Option<&'a EdgeView> {
    g.edges.iter().find(|e| e.id == id)
}

pub fn online(g: &CurrentGraph, names: &[&str]) -> bool {
    names.iter().all(|n| g.nodes.iter().any(|v| v.name == *n && v.online))
}

pub async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f).await.expect("test finished in time");
}

pub async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < end, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
