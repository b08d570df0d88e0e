//! Socket options every TCP connection of a node gets, and the test for
//! a peer on this host.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tracing::debug;

use crate::config::Limits;

/// Idle time before keepalive probes, the time between them, and how many
/// go unanswered before the connection is dropped.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_PROBES: u32 = 3;

/// Keepalive on every socket (a peer that went away is found in about
/// a minute), and a bound on how long written data may stay
/// unacknowledged (`limits.write_timeout`).
pub(crate) fn tune(sock: &TcpStream, limits: &Limits) {
    let s = socket2::SockRef::from(sock);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = s.set_tcp_keepalive(&keepalive) {
        debug!(error = %e, "TCP keepalive not set");
    }
    if let Err(e) = s.set_tcp_user_timeout(Some(limits.write_timeout)) {
        debug!(error = %e, "TCP user timeout not set");
    }
}

/// Whether the far end of a TCP connection is on this host: a loopback
/// address, or the connection's own local address. Only such a peer may
/// use shared memory.
pub(crate) fn same_host(peer: SocketAddr, local: SocketAddr) -> bool {
    peer.ip().is_loopback() || peer.ip() == local.ip()
}
