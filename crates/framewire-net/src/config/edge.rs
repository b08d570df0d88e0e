//! Pulled edges: which stream to pull from where, and how to retry.

use std::time::Duration;

use framewire_proto::SubscribeParams;

/// First delay before reconnecting.
pub const RECONNECT_FIRST: Duration = Duration::from_millis(100);
/// Longest delay between tries while the edge is young.
pub const RECONNECT_MAX: Duration = Duration::from_millis(250);
/// After this long without success the edge is reported failed.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(30);
/// Delay between tries once failed.
pub const RECONNECT_SLOW: Duration = Duration::from_secs(2);

/// How a pulled edge retries (defaults: the constants above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Delay before the first retry; doubles up to `max`.
    pub first: Duration,
    /// Longest delay between tries while the edge is not failed.
    pub max: Duration,
    /// Without success for this long, the edge is reported failed.
    pub window: Duration,
    /// Delay between tries once failed.
    pub slow: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            first: RECONNECT_FIRST,
            max: RECONNECT_MAX,
            window: RECONNECT_WINDOW,
            slow: RECONNECT_SLOW,
        }
    }
}

/// Which transport a pulled edge uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EdgeTransport {
    /// Shared memory when the upstream is on this host and both nodes
    /// offer it in HELLO; TCP otherwise.
    #[default]
    Auto,
    /// Always frames over TCP.
    Tcp,
    /// Shared memory or nothing (the edge fails with the reason).
    Shm,
}

impl EdgeTransport {
    /// Parses `auto`, `tcp` or `shm`.
    pub fn parse(s: &str) -> Option<EdgeTransport> {
        match s {
            "auto" => Some(EdgeTransport::Auto),
            "tcp" => Some(EdgeTransport::Tcp),
            "shm" => Some(EdgeTransport::Shm),
            _ => None,
        }
    }
}

/// A stream to pull from another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// `host:port` of the upstream node.
    pub upstream: String,
    /// The stream's name there.
    pub stream: String,
    /// The name to serve it under here (empty: the same name).
    pub local_name: String,
    /// How to subscribe.
    pub params: SubscribeParams,
    /// TCP or shared memory.
    pub transport: EdgeTransport,
    /// Share of the upstream's link under a weighted scheduler (1: default).
    pub weight: u16,
    /// Bytes per second the upstream may send of it (0: no cap).
    pub max_rate: u64,
    /// Over TLS (`Some(true)`), plain TCP (`Some(false)`), or as the
    /// node's `tls.dial` says for a peer of its site (`None`). TLS needs
    /// the node's `tls.ca`.
    pub tls: Option<bool>,
}

impl EdgeConfig {
    /// An edge that pulls `stream` from the node at `upstream` and serves
    /// it under the same name, subscribed with the default parameters
    /// (low-latency) over the transport chosen automatically.
    pub fn new(upstream: impl Into<String>, stream: impl Into<String>) -> EdgeConfig {
        EdgeConfig {
            upstream: upstream.into(),
            stream: stream.into(),
            local_name: String::new(),
            params: SubscribeParams::default(),
            transport: EdgeTransport::Auto,
            weight: 1,
            max_rate: 0,
            tls: None,
        }
    }

    /// Served here under `name` instead.
    pub fn named(mut self, name: impl Into<String>) -> EdgeConfig {
        self.local_name = name.into();
        self
    }

    /// Subscribed with `params`.
    pub fn with_params(mut self, params: SubscribeParams) -> EdgeConfig {
        self.params = params;
        self
    }

    /// Over `transport`.
    pub fn over(mut self, transport: EdgeTransport) -> EdgeConfig {
        self.transport = transport;
        self
    }

    /// The name the stream is served under here.
    pub fn local_name(&self) -> String {
        if self.local_name.is_empty() {
            self.stream.clone()
        } else {
            self.local_name.clone()
        }
    }
}
