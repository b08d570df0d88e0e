//! The producing end: a pool of sealed memfd buffers, up to
//! [`MAX_CONSUMERS`] consumers on one Unix socket, and per-consumer
//! skip-and-count.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::mem::MemBuf;
use crate::sock::{self, Recv};
use crate::wire::{FrameMeta, Msg};

/// Consumers per producer (seed 000: up to 16).
pub const MAX_CONSUMERS: usize = 16;

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Buffers one consumer may hold before it is skipped for new frames
    /// (its frame budget). Default 4.
    pub max_held: u16,
    /// Buffers in the pool at most (created lazily). Default 64.
    pub max_buffers: usize,
    /// Consumers at once, at most [`MAX_CONSUMERS`].
    pub max_consumers: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            max_held: 4,
            max_buffers: 64,
            max_consumers: MAX_CONSUMERS,
        }
    }
}

/// Counters of one consumer, as the producer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Slot number (0..16).
    pub slot: u16,
    /// Frames handed to it.
    pub sent: u64,
    /// Frames it was skipped for (holding its budget, or its socket full).
    pub skipped: u64,
    /// Buffers it holds now.
    pub held: u16,
}

/// Producer counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Frames published.
    pub published: u64,
    /// Frames dropped because every pool buffer was held.
    pub pool_exhausted: u64,
    /// Buffers in the pool.
    pub buffers: usize,
    /// Consumers connected now.
    pub consumers: Vec<ConsumerStats>,
    /// Consumers disconnected for a protocol violation.
    pub evicted: u64,
    /// Connections refused because all slots were taken.
    pub refused: u64,
}

#[derive(Debug)]
struct Buffer {
    mem: MemBuf,
    generation: u32,
    /// Bit i: consumer slot i holds this buffer.
    holders: u16,
}

#[derive(Debug)]
struct Peer {
    sock: OwnedFd,
    /// Per buffer index: the generation this consumer has the fd of.
    known: Vec<Option<u32>>,
    held: u16,
    /// Skipped since the last frame it got (sent with the next one).
    pending_lost: u64,
    stats: ConsumerStats,
}

/// Sockets found readable by one `poll`.
#[derive(Debug, Clone, Copy)]
struct Ready {
    listener: bool,
    /// Bit i: consumer slot i.
    peers: u16,
}

/// The producing end of a shared-memory edge. Single-threaded: the caller
/// drives it with [`Producer::publish`] and, when idle, [`Producer::service`].
#[derive(Debug)]
pub struct Producer {
    listener: Option<OwnedFd>,
    path: Option<PathBuf>,
    cfg: ProducerConfig,
    buffers: Vec<Buffer>,
    peers: Vec<Option<Peer>>,
    stats: ProducerStats,
}

impl Producer {
    /// Listens on a Unix socket at `path`.
    pub fn bind(path: &Path, cfg: ProducerConfig) -> io::Result<Producer> {
        let listener = sock::listen_at(path)?;
        let mut p = Producer::unbound(cfg);
        p.listener = Some(listener);
        p.path = Some(path.to_owned());
        Ok(p)
    }

    /// A producer with no listening socket; consumers join with [`Producer::attach`].
    pub fn unbound(mut cfg: ProducerConfig) -> Producer {
        cfg.max_consumers = cfg.max_consumers.clamp(1, MAX_CONSUMERS);
        cfg.max_held = cfg.max_held.max(1);
        cfg.max_buffers = cfg.max_buffers.clamp(1, u16::MAX as usize);
        let peers = (0..cfg.max_consumers).map(|_| None).collect();
        Producer {
            listener: None,
            path: None,
            cfg,
            buffers: Vec::new(),
            peers,
            stats: ProducerStats::default(),
        }
    }

    /// Adds a consumer on an already connected socket and returns its slot.
    /// `Ok(None)` if all slots are taken (the socket is closed).
    pub fn attach(&mut self, sock: OwnedFd) -> io::Result<Option<u16>> {
        let Some(slot) = self.peers.iter().position(Option::is_none) else {
            self.stats.refused += 1;
            return Ok(None);
        };
        let hello = Msg::Hello {
            consumer: slot as u16,
            max_held: self.cfg.max_held,
        }
        .encode();
        // Best effort non-blocking: a fresh socket always has room for a greeting.
        let _ = nix::fcntl::fcntl(&sock, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
        sock::send(sock.as_raw_fd(), &hello, &[], true)?;
        self.peers[slot] = Some(Peer {
            sock,
            known: Vec::new(),
            held: 0,
            pending_lost: 0,
            stats: ConsumerStats {
                slot: slot as u16,
                ..Default::default()
            },
        });
        Ok(Some(slot as u16))
    }

    /// Whether a consumer is connected in `slot`.
    pub fn is_attached(&self, slot: u16) -> bool {
        self.peers.get(usize::from(slot)).is_some_and(Option::is_some)
    }

    /// Closes the consumer in `slot`: it reads the end of its socket, and
    /// the buffers it held return to the pool.
    pub fn detach(&mut self, slot: u16) {
        if self.is_attached(slot) {
            self.drop_peer(usize::from(slot), false);
        }
    }

    /// Consumers connected now.
    pub fn consumers(&self) -> usize {
        self.peers.iter().flatten().count()
    }

    /// Pool buffers some consumer holds now.
    pub fn held_buffers(&self) -> usize {
        self.buffers.iter().filter(|b| b.holders != 0).count()
    }

    /// Counters.
    pub fn stats(&self) -> ProducerStats {
        let mut s = self.stats.clone();
        s.buffers = self.buffers.len();
        s.consumers = self
            .peers
            .iter()
            .flatten()
            .map(|p| ConsumerStats {
                held: p.held,
                ..p.stats.clone()
            })
            .collect();
        s
    }

    /// Accepts waiting consumers and takes back returned buffers; drops
    /// consumers whose socket closed (their buffers return to the pool) or
    /// that broke the protocol. Never waits: one `poll` finds the sockets
    /// with something to read (asking each consumer in turn would cost a
    /// syscall per consumer per call, most of them answering "nothing").
    pub fn service(&mut self) -> io::Result<()> {
        let ready = self.poll_ready(0)?;
        self.serve_ready(ready)
    }

    /// Handles what one `poll` found: accepts on the listener, and takes
    /// every queued packet from each readable consumer socket.
    fn serve_ready(&mut self, ready: Ready) -> io::Result<()> {
        if ready.listener
            && let Some(l) = self.listener.take()
        {
            let mut accepted = Vec::new();
            let r = loop {
                match sock::accept(&l) {
                    Ok(Some(s)) => accepted.push(s),
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            self.listener = Some(l);
            for s in accepted {
                // A consumer that cannot even take its greeting is just closed.
                let _ = self.attach(s);
            }
            r?;
        }
        for slot in 0..self.peers.len() {
            if ready.peers & (1 << slot) == 0 {
                continue;
            }
            while let Some(peer) = &self.peers[slot] {
                match sock::recv(peer.sock.as_raw_fd(), Some(Duration::ZERO)) {
                    Ok(Recv::Empty) => break,
                    Ok(Recv::Closed) => {
                        self.drop_peer(slot, false);
                        break;
                    }
                    Ok(Recv::Packet(p, fds)) => {
                        let ok = fds.is_empty()
                            && match Msg::decode(&p) {
                                Ok(Msg::Release { index, generation }) => self.release(slot, index, generation),
                                _ => false,
                            };
                        if !ok {
                            self.drop_peer(slot, true);
                            break;
                        }
                    }
                    Err(e) => {
                        // A consumer that died with frames unread resets the connection.
                        self.drop_peer(slot, e.kind() != io::ErrorKind::ConnectionReset);
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Which sockets have something to read (or closed): one `poll` over
    /// the listener and every consumer, waiting at most `timeout_ms`.
    fn poll_ready(&self, timeout_ms: i32) -> io::Result<Ready> {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(self.peers.len() + 1);
        let mut slots: Vec<usize> = Vec::with_capacity(self.peers.len());
        if let Some(l) = &self.listener {
            fds.push(libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for (slot, p) in self.peers.iter().enumerate() {
            if let Some(p) = p {
                fds.push(libc::pollfd {
                    fd: p.sock.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                slots.push(slot);
            }
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs whose
        // descriptors this producer owns for the duration of the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            // Interrupted: look at everything, as if all were ready.
            return Ok(Ready {
                listener: self.listener.is_some(),
                peers: slots.iter().fold(0, |m, s| m | 1 << s),
            });
        }
        let hit = |f: &libc::pollfd| f.revents != 0;
        let offset = usize::from(self.listener.is_some());
        let mut ready = Ready {
            listener: self.listener.is_some() && hit(&fds[0]),
            peers: 0,
        };
        for (i, slot) in slots.iter().enumerate() {
            if hit(&fds[offset + i]) {
                ready.peers |= 1 << slot;
            }
        }
        Ok(ready)
    }

    /// Whether some consumer can take a frame now (holds less than its budget).
    pub fn can_publish(&self) -> bool {
        self.peers.iter().flatten().any(|p| p.held < self.cfg.max_held)
    }

    /// Sleeps until a consumer returns a buffer, closes, or connects, or
    /// `timeout` passes (one `poll` on every socket: no busy wait), then
    /// [`Producer::service`]s. A producer whose consumers all hold their
    /// budget waits here instead of spinning.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let ready = self.poll_ready(ms)?;
        self.serve_ready(ready)
    }

    /// [`Producer::service`] until `n` consumers are connected or `timeout` passes.
    pub fn wait_for_consumers(&mut self, n: usize, timeout: Duration) -> io::Result<bool> {
        let end = Instant::now() + timeout;
        loop {
            self.service()?;
            if self.consumers() >= n {
                return Ok(true);
            }
            if Instant::now() >= end {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn release(&mut self, slot: usize, index: u16, generation: u32) -> bool {
        let bit = 1u16 << slot;
        let Some(b) = self.buffers.get_mut(index as usize) else {
            return false;
        };
        if b.generation != generation || b.holders & bit == 0 {
            return false;
        }
        b.holders &= !bit;
        if let Some(p) = &mut self.peers[slot] {
            p.held -= 1;
        }
        true
    }

    fn drop_peer(&mut self, slot: usize, evicted: bool) {
        let bit = 1u16 << slot;
        for b in &mut self.buffers {
            b.holders &= !bit;
        }
        self.peers[slot] = None;
        if evicted {
            self.stats.evicted += 1;
        }
    }

    /// Publishes one frame: copies `data` once into a free pool buffer and
    /// offers it to every consumer. Never blocks: a consumer holding its
    /// budget (or whose socket is full) is skipped and counted. Returns how
    /// many consumers got it.
    pub fn publish(&mut self, meta: &FrameMeta, data: &[u8]) -> io::Result<usize> {
        self.publish_with(meta, data.len(), |buf| buf.copy_from_slice(data))
    }

    /// As [`Producer::publish`], but `fill` writes the `len` frame bytes
    /// straight into the shared buffer (a source that renders in place
    /// makes no copy at all).
    pub fn publish_with(&mut self, meta: &FrameMeta, len: usize, fill: impl FnOnce(&mut [u8])) -> io::Result<usize> {
        let got = self.publish_to(meta, len, u16::MAX, fill)?;
        Ok(got.count_ones() as usize)
    }

    /// As [`Producer::publish_with`], offered only to the consumers whose
    /// slot bit is set in `to` (the others are neither sent nor counted as
    /// skipped). Returns the slot bits of the consumers that got it. The
    /// frame is still written once, whatever the number of consumers.
    pub fn publish_to(
        &mut self,
        meta: &FrameMeta,
        len: usize,
        to: u16,
        fill: impl FnOnce(&mut [u8]),
    ) -> io::Result<u16> {
        self.service()?;
        self.stats.published += 1;
        let chosen = |slot: usize| to & (1u16 << slot) != 0;
        let want = self
            .peers
            .iter()
            .enumerate()
            .any(|(i, p)| chosen(i) && p.as_ref().is_some_and(|p| p.held < self.cfg.max_held));
        if !want {
            // Nobody can take it: count it for everyone, touch no buffer.
            for (_, p) in self.peers.iter_mut().enumerate().filter(|(i, _)| chosen(*i)) {
                if let Some(p) = p {
                    p.pending_lost += 1;
                    p.stats.skipped += 1;
                }
            }
            return Ok(0);
        }
        let Some(index) = self.free_buffer(len.max(1))? else {
            self.stats.pool_exhausted += 1;
            for (_, p) in self.peers.iter_mut().enumerate().filter(|(i, _)| chosen(*i)) {
                if let Some(p) = p {
                    p.pending_lost += 1;
                    p.stats.skipped += 1;
                }
            }
            return Ok(0);
        };
        let buf = &mut self.buffers[index];
        fill(&mut buf.mem.map.as_mut_slice()[..len]);
        let generation = buf.generation;
        let size = buf.mem.map.len() as u64;
        let mut delivered = 0u16;
        for slot in 0..self.peers.len() {
            if !chosen(slot) {
                continue;
            }
            let Some(peer) = &mut self.peers[slot] else { continue };
            if peer.held >= self.cfg.max_held {
                peer.pending_lost += 1;
                peer.stats.skipped += 1;
                continue;
            }
            if peer.known.len() <= index {
                peer.known.resize(index + 1, None);
            }
            let fd = peer.sock.as_raw_fd();
            let mut failed = false;
            if peer.known[index] != Some(generation) {
                let m = Msg::Buffer {
                    index: index as u16,
                    generation,
                    size,
                }
                .encode();
                match sock::send(fd, &m, &[self.buffers[index].mem.fd.as_raw_fd()], true) {
                    Ok(()) => peer.known[index] = Some(generation),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        peer.pending_lost += 1;
                        peer.stats.skipped += 1;
                        continue;
                    }
                    Err(_) => failed = true,
                }
            }
            if !failed {
                let m = Msg::Frame {
                    index: index as u16,
                    generation,
                    len: len as u64,
                    lost: peer.pending_lost,
                    meta: meta.clone(),
                }
                .encode();
                match sock::send(fd, &m, &[], true) {
                    Ok(()) => {
                        peer.pending_lost = 0;
                        peer.held += 1;
                        peer.stats.sent += 1;
                        self.buffers[index].holders |= 1 << slot;
                        delivered |= 1 << slot;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        peer.pending_lost += 1;
                        peer.stats.skipped += 1;
                    }
                    Err(_) => failed = true,
                }
            }
            if failed {
                self.drop_peer(slot, false);
            }
        }
        Ok(delivered)
    }

    /// Index of a buffer no consumer holds, of at least `len` bytes;
    /// grows the pool or replaces a too-small free buffer.
    fn free_buffer(&mut self, len: usize) -> io::Result<Option<usize>> {
        if let Some(i) = self
            .buffers
            .iter()
            .position(|b| b.holders == 0 && b.mem.map.len() >= len)
        {
            return Ok(Some(i));
        }
        // Round up so slowly growing frames do not reallocate every time.
        let size = len.next_multiple_of(64 * 1024);
        if self.buffers.len() < self.cfg.max_buffers {
            let mem = MemBuf::create("framewire-shm", size)?;
            self.buffers.push(Buffer {
                mem,
                generation: 0,
                holders: 0,
            });
            return Ok(Some(self.buffers.len() - 1));
        }
        if let Some(i) = self.buffers.iter().position(|b| b.holders == 0) {
            let b = &mut self.buffers[i];
            b.mem = MemBuf::create("framewire-shm", size)?;
            b.generation = b.generation.wrapping_add(1);
            return Ok(Some(i));
        }
        Ok(None)
    }

    /// Tells every consumer the stream ended cleanly, then takes back
    /// returns until each has closed (at most `linger`) and closes the rest.
    /// (Closing a socket with unread returns would reset the consumer's
    /// connection before it reads END.)
    pub fn end_within(&mut self, linger: Duration) {
        let end = Msg::End.encode();
        for p in self.peers.iter().flatten() {
            let _ = sock::send(p.sock.as_raw_fd(), &end, &[], true);
            let _ = nix::sys::socket::shutdown(p.sock.as_raw_fd(), nix::sys::socket::Shutdown::Write);
        }
        let until = Instant::now() + linger;
        while self.consumers() > 0 && Instant::now() < until {
            let _ = self.service();
            std::thread::sleep(Duration::from_millis(1));
        }
        for p in &mut self.peers {
            *p = None;
        }
    }

    /// [`Producer::end_within`] one second.
    pub fn end(&mut self) {
        self.end_within(Duration::from_secs(1));
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}
