//! Errors of the archiver.

/// Why an archive could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The index database failed.
    #[error("archive index: {0}")]
    Index(#[from] rusqlite::Error),
    /// A file or directory could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The configuration cannot work with this stream.
    #[error("{0}")]
    Config(String),
    /// ffmpeg could not be run.
    #[error("ffmpeg: {0}")]
    Ffmpeg(String),
}

impl ArchiveError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> ArchiveError {
        ArchiveError::Io {
            what: what.into(),
            source,
        }
    }
}
