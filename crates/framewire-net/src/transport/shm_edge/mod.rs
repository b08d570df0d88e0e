//! NodeCore-memory subscriptions between nodes on one host (docs/shm.md,
//! "Edges between nodes"; DESIGN decision 6).
//!
//! A subscriber on the same host asks for `transport_mode` 2 in SUBSCRIBE.
//! The node answers with its Unix socket path and a one-time token; the
//! subscriber connects a `SOCK_SEQPACKET` socket there, sends
//! `"FWSA" token u64` first, and from then on receives the frames as a
//! `framewire-shm` consumer. STREAM_OPEN, stream events and UNSUBSCRIBE stay
//! on the TCP connection.
//!
//! Each subscription is still a relay output with its own delivery mode,
//! budgets and counters. One hub thread per stream takes the frames its shm
//! outputs are ready to send, writes each distinct frame **once** into a
//! pooled memfd buffer and offers it to exactly the consumers whose outputs
//! handed it out: the copy count does not grow with the number of
//! consumers.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_relay::{Frame, OutputId};
use framewire_shm::sock::{self, Recv};
use framewire_shm::{Consumer, ConsumerStats, Event, FrameMeta, Producer, ProducerConfig};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::runtime::core::NodeCore;

/// First packet a subscriber sends on the node's shm socket.
pub(crate) const ATTACH_MAGIC: [u8; 4] = *b"FWSA";
/// A token not used within this long is forgotten.
const TOKEN_TTL: Duration = Duration::from_secs(10);
/// A hub with no consumer and no pending token for this long stops.
const HUB_IDLE: Duration = Duration::from_secs(5);
/// How long the acceptor waits for a new connection's token.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(2);
/// Bits 16–23 of a frame's flags on a shared-memory edge: how many format
/// changes the node had told the subscriber on its TCP connection when it
/// sent the frame (a running count, mod 256: a frame skipped loses
/// nothing). Frames and events travel on two sockets; the subscriber
/// applies that many FORMAT_CHANGED events before the frame, so a frame
/// never arrives ahead of its format.
const FORMATS_SHIFT: u32 = 16;
const FORMATS_MASK: u32 = 0xff << FORMATS_SHIFT;
/// How long a subscriber waits for a format change its frame says was told.
const FORMAT_WAIT: Duration = Duration::from_secs(1);

/// The format changes a subscriber's TCP side has applied, which its
/// shared-memory thread waits for (see [`FORMATS_SHIFT`]).
#[derive(Debug, Default)]
pub(crate) struct FormatGate {
    applied: Mutex<u64>,
    cv: std::sync::Condvar,
}

impl FormatGate {
    /// One more format change was applied to the local stream.
    pub(crate) fn applied(&self) {
        *lock(&self.applied) += 1;
        self.cv.notify_all();
    }

    /// Waits, at most `timeout`, until the changes applied (plus `skew`)
    /// reach `told` (mod 256); the count applied then.
    fn wait_for(&self, told: u8, skew: u8, timeout: Duration) -> u64 {
        let guard = lock(&self.applied);
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |a| !reached(*a, skew, told))
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

/// Whether `applied` changes (plus `skew`) are at least `told`, counting
/// mod 256 (a count at most 127 behind or ahead).
fn reached(applied: u64, skew: u8, told: u8) -> bool {
    ((applied as u8).wrapping_add(skew).wrapping_sub(told) as i8) >= 0
}

/// The default socket path for a node: in `$XDG_RUNTIME_DIR` (else the
/// temp dir), named after the process and the node.
pub fn default_socket_path(node_name: &str) -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let safe: String = node_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("framewire-{}-{safe}.sock", std::process::id()))
}

#[derive(Debug)]
struct Pending {
    stream: String,
    output: OutputId,
    at: Instant,
}

#[derive(Debug)]
struct Hub {
    attach: std::sync::mpsc::Sender<(OutputId, OwnedFd)>,
    notify: Arc<Notify>,
    /// Per output: the consumer's counters (for GET_STATS).
    rows: Arc<Mutex<HashMap<OutputId, ConsumerStats>>>,
}

/// The node's shared-memory side: the socket, pending tokens, one hub per stream.
#[derive(Debug)]
pub(crate) struct ShmServer {
    path: PathBuf,
    pending: Mutex<HashMap<u64, Pending>>,
    hubs: Mutex<HashMap<String, Hub>>,
    stop: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn random_token() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most `b.len()` bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 8 {
        // Never expected on Linux; fall back to a clock-and-address mix.
        let t = crate::clock::now_ns() ^ (&b as *const _ as u64).rotate_left(17);
        return t.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    u64::from_le_bytes(b)
}

impl ShmServer {
    /// Binds the socket and starts the acceptor thread.
    pub(crate) fn start(core: &Arc<NodeCore>, path: &Path) -> io::Result<Arc<ShmServer>> {
        remove_stale(path);
        let listener = sock::listen_at(path)?;
        let server = Arc::new(ShmServer {
            path: path.to_owned(),
            pending: Mutex::new(HashMap::new()),
            hubs: Mutex::new(HashMap::new()),
            stop: Arc::new(AtomicBool::new(false)),
        });
        let (s2, weak) = (server.clone(), Arc::downgrade(core));
        std::thread::Builder::new()
            .name("shm-accept".into())
            .spawn(move || accept_loop(&s2, &listener, &weak))?;
        info!(path = %path.display(), "shared-memory subscriptions on");
        Ok(server)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The waker the stream's hub listens on (starting the hub if needed).
    pub(crate) fn hub_for(self: &Arc<Self>, core: &Arc<NodeCore>, stream: &str) -> Arc<Notify> {
        let mut hubs = lock(&self.hubs);
        if let Some(h) = hubs.get(stream) {
            return h.notify.clone();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let hub = Hub {
            attach: tx,
            notify: Arc::new(Notify::new()),
            rows: Arc::new(Mutex::new(HashMap::new())),
        };
        let notify = hub.notify.clone();
        let ctx = HubCtx {
            core: core.clone(),
            stream: stream.to_owned(),
            rx,
            notify: notify.clone(),
            rows: hub.rows.clone(),
            rt: tokio::runtime::Handle::current(),
            server: self.clone(),
        };
        hubs.insert(stream.to_owned(), hub);
        let name = format!("shm-hub {stream}");
        if let Err(e) = std::thread::Builder::new().name(name).spawn(move || ctx.run()) {
            warn!(stream, error = %e, "cannot start the shared-memory hub");
            hubs.remove(stream);
        }
        notify
    }

    /// A token for `output` of `stream`, to be sent back on the socket.
    pub(crate) fn expect(&self, stream: &str, output: OutputId) -> u64 {
        let mut p = lock(&self.pending);
        p.retain(|_, v| v.at.elapsed() < TOKEN_TTL);
        let token = random_token();
        p.insert(
            token,
            Pending {
                stream: stream.to_owned(),
                output,
                at: Instant::now(),
            },
        );
        token
    }

    /// Consumer counters of an output, if it is a shm subscription.
    pub(crate) fn consumer_stats(&self, stream: &str, output: OutputId) -> Option<ConsumerStats> {
        let hubs = lock(&self.hubs);
        let rows = lock(&hubs.get(stream)?.rows);
        rows.get(&output).cloned()
    }

    /// Stops the hubs and removes the socket (no new consumer can come;
    /// those attached see the end).
    pub(crate) fn shutdown(&self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            let _ = std::fs::remove_file(&self.path);
        }
        for h in lock(&self.hubs).values() {
            h.notify.notify_one();
        }
    }
}

/// Removes the sockets that nodes of the same name left behind when they
/// died: files beside `path` named as [`default_socket_path`] names them
/// (`framewire-PID-NAME.sock`), with the same NAME and a PID that no
/// process has now, that are sockets owned by this user.
fn remove_stale(path: &Path) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let (Some(dir), Some(ours)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let Some(name) = socket_name(ours).map(|(_, n)| n.to_owned()) else {
        return; // a path of the user's choosing: only that one is replaced
    };
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some((pid, n)) = file.to_str().and_then(socket_name) else {
            continue;
        };
        let gone = !Path::new("/proc").join(pid.to_string()).exists();
        let mine = e.metadata().is_ok_and(|m| m.file_type().is_socket() && m.uid() == uid);
        if n == name && pid != std::process::id() && gone && mine && std::fs::remove_file(e.path()).is_ok() {
            info!(path = %e.path().display(), pid, "removed the shared-memory socket of a node that is gone");
        }
    }
}

/// `framewire-PID-NAME.sock` → (PID, NAME).
fn socket_name(file: &str) -> Option<(u32, &str)> {
    let rest = file.strip_prefix("framewire-")?.strip_suffix(".sock")?;
    let (pid, name) = rest.split_once('-')?;
    Some((pid.parse().ok()?, name))
}

impl crate::runtime::core::SkippedFrames for ShmServer {
    fn skipped(&self, stream: &str, output: OutputId) -> u64 {
        self.consumer_stats(stream, output).map_or(0, |c| c.skipped)
    }
}

impl Drop for ShmServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(server: &Arc<ShmServer>, listener: &OwnedFd, core: &std::sync::Weak<NodeCore>) {
    while !server.stop.load(Ordering::SeqCst) && core.strong_count() > 0 {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        unsafe { libc::poll(&mut pfd, 1, 200) };
        loop {
            match sock::accept(listener) {
                Ok(Some(fd)) => attach_one(server, fd),
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "shared-memory socket accept failed");
                    std::thread::sleep(Duration::from_millis(100));
                    break;
                }
            }
        }
    }
    let _ = std::fs::remove_file(&server.path);
}

/// Reads the token and hands the socket to its stream's hub.
fn attach_one(server: &ShmServer, fd: OwnedFd) {
    let token = match sock::recv(fd.as_raw_fd(), Some(ATTACH_TIMEOUT)) {
        Ok(Recv::Packet(p, fds)) if fds.is_empty() && p.len() == 12 && p[..4] == ATTACH_MAGIC => {
            let mut t = [0u8; 8];
            t.copy_from_slice(&p[4..12]);
            u64::from_le_bytes(t)
        }
        other => {
            debug!(?other, "shared-memory attach without a valid token; closed");
            return;
        }
    };
    let Some(p) = lock(&server.pending).remove(&token) else {
        warn!("shared-memory attach with an unknown or expired token; closed");
        return;
    };
    let hubs = lock(&server.hubs);
    match hubs.get(&p.stream) {
        Some(h) if h.attach.send((p.output, fd)).is_ok() => h.notify.notify_one(),
        _ => warn!(stream = %p.stream, "shared-memory attach for a stream no longer served; closed"),
    }
}

struct HubCtx {
    core: Arc<NodeCore>,
    stream: String,
    rx: std::sync::mpsc::Receiver<(OutputId, OwnedFd)>,
    notify: Arc<Notify>,
    rows: Arc<Mutex<HashMap<OutputId, ConsumerStats>>>,
    rt: tokio::runtime::Handle,
    /// The server (its stop flag is set when the node stops).
    server: Arc<ShmServer>,
}

impl HubCtx {
    fn run(self) {
        // Up to 16 buffers per consumer (it copies out past 8: see
        // `consume`), 256 in the pool; buffers are created only as needed.
        let mut producer = Producer::unbound(ProducerConfig {
            max_held: 16,
            max_buffers: 256,
            ..ProducerConfig::default()
        });
        let mut slots: HashMap<OutputId, u16> = HashMap::new();
        let mut idle_since: Option<Instant> = None;
        loop {
            if self.server.stop.load(Ordering::SeqCst) {
                producer.end_within(Duration::from_millis(200));
                break;
            }
            while let Ok((id, fd)) = self.rx.try_recv() {
                match producer.attach(fd) {
                    Ok(Some(slot)) => {
                        debug!(stream = %self.stream, slot, "shared-memory consumer attached");
                        slots.insert(id, slot);
                    }
                    Ok(None) => warn!(stream = %self.stream, "shared-memory consumer refused: 16 already attached"),
                    Err(e) => warn!(stream = %self.stream, error = %e, "shared-memory consumer lost on attach"),
                }
            }
            let _ = producer.service();
            // Outputs unsubscribed, or consumers gone: forget them.
            self.core.with_state(|st| {
                slots.retain(|id, slot| {
                    let keep = st.output(*id).is_some() && producer.is_attached(*slot);
                    if !keep {
                        producer.detach(*slot);
                    }
                    keep
                });
            });
            let sent = self.publish_ready(&mut producer, &slots);
            self.update_rows(&producer, &slots);
            if sent {
                idle_since = None;
                continue;
            }
            if slots.is_empty() {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= HUB_IDLE && self.retire() {
                    break;
                }
            } else {
                idle_since = None;
            }
            // Wait for a frame (the outputs' waker) or a consumer's return.
            let n = self.notify.clone();
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_millis(5), n.notified()).await });
        }
        debug!(stream = %self.stream, "shared-memory hub stopped");
    }

    /// Takes what each attached output is ready to send, publishes each
    /// distinct frame once to the consumers that took it, each frame
    /// carrying the count of format changes its consumer was told.
    fn publish_ready(&self, producer: &mut Producer, slots: &HashMap<OutputId, u16>) -> bool {
        let mut batch: Vec<(Frame, u16, Vec<OutputId>)> = Vec::new();
        self.core.with_state(|st| {
            let now = Instant::now();
            for (id, slot) in slots {
                let told = st.output(*id).map_or(0, |o| o.formats_told);
                let Some(tx) = st.poll_transmit(*id, now) else {
                    continue;
                };
                let mut f = tx.frame;
                f.flags.0 = (f.flags.0 & !FORMATS_MASK) | (((told & 0xff) as u32) << FORMATS_SHIFT);
                match batch.iter_mut().find(|(b, _, _)| same_frame(b, &f)) {
                    Some((_, mask, ids)) => {
                        *mask |= 1 << slot;
                        ids.push(*id);
                    }
                    None => batch.push((f, 1 << slot, vec![*id])),
                }
            }
        });
        if batch.is_empty() {
            return false;
        }
        for (frame, mask, ids) in batch {
            let meta = FrameMeta {
                sequence: frame.sequence,
                timestamp_ns: frame.timestamp_ns,
                flags: frame.flags.0,
                planes: Vec::new(),
            };
            let data: &Bytes = &frame.data;
            if let Err(e) = producer.publish_to(&meta, data.len(), mask, |buf| buf.copy_from_slice(data)) {
                warn!(stream = %self.stream, error = %e, "shared-memory publish failed");
            }
            self.core.with_state(|st| {
                let now = Instant::now();
                for id in ids {
                    st.sent(id, now);
                }
            });
        }
        true
    }

    fn update_rows(&self, producer: &Producer, slots: &HashMap<OutputId, u16>) {
        let stats = producer.stats();
        let mut rows = lock(&self.rows);
        rows.clear();
        for (id, slot) in slots {
            if let Some(c) = stats.consumers.iter().find(|c| c.slot == *slot) {
                rows.insert(*id, c.clone());
            }
        }
    }

    /// Removes this hub if nothing waits to attach to it. A subscription
    /// that arrives later starts a new hub.
    fn retire(&self) -> bool {
        let server = &self.server;
        let mut hubs = lock(&server.hubs);
        let waiting = lock(&server.pending).values().any(|p| p.stream == self.stream);
        if waiting || self.rx.try_recv().is_ok() {
            return false;
        }
        hubs.remove(&self.stream);
        true
    }
}

fn same_frame(a: &Frame, b: &Frame) -> bool {
    a.sequence == b.sequence && a.flags == b.flags && a.data.as_ptr() == b.data.as_ptr() && a.len() == b.len()
}

/// The subscriber's end: attach to a node's socket with the token and
/// receive frames on a thread, handing each (no copy) to `deliver` once
/// the format changes told before it were applied (`formats`). Returns
/// when the producer ends or goes away, or when `stop` is set.
pub(crate) fn consume(
    path: &Path,
    token: u64,
    stop: &AtomicBool,
    formats: &FormatGate,
    mut deliver: impl FnMut(Frame),
) -> Result<(), String> {
    let fd = sock::connect_to(path).map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
    let mut hello = Vec::with_capacity(12);
    hello.extend_from_slice(&ATTACH_MAGIC);
    hello.extend_from_slice(&token.to_le_bytes());
    sock::send(fd.as_raw_fd(), &hello, &[], false).map_err(|e| format!("cannot send the token: {e}"))?;
    let mut consumer = Consumer::on_socket(fd).map_err(|e| format!("shared-memory attach refused: {e}"))?;
    // Frames this node keeps long (queued for its own slow subscribers) pin
    // the upstream's buffers; past half the budget, a frame is copied out
    // and its buffer returned at once, so the upstream never has to skip
    // this consumer because of queues downstream of it.
    let copy_from = usize::from(consumer.max_held() / 2);
    // Changes told that never came on TCP (an event lost with a full
    // queue): counted as applied, after one wait.
    let mut skew = 0u8;
    while !stop.load(Ordering::SeqCst) {
        match consumer.recv(Some(Duration::from_millis(100))) {
            Ok(Event::Frame(f)) => {
                let data = if consumer.held() > copy_from {
                    Bytes::copy_from_slice(&f.data)
                } else {
                    f.data
                };
                let told = ((f.meta.flags & FORMATS_MASK) >> FORMATS_SHIFT) as u8;
                let applied = formats.wait_for(told, skew, FORMAT_WAIT);
                if !reached(applied, skew, told) {
                    debug!(
                        told,
                        applied, "a frame's format change did not arrive in time; frame passed on"
                    );
                    skew = told.wrapping_sub(applied as u8);
                }
                deliver(Frame {
                    data,
                    sequence: f.meta.sequence,
                    timestamp_ns: f.meta.timestamp_ns,
                    flags: framewire_proto::FrameFlags(f.meta.flags & !FORMATS_MASK),
                });
            }
            Ok(Event::Timeout) => {}
            Ok(Event::End) => return Err("the upstream ended the shared-memory stream".into()),
            Err(e) => return Err(format!("shared-memory edge: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
