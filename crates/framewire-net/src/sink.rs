//! Local sinks: consumers inside the node, each fed by a relay output of
//! its own like any subscriber.
//!
//! - `null`: counts frames (benchmarks, demos);
//! - `file`: appends each frame's bytes to a file (an MJPEG stream's file
//!   is a `.mjpeg` that players open);
//! - `stdout`: writes each frame's bytes to standard output, for
//!   `framewire node … | ffmpeg -f rawvideo …`;
//! - `archive`: hands each frame to a `framewire-archive` archiver
//!   (ffmpeg subprocess, segments, SQLite index); see `archive_sink`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use framewire_proto::SubscribeParams;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::node::{OutputEntry, Shared};

/// Where a local sink puts frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    /// Count and discard.
    Null,
    /// Append to a file.
    File(PathBuf),
    /// Write to standard output.
    Stdout,
    /// Archive: segments encoded by ffmpeg, indexed in SQLite.
    Archive(framewire_archive::ArchiveConfig),
}

/// How long a node's shutdown waits for its sinks to finish (an archive
/// closes its open segment).
pub const SINK_FINALIZE_GRACE: Duration = Duration::from_secs(30);

/// Waits for sink tasks to end, at most [`SINK_FINALIZE_GRACE`] in all.
pub(crate) async fn wait_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    let deadline = tokio::time::Instant::now() + SINK_FINALIZE_GRACE;
    for t in tasks {
        let abort = t.abort_handle();
        if tokio::time::timeout_at(deadline, t).await.is_err() {
            warn!("a sink did not finish within {SINK_FINALIZE_GRACE:?}; stopped");
            abort.abort();
        }
    }
}

/// A local sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// The stream consumed.
    pub stream: String,
    /// Where its frames go.
    pub kind: SinkKind,
    /// Delivery mode and budgets of its output.
    pub params: SubscribeParams,
}

impl SinkKind {
    pub(crate) fn label(&self) -> String {
        match self {
            SinkKind::Null => "sink:null".into(),
            SinkKind::File(p) => format!("sink:file:{}", p.display()),
            SinkKind::Stdout => "sink:stdout".into(),
            SinkKind::Archive(a) => format!("sink:archive:{}", a.dir.display()),
        }
    }
}

pub(crate) async fn run(shared: Arc<Shared>, cfg: SinkConfig) {
    let mut out: Box<dyn AsyncWrite + Unpin + Send> = match &cfg.kind {
        SinkKind::Archive(a) => return crate::archive_sink::run(shared, cfg.clone(), a.clone()).await,
        SinkKind::Null => Box::new(tokio::io::sink()),
        SinkKind::Stdout => Box::new(tokio::io::stdout()),
        SinkKind::File(p) => match tokio::fs::OpenOptions::new().create(true).append(true).open(p).await {
            Ok(f) => Box::new(tokio::io::BufWriter::with_capacity(1 << 20, f)),
            Err(e) => {
                warn!(path = %p.display(), error = %e, "sink cannot open its file; not started");
                return;
            }
        },
    };
    let notify = Arc::new(Notify::new());
    let mut stop = shared.shutdown.subscribe();
    loop {
        // Wait for the stream (a pulled stream appears once its upstream answers).
        let entry = || OutputEntry {
            stream: cfg.stream.clone(),
            channel: 0,
            peer: cfg.kind.label(),
            waker: notify.clone(),
            events: None,
        };
        let id = loop {
            match shared.add_output(&cfg.stream, &cfg.params, entry()) {
                Ok((id, _)) => break id,
                Err(_) => tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stop.changed() => return,
                },
            }
        };
        info!(stream = %cfg.stream, sink = %cfg.kind.label(), "sink attached");
        loop {
            let tx = shared.poll_transmit(id);
            match tx {
                Some(tx) => {
                    if let Err(e) = out.write_all(&tx.frame.data).await {
                        warn!(sink = %cfg.kind.label(), error = %e, "sink write failed; sink stopped");
                        shared.remove_output(id);
                        return;
                    }
                    shared.sent(id);
                }
                None => {
                    let _ = out.flush().await;
                    if !shared.has_output(id) {
                        break; // the stream went away; wait for it again
                    }
                    tokio::select! {
                        () = notify.notified() => {}
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                        _ = stop.changed() => {
                            shared.remove_output(id);
                            let _ = out.flush().await;
                            return;
                        }
                    }
                }
            }
        }
    }
}
