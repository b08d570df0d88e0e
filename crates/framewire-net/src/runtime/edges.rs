//! The pulled edges of a node: CONNECT and DISCONNECT, the edges of its
//! configuration, and those a gateway pulls for other sites. Each runs as
//! a task of [`crate::transport::edge`]; this module starts and stops
//! them and keeps their records in the node's state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framewire_proto::control::EdgeOrigin;
use tokio::sync::{oneshot, watch};
use tracing::{Instrument, info, info_span};

use crate::config::EdgeConfig;
use crate::error::CommandError;
use crate::runtime::core::NodeCore;
use crate::state::StateError;
use crate::transport::edge;

/// The edges of one node.
#[derive(Debug)]
pub(crate) struct Edges {
    core: Arc<NodeCore>,
    /// Stops each edge's task.
    stops: Mutex<HashMap<String, watch::Sender<bool>>>,
}

impl Edges {
    pub(crate) fn new(core: Arc<NodeCore>) -> Edges {
        Edges {
            core,
            stops: Mutex::new(HashMap::new()),
        }
    }

    fn stops(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<bool>>> {
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
        let local = {
            // The record and its stop go in together (lock order: stops, then state).
            let mut stops = self.stops();
            let local = self.core.with_state(|st| st.add_edge(cfg.clone(), origin))?;
            stops.insert(local.clone(), stop_tx);
            local
        };
        self.core.changed();
        let span = info_span!("edge", local = %local, upstream = %cfg.upstream);
        tokio::spawn(edge::run(self.core.clone(), cfg, stop_rx, refusal).instrument(span));
        Ok(local)
    }

    /// Stops a pulled edge; its stream goes when its task ends.
    pub(crate) fn stop(&self, local: &str) -> Result<(), StateError> {
        let stop = {
            let mut stops = self.stops();
            self.core.with_state(|st| st.remove_edge(local))?;
            stops.remove(local)
        };
        if let Some(s) = stop {
            let _ = s.send(true);
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
