//! Sources: the kinds of stream a node produces itself. Each kind is a
//! module implementing [`SourceSpec`](crate::api::SourceSpec) for its
//! configuration and one line in [`KINDS`], which builds it from a config
//! table (`[[source]]` in a node's file; `--source KIND:NAME,key=value`
//! becomes the same table).
//!
//! Sources that make frames themselves run on a thread of their own
//! (encoding is CPU work that must not stall the network tasks) and pace
//! themselves against the wall clock: frame `n` is due at `start + n /
//! rate`; a source that falls behind sends the next frame at once rather
//! than bunching up.

pub(crate) mod archive_play;
pub(crate) mod compose;
pub(crate) mod ffmpeg;
pub(crate) mod file;
pub(crate) mod handoff;
pub(crate) mod ingest;
pub(crate) mod replay;
#[cfg(feature = "rtsp")]
pub(crate) mod rtsp;
pub(crate) mod solid;
pub(crate) mod test_pattern;
pub(crate) mod v4l2;
pub(crate) mod x11;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_proto::FrameFlags;
use framewire_relay::Frame;

use crate::config::{ConfigError, SourceConfig};

/// A kind of source: its name and how a config table (without its `kind`
/// key) makes one.
#[derive(Debug, Clone, Copy)]
pub struct SourceKind {
    /// As `kind = "..."` writes it.
    pub name: &'static str,
    /// The table's other keys → the source.
    pub from_table: fn(toml::Table) -> Result<SourceConfig, ConfigError>,
    /// Whether a peer may start one at run time (SOURCE_ADD). Not for a
    /// kind that reads files: a path is for the node's own configuration.
    pub at_run_time: bool,
}

/// Every kind of source, by name.
pub const KINDS: &[SourceKind] = &[
    SourceKind {
        name: "test-pattern",
        from_table: test_pattern::from_table,
        at_run_time: true,
    },
    SourceKind {
        name: "file",
        from_table: file::from_table,
        at_run_time: false,
    },
    SourceKind {
        name: "v4l2",
        from_table: v4l2::from_table,
        at_run_time: true,
    },
    SourceKind {
        name: "x11",
        from_table: x11::from_table,
        at_run_time: true,
    },
    SourceKind {
        name: "ffmpeg",
        from_table: ffmpeg::from_table,
        at_run_time: false,
    },
    #[cfg(feature = "rtsp")]
    SourceKind {
        name: "rtsp",
        from_table: rtsp::from_table,
        at_run_time: false,
    },
    SourceKind {
        name: "solid",
        from_table: solid::from_table,
        at_run_time: true,
    },
    SourceKind {
        name: "archive",
        from_table: archive_play::from_table,
        // It reads only the node's own archives: a peer names a stream.
        at_run_time: true,
    },
    SourceKind {
        name: "compose",
        from_table: compose::from_table,
        at_run_time: true,
    },
];

/// A source from a config table: `kind = "..."` and that kind's keys.
pub fn from_table(table: toml::Table) -> Result<SourceConfig, ConfigError> {
    let whole = table.clone();
    let mut table = table;
    let kind = match table.remove("kind") {
        Some(toml::Value::String(k)) => k,
        _ => return Err(ConfigError::new("a source needs `kind = \"...\"`")),
    };
    let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
    let k = KINDS
        .iter()
        .find(|k| k.name == kind)
        .ok_or_else(|| ConfigError::new(format!("unknown source kind `{kind}` (kinds: {})", names.join(", "))))?;
    Ok((k.from_table)(table)?.with_table(whole))
}

/// Deserialises a kind's keys, naming the kind in the error.
pub(crate) fn keys<T: serde::de::DeserializeOwned>(kind: &str, table: toml::Table) -> Result<T, ConfigError> {
    table
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::new(format!("{kind} source: {}", e.message())))
}

/// `WxH` as two numbers.
pub fn parse_size(s: &str) -> Result<(u32, u32), ConfigError> {
    let bad = || ConfigError::new(format!("size `{s}` is not WIDTHxHEIGHT"));
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    Ok((w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?))
}

/// A rate as a fraction with millihertz precision.
pub(crate) fn fps_fraction(fps: f64) -> Result<(u32, u32), ConfigError> {
    if !(0.0..=100_000.0).contains(&fps) || fps.is_nan() {
        return Err(ConfigError::new(format!(
            "frame rate {fps} is out of range (0 to 100000)"
        )));
    }
    // Cannot truncate: fps <= 100000, so fps * 1000 < 2^32.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let num = (fps * 1000.0).round() as u32;
    Ok((num, 1000))
}

/// A JPEG quality, checked.
pub(crate) fn jpeg_quality(q: u8) -> Result<u8, ConfigError> {
    if (1..=100).contains(&q) {
        Ok(q)
    } else {
        Err(ConfigError::new(format!("JPEG quality {q} is out of range (1-100)")))
    }
}

/// A file a configuration names, read whole: a regular file of at most
/// `max` bytes (a path to a device such as `/dev/zero` or to a huge file
/// is an error, not a node that reads for ever).
pub(crate) fn read_bounded(path: &std::path::Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > max {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{} bytes, more than the {max} allowed", meta.len()),
        ));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("more than the {max} bytes allowed"),
        ));
    }
    Ok(data)
}

pub(crate) fn rate(num: u32, den: u32) -> f64 {
    if den == 0 { 0.0 } else { f64::from(num) / f64::from(den) }
}

/// A keyframe made now.
pub(crate) fn frame(data: Bytes, sequence: u64, timestamp_ns: u64) -> Frame {
    Frame {
        data,
        sequence,
        timestamp_ns,
        flags: FrameFlags::KEYFRAME,
    }
}

/// Runs `f` on a thread named for the stream.
pub(crate) fn spawn_thread(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, crate::error::NetError> {
    Ok(std::thread::Builder::new().name(format!("src:{name}")).spawn(f)?)
}

/// Calls `produce(seq)` for seq = 1, 2, ... at `fps` until it returns false
/// or `stop` is set. At `fps` 0 frame `seq` is made as soon as
/// `ready(seq)` says an output has room for it (`ready` waits for that).
pub(crate) fn paced(fps: f64, stop: &AtomicBool, ready: impl Fn(u64) -> bool, mut produce: impl FnMut(u64) -> bool) {
    let start = Instant::now();
    let period = if fps > 0.0 {
        Some(Duration::from_secs_f64(1.0 / fps))
    } else {
        None
    };
    let mut seq = 1u64;
    while !stop.load(Ordering::Relaxed) {
        if period.is_none() && !ready(seq) {
            continue;
        }
        if !produce(seq) {
            return;
        }
        if let Some(p) = period {
            // Due time of the next frame; u32 frames at >= 1 fps is years.
            let due = start + p.mul_f64(seq as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        seq += 1;
    }
}
