//! Compose: several streams on one canvas, at the source's own steady rate
//! whatever its inputs do (docs/compose.md).
//!
//! ```toml
//! [[source]]
//! kind = "compose"
//! name = "wall"
//! size = "1920x1080"      # default
//! fps = 30                # default
//! inputs = ["127.0.0.1:7400/cam1", "127.0.0.1:7401/cam2", "screen"]
//! layout = "grid"         # grid (default), pip, side-by-side, custom
//! format = "mjpeg"        # mjpeg (default, quality = 85), h264 (bitrate, gop), raw, raw-zstd, qoi
//! labels = true           # each tile captioned with its input's name
//! # layout = "custom": one [[source.tile]] per tile
//! # [[source.tile]]
//! # input = "cam1"
//! # rect = { x = 0, y = 0, w = 960, h = 540 }
//! # crop = { x = 0.0, y = 0.0, w = 1.0, h = 1.0 }
//! # z = 0, opacity = 1.0, fit = "keep", label = "CAM 1", border = 2, on_loss = "slate"
//! ```
//!
//! An input `ADDR/STREAM` is pulled from another node as one of this
//! node's own edges (low-latency, newest frame wins), served here as
//! `NAME.INPUT`; an input without an address is a stream of this node.
//! `INPUT=ADDR/STREAM` names an input; otherwise it is named after its
//! stream. The engine is `framewire_media::compose`.

mod run;

use framewire_codec::{ChromaSubsampling, EncodeSpec};
use framewire_media::compose::{Compositor, Layout, Preset, Tile};
use framewire_proto::PixelFormat;
use framewire_proto::control::StreamState;
use serde::Deserialize;

use super::{fps_fraction, jpeg_quality, keys, parse_size};
use crate::api::{SourceHost, SourceSpec};
use crate::config::{ConfigError, SourceConfig};
use crate::error::NetError;

/// Inputs at most.
pub(crate) const MAX_INPUTS: usize = 64;

/// One input: its name in the layout, and where its frames come from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InputSpec {
    pub(crate) name: String,
    /// `host:port` of another node, or `None` for a stream of this one.
    pub(crate) addr: Option<String>,
    pub(crate) stream: String,
}

/// A compose source, configured.
#[derive(Debug, Clone)]
pub(crate) struct ComposeConfig {
    pub(crate) name: String,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) fps_num: u32,
    pub(crate) fps_den: u32,
    pub(crate) inputs: Vec<InputSpec>,
    pub(crate) layout: Layout,
    pub(crate) encode: EncodeSpec,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum InputList {
    /// `a;b;c` (as the command line's spec writes it).
    Joined(String),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    name: String,
    #[serde(default = "default_size")]
    size: String,
    #[serde(default = "default_fps")]
    fps: f64,
    inputs: InputList,
    #[serde(default = "default_layout")]
    layout: String,
    #[serde(default)]
    tile: Vec<Tile>,
    #[serde(default = "default_format")]
    format: String,
    #[serde(default = "default_quality")]
    quality: u8,
    /// H.264 bit rate in bits per second; 0 (default): from the size.
    #[serde(default)]
    bitrate: u32,
    /// H.264 keyframe interval in frames.
    #[serde(default = "default_gop")]
    gop: u32,
    #[serde(default = "yes")]
    labels: bool,
}

fn default_gop() -> u32 {
    framewire_codec::DEFAULT_KEYFRAME_INTERVAL
}

fn default_size() -> String {
    "1920x1080".into()
}
fn default_fps() -> f64 {
    30.0
}
fn default_layout() -> String {
    "grid".into()
}
fn default_format() -> String {
    "mjpeg".into()
}
fn default_quality() -> u8 {
    85
}
fn yes() -> bool {
    true
}

/// `[NAME=][ADDR/]STREAM`.
fn parse_input(s: &str) -> Result<InputSpec, ConfigError> {
    let s = s.trim();
    let (name, rest) = match s.split_once('=') {
        Some((n, r)) => (Some(n.trim()), r.trim()),
        None => (None, s),
    };
    let (addr, stream) = match rest.split_once('/') {
        Some((a, st)) => (Some(a.to_owned()), st.to_owned()),
        None => (None, rest.to_owned()),
    };
    if stream.is_empty() || addr.as_deref() == Some("") || name == Some("") {
        return Err(ConfigError::new(format!(
            "compose input `{s}`: expected [NAME=][HOST:PORT/]STREAM"
        )));
    }
    framewire_proto::names::check(framewire_proto::names::NameKind::Stream, &stream)
        .map_err(|e| ConfigError::new(format!("compose input `{s}`: {e}")))?;
    Ok(InputSpec {
        name: name.map_or_else(|| stream.clone(), str::to_owned),
        addr,
        stream,
    })
}

pub(super) fn from_table(table: toml::Table) -> Result<SourceConfig, ConfigError> {
    let k: Keys = keys("compose", table)?;
    let bad = |why: String| ConfigError::new(format!("compose source `{}`: {why}", k.name));
    let (width, height) = parse_size(&k.size)?;
    let (fps_num, fps_den) = fps_fraction(k.fps)?;
    if k.fps <= 0.0 {
        return Err(bad("fps must be above 0: a compositor keeps its own rate".into()));
    }
    let listed: Vec<String> = match k.inputs {
        InputList::Joined(s) => s
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
            .collect(),
        InputList::List(v) => v,
    };
    if listed.is_empty() || listed.len() > MAX_INPUTS {
        return Err(bad(format!(
            "1 to {MAX_INPUTS} inputs are needed, got {}",
            listed.len()
        )));
    }
    let mut inputs: Vec<InputSpec> = Vec::new();
    for s in &listed {
        let i = parse_input(s)?;
        if inputs.iter().any(|o| o.name == i.name) {
            return Err(bad(format!(
                "two inputs are named `{}` (name one: NAME=ADDR/STREAM)",
                i.name
            )));
        }
        inputs.push(i);
    }
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let mut layout = match k.layout.as_str() {
        "custom" if k.tile.is_empty() => return Err(bad("layout = \"custom\" needs [[source.tile]] tables".into())),
        "custom" => Layout { tiles: k.tile },
        _ if !k.tile.is_empty() => return Err(bad("tiles are given: set layout = \"custom\"".into())),
        p => Layout::preset(p.parse::<Preset>().map_err(bad)?, width, height, &names),
    };
    if !k.labels {
        for t in &mut layout.tiles {
            t.label = None;
        }
    }
    // Refused now, with the reason, rather than when the node starts it.
    Compositor::new(width, height, names, layout.clone()).map_err(|e| bad(e.to_string()))?;
    let encode = match k.format.as_str() {
        "mjpeg" => EncodeSpec::mjpeg(jpeg_quality(k.quality)?).with_subsampling(ChromaSubsampling::S420),
        "qoi" => EncodeSpec::qoi(),
        "raw" => EncodeSpec::raw(PixelFormat::Yuv420p),
        "raw-zstd" => EncodeSpec::raw_zstd(PixelFormat::Yuv420p, 1),
        "h264" if (1..=3600).contains(&k.gop) => EncodeSpec::h264(k.bitrate, k.gop),
        "h264" => return Err(bad(format!("gop {} is out of range (1 to 3600 frames)", k.gop))),
        other => {
            return Err(bad(format!(
                "unknown format `{other}` (mjpeg, h264, qoi, raw, raw-zstd)"
            )));
        }
    };
    Ok(SourceConfig::new(ComposeConfig {
        name: k.name,
        width,
        height,
        fps_num,
        fps_den,
        inputs,
        layout,
        encode,
    }))
}

impl SourceSpec for ComposeConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "compose"
    }

    fn start(&self, host: SourceHost) -> Result<std::thread::JoinHandle<()>, NetError> {
        let fail = |reason: String| NetError::Source {
            kind: "compose",
            stream: self.name.clone(),
            reason,
        };
        let names = self.inputs.iter().map(|i| i.name.clone()).collect();
        let compositor =
            Compositor::new(self.width, self.height, names, self.layout.clone()).map_err(|e| fail(e.to_string()))?;
        let encoder = framewire_codec::Registry::builtin()
            .encoder(&self.encode)
            .map_err(|r| fail(r.to_string()))?;
        let open = encoder.stream_open(self.width, self.height, self.fps_num, self.fps_den, &self.name);
        let out = host.open(open, StreamState::Live)?;
        run::start(self.clone(), host, out, compositor, encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn inputs_are_named_and_checked() {
        let i = parse_input("127.0.0.1:7400/cam").unwrap();
        assert_eq!(
            (i.name.as_str(), i.addr.as_deref(), i.stream.as_str()),
            ("cam", Some("127.0.0.1:7400"), "cam")
        );
        let i = parse_input("left=host:7400/cam").unwrap();
        assert_eq!(i.name, "left");
        assert_eq!(parse_input("screen").unwrap().addr, None);
        assert!(parse_input("host:1/").is_err());
        let e = from_table(table("name = \"w\"\ninputs = \"a:1/cam;b:2/cam\"")).unwrap_err();
        assert!(e.to_string().contains("two inputs are named `cam`"), "{e}");
    }

    #[test]
    fn bad_layouts_are_refused_with_the_reason() {
        let e = from_table(table("name = \"w\"\ninputs = \"a\"\nlayout = \"mosaic\"")).unwrap_err();
        assert!(e.to_string().contains("unknown layout `mosaic`"), "{e}");
        let custom = "name = \"w\"\nsize = \"640x360\"\ninputs = [\"a\"]\nlayout = \"custom\"\n\
                      [[tile]]\ninput = \"b\"\nrect = { x = 0, y = 0, w = 64, h = 64 }\n";
        let e = from_table(table(custom)).unwrap_err();
        assert!(e.to_string().contains("no input is called `b`"), "{e}");
        let outside = custom
            .replace("input = \"b\"", "input = \"a\"")
            .replace("x = 0,", "x = 600,");
        let e = from_table(table(&outside)).unwrap_err();
        assert!(e.to_string().contains("outside the 640x360 canvas"), "{e}");
        assert!(from_table(table(&custom.replace("input = \"b\"", "input = \"a\""))).is_ok());
    }
}
