//! The pulled edges of a node: CONNECT and DISCONNECT, the edges of its
//! configuration, and those a gateway pulls for other sites. Each runs as
//! a task of [`crate::transport::edge`]; this module starts and stops
//! them and keeps their records in the node's state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framewire_proto::SubscribeParams;
use framewire_proto::control::EdgeOrigin;
use tokio::sync::{oneshot, watch};
use tracing::{Instrument, info, info_span};

use crate::config::EdgeConfig;
use crate::error::CommandError;
use crate::runtime::core::NodeCore;
use crate::state::StateError;
use crate::transport::edge;

/// What controls a running edge's task.
#[derive(Debug)]
struct Handle {
    /// Stops it.
    stop: watch::Sender<bool>,
    /// Its subscription's budgets (changed in place by CONNECT).
    params: watch::Sender<SubscribeParams>,
}

/// The edges of one node.
#[derive(Debug)]
pub(crate) struct Edges {
    core: Arc<NodeCore>,
    /// Each edge's task.
    stops: Mutex<HashMap<String, Handle>>,
}

impl Edges {
    pub(crate) fn new(core: Arc<NodeCore>) -> Edges {
        Edges {
            core,
            stops: Mutex::new(HashMap::new()),
        }
    }

    fn stops(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handle>> {
        self.stops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a pulled edge. Returns the local stream name.
    pub(crate) fn start(&self, cfg: EdgeConfig, origin: EdgeOrigin) -> Result<String, StateError> {
        self.spawn(cfg, origin, None)
    }

    /// Starts a pulled edge whose upstream's refusal of the subscription,
    /// if it refuses before the stream is live, comes back on the receiver.
    pub(crate) fn start_asking(
        &self,
        cfg: EdgeConfig,
        origin: EdgeOrigin,
    ) -> Result<(String, oneshot::Receiver<CommandError>), StateError> {
        let (tx, rx) = oneshot::channel();
        Ok((self.spawn(cfg, origin, Some(tx))?, rx))
    }

    fn spawn(
        &self,
        cfg: EdgeConfig,
        origin: EdgeOrigin,
        refusal: Option<oneshot::Sender<CommandError>>,
    ) -> Result<String, StateError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (params_tx, params_rx) = watch::channel(cfg.params);
        let local = {
            // The record and its stop go in together (lock order: stops, then state).
            let mut stops = self.stops();
            let local = self.core.with_state(|st| st.add_edge(cfg.clone(), origin))?;
            stops.insert(
                local.clone(),
                Handle {
                    stop: stop_tx,
                    params: params_tx,
                },
            );
            local
        };
        self.core.changed();
        let span = info_span!("edge", local = %local, upstream = %cfg.upstream);
        tokio::spawn(edge::run(self.core.clone(), cfg, stop_rx, params_rx, refusal).instrument(span));
        Ok(local)
    }

    /// CONNECT for an edge this node has, with only its budgets different:
    /// the running subscription takes them (UPDATE_SUBSCRIPTION upstream),
    /// no reconnection; exactly as it runs (a retry whose answer was lost):
    /// nothing to do. `None` when `cfg` is neither.
    pub(crate) fn update(&self, cfg: &EdgeConfig) -> Option<String> {
        let local = cfg.local_name();
        let stops = self.stops();
        let handle = stops.get(&local)?;
        let old = self.core.with_state(|st| st.edge(&local).map(|e| e.config.clone()))?;
        let (a, b) = (old.params, cfg.params);
        let same_edge = old.upstream == cfg.upstream
            && old.stream == cfg.stream
            && old.transport == cfg.transport
            && (old.weight, old.max_rate) == (cfg.weight, cfg.max_rate);
        let same_kind = (a.mode, a.drop_policy, a.priority) == (b.mode, b.drop_policy, b.priority);
        if !same_edge || !same_kind {
            return None;
        }
        if (a.max_frames, a.max_bytes) == (b.max_frames, b.max_bytes) {
            return Some(local);
        }
        self.core.with_state(|st| st.set_edge_params(&local, b));
        let _ = handle.params.send(b);
        drop(stops);
        info!(edge = %local, max_frames = b.max_frames, max_bytes = b.max_bytes, "edge budgets changed in place");
        self.core.changed();
        Some(local)
    }

    /// Stops a pulled edge; its stream goes when its task ends.
    pub(crate) fn stop(&self, local: &str) -> Result<(), StateError> {
        let stop = {
            let mut stops = self.stops();
            self.core.with_state(|st| st.remove_edge(local))?;
            stops.remove(local)
        };
        if let Some(s) = stop {
            let _ = s.stop.send(true);
        }
        self.core.changed();
        Ok(())
    }

    /// Whether an edge of that local name exists.
    pub(crate) fn has(&self, local: &str) -> bool {
        self.core.with_state(|st| st.edge(local).is_some())
    }

    /// Stops the edges a gateway pulls for other sites that nothing here
    /// has taken for `idle`.
    pub(crate) fn reap_idle(&self, idle: Duration) {
        let gone = self.core.with_state(|st| st.idle_gateway_edges(Instant::now(), idle));
        for local in gone {
            info!(stream = %local, after = ?idle, "gateway: nobody takes this stream any more; edge stopped");
            let _ = self.stop(&local);
        }
    }
}

/// The node's pulled edges as a source sees them (the compositor pulls its
/// remote inputs): bound once the node's edges exist, then read-only.
#[derive(Debug, Default)]
pub(crate) struct EdgePort(std::sync::OnceLock<(std::sync::Weak<Edges>, tokio::runtime::Handle)>);

impl EdgePort {
    /// Binds the node's edges and the runtime their tasks run on.
    pub(crate) fn bind(&self, edges: &Arc<Edges>) {
        let _ = self.0.set((Arc::downgrade(edges), tokio::runtime::Handle::current()));
    }

    /// Pulls `cfg` as one of the node's own edges (its configuration's:
    /// a controller leaves it alone); the local stream's name.
    pub(crate) fn start(&self, cfg: EdgeConfig) -> Result<String, String> {
        let (edges, rt) = self.0.get().ok_or("the node's edges are not running")?;
        let edges = edges.upgrade().ok_or("the node is stopping")?;
        let _in_runtime = rt.enter();
        edges.start(cfg, EdgeOrigin::Config).map_err(|e| e.to_string())
    }

    /// Stops a pulled edge (gone already: nothing to do).
    pub(crate) fn stop(&self, local: &str) {
        if let Some(edges) = self.0.get().and_then(|(e, _)| e.upgrade()) {
            let _ = edges.stop(local);
        }
    }
}
