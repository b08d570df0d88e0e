//! The `test-pattern` source: moving colour bars with the frame number and
//! capture time drawn in (`framewire_media::testpattern`), encoded as
//! configured.

use std::cell::Cell;

use framewire_codec::{ChromaSubsampling, EncodeSpec};
use framewire_media::testpattern::{TestPattern, TestPatternConfig};
use framewire_proto::control::StreamState;
use framewire_proto::{FrameFlags, PixelFormat, StreamEvent};
use serde::Deserialize;
use tracing::{error, info};

use super::{fps_fraction, frame, jpeg_quality, keys, paced, parse_size, rate, spawn_thread};
use crate::api::{SourceHost, SourceSpec};
use crate::clock::now_ns;
use crate::config::{ConfigError, SourceConfig};
use crate::error::NetError;

/// The keys of a `test-pattern` source (docs/config.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    name: String,
    /// `WxH`, default `1280x720`.
    #[serde(default = "default_size")]
    size: String,
    /// Frames per second, default 30.
    #[serde(default = "default_fps")]
    fps: f64,
    /// `mjpeg` (default), `qoi`, `raw`, `raw-zstd`, `h264`.
    #[serde(default = "default_format")]
    format: String,
    /// Raw pixel layout: `bgra` (default), `rgba`, `bgr`, `yuv420p`, `yuyv422`.
    #[serde(default = "default_pixel_format")]
    pixel_format: String,
    /// JPEG quality 1-100, default 85.
    #[serde(default = "default_quality")]
    quality: u8,
    /// zstd level, default 1.
    #[serde(default = "default_zstd_level")]
    zstd_level: i32,
    /// H.264 bit rate in bits per second; default 0 (from the size).
    #[serde(default)]
    bitrate: u32,
    /// H.264 keyframe interval in frames, default 60.
    #[serde(default = "default_gop")]
    gop: u32,
}

fn default_gop() -> u32 {
    framewire_codec::DEFAULT_KEYFRAME_INTERVAL
}

fn default_size() -> String {
    "1280x720".into()
}
fn default_fps() -> f64 {
    30.0
}
fn default_format() -> String {
    "mjpeg".into()
}
fn default_pixel_format() -> String {
    "bgra".into()
}
fn default_quality() -> u8 {
    85
}
fn default_zstd_level() -> i32 {
    1
}

pub(super) fn from_table(table: toml::Table) -> Result<SourceConfig, ConfigError> {
    let k: Keys = keys("test-pattern", table)?;
    let (width, height) = parse_size(&k.size)?;
    let (fps_num, fps_den) = fps_fraction(k.fps)?;
    let pf = PixelFormat::from_label(&k.pixel_format).ok_or_else(|| {
        ConfigError::new(format!(
            "unknown pixel format `{}` (bgra, rgba, bgr, yuv420p, yuyv422)",
            k.pixel_format
        ))
    })?;
    let encode = match k.format.as_str() {
        "mjpeg" => EncodeSpec::mjpeg(jpeg_quality(k.quality)?).with_subsampling(ChromaSubsampling::S420),
        "qoi" => EncodeSpec::qoi(),
        "raw" => EncodeSpec::raw(pf),
        "raw-zstd" => EncodeSpec::raw_zstd(pf, k.zstd_level),
        "h264" if (1..=3600).contains(&k.gop) => EncodeSpec::h264(k.bitrate, k.gop),
        "h264" => {
            return Err(ConfigError::new(format!(
                "test pattern `{}`: gop {} is out of range (1 to 3600 frames)",
                k.name, k.gop
            )));
        }
        other => {
            return Err(ConfigError::new(format!(
                "test pattern `{}`: unknown format `{other}` (mjpeg, qoi, raw, raw-zstd, h264)",
                k.name
            )));
        }
    };
    Ok(TestPatternConfig {
        name: k.name,
        width,
        height,
        fps_num,
        fps_den,
        encode,
    }
    .into())
}

impl From<TestPatternConfig> for SourceConfig {
    fn from(c: TestPatternConfig) -> SourceConfig {
        SourceConfig::new(c)
    }
}

impl SourceSpec for TestPatternConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "test-pattern"
    }

    fn start(&self, host: SourceHost) -> Result<std::thread::JoinHandle<()>, NetError> {
        let mut pattern = TestPattern::new(self.clone()).map_err(|e| NetError::Source {
            kind: "test",
            stream: self.name.clone(),
            reason: e.to_string(),
        })?;
        let out = host.open(pattern.stream_open().clone(), StreamState::Live)?;
        let fps = rate(self.fps_num, self.fps_den);
        info!(stream = %self.name, width = self.width, height = self.height, fps, format = %self.encode.format, "test pattern");
        let stop = host.stop_flag();
        let inter = self.encode.format.is_inter_coded();
        spawn_thread(&self.name, move || {
            // An H.264 pattern makes a keyframe when a subscriber asks.
            let requests = inter.then(|| out.keyframe_requests());
            let mut announced = pattern.stream_open().codec_config.clone();
            // The next frame's size is not known before it is encoded:
            // the last one's stands in for it.
            let last_len = Cell::new(0usize);
            paced(
                fps,
                &stop,
                |_| out.wait_room(last_len.get(), &stop),
                |seq| {
                    let ts = now_ns();
                    if requests.as_ref().is_some_and(|r| r.take()) {
                        pattern.force_keyframe();
                    }
                    match pattern.frame(seq, ts) {
                        Ok(data) => {
                            last_len.set(data.len());
                            // The encoder learns its parameter sets with its first keyframe.
                            if pattern.stream_open().codec_config != announced {
                                announced = pattern.stream_open().codec_config.clone();
                                out.event(StreamEvent::FormatChanged(pattern.stream_open().clone()));
                            }
                            let mut f = frame(data, seq, ts);
                            if !pattern.keyframe() {
                                f.flags = FrameFlags::default();
                            }
                            out.push(f);
                            true
                        }
                        Err(e) => {
                            error!(stream = %out.name(), error = %e, "test pattern stopped");
                            false
                        }
                    }
                },
            );
        })
    }
}
