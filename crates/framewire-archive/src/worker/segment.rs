//! Segments: one ffmpeg each, opened on the first frame, closed when it
//! is long enough, when the input changes or when the archiver stops. A
//! segment whose ffmpeg died, stalled or could not write is repaired in the
//! background and its frames counted again; the frames it lost are added
//! to the gap that follows it ([`Repaired`]).

use std::path::PathBuf;

use tracing::{error, info, warn};

use super::Worker;
use crate::config::FINALIZE_TIMEOUT;
use crate::error::ArchiveError;
use crate::ffmpeg::{self, Ffmpeg, InputKind};
use crate::index::{Progress, reason, state};
use crate::segments::{file_len, repair};
use crate::time;

#[derive(Debug)]
pub(super) struct Segment {
    pub(super) ff: Ffmpeg,
    pub(super) id: i64,
    pub(super) rel: String,
    pub(super) abs: PathBuf,
    pub(super) kind: InputKind,
    pub(super) start_ns: u64,
    pub(super) last_ts: u64,
    /// Frames written to ffmpeg.
    pub(super) frames: u64,
}

/// A segment's file and what was written to it, once its ffmpeg is gone.
#[derive(Debug)]
pub(super) struct SegmentFile {
    id: i64,
    rel: String,
    abs: PathBuf,
    start_ns: u64,
    frames: u64,
}

impl Segment {
    /// Kills ffmpeg; how it ended, and the file it leaves.
    pub(super) fn kill(self) -> (ffmpeg::Ended, SegmentFile) {
        let ended = self.ff.kill();
        let file = SegmentFile {
            id: self.id,
            rel: self.rel,
            abs: self.abs,
            start_ns: self.start_ns,
            frames: self.frames,
        };
        (ended, file)
    }
}

/// What a closer found: of `written` frames, `kept` reached the file.
#[derive(Debug)]
pub(super) struct Repaired {
    /// The gap that follows the segment (a row id), if there is one.
    gap: Option<i64>,
    start_ns: u64,
    written: u64,
    kept: u64,
    why: String,
}

impl Worker {
    pub(super) fn open_segment(&mut self, start_ns: u64, kind: InputKind) -> Result<(), ArchiveError> {
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
            .insert_segment(self.stream_id, &rel, start_ns, self.segment_codec, ff.pid())
        {
            Ok(id) => id,
            Err(e) => {
                let _ = ff.kill();
                let _ = std::fs::remove_file(&abs);
                return Err(e);
            }
        };
        if self.open_gap.is_some() {
            // The gap is in the index with its count, then ends here.
            let gaps = self.write_open_gap();
            self.index.flush(&[], &gaps)?;
            self.open_gap = None;
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
        self.set_state(crate::recorder::ArchiveState::Recording);
        Ok(())
    }

    /// Closes the open segment normally; ffmpeg finishes it in the
    /// background (a file it does not finish is repaired, and the frames
    /// it lost are a gap of their own).
    pub(super) fn close_segment(&mut self) {
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
        let report = self.repaired.0.clone();
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
                let why = format!("ffmpeg did not finish the file ({})", ended.reason());
                warn!(stream = %stream, segment = %rel, stderr = %ended.tail, "{why}");
                let kept = repair(
                    &index, &ffmpeg, &ffprobe, &stream, id, &rel, &abs, start_ns, frames, &why,
                );
                let _ = report.send(Repaired {
                    gap: None,
                    start_ns,
                    written: frames,
                    kept,
                    why,
                });
            }
            status.lock().unwrap_or_else(|p| p.into_inner()).segments_closed += 1;
        }));
    }

    /// ffmpeg died, stalled or could not write: its file is repaired in the
    /// background and the frames it lost join the gap opened here. When
    /// the storage is at fault, recording stops until it works again;
    /// otherwise the next frame starts a new ffmpeg and segment.
    pub(super) fn fail_segment(&mut self, what: &str) {
        let Some(seg) = self.seg.take() else { return };
        self.status().current = None;
        let last_ts = seg.last_ts;
        let (ended, file) = seg.kill();
        let fault = ended.error.as_deref().and_then(crate::storage::Fault::of_text);
        let why = if ended.stalled {
            format!("ffmpeg stopped reading for {:?} and was killed", self.cfg.stall_timeout)
        } else {
            format!("ffmpeg exited ({}) while recording", ended.reason())
        };
        match fault {
            Some(f) => {
                self.storage_failed(f, ended.error.clone().unwrap_or_else(|| why.clone()));
            }
            None => {
                warn!(
                    stream = %self.stream,
                    segment = %file.rel,
                    stderr = %ended.tail,
                    "{why} ({what}); restarting into a new segment"
                );
                self.status().restarts += 1;
                self.gap(reason::FFMPEG_RESTART, last_ts, 0, &why);
            }
        }
        self.repair_in_background(file, why);
    }

    /// Repairs a segment whose ffmpeg is gone; what it kept comes back
    /// to the open gap.
    pub(super) fn repair_in_background(&mut self, seg: SegmentFile, why: String) {
        let gap = self.write_open_gap().first().map(|(id, _)| *id);
        let index = self.index.clone();
        let (ffmpeg, ffprobe, stream) = (self.cfg.ffmpeg.clone(), self.ffprobe.clone(), self.stream.clone());
        let status = self.status.clone();
        let report = self.repaired.0.clone();
        self.closers.push(std::thread::spawn(move || {
            let kept = repair(
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
            let _ = report.send(Repaired {
                gap,
                start_ns: seg.start_ns,
                written: seg.frames,
                kept,
                why,
            });
            status.lock().unwrap_or_else(|p| p.into_inner()).segments_closed += 1;
        }));
    }

    /// Adds the frames repaired segments lost to their gaps: the gap then
    /// starts where the file ends (`start + kept × period`).
    pub(super) fn apply_repairs(&mut self) {
        while let Ok(r) = self.repaired.1.try_recv() {
            let lost = r.written.saturating_sub(r.kept);
            if lost == 0 {
                continue;
            }
            let start = r.start_ns + r.kept * self.period_ns;
            let result = match (r.gap, self.open_gap.as_mut()) {
                (Some(id), Some(g)) if g.id == Some(id) => {
                    g.frames += lost;
                    g.start_ns = g.start_ns.min(start);
                    self.index.adjust_gap(id, start, 0)
                }
                (Some(id), _) => self.index.adjust_gap(id, start, lost),
                (None, _) => self
                    .index
                    .add_gap(
                        self.stream_id,
                        start,
                        Some(r.start_ns + r.written * self.period_ns),
                        reason::UNFINISHED,
                        lost,
                        &r.why,
                    )
                    .map(drop),
            };
            if let Err(e) = result {
                self.index_error("cannot record the frames a segment lost", &e);
            }
        }
    }
}
