//! The controller role: one place that sees every node and wires them.
//!
//! The graph exists twice:
//! - the **current** graph ([`CurrentGraph`]), assembled from what the nodes
//!   report about themselves (their description, streams, pulled edges and
//!   per-output counters), pushed once a second and on every change;
//! - the **wanted** graph ([`WantedGraph`]), a document a person edits, that
//!   the controller persists and a reconciler makes true by sending CONNECT
//!   and DISCONNECT to the *downstream* nodes (edges are pulled).
//!
//! The web server (and the CLI's `framewire graph …`) use only
//! [`ControllerHandle`]; the types here are also the JSON the HTTP API
//! speaks, so their serde shape is part of the documented API
//! (docs/controller.md).
//!
//! # The run loop
//!
//! A sans-IO core holds what the nodes reported, the wanted graph and what
//! the reconciler has in flight. One task owns it and loops:
//!
//! 1. wait for an input: a node's status report, a lost connection, the
//!    answer to a CONNECT/DISCONNECT, a command from a handle, a discovery
//!    event, or the one-second tick;
//! 2. feed it to the core (with `now`);
//! 3. ask the core for the reconciler's actions and hand each to the
//!    node's connection task;
//! 4. rebuild the current graph and publish it if anything changed
//!    (`version` + 1).
//!
//! Invariant: the stored wanted graph, the one in memory and the one the
//! reconciler works from are the same document; an apply that any rule
//! refuses leaves all three, and every node, untouched.
//!
//! One task per node keeps its control connection: dial, HELLO,
//! WATCH_STATUS, then forward reports and carry requests; on loss it tells
//! the main task (the node is shown offline) and redials with backoff.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), framewire_controller::ControllerError> {
//! use framewire_controller::{ControllerConfig, WantedEdge, WantedGraph};
//!
//! let mut cfg = ControllerConfig::new("lab:ctl", "/var/lib/framewire".into());
//! cfg.nodes = vec!["127.0.0.1:7400".into(), "127.0.0.1:7401".into()];
//! let ctl = framewire_controller::start(cfg).await?;
//! let doc = r#"
//! [[edge]]
//! from = "lab:cam"
//! stream = "bars"
//! to = "lab:relay"
//! "#;
//! let wanted: WantedGraph = framewire_controller::store::parse(doc, framewire_controller::store::DocFormat::Toml)
//!     .map_err(framewire_controller::ControllerError::Other)?;
//! ctl.apply(wanted).await?; // refused with reasons, or stored and reconciled
//! let mut graph = ctl.graph();
//! graph.changed().await.ok();
//! println!("{} nodes, {} edges", graph.borrow().nodes.len(), graph.borrow().edges.len());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod metrics;
pub mod model;
pub mod store;

mod core;
#[cfg(feature = "fuzz-api")]
#[doc(hidden)]
pub mod fuzz;
mod handle;
mod preview;
mod runtime;

pub use core::{AlertConfig, RETRY_AFTER, edge_id};
pub use handle::{ControllerError, ControllerHandle, Preview, PreviewFrame};
pub use model::{
    CurrentGraph, EdgeView, NodeView, OutputView, Refusal, StreamView, WantedEdge, WantedGraph, WantedSource,
};
pub use runtime::{ControllerConfig, DEFAULT_STATE_DIR, RECONNECT_FIRST, RECONNECT_MAX, start};
