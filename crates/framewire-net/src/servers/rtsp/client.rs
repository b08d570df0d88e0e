//! One RTSP client: its connection's state, shared by the client's own
//! task (requests, and bytes the socket did not take at once) and its
//! stream's writer ([`super::fanout`], frames).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use framewire_proto::{DeliveryMode, Format, SubscribeParams};
use framewire_relay::{OutputId, Transmit};
use framewire_rtsp::{Connection, Output};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::{debug, info};

use super::fanout::{Fanout, Fanouts};
use super::{FailureKey, Failures, Streams, UdpPair};
use crate::error::NetError;
use crate::runtime::core::{NodeCore, OutputEntry};

/// A client that takes no bytes for this long is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that sends no request and plays nothing for this long is
/// closed (a playing client over TCP is alive while it reads).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A client, as its task and its stream's writer share it.
pub(super) struct Client {
    pub(super) sock: TcpStream,
    pub(super) peer: SocketAddr,
    /// Its UDP ports, bound at its first SETUP over UDP.
    pub(super) udp: OnceLock<Option<UdpPair>>,
    state: Mutex<ClientState>,
    /// Tells the client's task that bytes wait or that it is to close.
    kick: Notify,
}

/// What changes as a client is served.
pub(super) struct ClientState {
    conn: Connection,
    /// Bytes to write, in order, before any other.
    queue: Queue,
    /// The output of the relay the client plays.
    output: Option<OutputId>,
    /// A frame was taken from the output and not yet reported sent.
    in_flight: bool,
    /// The client is to close, and why.
    closing: Option<String>,
}

impl Client {
    pub(super) fn new(sock: TcpStream, peer: SocketAddr, conn: Connection) -> Client {
        Client {
            sock,
            peer,
            udp: OnceLock::new(),
            state: Mutex::new(ClientState {
                conn,
                queue: Queue::default(),
                output: None,
                in_flight: false,
                closing: None,
            }),
            kick: Notify::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// For the stream's writer: the output to poll and whether its last
    /// frame went out since (then reported now), or `None` while earlier
    /// bytes wait or the client closes.
    pub(super) fn ready(&self) -> Option<(OutputId, bool)> {
        let mut st = self.lock();
        if !st.queue.is_empty() || st.closing.is_some() {
            return None;
        }
        let id = st.output?;
        Some((id, std::mem::take(&mut st.in_flight)))
    }

    /// Hands the client a frame of its stream (`nals`: where the frame's
    /// NAL units are, found once for every client) and writes what the
    /// socket takes now; the rest waits for the client's task.
    pub(super) fn frame(&self, tx: &Transmit, nals: &[std::ops::Range<usize>]) {
        let mut st = self.lock();
        st.in_flight = true;
        st.conn.frame_shared(&tx.frame.data, nals, tx.frame.timestamp_ns);
        self.take_outputs(&mut st);
        self.flush_now(&mut st);
    }

    /// Closes the client (its task ends it).
    pub(super) fn close(&self, reason: &str) {
        self.lock().closing.get_or_insert_with(|| reason.to_owned());
        self.kick.notify_one();
    }

    /// Queues the bytes and sends the datagrams the connection has for the
    /// client; returns what else it asked (play, stop, close).
    fn take_outputs(&self, st: &mut ClientState) -> Vec<Output> {
        let mut rest = Vec::new();
        while let Some(o) = st.conn.poll_output() {
            match o {
                Output::Send(b) => st.queue.push(b),
                Output::SendParts(parts) => {
                    // Straight from the shared frame when nothing waits
                    // before it; what the socket does not take is queued.
                    let sent = if st.queue.is_empty() {
                        match write_slices(&self.sock, parts.slices()) {
                            Ok(n) => n,
                            Err(e) => {
                                st.closing.get_or_insert_with(|| format!("write failed: {e}"));
                                self.kick.notify_one();
                                0
                            }
                        }
                    } else {
                        0
                    };
                    if sent < parts.len() {
                        parts.into_bytes_after(sent).into_iter().for_each(|b| st.queue.push(b));
                    }
                }
                Output::Datagrams { port, rtcp, packets } => self.send(port, rtcp, &packets),
                other => rest.push(other),
            }
        }
        rest
    }

    /// Writes what the socket takes without waiting; a client whose bytes
    /// wait is told (its task waits for the socket).
    fn flush_now(&self, st: &mut ClientState) {
        match st.queue.write(&self.sock) {
            Ok(()) if st.queue.is_empty() => {}
            Ok(()) => self.kick.notify_one(),
            Err(e) => {
                st.closing.get_or_insert_with(|| format!("write failed: {e}"));
                self.kick.notify_one();
            }
        }
    }

    /// Sends datagrams from the client's RTP or RTCP port; one the socket
    /// does not take now is dropped (as the network would).
    fn send(&self, port: u16, rtcp: bool, packets: &[Bytes]) {
        let Some(pair) = self.udp.get().and_then(Option::as_ref) else {
            return;
        };
        let sock = if rtcp { &pair.rtcp } else { &pair.rtp };
        for p in packets {
            if let Err(e) = sock.try_send_to(p, SocketAddr::new(self.peer.ip(), port)) {
                debug!(peer = %self.peer, port, error = %e, "rtsp server: a datagram did not go");
            }
        }
    }
}

/// Writes `slices` in order until the socket is full; the bytes written.
/// No allocation: the slices go in batches from the stack.
fn write_slices<'a>(sock: &TcpStream, slices: impl Iterator<Item = &'a [u8]>) -> std::io::Result<usize> {
    const BATCH: usize = 64;
    let mut batch = [IoSlice::new(&[]); BATCH];
    let mut slices = slices.peekable();
    let mut total = 0;
    while slices.peek().is_some() {
        let (mut k, mut want) = (0, 0);
        for s in slices.by_ref().take(BATCH) {
            batch[k] = IoSlice::new(s);
            want += s.len();
            k += 1;
        }
        let n = match sock.try_write_vectored(&batch[..k]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(total),
            Err(e) => return Err(e),
        };
        total += n;
        if n < want {
            return Ok(total);
        }
    }
    Ok(total)
}

/// Bytes waiting for a client's socket, in order.
#[derive(Default)]
struct Queue {
    parts: VecDeque<Bytes>,
    /// How much of the first part went out.
    off: usize,
}

impl Queue {
    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.parts.push_back(b);
        }
    }

    fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Writes with as few `writev` calls as the socket takes, until it is
    /// full or nothing waits.
    fn write(&mut self, sock: &TcpStream) -> std::io::Result<()> {
        // At most this many slices a call (the kernel takes 1024).
        const MAX: usize = 512;
        while !self.parts.is_empty() {
            let written = {
                let mut it = self.parts.iter();
                let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(self.parts.len().min(MAX));
                if let Some(first) = it.next() {
                    slices.push(IoSlice::new(&first[self.off..]));
                }
                slices.extend(it.take(MAX - 1).map(|p| IoSlice::new(p)));
                sock.try_write_vectored(&slices)
            };
            let mut n = match written {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            while n > 0 {
                let Some(first) = self.parts.front() else { break };
                let left = first.len() - self.off;
                if n >= left {
                    n -= left;
                    self.parts.pop_front();
                    self.off = 0;
                } else {
                    self.off += n;
                    n = 0;
                }
            }
        }
        Ok(())
    }
}

/// What a client's task needs besides the client.
pub(super) struct Serve<'a> {
    pub(super) core: &'a Arc<NodeCore>,
    pub(super) fanouts: &'a Arc<Fanouts>,
    /// Wrong answers are counted here when credentials are asked.
    pub(super) auth: Option<&'a Failures>,
}

/// A playing client's place in its stream's writer and its output of the
/// relay; both are left when dropped.
struct Playing {
    core: Arc<NodeCore>,
    fanout: Arc<Fanout>,
    client: Arc<Client>,
    id: OutputId,
}

impl Drop for Playing {
    fn drop(&mut self) {
        {
            let mut st = self.client.lock();
            st.output = None;
            st.in_flight = false;
        }
        self.fanout.leave(&self.client);
        self.core.remove_output(self.id);
    }
}

/// Serves one client until it leaves or fails; `plays` is called when it
/// first plays.
pub(super) async fn serve(client: Arc<Client>, ctx: Serve<'_>, plays: impl Fn()) -> Result<(), NetError> {
    let Serve { core, fanouts, auth } = ctx;
    let local = client.sock.local_addr()?;
    let streams = Streams {
        core,
        udp: &client.udp,
        local: local.ip(),
        failures: auth,
    };
    let peer = client.peer;
    let mut failed = 0;
    let mut buf = vec![0u8; 16 << 10];
    let mut playing: Option<Playing> = None;
    // One idle timer, moved on by each read (not a new one each turn).
    let idle = tokio::time::sleep(IDLE_TIMEOUT);
    tokio::pin!(idle);
    // While bytes wait: when the client must have taken them.
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut asked = Vec::new();
    loop {
        for o in asked.drain(..) {
            match o {
                Output::Play { stream } => {
                    drop(playing.take());
                    playing = Some(play(core, fanouts, &client, &stream)?);
                    plays();
                    let user = client.lock().conn.user().map(str::to_owned);
                    info!(%peer, stream, user = user.as_deref().unwrap_or("-"), "rtsp client plays");
                }
                Output::Stop => playing = None,
                Output::Close { reason } => {
                    // What was queued goes first (an error reply).
                    let _ = client.lock().queue.write(&client.sock);
                    debug!(%peer, reason, "rtsp client closed");
                    return Ok(());
                }
                _ => {}
            }
        }
        let (before, waiting) = {
            let mut st = client.lock();
            if let Some(reason) = &st.closing {
                debug!(%peer, reason, "rtsp client closed");
                return Ok(());
            }
            let before = !st.queue.is_empty();
            st.queue.write(&client.sock)?;
            (before, !st.queue.is_empty())
        };
        // Its stream's writer skips it while bytes wait: frames again now.
        if before
            && !waiting
            && let Some(p) = &playing
        {
            p.fanout.wake();
        }
        if !waiting {
            deadline = None;
        } else if deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + WRITE_TIMEOUT);
        }
        let until = deadline.unwrap_or_else(|| tokio::time::Instant::now() + WRITE_TIMEOUT);
        tokio::select! {
            r = client.sock.readable() => {
                r?;
                let n = match client.sock.try_read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e.into()),
                };
                idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
                let mut st = client.lock();
                st.conn.receive(&buf[..n], &streams);
                // Wrong answers count across connections too.
                if let Some(f) = auth {
                    let (n, user) = st.conn.failed_auth();
                    if n > failed {
                        f.add(FailureKey::Ip(peer.ip()), n - failed);
                        if let Some(u) = user {
                            f.add(FailureKey::User(u.to_owned()), n - failed);
                        }
                        failed = n;
                    }
                }
                asked = client.take_outputs(&mut st);
            }
            r = client.sock.writable(), if waiting => r?,
            () = tokio::time::sleep_until(until), if waiting => {
                return Err(NetError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client took nothing for 10 s",
                )));
            }
            () = client.kick.notified() => {}
            () = &mut idle => {
                // Over TCP a playing client is alive while it reads; over
                // UDP it sends requests (keep-alives) within the timeout.
                if playing.is_none() || !client.lock().conn.interleaved() {
                    return Ok(());
                }
                idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
            }
        }
    }
}

/// Makes the client an output of the relay (low latency: a slow client
/// drops its own frames), written by its stream's writer.
fn play(core: &Arc<NodeCore>, fanouts: &Arc<Fanouts>, client: &Arc<Client>, stream: &str) -> Result<Playing, NetError> {
    let fanout = fanouts.join(core, stream, client.clone());
    let params = SubscribeParams {
        mode: DeliveryMode::LowLatency,
        ..SubscribeParams::default()
    };
    let entry = OutputEntry {
        stream: stream.to_owned(),
        channel: 0,
        peer: format!("rtsp:{}", client.peer),
        waker: fanout.waker(),
        events: None,
    };
    let (id, open) = match core.add_output(stream, &params, entry) {
        Ok(x) => x,
        Err(e) => {
            fanout.leave(client);
            return Err(e.into());
        }
    };
    if open.format == Format::Mjpeg {
        fanout.set_jpeg();
    }
    client.lock().output = Some(id);
    // Frames may already wait (the group of pictures so far).
    fanout.wake();
    Ok(Playing {
        core: core.clone(),
        fanout,
        client: client.clone(),
        id,
    })
}

/// An address as a URL or SDP names it.
pub(super) fn host_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => v6.to_canonical().to_string(),
        IpAddr::V4(v4) => v4.to_string(),
    }
}
