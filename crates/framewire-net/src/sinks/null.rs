//! The `null` sink: takes every frame and keeps none (benchmarks, demos:
//! the output's counters are what it is for).

use std::future::Future;
use std::pin::Pin;

use crate::api::{SinkHost, SinkSpec};
use crate::config::{ConfigError, SinkKind};

/// Counts and discards.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl SinkKind {
    /// A sink that takes every frame and keeps none.
    pub fn null() -> SinkKind {
        SinkKind::new(NullSink)
    }
}

pub(super) fn from_table(stream: &str, table: toml::Table) -> Result<SinkKind, ConfigError> {
    super::no_keys("null", stream, &table)?;
    Ok(SinkKind::null())
}

impl SinkSpec for NullSink {
    fn kind(&self) -> &'static str {
        "null"
    }

    fn label(&self) -> String {
        "sink:null".into()
    }

    fn run(&self, host: SinkHost) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(super::write_frames(host, Box::new(tokio::io::sink())))
    }
}
