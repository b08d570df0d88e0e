//! Entry points for the fuzz targets (feature `fuzz-api`; not an API).

use std::time::{Duration, Instant};

use framewire_proto::control::{EdgeOrigin, EdgeStatus, StreamState};
use framewire_proto::{Format, SubscribeParams};

use crate::core::fixtures::report;
use crate::core::{Core, edge_id, local_name};
use crate::model::WantedGraph;
use crate::store::{self, DocFormat};

/// A controller that knows four nodes: `lab:cam` (port 1) serving `bars`
/// (MJPEG) and `h264` (H.264), `lab:relay` (2) pulling `bars` from it,
/// `lab:desk` (3) that takes MJPEG only, and `lab:rec` (4), offline.
fn fixture(now: Instant) -> Core {
    let mut c = Core::new(WantedGraph::default());
    let addr = |p: u16| format!("127.0.0.1:{p}");
    let cam = report("lab:cam", 1, &[("bars", Format::Mjpeg), ("h264", Format::H264)], vec![]);
    c.on_report(&addr(1), cam, now);
    let pulled = EdgeStatus {
        local_name: "bars".into(),
        upstream: addr(1),
        stream: "bars".into(),
        origin: EdgeOrigin::Connect,
        state: StreamState::Live,
        failed_attempts: 0,
        params: SubscribeParams::default(),
    };
    let relay = report("lab:relay", 2, &[("bars", Format::Mjpeg)], vec![pulled]);
    c.on_report(&addr(2), relay, now);
    let mut desk = report("lab:desk", 3, &[], vec![]);
    desk.accept_formats = vec![Format::Mjpeg];
    c.on_report(&addr(3), desk, now);
    c.on_report(&addr(4), report("lab:rec", 4, &[], vec![]), now);
    c.on_down(&addr(4), "fuzz: gone");
    c
}

/// A wanted-graph document as `PUT /api/wanted` receives it (TOML when
/// `toml`, else JSON), parsed, checked against [`fixture`]'s nodes and,
/// when taken, applied and planned twice (now and 5 s later). Checks: a
/// refusal says why; a document taken shows every wanted edge in the
/// current graph.
pub fn wanted_document(text: &str, toml: bool) {
    let format = if toml { DocFormat::Toml } else { DocFormat::Json };
    let wanted = match store::parse(text, format) {
        Ok(w) => w,
        Err(e) => {
            assert!(!e.is_empty(), "a refusal without a reason");
            return;
        }
    };
    let now = Instant::now();
    let mut core = fixture(now);
    if let Err(refusals) = core.validate(&wanted) {
        assert!(!refusals.is_empty());
        for r in refusals {
            assert!(!r.reason.is_empty(), "refusal of {} without a reason", r.edge);
        }
        return;
    }
    core.set_wanted(wanted.clone());
    for t in [now, now + Duration::from_secs(5)] {
        let _ = core.plan(t);
        let _ = core.plan_sources(t);
    }
    let graph = core.graph();
    for w in &wanted.edges {
        let id = edge_id(&w.to, local_name(w));
        assert!(
            graph.edges.iter().any(|e| e.id == id),
            "wanted edge {id} is not in the graph"
        );
    }
}
