//! Local sinks: consumers inside the node, each fed by a relay output of
//! its own like any subscriber. Each kind is a module implementing
//! [`SinkSpec`](crate::api::SinkSpec) and one line in [`KINDS`]:
//!
//! - `null`: counts frames (benchmarks, demos);
//! - `file`: appends each frame's bytes to a file (an MJPEG stream's file
//!   is a `.mjpeg` that players open);
//! - `stdout`: writes each frame's bytes to standard output, for
//!   `framewire node … | ffmpeg -f rawvideo …`;
//! - `archive`: hands each frame to a `framewire-archive` archiver
//!   (ffmpeg subprocess, segments, SQLite index);
//! - `ring`: writes each frame into a shared-memory ring that programs
//!   outside framewire read without the protocol (docs/shm.md);
//! - `srt`, `hls`, `push`: the stream as MPEG-TS over SRT, an HLS
//!   directory, or RTMP/SRT to a server, through an ffmpeg child
//!   (docs/outputs.md).

pub(crate) mod archive;
pub(crate) mod archive_export;
pub(crate) mod archive_list;
pub(crate) mod file;
pub(crate) mod mux;
pub(crate) mod null;
pub(crate) mod ring;
pub(crate) mod stdout;

use std::time::Duration;

use framewire_proto::DeliveryMode;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tracing::{info, warn};

use crate::api::SinkHost;
use crate::config::{ConfigError, Delivery, SINK_FINALIZE_GRACE, SinkConfig, SinkKind};

/// A kind of sink: its name and how the table's own keys (without `kind`,
/// `stream` and the delivery keys) make one for a stream.
#[derive(Debug, Clone, Copy)]
pub struct SinkKindEntry {
    /// As `kind = "..."` writes it.
    pub name: &'static str,
    /// The stream's name and the kind's keys → the sink.
    pub from_table: fn(&str, toml::Table) -> Result<SinkKind, ConfigError>,
    /// Its delivery mode unless `mode` says otherwise.
    pub default_mode: DeliveryMode,
}

/// Every kind of sink, by name.
pub const KINDS: &[SinkKindEntry] = &[
    SinkKindEntry {
        name: "null",
        from_table: null::from_table,
        default_mode: DeliveryMode::Completeness,
    },
    SinkKindEntry {
        name: "file",
        from_table: file::from_table,
        default_mode: DeliveryMode::Completeness,
    },
    SinkKindEntry {
        name: "stdout",
        from_table: stdout::from_table,
        default_mode: DeliveryMode::Completeness,
    },
    SinkKindEntry {
        name: "archive",
        from_table: archive::from_table,
        default_mode: DeliveryMode::Completeness,
    },
    SinkKindEntry {
        name: "ring",
        from_table: ring::from_table,
        default_mode: DeliveryMode::Completeness,
    },
    SinkKindEntry {
        name: "srt",
        from_table: mux::srt_from_table,
        default_mode: DeliveryMode::Completeness,
    },
    SinkKindEntry {
        name: "hls",
        from_table: mux::hls_from_table,
        default_mode: DeliveryMode::Completeness,
    },
    SinkKindEntry {
        name: "push",
        from_table: mux::push_from_table,
        default_mode: DeliveryMode::Completeness,
    },
];

/// A sink from a config table: `kind`, `stream`, how to subscribe (the
/// kind's default mode unless `mode` says otherwise), and the kind's keys.
pub fn from_table(table: toml::Table) -> Result<SinkConfig, ConfigError> {
    from_table_with(table, &[])
}

/// As [`from_table`], knowing also the kinds of `extra` (sinks a program
/// built on this crate adds, such as `framewire`'s viewer window).
pub fn from_table_with(mut table: toml::Table, extra: &[SinkKindEntry]) -> Result<SinkConfig, ConfigError> {
    let text = |t: &mut toml::Table, key: &str| match t.remove(key) {
        Some(toml::Value::String(s)) => Ok(s),
        _ => Err(ConfigError::new(format!("a sink needs `{key} = \"...\"`"))),
    };
    let kind = text(&mut table, "kind")?;
    let stream = text(&mut table, "stream")?;
    let mut delivery = toml::Table::new();
    for k in Delivery::KEYS {
        if let Some(v) = table.remove(*k) {
            delivery.insert((*k).to_owned(), v);
        }
    }
    let delivery: Delivery = delivery
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::new(format!("sink of `{stream}`: {}", e.message())))?;
    let names: Vec<&str> = KINDS.iter().chain(extra).map(|k| k.name).collect();
    let k = KINDS.iter().chain(extra).find(|k| k.name == kind).ok_or_else(|| {
        ConfigError::new(format!(
            "sink of `{stream}`: unknown kind `{kind}` ({})",
            names.join(", ")
        ))
    })?;
    Ok(SinkConfig {
        kind: (k.from_table)(&stream, table)?,
        params: delivery.params(k.default_mode)?,
        stream,
    })
}

/// A kind without keys of its own refuses any.
pub(crate) fn no_keys(kind: &str, stream: &str, table: &toml::Table) -> Result<(), ConfigError> {
    match table.keys().next() {
        None => Ok(()),
        Some(k) => Err(ConfigError::new(format!(
            "sink of `{stream}`: kind `{kind}` takes no key `{k}`"
        ))),
    }
}

/// Waits for sink tasks to end, at most [`SINK_FINALIZE_GRACE`] in all.
pub(crate) async fn wait_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    let deadline = tokio::time::Instant::now() + SINK_FINALIZE_GRACE;
    for t in tasks {
        let abort = t.abort_handle();
        if tokio::time::timeout_at(deadline, t).await.is_err() {
            warn!("a sink did not finish within {SINK_FINALIZE_GRACE:?}; stopped");
            abort.abort();
        }
    }
}

/// Writes each frame's bytes to `out` for as long as the node runs,
/// attaching again when the stream goes and comes back.
pub(crate) async fn write_frames(host: SinkHost, mut out: Box<dyn AsyncWrite + Unpin + Send>) {
    let mut stop = host.stopping();
    let label = host.label.clone();
    while let Some(input) = host.attach().await {
        info!(stream = %host.stream(), sink = %label, "sink attached");
        loop {
            match input.poll() {
                Some(tx) => {
                    if let Err(e) = out.write_all(&tx.frame.data).await {
                        warn!(sink = %label, error = %e, "sink write failed; sink stopped");
                        return;
                    }
                    input.sent();
                }
                None => {
                    let _ = out.flush().await;
                    if !input.attached() {
                        break; // the stream went away; wait for it again
                    }
                    tokio::select! {
                        () = input.ready(Duration::from_millis(200)) => {}
                        _ = stop.changed() => {}
                    }
                    if *stop.borrow() {
                        let _ = out.flush().await;
                        return;
                    }
                }
            }
        }
    }
    let _ = out.flush().await;
}
