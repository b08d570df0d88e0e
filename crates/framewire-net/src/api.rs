//! The extension points of a node: a kind of source or sink is one module
//! implementing [`SourceSpec`] or [`SinkSpec`], plus one line in the
//! registry of its folder (`sources::KINDS`, `sinks::KINDS`) that builds it
//! from a config table. A kind sees the node only through the handles
//! here: a source gets a [`SourceHost`] and pushes into its `StreamOut`;
//! a sink gets a [`SinkHost`] and takes frames from its `SinkInput`.
//! docs/architecture.md shows a whole kind.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framewire_proto::control::StreamState;
use framewire_proto::{StreamEvent, StreamOpen, SubscribeParams};
use framewire_relay::{DropCounts, Frame, OutputId, Transmit};
use tokio::sync::{Notify, watch};
use tracing::warn;

use crate::error::NetError;
use crate::state::StateError;

/// The node as its sources and sinks see it (implemented by the node's
/// core; a kind never names the core itself).
#[cfg_attr(
    not(any(feature = "x11", all(feature = "v4l2", target_os = "linux"))),
    allow(dead_code)
)]
pub(crate) trait NodePort: fmt::Debug + Send + Sync {
    /// Opens a stream of this node; fails if the name is taken.
    fn add_stream(&self, open: StreamOpen, state: StreamState) -> Result<(), NetError>;
    /// Opens a stream a source being replaced left (its subscribers stay:
    /// they get *format-changed* if `open` differs); opens it if it is gone.
    fn reopen_stream(&self, open: StreamOpen, state: StreamState) -> Result<(), NetError>;
    fn push(&self, stream: &str, frame: Frame);
    /// Keyframe requests for `stream` (REQUEST_KEYFRAME) reach its source
    /// through the flag returned, until [`NodePort::drop_keyframes`].
    fn take_keyframes(&self, stream: &str) -> Arc<KeyframeFlag>;
    fn drop_keyframes(&self, stream: &str, flag: &Arc<KeyframeFlag>);
    fn stream_event(&self, stream: &str, event: StreamEvent);
    fn set_stream_state(&self, stream: &str, state: StreamState);
    fn subscribers(&self, stream: &str) -> usize;
    fn wait_room(&self, stream: &str, len: usize, stop: &AtomicBool) -> bool;
    fn shutdown_signal(&self) -> watch::Receiver<bool>;
    /// Bumped when streams, outputs or edges change.
    fn changes(&self) -> watch::Receiver<u64>;
    /// Attaches an output to `stream`, named `label` in statistics, whose
    /// `waker` is woken when it has a frame or an event (kept in `events`).
    fn add_output(
        &self,
        stream: &str,
        params: &SubscribeParams,
        label: String,
        waker: Arc<Notify>,
        events: Arc<EventQueue>,
    ) -> Result<(OutputId, StreamOpen), StateError>;
    fn poll_transmit(&self, id: OutputId) -> Option<Transmit>;
    fn sent(&self, id: OutputId);
    fn has_output(&self, id: OutputId) -> bool;
    fn set_output_label(&self, id: OutputId, label: String);
    /// Tells status watchers at once that something changed that is not
    /// a stream, output or edge (an output's state in its label).
    fn changed_now(&self) {}
    fn output_drops(&self, id: OutputId) -> Option<DropCounts>;
    fn remove_output(&self, id: OutputId);
    /// The STREAM_OPEN of `stream`, if the node serves it.
    fn stream_open(&self, stream: &str) -> Option<StreamOpen>;
    /// For `BASE~FORMAT` with BASE served: starts the transcoder that
    /// serves it, if none does (the error says why it cannot be).
    fn derive(self: Arc<Self>, name: &str) -> Result<(), String>;
    fn extension(&self, ty: TypeId) -> Option<Arc<dyn Any + Send + Sync>>;
}

/// What a node shares with the sources and sinks of some kind, one value
/// per type (the V4L2 device registry, the viewers' input registry):
/// given when the node starts, read-only after.
#[derive(Default)]
pub(crate) struct Extensions(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Extensions({} values)", self.0.len())
    }
}

impl Extensions {
    pub(crate) fn insert<T: Any + Send + Sync>(&mut self, value: Arc<T>) {
        self.0.insert(TypeId::of::<T>(), value);
    }

    #[cfg_attr(
        not(any(feature = "x11", all(feature = "v4l2", target_os = "linux"))),
        allow(dead_code)
    )]
    pub(crate) fn get_raw(&self, ty: TypeId) -> Option<Arc<dyn Any + Send + Sync>> {
        self.0.get(&ty).cloned()
    }
}

/// A source, configured: what a node starts to produce one stream.
pub trait SourceSpec: Any + fmt::Debug + Send + Sync {
    /// The stream's name.
    fn name(&self) -> &str;

    /// The kind, as `--source KIND:NAME,...` and `kind = "..."` write it.
    fn kind(&self) -> &'static str;

    /// Starts the source: it opens its stream with `SourceHost::open`
    /// (an error here refuses the node's start, with the reason) and then
    /// produces on a thread of its own until `SourceHost::stopped`.
    fn start(&self, host: SourceHost) -> Result<std::thread::JoinHandle<()>, NetError>;
}

/// A sink, configured: what a node runs to consume one stream.
pub trait SinkSpec: Any + fmt::Debug + Send + Sync {
    /// The kind, as `--sink KIND:STREAM,...` and `kind = "..."` write it.
    fn kind(&self) -> &'static str;

    /// How the sink's output is named in statistics (`sink:file:PATH`).
    fn label(&self) -> String;

    /// Runs the sink until the node stops (the node waits for it then,
    /// up to `SINK_FINALIZE_GRACE`, so it can finish what it writes).
    fn run(&self, host: SinkHost) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// How a running source takes a changed spec of its own kind without
/// stopping (SOURCE_SET): the outcome comes back on the receiver; `None`
/// when this change needs a restart (the node then swaps the source).
pub(crate) type Updater = Box<
    dyn Fn(crate::config::SourceConfig) -> Option<tokio::sync::oneshot::Receiver<Result<(), String>>> + Send + Sync,
>;

/// A running source's [`Updater`], once it gave one.
#[derive(Default)]
pub(crate) struct UpdateSlot(Mutex<Option<Updater>>);

impl fmt::Debug for UpdateSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UpdateSlot")
    }
}

impl UpdateSlot {
    /// Hands `spec` to the running source, if it takes changes in place.
    pub(crate) fn offer(
        &self,
        spec: crate::config::SourceConfig,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<(), String>>> {
        let slot = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.as_ref().and_then(|u| u(spec))
    }
}

/// What a starting source gets from the node.
#[derive(Debug)]
pub struct SourceHost {
    pub(crate) node: Arc<dyn NodePort>,
    pub(crate) stop: StopSignal,
    /// The source takes over the stream of one it replaces (SOURCE_SET).
    pub(crate) replacing: bool,
    /// Where a source that takes changes in place leaves its updater.
    pub(crate) updates: Arc<UpdateSlot>,
}

impl SourceHost {
    /// Opens the source's stream with its STREAM_OPEN and first state.
    pub(crate) fn open(&self, open: StreamOpen, state: StreamState) -> Result<StreamOut, NetError> {
        let name = open.name.clone();
        if self.replacing {
            self.node.reopen_stream(open, state)?;
        } else {
            self.node.add_stream(open, state)?;
        }
        Ok(StreamOut {
            node: self.node.clone(),
            name,
        })
    }

    /// The flag that turns true when the source is to stop (the node
    /// stops, or the source is changed or removed).
    /// Lets SOURCE_SET hand this source a changed spec of its kind while it
    /// runs (no stop, no gap in its stream), instead of restarting it.
    pub(crate) fn take_updates(&self, updater: Updater) {
        *self.updates.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(updater);
    }

    pub(crate) fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.flag.clone()
    }

    /// The same, with a wake for a source that waits in a runtime.
    #[cfg_attr(not(feature = "rtsp"), allow(dead_code))]
    pub(crate) fn stop_signal(&self) -> StopSignal {
        self.stop.clone()
    }

    /// Whether the source is to stop.
    #[allow(dead_code)]
    pub(crate) fn stopped(&self) -> bool {
        self.stop.flag.load(Ordering::Relaxed)
    }

    /// What the node shares with sources of a kind, by type (the V4L2
    /// sources' device registry, the viewers' input registry).
    #[cfg_attr(
        not(any(feature = "x11", all(feature = "v4l2", target_os = "linux"))),
        allow(dead_code)
    )]
    pub(crate) fn extension<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.node.extension(TypeId::of::<T>())?.downcast().ok()
    }
}

/// Tells a source to stop: a flag its thread looks at, and a wake for a
/// source that waits in a runtime instead of polling the flag.
#[derive(Debug, Clone, Default)]
pub(crate) struct StopSignal {
    flag: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
}

impl StopSignal {
    /// Sets the flag and wakes those waiting.
    pub(crate) fn raise(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    /// Whether it was raised.
    #[cfg_attr(not(feature = "rtsp"), allow(dead_code))]
    pub(crate) fn is_raised(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves once it is raised.
    #[cfg_attr(not(feature = "rtsp"), allow(dead_code))]
    pub(crate) async fn raised(&self) {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.is_raised() {
                return;
            }
            woken.await;
        }
    }
}

/// A source's stream: where it pushes frames and says what happens.
#[derive(Debug, Clone)]
pub(crate) struct StreamOut {
    node: Arc<dyn NodePort>,
    name: String,
}

impl StreamOut {
    /// The stream's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Pushes a frame to every subscriber; never blocks.
    pub(crate) fn push(&self, frame: Frame) {
        self.node.push(&self.name, frame);
    }

    /// Takes the stream's keyframe requests (a source that encodes an
    /// inter-coded format); given back when the guard drops.
    pub(crate) fn keyframe_requests(&self) -> KeyframeRequestsGuard {
        KeyframeRequestsGuard {
            flag: self.node.take_keyframes(&self.name),
            out: self.clone(),
        }
    }

    /// Tells the subscribers (interrupted, resumed, format changed).
    #[cfg_attr(
        not(any(feature = "x11", all(feature = "v4l2", target_os = "linux"))),
        allow(dead_code)
    )]
    pub(crate) fn event(&self, event: StreamEvent) {
        self.node.stream_event(&self.name, event);
    }

    /// Sets the stream's state without an event (idle, failed).
    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    pub(crate) fn set_state(&self, state: StreamState) {
        self.node.set_stream_state(&self.name, state);
    }

    /// How many outputs take the stream now.
    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    pub(crate) fn subscribers(&self) -> usize {
        self.node.subscribers(&self.name)
    }

    /// Waits until an output of the stream can take a frame of `len` bytes
    /// without dropping one (see `NodeState::has_room`), woken when an
    /// output sends, comes or goes. False if `stop` was set first.
    pub(crate) fn wait_room(&self, len: usize, stop: &AtomicBool) -> bool {
        self.node.wait_room(&self.name, len, stop)
    }
}

/// The least time between two forced keyframes of a stream (and between
/// two keyframe requests a relay passes upstream).
pub(crate) const MIN_KEYFRAME_INTERVAL: Duration = Duration::from_millis(250);

/// A stream's encoder's side: a request pending, and when it last forced one.
#[derive(Debug, Default)]
pub(crate) struct KeyframeFlag {
    pending: AtomicBool,
    last: Mutex<Option<Instant>>,
}

impl KeyframeFlag {
    /// A keyframe is asked for.
    pub(crate) fn request(&self) {
        self.pending.store(true, Ordering::Relaxed);
    }

    /// Whether to force a keyframe now: a request is pending and the last
    /// forced keyframe is [`MIN_KEYFRAME_INTERVAL`] old (the request stays pending
    /// until then).
    pub(crate) fn take(&self, now: Instant) -> bool {
        if !self.pending.load(Ordering::Relaxed) {
            return false;
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < MIN_KEYFRAME_INTERVAL) {
            return false;
        }
        *last = Some(now);
        self.pending.store(false, Ordering::Relaxed);
        true
    }
}

/// A source's hold on its stream's keyframe requests.
#[derive(Debug)]
pub(crate) struct KeyframeRequestsGuard {
    flag: Arc<KeyframeFlag>,
    out: StreamOut,
}

impl KeyframeRequestsGuard {
    /// Whether to make the next frame a keyframe (a request is pending and
    /// the last forced one is old enough).
    pub(crate) fn take(&self) -> bool {
        self.flag.take(Instant::now())
    }
}

impl Drop for KeyframeRequestsGuard {
    fn drop(&mut self) {
        self.out.node.drop_keyframes(&self.out.name, &self.flag);
    }
}

/// What a running sink gets from the node.
#[derive(Debug)]
pub struct SinkHost {
    pub(crate) node: Arc<dyn NodePort>,
    pub(crate) stream: String,
    pub(crate) params: SubscribeParams,
    pub(crate) label: String,
}

impl SinkHost {
    /// The stream it consumes.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// How its output is named in statistics.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A receiver that turns true when the node stops.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.node.shutdown_signal()
    }

    /// What the node shares with sinks of a kind, by type (the archive
    /// sinks' pause switches).
    pub(crate) fn extension<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.node.extension(TypeId::of::<T>())?.downcast().ok()
    }

    /// Waits for the stream (a pulled stream appears once its upstream
    /// answers) and attaches an output of the sink's delivery mode to it.
    /// `None` when the node stops first.
    pub async fn attach(&self) -> Option<SinkInput> {
        let notify = Arc::new(Notify::new());
        let events = Arc::new(EventQueue::default());
        let mut stop = self.stopping();
        let mut changes = self.node.changes();
        let mut refused = None;
        loop {
            changes.mark_unchanged();
            // A sink of `BASE~FORMAT` starts its transcoder (again, after
            // BASE went and came back).
            match self.node.clone().derive(&self.stream) {
                Err(e) if refused.as_ref() != Some(&e) => {
                    warn!(stream = %self.stream, reason = %e, "sink: the stream cannot be derived");
                    refused = Some(e);
                }
                _ => {}
            }
            let added = self.node.add_output(
                &self.stream,
                &self.params,
                self.label.clone(),
                notify.clone(),
                events.clone(),
            );
            if let Ok((id, open)) = added {
                return Some(SinkInput {
                    node: self.node.clone(),
                    id,
                    open,
                    notify,
                    events,
                });
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return None },
                _ = stop.wait_for(|s| *s) => return None,
            }
        }
    }
}

/// The stream events of a sink's output (interrupted, resumed, format
/// changed, closed) since it last looked; the oldest go past
/// [`EventQueue::CAPACITY`] (a sink that never looks loses nothing else).
#[derive(Debug, Default)]
pub(crate) struct EventQueue(Mutex<VecDeque<StreamEvent>>);

impl EventQueue {
    /// Events kept at most.
    pub(crate) const CAPACITY: usize = 32;

    pub(crate) fn push(&self, event: StreamEvent) {
        let mut q = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.len() == Self::CAPACITY {
            q.pop_front();
        }
        q.push_back(event);
    }

    pub(crate) fn take(&self) -> Vec<StreamEvent> {
        let mut q = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        q.drain(..).collect()
    }
}

/// A sink's output: the frames and events of its stream, in its delivery
/// mode.
#[derive(Debug)]
pub struct SinkInput {
    node: Arc<dyn NodePort>,
    id: OutputId,
    open: StreamOpen,
    notify: Arc<Notify>,
    events: Arc<EventQueue>,
}

impl SinkInput {
    /// The stream's STREAM_OPEN when the output was attached.
    pub fn open(&self) -> &StreamOpen {
        &self.open
    }

    /// The next frame to consume, if one is ready (call
    /// [`SinkInput::sent`] when done with it).
    pub fn poll(&self) -> Option<Transmit> {
        self.node.poll_transmit(self.id)
    }

    /// The frame taken last is consumed.
    pub fn sent(&self) {
        self.node.sent(self.id);
    }

    /// Whether the stream is still there (it goes when its source or
    /// upstream does; attach again to wait for it).
    pub fn attached(&self) -> bool {
        self.node.has_output(self.id)
    }

    /// Waits for a frame, at most `max`.
    pub async fn ready(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.notify.notified()).await;
    }

    /// Renames the output in statistics (an archive shows its state there).
    pub fn set_label(&self, label: String) {
        self.node.set_output_label(self.id, label);
    }

    /// Renames the output for a change of its state (recording, full,
    /// failing): status watchers get a report at once, not at their next
    /// interval, so a controller's alert follows within milliseconds.
    pub fn announce_label(&self, label: String) {
        self.node.set_output_label(self.id, label);
        self.node.changed_now();
    }

    /// The stream's events since the last call, oldest first.
    pub fn events(&self) -> Vec<StreamEvent> {
        self.events.take()
    }

    /// What the output dropped so far, by reason.
    pub fn drops(&self) -> Option<DropCounts> {
        self.node.output_drops(self.id)
    }
}

impl Drop for SinkInput {
    fn drop(&mut self) {
        self.node.remove_output(self.id);
    }
}
