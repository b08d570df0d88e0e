//! The extension points of a node: a kind of source or sink is one module
//! implementing [`SourceSpec`] or [`SinkSpec`], plus one line in the
//! registry of its folder (`sources::KINDS`, `sinks::KINDS`) that builds it
//! from a config table. A kind sees the node only through the handles
//! here: a source gets a [`SourceHost`] and pushes into its [`StreamOut`];
//! a sink gets a [`SinkHost`] and takes frames from its [`SinkInput`].
//! docs/architecture.md shows a whole kind.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use framewire_proto::control::StreamState;
use framewire_proto::{StreamEvent, StreamOpen, SubscribeParams};
use framewire_relay::{DropCounts, Frame, OutputId, Transmit};
use tokio::sync::{Notify, watch};

use crate::error::NetError;
use crate::node::{OutputEntry, Shared};

/// A source, configured: what a node starts to produce one stream.
pub trait SourceSpec: Any + fmt::Debug + Send + Sync {
    /// The stream's name.
    fn name(&self) -> &str;

    /// The kind, as `--source KIND:NAME,...` and `kind = "..."` write it.
    fn kind(&self) -> &'static str;

    /// Starts the source: it opens its stream with [`SourceHost::open`]
    /// (an error here refuses the node's start, with the reason) and then
    /// produces on a thread of its own until [`SourceHost::stopped`].
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

/// What a starting source gets from the node.
#[derive(Debug)]
pub struct SourceHost {
    pub(crate) shared: Arc<Shared>,
    pub(crate) stop: Arc<AtomicBool>,
}

impl SourceHost {
    /// Opens the source's stream with its STREAM_OPEN and first state.
    pub(crate) fn open(&self, open: StreamOpen, state: StreamState) -> Result<StreamOut, NetError> {
        let name = open.name.clone();
        self.shared.add_stream(open, String::new(), state)?;
        Ok(StreamOut {
            shared: self.shared.clone(),
            name,
        })
    }

    /// The flag that turns true when the node stops.
    pub(crate) fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Whether the node stops.
    #[allow(dead_code)]
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The devices the node's V4L2 sources capture from (the V4L2 family
    /// re-applies controls set remotely from here).
    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    pub(crate) fn v4l2(&self) -> &Arc<crate::sources::v4l2::V4l2Registry> {
        &self.shared.v4l2
    }

    /// Where viewers' input for a stream goes (an `x11` source says its display).
    #[cfg_attr(not(feature = "x11"), allow(dead_code))]
    pub(crate) fn input(&self) -> &Arc<crate::runtime::input::InputRegistry> {
        &self.shared.input
    }
}

/// A source's stream: where it pushes frames and says what happens.
#[derive(Debug, Clone)]
pub(crate) struct StreamOut {
    shared: Arc<Shared>,
    name: String,
}

impl StreamOut {
    /// The stream's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Pushes a frame to every subscriber; never blocks.
    pub(crate) fn push(&self, frame: Frame) {
        self.shared.push(&self.name, frame);
    }

    /// Tells the subscribers (interrupted, resumed, format changed).
    pub(crate) fn event(&self, event: StreamEvent) {
        self.shared.stream_event(&self.name, event);
    }

    /// Sets the stream's state without an event (idle, failed).
    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    pub(crate) fn set_state(&self, state: StreamState) {
        self.shared.set_stream_state(&self.name, state);
    }

    /// How many outputs take the stream now.
    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    pub(crate) fn subscribers(&self) -> usize {
        self.shared.subscribers(&self.name)
    }

    /// Waits until an output of the stream can take a frame of `len` bytes
    /// without dropping one (see `NodeState::has_room`), woken when an
    /// output sends, comes or goes. False if `stop` was set first.
    pub(crate) fn wait_room(&self, len: usize, stop: &AtomicBool) -> bool {
        self.shared.wait_room(&self.name, len, stop)
    }
}

/// What a running sink gets from the node.
#[derive(Debug)]
pub struct SinkHost {
    pub(crate) shared: Arc<Shared>,
    pub(crate) stream: String,
    pub(crate) params: SubscribeParams,
    pub(crate) label: String,
}

impl SinkHost {
    /// The stream it consumes.
    pub(crate) fn stream(&self) -> &str {
        &self.stream
    }

    /// A receiver that turns true when the node stops.
    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.shared.shutdown.subscribe()
    }

    /// Waits for the stream (a pulled stream appears once its upstream
    /// answers) and attaches an output of the sink's delivery mode to it.
    /// `None` when the node stops first.
    pub(crate) async fn attach(&self) -> Option<SinkInput> {
        let notify = Arc::new(Notify::new());
        let mut stop = self.stopping();
        let mut changes = self.shared.changes.subscribe();
        loop {
            changes.mark_unchanged();
            let entry = OutputEntry {
                stream: self.stream.clone(),
                channel: 0,
                peer: self.label.clone(),
                waker: notify.clone(),
                events: None,
            };
            if let Ok((id, open)) = self.shared.add_output(&self.stream, &self.params, entry) {
                return Some(SinkInput {
                    shared: self.shared.clone(),
                    id,
                    open,
                    notify,
                });
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return None },
                _ = stop.wait_for(|s| *s) => return None,
            }
        }
    }
}

/// A sink's output: the frames of its stream, in its delivery mode.
#[derive(Debug)]
pub(crate) struct SinkInput {
    shared: Arc<Shared>,
    id: OutputId,
    open: StreamOpen,
    notify: Arc<Notify>,
}

impl SinkInput {
    /// The stream's STREAM_OPEN when the output was attached.
    pub(crate) fn open(&self) -> &StreamOpen {
        &self.open
    }

    /// The next frame to consume, if one is ready (call
    /// [`SinkInput::sent`] when done with it).
    pub(crate) fn poll(&self) -> Option<Transmit> {
        self.shared.poll_transmit(self.id)
    }

    /// The frame taken last is consumed.
    pub(crate) fn sent(&self) {
        self.shared.sent(self.id);
    }

    /// Whether the stream is still there (it goes when its source or
    /// upstream does; attach again to wait for it).
    pub(crate) fn attached(&self) -> bool {
        self.shared.has_output(self.id)
    }

    /// Waits for a frame, at most `max`.
    pub(crate) async fn ready(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.notify.notified()).await;
    }

    /// Renames the output in statistics (an archive shows its state there).
    pub(crate) fn set_label(&self, label: String) {
        self.shared.set_output_peer(self.id, label);
    }

    /// What the output dropped so far, by reason.
    pub(crate) fn drops(&self) -> Option<DropCounts> {
        self.shared
            .with_state(|st| st.output_snapshot(self.id, std::time::Instant::now()))
            .map(|s| s.drops)
    }
}

impl Drop for SinkInput {
    fn drop(&mut self) {
        self.shared.remove_output(self.id);
    }
}
