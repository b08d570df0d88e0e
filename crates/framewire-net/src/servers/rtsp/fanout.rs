//! A stream's writer: one task hands each frame of a stream to every
//! client playing it. It takes the clients' next frames from the relay in
//! one turn of the node's lock, finds the frame's NAL units once, and
//! writes to each client's socket what it takes at once. Each client is
//! still its own low-latency output of the relay: one whose socket is full
//! is skipped (its task waits for the socket) and drops its own frames in
//! the relay meanwhile, so it holds back no one else.
//!
//! One woken task a frame instead of one a frame and client: at 100
//! clients that is most of what the server costs above the kernel's own
//! socket writes (docs/benchmarks.md, "RTSP restreaming to many clients").

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::Notify;

use super::client::Client;
use crate::runtime::core::{NodeCore, Polled};

/// The writers of the streams clients play, by stream.
#[derive(Default)]
pub(super) struct Fanouts(Mutex<HashMap<String, Arc<Fanout>>>);

/// One stream's writer.
pub(super) struct Fanout {
    /// Every client's output of the relay wakes this.
    wake: Arc<Notify>,
    clients: Mutex<Vec<Arc<Client>>>,
    /// The stream is JPEG images (no NAL units to find).
    jpeg: AtomicBool,
}

impl Fanouts {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Fanout>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `client` to `stream`'s writer, started if there is none.
    pub(super) fn join(self: &Arc<Self>, core: &Arc<NodeCore>, stream: &str, client: Arc<Client>) -> Arc<Fanout> {
        let mut map = self.lock();
        let fanout = map
            .entry(stream.to_owned())
            .or_insert_with(|| {
                let f = Arc::new(Fanout {
                    wake: Arc::new(Notify::new()),
                    clients: Mutex::new(Vec::new()),
                    jpeg: AtomicBool::new(false),
                });
                tokio::spawn(run(core.clone(), self.clone(), stream.to_owned(), f.clone()));
                f
            })
            .clone();
        fanout.clients().push(client);
        fanout
    }

    /// Ends `fanout` if it has no client (under the map's lock, so no
    /// client joins it meanwhile); true if it ended.
    fn end_if_empty(&self, stream: &str, fanout: &Arc<Fanout>) -> bool {
        let mut map = self.lock();
        if !fanout.clients().is_empty() {
            return false;
        }
        if map.get(stream).is_some_and(|f| Arc::ptr_eq(f, fanout)) {
            map.remove(stream);
        }
        true
    }
}

impl Fanout {
    fn clients(&self) -> MutexGuard<'_, Vec<Arc<Client>>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The waker for a client's output.
    pub(super) fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Asks for a turn (frames may wait for a client).
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(super) fn set_jpeg(&self) {
        self.jpeg.store(true, Ordering::Relaxed);
    }

    /// Takes `client` off (its output is removed by the caller).
    pub(super) fn leave(&self, client: &Arc<Client>) {
        self.clients().retain(|c| !Arc::ptr_eq(c, client));
        self.wake();
    }
}

/// The writer's task: until its last client leaves or the node stops.
async fn run(core: Arc<NodeCore>, fanouts: Arc<Fanouts>, stream: String, fanout: Arc<Fanout>) {
    let mut stop = core.shutdown_signal();
    // The last frame's NAL units, for every client that takes it.
    let mut split: Option<(Bytes, Arc<[Range<usize>]>)> = None;
    let mut clients: Vec<Arc<Client>> = Vec::new();
    let mut asks = Vec::new();
    loop {
        tokio::select! {
            () = fanout.wake.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        loop {
            clients.clear();
            clients.extend(fanout.clients().iter().cloned());
            if clients.is_empty() {
                if fanouts.end_if_empty(&stream, &fanout) {
                    return;
                }
                continue;
            }
            asks.clear();
            let mut who = Vec::with_capacity(clients.len());
            for c in &clients {
                if let Some(ask) = c.ready() {
                    asks.push(ask);
                    who.push(c);
                }
            }
            if asks.is_empty() {
                break;
            }
            let polled = core.sent_then_poll_many(&asks);
            let mut any = false;
            for (c, p) in who.into_iter().zip(polled) {
                match p {
                    Polled::Frame(tx) => {
                        any = true;
                        let nals = if fanout.jpeg.load(Ordering::Relaxed) {
                            Arc::from([])
                        } else {
                            nal_units(&mut split, &tx.frame.data)
                        };
                        c.frame(&tx, &nals);
                    }
                    Polled::Idle => {}
                    Polled::Gone => c.close("its stream ended"),
                }
            }
            // Every frame written whole is reported sent in the next turn.
            if !any {
                break;
            }
        }
    }
}

/// The NAL units of `data`, found once however many clients take it.
fn nal_units(split: &mut Option<(Bytes, Arc<[Range<usize>]>)>, data: &Bytes) -> Arc<[Range<usize>]> {
    if let Some((b, r)) = split
        && b.as_ptr() == data.as_ptr()
        && b.len() == data.len()
    {
        return r.clone();
    }
    let ranges: Arc<[Range<usize>]> = framewire_rtsp::nal_ranges(data).into();
    *split = Some((data.clone(), ranges.clone()));
    ranges
}
