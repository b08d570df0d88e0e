//! Segment files on disk: the directory a stream's segments go in, their
//! sizes, the free space beside them, and the repair of a segment ffmpeg
//! did not finish.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tracing::{error, warn};

use crate::ffmpeg;
use crate::index::{Index, Progress, state};

/// A stream name as a directory name: letters, digits, `-`, `_` and `.`
/// kept, anything else `_`.
pub fn stream_dir_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

pub(crate) fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// Free bytes for an unprivileged writer on the file system holding `dir`.
pub(crate) fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path; `s` is written by statvfs on success.
    let r = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if r != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `s`.
    let s = unsafe { s.assume_init() };
    #[allow(clippy::useless_conversion)] // u64 on 64-bit Linux, not everywhere
    Some(u64::from(s.f_bavail).saturating_mul(u64::from(s.f_frsize)))
}

/// Rewrites a segment ffmpeg did not finish and records what it holds:
/// `recovered` with the frames that made it, or `damaged` when nothing can
/// be read. An empty file is removed with its row. When the rewrite
/// cannot be made (no room for the copy on a full disk), the file is kept
/// as written and counted as it is. Returns the frames kept.
#[allow(clippy::too_many_arguments)]
pub(crate) fn repair(
    index: &Index,
    ffmpeg: &Path,
    ffprobe: &Path,
    stream: &str,
    id: i64,
    rel: &str,
    abs: &Path,
    start_ns: u64,
    written: u64,
    why: &str,
) -> u64 {
    if file_len(abs) == 0 {
        let _ = std::fs::remove_file(abs);
        match index.delete_segment(id) {
            Ok(()) => warn!(stream, segment = rel, "segment was empty; removed ({why})"),
            Err(e) => error!(stream, segment = rel, error = %e, "cannot remove an empty segment from the index"),
        }
        return 0;
    }
    let mut tmp = abs.as_os_str().to_owned();
    tmp.push(OsString::from(".repair.mkv"));
    let tmp = PathBuf::from(tmp);
    let remuxed = ffmpeg::remux(ffmpeg, abs, &tmp).and_then(|()| ffmpeg::probe(ffprobe, &tmp));
    let kept = |probe: &ffmpeg::Probe, how: String| {
        // Duration in ns, from seconds: in range for any real file.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let dur = (probe.duration_s.max(0.0) * 1e9) as u64;
        (
            Progress {
                segment: id,
                frames: probe.frames,
                bytes: file_len(abs),
                end_ns: start_ns + dur,
            },
            state::RECOVERED,
            format!("{why}; {how}, {} frames kept of {written} written", probe.frames),
        )
    };
    let (p, state, note) = match remuxed {
        Ok(probe) if probe.frames > 0 => match std::fs::rename(&tmp, abs) {
            Ok(()) => kept(&probe, "repaired".into()),
            Err(e) => damaged(
                id,
                abs,
                start_ns,
                format!("{why}; cannot replace it with its repair: {e}"),
            ),
        },
        Ok(_) => damaged(id, abs, start_ns, format!("{why}; no frame could be read")),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            match ffmpeg::probe(ffprobe, abs) {
                Ok(probe) if probe.frames > 0 => kept(&probe, format!("kept as written (not rewritten: {e})")),
                _ => damaged(id, abs, start_ns, format!("{why}; repair failed: {e}")),
            }
        }
    };
    let _ = std::fs::remove_file(&tmp);
    match index.finish_segment(p, state, &note) {
        Ok(()) => warn!(
            stream,
            segment = rel,
            frames = p.frames,
            state,
            "unfinished segment: {note}"
        ),
        Err(e) => error!(stream, segment = rel, error = %e, "cannot record a repaired segment"),
    }
    p.frames
}

fn damaged(id: i64, abs: &Path, start_ns: u64, note: String) -> (Progress, &'static str, String) {
    (
        Progress {
            segment: id,
            frames: 0,
            bytes: file_len(abs),
            end_ns: start_ns,
        },
        state::DAMAGED,
        note,
    )
}
