//! The controller role (seed 003 "Control Plane", DESIGN decisions 3 and 8).
//!
//! The graph exists twice:
//! - the **current** graph ([`CurrentGraph`]), assembled from what the nodes
//!   report about themselves (their description, streams, pulled edges and
//!   per-output counters), refreshed once a second and on every change;
//! - the **wanted** graph ([`WantedGraph`]), a document a person edits, that
//!   the controller persists and a reconciler makes true by sending CONNECT
//!   and DISCONNECT to the *downstream* nodes.
//!
//! The web server (and the CLI's `framewire graph …`) use only
//! [`ControllerHandle`]; the types here are also the JSON the HTTP API
//! speaks, so their serde shape is part of the documented API
//! (docs/controller.md).

pub mod model;
pub mod store;

mod core;
mod handle;
mod preview;
mod runtime;

pub use core::{RETRY_AFTER, edge_id};
pub use handle::{ControllerError, ControllerHandle, Preview, PreviewFrame};
pub use model::{CurrentGraph, EdgeView, NodeView, OutputView, Refusal, StreamView, WantedEdge, WantedGraph};
pub use runtime::{ControllerConfig, DEFAULT_STATE_DIR, RECONNECT_FIRST, RECONNECT_MAX, start};
