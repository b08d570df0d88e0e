//! The archiver: a worker thread that feeds ffmpeg, cuts segments, keeps
//! the index and applies the storage policy.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_codec::{Decoder, PixelLayout, Registry};
use framewire_proto::{Format, Origin, StreamOpen};
use tracing::{error, info, warn};

use crate::config::{ArchiveConfig, ArchiveFormat, FINALIZE_TIMEOUT, OnFull};
use crate::error::ArchiveError;
use crate::ffmpeg::{self, Ffmpeg, InputKind};
use crate::index::{Index, Progress, StreamDesc, reason, state};
use crate::reconcile;
use crate::segments::{file_len, free_bytes, repair, stream_dir_name};
use crate::time;

/// Frames the archiver holds before [`Archiver::try_push`] says full (the
/// relay output in front of it holds the rest, within its budget).
const QUEUE: usize = 8;
/// How often progress is written to the index and the storage checked.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Longest wait between attempts to start ffmpeg after it failed to start.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

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
pub enum ArchiveState {
    /// Waiting for the first frame.
    Starting,
    /// Writing segments.
    Recording,
    /// A limit was reached and recording is paused.
    Full(String),
    /// ffmpeg cannot be started; retrying.
    Failing(String),
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

impl Status {
    /// One line: `recording ffv1, 3 segments, 12.0 MB, 1 restart`.
    pub fn summary(&self) -> String {
        let st = match &self.state {
            ArchiveState::Starting => "starting".to_owned(),
            ArchiveState::Recording => "recording".to_owned(),
            ArchiveState::Full(why) => format!("FULL ({why})"),
            ArchiveState::Failing(why) => format!("FAILING ({why})"),
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
    worker: Option<JoinHandle<()>>,
}

impl Archiver {
    /// Opens the archive for `open`'s stream: checks that the format can be
    /// archived and that ffmpeg runs, opens the index, reconciles it with
    /// the disk, and starts the worker. Blocking (reconciliation may
    /// repair files).
    pub fn start(cfg: ArchiveConfig, open: &StreamOpen) -> Result<Archiver, ArchiveError> {
        let decoder = match (open.format, cfg.format) {
            (Format::Mjpeg, _) => None,
            (_, ArchiveFormat::Passthrough) => {
                return Err(ArchiveError::Config(format!(
                    "passthrough keeps MJPEG as it came, and `{}` is {}: choose ffv1 for a lossless archive",
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
                    "cannot archive `{}`: its format {} is not MJPEG, QOI or raw",
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
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let mut w = Worker {
            ffprobe: ffmpeg::ffprobe_for(&cfg.ffmpeg),
            cfg,
            stream: open.name.clone(),
            stream_dir: stream_dir_name(&open.name),
            rate: format!("{num}/{den}"),
            period_ns: u64::from(den) * 1_000_000_000 / u64::from(num).max(1),
            decoder,
            index,
            stream_id,
            status: status.clone(),
            seg: None,
            closers: Vec::new(),
            open_gap: None,
            last_ts: None,
            retry_at: None,
            backoff: Duration::from_secs(1),
            full: false,
            last_flush: Instant::now(),
            undecodable_warned: false,
            drop_gap: None,
        };
        let worker = std::thread::Builder::new()
            .name(format!("archive:{}", open.name))
            .spawn(move || w.run(&rx))
            .map_err(|e| ArchiveError::io("cannot start the archiver thread", e))?;
        info!(stream = %open.name, "archiver ready");
        Ok(Archiver {
            tx: Some(tx),
            status,
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

#[derive(Debug)]
struct Segment {
    ff: Ffmpeg,
    id: i64,
    rel: String,
    abs: PathBuf,
    kind: InputKind,
    start_ns: u64,
    last_ts: u64,
    frames: u64,
}

struct Worker {
    cfg: ArchiveConfig,
    ffprobe: PathBuf,
    stream: String,
    stream_dir: String,
    rate: String,
    period_ns: u64,
    decoder: Option<Box<dyn Decoder>>,
    index: Arc<Index>,
    stream_id: i64,
    status: Arc<Mutex<Status>>,
    seg: Option<Segment>,
    closers: Vec<JoinHandle<()>>,
    /// The gap being extended (id, frames) until recording resumes.
    open_gap: Option<(i64, u64)>,
    last_ts: Option<u64>,
    retry_at: Option<Instant>,
    backoff: Duration,
    full: bool,
    last_flush: Instant,
    undecodable_warned: bool,
    /// The latest budget-drops gap, extended while drops continue.
    drop_gap: Option<DropGap>,
}

/// Drops closer than this in time extend the same budget-drops gap.
const DROP_GAP_JOIN: u64 = 2_000_000_000;

struct DropGap {
    id: i64,
    end_ns: u64,
    frames: u64,
    by_reason: std::collections::BTreeMap<String, u64>,
    dirty: bool,
}

impl DropGap {
    fn detail(&self) -> String {
        self.by_reason
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Worker {
    fn run(&mut self, rx: &Receiver<ArchiveFrame>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(f) => self.on_frame(f),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.tick();
        }
        self.close_segment();
        for c in self.closers.drain(..) {
            let _ = c.join();
        }
        self.flush();
        self.set_state(ArchiveState::Stopped);
        info!(stream = %self.stream, "archiver stopped; last segment closed");
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&mut self, s: ArchiveState) {
        let label = match &s {
            ArchiveState::Starting => "starting".to_owned(),
            ArchiveState::Recording => "recording".to_owned(),
            ArchiveState::Full(w) => format!("full: {w}"),
            ArchiveState::Failing(w) => format!("failing: {w}"),
            ArchiveState::Stopped => "stopped".to_owned(),
        };
        let changed = {
            let mut st = self.status();
            let changed = st.state != s;
            st.state = s;
            changed
        };
        if changed && let Err(e) = self.index.set_state(self.stream_id, &label) {
            warn!(stream = %self.stream, error = %e, "cannot record the archiver state");
        }
    }

    /// Opens (or extends) the gap in which frames are not recorded.
    fn gap(&mut self, reason: &str, start_ns: u64, frames: u64, detail: &str) {
        if let Some((_, n)) = self.open_gap.as_mut() {
            *n += frames;
            return;
        }
        match self
            .index
            .add_gap(self.stream_id, start_ns, None, reason, frames, detail)
        {
            Ok(id) => self.open_gap = Some((id, frames)),
            Err(e) => error!(stream = %self.stream, error = %e, "cannot record a gap in the index"),
        }
    }

    fn on_frame(&mut self, f: ArchiveFrame) {
        if f.lost > 0 {
            self.budget_drops(&f);
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
                let _ = self.index.add_gap(
                    self.stream_id,
                    f.timestamp_ns,
                    Some(f.timestamp_ns),
                    reason::UNDECODABLE,
                    1,
                    &e,
                );
                return;
            }
        };
        if let Some(seg) = &self.seg {
            let segment_ns = u64::try_from(self.cfg.segment.as_nanos()).unwrap_or(u64::MAX);
            if seg.kind != kind || f.timestamp_ns >= seg.start_ns.saturating_add(segment_ns) {
                self.close_segment();
            }
        }
        for _attempt in 0..2 {
            if self.seg.is_none() {
                if self.retry_at.is_some_and(|t| Instant::now() < t) {
                    let ts = self.last_ts.unwrap_or(f.timestamp_ns);
                    self.gap(reason::FFMPEG_DOWN, ts, 1, "");
                    return;
                }
                if let Err(e) = self.open_segment(f.timestamp_ns, kind) {
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
                Err(e) => self.fail_segment(&format!("writing to ffmpeg failed: {e}")),
            }
        }
    }

    /// Records drops of the relay output in front of the archiver. Drops
    /// less than [`DROP_GAP_JOIN`] apart extend one gap row (and one log line).
    fn budget_drops(&mut self, f: &ArchiveFrame) {
        let ts = f.timestamp_ns;
        if let Some(g) = self.drop_gap.as_mut()
            && ts.saturating_sub(g.end_ns) < DROP_GAP_JOIN
        {
            g.end_ns = ts;
            g.frames += f.lost;
            for part in f.lost_detail.split(", ") {
                if let Some((k, v)) = part.split_once('=') {
                    *g.by_reason.entry(k.to_owned()).or_default() += v.parse::<u64>().unwrap_or(0);
                }
            }
            g.dirty = true; // written with the next batch (flush)
            return;
        }
        let start = self.last_ts.unwrap_or(ts).min(ts);
        warn!(
            stream = %self.stream,
            lost = f.lost,
            detail = %f.lost_detail,
            "archiver's relay output is dropping frames (budget full: the encoder is slower than the stream); \
             recorded as a budget-drops gap"
        );
        match self.index.add_gap(
            self.stream_id,
            start,
            Some(ts),
            reason::BUDGET_DROPS,
            f.lost,
            &f.lost_detail,
        ) {
            Ok(id) => {
                let mut g = DropGap {
                    id,
                    end_ns: ts,
                    frames: f.lost,
                    by_reason: std::collections::BTreeMap::new(),
                    dirty: false,
                };
                for part in f.lost_detail.split(", ") {
                    if let Some((k, v)) = part.split_once('=') {
                        g.by_reason.insert(k.to_owned(), v.parse().unwrap_or(0));
                    }
                }
                self.drop_gap = Some(g);
            }
            Err(e) => error!(stream = %self.stream, error = %e, "cannot record a gap in the index"),
        }
    }

    /// The bytes ffmpeg reads for a frame.
    fn prepare(&mut self, f: &ArchiveFrame) -> Result<(InputKind, Bytes), String> {
        match self.decoder.as_mut() {
            None => Ok((InputKind::Mjpeg, f.data.clone())),
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

    fn open_segment(&mut self, start_ns: u64, kind: InputKind) -> Result<(), ArchiveError> {
        let day = time::date_dir(start_ns);
        let dir = self.cfg.dir.join(&self.stream_dir).join(&day);
        crate::create_dirs(&dir)?;
        let base = format!("{}-{}", self.stream_dir, time::compact(start_ns));
        let mut name = format!("{base}.mkv");
        let mut n = 1;
        while dir.join(&name).exists() {
            name = format!("{base}-{n}.mkv");
            n += 1;
        }
        let abs = dir.join(&name);
        let rel = format!("{}/{day}/{name}", self.stream_dir);
        let args = ffmpeg::encode_args(self.cfg.format, kind, &self.rate, &abs);
        let ff = Ffmpeg::spawn(&self.cfg.ffmpeg, &args, self.cfg.stall_timeout)
            .map_err(|e| ArchiveError::Ffmpeg(format!("cannot run {}: {e}", self.cfg.ffmpeg.display())))?;
        let id = match self
            .index
            .insert_segment(self.stream_id, &rel, start_ns, self.cfg.format.codec(), ff.pid())
        {
            Ok(id) => id,
            Err(e) => {
                let _ = ff.kill();
                let _ = std::fs::remove_file(&abs);
                return Err(e);
            }
        };
        if let Some((gap, frames)) = self.open_gap.take() {
            let _ = self.index.flush(&[], &[(gap, frames)]);
        }
        self.index.close_gaps(self.stream_id, start_ns)?;
        info!(stream = %self.stream, segment = %rel, pid = ff.pid(), format = self.cfg.format.label(), "segment opened");
        self.seg = Some(Segment {
            ff,
            id,
            rel: rel.clone(),
            abs,
            kind,
            start_ns,
            last_ts: start_ns,
            frames: 0,
        });
        self.status().current = Some(rel);
        self.set_state(ArchiveState::Recording);
        Ok(())
    }

    /// Closes the open segment normally; ffmpeg finishes it in the background.
    fn close_segment(&mut self) {
        let Some(seg) = self.seg.take() else { return };
        self.status().current = None;
        let index = self.index.clone();
        let (ffmpeg, ffprobe, stream, period) = (
            self.cfg.ffmpeg.clone(),
            self.ffprobe.clone(),
            self.stream.clone(),
            self.period_ns,
        );
        let status = self.status.clone();
        self.closers.push(std::thread::spawn(move || {
            let Segment {
                ff,
                id,
                rel,
                abs,
                start_ns,
                frames,
                ..
            } = seg;
            let ended = ff.close(FINALIZE_TIMEOUT);
            if ended.clean {
                let bytes = file_len(&abs);
                let p = Progress {
                    segment: id,
                    frames,
                    bytes,
                    end_ns: start_ns + frames * period,
                };
                match index.finish_segment(p, state::CLOSED, "") {
                    Ok(()) => info!(stream = %stream, segment = %rel, frames, bytes, "segment closed"),
                    Err(e) => error!(stream = %stream, segment = %rel, error = %e, "cannot record a closed segment"),
                }
            } else {
                let why = format!(
                    "ffmpeg did not finish the file ({}); stderr: {}",
                    describe(&ended),
                    ended.tail
                );
                warn!(stream = %stream, segment = %rel, "{why}");
                repair(
                    &index, &ffmpeg, &ffprobe, &stream, id, &rel, &abs, start_ns, frames, &why,
                );
            }
            let mut st = status.lock().unwrap_or_else(|p| p.into_inner());
            st.segments_closed += 1;
        }));
    }

    /// ffmpeg died or stalled: repair its file in the background and mark
    /// the gap; the next frame starts a new ffmpeg and segment.
    fn fail_segment(&mut self, what: &str) {
        let Some(seg) = self.seg.take() else { return };
        self.status().current = None;
        let ended = seg.ff.kill();
        let why = if ended.stalled {
            format!("ffmpeg stopped reading for {:?} and was killed", self.cfg.stall_timeout)
        } else {
            format!("ffmpeg exited ({}) while recording", describe(&ended))
        };
        warn!(
            stream = %self.stream,
            segment = %seg.rel,
            "{why} ({what}); stderr: {}; restarting into a new segment",
            ended.tail
        );
        self.status().restarts += 1;
        let detail = format!("{why}; stderr: {}", ended.tail);
        self.gap(reason::FFMPEG_RESTART, seg.last_ts, 0, &detail);
        let index = self.index.clone();
        let (ffmpeg, ffprobe, stream) = (self.cfg.ffmpeg.clone(), self.ffprobe.clone(), self.stream.clone());
        let status = self.status.clone();
        self.closers.push(std::thread::spawn(move || {
            repair(
                &index,
                &ffmpeg,
                &ffprobe,
                &stream,
                seg.id,
                &seg.rel,
                &seg.abs,
                seg.start_ns,
                seg.frames,
                &why,
            );
            status.lock().unwrap_or_else(|p| p.into_inner()).segments_closed += 1;
        }));
    }

    fn tick(&mut self) {
        if let Some(seg) = self.seg.as_mut()
            && seg.ff.has_exited()
        {
            self.fail_segment("ffmpeg is gone");
        }
        self.closers.retain(|c| !c.is_finished());
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.last_flush = Instant::now();
            self.flush();
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
        let gaps: Vec<(i64, u64)> = self.open_gap.into_iter().collect();
        if let Err(e) = self.index.flush(&progress, &gaps) {
            error!(stream = %self.stream, error = %e, "cannot write progress to the index");
        }
        if let Some(g) = self.drop_gap.as_mut().filter(|g| g.dirty) {
            g.dirty = false;
            if let Err(e) = self.index.extend_gap(g.id, g.end_ns, g.frames, &g.detail()) {
                error!(stream = %self.stream, error = %e, "cannot record a gap in the index");
            }
        }
        if let Ok(b) = self.index.total_bytes() {
            self.status().archive_bytes = b;
        }
    }

    /// Why the archive is over its limits, if it is.
    fn over_limit(&self) -> Option<String> {
        let c = &self.cfg;
        if c.max_total_bytes > 0 {
            let used = self.index.total_bytes().unwrap_or(0);
            if used > c.max_total_bytes {
                return Some(format!(
                    "archive holds {used} bytes, max_total_bytes is {}",
                    c.max_total_bytes
                ));
            }
        }
        if c.min_free_bytes > 0
            && let Some(free) = free_bytes(&c.dir)
            && free < c.min_free_bytes
        {
            return Some(format!(
                "{free} bytes free on disk, min_free_bytes is {}",
                c.min_free_bytes
            ));
        }
        None
    }

    fn check_storage(&mut self) {
        if self.cfg.max_total_bytes == 0 && self.cfg.min_free_bytes == 0 {
            return;
        }
        let Some(mut why) = self.over_limit() else {
            if self.full {
                self.full = false;
                info!(stream = %self.stream, "archive has room again; recording resumes");
                self.set_state(ArchiveState::Recording);
            }
            return;
        };
        if self.cfg.on_full == OnFull::DeleteOldest {
            loop {
                let oldest = match self.index.oldest_closed() {
                    Ok(Some(o)) => o,
                    Ok(None) => break,
                    Err(e) => {
                        error!(error = %e, "cannot read the index");
                        break;
                    }
                };
                let path = self.cfg.dir.join(&oldest.path);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        error!(path = %path.display(), error = %e, "cannot delete the oldest segment");
                        break;
                    }
                }
                if let Err(e) = self.index.delete_segment(oldest.id) {
                    error!(error = %e, "cannot remove a deleted segment from the index");
                    break;
                }
                info!(segment = %oldest.path, bytes = oldest.bytes, "archive full: oldest segment deleted ({why})");
                self.status().segments_deleted += 1;
                match self.over_limit() {
                    Some(w) => why = w,
                    None => {
                        self.flush();
                        if self.full {
                            self.full = false;
                            self.set_state(ArchiveState::Recording);
                        }
                        return;
                    }
                }
            }
            why = format!("{why}; nothing left to delete");
        }
        if !self.full {
            warn!(stream = %self.stream, policy = self.cfg.on_full.label(), "archive full: recording stops ({why})");
            self.close_segment();
            self.full = true;
            let ts = self.last_ts.unwrap_or_else(time::now_ns);
            self.gap(reason::STORAGE_FULL, ts, 0, &why);
            self.set_state(ArchiveState::Full(why));
        }
    }
}

fn describe(e: &ffmpeg::Ended) -> String {
    match e.status {
        Some(s) => s.to_string(),
        None => "status unknown".to_owned(),
    }
}
