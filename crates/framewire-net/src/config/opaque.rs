//! Opaque ports: one stream's bare frame bytes on a TCP port.

use std::net::SocketAddr;

use framewire_proto::SubscribeParams;

/// One opaque port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpaquePortConfig {
    /// The stream served.
    pub stream: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Delivery mode and budgets of each client's output.
    pub params: SubscribeParams,
    /// Serve it even on a node with a deployment key (an opaque port
    /// cannot authenticate; [`crate::Node::start`] refuses it otherwise).
    pub allow_unauthenticated: bool,
}
