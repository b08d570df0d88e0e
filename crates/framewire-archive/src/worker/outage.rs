//! The storage policy (a size limit, a free-space floor) and storage
//! faults. A fault (no space, a read-only file system, an I/O error)
//! stops recording: the segment being written is closed with the frames
//! that reached the disk, the reserve is given back so the index can say
//! so, and the outage is one gap. The worker retries with backoff and
//! resumes by itself once it can write again.

use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::Worker;
use crate::config::OnFull;
use crate::index::reason;
use crate::recorder::ArchiveState;
use crate::segments::free_bytes;
use crate::storage::{FREE_FLOOR, Fault, Throttle};

/// Longest wait between two tries of a failed storage.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The storage cannot be written.
#[derive(Debug)]
pub(super) struct Outage {
    pub(super) fault: Fault,
    cause: String,
    since: Instant,
    next_try: Instant,
    backoff: Duration,
    log: Throttle,
}

impl Worker {
    /// The storage failed: stop recording, keep what is on disk, count
    /// what is not.
    pub(super) fn storage_failed(&mut self, fault: Fault, cause: String) {
        if self.outage.is_some() {
            return;
        }
        let now = Instant::now();
        let mut log = Throttle::default();
        let _ = log.take(now);
        self.outage = Some(Outage {
            fault,
            cause: cause.clone(),
            since: now,
            next_try: now + Duration::from_secs(1),
            backoff: Duration::from_secs(1),
            log,
        });
        // Room for the index to record what follows.
        self.reserve.release();
        error!(
            stream = %self.stream,
            dir = %self.cfg.dir.display(),
            %cause,
            "archive storage failed: recording stops and frames are counted until it can write again"
        );
        let start = self
            .seg
            .as_ref()
            .map(|s| s.last_ts)
            .or(self.last_ts)
            .unwrap_or_else(crate::time::now_ns);
        self.gap(fault.reason(), start, 0, &cause);
        if let Some(seg) = self.seg.take() {
            self.status().current = None;
            let (_, file) = seg.kill();
            self.repair_in_background(file, format!("the storage failed: {cause}"));
        }
        self.set_state(ArchiveState::StorageFailed(cause));
    }

    /// Tries a failed storage again when it is time: the reserve taken
    /// back and the outage's gap written mean it works.
    pub(super) fn retry_storage(&mut self) {
        let now = Instant::now();
        let Some(o) = self.outage.as_mut() else { return };
        if now < o.next_try {
            return;
        }
        let works = self.reserve.take().is_ok() && free_bytes(&self.cfg.dir).is_none_or(|f| f >= FREE_FLOOR);
        if !works {
            o.next_try = now + o.backoff;
            o.backoff = (o.backoff * 2).min(MAX_RETRY);
            if let Some(missed) = o.log.take(now) {
                let frames = self.open_gap.as_ref().map_or(0, |g| g.frames);
                warn!(
                    stream = %self.stream,
                    cause = %o.cause,
                    after = ?o.since.elapsed(),
                    frames_not_written = frames,
                    tries = missed + 1,
                    "archive storage still failing (logged again at most once a minute)"
                );
            }
            self.reserve.release();
            return;
        }
        let (since, cause) = (o.since, o.cause.clone());
        self.outage = None;
        let frames = self.open_gap.as_ref().map_or(0, |g| g.frames);
        self.flush();
        if self.outage.is_some() {
            return; // the index still cannot be written
        }
        info!(
            stream = %self.stream,
            after = ?since.elapsed(),
            frames_not_written = frames,
            %cause,
            "archive storage works again; recording resumes"
        );
        self.set_state(ArchiveState::Starting);
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

    /// Applies the storage policy, and stops recording before the disk is
    /// full when there is none (or it could not make room).
    pub(super) fn check_storage(&mut self) {
        self.apply_policy();
        if let Some(free) = free_bytes(&self.cfg.dir)
            && free < FREE_FLOOR
        {
            let cause = format!("{free} bytes free in {}", self.cfg.dir.display());
            self.storage_failed(Fault::Full, cause);
        }
    }

    fn apply_policy(&mut self) {
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
            let ts = self.last_ts.unwrap_or_else(crate::time::now_ns);
            self.gap(reason::STORAGE_FULL, ts, 0, &why);
            self.set_state(ArchiveState::Full(why));
        }
    }
}
