//! Helpers of the archive tests: the index as the tests read it, ffmpeg
//! processes, graceful stops.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use framewire_archive::ffmpeg::probe;
use framewire_archive::{GapRow, Index, SegmentRow};

use super::{NodeProc, stats};

/// ffmpeg and ffprobe run (a test needs them; it fails without).
pub fn have_ffmpeg() -> bool {
    let ok = |p: &str| {
        Command::new(p)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(
        ok("ffmpeg") && ok("ffprobe"),
        "ffmpeg and ffprobe are needed (scripts/setup.sh installs them)"
    );
    true
}

/// Polls `f` until it is true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    super::eventually_every(timeout, Duration::from_millis(50), || f().then_some(())).is_some()
}

pub fn segments(dir: &Path) -> Vec<SegmentRow> {
    Index::open_existing(dir)
        .and_then(|i| i.segments(None))
        .unwrap_or_default()
}

pub fn gaps(dir: &Path) -> Vec<GapRow> {
    Index::open_existing(dir).and_then(|i| i.gaps(None)).unwrap_or_default()
}

/// Every `.mkv` under an archive directory, relative to it.
pub fn files_on_disk(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.extension().is_some_and(|x| x == "mkv") {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// Index and disk agree: same files, and ffprobe counts the frames the
/// index says each readable segment holds.
pub fn assert_index_matches_disk(dir: &Path) {
    let segs = segments(dir);
    let mut indexed: Vec<String> = segs.iter().map(|s| s.path.clone()).collect();
    indexed.sort();
    assert_eq!(
        indexed,
        files_on_disk(dir),
        "index rows = files on disk in {}",
        dir.display()
    );
    for s in segs.iter().filter(|s| s.state != "damaged") {
        assert_ne!(s.state, "recording", "{}: still marked recording", s.path);
        let p = probe(Path::new("ffprobe"), &dir.join(&s.path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.frames, s.frames, "{}: ffprobe frames = index frames", s.path);
        assert!(p.frames > 0 && p.duration_s > 0.0, "{}: playable: {p:?}", s.path);
        assert_eq!(
            s.bytes,
            std::fs::metadata(dir.join(&s.path)).unwrap().len(),
            "{}: bytes",
            s.path
        );
    }
}

/// Children of a process (the node's ffmpegs).
pub fn children(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            v.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    v
}

/// The ffmpeg currently writing a segment of `dir`'s index.
pub fn recording_pid(dir: &Path) -> Option<u32> {
    segments(dir)
        .into_iter()
        .find(|s| s.state == "recording")
        .and_then(|s| s.ffmpeg_pid)
}

pub fn kill(pid: u32, sig: &str) {
    let _ = Command::new("kill").args(["-s", sig, &pid.to_string()]).status();
}

pub fn stop_gracefully(node: &mut NodeProc, sig: &str) {
    node.signal(sig);
    assert_eq!(
        node.wait_exit(Duration::from_secs(30)),
        Some(0),
        "exit status; log:\n{}",
        node.log()
    );
}

pub fn sink(stream: &str, dir: &Path, format: &str, extra: &str) -> String {
    format!("archive:{stream},dir={},format={format}{extra}", dir.display())
}

/// The label of a node's archive output for `dir` (its state is in it).
pub async fn archive_peer(addr: std::net::SocketAddr, dir: &Path) -> String {
    stats(addr)
        .await
        .outputs
        .into_iter()
        .map(|o| o.peer)
        .find(|p| p.contains(&dir.display().to_string()))
        .unwrap_or_default()
}
