//! The accept loop and the connections: HTTP/1.1 on hyper with a timer, so
//! a slow or greedy client cannot hold the server.
//!
//! - A connection is admitted only under the total and per-address caps
//!   ([`WebLimits`]); beyond them it gets a short 503 and is closed.
//! - A client has `header_timeout` to send a whole request header, and a
//!   kept-alive connection closes when no next request starts within the
//!   same time (hyper's header-read timer runs while a connection waits
//!   for a request).
//! - A response that cannot be written for `write_stall_timeout` (the
//!   client stopped reading) closes the connection.
//! - TCP keepalive finds peers that went away without a word.
//!
//! The connection's slot is held by its socket, so a WebSocket keeps
//! counting against the caps after the upgrade, until it closes.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::limits::{Connections, Full, Slot, WebLimits};

/// Idle time before TCP keepalive probes start, the time between probes.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `stop` turns true; over TLS when
/// `tls` is given (HTTPS).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: WebLimits,
    conns: Arc<Connections>,
    tls: Option<framewire_tls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (EMFILE) and the like: say so now and
                // then, and give the connections a moment to end.
                if last_accept_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, "web server cannot accept a connection");
                    last_accept_error = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match conns.take(peer.ip()) {
            Ok(slot) => slot,
            Err(full) => {
                refuse(&stream, full);
                continue;
            }
        };
        let sock = socket2::SockRef::from(&stream);
        let _ = sock.set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(KEEPALIVE_IDLE)
                .with_interval(KEEPALIVE_INTERVAL)
                .with_retries(3),
        );
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            slot,
            (router.clone(), tls.clone()),
            limits.clone(),
            stop.clone(),
        ));
    }
}

/// A short answer to a connection over the caps. The socket is new, so the
/// few bytes fit its buffer: one non-blocking write, then close.
fn refuse(stream: &TcpStream, full: Full) {
    let why = match full {
        Full::Total(n) => format!("the web server has {n} connections open, its limit"),
        Full::Key(n) => format!("{n} connections from this address are open, the limit"),
    };
    let body = serde_json::json!({ "error": why }).to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
    tracing::debug!(%why, "connection refused");
}

/// The server's end of a request's connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalAddr(pub(crate) SocketAddr);

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot<IpAddr>,
    (router, tls): (Router, Option<framewire_tls::TlsAcceptor>),
    limits: WebLimits,
    stop: watch::Receiver<bool>,
) {
    // The address the client reached (WebRTC announces it as its candidate).
    let local = stream.local_addr().ok().map(LocalAddr);
    let stall = Arc::new(StallClock::new());
    let watched = Watched {
        inner: stream,
        stall: stall.clone(),
        _slot: slot,
    };
    match tls {
        None => http(TokioIo::new(watched), peer, local, stall, router, limits, stop).await,
        Some(acceptor) => {
            // The handshake gets the time a request header gets.
            match tokio::time::timeout(limits.header_timeout, acceptor.accept(watched)).await {
                Ok(Ok(tls)) => http(TokioIo::new(tls), peer, local, stall, router, limits, stop).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
                Err(_) => tracing::debug!(%peer, "TLS handshake took too long; connection closed"),
            }
        }
    }
}

/// HTTP/1.1 on a connection (plain or TLS) until it ends, stalls or the
/// server stops.
async fn http<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    local: Option<LocalAddr>,
    stall: Arc<StallClock>,
    router: Router,
    limits: WebLimits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = router.map_request(move |mut req: axum::http::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        if let Some(l) = local {
            req.extensions_mut().insert(l);
        }
        req
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder
        .serve_connection(io, TowerToHyperService::new(svc))
        .with_upgrades();
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "web connection ended");
                }
                return;
            }
            _ = tick.tick() => {
                if stall.stalled_for() > limits.write_stall_timeout {
                    tracing::debug!(%peer, "web client stopped reading; connection closed");
                    return;
                }
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// When writes to a socket started to wait (0: they do not).
#[derive(Debug)]
struct StallClock {
    epoch: Instant,
    since_us: AtomicU64,
}

impl StallClock {
    fn new() -> StallClock {
        StallClock {
            epoch: Instant::now(),
            since_us: AtomicU64::new(0),
        }
    }

    fn now_us(&self) -> u64 {
        // At least 1, so it never reads as "not waiting".
        (self.epoch.elapsed().as_micros() as u64).max(1)
    }

    fn pending(&self) {
        if self.since_us.load(Ordering::Relaxed) == 0 {
            self.since_us.store(self.now_us(), Ordering::Relaxed);
        }
    }

    fn progressed(&self) {
        self.since_us.store(0, Ordering::Relaxed);
    }

    fn stalled_for(&self) -> Duration {
        match self.since_us.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_micros(self.now_us().saturating_sub(since)),
        }
    }
}

/// A socket that notes when its writes wait, and holds its connection slot.
#[derive(Debug)]
struct Watched {
    inner: TcpStream,
    stall: Arc<StallClock>,
    _slot: Slot<IpAddr>,
}

impl Watched {
    fn note<T>(&self, p: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match &p {
            Poll::Pending => self.stall.pending(),
            Poll::Ready(_) => self.stall.progressed(),
        }
        p
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(p)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(p)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(p)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
