//! The node's RTSP server (`--rtsp ADDR`): every stream of the node at
//! `rtsp://ADDR/STREAM`, for the players and recorders people already
//! run. The protocol is framewire-rtsp's [`Connection`]; this is its
//! driver: a task per client, and each playing client one low-latency
//! output of the relay, so a slow client drops its own frames and no one
//! else's.
//!
//! RTP goes interleaved on the RTSP connection, or as datagrams from a
//! pair of UDP ports bound for the client, to the client's own address
//! only.
//!
//! H.264 and H.265 streams are served as they are, and so is MJPEG whose
//! pictures RFC 2435 carries (baseline, 4:2:0 or 4:2:2, standard Huffman
//! tables, at most 2040×2040: its latest picture is checked at DESCRIBE);
//! any other stream is served as its `STREAM~h264` transcoding output
//! (encoded once, whatever the number of clients).

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use framewire_codec::h26x::Codec;
use framewire_proto::{Format, StreamOpen};
use framewire_rtsp::{Catalog, Connection, Encoding, StreamDesc};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

mod client;
mod fanout;

use client::{Client, Serve, host_text};
use fanout::Fanouts;

use crate::error::NetError;
use crate::runtime::core::NodeCore;
use crate::runtime::transcode::open_of;

/// Clients served at once; more are closed at once (after the oldest
/// that plays nothing, if any, makes room).
pub(crate) const MAX_CLIENTS: usize = 256;
/// The kernel's send buffer of a client's socket (Linux doubles it): about
/// a second of 4 Mbit/s video, so a client that falls behind drops frames
/// in its own queue soon instead of being handed seconds-old ones.
const SEND_BUFFER: usize = 256 << 10;

/// Binds `addr` and serves RTSP there until the node stops.
pub(crate) async fn start(core: Arc<NodeCore>, addr: SocketAddr) -> Result<(SocketAddr, JoinHandle<()>), NetError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| NetError::Bind { addr, source: e })?;
    let local = listener.local_addr()?;
    info!(%local, "rtsp server");
    Ok((local, tokio::spawn(accept_loop(core, listener))))
}

/// Wrong answers to the RTSP challenge by client address and by user:
/// past [`Failures::MAX`] within [`Failures::WINDOW`], the address is
/// closed at once and the user's credentials refused, until the window
/// passes (a connection's own limit alone would let a client reconnect
/// and guess on).
#[derive(Default)]
struct Failures(std::sync::Mutex<std::collections::HashMap<FailureKey, (u32, std::time::Instant)>>);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FailureKey {
    Ip(IpAddr),
    User(String),
}

impl Failures {
    const MAX: u32 = 10;
    const WINDOW: Duration = Duration::from_secs(60);
    /// Addresses and users tracked at most (the stalest go first).
    const KEEP: usize = 4096;

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<FailureKey, (u32, std::time::Instant)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn blocked(&self, key: &FailureKey) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|(n, since)| *n >= Self::MAX && since.elapsed() < Self::WINDOW)
    }

    fn add(&self, key: FailureKey, n: u32) {
        if n == 0 {
            return;
        }
        let mut m = self.lock();
        if m.len() >= Self::KEEP {
            m.retain(|_, (_, since)| since.elapsed() < Self::WINDOW);
            if m.len() >= Self::KEEP {
                m.clear();
            }
        }
        let now = std::time::Instant::now();
        let e = m.entry(key.clone()).or_insert((0, now));
        if now.duration_since(e.1) >= Self::WINDOW {
            *e = (0, now);
        }
        let before = e.0;
        e.0 += n;
        if before < Self::MAX && e.0 >= Self::MAX {
            warn!(
                ?key,
                "rtsp server: {} wrong answers to the challenge within a minute; refused for a minute", e.0
            );
        }
    }
}

/// The clients that play nothing yet, oldest first: when every slot is
/// taken, the oldest of them is closed to make room, so a flood of idle
/// connections cannot keep players out.
#[derive(Default)]
struct NotPlaying(std::sync::Mutex<std::collections::VecDeque<(u64, Arc<Notify>)>>);

impl NotPlaying {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(u64, Arc<Notify>)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, id: u64) -> Arc<Notify> {
        let n = Arc::new(Notify::new());
        self.lock().push_back((id, n.clone()));
        n
    }

    fn remove(&self, id: u64) {
        self.lock().retain(|(i, _)| *i != id);
    }

    /// Asks the oldest to close; false if there is none.
    fn evict_oldest(&self) -> bool {
        let Some((_, n)) = self.lock().pop_front() else {
            return false;
        };
        n.notify_one();
        true
    }
}

async fn accept_loop(core: Arc<NodeCore>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let failures = Arc::new(Failures::default());
    let fanouts = Arc::new(Fanouts::default());
    let waiting = Arc::new(NotPlaying::default());
    let mut stop = core.shutdown_signal();
    let mut next_id = 0u64;
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "rtsp server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = async { let _ = stop.wait_for(|s| *s).await; } => return,
        };
        // Credentials: from other hosts unless open, from this one if asked.
        let local = peer.ip().is_loopback();
        let auth = &core.config.rtsp_auth;
        let needs_auth = if local { auth.local_too } else { !auth.open };
        if needs_auth && failures.blocked(&FailureKey::Ip(peer.ip())) {
            debug!(%peer, "rtsp server: refused (too many wrong answers from this address)");
            continue;
        }
        if needs_auth && auth.users.is_none() && core.config.key.is_none() {
            info!(%peer, "rtsp server: refused a client from another host (no users or key to check it against; docs/outputs.md)");
            continue;
        }
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) if waiting.evict_oldest() => {
                match tokio::time::timeout(Duration::from_secs(1), slots.clone().acquire_owned()).await {
                    Ok(Ok(s)) => s,
                    _ => continue,
                }
            }
            Err(_) => {
                debug!(%peer, "rtsp server: {MAX_CLIENTS} clients play; closed");
                continue;
            }
        };
        next_id += 1;
        let id = next_id;
        let evicted = waiting.add(id);
        let (core, waiting, fanouts, failures) = (core.clone(), waiting.clone(), fanouts.clone(), failures.clone());
        tokio::spawn(async move {
            let guard = needs_auth.then_some(&*failures);
            let r = match open(&core, sock, peer, guard.is_some()) {
                Ok(c) => {
                    let ctx = Serve {
                        core: &core,
                        fanouts: &fanouts,
                        auth: guard,
                    };
                    tokio::select! {
                        r = client::serve(c, ctx, || waiting.remove(id)) => r,
                        () = evicted.notified() => {
                            debug!(%peer, "rtsp client closed: the oldest of the idle ones when every slot was taken");
                            Ok(())
                        }
                    }
                }
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                debug!(%peer, error = %e, "rtsp client ended");
            }
            waiting.remove(id);
            drop(slot);
        });
    }
}

/// A client's socket tuned and its connection set up.
fn open(core: &NodeCore, sock: TcpStream, peer: SocketAddr, auth: bool) -> Result<Arc<Client>, NetError> {
    let _ = sock.set_nodelay(true);
    crate::transport::socket::tune(&sock, &core.config.limits);
    if let Err(e) = socket2::SockRef::from(&sock).set_send_buffer_size(SEND_BUFFER) {
        debug!(error = %e, "rtsp client: send buffer not set");
    }
    let local = sock.local_addr()?;
    let mut conn = Connection::new(seed());
    conn.set_host(&host_text(local.ip()));
    if auth {
        conn.require_auth();
    }
    Ok(Arc::new(Client::new(sock, peer, conn)))
}

/// A random seed for a connection's session id, SSRC and RTP offsets.
fn seed() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(N.fetch_add(1, Ordering::Relaxed))
}

/// The node's streams as RTSP offers them, and the UDP ports of one
/// client's connection.
struct Streams<'a> {
    core: &'a Arc<NodeCore>,
    udp: &'a OnceLock<Option<UdpPair>>,
    local: IpAddr,
    /// Users refused for now are refused whatever they answer.
    failures: Option<&'a Failures>,
}

impl Catalog for Streams<'_> {
    fn describe(&self, path: &str) -> Option<StreamDesc> {
        let open = open_of(self.core, path)?;
        if let Some(d) = desc(&open) {
            return Some(d);
        }
        // MJPEG whose pictures RFC 2435 carries goes as it is.
        if open.format == Format::Mjpeg {
            let latest = self
                .core
                .with_state(|st| st.stream(path).and_then(|e| e.latest.clone()));
            match latest.map(|f| framewire_rtsp::jpeg::parse(&f.data)) {
                Some(Ok(_)) => {
                    let mut d = StreamDesc::of(&open.name, Encoding::Jpeg);
                    d.fps = Some((open.fps_num, open.fps_den));
                    return Some(d);
                }
                Some(Err(e)) => debug!(stream = path, reason = %e, "rtsp server: not RFC 2435 JPEG; served as H.264"),
                None => {}
            }
        }
        // Another format: its H.264 transcoding output.
        let derived = format!("{path}~h264");
        if let Err(e) = crate::runtime::transcode::ensure(self.core, &derived) {
            warn!(stream = path, reason = %e, "rtsp server: the stream cannot be given as H.264");
            return None;
        }
        desc(&open_of(self.core, &derived)?)
    }

    fn ha1(&self, user: &str) -> Option<String> {
        if self
            .failures
            .is_some_and(|f| f.blocked(&FailureKey::User(user.to_owned())))
        {
            return None;
        }
        if let Some(key) = &self.core.config.key
            && user == crate::auth::RTSP_KEY_USER
        {
            return Some(framewire_rtsp::auth::ha1(user, &key.rtsp_password()));
        }
        self.core.config.rtsp_auth.users.as_ref()?(user)
    }

    fn udp_ports(&self) -> Option<(u16, u16)> {
        let pair = self.udp.get_or_init(|| UdpPair::bind(self.local)).as_ref()?;
        Some((pair.rtp_port, pair.rtp_port + 1))
    }
}

/// A client's RTP and RTCP sockets: an even port and the next.
struct UdpPair {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    rtp_port: u16,
}

impl UdpPair {
    fn bind(ip: IpAddr) -> Option<UdpPair> {
        for _ in 0..32 {
            let rtp = std::net::UdpSocket::bind((ip, 0)).ok()?;
            let port = rtp.local_addr().ok()?.port();
            if port % 2 != 0 || port == u16::MAX {
                continue;
            }
            let Ok(rtcp) = std::net::UdpSocket::bind((ip, port + 1)) else {
                continue;
            };
            let tokio = |s: std::net::UdpSocket| s.set_nonblocking(true).and_then(|()| UdpSocket::from_std(s));
            return Some(UdpPair {
                rtp: tokio(rtp).ok()?,
                rtcp: tokio(rtcp).ok()?,
                rtp_port: port,
            });
        }
        warn!(%ip, "rtsp server: no pair of UDP ports to bind; RTP over TCP only");
        None
    }
}

fn desc(open: &StreamOpen) -> Option<StreamDesc> {
    let codec = match open.format {
        Format::H264 => Codec::H264,
        Format::H265 => Codec::H265,
        _ => return None,
    };
    let mut d = StreamDesc::new(&open.name, codec);
    d.config = open.codec_config.clone();
    d.fps = Some((open.fps_num, open.fps_den));
    Some(d)
}
