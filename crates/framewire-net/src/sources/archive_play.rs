//! The `archive` source: a range of one of the node's own recordings
//! played as a live stream at its recorded rate, its frames as they were
//! stored (MJPEG, H.264, H.265: nothing decoded). Built on the `ffmpeg`
//! source: the range's segments go to ffmpeg's concat demuxer (with
//! in- and out-points), read in real time (`-re`).
//!
//! ```toml
//! [[source]]
//! kind = "archive"
//! name = "replay"
//! stream = "cam"                    # a stream this node archives
//! from = "2026-12-04T21:00:00Z"     # RFC 3339 or unix seconds
//! to = "2026-12-04T21:05:00Z"
//! ```
//!
//! Only the node's own archive sinks are read (a peer names a stream,
//! never a path), so a peer may start one at run time. At the range's end
//! the stream is *interrupted* (end of input) and plays again from its
//! start, like a looped file.

use std::path::PathBuf;

use framewire_archive::time::parse_time;
use framewire_media::h26x::Codec;
use serde::Deserialize;

use super::ffmpeg::FfmpegConfig;
use super::ingest::Payload;
use super::keys;
use crate::api::{SourceHost, SourceSpec};
use crate::config::{ConfigError, SourceConfig};
use crate::error::NetError;
use crate::sinks::archive_list::{Archives, private_temp, range_list};

/// A range of a recording, to play.
#[derive(Debug, Clone)]
pub(crate) struct ArchivePlayConfig {
    name: String,
    stream: String,
    from_ns: u64,
    to_ns: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    name: String,
    stream: String,
    from: toml::Value,
    to: toml::Value,
}

/// A time key: RFC 3339 text, or unix seconds as a number or text.
fn time(key: &str, v: &toml::Value) -> Result<u64, ConfigError> {
    let e = |m: String| ConfigError::new(format!("archive source: `{key}`: {m}"));
    match v {
        toml::Value::String(s) => parse_time(s).map_err(e),
        toml::Value::Integer(i) => u64::try_from(*i)
            .map(|s| s.saturating_mul(1_000_000_000))
            .map_err(|_| e(format!("{i} is before 1970"))),
        toml::Value::Float(f) if *f >= 0.0 => parse_time(&f.to_string()).map_err(e),
        other => Err(e(format!("{other} is not a time"))),
    }
}

/// `kind = "archive"`: its keys → the source.
pub(super) fn from_table(table: toml::Table) -> Result<SourceConfig, ConfigError> {
    let k: Keys = keys("archive", table)?;
    let (from_ns, to_ns) = (time("from", &k.from)?, time("to", &k.to)?);
    if to_ns <= from_ns {
        return Err(ConfigError::new("archive source: `to` must be after `from`"));
    }
    Ok(SourceConfig::new(ArchivePlayConfig {
        name: k.name,
        stream: k.stream,
        from_ns,
        to_ns,
    }))
}

impl ArchivePlayConfig {
    /// The concat list of the range's segments and the codec they hold.
    fn plan(&self, archives: &Archives) -> Result<(String, Payload), String> {
        let dir = archives
            .dir_of(&self.stream)
            .ok_or_else(|| format!("this node archives no stream named `{}`", self.stream))?;
        let (list, codec) = range_list(dir, &self.stream, self.from_ns, self.to_ns)?;
        let payload = match codec.as_str() {
            "mjpeg" => Payload::Jpeg,
            "h264" => Payload::Video(Codec::H264),
            "hevc" | "h265" => Payload::Video(Codec::H265),
            other => {
                return Err(format!(
                    "`{}` is recorded as {other}: only MJPEG, H.264 and H.265 recordings play back",
                    self.stream
                ));
            }
        };
        Ok((list, payload))
    }
}

impl SourceSpec for ArchivePlayConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "archive"
    }

    fn start(&self, host: SourceHost) -> Result<std::thread::JoinHandle<()>, NetError> {
        let archives = host.extension::<Archives>().unwrap_or_default();
        let (list, payload) = self
            .plan(&archives)
            .map_err(|m| NetError::Config(ConfigError::new(format!("archive source `{}`: {m}", self.name))))?;
        let path = private_temp("play", "ffconcat", list.as_bytes())
            .map_err(|e| NetError::Config(ConfigError::new(format!("archive source: a temporary file: {e}"))))?;
        let ffmpeg = FfmpegConfig {
            name: self.name.clone(),
            input: path.display().to_string(),
            input_format: Some("concat".into()),
            payload,
            decode: false,
            qscale: 2,
            listen: false,
            realtime: true,
            looped: false,
            stall: std::time::Duration::from_secs(10),
            ffmpeg: PathBuf::from("ffmpeg"),
            rtsp_transport: None,
            input_options: ["-safe", "0", "-protocol_whitelist", "file"].map(String::from).to_vec(),
        };
        let runner = match ffmpeg.start(host) {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        // The list goes when the source stops.
        super::spawn_thread(&format!("{}-list", self.name), move || {
            let _ = runner.join();
            let _ = std::fs::remove_file(&path);
        })
    }
}
