//! `bench relay --tls`: the ceiling TLS sets on this machine, measured
//! beside the relay. One sender and one receiver, each a thread of its
//! own, move bytes over loopback TCP, then over TLS 1.3 as node
//! connections do (the same rustls configurations, the same record layer,
//! `framewire_tls::stream`): what TLS costs before any relay is involved.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use framewire_tls::rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Each write.
const CHUNK: usize = 1 << 20;

/// Gbit/s of one stream of `bytes` over loopback TCP and over TLS, in
/// that order.
pub(super) fn bare_link(ca_dir: &Path, cert: &Path, key: &Path, bytes: u64) -> anyhow::Result<(f64, f64)> {
    let server = framewire_tls::node_server_config(cert, key, Some(&ca_dir.join(framewire_tls::ca::CA_CERT)))?;
    let client = framewire_tls::client_config(&ca_dir.join(framewire_tls::ca::CA_CERT), Some((cert, key)))?;
    Ok((one_run(None, bytes)?, one_run(Some((server, client)), bytes)?))
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

fn one_run(tls: Option<(Arc<ServerConfig>, Arc<ClientConfig>)>, bytes: u64) -> anyhow::Result<f64> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let server_cfg = tls.as_ref().map(|t| t.0.clone());
    let receiver = std::thread::spawn(move || -> anyhow::Result<Duration> {
        runtime()?.block_on(async move {
            let (sock, _) = TcpListener::from_std(listener)?.accept().await?;
            match server_cfg {
                Some(cfg) => {
                    let (r, mut w, _) = framewire_tls::stream::accept(sock, cfg).await?;
                    let took = drain(r, bytes).await;
                    w.shutdown().await?;
                    took
                }
                None => drain(sock, bytes).await,
            }
        })
    });
    let client_cfg = tls.map(|t| t.1);
    let sender = std::thread::spawn(move || -> anyhow::Result<()> {
        runtime()?.block_on(async move {
            let sock = TcpStream::connect(addr).await?;
            sock.set_nodelay(true)?;
            match client_cfg {
                Some(cfg) => {
                    let name = framewire_tls::server_name("127.0.0.1")?;
                    let (r, w) = framewire_tls::stream::connect(sock, cfg, name).await?;
                    fill(tokio::io::join(r, w), bytes).await
                }
                None => fill(sock, bytes).await,
            }
        })
    });
    sender.join().map_err(|_| anyhow::anyhow!("the sender panicked"))??;
    let took = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the receiver panicked"))??;
    Ok(bytes as f64 * 8.0 / took.as_secs_f64() / 1e9)
}

async fn fill(mut w: impl AsyncRead + AsyncWrite + Unpin, bytes: u64) -> anyhow::Result<()> {
    let buf = vec![0x5au8; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        w.write_all(&buf[..n]).await.context("sending")?;
        left -= n as u64;
    }
    w.flush().await?;
    w.shutdown().await?;
    // Read what the receiver sent (TLS session tickets) until it closes:
    // closing with unread bytes would reset the connection under it.
    let mut sink = [0u8; 4096];
    while matches!(w.read(&mut sink).await, Ok(n) if n > 0) {}
    Ok(())
}

/// Reads everything; the time from the first byte to the last.
async fn drain(mut r: impl AsyncRead + Unpin, bytes: u64) -> anyhow::Result<Duration> {
    let mut buf = vec![0u8; 256 << 10];
    let (mut got, mut first) = (0u64, None);
    while got < bytes {
        let n = r.read(&mut buf).await.context("receiving")?;
        if n == 0 {
            anyhow::bail!("the sender stopped after {got} bytes");
        }
        first.get_or_insert_with(Instant::now);
        got += n as u64;
    }
    Ok(first.map_or(Duration::ZERO, |t| t.elapsed()))
}
