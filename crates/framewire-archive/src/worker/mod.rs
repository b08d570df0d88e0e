//! The archiver's worker thread: it takes frames from the archiver's
//! queue, feeds ffmpeg, cuts segments, keeps the index, applies the
//! storage policy and rides out storage faults.
//!
//! Every frame the worker is handed is accounted for in the index: in a
//! segment (the frames that reached the disk), or in a gap with a reason
//! and its time span. A frame ffmpeg took but did not get to the disk (it
//! crashed, the disk filled) is counted in the gap that follows, once the
//! segment's file has been counted again.

mod gaps;
mod outage;
mod segment;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_codec::{Decoder, PixelLayout};
use tracing::{error, info, warn};

use crate::config::ArchiveConfig;
use crate::error::ArchiveError;
use crate::ffmpeg::InputKind;
use crate::index::{Index, Progress, reason};
use crate::recorder::{ArchiveFrame, ArchiveState, Status};
use crate::segments::file_len;
use crate::storage::{Fault, Reserve, Throttle};

use self::gaps::{DropGap, OpenGap};
use self::outage::Outage;
use self::segment::{Repaired, Segment};

/// How often progress is written to the index.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often the storage is checked (free space, the policy): a full disk
/// shows in the node's stats within this long (one `statvfs`).
const CHECK_STORAGE_EVERY: Duration = Duration::from_millis(100);
/// Longest wait between attempts to start ffmpeg after it failed to start.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a worker is given.
pub(crate) struct WorkerSetup {
    pub(crate) cfg: ArchiveConfig,
    pub(crate) ffprobe: PathBuf,
    pub(crate) stream: String,
    pub(crate) stream_dir: String,
    pub(crate) rate: String,
    pub(crate) period_ns: u64,
    pub(crate) decoder: Option<Box<dyn Decoder>>,
    /// What ffmpeg reads when there is no decoder (MJPEG, H.264, H.265).
    pub(crate) coded: InputKind,
    /// The codec of the segments written, as ffprobe names it.
    pub(crate) segment_codec: &'static str,
    pub(crate) index: Arc<Index>,
    pub(crate) stream_id: i64,
    pub(crate) status: Arc<Mutex<Status>>,
    /// Counts changes of `status.state` (read without the lock).
    pub(crate) state_changes: Arc<AtomicU64>,
}

pub(crate) struct Worker {
    cfg: ArchiveConfig,
    ffprobe: PathBuf,
    stream: String,
    stream_dir: String,
    rate: String,
    period_ns: u64,
    decoder: Option<Box<dyn Decoder>>,
    coded: InputKind,
    segment_codec: &'static str,
    index: Arc<Index>,
    stream_id: i64,
    status: Arc<Mutex<Status>>,
    state_changes: Arc<AtomicU64>,
    seg: Option<Segment>,
    closers: Vec<JoinHandle<()>>,
    /// What the closers found in the files they finished.
    repaired: (std::sync::mpsc::Sender<Repaired>, Receiver<Repaired>),
    /// The gap being extended until recording resumes.
    open_gap: Option<OpenGap>,
    /// Capture time of the last frame written to ffmpeg.
    last_ts: Option<u64>,
    /// Capture time of the last frame handed to the worker.
    last_seen_ts: Option<u64>,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The storage policy's limit is reached (`stop`).
    full: bool,
    /// The storage cannot be written.
    outage: Option<Outage>,
    reserve: Reserve,
    /// Index errors, logged once a minute.
    index_errors: Throttle,
    last_flush: Instant,
    last_storage_check: Instant,
    undecodable_warned: bool,
    /// The latest budget-drops gap, extended while drops continue.
    drop_gap: Option<DropGap>,
}

impl Worker {
    pub(crate) fn new(s: WorkerSetup) -> Worker {
        let reserve = Reserve::new(&s.cfg.dir);
        if let Err(e) = reserve.take() {
            warn!(stream = %s.stream, error = %e, "cannot reserve room for the index in the archive directory");
        }
        Worker {
            cfg: s.cfg,
            ffprobe: s.ffprobe,
            stream: s.stream,
            stream_dir: s.stream_dir,
            rate: s.rate,
            period_ns: s.period_ns,
            decoder: s.decoder,
            coded: s.coded,
            segment_codec: s.segment_codec,
            index: s.index,
            stream_id: s.stream_id,
            status: s.status,
            state_changes: s.state_changes,
            seg: None,
            closers: Vec::new(),
            repaired: std::sync::mpsc::channel(),
            open_gap: None,
            last_ts: None,
            last_seen_ts: None,
            retry_at: None,
            backoff: Duration::from_secs(1),
            full: false,
            outage: None,
            reserve,
            index_errors: Throttle::default(),
            last_flush: Instant::now(),
            last_storage_check: Instant::now(),
            undecodable_warned: false,
            drop_gap: None,
        }
    }

    pub(crate) fn run(&mut self, rx: &Receiver<ArchiveFrame>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(f) => self.on_frame(f),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.tick();
        }
        let had_segment = self.seg.is_some();
        self.close_segment();
        for c in self.closers.drain(..) {
            let _ = c.join();
        }
        self.apply_repairs();
        self.flush();
        // No gap outlives the node: it ends with the last frame seen.
        let end = self.last_seen_ts.unwrap_or_else(crate::time::now_ns);
        if self.open_gap.take().is_some()
            && let Err(e) = self.index.close_gaps(self.stream_id, end)
        {
            self.index_error("cannot close the open gap", &e);
        }
        let before = self.status().state.clone();
        self.set_state(ArchiveState::Stopped);
        match before {
            _ if had_segment => info!(stream = %self.stream, "archiver stopped; last segment closed"),
            ArchiveState::Starting | ArchiveState::Recording => info!(stream = %self.stream, "archiver stopped"),
            other => info!(stream = %self.stream, state = %other.label(), "archiver stopped; no segment was open"),
        }
        self.reserve.release();
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&mut self, s: ArchiveState) {
        let label = s.label();
        let changed = {
            let mut st = self.status();
            let changed = st.state != s;
            st.state = s;
            changed
        };
        if changed {
            self.state_changes.fetch_add(1, Ordering::Release);
        }
        if changed && let Err(e) = self.index.set_state(self.stream_id, &label) {
            self.index_error("cannot record the archiver state", &e);
        }
    }

    /// An index write failed: logged once a minute, and a storage fault
    /// behind it stops recording until the storage works again.
    fn index_error(&mut self, what: &str, e: &ArchiveError) {
        if let Some(missed) = self.index_errors.take(Instant::now()) {
            error!(stream = %self.stream, error = %e, missed, "{what} (logged again at most once a minute)");
        }
        if let Some(fault) = Fault::of_error(e) {
            self.storage_failed(fault, format!("the index cannot be written: {e}"));
        }
    }

    fn on_frame(&mut self, f: ArchiveFrame) {
        self.last_seen_ts = Some(f.timestamp_ns);
        if f.lost > 0 {
            self.budget_drops(&f);
        }
        if let Some(o) = &self.outage {
            let r = o.fault.reason();
            self.gap(r, f.timestamp_ns, 1, "");
            return;
        }
        if self.full {
            let ts = self.last_ts.unwrap_or(f.timestamp_ns);
            self.gap(reason::STORAGE_FULL, ts, 1, "");
            return;
        }
        let (kind, bytes) = match self.prepare(&f) {
            Ok(x) => x,
            Err(e) => {
                if !self.undecodable_warned {
                    warn!(stream = %self.stream, error = %e, "frame cannot be decoded for the encoder; skipped (counted in the index)");
                    self.undecodable_warned = true;
                }
                if let Err(ie) = self.index.add_gap(
                    self.stream_id,
                    f.timestamp_ns,
                    Some(f.timestamp_ns),
                    reason::UNDECODABLE,
                    1,
                    &e,
                ) {
                    self.index_error("cannot record a gap in the index", &ie);
                }
                return;
            }
        };
        // An H.264/H.265 segment starts at a keyframe: it ends at the
        // first keyframe past its length, and none opens before one.
        let can_start = f.keyframe || !matches!(kind, InputKind::H264 | InputKind::H265);
        if let Some(seg) = &self.seg {
            let segment_ns = u64::try_from(self.cfg.segment.as_nanos()).unwrap_or(u64::MAX);
            if seg.kind != kind || (can_start && f.timestamp_ns >= seg.start_ns.saturating_add(segment_ns)) {
                self.close_segment();
            }
        }
        if self.seg.is_none() && !can_start {
            self.gap(reason::WAITING_KEYFRAME, f.timestamp_ns, 1, "");
            return;
        }
        for _attempt in 0..2 {
            if self.seg.is_none() {
                if self.retry_at.is_some_and(|t| Instant::now() < t) {
                    let ts = self.last_ts.unwrap_or(f.timestamp_ns);
                    self.gap(reason::FFMPEG_DOWN, ts, 1, "");
                    return;
                }
                if let Err(e) = self.open_segment(f.timestamp_ns, kind) {
                    if let Some(fault) = Fault::of_error(&e) {
                        self.storage_failed(fault, e.to_string());
                        self.gap(fault.reason(), f.timestamp_ns, 1, "");
                        return;
                    }
                    error!(stream = %self.stream, error = %e, retry_in = ?self.backoff, "cannot start ffmpeg");
                    self.set_state(ArchiveState::Failing(e.to_string()));
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    let ts = self.last_ts.unwrap_or(f.timestamp_ns);
                    self.gap(reason::FFMPEG_DOWN, ts, 1, &e.to_string());
                    return;
                }
            }
            let Some(seg) = self.seg.as_mut() else { return };
            match seg.ff.write(&bytes) {
                Ok(()) => {
                    seg.frames += 1;
                    seg.last_ts = f.timestamp_ns;
                    self.last_ts = Some(f.timestamp_ns);
                    self.retry_at = None;
                    self.backoff = Duration::from_secs(1);
                    self.status().frames += 1;
                    return;
                }
                Err(e) => {
                    self.fail_segment(&format!("writing to ffmpeg failed: {e}"));
                    if self.outage.is_some() {
                        let r = self.outage.as_ref().map_or(reason::STORAGE_FULL, |o| o.fault.reason());
                        self.gap(r, f.timestamp_ns, 1, "");
                        return;
                    }
                }
            }
        }
    }

    /// The bytes ffmpeg reads for a frame.
    fn prepare(&mut self, f: &ArchiveFrame) -> Result<(InputKind, Bytes), String> {
        match self.decoder.as_mut() {
            None => Ok((self.coded, f.data.clone())),
            Some(d) => {
                let pic = d.decode(&f.data).map_err(|e| e.to_string())?;
                let layout = match pic.layout() {
                    // Layouts ffmpeg reads as they are.
                    l @ (PixelLayout::Bgra
                    | PixelLayout::Rgba
                    | PixelLayout::Bgr
                    | PixelLayout::Rgb
                    | PixelLayout::I420
                    | PixelLayout::Yuyv) => l,
                    other => return Err(format!("pixel layout {other:?} has no ffmpeg name")),
                };
                Ok((
                    InputKind::Raw {
                        layout,
                        width: pic.width(),
                        height: pic.height(),
                    },
                    pic.tight_bytes(),
                ))
            }
        }
    }

    fn tick(&mut self) {
        if let Some(seg) = self.seg.as_mut()
            && seg.ff.has_exited()
        {
            self.fail_segment("ffmpeg is gone");
        }
        self.closers.retain(|c| !c.is_finished());
        self.apply_repairs();
        self.retry_storage();
        // While the storage fails, the index is written when it works again.
        if self.outage.is_none() && self.last_flush.elapsed() >= FLUSH_EVERY {
            self.last_flush = Instant::now();
            self.flush();
        }
        if self.outage.is_none() && self.last_storage_check.elapsed() >= CHECK_STORAGE_EVERY {
            self.last_storage_check = Instant::now();
            self.check_storage();
        }
    }

    fn flush(&mut self) {
        let progress: Vec<Progress> = self
            .seg
            .as_ref()
            .map(|s| Progress {
                segment: s.id,
                frames: s.frames,
                bytes: file_len(&s.abs),
                end_ns: s.start_ns + s.frames * self.period_ns,
            })
            .into_iter()
            .collect();
        let gaps = self.write_open_gap();
        if let Err(e) = self.index.flush(&progress, &gaps) {
            self.index_error("cannot write progress to the index", &e);
        }
        self.flush_drop_gap();
        if let Ok(b) = self.index.total_bytes() {
            self.status().archive_bytes = b;
        }
    }
}
