//! ARCHIVE_READ: a range of a recording as one Matroska file, read in
//! chunks (docs/protocol.md). The file is made by ffmpeg's concat demuxer
//! (`-c copy`) when a read at offset 0 asks for it, kept while it is read,
//! and dropped [`KEEP`] after its last read; at most [`MAX_FILES`] at once.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_proto::Status;
use framewire_proto::control::{ArchiveChunk, ArchiveRead};

use super::archive_list::{Archives, private_temp, range_list};
use crate::error::CommandError;

/// Most bytes one read answers.
pub(crate) const MAX_CHUNK: u32 = 1 << 20;
/// An export not read for this long is dropped.
const KEEP: Duration = Duration::from_secs(60);
/// Exports kept at once.
const MAX_FILES: usize = 4;

type Key = (String, u64, u64);

struct Export {
    path: PathBuf,
    total: u64,
    used: Instant,
}

/// The exports being read.
#[derive(Default)]
pub(crate) struct Exports(Mutex<HashMap<Key, Export>>);

impl std::fmt::Debug for Exports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exports")
    }
}

impl Drop for Exports {
    fn drop(&mut self) {
        let map = self.0.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        for e in map.values() {
            let _ = std::fs::remove_file(&e.path);
        }
    }
}

fn not_found(m: String) -> CommandError {
    CommandError::new(Status::NotFound, m)
}

impl Exports {
    /// Answers one read (on a blocking thread: it may run ffmpeg).
    pub(crate) fn read(&self, archives: &Archives, r: &ArchiveRead) -> Result<ArchiveChunk, CommandError> {
        let key = (r.stream.clone(), r.from_ns, r.to_ns);
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, e| {
            let keep = e.used.elapsed() < KEEP;
            if !keep {
                let _ = std::fs::remove_file(&e.path);
            }
            keep
        });
        if !map.contains_key(&key) {
            if r.offset != 0 {
                return Err(not_found(
                    "no export of that range is being read: start again at offset 0".into(),
                ));
            }
            let dir = archives
                .dir_of(&r.stream)
                .ok_or_else(|| not_found(format!("this node archives no stream named `{}`", r.stream)))?;
            let (list, _) = range_list(dir, &r.stream, r.from_ns, r.to_ns).map_err(not_found)?;
            let (path, total) = export(&list)?;
            if map.len() >= MAX_FILES
                && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone())
                && let Some(e) = map.remove(&oldest)
            {
                let _ = std::fs::remove_file(&e.path);
            }
            map.insert(
                key.clone(),
                Export {
                    path,
                    total,
                    used: Instant::now(),
                },
            );
        }
        let e = map.get_mut(&key).expect("inserted above");
        e.used = Instant::now();
        let len = u64::from(r.max_len.min(MAX_CHUNK)).min(e.total.saturating_sub(r.offset));
        let mut data = vec![0u8; usize::try_from(len).unwrap_or(0)];
        let io = |err: std::io::Error| CommandError::new(Status::Internal, format!("the export: {err}"));
        let mut f = std::fs::File::open(&e.path).map_err(io)?;
        f.seek(SeekFrom::Start(r.offset.min(e.total))).map_err(io)?;
        f.read_exact(&mut data).map_err(io)?;
        Ok(ArchiveChunk {
            total: e.total,
            data: Bytes::from(data),
        })
    }
}

/// Joins the list's segments into a new private Matroska file: its path and size.
fn export(list: &str) -> Result<(PathBuf, u64), CommandError> {
    let fail = |m: String| CommandError::new(Status::Internal, m);
    // ffmpeg writes into a file made private first (it would create it 0644).
    let out = private_temp("export", "mkv", b"").map_err(|e| fail(format!("a temporary file: {e}")))?;
    let joined = framewire_archive::export::join(std::path::Path::new("ffmpeg"), list, &out, Some("matroska"));
    match joined.and_then(|()| std::fs::metadata(&out).map_err(|e| e.to_string())) {
        Ok(m) => Ok((out, m.len())),
        Err(m) => {
            let _ = std::fs::remove_file(&out);
            Err(fail(m))
        }
    }
}
