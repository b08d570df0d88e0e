//! Outputs in the formats other tools read, written by an ffmpeg child
//! with the stream's own video copied (never re-encoded when the format
//! carries it):
//!
//! - `srt`: MPEG-TS over SRT, the node as listener (a player or OBS calls
//!   in; one caller at a time) or as caller (pushing to an SRT server),
//!   with latency and passphrase;
//! - `hls`: an HLS playlist and MPEG-TS segments in a directory, for a web
//!   server or CDN to serve;
//! - `push`: RTMP (FLV) or SRT to an existing media server, reconnecting.
//!
//! H.264 and H.265 streams are copied (RTMP takes H.264 only); any other
//! stream, and H.265 for RTMP, is taken as its `STREAM~h264` transcoding
//! output, encoded once in the node. ffmpeg reads Annex B access units on
//! its stdin from the first keyframe; after frames were lost it resumes at
//! the next keyframe, so a decoder never gets a picture whose reference
//! is missing. ffmpeg exits when its peer goes (a caller hangs up, a
//! server closes): it is started again with backoff, and the output's
//! label in `framewire stats` says what it is doing.

mod run;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use framewire_proto::Format;
use serde::Deserialize;

use crate::api::{SinkHost, SinkSpec};
use crate::config::{ConfigError, SinkKind};

/// Where an output's stream goes.
#[derive(Debug, Clone, PartialEq)]
pub enum MuxTarget {
    /// MPEG-TS over SRT.
    Srt {
        /// `srt://HOST:PORT` (a query of ffmpeg's SRT options may follow).
        url: String,
        /// Listen for a caller (true) or call out.
        listener: bool,
        /// SRT latency (the receiver's buffer), milliseconds.
        latency_ms: u32,
        /// Encryption passphrase (10 to 79 characters), if any.
        passphrase: Option<String>,
    },
    /// An HLS playlist (`index.m3u8`) and segments in a directory.
    Hls {
        dir: PathBuf,
        /// Target segment length, seconds (cut at keyframes).
        segment_s: f64,
        /// Segments listed (older ones are deleted).
        list_size: u32,
    },
    /// FLV over RTMP to a server.
    Rtmp {
        /// `rtmp://HOST[:PORT]/APP/KEY`.
        url: String,
    },
}

impl MuxTarget {
    /// Whether the output carries `format` as it is.
    pub(crate) fn carries(&self, format: Format) -> bool {
        match self {
            MuxTarget::Rtmp { .. } => format == Format::H264,
            _ => matches!(format, Format::H264 | Format::H265),
        }
    }

    /// How the output is named in statistics.
    fn label(&self) -> String {
        match self {
            MuxTarget::Srt { url, listener, .. } => {
                format!(
                    "sink:srt:{}{}",
                    strip_query(url),
                    if *listener { " (listener)" } else { "" }
                )
            }
            MuxTarget::Hls { dir, .. } => format!("sink:hls:{}", dir.display()),
            MuxTarget::Rtmp { url } => format!("sink:push:{}", redact_key(url)),
        }
    }

    /// ffmpeg's arguments: Annex B of `format` at `fps` on stdin, copied
    /// into the target's container.
    pub(crate) fn args(&self, format: Format, fps: f64) -> Vec<String> {
        let demuxer = if format == Format::H265 { "hevc" } else { "h264" };
        let mut a: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error"]
            .map(String::from)
            .to_vec();
        // Start at once: the first keyframe carries the parameter sets.
        a.extend(
            [
                "-fflags",
                "+genpts+nobuffer",
                "-probesize",
                "32768",
                "-analyzeduration",
                "0",
            ]
            .map(String::from),
        );
        a.extend([
            "-f".to_owned(),
            demuxer.to_owned(),
            "-framerate".to_owned(),
            format!("{fps}"),
        ]);
        a.extend(["-i", "pipe:0", "-map", "0:v:0", "-c:v", "copy"].map(String::from));
        match self {
            MuxTarget::Srt { .. } => {
                a.extend(["-f".to_owned(), "mpegts".to_owned(), self.srt_url()]);
            }
            MuxTarget::Hls {
                dir,
                segment_s,
                list_size,
            } => {
                a.extend(["-f".to_owned(), "hls".to_owned()]);
                a.extend(["-hls_time".to_owned(), format!("{segment_s}")]);
                a.extend(["-hls_list_size".to_owned(), list_size.to_string()]);
                // Numbered from the clock: a restarted ffmpeg never reuses a
                // name a cache may hold (segments are cached as immutable).
                a.extend(["-hls_start_number_source", "epoch_us"].map(String::from));
                a.extend(
                    [
                        "-hls_flags",
                        "delete_segments+independent_segments+omit_endlist+temp_file+discont_start",
                    ]
                    .map(String::from),
                );
                a.extend([
                    "-hls_segment_filename".to_owned(),
                    dir.join("segment-%06d.ts").display().to_string(),
                    dir.join("index.m3u8").display().to_string(),
                ]);
            }
            MuxTarget::Rtmp { url } => a.extend(["-f".to_owned(), "flv".to_owned(), url.clone()]),
        }
        a
    }

    /// `line` (what ffmpeg said) with the target's URL as it may be shown:
    /// a stream key or passphrase never reaches a log.
    pub(crate) fn redact(&self, line: &str) -> String {
        match self {
            MuxTarget::Srt { url, .. } => line
                .replace(&self.srt_url(), strip_query(url))
                .replace(url.as_str(), strip_query(url)),
            MuxTarget::Rtmp { url } => line.replace(url.as_str(), &redact_key(url)),
            MuxTarget::Hls { .. } => line.to_owned(),
        }
    }

    /// The SRT URL ffmpeg is given, with our options.
    fn srt_url(&self) -> String {
        let MuxTarget::Srt {
            url,
            listener,
            latency_ms,
            passphrase,
        } = self
        else {
            return String::new();
        };
        let mut q = vec![
            format!("mode={}", if *listener { "listener" } else { "caller" }),
            // ffmpeg takes SRT latency in microseconds.
            format!("latency={}", u64::from(*latency_ms) * 1000),
            "pkt_size=1316".to_owned(),
        ];
        if let Some(p) = passphrase {
            // ffmpeg reads the query as URL-encoded: `&` or `+` would cut it.
            q.push(format!("passphrase={}", percent(p)));
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{}", q.join("&"))
    }

    /// Whether ffmpeg waits for a peer before it reads its input (a writer
    /// blocked on it has not stalled).
    pub(crate) fn waits_for_peer(&self) -> bool {
        matches!(self, MuxTarget::Srt { listener: true, .. })
    }
}

/// `s` with every byte but unreserved ones (RFC 3986) as `%XX`.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `url` without its query (which may hold a passphrase).
fn strip_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(u, _)| u)
}

/// An RTMP URL without credentials (`user:pass@`) and without its last
/// path part (the stream key), as it may be shown.
fn redact_key(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = match rest.split_once('/') {
        Some((auth, path)) => match auth.rsplit_once('@') {
            Some((_, host)) => format!("…@{host}/{path}"),
            None => rest.to_owned(),
        },
        None => rest.to_owned(),
    };
    let trimmed = rest.trim_end_matches('/');
    let shown = match trimmed.rsplit_once('/') {
        Some((base, key)) if !key.is_empty() && base.contains('/') => format!("{base}/…"),
        _ => rest.clone(),
    };
    if scheme.is_empty() {
        shown
    } else {
        format!("{scheme}://{shown}")
    }
}

/// An output through an ffmpeg child (this module's doc).
#[derive(Debug, Clone)]
pub struct MuxSink {
    /// `srt`, `hls` or `push`.
    pub kind: &'static str,
    /// Where the stream goes.
    pub target: MuxTarget,
    /// The ffmpeg program.
    pub ffmpeg: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SrtKeys {
    url: Option<String>,
    listen: Option<bool>,
    latency: Option<u32>,
    passphrase: Option<String>,
    ffmpeg: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HlsKeys {
    dir: Option<PathBuf>,
    segment: Option<f64>,
    list_size: Option<u32>,
    ffmpeg: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushKeys {
    url: Option<String>,
    latency: Option<u32>,
    passphrase: Option<String>,
    ffmpeg: Option<PathBuf>,
}

fn keys<T: for<'de> Deserialize<'de>>(kind: &str, stream: &str, table: toml::Table) -> Result<T, ConfigError> {
    table
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::new(format!("{kind} sink of `{stream}`: {}", e.message())))
}

fn srt(url: String, listener: bool, latency: Option<u32>, passphrase: Option<String>) -> Result<MuxTarget, String> {
    if !url.starts_with("srt://") {
        return Err(format!("`{}` is not an srt:// URL", strip_query(&url)));
    }
    // Our own options: the URL's query may not set them (ffmpeg would take
    // the first, and the node would think it listens when it calls).
    if let Some((_, q)) = url.split_once('?') {
        for kv in q.split('&') {
            let k = kv.split_once('=').map_or(kv, |(k, _)| k);
            if matches!(k, "mode" | "passphrase" | "latency" | "pkt_size") {
                return Err(format!(
                    "set `{k}` with the sink's own keys (listen, passphrase, latency), not in the URL"
                ));
            }
        }
    }
    if let Some(p) = &passphrase
        && !(10..=79).contains(&p.chars().count())
    {
        return Err("an SRT passphrase has 10 to 79 characters".into());
    }
    let latency_ms = latency.unwrap_or(120);
    if latency_ms > 60_000 {
        return Err(format!("latency {latency_ms} ms: at most 60000"));
    }
    Ok(MuxTarget::Srt {
        url,
        listener,
        latency_ms,
        passphrase,
    })
}

fn sink(kind: &'static str, target: MuxTarget, ffmpeg: Option<PathBuf>) -> SinkKind {
    SinkKind::new(MuxSink {
        kind,
        target,
        ffmpeg: ffmpeg.unwrap_or_else(|| PathBuf::from("ffmpeg")),
    })
}

pub(super) fn srt_from_table(stream: &str, table: toml::Table) -> Result<SinkKind, ConfigError> {
    let k: SrtKeys = keys("srt", stream, table)?;
    let err = |m: String| ConfigError::new(format!("srt sink of `{stream}`: {m}"));
    let url = k.url.ok_or_else(|| err("needs url=srt://HOST:PORT".into()))?;
    // `mode` is the delivery mode, as for every sink.
    let target = srt(url, k.listen.unwrap_or(true), k.latency, k.passphrase).map_err(err)?;
    Ok(sink("srt", target, k.ffmpeg))
}

pub(super) fn hls_from_table(stream: &str, table: toml::Table) -> Result<SinkKind, ConfigError> {
    let k: HlsKeys = keys("hls", stream, table)?;
    let err = |m: &str| ConfigError::new(format!("hls sink of `{stream}`: {m}"));
    let dir = k.dir.ok_or_else(|| err("needs dir=DIRECTORY"))?;
    let segment_s = k.segment.unwrap_or(2.0);
    if !(0.5..=60.0).contains(&segment_s) {
        return Err(err("segment is 0.5 to 60 seconds"));
    }
    let list_size = k.list_size.unwrap_or(6);
    if !(2..=1000).contains(&list_size) {
        return Err(err("list_size is 2 to 1000 segments"));
    }
    Ok(sink(
        "hls",
        MuxTarget::Hls {
            dir,
            segment_s,
            list_size,
        },
        k.ffmpeg,
    ))
}

pub(super) fn push_from_table(stream: &str, table: toml::Table) -> Result<SinkKind, ConfigError> {
    let k: PushKeys = keys("push", stream, table)?;
    let err = |m: String| ConfigError::new(format!("push sink of `{stream}`: {m}"));
    let url = k.url.ok_or_else(|| err("needs url=rtmp://… or url=srt://…".into()))?;
    let target = if url.starts_with("rtmp://") || url.starts_with("rtmps://") {
        if k.latency.is_some() || k.passphrase.is_some() {
            return Err(err("latency and passphrase are for srt:// URLs".into()));
        }
        MuxTarget::Rtmp { url }
    } else if url.starts_with("srt://") {
        srt(url, false, k.latency, k.passphrase).map_err(err)?
    } else {
        return Err(err(format!(
            "`{}`: an rtmp:// or srt:// URL",
            redact_key(strip_query(&url))
        )));
    };
    Ok(sink("push", target, k.ffmpeg))
}

impl SinkSpec for MuxSink {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn label(&self) -> String {
        self.target.label()
    }

    fn run(&self, host: SinkHost) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(run::run(self.clone(), host))
    }
}

/// How long a write to ffmpeg may block before it is restarted (unless it
/// waits for a peer).
const STALL: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests;
