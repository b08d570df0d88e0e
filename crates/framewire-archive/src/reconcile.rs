//! Bringing the index and the disk into agreement when an archive opens.
//!
//! For the stream being opened:
//! 1. a segment still marked `recording` was left by a node that did not
//!    close it (killed, crashed, power cut). If its ffmpeg is still
//!    finishing the file (ffmpeg finishes when its input closes), wait for
//!    it; then repair the file (remux) and count its frames again. A
//!    *node-restart* gap starts where it ends.
//! 2. a row whose file is gone is removed;
//! 3. a segment file the index does not know (the node died between
//!    starting ffmpeg and committing the row) is probed and added;
//!    leftovers of an interrupted repair are removed.

use std::path::Path;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::error::ArchiveError;
use crate::ffmpeg;
use crate::index::{Index, SegmentRow, reason, state};
use crate::segments::{file_len, repair, stream_dir_name};
use crate::time;

/// How long to wait for a previous node's ffmpeg to finish its file.
const ORPHAN_WAIT: Duration = Duration::from_secs(15);

/// What reconciliation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Unfinished segments repaired or marked.
    pub unfinished: u32,
    /// Rows removed because their file was gone.
    pub missing: u32,
    /// Files added to the index.
    pub found: u32,
}

/// Reconciles one stream's part of an archive.
pub fn reconcile(index: &Index, ffmpeg: &Path, stream_id: i64, stream: &str) -> Result<Reconciled, ArchiveError> {
    let dir = index.dir().to_owned();
    let ffprobe = ffmpeg::ffprobe_for(ffmpeg);
    let mut done = Reconciled::default();
    for row in index.segments(Some(stream))? {
        if row.state != state::RECORDING {
            continue;
        }
        let abs = dir.join(&row.path);
        if let Some(pid) = row.ffmpeg_pid {
            wait_for_writer(pid, &abs);
        }
        let why = "the node stopped without closing this segment";
        repair(
            index,
            ffmpeg,
            &ffprobe,
            stream,
            row.id,
            &row.path,
            &abs,
            row.start_ns,
            row.frames,
            why,
        );
        done.unfinished += 1;
        let end = index
            .segments(Some(stream))?
            .into_iter()
            .find(|r| r.id == row.id)
            .map_or(row.end_ns, |r| r.end_ns);
        index.add_gap(stream_id, end, None, reason::NODE_RESTART, 0, why)?;
    }
    for row in index.segments(Some(stream))? {
        if !dir.join(&row.path).is_file() {
            warn!(stream, segment = %row.path, "segment file is gone; removed from the index");
            index.delete_segment(row.id)?;
            done.missing += 1;
        }
    }
    let known: std::collections::HashSet<String> = index.segments(None)?.into_iter().map(|r| r.path).collect();
    let sdir = stream_dir_name(stream);
    for day in read_dir_sorted(&dir.join(&sdir)) {
        for file in read_dir_sorted(&dir.join(&sdir).join(&day)) {
            let rel = format!("{sdir}/{day}/{file}");
            let abs = dir.join(&rel);
            if file.ends_with(".repair.mkv") {
                let _ = std::fs::remove_file(&abs);
                continue;
            }
            if !file.ends_with(".mkv") || known.contains(&rel) {
                continue;
            }
            let start_ns = start_from_name(&file).unwrap_or_else(time::now_ns);
            let mut row = SegmentRow {
                id: 0,
                stream: stream.to_owned(),
                path: rel.clone(),
                start_ns,
                end_ns: start_ns,
                frames: 0,
                bytes: file_len(&abs),
                codec: String::new(),
                container: "matroska".to_owned(),
                state: state::RECORDING.to_owned(),
                note: String::new(),
                ffmpeg_pid: None,
            };
            // Add it as unfinished, then repair it like any other.
            let id = index.insert_found(stream_id, &row)?;
            row.id = id;
            repair(
                index,
                ffmpeg,
                &ffprobe,
                stream,
                id,
                &rel,
                &abs,
                start_ns,
                0,
                "found on disk, not in the index",
            );
            if let Ok(p) = ffmpeg::probe(&ffprobe, &abs) {
                let _ = index.lock().execute(
                    "UPDATE segments SET codec = ?2 WHERE id = ?1",
                    rusqlite::params![id, p.codec],
                );
            }
            done.found += 1;
        }
    }
    if done != Reconciled::default() {
        info!(stream, ?done, "archive index reconciled with the disk");
    }
    Ok(done)
}

fn read_dir_sorted(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The start time in a segment's name (`NAME-20261121T132800.123Z.mkv`).
fn start_from_name(file: &str) -> Option<u64> {
    let stem = file.strip_suffix(".mkv")?;
    let t = stem.rsplit('-').find(|p| p.len() == 20 && p.ends_with('Z'))?;
    let b = t.as_bytes();
    if b[8] != b'T' {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[9..11],
        &t[11..13],
        &t[13..20]
    );
    time::parse_time(&rfc).ok()
}

/// Waits (bounded) while process `pid` is an ffmpeg writing `file`.
fn wait_for_writer(pid: u32, file: &Path) {
    let needle = file.as_os_str().as_encoded_bytes().to_vec();
    let deadline = Instant::now() + ORPHAN_WAIT;
    let mut said = false;
    while Instant::now() < deadline {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return;
        };
        if !cmdline.windows(needle.len().max(1)).any(|w| w == needle.as_slice()) {
            return;
        }
        // A zombie has an empty cmdline, so reaching here means it runs.
        if !said {
            info!(pid, file = %file.display(), "waiting for the previous ffmpeg to finish its file");
            said = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    warn!(pid, file = %file.display(), "previous ffmpeg still running; repairing its file anyway");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_from_a_segment_name() {
        assert_eq!(
            start_from_name("cam-20251121T132800.123Z.mkv"),
            Some(1_763_731_680_123_000_000)
        );
        assert_eq!(
            start_from_name("a-b-20251121T132800.123Z-2.mkv"),
            Some(1_763_731_680_123_000_000)
        );
        assert_eq!(start_from_name("cam.mkv"), None);
    }
}
