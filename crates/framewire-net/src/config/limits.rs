//! What a node lets its peers hold. Every number a peer could otherwise
//! choose (a payload length, a queue budget, a name, a count of
//! subscriptions or edges, how long it stays silent) is bounded here, by
//! the node. docs/security.md has the table and the memory bound they give.

use std::time::Duration;

/// How long a new connection has to say HELLO (and AUTH).
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections the main port serves at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// A node's limits. [`Limits::default`] gives the documented defaults; the
/// connection caps are also held under the process's descriptor limit
/// when the node starts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Connections the main port serves at once [default: 4096].
    pub max_connections: usize,
    /// Connections each opaque port serves at once [default: 64].
    pub max_opaque_connections: usize,
    /// Time a connection has to finish HELLO (and AUTH) [default: 10 s].
    pub hello_timeout: Duration,
    /// Largest message before HELLO/AUTH is done [default: 4 KiB]; a peer
    /// that announces more is closed at once.
    pub max_handshake_payload: u32,
    /// Largest message afterwards [default: 64 MiB].
    pub max_payload: u32,
    /// The most frames a completeness subscription may queue, whatever it
    /// asks for [default: 1024].
    pub max_output_frames: u32,
    /// The most bytes a completeness subscription may queue, whatever it
    /// asks for [default: 256 MiB].
    pub max_output_bytes: u64,
    /// Bytes waiting in one connection's writer queue (answers, reports,
    /// events, snapshots: not frames, which the outputs bound) [default: 4 MiB].
    pub writer_queue_bytes: usize,
    /// Subscriptions on one connection [default: 64].
    pub max_subscriptions_per_connection: usize,
    /// Outputs (subscriptions, opaque clients, local sinks) in the whole
    /// node [default: 1024].
    pub max_outputs: usize,
    /// Pulled edges in the whole node [default: 256].
    pub max_edges: usize,
    /// A connection that holds no subscription and sends nothing for this
    /// long is closed [default: 60 s].
    pub idle_timeout: Duration,
    /// A socket whose written data is not acknowledged for this long is
    /// closed (TCP_USER_TIMEOUT) [default: 20 s].
    pub write_timeout: Duration,
    /// Bytes a client (a pulled edge) buffers while it waits for an
    /// answer [default: 4 MiB].
    pub client_pending_bytes: usize,
    /// A gateway's edge to another site's stream that nobody here has
    /// subscribed to for this long is stopped [default: 30 s].
    pub gateway_edge_idle: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_opaque_connections: 64,
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            max_handshake_payload: 4096,
            max_payload: framewire_proto::DEFAULT_MAX_PAYLOAD,
            max_output_frames: 1024,
            max_output_bytes: 256 << 20,
            writer_queue_bytes: 4 << 20,
            max_subscriptions_per_connection: 64,
            max_outputs: 1024,
            max_edges: 256,
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(20),
            client_pending_bytes: 4 << 20,
            gateway_edge_idle: Duration::from_secs(30),
        }
    }
}

/// Descriptors set aside for what is not a peer's connection (files,
/// sockets of edges and discovery, shared memory, logs).
pub const DESCRIPTOR_RESERVE: usize = 64;

/// The connection caps a node runs with, given `fds` descriptors (the
/// process's limit, when it is known) and `opaque_ports` opaque ports: the
/// configured caps, held so that the main port and the opaque ports
/// together stay within the descriptors, the opaque ports taking at most a
/// quarter of them. One port can then never starve another.
pub fn connection_caps(limits: &Limits, opaque_ports: usize, fds: Option<usize>) -> (usize, usize) {
    let Some(fds) = fds else {
        return (limits.max_connections, limits.max_opaque_connections);
    };
    let usable = fds.saturating_sub(DESCRIPTOR_RESERVE).max(16);
    let per_opaque = match (usable / 4).checked_div(opaque_ports) {
        None => limits.max_opaque_connections,
        Some(share) => limits.max_opaque_connections.min(share.max(1)),
    };
    // The descriptors never bring the cap below 8; the configuration may.
    let main = limits
        .max_connections
        .min(usable.saturating_sub(per_opaque * opaque_ports).max(8));
    (main, per_opaque)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_the_descriptors() {
        let l = Limits::default();
        assert_eq!(connection_caps(&l, 2, None), (4096, 64));
        assert_eq!(connection_caps(&l, 0, Some(1 << 20)), (4096, 64));
        // 512 descriptors, one opaque port: it gets 64, the main port the rest.
        let (main, opaque) = connection_caps(&l, 1, Some(512));
        assert_eq!(opaque, 64);
        assert_eq!(main, 512 - DESCRIPTOR_RESERVE - 64);
        // Few descriptors, many ports: the ports share a quarter.
        let (main, opaque) = connection_caps(&l, 8, Some(256));
        assert_eq!(opaque, (256 - DESCRIPTOR_RESERVE) / 4 / 8);
        assert!(main + 8 * opaque <= 256 - DESCRIPTOR_RESERVE);
        // A cap set lower than the descriptors allow is kept.
        let low = Limits {
            max_connections: 4,
            ..Limits::default()
        };
        assert_eq!(connection_caps(&low, 0, Some(1 << 20)).0, 4);
    }
}
