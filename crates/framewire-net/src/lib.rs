//! framewire's network layer: nodes that carry video over TCP.
//!
//! The node runtime, on tokio. It wraps the sans-IO engines
//! (`framewire-proto` for bytes, `framewire-relay` for fan-out) and the
//! node's own state (`state`, plain data) with thin drivers that own
//! sockets and read the clock:
//!
//! - a [`Node`] listens on TCP (default port [`DEFAULT_PORT`]), answers
//!   HELLO and the control commands, and serves each SUBSCRIBE as a relay
//!   output with the subscriber's delivery mode and budgets;
//! - a pulled edge ([`EdgeConfig`]) makes the node a subscriber of another
//!   node's stream, which it serves under its own name: a relay is simply a
//!   node with edges;
//! - sources ([`SourceConfig`]) and local sinks ([`SinkConfig`]) run inside
//!   the node, each kind a module behind the traits of [`api`] and one
//!   entry in [`sources::KINDS`] or [`sinks::KINDS`]; opaque ports
//!   ([`OpaquePortConfig`]) serve bare frame bytes to plain tools;
//! - a [`Client`] speaks to a node from outside (the CLI uses it);
//! - [`discovery`] announces the node on UDP multicast, keeps its peer
//!   table (the sans-IO engine of `framewire-discovery`), probes manual
//!   peers, and makes a node with two legs a site gateway.
//!
//! Its modules are in layers (docs/architecture.md, "The node runtime"):
//! `config` and `api` at the bottom, then `state`, the core, `transport`
//! and `runtime`, and `node` on top, the root that builds a node.
//!
//! # Where a frame goes
//!
//! A pulled edge's reader decodes a frame whose data is a slice of the
//! read buffer (a source makes its own), pushes it into the node's relay
//! (under a mutex held for the push only), and wakes the writers of the
//! outputs that became ready. Each
//! connection's writer takes one frame per output in turn and writes the
//! 28-byte header and the shared payload with one vectored write. No
//! payload is copied between the socket that read it and the sockets that
//! send it.
//!
//! # Failure
//!
//! A peer's bad bytes, oversize lengths or silence affect only its own
//! connection, which is closed with one log line naming the peer.

pub mod api;
pub mod auth;
mod clock;
pub mod config;
mod error;
#[cfg(feature = "fuzz-api")]
#[doc(hidden)]
pub mod fuzz;
pub mod metrics;
mod node;
mod runtime;
mod servers;
pub mod sinks;
pub mod sources;
mod state;
mod transport;

pub use transport::{bufpool, discovery, framed};

pub use auth::{DeploymentKey, KeyError, RTSP_KEY_USER};
pub use clock::now_ns;
pub use config::{
    ConfigError, DEFAULT_HELLO_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_PORT, DEFAULT_SHUTDOWN_GRACE, Delivery,
    DiscoveryConfig, EdgeConfig, EdgeTransport, LegSpec, Limits, LinkPeer, LinkRule, LinkSpec, MulticastConfig,
    NodeConfig, OpaquePortConfig, RECONNECT_FIRST, RECONNECT_MAX, RECONNECT_SLOW, RECONNECT_WINDOW, RateValue,
    ReconnectPolicy, RtspAuth, SINK_FINALIZE_GRACE, SinkConfig, SinkKind, SourceConfig, TlsConfig, TlsDial, TunnelRule,
};
pub use discovery::DiscoveryHandle;
pub use error::NetError;
pub use framewire_tls::rustls;
pub use node::Node;
pub use runtime::transcode::parse_derived;
pub use sinks::archive::ArchiveSink;
pub use sinks::file::FileSink;
pub use sinks::mux::{MuxSink, MuxTarget};
pub use sinks::null::NullSink;
pub use sinks::ring::{RingSink, default_ring_path};
pub use sinks::stdout::StdoutSink;
pub use sources::file::jpeg_size;
pub use sources::replay::ReplayConfig;
pub use sources::v4l2::{
    V4L2_DEFAULT_BUFFERS, V4L2_DEFAULT_FAIL_AFTER, V4L2_DEFAULT_LINGER, V4L2_DEFAULT_RETRY_MAX, V4l2Output,
    V4l2SourceConfig,
};
pub use sources::x11::{X11_DEFAULT_FPS, X11SourceConfig, local_monitors};
pub use state::StateError;
pub use transport::client::{Client, ClientIdentity, DEFAULT_PENDING_LIMIT, DEFAULT_TIMEOUT};
pub use transport::shm_edge::default_socket_path as default_shm_socket;
