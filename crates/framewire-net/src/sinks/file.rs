//! The `file` sink: appends each frame's bytes to a file (an MJPEG
//! stream's file is a `.mjpeg` that players open).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use serde::Deserialize;
use tracing::warn;

use crate::api::{SinkHost, SinkSpec};
use crate::config::{ConfigError, SinkKind};

/// Appends to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSink {
    /// The file (created if missing, appended to).
    pub path: PathBuf,
}

impl SinkKind {
    /// A sink that appends each frame's bytes to `path`.
    pub fn file(path: impl Into<PathBuf>) -> SinkKind {
        SinkKind::new(FileSink { path: path.into() })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    path: Option<PathBuf>,
}

pub(super) fn from_table(stream: &str, table: toml::Table) -> Result<SinkKind, ConfigError> {
    let k: Keys = table
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::new(format!("sink of `{stream}`: {}", e.message())))?;
    let path = k
        .path
        .ok_or_else(|| ConfigError::new(format!("sink of `{stream}`: kind `file` needs a path")))?;
    Ok(SinkKind::file(path))
}

impl SinkSpec for FileSink {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn label(&self) -> String {
        format!("sink:file:{}", self.path.display())
    }

    fn run(&self, host: SinkHost) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let path = self.path.clone();
        Box::pin(async move {
            match tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .await
            {
                Ok(f) => super::write_frames(host, Box::new(tokio::io::BufWriter::with_capacity(1 << 20, f))).await,
                Err(e) => warn!(path = %path.display(), error = %e, "sink cannot open its file; not started"),
            }
        })
    }
}
