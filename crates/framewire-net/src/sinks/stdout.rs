//! The `stdout` sink: each frame's bytes to standard output, for
//! `framewire node ... | ffmpeg -f rawvideo ...`.

use std::future::Future;
use std::pin::Pin;

use crate::api::{SinkHost, SinkSpec};
use crate::config::{ConfigError, SinkKind};

/// Writes to standard output.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdoutSink;

impl SinkKind {
    /// A sink that writes each frame's bytes to standard output.
    pub fn stdout() -> SinkKind {
        SinkKind::new(StdoutSink)
    }
}

pub(super) fn from_table(stream: &str, table: toml::Table) -> Result<SinkKind, ConfigError> {
    super::no_keys("stdout", stream, &table)?;
    Ok(SinkKind::stdout())
}

impl SinkSpec for StdoutSink {
    fn kind(&self) -> &'static str {
        "stdout"
    }

    fn label(&self) -> String {
        "sink:stdout".into()
    }

    fn run(&self, host: SinkHost) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(super::write_frames(host, Box::new(tokio::io::stdout())))
    }
}
