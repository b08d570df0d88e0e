//! Everything a node is configured with, as plain data: the node, its
//! limits, pulled edges and how they retry, opaque ports, discovery and
//! gateway legs, sources and sinks. Nothing here runs anything; the
//! runtime reads these types and nothing in this tree reads the runtime.
//! A source or sink is any kind's configuration behind the plug-in traits
//! of [`crate::api`] (each kind's own settings live with the kind).

mod delivery;
mod discovery;
mod edge;
mod limits;
mod link;
mod opaque;
mod sink;
mod source;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use framewire_proto::{Format, FunctionFlags};
use framewire_relay::RelayConfig;

use crate::auth::DeploymentKey;

pub use delivery::Delivery;
pub use discovery::{
    DEFAULT_DISCOVERY_PORT, DEFAULT_GROUP, DEFAULT_TTL, DiscoveryConfig, LegSpec, MulticastConfig, TunnelRule,
};
pub use edge::{
    EdgeConfig, EdgeTransport, RECONNECT_FIRST, RECONNECT_MAX, RECONNECT_SLOW, RECONNECT_WINDOW, ReconnectPolicy,
};
pub use limits::{DEFAULT_HELLO_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DESCRIPTOR_RESERVE, Limits, connection_caps};
pub use link::{LinkPeer, LinkRule, LinkSpec, RateValue, parse_rate, parse_scheduler, rule_for};
pub use opaque::OpaquePortConfig;
pub use sink::{SINK_FINALIZE_GRACE, SinkConfig, SinkKind};
pub use source::{MASK, SourceConfig, masked};
pub use tls::{TlsConfig, TlsDial};

/// A configuration that does not hold (a bad key, a value out of range),
/// with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError(message.into())
    }
}

/// The port a node listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7400;
/// How long shutdown waits for in-flight frames.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Everything a node is started with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `namespace:instance`.
    pub name: String,
    /// Where to accept connections.
    pub listen: SocketAddr,
    /// Site id (0 = local).
    pub site_id: u16,
    /// Relay defaults (budgets for subscriptions that leave them at zero).
    pub relay: RelayConfig,
    /// Streams produced here.
    pub sources: Vec<SourceConfig>,
    /// Streams pulled from other nodes and served here.
    pub edges: Vec<EdgeConfig>,
    /// Local consumers.
    pub sinks: Vec<SinkConfig>,
    /// Headerless ports for plain tools.
    pub opaque_ports: Vec<OpaquePortConfig>,
    /// What peers may hold of the node: connections, payloads, queues,
    /// subscriptions, edges, idle time (docs/security.md).
    pub limits: Limits,
    /// Time shutdown waits for in-flight frames.
    pub shutdown_grace: Duration,
    /// How pulled edges retry.
    pub reconnect: ReconnectPolicy,
    /// Multicast discovery and manual peers (none: off).
    pub discovery: Option<DiscoveryConfig>,
    /// Deployment key: every TCP connection, in and out, authenticates
    /// both ends with it (none: no authentication).
    pub key: Option<DeploymentKey>,
    /// TLS on the node's port and to its peers (none: plain TCP).
    pub tls: Option<TlsConfig>,
    /// Where to serve `GET /metrics` (Prometheus text; none: off).
    pub metrics: Option<SocketAddr>,
    /// Where to serve the node's streams over RTSP (`rtsp://ADDR/STREAM`;
    /// none: off). Clients from this host only, until RTSP authentication.
    pub rtsp: Option<SocketAddr>,
    /// Who may play from the RTSP server.
    pub rtsp_auth: RtspAuth,
    /// Unix socket for shared-memory subscriptions from this host (none:
    /// off; see docs/shm.md, "Edges between nodes").
    pub shm_socket: Option<std::path::PathBuf>,
    /// Announce the controller function (0x8): the process runs a controller.
    pub controller: bool,
    /// Where the node keeps what outlives it: V4L2 control values set
    /// remotely (`v4l2-controls.toml`), re-applied when it starts again.
    /// `None`: nothing is kept.
    pub state_dir: Option<std::path::PathBuf>,
    /// Stream formats accepted on pulled edges (empty: every format). An
    /// upstream's STREAM_OPEN in another format is refused with
    /// `unsupported-format`, and status reports list these for controllers.
    pub accept_formats: Vec<Format>,
    /// How subscriptions to peers share their paths (empty: each
    /// connection round-robins its subscriptions, uncapped).
    pub links: Vec<LinkRule>,
}

impl NodeConfig {
    /// A node called `name` on `listen` with nothing configured.
    pub fn new(name: &str, listen: SocketAddr) -> NodeConfig {
        NodeConfig {
            name: name.to_owned(),
            listen,
            site_id: 0,
            relay: RelayConfig::default(),
            sources: Vec::new(),
            edges: Vec::new(),
            sinks: Vec::new(),
            opaque_ports: Vec::new(),
            limits: Limits::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            reconnect: ReconnectPolicy::default(),
            discovery: None,
            key: None,
            tls: None,
            metrics: None,
            rtsp: None,
            rtsp_auth: RtspAuth::default(),
            shm_socket: None,
            controller: false,
            state_dir: None,
            accept_formats: Vec::new(),
            links: Vec::new(),
        }
    }

    /// The function flags this configuration implies.
    pub fn function_flags(&self) -> FunctionFlags {
        let mut f = FunctionFlags::RELAY;
        if !self.sources.is_empty() {
            f = f | FunctionFlags::SOURCE;
        }
        if !self.sinks.is_empty() {
            f = f | FunctionFlags::SINK;
        }
        if self.controller {
            f = f | FunctionFlags::CONTROLLER;
        }
        f
    }
}

/// A user's RTSP Digest `HA1` by name (`None`: unknown or not allowed).
pub type Ha1Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Who may play from the node's RTSP server (docs/outputs.md, "Who may
/// play"). By default clients on this host play without credentials and
/// others need them: a user of `users`, or the deployment key's user.
#[derive(Clone, Default)]
pub struct RtspAuth {
    /// Clients on other hosts may play without credentials.
    pub open: bool,
    /// Clients on this host need credentials too.
    pub local_too: bool,
    /// Users (the web UI's, viewer role or above): their HA1 by name.
    pub users: Option<Ha1Lookup>,
}

impl std::fmt::Debug for RtspAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspAuth")
            .field("open", &self.open)
            .field("local_too", &self.local_too)
            .field("users", &self.users.is_some())
            .finish()
    }
}
