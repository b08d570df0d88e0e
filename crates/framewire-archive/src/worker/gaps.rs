//! Gaps: the spans in which frames were not recorded, each with its
//! reason and the frames it lost. One gap is open at a time while
//! recording is interrupted; the next segment closes it. Drops of the
//! relay output in front of the archiver are gaps of their own.

use std::collections::BTreeMap;

use tracing::warn;

use super::Worker;
use crate::index::reason;
use crate::recorder::ArchiveFrame;

/// The gap being extended while recording is interrupted. Its row is
/// written as soon as the index takes it (`id`), and its count with every
/// flush.
#[derive(Debug)]
pub(super) struct OpenGap {
    pub(super) id: Option<i64>,
    pub(super) reason: &'static str,
    pub(super) start_ns: u64,
    pub(super) frames: u64,
    pub(super) detail: String,
}

/// Drops closer than this in time extend the same budget-drops gap.
const DROP_GAP_JOIN: u64 = 2_000_000_000;

#[derive(Debug)]
pub(super) struct DropGap {
    id: i64,
    end_ns: u64,
    frames: u64,
    by_reason: BTreeMap<String, u64>,
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

    fn add(&mut self, detail: &str) {
        for part in detail.split(", ") {
            if let Some((k, v)) = part.split_once('=') {
                *self.by_reason.entry(k.to_owned()).or_default() += v.parse::<u64>().unwrap_or(0);
            }
        }
    }
}

impl Worker {
    /// Opens (or extends) the gap in which frames are not recorded.
    pub(super) fn gap(&mut self, reason: &'static str, start_ns: u64, frames: u64, detail: &str) {
        if let Some(g) = self.open_gap.as_mut() {
            g.frames += frames;
            return;
        }
        self.open_gap = Some(OpenGap {
            id: None,
            reason,
            start_ns,
            frames,
            detail: detail.to_owned(),
        });
        let _ = self.write_open_gap();
    }

    /// Writes the open gap's row if the index does not have it yet; the
    /// (id, frames) to flush.
    pub(super) fn write_open_gap(&mut self) -> Vec<(i64, u64)> {
        let Some(g) = self.open_gap.as_mut() else {
            return Vec::new();
        };
        if g.id.is_none() {
            let r = self
                .index
                .add_gap(self.stream_id, g.start_ns, None, g.reason, g.frames, &g.detail);
            match r {
                Ok(id) => g.id = Some(id),
                Err(e) => {
                    self.index_error("cannot record a gap in the index", &e);
                    return Vec::new();
                }
            }
        }
        g.id.map(|id| (id, g.frames)).into_iter().collect()
    }

    /// Records drops of the relay output in front of the archiver. Drops
    /// less than [`DROP_GAP_JOIN`] apart extend one gap row (and one log line).
    pub(super) fn budget_drops(&mut self, f: &ArchiveFrame) {
        let ts = f.timestamp_ns;
        if let Some(g) = self.drop_gap.as_mut()
            && ts.saturating_sub(g.end_ns) < DROP_GAP_JOIN
        {
            g.end_ns = ts;
            g.frames += f.lost;
            g.add(&f.lost_detail);
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
                    by_reason: BTreeMap::new(),
                    dirty: false,
                };
                g.add(&f.lost_detail);
                self.drop_gap = Some(g);
            }
            Err(e) => self.index_error("cannot record a gap in the index", &e),
        }
    }

    /// Writes the budget-drops gap's new figures, if any.
    pub(super) fn flush_drop_gap(&mut self) {
        let Some(g) = self.drop_gap.as_mut().filter(|g| g.dirty) else {
            return;
        };
        g.dirty = false;
        let (id, end, frames, detail) = (g.id, g.end_ns, g.frames, g.detail());
        if let Err(e) = self.index.extend_gap(id, end, frames, &detail) {
            self.index_error("cannot record a gap in the index", &e);
        }
    }
}
