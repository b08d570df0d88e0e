//! What an archive is told to do.

use std::path::PathBuf;
use std::time::Duration;

/// Default segment length.
pub const DEFAULT_SEGMENT: Duration = Duration::from_secs(600);
/// Default time ffmpeg may refuse input before it is restarted.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing a segment may take before ffmpeg is killed and the
/// file is repaired instead.
pub const FINALIZE_TIMEOUT: Duration = Duration::from_secs(10);

/// How frames are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchiveFormat {
    /// H.264 (libx264, `veryfast`, CRF 23).
    H264,
    /// H.265 (libx265, `ultrafast`, CRF 28).
    H265,
    /// AV1 (libsvtav1, preset 12, CRF 35).
    Av1,
    /// FFV1 version 3, lossless, every frame a keyframe.
    Ffv1,
    /// Apple ProRes 422 (prores_ks, profile `standard`).
    ProRes,
    /// MJPEG frames kept byte for byte (no re-encode).
    Passthrough,
}

impl ArchiveFormat {
    /// Every format.
    pub const ALL: &'static [ArchiveFormat] = &[
        ArchiveFormat::H264,
        ArchiveFormat::H265,
        ArchiveFormat::Av1,
        ArchiveFormat::Ffv1,
        ArchiveFormat::ProRes,
        ArchiveFormat::Passthrough,
    ];

    /// The name used in configuration.
    pub const fn label(self) -> &'static str {
        match self {
            ArchiveFormat::H264 => "h264",
            ArchiveFormat::H265 => "h265",
            ArchiveFormat::Av1 => "av1",
            ArchiveFormat::Ffv1 => "ffv1",
            ArchiveFormat::ProRes => "prores",
            ArchiveFormat::Passthrough => "passthrough",
        }
    }

    /// Parses a configuration name.
    pub fn from_label(s: &str) -> Option<ArchiveFormat> {
        ArchiveFormat::ALL.iter().copied().find(|f| f.label() == s)
    }

    /// The codec name as ffprobe reports it (`mjpeg` for passthrough).
    pub const fn codec(self) -> &'static str {
        match self {
            ArchiveFormat::H264 => "h264",
            ArchiveFormat::H265 => "hevc",
            ArchiveFormat::Av1 => "av1",
            ArchiveFormat::Ffv1 => "ffv1",
            ArchiveFormat::ProRes => "prores",
            ArchiveFormat::Passthrough => "mjpeg",
        }
    }

    /// The ffmpeg encoder used (`copy` for passthrough).
    pub const fn encoder(self) -> &'static str {
        match self {
            ArchiveFormat::H264 => "libx264",
            ArchiveFormat::H265 => "libx265",
            ArchiveFormat::Av1 => "libsvtav1",
            ArchiveFormat::Ffv1 => "ffv1",
            ArchiveFormat::ProRes => "prores_ks",
            ArchiveFormat::Passthrough => "copy",
        }
    }
}

/// What to do when the archive reaches its size limit or the disk its
/// free-space floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnFull {
    /// Delete the oldest closed segments until the archive fits again.
    #[default]
    DeleteOldest,
    /// Close the open segment and record nothing until space is freed.
    Stop,
}

impl OnFull {
    /// The name used in configuration.
    pub const fn label(self) -> &'static str {
        match self {
            OnFull::DeleteOldest => "delete-oldest",
            OnFull::Stop => "stop",
        }
    }

    /// Parses a configuration name.
    pub fn from_label(s: &str) -> Option<OnFull> {
        [OnFull::DeleteOldest, OnFull::Stop]
            .into_iter()
            .find(|f| f.label() == s)
    }
}

/// One archive: a directory with an index and a tree of segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// The archive's directory (created if missing).
    pub dir: PathBuf,
    /// How frames are stored.
    pub format: ArchiveFormat,
    /// Length of a segment (cut on frame capture times).
    pub segment: Duration,
    /// Largest size of the whole archive in bytes (0 = no limit).
    pub max_total_bytes: u64,
    /// Free space to leave on the archive's file system in bytes (0 = none).
    pub min_free_bytes: u64,
    /// What to do when a limit is reached.
    pub on_full: OnFull,
    /// Time ffmpeg may refuse input before it is killed and restarted.
    pub stall_timeout: Duration,
    /// The ffmpeg program (default `ffmpeg` on `PATH`).
    pub ffmpeg: PathBuf,
}

impl ArchiveConfig {
    /// An archive in `dir` with every default.
    pub fn new(dir: impl Into<PathBuf>, format: ArchiveFormat) -> ArchiveConfig {
        ArchiveConfig {
            dir: dir.into(),
            format,
            segment: DEFAULT_SEGMENT,
            max_total_bytes: 0,
            min_free_bytes: 0,
            on_full: OnFull::default(),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            ffmpeg: PathBuf::from("ffmpeg"),
        }
    }
}
