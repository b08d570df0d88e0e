//! The `file` source: a file of concatenated JPEG images, split into
//! frames when the node starts and replayed ([`super::replay`]).

use std::path::PathBuf;

use framewire_media::jpeg_split;
use framewire_proto::{Format, Origin, PixelFormat, StreamOpen};
use serde::Deserialize;

use super::replay::ReplayConfig;
use super::{fps_fraction, keys};
use crate::config::{ConfigError, SourceConfig};

/// The keys of a `file` source (docs/config.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    name: String,
    /// The file.
    path: PathBuf,
    /// Frames per second, default 30; 0 = as fast as possible.
    #[serde(default = "default_fps")]
    fps: f64,
    /// Start again at the end, default true.
    #[serde(default = "default_true", rename = "loop")]
    looped: bool,
}

/// The largest file a `file` source reads (it holds every picture in
/// memory): 1 GiB.
const MAX_FILE: u64 = 1 << 30;

fn default_fps() -> f64 {
    30.0
}
fn default_true() -> bool {
    true
}

pub(super) fn from_table(table: toml::Table) -> Result<SourceConfig, ConfigError> {
    let k: Keys = keys("file", table)?;
    let data = super::read_bounded(&k.path, MAX_FILE)
        .map_err(|e| ConfigError::new(format!("cannot read {}: {e}", k.path.display())))?;
    let (frames, stats) = jpeg_split::split_all(&data, jpeg_split::DEFAULT_MAX_IMAGE);
    if frames.is_empty() {
        return Err(ConfigError::new(format!(
            "{} holds no complete JPEG image",
            k.path.display()
        )));
    }
    let (width, height) = jpeg_size(&frames[0]).unwrap_or((0, 0));
    tracing::info!(
        path = %k.path.display(),
        frames = frames.len(),
        skipped_bytes = stats.skipped_bytes,
        discarded = stats.discarded_images,
        "file source loaded"
    );
    let (fps_num, fps_den) = fps_fraction(k.fps)?;
    Ok(ReplayConfig {
        open: StreamOpen {
            format: Format::Mjpeg,
            pixel_format: PixelFormat::None,
            origin: Origin::Unspecified,
            width,
            height,
            fps_num,
            fps_den,
            name: k.name,
            codec_config: Default::default(),
        },
        frames,
        fps: k.fps,
        looped: k.looped,
    }
    .into())
}

/// Width and height from a JPEG's SOF marker.
pub fn jpeg_size(jpeg: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xff {
            return None;
        }
        let code = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if matches!(code, 0xc0..=0xc3 | 0xc5..=0xc7 | 0xc9..=0xcb | 0xcd..=0xcf) {
            let s = jpeg.get(i + 5..i + 9)?;
            let h = u16::from_be_bytes([s[0], s[1]]);
            let w = u16::from_be_bytes([s[2], s[3]]);
            return Some((u32::from(w), u32::from(h)));
        }
        i += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(path: &str) -> toml::Table {
        toml::from_str(&format!("name = \"f\"\npath = \"{path}\"")).unwrap()
    }

    #[test]
    fn a_device_or_a_missing_file_is_a_clear_error() {
        let e = from_table(table("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("not a regular file"), "{e}");
        let e = from_table(table("/nonexistent/x.mjpeg")).unwrap_err().to_string();
        assert!(e.contains("cannot read /nonexistent/x.mjpeg"), "{e}");
        let e = from_table(table("/proc/self")).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
