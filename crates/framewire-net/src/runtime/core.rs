//! The core of a running node: its [`NodeState`] behind one lock, and
//! what every task around it shares: whom to wake when an output has a
//! frame, where stream events go, the shutdown signal, and a counter that
//! status watchers and waiting tasks follow.
//!
//! The core does no I/O and knows no transport: a connection's writer is
//! an [`OutputEvents`] to it, a shared-memory producer a
//! [`SkippedFrames`]. Sources and sinks reach it only through the port of
//! [`crate::api`], which it implements.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_proto::control::{Description, Snapshot, Stats, StatusReport, StreamInfo, StreamState};
use framewire_proto::{EventInfo, EventReason, Features, Message, StreamEvent, StreamOpen, SubscribeParams};
use framewire_relay::{DropCounts, Frame, InputId, OutputId, Transmit};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::api::{EventQueue, Extensions, NodePort};
use crate::clock::now_ns;
use crate::config::NodeConfig;
use crate::error::NetError;
use crate::runtime::input::InputRegistry;
use crate::runtime::passthrough::{self, PassedCounts};
use crate::state::{NodeState, OutputInfo, StateError};

/// Where an output's stream events go: the connection that serves it.
/// Neither call may block: an event that does not fit is dropped (and
/// counted by the implementation).
pub(crate) trait OutputEvents: Debug + Send + Sync {
    /// A stream event for the consumer on `channel`.
    fn event(&self, channel: u16, event: StreamEvent);

    /// The output is gone (its stream went away): stop serving it.
    fn removed(&self, id: OutputId);

    /// A message passed through to the consumer (audio, a type the node
    /// does not know), already on its channel. False when it did not fit.
    fn pass(&self, msg: &Message) -> bool;
}

/// Frames a producer outside the relay skipped for an output (a
/// shared-memory consumer that holds its whole buffer budget); GET_STATS
/// counts them as frame-budget drops.
pub(crate) trait SkippedFrames: Debug + Send + Sync {
    fn skipped(&self, stream: &str, output: OutputId) -> u64;
}

/// Who consumes an output, as a task hands it to [`NodeCore::add_output`].
#[derive(Debug)]
pub(crate) struct OutputEntry {
    pub(crate) stream: String,
    pub(crate) channel: u16,
    pub(crate) peer: String,
    /// Woken when the output has something to send.
    pub(crate) waker: Arc<Notify>,
    /// Where its stream events go (none for local sinks and opaque outputs).
    pub(crate) events: Option<Arc<dyn OutputEvents>>,
}

/// The runtime's side of an output: whom to wake, where its events go.
#[derive(Debug)]
struct Owner {
    waker: Arc<Notify>,
    events: Option<Arc<dyn OutputEvents>>,
    channel: u16,
}

/// The node's state and, beside it under the same lock, what the runtime
/// keeps per output.
#[derive(Debug)]
struct Inner {
    state: NodeState,
    owners: HashMap<OutputId, Owner>,
}

/// An output's turn in [`NodeCore::sent_then_poll_many`].
pub(crate) enum Polled {
    /// Its next frame.
    Frame(Transmit),
    /// Nothing to send now.
    Idle,
    /// The output is gone (its stream ended).
    Gone,
}

/// The state every task of a node shares.
#[derive(Debug)]
pub(crate) struct NodeCore {
    pub(crate) config: NodeConfig,
    inner: Mutex<Inner>,
    pub(crate) started: Instant,
    pub(crate) local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    stopping: AtomicBool,
    /// Bumped when an output sends, comes or goes; sources at rate 0 wait
    /// on it for room ([`NodeCore::wait_room`]).
    room: (Mutex<u64>, std::sync::Condvar),
    room_waiters: AtomicUsize,
    /// The features offered in HELLO and DESCRIBE.
    features: AtomicU32,
    /// Input events from viewers, and where they go (docs/x11.md).
    pub(crate) input: Arc<InputRegistry>,
    /// Keyframe requests, and the encoders that take them.
    pub(crate) keyframes: super::keyframes::KeyframeRequests,
    /// Messages passed through uninterpreted, counted per stream and type.
    passed: PassedCounts,
    /// What sources and sinks may ask the node for, by type.
    #[cfg_attr(
        not(any(feature = "x11", all(feature = "v4l2", target_os = "linux"))),
        allow(dead_code)
    )]
    extensions: Extensions,
    skipped: OnceLock<Arc<dyn SkippedFrames>>,
    /// Bumped on every change a status watcher should report at once
    /// (streams, edges, outputs, states).
    changes: watch::Sender<u64>,
}

impl NodeCore {
    pub(crate) fn new(
        config: NodeConfig,
        state: NodeState,
        local_addr: SocketAddr,
        input: Arc<InputRegistry>,
        extensions: Extensions,
    ) -> NodeCore {
        NodeCore {
            config,
            inner: Mutex::new(Inner {
                state,
                owners: HashMap::new(),
            }),
            started: Instant::now(),
            local_addr,
            shutdown: watch::channel(false).0,
            stopping: AtomicBool::new(false),
            room: (Mutex::new(0), std::sync::Condvar::new()),
            room_waiters: AtomicUsize::new(0),
            features: AtomicU32::new(Features::OPAQUE.0),
            input,
            keyframes: Default::default(),
            passed: PassedCounts::default(),
            extensions,
            skipped: OnceLock::new(),
            changes: watch::channel(0).0,
        }
    }

    /// Adds features to those offered (shared memory, once its socket is bound).
    pub(crate) fn offer(&self, features: Features) {
        self.features.fetch_or(features.0, Ordering::Relaxed);
    }

    /// The features this node offers in HELLO and DESCRIBE.
    pub(crate) fn features(&self) -> Features {
        Features(self.features.load(Ordering::Relaxed))
    }

    /// Where frames skipped outside the relay are counted (set once).
    pub(crate) fn count_skipped(&self, counter: Arc<dyn SkippedFrames>) {
        let _ = self.skipped.set(counter);
    }

    /// A receiver that turns true when the node stops.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// A receiver of the change counter (see [`NodeCore::changed`]).
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Tells status watchers that something they report changed.
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The state, even if a task panicked while holding it (the state is
    /// plain data whose invariants the relay engine maintains per call).
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state under its lock (for a task that takes several
    /// outputs' frames at once).
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut NodeState) -> R) -> R {
        f(&mut self.lock().state)
    }

    /// A status report for a watching controller (WATCH_STATUS).
    pub(crate) fn status_report(&self, sequence: u32) -> StatusReport {
        let stats = self.stats("");
        self.lock().state.status_report(sequence, self.started.elapsed(), stats)
    }

    /// Adds a stream; fails if the name is taken.
    pub(crate) fn add_stream(
        &self,
        open: StreamOpen,
        upstream: String,
        state: StreamState,
    ) -> Result<InputId, NetError> {
        let input = self.lock().state.add_stream(open, upstream, state)?;
        self.changed();
        Ok(input)
    }

    /// Changes a running output's budgets; see `NodeState::update_output`.
    pub(crate) fn update_output(&self, id: OutputId, params: &SubscribeParams) -> Result<SubscribeParams, StateError> {
        let r = self.lock().state.update_output(id, params, Instant::now());
        self.changed();
        r
    }

    /// Removes a stream: its subscribers get *closed* and lose the output.
    pub(crate) fn remove_stream(&self, name: &str, reason: EventReason, message: &str) {
        self.input.forget(name);
        let mut inner = self.lock();
        let Some(gone) = inner.state.remove_stream(name, Instant::now()) else {
            return;
        };
        for (id, _) in gone {
            if let Some(o) = inner.owners.remove(&id) {
                if let Some(ev) = &o.events {
                    ev.event(o.channel, closed(reason, message));
                    ev.removed(id);
                }
                o.waker.notify_one();
            }
        }
        drop(inner);
        self.changed();
    }

    /// Pushes a frame into a stream and wakes the outputs that now have
    /// something to send. Never blocks on any output.
    pub(crate) fn push(&self, stream: &str, frame: Frame) {
        let now = Instant::now();
        let mut wake: Vec<Arc<Notify>> = Vec::new();
        let tell = {
            let mut guard = self.lock();
            let inner = &mut *guard;
            match inner.state.push(stream, frame, now, now_ns()) {
                Ok(ready) => {
                    for id in ready {
                        if let Some(o) = inner.owners.get(id) {
                            wake.push(o.waker.clone());
                        }
                    }
                }
                Err(e) => warn!(stream, error = %e, "frame refused by the relay"),
            }
            inner.state.drops_to_tell(now)
        };
        for w in wake {
            w.notify_one();
        }
        if tell {
            self.changed();
        }
    }

    /// Sets a stream's state and tells its subscribers.
    pub(crate) fn stream_event(&self, stream: &str, event: StreamEvent) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        for (id, channel) in inner.state.stream_event(stream, &event) {
            if let Some(ev) = inner.owners.get(&id).and_then(|o| o.events.as_ref()) {
                ev.event(channel, event.clone());
            }
        }
        drop(guard);
        self.changed();
    }

    /// A message the node does not interpret arrived on `stream`'s
    /// channel (an audio frame, a type it does not know): every subscriber
    /// connection gets it on its own channel, unchanged; counted per type.
    pub(crate) fn pass_through(&self, stream: &str, message_type: u16, payload: &Bytes) {
        let outputs: Vec<(Arc<dyn OutputEvents>, u16)> = {
            let inner = self.lock();
            inner
                .state
                .event_outputs(stream)
                .into_iter()
                .filter_map(|(id, channel)| {
                    let ev = inner.owners.get(&id)?.events.clone()?;
                    Some((ev, channel))
                })
                .collect()
        };
        let mut dropped = 0;
        for (ev, channel) in outputs {
            if !ev.pass(&passthrough::on_channel(message_type, channel, payload.clone())) {
                dropped += 1;
            }
        }
        self.passed.count(stream, message_type, payload.len(), dropped);
    }

    /// A pulled stream (re)connected: counts a reconnection if it was not
    /// live; its state and open before, if it exists.
    pub(crate) fn reconnected(&self, local: &str) -> Option<(StreamState, StreamOpen)> {
        self.lock().state.reconnected(local)
    }

    /// Records a pulled edge's state (and its stream's, if it exists yet).
    pub(crate) fn set_edge_state(&self, local: &str, state: StreamState, failed_attempt: bool) {
        if self.lock().state.set_edge_state(local, state, failed_attempt) {
            self.changed();
        }
    }

    /// Adds an output for `stream`. Returns its id and the stream's open.
    pub(crate) fn add_output(
        &self,
        stream: &str,
        params: &SubscribeParams,
        entry: OutputEntry,
    ) -> Result<(OutputId, StreamOpen), StateError> {
        let info = OutputInfo {
            stream: entry.stream.clone(),
            channel: entry.channel,
            peer: entry.peer.clone(),
            events: entry.events.is_some(),
            params: *params,
            formats_told: 0,
        };
        let mut inner = self.lock();
        let (id, open) = inner.state.add_output(stream, params, info)?;
        inner.owners.insert(
            id,
            Owner {
                waker: entry.waker,
                events: entry.events,
                channel: entry.channel,
            },
        );
        drop(inner);
        self.changed();
        self.room_changed();
        Ok((id, open))
    }

    /// Removes an output and what it holds.
    pub(crate) fn remove_output(&self, id: OutputId) {
        let mut inner = self.lock();
        inner.state.remove_output(id, Instant::now());
        inner.owners.remove(&id);
        drop(inner);
        self.changed();
        self.room_changed();
    }

    /// Whether the output still exists.
    pub(crate) fn has_output(&self, id: OutputId) -> bool {
        self.lock().state.output(id).is_some()
    }

    /// The stream an output takes.
    pub(crate) fn output_stream(&self, id: OutputId) -> Option<String> {
        self.lock().state.output(id).map(|o| o.stream.clone())
    }

    /// Renames an output's consumer in stats (an archive shows its state there).
    pub(crate) fn set_output_peer(&self, id: OutputId, peer: String) {
        self.lock().state.set_output_peer(id, peer);
    }

    /// The next frame an output should send.
    pub(crate) fn poll_transmit(&self, id: OutputId) -> Option<Transmit> {
        self.lock().state.poll_transmit(id, Instant::now())
    }

    /// An output finished sending its frame.
    pub(crate) fn sent(&self, id: OutputId) {
        self.lock().state.sent(id, Instant::now());
        self.room_changed();
    }

    /// The length and tag of each output's next frame (none: not ready),
    /// in one lock.
    pub(crate) fn next_heads(&self, ids: impl Iterator<Item = OutputId>) -> Vec<Option<(usize, u64)>> {
        let inner = self.lock();
        ids.map(|id| inner.state.next_head(id)).collect()
    }

    /// Drops `id`'s next frame as suppressed by its link.
    pub(crate) fn suppress_next(&self, id: OutputId) {
        if self.lock().state.suppress_next(id, Instant::now()) {
            self.room_changed();
        }
    }

    /// Reports `prev` sent (if any) and takes `next`'s frame, in one lock.
    pub(crate) fn sent_then_poll(&self, prev: Option<OutputId>, next: OutputId) -> Option<Transmit> {
        let mut inner = self.lock();
        let now = Instant::now();
        if let Some(p) = prev {
            inner.state.sent(p, now);
        }
        let tx = inner.state.poll_transmit(next, now);
        drop(inner);
        if prev.is_some() {
            self.room_changed();
        }
        tx
    }

    /// For each of `outs` (an output, and whether the frame it last took
    /// was written since), reports the written ones sent and takes each
    /// one's next frame, all in one turn of the lock: a writer serving many
    /// outputs of a stream pays one lock per frame, not one per output.
    pub(crate) fn sent_then_poll_many(&self, outs: &[(OutputId, bool)]) -> Vec<Polled> {
        let mut inner = self.lock();
        let now = Instant::now();
        let mut any_sent = false;
        let polled = outs
            .iter()
            .map(|&(id, sent)| {
                if inner.state.output(id).is_none() {
                    return Polled::Gone;
                }
                if sent {
                    inner.state.sent(id, now);
                    any_sent = true;
                }
                inner.state.poll_transmit(id, now).map_or(Polled::Idle, Polled::Frame)
            })
            .collect();
        drop(inner);
        if any_sent {
            self.room_changed();
        }
        polled
    }

    /// Whether a stream of that name is served.
    pub(crate) fn has_stream(&self, name: &str) -> bool {
        self.lock().state.stream(name).is_some()
    }

    /// How many outputs take `stream`.
    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    pub(crate) fn subscribers(&self, stream: &str) -> usize {
        self.lock().state.subscribers(stream)
    }

    /// Wakes the sources waiting for room (only when some wait).
    fn room_changed(&self) {
        if self.room_waiters.load(Ordering::Relaxed) > 0 {
            *self.room.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            self.room.1.notify_all();
        }
    }

    /// Waits until an output of `stream` can take a frame of `len` bytes;
    /// false if `stop` is set first.
    pub(crate) fn wait_room(&self, stream: &str, len: usize, stop: &AtomicBool) -> bool {
        self.room_waiters.fetch_add(1, Ordering::SeqCst);
        let ready = loop {
            if stop.load(Ordering::Relaxed) {
                break false;
            }
            let seen = *self.room.0.lock().unwrap_or_else(|p| p.into_inner());
            if self.has_room(stream, len) {
                break true;
            }
            let g = self.room.0.lock().unwrap_or_else(|p| p.into_inner());
            if *g == seen {
                // A bounded wait: `stop` is a flag, not a notification.
                let _ = self.room.1.wait_timeout(g, Duration::from_millis(100));
            }
        };
        self.room_waiters.fetch_sub(1, Ordering::SeqCst);
        ready
    }

    /// Whether an output of `stream` can take a frame of `len` bytes now.
    pub(crate) fn has_room(&self, stream: &str, len: usize) -> bool {
        self.lock().state.has_room(stream, len, Instant::now())
    }

    /// Sets a stream's state without telling anyone (a source's own view).
    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    pub(crate) fn set_stream_state(&self, stream: &str, state: StreamState) {
        self.lock().state.set_stream_state(stream, state);
    }

    /// Counters of every input and output (or those of one stream).
    pub(crate) fn stats(&self, only: &str) -> Stats {
        let counter = self.skipped.get();
        let skipped = |stream: &str, id: OutputId| {
            // A shm consumer holding its buffer budget is skipped by the
            // producer: those frames count as frame-budget drops.
            counter.map_or(0, |c| c.skipped(stream, id))
        };
        let mut stats = self.lock().state.stats(only, Instant::now(), &skipped);
        stats.input_events = self.input.stats(only);
        stats.pass_through = self.passed.stats(only);
        stats
    }

    /// LIST_STREAMS entries.
    pub(crate) fn stream_infos(&self) -> Vec<StreamInfo> {
        self.lock().state.stream_infos()
    }

    /// The latest frame of a stream.
    pub(crate) fn snapshot(&self, stream: &str) -> Option<Snapshot> {
        self.lock().state.snapshot(stream)
    }

    /// The names of the streams served.
    pub(crate) fn stream_names(&self) -> Vec<String> {
        self.lock().state.stream_names()
    }

    /// DESCRIBE.
    pub(crate) fn describe(&self) -> Description {
        let mut d = self.lock().state.describe(self.started.elapsed());
        d.features = self.features();
        d
    }

    /// Asks every task to wind down.
    pub(crate) fn begin_shutdown(&self) {
        if !self.stopping.swap(true, Ordering::SeqCst) {
            info!("shutting down");
            let _ = self.shutdown.send(true);
        }
    }
}

/// The *closed* event of an output that ends.
pub(crate) fn closed(reason: EventReason, message: &str) -> StreamEvent {
    StreamEvent::Closed(EventInfo {
        timestamp_ns: now_ns(),
        reason,
        message: message.to_owned(),
    })
}

/// A local sink's events: kept for it to read, and it is woken.
#[derive(Debug)]
struct SinkEvents {
    queue: Arc<EventQueue>,
    waker: Arc<Notify>,
}

impl OutputEvents for SinkEvents {
    fn event(&self, _channel: u16, event: StreamEvent) {
        self.queue.push(event);
        self.waker.notify_one();
    }

    fn removed(&self, _id: OutputId) {
        self.waker.notify_one();
    }

    /// A sink takes frames only; what passes through is not for it.
    fn pass(&self, _msg: &Message) -> bool {
        true
    }
}

impl NodePort for NodeCore {
    fn add_stream(&self, open: StreamOpen, state: StreamState) -> Result<(), NetError> {
        NodeCore::add_stream(self, open, String::new(), state).map(drop)
    }

    fn reopen_stream(&self, open: StreamOpen, state: StreamState) -> Result<(), NetError> {
        let before = self.lock().state.stream(&open.name).map(|e| e.open.clone());
        match before {
            None => NodeCore::add_stream(self, open, String::new(), state).map(drop),
            Some(old) => {
                let name = open.name.clone();
                if old != open {
                    NodeCore::stream_event(self, &name, StreamEvent::FormatChanged(open));
                }
                NodeCore::set_stream_state(self, &name, state);
                Ok(())
            }
        }
    }

    fn push(&self, stream: &str, frame: Frame) {
        NodeCore::push(self, stream, frame);
    }

    fn stream_event(&self, stream: &str, event: StreamEvent) {
        NodeCore::stream_event(self, stream, event);
    }

    fn take_keyframes(&self, stream: &str) -> Arc<crate::api::KeyframeFlag> {
        self.keyframes.register(stream)
    }

    fn drop_keyframes(&self, stream: &str, flag: &Arc<crate::api::KeyframeFlag>) {
        self.keyframes.unregister(stream, flag);
    }

    fn set_stream_state(&self, stream: &str, state: StreamState) {
        NodeCore::set_stream_state(self, stream, state);
    }

    fn subscribers(&self, stream: &str) -> usize {
        NodeCore::subscribers(self, stream)
    }

    fn wait_room(&self, stream: &str, len: usize, stop: &AtomicBool) -> bool {
        NodeCore::wait_room(self, stream, len, stop)
    }

    fn shutdown_signal(&self) -> watch::Receiver<bool> {
        NodeCore::shutdown_signal(self)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        NodeCore::changes(self)
    }

    fn add_output(
        &self,
        stream: &str,
        params: &SubscribeParams,
        label: String,
        waker: Arc<Notify>,
        events: Arc<EventQueue>,
    ) -> Result<(OutputId, StreamOpen), StateError> {
        let events = SinkEvents {
            queue: events,
            waker: waker.clone(),
        };
        let entry = OutputEntry {
            stream: stream.to_owned(),
            channel: 0,
            peer: label,
            waker,
            events: Some(Arc::new(events)),
        };
        NodeCore::add_output(self, stream, params, entry)
    }

    fn poll_transmit(&self, id: OutputId) -> Option<Transmit> {
        NodeCore::poll_transmit(self, id)
    }

    fn sent(&self, id: OutputId) {
        NodeCore::sent(self, id);
    }

    fn has_output(&self, id: OutputId) -> bool {
        NodeCore::has_output(self, id)
    }

    fn set_output_label(&self, id: OutputId, label: String) {
        self.set_output_peer(id, label);
    }

    fn changed_now(&self) {
        self.changed();
    }

    fn output_drops(&self, id: OutputId) -> Option<DropCounts> {
        self.with_state(|st| st.output_snapshot(id, Instant::now()))
            .map(|s| s.drops)
    }

    fn remove_output(&self, id: OutputId) {
        NodeCore::remove_output(self, id);
    }

    fn stream_open(&self, stream: &str) -> Option<StreamOpen> {
        crate::runtime::transcode::open_of(self, stream)
    }

    fn derive(self: Arc<Self>, name: &str) -> Result<(), String> {
        crate::runtime::transcode::ensure(&self, name).map_err(|e| e.to_string())
    }

    fn extension(&self, ty: TypeId) -> Option<Arc<dyn Any + Send + Sync>> {
        self.extensions.get_raw(ty)
    }
}
