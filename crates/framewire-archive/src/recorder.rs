//! The archiver: a worker thread that feeds ffmpeg, cuts segments, keeps
//! the index and applies the storage policy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use framewire_codec::Registry;
use framewire_proto::{Format, Origin, StreamOpen};
use tracing::info;

use crate::config::{ArchiveConfig, ArchiveFormat};
use crate::error::ArchiveError;
use crate::ffmpeg::{self, InputKind};
use crate::index::{Index, StreamDesc};
use crate::reconcile;
use crate::segments::stream_dir_name;
use crate::time;
use crate::worker::{Worker, WorkerSetup};

/// Frames the archiver holds before [`Archiver::try_push`] says full (the
/// relay output in front of it holds the rest, within its budget).
const QUEUE: usize = 8;

/// One frame handed to the archiver.
#[derive(Debug, Clone)]
pub struct ArchiveFrame {
    /// The payload as received.
    pub data: Bytes,
    /// The source's sequence number.
    pub sequence: u64,
    /// Capture time, ns since the epoch.
    pub timestamp_ns: u64,
    /// Frames the relay output dropped just before this one.
    pub lost: u64,
    /// Those drops by reason (`frame-budget=3`), for the index.
    pub lost_detail: String,
    /// A decoder can start at it (every frame of an intra-only format).
    pub keyframe: bool,
}

/// Why [`Archiver::try_push`] did not take a frame.
#[derive(Debug)]
#[non_exhaustive]
pub enum PushError {
    /// The archiver's queue is full: try again shortly.
    Full(ArchiveFrame),
    /// The archiver has stopped.
    Stopped(ArchiveFrame),
}

/// What the archiver is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveState {
    /// Waiting for the first frame.
    Starting,
    /// Writing segments.
    Recording,
    /// A limit was reached and recording is paused.
    Full(String),
    /// ffmpeg cannot be started; retrying.
    Failing(String),
    /// The storage cannot be written (no space, read-only, I/O error):
    /// frames are counted, not stored; retrying until it can.
    StorageFailed(String),
    /// Finished.
    Stopped,
}

/// Counters and state, for stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// State.
    pub state: ArchiveState,
    /// Frames written to ffmpeg.
    pub frames: u64,
    /// Segments closed in this run.
    pub segments_closed: u64,
    /// Segments deleted by the storage policy in this run.
    pub segments_deleted: u64,
    /// ffmpeg restarts in this run.
    pub restarts: u64,
    /// Bytes of the whole archive (index).
    pub archive_bytes: u64,
    /// The segment being written, relative to the archive directory.
    pub current: Option<String>,
}

impl ArchiveState {
    /// As the index records it: `recording`, `full: WHY`, `storage-failed: WHY`, ...
    pub fn label(&self) -> String {
        match self {
            ArchiveState::Starting => "starting".to_owned(),
            ArchiveState::Recording => "recording".to_owned(),
            ArchiveState::Full(w) => format!("full: {w}"),
            ArchiveState::Failing(w) => format!("failing: {w}"),
            ArchiveState::StorageFailed(w) => format!("storage-failed: {w}"),
            ArchiveState::Stopped => "stopped".to_owned(),
        }
    }
}

impl Status {
    /// One line: `recording ffv1, 3 segments, 12.0 MB, 1 restart`.
    pub fn summary(&self) -> String {
        let st = match &self.state {
            ArchiveState::Starting => "starting".to_owned(),
            ArchiveState::Recording => "recording".to_owned(),
            ArchiveState::Full(why) => format!("FULL ({why})"),
            ArchiveState::Failing(why) => format!("FAILING ({why})"),
            ArchiveState::StorageFailed(why) => format!("STORAGE FAILED ({why})"),
            ArchiveState::Stopped => "stopped".to_owned(),
        };
        format!(
            "{st}, {} segments closed, {:.1} MB, {} restarts, {} deleted",
            self.segments_closed,
            self.archive_bytes as f64 / 1e6,
            self.restarts,
            self.segments_deleted
        )
    }
}

/// A running archive of one stream. Dropping it closes the open segment
/// in the background; [`Archiver::finish`] waits for that.
#[derive(Debug)]
pub struct Archiver {
    tx: Option<SyncSender<ArchiveFrame>>,
    status: Arc<Mutex<Status>>,
    state_changes: Arc<AtomicU64>,
    worker: Option<JoinHandle<()>>,
}

impl Archiver {
    /// Opens the archive for `open`'s stream: checks that the format can be
    /// archived and that ffmpeg runs, opens the index, reconciles it with
    /// the disk, and starts the worker. Blocking (reconciliation may
    /// repair files).
    pub fn start(cfg: ArchiveConfig, open: &StreamOpen) -> Result<Archiver, ArchiveError> {
        let coded = match open.format {
            Format::H264 => InputKind::H264,
            Format::H265 => InputKind::H265,
            _ => InputKind::Mjpeg,
        };
        let decoder = match (open.format, cfg.format) {
            // ffmpeg reads these as they came (and re-encodes them unless
            // the archive is passthrough).
            (Format::Mjpeg | Format::H264 | Format::H265, _) => None,
            (_, ArchiveFormat::Passthrough) => {
                return Err(ArchiveError::Config(format!(
                    "passthrough keeps MJPEG, H.264 and H.265 as they came, and `{}` is {}: choose ffv1 for a lossless archive",
                    open.name,
                    open.format.label()
                )));
            }
            (Format::Raw | Format::RawZstd | Format::Qoi, _) => Some(
                Registry::builtin()
                    .negotiate(open)
                    .map_err(|e| ArchiveError::Config(format!("cannot decode `{}` for archiving: {e}", open.name)))?,
            ),
            (f, _) => {
                return Err(ArchiveError::Config(format!(
                    "cannot archive `{}`: its format {} is not MJPEG, H.264, H.265, QOI or raw",
                    open.name,
                    f.label()
                )));
            }
        };
        if !ffmpeg::available(&cfg.ffmpeg) {
            return Err(ArchiveError::Ffmpeg(format!(
                "`{}` does not run: install ffmpeg",
                cfg.ffmpeg.display()
            )));
        }
        let index = Arc::new(Index::open(&cfg.dir)?);
        let stream_id = index.upsert_stream(
            &StreamDesc {
                name: &open.name,
                format: open.format.label(),
                pixel_format: open.pixel_format.label(),
                width: open.width,
                height: open.height,
                fps_num: open.fps_num,
                fps_den: open.fps_den,
                archive_format: cfg.format.label(),
                encoder: cfg.format.encoder(),
                origin: Origin::FfmpegSubprocess.label(),
            },
            time::now_ns(),
        )?;
        reconcile::reconcile(&index, &cfg.ffmpeg, stream_id, &open.name)?;
        index.set_state(stream_id, "starting")?;
        let (num, den) = if open.fps_num == 0 || open.fps_den == 0 {
            (30, 1)
        } else {
            (open.fps_num, open.fps_den)
        };
        let status = Arc::new(Mutex::new(Status {
            state: ArchiveState::Starting,
            frames: 0,
            segments_closed: 0,
            segments_deleted: 0,
            restarts: 0,
            archive_bytes: index.total_bytes()?,
            current: None,
        }));
        let state_changes = Arc::new(AtomicU64::new(0));
        let cfg_format = cfg.format;
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let mut w = Worker::new(WorkerSetup {
            ffprobe: ffmpeg::ffprobe_for(&cfg.ffmpeg),
            cfg,
            stream: open.name.clone(),
            stream_dir: stream_dir_name(&open.name),
            rate: format!("{num}/{den}"),
            period_ns: u64::from(den) * 1_000_000_000 / u64::from(num).max(1),
            decoder,
            coded,
            segment_codec: match (cfg_format, coded) {
                (ArchiveFormat::Passthrough, InputKind::H264) => "h264",
                (ArchiveFormat::Passthrough, InputKind::H265) => "hevc",
                (f, _) => f.codec(),
            },
            index,
            stream_id,
            status: status.clone(),
            state_changes: state_changes.clone(),
        });
        let worker = std::thread::Builder::new()
            .name(format!("archive:{}", open.name))
            .spawn(move || w.run(&rx))
            .map_err(|e| ArchiveError::io("cannot start the archiver thread", e))?;
        info!(stream = %open.name, "archiver ready");
        Ok(Archiver {
            tx: Some(tx),
            status,
            state_changes,
            worker: Some(worker),
        })
    }

    /// Hands over a frame without blocking.
    pub fn try_push(&self, frame: ArchiveFrame) -> Result<(), PushError> {
        match &self.tx {
            Some(tx) => tx.try_send(frame).map_err(|e| match e {
                TrySendError::Full(f) => PushError::Full(f),
                TrySendError::Disconnected(f) => PushError::Stopped(f),
            }),
            None => Err(PushError::Stopped(frame)),
        }
    }

    /// How many times the state has changed: cheap to poll, to read
    /// [`Archiver::status`] only when it moved.
    pub fn state_changes(&self) -> u64 {
        self.state_changes.load(Ordering::Acquire)
    }

    /// Current state and counters.
    pub fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Writes what is queued, closes the open segment (ffmpeg finishes the
    /// file), updates the index, and returns. Blocking; bounded by the
    /// finalize timeout per ffmpeg.
    pub fn finish(mut self) {
        drop(self.tx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        drop(self.tx.take());
    }
}
