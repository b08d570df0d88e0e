//! Solid: one colour, raw BGRA, at a steady rate. The smallest source
//! there is (a frame made once, then shared), for checking a path end to
//! end and for showing how a kind is written (docs/architecture.md).
//!
//! ```toml
//! [[source]]
//! kind = "solid"
//! name = "grey"
//! size = "64x48"     # default
//! fps = 10           # default
//! color = "808080"   # RRGGBB, default
//! ```

use bytes::Bytes;
use framewire_proto::control::StreamState;
use framewire_proto::{Format, Origin, PixelFormat, StreamOpen};
use serde::Deserialize;

use super::{fps_fraction, frame, keys, paced, parse_size, spawn_thread};
use crate::api::{SourceHost, SourceSpec};
use crate::clock::now_ns;
use crate::config::{ConfigError, SourceConfig};
use crate::error::NetError;

/// The largest side of a picture (a frame is made once and kept).
const MAX_SIDE: u32 = 8192;

/// A solid-colour source, configured.
#[derive(Debug, Clone)]
pub(crate) struct SolidConfig {
    /// The stream's name.
    pub(crate) name: String,
    /// Picture width, pixels.
    pub(crate) width: u32,
    /// Picture height, pixels.
    pub(crate) height: u32,
    /// Frames per second (0: as fast as a subscriber takes them).
    pub(crate) fps: f64,
    /// The colour: blue, green, red.
    pub(crate) bgr: [u8; 3],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    name: String,
    #[serde(default = "default_size")]
    size: String,
    #[serde(default = "default_fps")]
    fps: f64,
    #[serde(default = "default_color")]
    color: String,
}

fn default_size() -> String {
    "64x48".into()
}

fn default_fps() -> f64 {
    10.0
}

fn default_color() -> String {
    "808080".into()
}

/// `kind = "solid"`: its keys → the source.
pub(super) fn from_table(table: toml::Table) -> Result<SourceConfig, ConfigError> {
    let k: Keys = keys("solid", table)?;
    let (width, height) = parse_size(&k.size)?;
    if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
        return Err(ConfigError::new(format!(
            "solid source: size {width}x{height} is out of range (1 to {MAX_SIDE} each side)"
        )));
    }
    fps_fraction(k.fps)?;
    let rgb = u32::from_str_radix(&k.color, 16)
        .ok()
        .filter(|_| k.color.len() == 6)
        .ok_or_else(|| ConfigError::new(format!("solid source: color `{}` is not RRGGBB", k.color)))?;
    let [_, r, g, b] = rgb.to_be_bytes();
    Ok(SourceConfig::new(SolidConfig {
        name: k.name,
        width,
        height,
        fps: k.fps,
        bgr: [b, g, r],
    }))
}

impl SourceSpec for SolidConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "solid"
    }

    fn start(&self, host: SourceHost) -> Result<std::thread::JoinHandle<()>, NetError> {
        let (fps_num, fps_den) = fps_fraction(self.fps).map_err(|e| NetError::Source {
            kind: "solid",
            stream: self.name.clone(),
            reason: e.to_string(),
        })?;
        let open = StreamOpen {
            format: Format::Raw,
            pixel_format: PixelFormat::Bgra,
            origin: Origin::Unspecified,
            width: self.width,
            height: self.height,
            fps_num,
            fps_den,
            name: self.name.clone(),
            codec_config: Default::default(),
        };
        let out = host.open(open, StreamState::Live)?;
        let [b, g, r] = self.bgr;
        let pixels = (self.width as usize) * (self.height as usize);
        let picture = Bytes::from([b, g, r, 255].repeat(pixels));
        let (fps, stop) = (self.fps, host.stop_flag());
        spawn_thread(&self.name, move || {
            paced(
                fps,
                &stop,
                |_| out.wait_room(picture.len(), &stop),
                |seq| {
                    out.push(frame(picture.clone(), seq, now_ns()));
                    true
                },
            );
        })
    }
}
