//! The consuming end: receives buffer fds once, maps them read-only, and
//! yields frames as `Bytes` that return their buffer when the last clone drops.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::mem::{FdRefused, Mapping, map_received};
use crate::sock::{self, Recv};
use crate::wire::{FrameMeta, Msg};

/// Why a consumer stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShmError {
    /// The producer went away without ending the stream (crash, kill).
    #[error("producer interrupted")]
    Interrupted,
    /// The producer broke the protocol; the connection was closed.
    #[error("producer disconnected for a protocol violation: {0}")]
    Protocol(String),
    /// A buffer fd was refused; the connection was closed.
    #[error("producer disconnected: {0}")]
    BadFd(#[from] FdRefused),
    /// Socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One received frame. `data` maps the producer's buffer (no copy); the
/// buffer goes back to the producer when every clone of `data` is dropped.
#[derive(Debug, Clone)]
pub struct ShmFrame {
    /// Header.
    pub meta: FrameMeta,
    /// Frames this consumer was skipped for just before this one.
    pub lost: u64,
    /// The frame bytes.
    pub data: Bytes,
}

/// What [`Consumer::recv`] returns.
#[derive(Debug)]
pub enum Event {
    /// A frame.
    Frame(ShmFrame),
    /// The producer ended the stream cleanly.
    End,
    /// Nothing arrived within the timeout.
    Timeout,
}

/// Releases kept for a producer whose socket is full.
const MAX_UNSENT: usize = 4096;

#[derive(Debug)]
struct Shared {
    sock: OwnedFd,
    /// Per index: the generation held now, if any.
    held: Mutex<Vec<Option<u32>>>,
    /// Releases a full socket did not take yet (sent by the next `recv`).
    unsent: Mutex<Vec<Vec<u8>>>,
}

impl Shared {
    /// Sends what waits, without waiting; what still does not fit stays.
    fn flush(&self) {
        let Ok(mut q) = self.unsent.lock() else { return };
        while let Some(m) = q.first() {
            match sock::send(self.sock.as_raw_fd(), m, &[], true) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // Sent, or the producer is gone (EPIPE): either way done.
                _ => {
                    q.remove(0);
                }
            }
        }
    }
}

#[derive(Debug)]
struct Lease {
    map: Arc<Mapping>,
    len: usize,
    index: u16,
    generation: u32,
    shared: Arc<Shared>,
}

impl AsRef<[u8]> for Lease {
    fn as_ref(&self) -> &[u8] {
        &self.map.as_slice()[..self.len]
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut h) = self.shared.held.lock()
            && let Some(slot) = h.get_mut(self.index as usize)
        {
            *slot = None;
        }
        let m = Msg::Release {
            index: self.index,
            generation: self.generation,
        }
        .encode();
        // Never waits: a frame may be dropped while its owner holds a lock
        // others need (the node's). A full socket keeps the release for the
        // next `recv`; a dead producer gives EPIPE, ignored.
        let queued = self.shared.unsent.lock().map(|q| !q.is_empty()).unwrap_or(false);
        let r = if queued {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            sock::send(self.shared.sock.as_raw_fd(), &m, &[], true)
        };
        if let Err(e) = r
            && e.kind() == io::ErrorKind::WouldBlock
            && let Ok(mut q) = self.shared.unsent.lock()
            // A producer that reads nothing gets no more than this kept.
            && q.len() < MAX_UNSENT
        {
            q.push(m);
        }
    }
}

/// The consuming end of a shared-memory edge.
#[derive(Debug)]
pub struct Consumer {
    shared: Arc<Shared>,
    maps: Vec<Option<(u32, Arc<Mapping>)>>,
    slot: u16,
    max_held: u16,
    ended: bool,
}

impl Consumer {
    /// Connects to the producer socket at `path` and reads its greeting.
    pub fn connect(path: &Path) -> Result<Consumer, ShmError> {
        Consumer::on_socket(sock::connect_to(path)?)
    }

    /// Runs over an already connected socket and reads the greeting (5 s at most).
    pub fn on_socket(sock: OwnedFd) -> Result<Consumer, ShmError> {
        let (slot, max_held) = match sock::recv(sock.as_raw_fd(), Some(Duration::from_secs(5)))? {
            Recv::Packet(p, fds) if fds.is_empty() => match Msg::decode(&p) {
                Ok(Msg::Hello { consumer, max_held }) => (consumer, max_held),
                _ => return Err(ShmError::Protocol("expected HELLO".into())),
            },
            Recv::Closed => return Err(ShmError::Protocol("refused (producer full?)".into())),
            Recv::Empty => return Err(ShmError::Protocol("no HELLO within 5 s".into())),
            Recv::Packet(..) => return Err(ShmError::Protocol("fds with HELLO".into())),
        };
        Ok(Consumer {
            shared: Arc::new(Shared {
                sock,
                held: Mutex::new(Vec::new()),
                unsent: Mutex::new(Vec::new()),
            }),
            maps: Vec::new(),
            slot,
            max_held,
            ended: false,
        })
    }

    /// The slot number the producer gave this consumer.
    pub fn slot(&self) -> u16 {
        self.slot
    }

    /// Buffers this consumer may hold before the producer skips it.
    pub fn max_held(&self) -> u16 {
        self.max_held
    }

    /// Buffers this consumer holds now (frames not yet dropped).
    pub fn held(&self) -> usize {
        self.shared
            .held
            .lock()
            .map_or(0, |h| h.iter().filter(|g| g.is_some()).count())
    }

    /// Waits for the next frame (`None`: forever). Buffer announcements are
    /// handled inside. Any protocol violation closes the connection.
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Event, ShmError> {
        if self.ended {
            return Ok(Event::End);
        }
        self.shared.flush();
        loop {
            let got = match sock::recv(self.shared.sock.as_raw_fd(), timeout) {
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(ShmError::Interrupted),
                other => other?,
            };
            match got {
                Recv::Empty => return Ok(Event::Timeout),
                Recv::Closed => return Err(ShmError::Interrupted),
                Recv::Packet(p, mut fds) => {
                    let msg = Msg::decode(&p).map_err(|e| ShmError::Protocol(e.to_string()))?;
                    match msg {
                        Msg::Buffer {
                            index,
                            generation,
                            size,
                        } => {
                            if fds.len() != 1 {
                                return Err(ShmError::Protocol(format!("BUFFER with {} fds", fds.len())));
                            }
                            let fd = fds.pop().expect("one fd");
                            let map = map_received(&fd, size)?;
                            let i = index as usize;
                            if self.maps.len() <= i {
                                if i > u16::MAX as usize {
                                    return Err(ShmError::Protocol("index out of range".into()));
                                }
                                self.maps.resize(i + 1, None);
                            }
                            self.maps[i] = Some((generation, Arc::new(map)));
                        }
                        Msg::Frame {
                            index,
                            generation,
                            len,
                            lost,
                            meta,
                        } => {
                            if !fds.is_empty() {
                                return Err(ShmError::Protocol("fds with FRAME".into()));
                            }
                            let Some(Some((g, map))) = self.maps.get(index as usize) else {
                                return Err(ShmError::Protocol(format!("FRAME in unknown buffer {index}")));
                            };
                            if *g != generation {
                                return Err(ShmError::Protocol("FRAME with stale generation".into()));
                            }
                            if len > map.len() as u64 {
                                return Err(ShmError::Protocol(format!(
                                    "FRAME of {len} bytes in a {} buffer",
                                    map.len()
                                )));
                            }
                            for pl in &meta.planes {
                                if pl.offset as u64 > len {
                                    return Err(ShmError::Protocol("plane offset outside the frame".into()));
                                }
                            }
                            {
                                let mut held = self.shared.held.lock().expect("held lock");
                                if held.len() <= index as usize {
                                    held.resize(index as usize + 1, None);
                                }
                                if held[index as usize].is_some() {
                                    return Err(ShmError::Protocol(format!("buffer {index} reused while held")));
                                }
                                held[index as usize] = Some(generation);
                            }
                            let lease = Lease {
                                map: map.clone(),
                                len: len as usize,
                                index,
                                generation,
                                shared: self.shared.clone(),
                            };
                            return Ok(Event::Frame(ShmFrame {
                                meta,
                                lost,
                                data: Bytes::from_owner(lease),
                            }));
                        }
                        Msg::End => {
                            self.ended = true;
                            return Ok(Event::End);
                        }
                        Msg::Hello { .. } | Msg::Release { .. } => {
                            return Err(ShmError::Protocol("unexpected message".into()));
                        }
                    }
                }
            }
        }
    }
}
