//! framewire's archiver: keeps what a stream carries, encoded for archival
//! by an ffmpeg subprocess, cut into segments, indexed in SQLite.
//!
//! - [`Archiver`]: one stream's archive. It runs on threads of its own
//!   (no async): a worker that feeds ffmpeg's stdin, cuts segments and
//!   applies the storage policy; per ffmpeg, a watchdog that kills it when
//!   it stops reading and a reader that keeps the tail of its stderr; per
//!   closing segment, a closer that waits for ffmpeg to finish the file.
//! - [`Index`]: `index.sqlite` in the archive directory (WAL): streams,
//!   segments, gaps with reasons.
//! - [`reconcile()`]: on start, brings index and disk into agreement.
//!
//! Frames go to ffmpeg as they came for MJPEG (ffmpeg decodes them, or
//! copies them untouched for `passthrough`); raw, raw+zstd and QOI frames
//! are decoded here and piped as raw video. The rate given to ffmpeg is the
//! stream's declared rate (STREAM_OPEN); the index records capture times.
//! docs/archive.md describes formats, layout, schema and policies.

mod config;
mod error;
pub mod export;
pub mod ffmpeg;
pub mod index;
mod reconcile;
mod recorder;
mod segments;
mod storage;
pub mod time;
mod worker;

/// The mode an archive's directories are created with (before the umask):
/// the owner writes, the group reads, others get nothing. Segments and the
/// index inside inherit that protection from their directories.
pub const DIR_MODE: u32 = 0o750;

/// Creates `dir` and its missing parents with [`DIR_MODE`].
pub(crate) fn create_dirs(dir: &std::path::Path) -> Result<(), ArchiveError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| ArchiveError::io(format!("cannot create {}", dir.display()), e))
}

pub use config::{ArchiveConfig, ArchiveFormat, DEFAULT_SEGMENT, DEFAULT_STALL_TIMEOUT, FINALIZE_TIMEOUT, OnFull};
pub use error::ArchiveError;
pub use index::{GapRow, INDEX_FILE, Index, SegmentRow, StreamRow};
pub use reconcile::{Reconciled, reconcile};
pub use recorder::{ArchiveFrame, ArchiveState, Archiver, PushError, Status};
pub use segments::stream_dir_name;
pub use storage::RESERVE_FILE;
