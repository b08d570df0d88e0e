//! The archive's storage when it fails: telling a storage fault (no space,
//! a read-only file system, an I/O error) from other failures, the space
//! reserve that lets the index record the truth on a full disk, and a
//! log that says a recurring error once a minute instead of per frame.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::ArchiveError;

/// The reserve's file name in an archive directory.
pub const RESERVE_FILE: &str = ".reserve";
/// Bytes the reserve holds: room for the index to record an outage (a
/// gap, a segment's last figures, the state) when the disk is full.
pub(crate) const RESERVE_BYTES: usize = 1 << 20;
/// Free bytes below which the disk counts as full, so that the index
/// never runs out first.
pub(crate) const FREE_FLOOR: u64 = 64 << 10;

/// What is wrong with the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// No space left (or over a quota).
    Full,
    /// The file system is read-only.
    ReadOnly,
    /// The device failed.
    Io,
}

impl Fault {
    /// The gap's reason in the index.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Fault::Full => crate::index::reason::STORAGE_FULL,
            Fault::ReadOnly => crate::index::reason::STORAGE_READ_ONLY,
            Fault::Io => crate::index::reason::STORAGE_IO_ERROR,
        }
    }

    /// A storage fault behind an I/O error, if it is one.
    pub(crate) fn of_io(e: &std::io::Error) -> Option<Fault> {
        match e.raw_os_error()? {
            libc::ENOSPC | libc::EDQUOT => Some(Fault::Full),
            libc::EROFS => Some(Fault::ReadOnly),
            libc::EIO => Some(Fault::Io),
            _ => None,
        }
    }

    /// A storage fault in a line a program printed (ffmpeg's stderr).
    pub(crate) fn of_text(s: &str) -> Option<Fault> {
        let l = s.to_ascii_lowercase();
        if l.contains("no space left on device") || l.contains("disk quota exceeded") {
            Some(Fault::Full)
        } else if l.contains("read-only file system") {
            Some(Fault::ReadOnly)
        } else if l.contains("input/output error") {
            Some(Fault::Io)
        } else {
            None
        }
    }

    /// A storage fault behind an archive error (the index's or a file's).
    pub(crate) fn of_error(e: &ArchiveError) -> Option<Fault> {
        use rusqlite::ErrorCode as C;
        match e {
            ArchiveError::Io { source, .. } => Fault::of_io(source),
            ArchiveError::Index(rusqlite::Error::SqliteFailure(f, _)) => match f.code {
                C::DiskFull => Some(Fault::Full),
                C::ReadOnly => Some(Fault::ReadOnly),
                C::SystemIoFailure => Some(Fault::Io),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A file of [`RESERVE_BYTES`] in the archive directory, given back when
/// the disk is full so the index can record the outage, and taken again
/// when writing works (taking it is the test that it does).
#[derive(Debug)]
pub(crate) struct Reserve {
    path: PathBuf,
}

impl Reserve {
    pub(crate) fn new(dir: &Path) -> Reserve {
        Reserve {
            path: dir.join(RESERVE_FILE),
        }
    }

    /// Takes the space (written and synced, so it is really held). On an
    /// error nothing is held.
    pub(crate) fn take(&self) -> std::io::Result<()> {
        let held = std::fs::metadata(&self.path).is_ok_and(|m| m.len() == RESERVE_BYTES as u64);
        if held {
            return Ok(());
        }
        let r = (|| {
            let mut f = std::fs::File::create(&self.path)?;
            f.write_all(&vec![0u8; RESERVE_BYTES])?;
            f.sync_all()
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
        r
    }

    /// Gives the space back.
    pub(crate) fn release(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A recurring error said once, then at most once a minute with how many
/// times it happened in between.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

/// How often a recurring error is logged again.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(60);

impl Throttle {
    /// Whether to log now; if so, how many were not logged since the last.
    pub(crate) fn take(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_told_from_errors_and_text() {
        let e = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(Fault::of_io(&e), Some(Fault::Full));
        assert_eq!(Fault::of_io(&std::io::Error::from_raw_os_error(libc::EPIPE)), None);
        assert_eq!(
            Fault::of_text("av_interleaved_write_frame(): No space left on device"),
            Some(Fault::Full)
        );
        assert_eq!(Fault::of_text("[swscaler @ 0x5] deprecated pixel format used"), None);
        assert_eq!(Fault::Full.reason(), "storage-full");
    }

    #[test]
    fn a_recurring_error_is_said_once_a_minute_with_a_count() {
        let t0 = Instant::now();
        let mut t = Throttle::default();
        assert_eq!(t.take(t0), Some(0));
        for i in 1..=150 {
            assert_eq!(t.take(t0 + Duration::from_millis(i * 33)), None);
        }
        assert_eq!(t.take(t0 + LOG_EVERY), Some(150));
    }
}
