//! The recording index: one SQLite database per archive directory
//! (`index.sqlite`), in WAL mode, so a killed node leaves it consistent at
//! its last committed transaction.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use crate::error::ArchiveError;

/// The index file's name inside an archive directory.
pub const INDEX_FILE: &str = "index.sqlite";

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    format         TEXT NOT NULL,
    pixel_format   TEXT NOT NULL,
    width          INTEGER NOT NULL,
    height         INTEGER NOT NULL,
    fps_num        INTEGER NOT NULL,
    fps_den        INTEGER NOT NULL,
    archive_format TEXT NOT NULL,
    encoder        TEXT NOT NULL,
    origin         TEXT NOT NULL,
    state          TEXT NOT NULL DEFAULT '',
    updated_ns     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
    id         INTEGER PRIMARY KEY,
    stream_id  INTEGER NOT NULL REFERENCES streams(id),
    path       TEXT NOT NULL UNIQUE,
    start_ns   INTEGER NOT NULL,
    end_ns     INTEGER NOT NULL,
    frames     INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    codec      TEXT NOT NULL,
    container  TEXT NOT NULL,
    state      TEXT NOT NULL,
    ffmpeg_pid INTEGER,
    note       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS segments_by_time ON segments (stream_id, start_ns);
CREATE TABLE IF NOT EXISTS gaps (
    id        INTEGER PRIMARY KEY,
    stream_id INTEGER NOT NULL REFERENCES streams(id),
    start_ns  INTEGER NOT NULL,
    end_ns    INTEGER,
    reason    TEXT NOT NULL,
    frames    INTEGER NOT NULL DEFAULT 0,
    detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS gaps_by_time ON gaps (stream_id, start_ns);
";

/// A segment's life.
pub mod state {
    /// ffmpeg is writing it.
    pub const RECORDING: &str = "recording";
    /// Closed normally: ffmpeg finished the file.
    pub const CLOSED: &str = "closed";
    /// ffmpeg or the node died while writing it; the file was repaired
    /// (remuxed) and its frames counted again.
    pub const RECOVERED: &str = "recovered";
    /// Could not be repaired; kept on disk for inspection.
    pub const DAMAGED: &str = "damaged";
}

/// Why recording has a hole.
pub mod reason {
    /// ffmpeg died or stalled and was restarted.
    pub const FFMPEG_RESTART: &str = "ffmpeg-restart";
    /// ffmpeg could not be started; frames were counted, not stored.
    pub const FFMPEG_DOWN: &str = "ffmpeg-down";
    /// The archiver's relay output overflowed its budget.
    pub const BUDGET_DROPS: &str = "budget-drops";
    /// The node stopped without closing the segment (killed, crashed).
    pub const NODE_RESTART: &str = "node-restart";
    /// The disk is full, or the storage limit was reached and the policy
    /// is `stop`.
    pub const STORAGE_FULL: &str = "storage-full";
    /// The archive's file system turned read-only.
    pub const STORAGE_READ_ONLY: &str = "storage-read-only";
    /// Writing failed with an I/O error.
    pub const STORAGE_IO_ERROR: &str = "storage-io-error";
    /// A frame could not be decoded for the encoder.
    pub const UNDECODABLE: &str = "undecodable";
    /// ffmpeg did not finish a segment it was closing: the frames after
    /// the last one in the file.
    pub const UNFINISHED: &str = "unfinished";
    /// H.264/H.265 frames before a keyframe, which a segment cannot start
    /// with (after a segment ended without one following at once).
    pub const WAITING_KEYFRAME: &str = "waiting-keyframe";
    /// Recording paused at run time (ARCHIVE_SET).
    pub const PAUSED: &str = "paused";
}

/// A stream as the index knows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StreamRow {
    /// Row id.
    pub id: i64,
    /// Stream name.
    pub name: String,
    /// Wire format received (`mjpeg`, `raw`, ...).
    pub format: String,
    /// Wire pixel format received.
    pub pixel_format: String,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frame rate numerator.
    pub fps_num: u32,
    /// Frame rate denominator.
    pub fps_den: u32,
    /// Archive format (`ffv1`, `passthrough`, ...).
    pub archive_format: String,
    /// ffmpeg encoder (`ffv1`, `libx264`, `copy`).
    pub encoder: String,
    /// Origin of the archived stream (`ffmpeg-subprocess`).
    pub origin: String,
    /// The archiver's state (`recording`, `full: ...`, `stopped`).
    pub state: String,
}

/// One segment file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SegmentRow {
    /// Row id.
    pub id: i64,
    /// Stream name.
    pub stream: String,
    /// Path relative to the archive directory.
    pub path: String,
    /// Capture time of the first frame, ns since the epoch.
    pub start_ns: u64,
    /// Capture time of the last frame plus one frame period.
    pub end_ns: u64,
    /// Frames in the file.
    pub frames: u64,
    /// File size.
    pub bytes: u64,
    /// Codec (ffprobe's name).
    pub codec: String,
    /// Container (`matroska`).
    pub container: String,
    /// See [`state`].
    pub state: String,
    /// Why it is in its state, when not `closed`.
    pub note: String,
    /// The ffmpeg that writes it (while recording).
    #[serde(skip)]
    pub ffmpeg_pid: Option<u32>,
}

/// A hole in a recording.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GapRow {
    /// Row id.
    pub id: i64,
    /// Stream name.
    pub stream: String,
    /// Start, ns since the epoch.
    pub start_ns: u64,
    /// End (none while still open).
    pub end_ns: Option<u64>,
    /// See [`reason`].
    pub reason: String,
    /// Frames lost, where known.
    pub frames: u64,
    /// Details: drop reasons, ffmpeg's last words.
    pub detail: String,
}

/// A stream's description for [`Index::upsert_stream`].
#[derive(Debug, Clone)]
pub struct StreamDesc<'a> {
    /// Name.
    pub name: &'a str,
    /// Wire format label.
    pub format: &'a str,
    /// Pixel format label.
    pub pixel_format: &'a str,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Rate numerator.
    pub fps_num: u32,
    /// Rate denominator.
    pub fps_den: u32,
    /// Archive format label.
    pub archive_format: &'a str,
    /// ffmpeg encoder.
    pub encoder: &'a str,
    /// Origin label.
    pub origin: &'a str,
}

/// Progress of the open segment, written in batches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Progress {
    pub(crate) segment: i64,
    pub(crate) frames: u64,
    pub(crate) bytes: u64,
    pub(crate) end_ns: u64,
}

/// The index of one archive directory.
#[derive(Debug)]
pub struct Index {
    conn: Mutex<Connection>,
    dir: PathBuf,
}

pub(crate) fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

const SEGMENT_COLS: &str = "s.id, st.name, s.path, s.start_ns, s.end_ns, s.frames, s.bytes, s.codec, s.container, \
                            s.state, s.note, s.ffmpeg_pid";

fn segment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentRow> {
    Ok(SegmentRow {
        id: r.get(0)?,
        stream: r.get(1)?,
        path: r.get(2)?,
        start_ns: u(r.get(3)?),
        end_ns: u(r.get(4)?),
        frames: u(r.get(5)?),
        bytes: u(r.get(6)?),
        codec: r.get(7)?,
        container: r.get(8)?,
        state: r.get(9)?,
        note: r.get(10)?,
        ffmpeg_pid: r.get::<_, Option<i64>>(11)?.and_then(|p| u32::try_from(p).ok()),
    })
}

impl Index {
    /// Opens (creating if needed) the index of `dir`.
    pub fn open(dir: &Path) -> Result<Index, ArchiveError> {
        crate::create_dirs(dir)?;
        let conn = Connection::open(dir.join(INDEX_FILE))?;
        Self::setup(conn, dir, true)
    }

    /// Opens the index of an existing archive; fails if there is none.
    pub fn open_existing(dir: &Path) -> Result<Index, ArchiveError> {
        let path = dir.join(INDEX_FILE);
        if !path.is_file() {
            return Err(ArchiveError::Config(format!(
                "{} is not an archive (no {INDEX_FILE})",
                dir.display()
            )));
        }
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        Self::setup(conn, dir, false)
    }

    fn setup(conn: Connection, dir: &Path, create: bool) -> Result<Index, ArchiveError> {
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        if create {
            conn.execute_batch(SCHEMA)?;
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)",
                params![SCHEMA_VERSION.to_string()],
            )?;
        }
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0))
            .optional()?;
        if version.as_deref() != Some("1") {
            return Err(ArchiveError::Config(format!(
                "{}: unknown index schema version {version:?}",
                dir.display()
            )));
        }
        Ok(Index {
            conn: Mutex::new(conn),
            dir: dir.to_owned(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The archive directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds or refreshes a stream; its row id.
    pub fn upsert_stream(&self, s: &StreamDesc<'_>, now_ns: u64) -> Result<i64, ArchiveError> {
        let c = self.lock();
        c.execute(
            "INSERT INTO streams (name, format, pixel_format, width, height, fps_num, fps_den, archive_format, \
             encoder, origin, updated_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT(name) DO UPDATE SET format = ?2, pixel_format = ?3, width = ?4, height = ?5, \
             fps_num = ?6, fps_den = ?7, archive_format = ?8, encoder = ?9, origin = ?10, updated_ns = ?11",
            params![
                s.name,
                s.format,
                s.pixel_format,
                s.width,
                s.height,
                s.fps_num,
                s.fps_den,
                s.archive_format,
                s.encoder,
                s.origin,
                i(now_ns)
            ],
        )?;
        Ok(c.query_row("SELECT id FROM streams WHERE name = ?1", params![s.name], |r| r.get(0))?)
    }

    /// Records the archiver's state for a stream.
    pub(crate) fn set_state(&self, stream_id: i64, state: &str) -> Result<(), ArchiveError> {
        self.lock()
            .execute("UPDATE streams SET state = ?2 WHERE id = ?1", params![stream_id, state])?;
        Ok(())
    }

    /// Adds a segment ffmpeg has started writing.
    pub(crate) fn insert_segment(
        &self,
        stream_id: i64,
        path: &str,
        start_ns: u64,
        codec: &str,
        pid: u32,
    ) -> Result<i64, ArchiveError> {
        let c = self.lock();
        c.execute(
            "INSERT INTO segments (stream_id, path, start_ns, end_ns, frames, bytes, codec, container, state, \
             ffmpeg_pid) VALUES (?1, ?2, ?3, ?3, 0, 0, ?4, 'matroska', 'recording', ?5)",
            params![stream_id, path, i(start_ns), codec, pid],
        )?;
        Ok(c.last_insert_rowid())
    }

    /// Adds a segment found on disk that the index did not know.
    pub(crate) fn insert_found(&self, stream_id: i64, row: &SegmentRow) -> Result<i64, ArchiveError> {
        let c = self.lock();
        c.execute(
            "INSERT INTO segments (stream_id, path, start_ns, end_ns, frames, bytes, codec, container, state, note) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                stream_id,
                row.path,
                i(row.start_ns),
                i(row.end_ns),
                i(row.frames),
                i(row.bytes),
                row.codec,
                row.container,
                row.state,
                row.note
            ],
        )?;
        Ok(c.last_insert_rowid())
    }

    /// Writes the open segments' progress and open gaps' counts in one
    /// transaction.
    pub(crate) fn flush(&self, progress: &[Progress], gaps: &[(i64, u64)]) -> Result<(), ArchiveError> {
        let mut c = self.lock();
        let tx = c.transaction()?;
        for p in progress {
            tx.execute(
                "UPDATE segments SET frames = ?2, bytes = ?3, end_ns = ?4 WHERE id = ?1 AND state = 'recording'",
                params![p.segment, i(p.frames), i(p.bytes), i(p.end_ns)],
            )?;
        }
        for (id, frames) in gaps {
            tx.execute("UPDATE gaps SET frames = ?2 WHERE id = ?1", params![id, i(*frames)])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks a segment finished.
    pub(crate) fn finish_segment(&self, p: Progress, state: &str, note: &str) -> Result<(), ArchiveError> {
        self.lock().execute(
            "UPDATE segments SET frames = ?2, bytes = ?3, end_ns = ?4, state = ?5, note = ?6, ffmpeg_pid = NULL \
             WHERE id = ?1",
            params![p.segment, i(p.frames), i(p.bytes), i(p.end_ns), state, note],
        )?;
        Ok(())
    }

    /// Adds a gap; `end_ns` none while it lasts.
    pub(crate) fn add_gap(
        &self,
        stream_id: i64,
        start_ns: u64,
        end_ns: Option<u64>,
        reason: &str,
        frames: u64,
        detail: &str,
    ) -> Result<i64, ArchiveError> {
        let c = self.lock();
        c.execute(
            "INSERT INTO gaps (stream_id, start_ns, end_ns, reason, frames, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![stream_id, i(start_ns), end_ns.map(i), reason, i(frames), detail],
        )?;
        Ok(c.last_insert_rowid())
    }

    /// Moves a gap's end and sets its count and detail.
    pub(crate) fn extend_gap(&self, id: i64, end_ns: u64, frames: u64, detail: &str) -> Result<(), ArchiveError> {
        self.lock().execute(
            "UPDATE gaps SET end_ns = ?2, frames = ?3, detail = ?4 WHERE id = ?1",
            params![id, i(end_ns), i(frames), detail],
        )?;
        Ok(())
    }

    /// Moves a gap's start earlier (to where a repaired file ends) and adds
    /// the frames that file lost.
    pub(crate) fn adjust_gap(&self, id: i64, start_ns: u64, add_frames: u64) -> Result<(), ArchiveError> {
        self.lock().execute(
            "UPDATE gaps SET start_ns = min(start_ns, ?2), frames = frames + ?3 WHERE id = ?1",
            params![id, i(start_ns), i(add_frames)],
        )?;
        Ok(())
    }

    /// Ends every open gap of a stream at `end_ns` (recording resumed).
    pub(crate) fn close_gaps(&self, stream_id: i64, end_ns: u64) -> Result<(), ArchiveError> {
        self.lock().execute(
            "UPDATE gaps SET end_ns = max(?2, start_ns) WHERE stream_id = ?1 AND end_ns IS NULL",
            params![stream_id, i(end_ns)],
        )?;
        Ok(())
    }

    fn stream_id(&self, stream: &str) -> Result<Option<i64>, ArchiveError> {
        Ok(self.streams()?.into_iter().find(|s| s.name == stream).map(|s| s.id))
    }

    /// A sink paused at run time: the stream's state becomes `paused`.
    pub fn pause_began(&self, stream: &str) -> Result<(), ArchiveError> {
        if let Some(id) = self.stream_id(stream)? {
            self.set_state(id, reason::PAUSED)?;
        }
        Ok(())
    }

    /// The pause ended: it is a `paused` gap from `start_ns` to `end_ns`.
    pub fn pause_ended(&self, stream: &str, start_ns: u64, end_ns: u64) -> Result<(), ArchiveError> {
        if let Some(id) = self.stream_id(stream)? {
            self.add_gap(
                id,
                start_ns,
                Some(end_ns.max(start_ns)),
                reason::PAUSED,
                0,
                "recording paused at run time (ARCHIVE_SET)",
            )?;
        }
        Ok(())
    }

    /// Bytes of every segment in the index.
    pub fn total_bytes(&self) -> Result<u64, ArchiveError> {
        let v: i64 = self
            .lock()
            .query_row("SELECT coalesce(sum(bytes), 0) FROM segments", [], |r| r.get(0))?;
        Ok(u(v))
    }

    /// The oldest segment not being written, of any stream.
    pub(crate) fn oldest_closed(&self) -> Result<Option<SegmentRow>, ArchiveError> {
        let c = self.lock();
        Ok(c.query_row(
            &format!(
                "SELECT {SEGMENT_COLS} FROM segments s JOIN streams st ON st.id = s.stream_id \
                 WHERE s.state != 'recording' ORDER BY s.start_ns LIMIT 1"
            ),
            [],
            segment_row,
        )
        .optional()?)
    }

    /// Removes a segment's row (its file is removed first by the caller).
    pub(crate) fn delete_segment(&self, id: i64) -> Result<(), ArchiveError> {
        self.lock().execute("DELETE FROM segments WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// Segments, oldest first; of one stream if `stream` is given.
    pub fn segments(&self, stream: Option<&str>) -> Result<Vec<SegmentRow>, ArchiveError> {
        let c = self.lock();
        let mut q = c.prepare(&format!(
            "SELECT {SEGMENT_COLS} FROM segments s JOIN streams st ON st.id = s.stream_id \
             WHERE ?1 IS NULL OR st.name = ?1 ORDER BY st.name, s.start_ns, s.id"
        ))?;
        let rows = q.query_map(params![stream], segment_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Gaps, oldest first; of one stream if `stream` is given.
    pub fn gaps(&self, stream: Option<&str>) -> Result<Vec<GapRow>, ArchiveError> {
        let c = self.lock();
        let mut q = c.prepare(
            "SELECT g.id, st.name, g.start_ns, g.end_ns, g.reason, g.frames, g.detail FROM gaps g \
             JOIN streams st ON st.id = g.stream_id WHERE ?1 IS NULL OR st.name = ?1 \
             ORDER BY st.name, g.start_ns, g.id",
        )?;
        let rows = q.query_map(params![stream], |r| {
            Ok(GapRow {
                id: r.get(0)?,
                stream: r.get(1)?,
                start_ns: u(r.get(2)?),
                end_ns: r.get::<_, Option<i64>>(3)?.map(u),
                reason: r.get(4)?,
                frames: u(r.get(5)?),
                detail: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Every stream.
    pub fn streams(&self) -> Result<Vec<StreamRow>, ArchiveError> {
        let c = self.lock();
        let mut q = c.prepare(
            "SELECT id, name, format, pixel_format, width, height, fps_num, fps_den, archive_format, encoder, \
             origin, state FROM streams ORDER BY name",
        )?;
        let rows = q.query_map([], |r| {
            Ok(StreamRow {
                id: r.get(0)?,
                name: r.get(1)?,
                format: r.get(2)?,
                pixel_format: r.get(3)?,
                width: r.get(4)?,
                height: r.get(5)?,
                fps_num: r.get(6)?,
                fps_den: r.get(7)?,
                archive_format: r.get(8)?,
                encoder: r.get(9)?,
                origin: r.get(10)?,
                state: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}
