//! ARCHIVE_LIST: what the node's archive sinks hold, read from their
//! indexes (docs/protocol.md). Only the directories of the node's own
//! archive sinks are ever read: a peer names a stream, never a path. The
//! same list tells the `archive` playback source where a stream's
//! recording is.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use framewire_archive::Index;
use framewire_proto::control::{ArchiveGap, ArchiveListing, ArchiveQuery, ArchiveSegment, ArchivedStream};
use framewire_proto::{Command, Request, Response, Status};

use super::archive::ArchiveSink;
use crate::config::SinkConfig;
use crate::error::CommandError;

/// Most segments, and most gaps, listed per stream: the newest are kept.
pub(crate) const MAX_LISTED: usize = 4000;

/// The node's archive sinks: stream, directory, and its pause switch
/// (ARCHIVE_SET).
#[derive(Debug, Clone, Default)]
pub(crate) struct Archives(Vec<(String, PathBuf, Arc<AtomicBool>)>);

impl Archives {
    /// The archive sinks among `sinks`.
    pub(crate) fn from_sinks(sinks: &[SinkConfig]) -> Archives {
        Archives(
            sinks
                .iter()
                .filter_map(|s| {
                    let a = s.kind.downcast_ref::<ArchiveSink>()?;
                    Some((s.stream.clone(), a.0.dir.clone(), Arc::new(AtomicBool::new(false))))
                })
                .collect(),
        )
    }

    /// The directory the node archives `stream` into.
    pub(crate) fn dir_of(&self, stream: &str) -> Option<&Path> {
        self.0.iter().find(|(s, _, _)| s == stream).map(|(_, d, _)| d.as_path())
    }

    /// The pause switch of the archive sink of `stream` into `dir`.
    pub(crate) fn paused(&self, stream: &str, dir: &Path) -> Option<Arc<AtomicBool>> {
        self.0
            .iter()
            .find(|(s, d, _)| s == stream && d == dir)
            .map(|(_, _, p)| p.clone())
    }

    /// ARCHIVE_SET: pauses or resumes every archive sink of `stream`.
    fn set_recording(&self, stream: &str, recording: bool) -> Result<(), CommandError> {
        let mut found = false;
        for (_, _, p) in self.0.iter().filter(|(s, _, _)| s == stream) {
            p.store(!recording, Ordering::SeqCst);
            found = true;
        }
        if !found {
            return Err(CommandError::new(
                Status::NotFound,
                format!("this node archives no stream named `{stream}`"),
            ));
        }
        tracing::info!(stream, recording, "archive recording switched at run time");
        Ok(())
    }

    /// What is recorded of `q.stream` (every archived stream when empty)
    /// in `[q.from_ns, q.to_ns)`.
    pub(crate) fn list(&self, q: &ArchiveQuery) -> Result<ArchiveListing, CommandError> {
        let mut archives = Vec::new();
        for (stream, dir, _) in self.0.iter().filter(|(s, _, _)| q.stream.is_empty() || *s == q.stream) {
            archives.push(one(stream, dir, q)?);
        }
        if archives.is_empty() && !q.stream.is_empty() {
            return Err(CommandError::new(
                Status::NotFound,
                format!("this node archives no stream named `{}`", q.stream),
            ));
        }
        Ok(ArchiveListing { archives })
    }
}

fn one(stream: &str, dir: &Path, q: &ArchiveQuery) -> Result<ArchivedStream, CommandError> {
    let mut out = ArchivedStream {
        stream: stream.to_owned(),
        dir: dir.display().to_string(),
        ..ArchivedStream::default()
    };
    // Nothing recorded yet: no index yet.
    if !dir.join(framewire_archive::INDEX_FILE).exists() {
        out.state = "starting".into();
        return Ok(out);
    }
    let fail = |e: framewire_archive::ArchiveError| {
        CommandError::new(Status::Internal, format!("the archive index in {}: {e}", dir.display()))
    };
    let index = Index::open_existing(dir).map_err(fail)?;
    out.state = index
        .streams()
        .map_err(fail)?
        .into_iter()
        .find(|s| s.name == stream)
        .map(|s| s.state)
        .unwrap_or_default();
    let segments = index.segments(Some(stream)).map_err(fail)?;
    out.codec = segments.last().map(|s| s.codec.clone()).unwrap_or_default();
    let mut segs: Vec<ArchiveSegment> = segments
        .into_iter()
        .filter(|s| s.end_ns.max(s.start_ns + 1) > q.from_ns && s.start_ns < q.to_ns)
        .map(|s| ArchiveSegment {
            start_ns: s.start_ns,
            end_ns: s.end_ns,
            frames: s.frames,
            bytes: s.bytes,
            state: s.state,
        })
        .collect();
    let mut gaps: Vec<ArchiveGap> = index
        .gaps(Some(stream))
        .map_err(fail)?
        .into_iter()
        .filter(|g| g.end_ns.unwrap_or(u64::MAX) > q.from_ns && g.start_ns < q.to_ns)
        .map(|g| ArchiveGap {
            start_ns: g.start_ns,
            end_ns: g.end_ns.unwrap_or(0),
            frames: g.frames,
            reason: g.reason,
            detail: clip(g.detail),
        })
        .collect();
    out.truncated = segs.len() > MAX_LISTED || gaps.len() > MAX_LISTED;
    segs.drain(..segs.len().saturating_sub(MAX_LISTED));
    gaps.drain(..gaps.len().saturating_sub(MAX_LISTED));
    out.segments = segs;
    out.gaps = gaps;
    Ok(out)
}

/// A gap's detail, at most 200 bytes (ffmpeg's last words can be long).
fn clip(mut s: String) -> String {
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// The ffmpeg concat list of the finished segments of `stream` in `dir`
/// overlapping `[from_ns, to_ns)` (absolute paths, with in- and
/// out-points), and the codec of the last one.
pub(crate) fn range_list(dir: &Path, stream: &str, from_ns: u64, to_ns: u64) -> Result<(String, String), String> {
    use framewire_archive::export::{concat_list, range_segments};
    use framewire_archive::time::rfc3339;
    let index = Index::open_existing(dir).map_err(|e| format!("the archive in {}: {e}", dir.display()))?;
    let segs =
        range_segments(&index, stream, from_ns, to_ns).map_err(|e| format!("the archive in {}: {e}", dir.display()))?;
    let Some(last) = segs.last() else {
        return Err(format!(
            "no finished recording of `{stream}` between {} and {}",
            rfc3339(from_ns),
            rfc3339(to_ns)
        ));
    };
    Ok((concat_list(dir, &segs, from_ns, to_ns)?, last.codec.clone()))
}

/// A new private file in the temporary directory (`O_EXCL|O_NOFOLLOW`,
/// mode 0600, a random name) holding `bytes`.
pub(crate) fn private_temp(what: &str, ext: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(std::io::Error::other)?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let path = std::env::temp_dir().join(format!("framewire-{what}-{}-{hex}.{ext}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    f.write_all(bytes)?;
    Ok(path)
}

/// Answers ARCHIVE_LIST and ARCHIVE_READ (on a blocking thread: they
/// read SQLite and may run ffmpeg).
#[derive(Debug)]
pub(crate) struct ArchivesFamily {
    archives: Arc<Archives>,
    exports: super::archive_export::Exports,
}

impl ArchivesFamily {
    pub(crate) fn new(archives: Arc<Archives>) -> ArchivesFamily {
        ArchivesFamily {
            archives,
            exports: Default::default(),
        }
    }
}

impl crate::runtime::devices::DeviceFamily for ArchivesFamily {
    fn answers(&self, command: Command) -> bool {
        matches!(
            command,
            Command::ArchiveList | Command::ArchiveRead | Command::ArchiveSet
        )
    }

    fn handle(&self, req: Request) -> Result<Response, CommandError> {
        match req {
            Request::ArchiveList(q) => self.archives.list(&q).map(Response::ArchiveList),
            Request::ArchiveRead(r) => self.exports.read(&self.archives, &r).map(Response::ArchiveRead),
            Request::ArchiveSet(a) => self
                .archives
                .set_recording(&a.stream, a.recording)
                .map(|()| Response::ArchiveSet),
            other => Err(CommandError::new(
                Status::UnknownCommand,
                format!("{} is not an archive command", other.command()),
            )),
        }
    }
}
