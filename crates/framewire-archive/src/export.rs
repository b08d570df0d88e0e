//! A range of a recording as one file: its finished segments joined by
//! ffmpeg's concat demuxer with in- and out-points, nothing re-encoded.
//! `framewire archive export` and a node's ARCHIVE_READ both use it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::ArchiveError;
use crate::index::{Index, SegmentRow};

/// The finished (`closed` or `recovered`) segments of `stream` that
/// overlap `[from_ns, to_ns)`, oldest first.
pub fn range_segments(index: &Index, stream: &str, from_ns: u64, to_ns: u64) -> Result<Vec<SegmentRow>, ArchiveError> {
    Ok(index
        .segments(Some(stream))?
        .into_iter()
        .filter(|s| matches!(s.state.as_str(), "closed" | "recovered") && s.end_ns > from_ns && s.start_ns < to_ns)
        .collect())
}

/// The ffmpeg concat list of `segs` (in `dir`), cut to `[from_ns, to_ns)`:
/// absolute `file:` paths, with in- and out-points.
pub fn concat_list(dir: &Path, segs: &[SegmentRow], from_ns: u64, to_ns: u64) -> Result<String, String> {
    let mut list = String::from("ffconcat version 1.0\n");
    for s in segs {
        let abs =
            std::fs::canonicalize(dir.join(&s.path)).map_err(|e| format!("segment {} is missing: {e}", s.path))?;
        list.push_str(&format!(
            "file 'file:{}'\n",
            abs.display().to_string().replace('\'', "'\\''")
        ));
        if from_ns > s.start_ns {
            list.push_str(&format!("inpoint {:.6}\n", (from_ns - s.start_ns) as f64 / 1e9));
        }
        if to_ns < s.end_ns {
            list.push_str(&format!("outpoint {:.6}\n", (to_ns - s.start_ns) as f64 / 1e9));
        }
    }
    Ok(list)
}

/// Joins what `list` names into `out` (its container from its name, or
/// `format`), with `ffmpeg`. The list goes to ffmpeg on its stdin: no file
/// beside the output that another user could swap before ffmpeg reads it.
pub fn join(ffmpeg: &Path, list: &str, out: &Path, format: Option<&str>) -> Result<(), String> {
    let mut cmd = Command::new(ffmpeg);
    cmd.args([
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "concat",
        "-safe",
        "0",
    ])
    .args([
        "-protocol_whitelist",
        "file,pipe",
        "-i",
        "pipe:0",
        "-map",
        "0:v",
        "-c",
        "copy",
    ]);
    if let Some(f) = format {
        cmd.args(["-f", f]);
    }
    let mut child = cmd
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", ffmpeg.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error means ffmpeg exited early; its status says why.
        let _ = stdin.write_all(list.as_bytes());
    }
    let o = child
        .wait_with_output()
        .map_err(|e| format!("cannot run {}: {e}", ffmpeg.display()))?;
    if !o.status.success() {
        return Err(format!(
            "ffmpeg could not join the segments ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(())
}
