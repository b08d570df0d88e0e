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
use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use framewire_codec::h26x::Codec;
use framewire_proto::{DeliveryMode, Format, StreamOpen, SubscribeParams};
use framewire_relay::OutputId;
use framewire_rtsp::{Catalog, Connection, Encoding, Output, StreamDesc};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::error::NetError;
use crate::runtime::core::{NodeCore, OutputEntry};
use crate::runtime::transcode::open_of;

/// Clients served at once; more are closed at once (after the oldest
/// that plays nothing, if any, makes room).
pub(crate) const MAX_CLIENTS: usize = 256;
/// The kernel's send buffer of a client's socket (Linux doubles it): about
/// a second of 4 Mbit/s video, so a client that falls behind drops frames
/// in its own queue soon instead of being handed seconds-old ones.
const SEND_BUFFER: usize = 256 << 10;
/// A client that takes no bytes for this long is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that sends no request and plays nothing for this long is
/// closed (a playing client over TCP is alive while it reads).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

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

/// The NAL units of the frames clients are sent, found once per frame for
/// every client of its stream: the last few frames, each kept alive by the
/// cache (so its address, the key, names no other frame meanwhile).
#[derive(Default)]
struct Splits(std::sync::Mutex<std::collections::VecDeque<(bytes::Bytes, NalRanges)>>);

/// Where the NAL units of a frame are, without their start codes.
type NalRanges = Arc<[std::ops::Range<usize>]>;

impl Splits {
    const KEEP: usize = 8;

    fn of(&self, data: &bytes::Bytes) -> NalRanges {
        let mut cache = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let same = |b: &bytes::Bytes| b.as_ptr() == data.as_ptr() && b.len() == data.len();
        if let Some((_, r)) = cache.iter().find(|(b, _)| same(b)) {
            return r.clone();
        }
        let ranges: NalRanges = framewire_rtsp::nal_ranges(data).into();
        if cache.len() == Self::KEEP {
            cache.pop_front();
        }
        cache.push_back((data.clone(), ranges.clone()));
        ranges
    }
}

async fn accept_loop(core: Arc<NodeCore>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let failures = Arc::new(Failures::default());
    let splits = Arc::new(Splits::default());
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
        let (core, waiting, splits, failures) = (core.clone(), waiting.clone(), splits.clone(), failures.clone());
        tokio::spawn(async move {
            let guard = needs_auth.then_some(&*failures);
            let r = tokio::select! {
                r = client(&core, &splits, sock, peer, guard, || waiting.remove(id)) => r,
                () = evicted.notified() => {
                    debug!(%peer, "rtsp client closed: the oldest of the idle ones when every slot was taken");
                    Ok(())
                }
            };
            if let Err(e) = r {
                debug!(%peer, error = %e, "rtsp client ended");
            }
            waiting.remove(id);
            drop(slot);
        });
    }
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

/// A playing client's output of the relay; removed when dropped.
struct Playing {
    core: Arc<NodeCore>,
    id: OutputId,
    wake: Arc<Notify>,
    /// JPEG images (no NAL units to find).
    jpeg: bool,
}

impl Drop for Playing {
    fn drop(&mut self) {
        self.core.remove_output(self.id);
    }
}

/// Serves one client; `plays` is called when it first plays.
async fn client(
    core: &Arc<NodeCore>,
    splits: &Splits,
    sock: TcpStream,
    peer: SocketAddr,
    auth: Option<&Failures>,
    plays: impl Fn(),
) -> Result<(), NetError> {
    let _ = sock.set_nodelay(true);
    crate::transport::socket::tune(&sock, &core.config.limits);
    if let Err(e) = socket2::SockRef::from(&sock).set_send_buffer_size(SEND_BUFFER) {
        debug!(error = %e, "rtsp client: send buffer not set");
    }
    let local = sock.local_addr()?;
    let mut conn = Connection::new(seed());
    conn.set_host(&host_text(local.ip()));
    if auth.is_some() {
        conn.require_auth();
    }
    let mut failed = 0;
    let (mut rd, mut wr) = sock.into_split();
    let mut buf = vec![0u8; 16 << 10];
    let mut playing: Option<Playing> = None;
    let udp = OnceLock::new();
    let streams = Streams {
        core,
        udp: &udp,
        local: local.ip(),
        failures: auth,
    };
    // One idle timer, moved on by each read (not a new one each turn).
    let idle = tokio::time::sleep(IDLE_TIMEOUT);
    tokio::pin!(idle);
    loop {
        while let Some(o) = conn.poll_output() {
            match o {
                Output::Send(b) => write_parts(&mut wr, std::slice::from_ref(&b)).await?,
                Output::SendParts(parts) => write_parts(&mut wr, &parts).await?,
                Output::Datagrams { port, rtcp, packets } => send(&udp, peer.ip(), port, rtcp, &packets).await,
                Output::Play { stream } => {
                    playing = Some(play(core, &stream, peer)?);
                    plays();
                    info!(%peer, stream, user = conn.user().unwrap_or("-"), "rtsp client plays");
                }
                Output::Stop => playing = None,
                Output::Close { reason } => {
                    debug!(%peer, reason, "rtsp client closed");
                    return Ok(());
                }
            }
        }
        let wake = playing.as_ref().map(|p| p.wake.clone());
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
                    conn.receive(&buf[..n], &streams);
                    // Wrong answers count across connections too.
                    if let Some(f) = auth {
                        let (n, user) = conn.failed_auth();
                        if n > failed {
                            f.add(FailureKey::Ip(peer.ip()), n - failed);
                            if let Some(u) = user {
                                f.add(FailureKey::User(u.to_owned()), n - failed);
                            }
                            failed = n;
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            },
            () = &mut idle => {
                // Over TCP a playing client is alive while it reads; over
                // UDP it sends requests (keep-alives) within the timeout.
                if playing.is_none() || !conn.interleaved() {
                    return Ok(());
                }
                idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
            }
            () = async { wake.as_ref().expect("playing").notified().await }, if wake.is_some() => {
                let Some(p) = &playing else { continue };
                // The frame written is reported sent in the same turn of
                // the node's lock that takes the next.
                let (mut written, mut any) = (None, false);
                while let Some(tx) = core.sent_then_poll(written.take(), p.id) {
                    any = true;
                    let nals = if p.jpeg { NalRanges::from([]) } else { splits.of(&tx.frame.data) };
                    conn.frame_shared(&tx.frame.data, &nals, tx.frame.timestamp_ns);
                    while let Some(o) = conn.poll_output() {
                        match o {
                            Output::Send(b) => write_parts(&mut wr, std::slice::from_ref(&b)).await?,
                            Output::SendParts(parts) => write_parts(&mut wr, &parts).await?,
                            Output::Datagrams { port, rtcp, packets } => {
                                send(&udp, peer.ip(), port, rtcp, &packets).await;
                            }
                            _ => {}
                        }
                    }
                    written = Some(p.id);
                }
                // Woken with nothing to send: the stream may have ended.
                if !any && !core.has_output(p.id) {
                    debug!(%peer, "rtsp client's stream ended");
                    return Ok(());
                }
            }
        }
    }
}

fn play(core: &Arc<NodeCore>, stream: &str, peer: SocketAddr) -> Result<Playing, NetError> {
    let wake = Arc::new(Notify::new());
    let params = SubscribeParams {
        mode: DeliveryMode::LowLatency,
        ..SubscribeParams::default()
    };
    let entry = OutputEntry {
        stream: stream.to_owned(),
        channel: 0,
        peer: format!("rtsp:{peer}"),
        waker: wake.clone(),
        events: None,
    };
    let (id, open) = core.add_output(stream, &params, entry)?;
    // Frames may already wait (the group of pictures so far).
    wake.notify_one();
    Ok(Playing {
        core: core.clone(),
        id,
        wake,
        jpeg: open.format == Format::Mjpeg,
    })
}

/// Writes `parts` in order with as few `writev` calls as the socket takes,
/// all within [`WRITE_TIMEOUT`] (a client that reads a trickle is closed
/// like one that reads nothing). Writes that fit go at once, with no timer
/// (the usual case: one frame a write).
async fn write_parts(wr: &mut tokio::net::tcp::OwnedWriteHalf, parts: &[bytes::Bytes]) -> Result<(), NetError> {
    // At most this many slices a call (the kernel takes 1024).
    const MAX: usize = 512;
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len().min(MAX));
    let (mut i, mut off) = (0, 0);
    let mut deadline = None;
    loop {
        // Past the parts written whole (and any empty one).
        while i < parts.len() && parts[i].len() == off {
            i += 1;
            off = 0;
        }
        if i == parts.len() {
            return Ok(());
        }
        slices.clear();
        slices.push(IoSlice::new(&parts[i][off..]));
        slices.extend(parts[i + 1..].iter().take(MAX - 1).map(|p| IoSlice::new(p)));
        let mut n = match wr.try_write_vectored(&slices) {
            Ok(0) => return Err(NetError::Io(std::io::Error::from(std::io::ErrorKind::WriteZero))),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let until = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + WRITE_TIMEOUT);
                match tokio::time::timeout_at(until, wr.writable()).await {
                    Ok(r) => r?,
                    Err(_) => {
                        return Err(NetError::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the client took nothing for 10 s",
                        )));
                    }
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        while n > 0 && i < parts.len() {
            let left = parts[i].len() - off;
            if n >= left {
                n -= left;
                i += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
}

/// Sends `packets` to the client's `port` from its RTP or RTCP socket. A
/// datagram that cannot go (the client's port closed) is dropped.
async fn send(udp: &OnceLock<Option<UdpPair>>, ip: IpAddr, port: u16, rtcp: bool, packets: &[bytes::Bytes]) {
    let Some(pair) = udp.get().and_then(Option::as_ref) else {
        return;
    };
    let sock = if rtcp { &pair.rtcp } else { &pair.rtp };
    for p in packets {
        if let Err(e) = sock.send_to(p, (ip, port)).await {
            debug!(%ip, port, error = %e, "rtsp server: a datagram did not go");
        }
    }
}

/// An address as a URL or SDP names it.
fn host_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => v6.to_canonical().to_string(),
        IpAddr::V4(v4) => v4.to_string(),
    }
}
