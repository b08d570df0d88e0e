//! V4L2 capture sources inside a node, and the V4L2 control commands
//! (LIST_DEVICES, LIST_CONTROLS, GET_CONTROLS, SET_CONTROLS).
//!
//! A capture source runs on a thread of its own:
//!
//! - **on demand** (the default) it opens the device only while its
//!   stream has at least one subscriber, and closes it `linger` after the
//!   last one leaves; otherwise it keeps the device open all the time. The
//!   stream is listed (state *idle*) while the device is closed.
//! - each dequeued buffer goes through [`framewire_media::v4l2::FrameMaker`]
//!   (MJPEG as-is, raw, raw+zstd, or MJPEG-encoded) and is pushed into the
//!   relay with the buffer's capture time mapped to the wall clock; wire
//!   sequence numbers skip where the driver's do, so gaps show frames lost
//!   at the source.
//! - on `ENODEV`, `EIO` or a vanished node it emits *interrupted*
//!   (reason device-lost), releases buffers and fd, retries with bounded
//!   exponential backoff, and when the device is back re-applies format and
//!   controls, emits *resumed*, and marks the next frame with the
//!   discontinuity flag. After `fail_after` without the device the stream
//!   is reported *failed*; retrying goes on at the slowest rate.
//!
//! Control commands open the device on a short-lived fd of their own
//! (V4L2 controls are device state, shared by every opener, so this works
//! while the capture thread streams). Values set remotely are remembered
//! per device and re-applied when a lost device comes back.

#[cfg(all(feature = "v4l2", target_os = "linux"))]
mod capture;
#[cfg(all(feature = "v4l2", target_os = "linux"))]
mod commands;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use framewire_proto::control::ControlValue;

use crate::config::{ConfigError, SourceConfig};

/// How a V4L2 source puts frames on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V4l2Output {
    /// As the device gives them: MJPEG as-is, raw formats raw.
    Native,
    /// Raw pixels.
    Raw,
    /// Raw pixels compressed with zstd at this level.
    RawZstd(i32),
    /// MJPEG: as-is from an MJPEG device, encoded at this quality otherwise.
    Mjpeg(u8),
}

/// A V4L2 capture source.
#[derive(Debug, Clone)]
pub struct V4l2SourceConfig {
    /// Stream name.
    pub name: String,
    /// Device node, e.g. `/dev/video0`.
    pub device: PathBuf,
    /// Device pixel format as a fourcc (`MJPG`, `YUYV`, ...); `None` = auto.
    pub pixel_format: Option<u32>,
    /// Capture size; `None` = 640x480 if offered.
    pub size: Option<(u32, u32)>,
    /// Frames per second; `None` = the driver's current rate.
    pub fps: Option<f64>,
    /// Wire format.
    pub output: V4l2Output,
    /// Driver buffers to request.
    pub buffers: u32,
    /// Open the device only while the stream has subscribers.
    pub on_demand: bool,
    /// How long an on-demand device stays open after its last subscriber left.
    pub linger: Duration,
    /// Longest wait between reopen attempts after the device was lost.
    pub retry_max: Duration,
    /// Time without the device after which the stream is reported failed.
    pub fail_after: Duration,
    /// Recover JPEG frame boundaries from the byte stream (devices that
    /// split or join frames); off by default.
    pub mjpeg_scan: bool,
    /// Draw each frame's capture time into it as a time code (raw device
    /// formats only; docs/latency.md).
    pub timecode: bool,
    /// Controls applied at every open, by name (matched like the CLI).
    pub controls: Vec<(String, i64)>,
}

/// Defaults of [`V4l2SourceConfig`].
pub const V4L2_DEFAULT_BUFFERS: u32 = 4;
/// Default linger of an on-demand device.
pub const V4L2_DEFAULT_LINGER: Duration = Duration::from_secs(5);
/// Default cap of the reopen backoff.
pub const V4L2_DEFAULT_RETRY_MAX: Duration = Duration::from_secs(2);
/// Default time after which a lost device is reported failed.
pub const V4L2_DEFAULT_FAIL_AFTER: Duration = Duration::from_secs(30);
/// First wait before reopening a lost device (doubles up to `retry_max`).
#[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
pub(crate) const V4L2_RETRY_FIRST: Duration = Duration::from_millis(50);

impl V4l2SourceConfig {
    /// A source for `device` named `name` with every default.
    pub fn new(name: &str, device: impl Into<PathBuf>) -> V4l2SourceConfig {
        V4l2SourceConfig {
            name: name.to_owned(),
            device: device.into(),
            pixel_format: None,
            size: None,
            fps: None,
            output: V4l2Output::Native,
            buffers: V4L2_DEFAULT_BUFFERS,
            on_demand: true,
            linger: V4L2_DEFAULT_LINGER,
            retry_max: V4L2_DEFAULT_RETRY_MAX,
            fail_after: V4L2_DEFAULT_FAIL_AFTER,
            mjpeg_scan: false,
            timecode: false,
            controls: Vec::new(),
        }
    }
}

/// The keys of a `v4l2` source (docs/config.md, docs/v4l2.md).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    name: String,
    /// Device node, default `/dev/video0`.
    #[serde(default = "default_device")]
    device: PathBuf,
    /// Device pixel format, a fourcc (`MJPG`, `YUYV`, `NV12`, ...); default `auto`.
    pixel_format: Option<String>,
    /// `WxH`; default 640x480 if offered.
    size: Option<String>,
    /// Frames per second; default: the driver's current rate.
    fps: Option<f64>,
    /// `native` (default), `raw`, `raw-zstd`, `mjpeg`.
    #[serde(default = "default_native")]
    format: String,
    /// JPEG quality for `mjpeg` from a raw device, default 85.
    #[serde(default = "default_quality")]
    quality: u8,
    /// zstd level for `raw-zstd`, default 1.
    #[serde(default = "default_zstd_level")]
    zstd_level: i32,
    /// Driver buffers, default 4.
    buffers: Option<u32>,
    /// Open the device only while someone subscribes, default true.
    on_demand: Option<bool>,
    /// Seconds an on-demand device stays open after the last subscriber, default 5.
    linger: Option<f64>,
    /// Longest wait between reopen attempts after a loss, seconds, default 2.
    retry_max: Option<f64>,
    /// Seconds without the device before the stream is reported failed, default 30.
    fail_after: Option<f64>,
    /// Recover JPEG frames from a byte stream (misbehaving devices), default false.
    #[serde(default)]
    mjpeg_scan: bool,
    /// Draw the capture time into every frame as a time code, default false.
    #[serde(default)]
    timecode: bool,
    /// Controls applied at every open: `name = value`.
    #[serde(default)]
    controls: std::collections::BTreeMap<String, i64>,
}

fn default_device() -> PathBuf {
    PathBuf::from("/dev/video0")
}
fn default_native() -> String {
    "native".into()
}
fn default_quality() -> u8 {
    85
}
fn default_zstd_level() -> i32 {
    1
}

fn seconds(what: &str, v: Option<f64>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) if (0.0..=86_400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(ConfigError::new(format!(
            "{what} = {s} is out of range (0 to 86400 seconds)"
        ))),
    }
}

pub(super) fn from_table(table: toml::Table) -> Result<SourceConfig, ConfigError> {
    let k: Keys = super::keys("v4l2", table)?;
    let mut c = V4l2SourceConfig::new(&k.name, k.device);
    c.pixel_format = match k.pixel_format.as_deref() {
        None | Some("auto") => None,
        Some(f) if (1..=4).contains(&f.len()) && f.is_ascii() => {
            let mut b = [b' '; 4];
            b[..f.len()].copy_from_slice(f.as_bytes());
            Some(u32::from_le_bytes(b))
        }
        Some(f) => {
            return Err(ConfigError::new(format!(
                "v4l2 source `{}`: pixel_format `{f}` is not a fourcc (MJPG, YUYV, ...)",
                k.name
            )));
        }
    };
    c.size = k.size.as_deref().map(super::parse_size).transpose()?;
    if let Some(fps) = k.fps
        && !(fps > 0.0 && fps <= 100_000.0)
    {
        return Err(ConfigError::new(format!(
            "v4l2 source `{}`: fps {fps} is out of range",
            k.name
        )));
    }
    c.fps = k.fps;
    c.output = match k.format.as_str() {
        "native" => V4l2Output::Native,
        "raw" => V4l2Output::Raw,
        "raw-zstd" => V4l2Output::RawZstd(k.zstd_level),
        "mjpeg" => V4l2Output::Mjpeg(super::jpeg_quality(k.quality)?),
        other => {
            return Err(ConfigError::new(format!(
                "v4l2 source `{}`: unknown format `{other}` (native, raw, raw-zstd, mjpeg)",
                k.name
            )));
        }
    };
    c.buffers = k.buffers.unwrap_or(c.buffers).clamp(2, 32);
    c.on_demand = k.on_demand.unwrap_or(true);
    c.linger = seconds("linger", k.linger, c.linger)?;
    c.retry_max = seconds("retry_max", k.retry_max, c.retry_max)?.max(Duration::from_millis(50));
    c.fail_after = seconds("fail_after", k.fail_after, c.fail_after)?;
    c.mjpeg_scan = k.mjpeg_scan;
    c.timecode = k.timecode;
    c.controls = k.controls.into_iter().collect();
    Ok(c.into())
}

impl From<V4l2SourceConfig> for SourceConfig {
    fn from(c: V4l2SourceConfig) -> SourceConfig {
        SourceConfig::new(c)
    }
}

impl crate::api::SourceSpec for V4l2SourceConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "v4l2"
    }

    fn start(&self, host: crate::api::SourceHost) -> Result<std::thread::JoinHandle<()>, crate::error::NetError> {
        spawn(host, self.clone())
    }
}

/// What the node knows about the devices its sources capture from.
#[derive(Debug, Default)]
#[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
pub(crate) struct V4l2Registry {
    /// Device path → stream name and the values set remotely.
    devices: Mutex<HashMap<PathBuf, DeviceEntry>>,
    /// The node's state directory: values set remotely are kept there.
    state_dir: Option<PathBuf>,
    /// Values kept there, for devices with or without a source now.
    saved: Mutex<saved::Saved>,
}

#[derive(Debug, Default, Clone)]
#[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
struct DeviceEntry {
    stream: String,
    remembered: Vec<ControlValue>,
}

impl V4l2Registry {
    /// A registry that keeps values set remotely in `state_dir` (and
    /// starts with those kept there), or keeps nothing.
    pub(crate) fn new(state_dir: Option<PathBuf>) -> V4l2Registry {
        let kept = state_dir.as_deref().map(saved::load).unwrap_or_default();
        V4l2Registry {
            devices: Mutex::default(),
            state_dir,
            saved: Mutex::new(kept),
        }
    }

    /// The values kept for `device` (re-applied when it opens).
    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    fn kept(&self, device: &std::path::Path) -> Vec<ControlValue> {
        self.saved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(device)
            .cloned()
            .unwrap_or_default()
    }

    /// `device`'s values set remotely are now `values`: kept in the state
    /// directory, if the node has one.
    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    fn keep(&self, device: &std::path::Path, values: &[ControlValue]) {
        let Some(dir) = &self.state_dir else { return };
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        saved.insert(device.to_owned(), values.to_vec());
        saved::store(dir, &saved);
    }

    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, DeviceEntry>> {
        self.devices.lock().unwrap_or_else(|p| p.into_inner())
    }
}

mod saved;

#[cfg(all(feature = "v4l2", target_os = "linux"))]
pub(crate) use capture::spawn;

#[cfg(not(all(feature = "v4l2", target_os = "linux")))]
pub(crate) use off::spawn;

/// The V4L2 control commands (list devices, list/get/set controls), on
/// the devices of this host and the ones this node's sources capture from.
#[derive(Debug)]
pub(crate) struct V4l2Family {
    registry: Arc<V4l2Registry>,
}

impl V4l2Family {
    pub(crate) fn new(registry: Arc<V4l2Registry>) -> V4l2Family {
        V4l2Family { registry }
    }
}

impl crate::runtime::devices::DeviceFamily for V4l2Family {
    fn answers(&self, command: framewire_proto::Command) -> bool {
        use framewire_proto::Command as C;
        matches!(
            command,
            C::V4l2ListDevices | C::V4l2ListControls | C::V4l2GetControls | C::V4l2SetControls
        )
    }

    fn handle(&self, req: framewire_proto::Request) -> Result<framewire_proto::Response, crate::error::CommandError> {
        #[cfg(all(feature = "v4l2", target_os = "linux"))]
        return commands::blocking(&self.registry, req);
        #[cfg(not(all(feature = "v4l2", target_os = "linux")))]
        {
            let _ = (&self.registry, req);
            Err(crate::error::CommandError::new(
                framewire_proto::Status::NotFound,
                "this node was built without V4L2 support",
            ))
        }
    }
}

#[cfg(not(all(feature = "v4l2", target_os = "linux")))]
mod off {
    use super::V4l2SourceConfig;
    use crate::api::SourceHost;
    use crate::error::NetError;

    pub(crate) fn spawn(host: SourceHost, cfg: V4l2SourceConfig) -> Result<std::thread::JoinHandle<()>, NetError> {
        let _ = host; // no devices without V4L2 support
        Err(NetError::Source {
            kind: "v4l2",
            stream: cfg.name,
            reason: "this build has no V4L2 support (feature `v4l2`, Linux only)".into(),
        })
    }
}
