//! A connection's two halves, over plain TCP or TLS: the reader and the
//! writer the rest of the transport works with, whichever it is.
//!
//! On a node's port both arrive: a TLS connection begins with a handshake
//! record (first byte 0x16), a plain one with HELLO's header (message type
//! 0x0002, first byte 0x02), so one peeked byte tells them apart.

use std::net::SocketAddr;
use std::sync::Arc;

use framewire_tls::rustls::{self, ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::NetError;

/// The reading half of a connection.
pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a connection.
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// A plain TCP connection's halves.
pub(crate) fn plain(sock: TcpStream) -> (ReadHalf, WriteHalf) {
    let (r, w) = sock.into_split();
    (Box::new(r), Box::new(w))
}

/// Whether the peer of a just-accepted connection starts with TLS. Waits
/// for its first byte (the caller bounds the wait).
pub(crate) async fn starts_tls(sock: &TcpStream) -> std::io::Result<bool> {
    let mut b = [0u8; 1];
    let n = sock.peek(&mut b).await?;
    Ok(n == 1 && b[0] == TLS_HANDSHAKE)
}

/// What the server side of a TLS handshake learnt about the client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Accepted {
    /// The client showed a certificate that verified against the CA.
    pub(crate) certified: bool,
}

/// The server side of a TLS handshake on an accepted connection.
pub(crate) async fn accept_tls(
    sock: TcpStream,
    config: Arc<ServerConfig>,
    peer: SocketAddr,
) -> Result<(ReadHalf, WriteHalf, Accepted), NetError> {
    let (r, w, certified) = framewire_tls::stream::accept(sock, config)
        .await
        .map_err(|e| tls_error(&peer.to_string(), &e))?;
    Ok((Box::new(r), Box::new(w), Accepted { certified }))
}

/// The client side: TLS over `sock` to the node at `addr`, whose
/// certificate must name its host (an IP address or a DNS name).
pub(crate) async fn dial_tls(
    sock: TcpStream,
    config: Arc<ClientConfig>,
    addr: &str,
) -> Result<(ReadHalf, WriteHalf), NetError> {
    let host = host_of(addr);
    let name = framewire_tls::server_name(host).map_err(|e| NetError::Tls {
        peer: addr.to_owned(),
        reason: e.to_string(),
    })?;
    let (r, w) = framewire_tls::stream::connect(sock, config, name)
        .await
        .map_err(|e| tls_error(addr, &e))?;
    Ok((Box::new(r), Box::new(w)))
}

/// `host` of `host:port` or `[v6]:port`.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A failed handshake in words: rustls says what was wrong with a
/// certificate; an alert from the other end says what it disliked in ours.
pub(crate) fn tls_error(peer: &str, e: &std::io::Error) -> NetError {
    let reason = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("the peer ended the handshake ({alert:?}): it did not accept our certificate, or we showed none")
        }
        Some(rustls::Error::InvalidCertificate(c)) => format!("its certificate is refused: {c}"),
        Some(other) => other.to_string(),
        None => return NetError::Io(std::io::Error::new(e.kind(), e.to_string())),
    };
    NetError::Tls {
        peer: peer.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_of_an_address() {
        assert_eq!(host_of("127.0.0.1:7400"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7400"), "::1");
        assert_eq!(host_of("gw.example:7400"), "gw.example");
    }
}
