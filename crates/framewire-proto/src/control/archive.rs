//! ARCHIVE_LIST: what a node's archive sinks hold, from their indexes
//! (docs/protocol.md, "ARCHIVE_LIST").

use bytes::{BufMut, BytesMut};

use crate::error::FieldError;
use crate::fields::{Fields, get_bool, get_list, put_list};
use crate::wire::{Reader, WriteExt};

/// ARCHIVE_LIST request: `stream string` (empty: every archived stream),
/// `from_ns u64`, `to_ns u64` (capture times, ns since the epoch; what
/// overlaps `[from_ns, to_ns)` is listed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveQuery {
    /// The stream, or empty for all.
    pub stream: String,
    /// Start of the window.
    pub from_ns: u64,
    /// End of the window.
    pub to_ns: u64,
}

impl Fields for ArchiveQuery {
    const MIN_LEN: usize = 18;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("stream", &self.stream)?;
        b.put_u64_le(self.from_ns);
        b.put_u64_le(self.to_ns);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(ArchiveQuery {
            stream: r.string("stream")?,
            from_ns: r.u64("from_ns")?,
            to_ns: r.u64("to_ns")?,
        })
    }
}

/// ARCHIVE_LIST response: `archives list(ArchivedStream)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveListing {
    /// One entry per archive sink and stream.
    pub archives: Vec<ArchivedStream>,
}

impl Fields for ArchiveListing {
    const MIN_LEN: usize = 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        put_list(b, "archives", &self.archives)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(ArchiveListing {
            archives: get_list(r, "archives")?,
        })
    }
}

/// One archived stream: `stream string, dir string, state string, codec
/// string, segments list(ArchiveSegment), gaps list(ArchiveGap),
/// truncated u8`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchivedStream {
    /// The stream's name.
    pub stream: String,
    /// The archive directory on the node.
    pub dir: String,
    /// The archiver's state as its index records it (`recording`, `full: …`).
    pub state: String,
    /// The codec of its newest segment (ffprobe's name: `mjpeg`, `h264`, `hevc`).
    pub codec: String,
    /// Its segments in the window, oldest first.
    pub segments: Vec<ArchiveSegment>,
    /// Its gaps in the window, oldest first.
    pub gaps: Vec<ArchiveGap>,
    /// Whether the window held more than the node lists (the newest are kept).
    pub truncated: bool,
}

impl Fields for ArchivedStream {
    const MIN_LEN: usize = 13;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("stream", &self.stream)?;
        b.put_string("dir", &self.dir)?;
        b.put_string("state", &self.state)?;
        b.put_string("codec", &self.codec)?;
        put_list(b, "segments", &self.segments)?;
        put_list(b, "gaps", &self.gaps)?;
        b.put_u8(u8::from(self.truncated));
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(ArchivedStream {
            stream: r.string("stream")?,
            dir: r.string("dir")?,
            state: r.string("state")?,
            codec: r.string("codec")?,
            segments: get_list(r, "segments")?,
            gaps: get_list(r, "gaps")?,
            truncated: get_bool(r, "truncated")?,
        })
    }
}

/// One segment: `start_ns u64, end_ns u64, frames u64, bytes u64, state string`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveSegment {
    /// Capture time of its first frame.
    pub start_ns: u64,
    /// Capture time of its last frame plus one frame period.
    pub end_ns: u64,
    /// Frames in it.
    pub frames: u64,
    /// Its file's size.
    pub bytes: u64,
    /// `closed`, `recovered`, `recording`, … (docs/archive.md).
    pub state: String,
}

impl Fields for ArchiveSegment {
    const MIN_LEN: usize = 34;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u64_le(self.start_ns);
        b.put_u64_le(self.end_ns);
        b.put_u64_le(self.frames);
        b.put_u64_le(self.bytes);
        b.put_string("state", &self.state)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(ArchiveSegment {
            start_ns: r.u64("start_ns")?,
            end_ns: r.u64("end_ns")?,
            frames: r.u64("frames")?,
            bytes: r.u64("bytes")?,
            state: r.string("state")?,
        })
    }
}

/// One gap: `start_ns u64, end_ns u64 (0: still open), frames u64,
/// reason string, detail string`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveGap {
    /// When it began.
    pub start_ns: u64,
    /// When it ended; 0 while it lasts.
    pub end_ns: u64,
    /// Frames lost, where known.
    pub frames: u64,
    /// Why (`source-interrupted`, `storage-failed`, …; docs/archive.md).
    pub reason: String,
    /// Details: drop reasons, ffmpeg's last words.
    pub detail: String,
}

impl Fields for ArchiveGap {
    const MIN_LEN: usize = 28;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u64_le(self.start_ns);
        b.put_u64_le(self.end_ns);
        b.put_u64_le(self.frames);
        b.put_string("reason", &self.reason)?;
        b.put_string("detail", &self.detail)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(ArchiveGap {
            start_ns: r.u64("start_ns")?,
            end_ns: r.u64("end_ns")?,
            frames: r.u64("frames")?,
            reason: r.string("reason")?,
            detail: r.string("detail")?,
        })
    }
}

/// ARCHIVE_READ request: `stream string, from_ns u64, to_ns u64, offset
/// u64, max_len u32`: up to `max_len` bytes at `offset` of the range's
/// export (one Matroska file of its segments, nothing re-encoded).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveRead {
    /// The stream.
    pub stream: String,
    /// Start of the range.
    pub from_ns: u64,
    /// End of the range.
    pub to_ns: u64,
    /// Where in the file to read.
    pub offset: u64,
    /// Most bytes to answer.
    pub max_len: u32,
}

impl Fields for ArchiveRead {
    const MIN_LEN: usize = 30;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("stream", &self.stream)?;
        b.put_u64_le(self.from_ns);
        b.put_u64_le(self.to_ns);
        b.put_u64_le(self.offset);
        b.put_u32_le(self.max_len);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(ArchiveRead {
            stream: r.string("stream")?,
            from_ns: r.u64("from_ns")?,
            to_ns: r.u64("to_ns")?,
            offset: r.u64("offset")?,
            max_len: r.u32("max_len")?,
        })
    }
}

/// ARCHIVE_READ response: `total u64` (the file's size), `data blob32`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveChunk {
    /// The whole file's size.
    pub total: u64,
    /// The bytes at the offset asked.
    pub data: bytes::Bytes,
}

impl Fields for ArchiveChunk {
    const MIN_LEN: usize = 12;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u64_le(self.total);
        b.put_blob32("data", &self.data)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(ArchiveChunk {
            total: r.u64("total")?,
            data: r.blob32("data")?,
        })
    }
}

/// ARCHIVE_SET request: `stream string, recording u8`: 0 pauses the
/// archive sink of `stream` (its segment closes, frames are let go), 1
/// starts it again (a new segment, the pause a `paused` gap).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveSet {
    /// The stream an archive sink of the node records.
    pub stream: String,
    /// Whether it records.
    pub recording: bool,
}

impl Fields for ArchiveSet {
    const MIN_LEN: usize = 3;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("stream", &self.stream)?;
        b.put_u8(u8::from(self.recording));
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(ArchiveSet {
            stream: r.string("stream")?,
            recording: get_bool(r, "recording")?,
        })
    }
}
