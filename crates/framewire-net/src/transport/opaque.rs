//! Opaque output ports: a TCP port that serves one stream's frame bytes
//! with no headers and no control, so that plain tools read it, e.g.
//! `ffplay -f mjpeg tcp://HOST:PORT`.
//!
//! Each client gets an output of its own (low-latency unless configured
//! otherwise): a slow client drops whole frames, never half of one, so the
//! byte stream it reads is always a sequence of complete images.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use framewire_proto::TransportMode;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tracing::{Instrument, debug, info, info_span};

use crate::config::OpaquePortConfig;
use crate::error::NetError;
use crate::runtime::core::{NodeCore, OutputEntry};
use crate::transport::framed::write_all_vectored;

/// Serves `cfg.stream` on its own port, at most `cap` clients at once
/// (each opaque port has its own cap: a flood on it never takes the
/// descriptors the main port needs).
pub(crate) async fn start(
    core: Arc<NodeCore>,
    cfg: OpaquePortConfig,
    cap: usize,
) -> Result<tokio::task::JoinHandle<()>, NetError> {
    let listener = TcpListener::bind(cfg.listen).await.map_err(|source| NetError::Bind {
        addr: cfg.listen,
        source,
    })?;
    info!(stream = %cfg.stream, addr = %listener.local_addr()?, "opaque port listening");
    let open = Arc::new(AtomicUsize::new(0));
    Ok(tokio::spawn(async move {
        let mut stop = core.shutdown_signal();
        loop {
            let (sock, peer) = tokio::select! {
                a = listener.accept() => match a {
                    Ok(x) => x,
                    Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
                },
                _ = stop.changed() => return,
            };
            if open.fetch_add(1, Ordering::AcqRel) >= cap {
                open.fetch_sub(1, Ordering::AcqRel);
                debug!(%peer, cap, stream = %cfg.stream, "opaque client refused: the port serves its limit");
                continue;
            }
            crate::transport::socket::tune(&sock, &core.config.limits);
            let span = info_span!("opaque", %peer, stream = %cfg.stream);
            let (core, cfg, open) = (core.clone(), cfg.clone(), open.clone());
            tokio::spawn(
                async move {
                    serve(core, cfg, sock, peer).await;
                    open.fetch_sub(1, Ordering::AcqRel);
                }
                .instrument(span),
            );
        }
    }))
}

async fn serve(core: Arc<NodeCore>, cfg: OpaquePortConfig, sock: TcpStream, peer: SocketAddr) {
    let _ = sock.set_nodelay(true);
    let (mut r, mut w) = sock.into_split();
    let notify = Arc::new(Notify::new());
    let mut params = cfg.params;
    params.transport = TransportMode::Opaque;
    let entry = OutputEntry {
        stream: cfg.stream.clone(),
        channel: 0,
        peer: format!("{peer} opaque"),
        waker: notify.clone(),
        events: None,
    };
    let id = match core.add_output(&cfg.stream, &params, entry) {
        Ok((id, _)) => id,
        Err(e) => {
            info!(reason = %e, "opaque client refused");
            return;
        }
    };
    info!("opaque client attached");
    let mut stop = core.shutdown_signal();
    let mut discard = [0u8; 512];
    loop {
        let tx = core.poll_transmit(id);
        match tx {
            Some(tx) => {
                if write_all_vectored(&mut w, &[&tx.frame.data]).await.is_err() {
                    break;
                }
                core.sent(id);
            }
            None => {
                tokio::select! {
                    () = notify.notified() => {}
                    n = r.read(&mut discard) => if matches!(n, Ok(0) | Err(_)) { break },
                    _ = stop.changed() => break,
                }
            }
        }
    }
    core.remove_output(id);
    info!("opaque client gone");
}
