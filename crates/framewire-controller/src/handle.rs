//! The controller's API: what the web server and the CLI call.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use framewire_net::ClientIdentity;
use framewire_proto::Format;
use framewire_proto::control::{Request, Response, StreamOpen};
use tokio::sync::{mpsc, oneshot, watch};

use crate::model::{CurrentGraph, Refusal, WantedEdge, WantedGraph};
use crate::runtime::Cmd;

/// What can go wrong asking the controller for something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// No node by that name.
    #[error("no node named {0:?}")]
    UnknownNode(String),
    /// No stream by that name on that node.
    #[error("node {0:?} has no stream {1:?}")]
    UnknownStream(String, String),
    /// The edge does not exist.
    #[error("no edge {0:?}")]
    UnknownEdge(String),
    /// The document was refused; nothing changed.
    #[error("refused: {}", .0.iter().map(|r| format!("edge {} ({}): {}", r.index, r.edge, r.reason)).collect::<Vec<_>>().join("; "))]
    Refused(Vec<Refusal>),
    /// The node answered with an error status.
    #[error("node {node:?} refused: {message}")]
    Node {
        /// Node name.
        node: String,
        /// Its message.
        message: String,
    },
    /// The node is not reachable now.
    #[error("node {0:?} is offline")]
    Offline(String),
    /// Only an offline node can be forgotten.
    #[error("node {0:?} is online: only an offline node can be forgotten (stop it first)")]
    Online(String),
    /// The wanted graph changed since the version the write was based on;
    /// nothing changed.
    #[error(
        "the wanted graph changed since version {expected} (it is now {current}): read it again and reapply the change"
    )]
    Stale {
        /// The version the write expected.
        expected: String,
        /// The version now.
        current: String,
    },
    /// Anything else (I/O, persistence).
    #[error("{0}")]
    Other(String),
}

/// One preview frame: always JPEG (the controller transcodes other formats).
#[derive(Debug, Clone)]
pub struct PreviewFrame {
    /// Sequence from the source.
    pub sequence: u64,
    /// Capture time, ns since the Unix epoch.
    pub timestamp_ns: u64,
    /// Wire flags (bit0 keyframe, bit1 discontinuity).
    pub flags: u32,
    /// The payload: JPEG, or for a passthrough preview the stream's own
    /// frame (an H.264 access unit).
    pub data: Bytes,
}

/// A live preview of one stream: its STREAM_OPEN (format rewritten to MJPEG)
/// and then the newest frames. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Preview {
    /// What the browser is told before the first frame (format = MJPEG).
    pub open: StreamOpen,
    /// Newest-first delivery: a slow reader misses frames, never stalls the source.
    pub frames: mpsc::Receiver<PreviewFrame>,
    /// Asks the stream's source for a keyframe (REQUEST_KEYFRAME on the
    /// subscription); a passthrough preview's decoder uses it after loss.
    /// `None` where it means nothing (JPEG previews).
    pub keyframes: Option<mpsc::Sender<()>>,
}

/// What a handle holds: the way to the controller's task.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cmd: mpsc::Sender<Cmd>,
    pub(crate) graph: watch::Receiver<Arc<CurrentGraph>>,
    /// Who previews say they are.
    pub(crate) identity: ClientIdentity,
    pub(crate) timeout: Duration,
}

/// A cheap, cloneable handle on a running controller. The controller runs
/// while any handle exists.
#[derive(Debug, Clone)]
pub struct ControllerHandle {
    pub(crate) inner: Arc<Inner>,
}

fn stopped() -> ControllerError {
    ControllerError::Other("the controller stopped".into())
}

impl ControllerHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T, ControllerError> {
        let (tx, rx) = oneshot::channel();
        self.inner.cmd.send(make(tx)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// The current graph; `changed()` wakes on every change.
    pub fn graph(&self) -> watch::Receiver<Arc<CurrentGraph>> {
        self.inner.graph.clone()
    }

    /// The wanted graph as stored.
    pub async fn wanted(&self) -> WantedGraph {
        self.ask(Cmd::Wanted).await.unwrap_or_default()
    }

    /// Replace the wanted graph: validate every edge first (staged), then
    /// persist atomically and reconcile (activate). On any refusal nothing changes.
    pub async fn apply(&self, wanted: WantedGraph) -> Result<(), ControllerError> {
        self.ask(|tx| Cmd::Apply(wanted, None, tx)).await?
    }

    /// [`ControllerHandle::apply`], only if the stored graph is still at
    /// version `if_match` ([`WantedGraph::version`]); otherwise nothing
    /// changes and [`ControllerError::Stale`] names the current version.
    /// Returns the new version.
    pub async fn apply_if(&self, wanted: WantedGraph, if_match: Option<String>) -> Result<String, ControllerError> {
        let version = wanted.version();
        self.ask(|tx| Cmd::Apply(wanted, if_match, tx)).await??;
        Ok(version)
    }

    /// Forget an offline node: it leaves the graph and is no longer
    /// dialled (until discovery or a wanted edge's report brings it back).
    /// Its wanted edges stay wanted. An online node is refused.
    pub async fn forget_node(&self, node: &str) -> Result<(), ControllerError> {
        let node = node.to_owned();
        self.ask(|tx| Cmd::Forget(node, tx)).await?
    }

    /// Add one wanted edge (validated as `apply` does). Returns its id.
    pub async fn add_edge(&self, edge: WantedEdge) -> Result<String, ControllerError> {
        self.ask(|tx| Cmd::AddEdge(edge, tx)).await?
    }

    /// Remove a wanted edge by id (`"{downstream}/{local_name}"`).
    pub async fn remove_edge(&self, id: &str) -> Result<(), ControllerError> {
        let id = id.to_owned();
        self.ask(|tx| Cmd::RemoveEdge(id, tx)).await?
    }

    /// Send one control request to a node (DESCRIBE, V4L2_*, LIST_MONITORS…)
    /// over the controller's control connection and return its answer.
    /// Requests that would change the connection itself (HELLO, AUTH,
    /// SUBSCRIBE, UNSUBSCRIBE, STREAM_OPEN, WATCH_STATUS, STATUS_REPORT) are
    /// refused: streams go through [`ControllerHandle::preview`].
    pub async fn request(&self, node: &str, req: Request) -> Result<Response, ControllerError> {
        use framewire_proto::Command as C;
        let command = req.command();
        if matches!(
            command,
            C::Hello | C::Auth | C::Subscribe | C::Unsubscribe | C::StreamOpen | C::WatchStatus | C::StatusReport
        ) {
            return Err(ControllerError::Other(format!(
                "{command} is not sent on the controller's connection (use a preview for streams)"
            )));
        }
        let node = node.to_owned();
        self.ask(|tx| Cmd::Request(node, req, tx)).await?
    }

    /// A live JPEG preview of a stream: a low-latency subscription straight
    /// to the node serving it; formats other than MJPEG are transcoded to
    /// JPEG off the async threads, dropping frames while the encoder is busy.
    pub async fn preview(&self, node: &str, stream: &str) -> Result<Preview, ControllerError> {
        self.preview_with(node, stream, &[]).await
    }

    /// A live preview that passes a stream in one of `passthrough`'s
    /// formats (H.264, for a browser that decodes it) through as it comes,
    /// every frame in order; any other stream is a JPEG preview.
    pub async fn preview_with(
        &self,
        node: &str,
        stream: &str,
        passthrough: &[Format],
    ) -> Result<Preview, ControllerError> {
        let addr = crate::runtime::locate(&self.inner, node, stream).await?;
        crate::preview::start(
            &addr,
            node,
            stream,
            &self.inner.identity,
            self.inner.timeout,
            passthrough,
        )
        .await
    }
}
