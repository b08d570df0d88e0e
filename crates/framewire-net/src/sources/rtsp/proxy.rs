//! The guard's driver: the RTSP client talks to the camera through a
//! relay of one connection on this host, which passes every byte and has
//! the [`Guard`] look at those the camera sends.
//!
//! The relay connects to the camera first and then listens on the same
//! local address that connection uses, so the client's own address (where
//! it binds its UDP ports and what the camera sends RTP to) is the one the
//! camera sees.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use url::Url;

use super::guard::{Guard, GuardError};

/// How long the relay waits for the client to connect to it.
const ACCEPT_WAIT: Duration = Duration::from_secs(10);

/// A relay for one session.
#[derive(Debug)]
pub(super) struct Relayed {
    /// What the client is to open: the camera's URL at the relay's address.
    pub(super) url: Url,
    /// What the guard refused, once it did.
    pub(super) refused: Arc<Mutex<Option<GuardError>>>,
    task: JoinHandle<()>,
}

impl Drop for Relayed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects to the camera of `url` and starts the relay.
pub(super) async fn start(url: &Url) -> std::io::Result<Relayed> {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port().unwrap_or(554);
    let camera = TcpStream::connect((host, port)).await?;
    camera.set_nodelay(true)?;
    let local = camera.local_addr()?.ip();
    let listener = TcpListener::bind(SocketAddr::new(local, 0)).await?;
    let at = listener.local_addr()?;
    let mut relayed_url = url.clone();
    relayed_url
        .set_ip_host(at.ip())
        .and_then(|()| relayed_url.set_port(Some(at.port())))
        .map_err(|()| std::io::Error::other("the camera's url cannot be given another address"))?;
    let refused = Arc::new(Mutex::new(None));
    let task = tokio::spawn(relay(listener, camera, refused.clone()));
    Ok(Relayed {
        url: relayed_url,
        refused,
        task,
    })
}

async fn relay(listener: TcpListener, camera: TcpStream, refused: Arc<Mutex<Option<GuardError>>>) {
    let Ok(Ok((client, _))) = tokio::time::timeout(ACCEPT_WAIT, listener.accept()).await else {
        return;
    };
    drop(listener);
    let _ = client.set_nodelay(true);
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut camera_rx, mut camera_tx) = camera.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut client_rx, &mut camera_tx).await;
    };
    let down = async {
        let mut guard = Guard::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match camera_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if let Err(e) = guard.feed(&buf[..n]) {
                *refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return;
            }
            if client_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either direction ending ends the session: the halves drop, and both
    // connections close.
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
