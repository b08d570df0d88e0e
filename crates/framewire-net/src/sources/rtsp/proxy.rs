//! The guard's driver: the RTSP client talks to the camera through a
//! relay of one connection on this host, which passes every byte and has
//! the [`Guard`] look at those the camera sends. The camera's packets are
//! passed a frame at a time ([`HOLD_BYTES`]).
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

use super::guard::{Feed, Guard, GuardError};

/// How long the relay waits for the client to connect to it.
const ACCEPT_WAIT: Duration = Duration::from_secs(10);
/// The camera's bytes are held until they end a message or a frame (the
/// [`Guard`] tells) or this many have come, and then passed in one write:
/// one wake of the client for a frame instead of one for each of its
/// packets, and no later than the client could have used them (a frame
/// is whole only with its last packet). Packets of a channel that never
/// marks an end are held at most [`HOLD_TIME`].
const HOLD_BYTES: usize = 64 * 1024;
/// The longest packets of a channel that never marks an end (audio, a
/// camera that never sets the marker bit) are held.
const HOLD_TIME: Duration = Duration::from_millis(2);
/// Most read from the camera at once.
const READ_BYTES: usize = 64 * 1024;

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
    let task = tokio::spawn(relay(listener, camera, refused.clone(), HOLD_TIME));
    Ok(Relayed {
        url: relayed_url,
        refused,
        task,
    })
}

async fn relay(listener: TcpListener, camera: TcpStream, refused: Arc<Mutex<Option<GuardError>>>, hold_time: Duration) {
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
        let mut buf = vec![0u8; HOLD_BYTES + READ_BYTES];
        let mut held = 0;
        // While bytes are held: the time to pass them anyway. Dropped when
        // they go before it, so it never wakes the task for nothing.
        let mut hold: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            tokio::select! {
                biased;
                r = camera_rx.read(&mut buf[held..]) => {
                    let n = match r {
                        Ok(0) | Err(_) => {
                            let _ = client_tx.write_all(&buf[..held]).await;
                            return;
                        }
                        Ok(n) => n,
                    };
                    let feed = match guard.feed(&buf[held..held + n]) {
                        Ok(feed) => feed,
                        Err(e) => {
                            *refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            return;
                        }
                    };
                    held += n;
                    match (feed, &hold) {
                        _ if held >= HOLD_BYTES => {}
                        (Feed::End, _) => {}
                        // The end comes with the frame's (or message's) last
                        // bytes: no timer to arm.
                        (Feed::Hold, None) => continue,
                        (Feed::Hold | Feed::Soon, Some(h)) if !h.is_elapsed() => continue,
                        (Feed::Hold | Feed::Soon, Some(_)) => {}
                        (Feed::Soon, None) => {
                            hold = Some(Box::pin(tokio::time::sleep(hold_time)));
                            continue;
                        }
                    }
                }
                () = async { hold.as_mut().expect("armed").await }, if hold.is_some() => {}
            }
            hold = None;
            if client_tx.write_all(&buf[..held]).await.is_err() {
                return;
            }
            held = 0;
        }
    };
    // Either direction ending ends the session: the halves drop, and both
    // connections close.
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A camera's connection and the client's, through a relay holding
    /// bytes up to `hold`.
    async fn through(hold: Duration) -> (TcpStream, TcpStream, JoinHandle<()>) {
        let cam_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let camera = TcpStream::connect(cam_listener.local_addr().unwrap()).await.unwrap();
        let (cam, _) = cam_listener.accept().await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let task = tokio::spawn(relay(listener, camera, Arc::default(), hold));
        let client = TcpStream::connect(at).await.unwrap();
        (cam, client, task)
    }

    /// What the client's first read returns, read as soon as anything
    /// comes.
    fn first_read(mut client: TcpStream) -> JoinHandle<Vec<u8>> {
        tokio::spawn(async move {
            let mut got = vec![0u8; 64 * 1024];
            let n = client.read(&mut got).await.unwrap();
            got.truncate(n);
            got
        })
    }

    fn packet(marker: bool) -> Vec<u8> {
        let mut p = vec![b'$', 0, 0x05, 0x78];
        p.extend_from_slice(&[0x80, if marker { 0x80 | 96 } else { 96 }]);
        p.resize(4 + 1400, 7);
        p
    }

    #[tokio::test]
    async fn a_frames_packets_reach_the_client_in_one_piece_when_it_ends() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let (mut cam, client, _task) = through(Duration::from_secs(3)).await;
            // The client reads as soon as anything comes.
            let reader = first_read(client);
            let mut frame = Vec::new();
            for i in 0..10 {
                let p = packet(i == 9);
                // (Fails once the client has read and gone, if it read
                // early: the assertion below says so.)
                let _ = cam.write_all(&p).await;
                frame.extend_from_slice(&p);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let got = reader.await.unwrap();
            let n = got.len();
            // Had the relay passed each packet on, the first read would
            // hold the first packet (the next comes 5 ms later).
            assert_eq!(n, frame.len(), "one write for the whole frame");
            assert_eq!(&got[..n], &frame[..]);
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn bytes_without_an_end_are_held_no_longer_than_the_hold_time() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let (mut cam, mut client, _task) = through(Duration::from_millis(50)).await;
            let p = packet(false);
            let t = std::time::Instant::now();
            cam.write_all(&p).await.unwrap();
            let mut got = vec![0u8; p.len()];
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(got, p);
            let waited = t.elapsed();
            assert!(waited >= Duration::from_millis(45), "held {waited:?}: not held");
            assert!(waited < Duration::from_secs(2), "held {waited:?}");
            // And what is left when the camera closes is passed on.
            cam.write_all(&p[..100]).await.unwrap();
            drop(cam);
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest, &p[..100]);
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_channel_that_marks_its_frames_is_held_to_the_frames_end() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let (mut cam, mut client, _task) = through(Duration::from_millis(20)).await;
            let first = packet(true);
            cam.write_all(&first).await.unwrap();
            let mut got = vec![0u8; first.len()];
            client.read_exact(&mut got).await.unwrap();
            // Channel 0 marks its ends now: a packet of its next frame
            // waits for the frame's last, past the hold time.
            let reader = first_read(client);
            let frame = [packet(false), packet(true)];
            cam.write_all(&frame[0]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            cam.write_all(&frame[1]).await.unwrap();
            assert_eq!(reader.await.unwrap(), frame.concat());
        })
        .await
        .unwrap();
    }
}
