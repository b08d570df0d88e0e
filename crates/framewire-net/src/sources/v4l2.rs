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
}

#[derive(Debug, Default, Clone)]
#[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
struct DeviceEntry {
    stream: String,
    remembered: Vec<ControlValue>,
}

impl V4l2Registry {
    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, DeviceEntry>> {
        self.devices.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(all(feature = "v4l2", target_os = "linux"))]
pub(crate) use imp::spawn;

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
        let r = imp::blocking(&self.registry, req);
        #[cfg(not(all(feature = "v4l2", target_os = "linux")))]
        let r = {
            let _ = (&self.registry, req);
            Err((
                framewire_proto::Status::NotFound,
                "this node was built without V4L2 support".to_owned(),
            ))
        };
        r.map_err(|(status, message)| crate::error::CommandError::new(status, message))
    }
}

#[cfg(not(all(feature = "v4l2", target_os = "linux")))]
mod off {
    use super::V4l2SourceConfig;
    use crate::api::SourceHost;
    use crate::error::NetError;

    pub(crate) fn spawn(host: SourceHost, cfg: V4l2SourceConfig) -> Result<std::thread::JoinHandle<()>, NetError> {
        let _ = host; // no devices without V4L2 support
        Err(NetError::Refused(format!(
            "V4L2 source `{}`: this build has no V4L2 support (feature `v4l2`, Linux only)",
            cfg.name
        )))
    }
}

#[cfg(all(feature = "v4l2", target_os = "linux"))]
mod imp {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use framewire_media::v4l2::device::{ControlInfo, control_key, device_paths, list_devices};
    use framewire_media::v4l2::frame::{clocks_now, monotonic_to_realtime};
    use framewire_media::v4l2::sys::{CTRL_FLAG_EXECUTE_ON_WRITE, CTRL_FLAG_WRITE_ONLY, CTRL_TYPE_BUTTON, fourcc_str};
    use framewire_media::v4l2::{Capture, Device, FrameMaker, V4l2Error, Want, WireFormat, negotiate};
    use framewire_proto::control::{ControlValue, Request, Response, StreamState};
    use framewire_proto::{EventInfo, EventReason, FrameFlags, Status, StreamEvent, StreamOpen};
    use framewire_relay::Frame;
    use tracing::{error, info, warn};

    use super::{DeviceEntry, V4L2_RETRY_FIRST, V4l2Output, V4l2Registry, V4l2SourceConfig};
    use crate::api::{SourceHost, StreamOut};
    use crate::clock::now_ns;
    use crate::error::NetError;

    /// How long one wait for a buffer lasts (the loop checks stop,
    /// subscribers and linger between waits).
    const POLL: Duration = Duration::from_millis(100);

    fn wire(o: V4l2Output) -> WireFormat {
        match o {
            V4l2Output::Native => WireFormat::Native,
            V4l2Output::Raw => WireFormat::Raw,
            V4l2Output::RawZstd(l) => WireFormat::RawZstd(l),
            V4l2Output::Mjpeg(q) => WireFormat::Mjpeg(q),
        }
    }

    /// An open, streaming device and what turns its buffers into frames.
    struct Session {
        cap: Capture,
        maker: FrameMaker,
        last_driver_seq: Option<u32>,
        frames: u64,
        lost: u64,
        opened: Instant,
    }

    /// Opens, negotiates, sets format, rate and controls, starts streaming.
    fn open_session(cfg: &V4l2SourceConfig, remembered: &[ControlValue]) -> Result<Session, V4l2Error> {
        let dev = Device::open(&cfg.device)?;
        let caps = dev.capabilities()?;
        if !caps.is_streaming_capture() {
            return Err(V4l2Error::Unsupported {
                path: cfg.device.display().to_string(),
                message: format!(
                    "`{}` ({}) is not a video capture device with streaming I/O",
                    caps.card, caps.driver
                ),
            });
        }
        let formats = dev.formats()?;
        let want = Want {
            fourcc: cfg.pixel_format,
            size: cfg.size,
            fps: cfg.fps,
        };
        let choice = negotiate(&formats, &want).map_err(|message| V4l2Error::Unsupported {
            path: cfg.device.display().to_string(),
            message,
        })?;
        let pix = dev.set_format(choice.fourcc, choice.width, choice.height)?;
        let interval = match choice.interval {
            Some((n, d)) => dev.set_interval(n, d)?,
            None => dev.set_interval(0, 0).ok().flatten(),
        };
        // Rate on the wire: frames per second = 1 / interval.
        let fps = interval
            .filter(|&(n, d)| n > 0 && d > 0)
            .map_or((0, 1), |(n, d)| (d, n));
        apply_controls(&dev, cfg, remembered);
        let maker = FrameMaker::new(pix, fps, wire(cfg.output), cfg.mjpeg_scan, &cfg.name).map_err(|message| {
            V4l2Error::Unsupported {
                path: cfg.device.display().to_string(),
                message,
            }
        })?;
        let cap = Capture::start(dev, cfg.buffers)?;
        info!(
            stream = %cfg.name,
            device = %cfg.device.display(),
            format = %fourcc_str(pix.fourcc),
            width = pix.width,
            height = pix.height,
            fps = ?fps,
            buffers = cap.buffer_count(),
            wire = %maker.stream_open().format,
            "v4l2 capture started"
        );
        Ok(Session {
            cap,
            maker,
            last_driver_seq: None,
            frames: 0,
            lost: 0,
            opened: Instant::now(),
        })
    }

    /// The configured controls (by name), then those set remotely (by id).
    fn apply_controls(dev: &Device, cfg: &V4l2SourceConfig, remembered: &[ControlValue]) {
        if cfg.controls.is_empty() && remembered.is_empty() {
            return;
        }
        let infos = match dev.control_infos() {
            Ok(i) => i,
            Err(e) => {
                warn!(stream = %cfg.name, error = %e, "cannot list controls; not applying them");
                return;
            }
        };
        let mut values = Vec::new();
        for (name, value) in &cfg.controls {
            match find_control(&infos, name) {
                Some(c) => values.push(ControlValue {
                    id: c.control.id,
                    value: *value,
                }),
                None => warn!(stream = %cfg.name, control = %name, "no such control on the device"),
            }
        }
        values.extend_from_slice(remembered);
        for v in values {
            if let Err(e) = dev.set_controls(&[v]) {
                warn!(stream = %cfg.name, id = v.id, value = v.value, error = %e, "control not applied");
            }
        }
    }

    /// A control by name, case-insensitively, spaces and punctuation as `_`.
    pub(crate) fn find_control<'a>(infos: &'a [ControlInfo], name: &str) -> Option<&'a ControlInfo> {
        let key = control_key(name);
        infos.iter().find(|c| control_key(&c.control.name) == key)
    }

    fn info_event(message: String) -> EventInfo {
        EventInfo {
            timestamp_ns: now_ns(),
            reason: EventReason::DeviceLost,
            message,
        }
    }

    /// Starts a capture source: probes the device for its STREAM_OPEN (the
    /// stream is listed before anyone subscribes), registers the stream,
    /// and runs the capture loop on its own thread.
    pub(crate) fn spawn(host: SourceHost, cfg: V4l2SourceConfig) -> Result<std::thread::JoinHandle<()>, NetError> {
        if let Some(fps) = cfg.fps
            && !(fps > 0.0 && fps <= 100_000.0)
        {
            return Err(NetError::Refused(format!(
                "V4L2 source `{}`: fps {fps} is out of range",
                cfg.name
            )));
        }
        // Probe: negotiate now so that a wrong configuration fails at start
        // with what the device offers, and the stream has its real format.
        let (open, state) = match probe(&cfg) {
            Ok(open) => (open, StreamState::Idle),
            Err(e) if e.is_device_lost() => {
                warn!(stream = %cfg.name, error = %e, "device not there yet; will keep trying");
                (placeholder_open(&cfg), StreamState::Interrupted)
            }
            Err(e) => return Err(NetError::Refused(format!("V4L2 source `{}`: {e}", cfg.name))),
        };
        let out = host.open(open.clone(), state)?;
        let registry = host
            .extension::<V4l2Registry>()
            .ok_or_else(|| NetError::Refused("this node has no V4L2 device registry".into()))?;
        registry.lock().insert(
            cfg.device.clone(),
            DeviceEntry {
                stream: cfg.name.clone(),
                remembered: Vec::new(),
            },
        );
        let name = cfg.name.clone();
        Ok(std::thread::Builder::new()
            .name(format!("v4l2:{name}"))
            .spawn(move || run(&out, &registry, &cfg, &host.stop_flag(), open, state))?)
    }

    fn probe(cfg: &V4l2SourceConfig) -> Result<StreamOpen, V4l2Error> {
        let s = open_session(cfg, &[])?;
        let open = s.maker.stream_open().clone();
        drop(s); // closes the device: on demand, it opens when a subscriber comes
        Ok(open)
    }

    fn placeholder_open(cfg: &V4l2SourceConfig) -> StreamOpen {
        let (w, h) = cfg.size.unwrap_or((640, 480));
        let format = match cfg.output {
            V4l2Output::Mjpeg(_) => framewire_proto::Format::Mjpeg,
            V4l2Output::RawZstd(_) => framewire_proto::Format::RawZstd,
            _ => framewire_proto::Format::Raw,
        };
        StreamOpen {
            format,
            pixel_format: framewire_proto::PixelFormat::None,
            origin: framewire_proto::Origin::DeviceNative,
            width: w,
            height: h,
            fps_num: 0,
            fps_den: 1,
            name: cfg.name.clone(),
        }
    }

    /// The capture loop.
    fn run(
        out: &StreamOut,
        registry: &V4l2Registry,
        cfg: &V4l2SourceConfig,
        stop: &AtomicBool,
        mut open: StreamOpen,
        initial: StreamState,
    ) {
        let name = cfg.name.as_str();
        let mut session: Option<Session> = None;
        let mut seq: u64 = 0;
        // When the device was lost (and not yet back), and the retry state.
        let mut lost_since: Option<Instant> = (initial == StreamState::Interrupted).then(Instant::now);
        let mut backoff = V4L2_RETRY_FIRST;
        let mut next_try = Instant::now();
        let mut failed = false;
        let mut last_error = String::new();
        let mut discontinuity = false;
        let mut unwanted_since: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let wanted = !cfg.on_demand || out.subscribers() > 0;
            if wanted {
                unwanted_since = None;
            } else if unwanted_since.is_none() {
                unwanted_since = Some(Instant::now());
            }
            let keep = wanted || unwanted_since.is_some_and(|t| t.elapsed() < cfg.linger);
            if !keep {
                if let Some(s) = session.take() {
                    close(cfg, s, "no subscriber");
                }
                if lost_since.take().is_some() {
                    info!(stream = %name, "no subscriber: stopped waiting for the device");
                }
                failed = false;
                out.set_state(StreamState::Idle);
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let Some(s) = session.as_mut() else {
                if !wanted {
                    // Lingering with the device closed (lost): no need to reopen.
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                let now = Instant::now();
                if now < next_try {
                    std::thread::sleep((next_try - now).min(Duration::from_millis(20)));
                    continue;
                }
                let remembered = registry
                    .lock()
                    .get(&cfg.device)
                    .map(|e| e.remembered.clone())
                    .unwrap_or_default();
                match open_session(cfg, &remembered) {
                    Ok(s) => {
                        let new_open = s.maker.stream_open().clone();
                        if new_open != open {
                            open = new_open.clone();
                            out.event(StreamEvent::FormatChanged(new_open));
                        }
                        if let Some(t) = lost_since.take() {
                            let ms = t.elapsed().as_millis();
                            info!(stream = %name, recovery_ms = ms as u64, "device back: stream resumed");
                            out.event(StreamEvent::Resumed(EventInfo {
                                timestamp_ns: now_ns(),
                                reason: EventReason::DeviceLost,
                                message: format!("device back after {ms} ms"),
                            }));
                            discontinuity = true;
                        } else {
                            out.set_state(StreamState::Live);
                        }
                        backoff = V4L2_RETRY_FIRST;
                        failed = false;
                        last_error.clear();
                        session = Some(s);
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if lost_since.is_none() {
                            // Could not open on demand: the device is missing.
                            lost_since = Some(Instant::now());
                            out.event(StreamEvent::Interrupted(info_event(msg.clone())));
                        }
                        if msg != last_error {
                            warn!(stream = %name, error = %msg, "cannot open the device; retrying");
                            last_error = msg;
                        }
                        if !failed && lost_since.is_some_and(|t| t.elapsed() >= cfg.fail_after) {
                            failed = true;
                            error!(
                                stream = %name,
                                device = %cfg.device.display(),
                                after_s = cfg.fail_after.as_secs_f64(),
                                "device did not come back: stream failed (still retrying)"
                            );
                            out.set_state(StreamState::Failed);
                        }
                        next_try = Instant::now() + backoff;
                        backoff = (backoff * 2).min(cfg.retry_max);
                    }
                }
                continue;
            };
            match s.cap.dequeue(POLL) {
                Ok(None) => {}
                Ok(Some(d)) => {
                    let gap = match s.last_driver_seq {
                        Some(l) => u64::from(d.sequence.wrapping_sub(l).max(1)),
                        None => 1,
                    };
                    s.lost += gap - 1;
                    s.last_driver_seq = Some(d.sequence);
                    seq += gap;
                    if d.error {
                        s.lost += 1;
                        warn!(stream = %name, sequence = d.sequence, "the driver flagged a corrupted buffer; skipped");
                    } else {
                        let timestamp_ns = if d.monotonic {
                            let (mono, real) = clocks_now();
                            monotonic_to_realtime(d.timestamp_ns, mono, real)
                        } else {
                            now_ns()
                        };
                        match s.maker.process(s.cap.data(&d)) {
                            Ok(frames) => {
                                for data in frames {
                                    let mut flags = FrameFlags::KEYFRAME;
                                    if discontinuity {
                                        flags = FrameFlags(flags.0 | FrameFlags::DISCONTINUITY.0);
                                        discontinuity = false;
                                    }
                                    s.frames += 1;
                                    out.push(Frame {
                                        data,
                                        sequence: seq,
                                        timestamp_ns,
                                        flags,
                                    });
                                }
                            }
                            Err(e) => warn!(stream = %name, error = %e, "buffer could not be made into a frame"),
                        }
                    }
                    if let Err(e) = s.cap.requeue(d.index) {
                        lose(out, cfg, &mut session, e, &mut lost_since, &mut next_try, &mut backoff);
                    }
                }
                Err(e) => lose(out, cfg, &mut session, e, &mut lost_since, &mut next_try, &mut backoff),
            }
        }
        if let Some(s) = session.take() {
            close(cfg, s, "node stopping");
        }
    }

    fn close(cfg: &V4l2SourceConfig, mut s: Session, why: &str) {
        let dropped_partial = s.maker.reset();
        info!(
            stream = %cfg.name,
            why,
            frames = s.frames,
            lost_at_source = s.lost,
            open_s = s.opened.elapsed().as_secs_f64(),
            dropped_partial,
            "v4l2 capture closed"
        );
        drop(s); // STREAMOFF, munmap, REQBUFS 0, close
    }

    /// The device failed: tell subscribers, release it, schedule a retry.
    fn lose(
        out: &StreamOut,
        cfg: &V4l2SourceConfig,
        session: &mut Option<Session>,
        e: V4l2Error,
        lost_since: &mut Option<Instant>,
        next_try: &mut Instant,
        backoff: &mut Duration,
    ) {
        let lost = e.is_device_lost();
        warn!(stream = %cfg.name, error = %e, device_lost = lost, "capture failed: releasing the device");
        out.event(StreamEvent::Interrupted(info_event(e.to_string())));
        if let Some(s) = session.take() {
            close(cfg, s, "device lost");
        }
        *lost_since = Some(Instant::now());
        *backoff = V4L2_RETRY_FIRST;
        *next_try = Instant::now() + *backoff;
    }

    // ----- control commands -----

    fn status_of(e: &V4l2Error) -> Status {
        match e {
            V4l2Error::Control(_) | V4l2Error::Unsupported { .. } => Status::BadRequest,
            V4l2Error::Sys { op: "open", .. } => Status::NotFound,
            V4l2Error::Sys { errno, .. } if *errno == nix::errno::Errno::EBUSY => Status::Busy,
            _ => Status::Internal,
        }
    }

    fn err(e: &V4l2Error) -> (Status, String) {
        (status_of(e), e.to_string())
    }

    /// A device named by path (`/dev/videoN`) or by the stream that captures it.
    fn resolve(registry: &V4l2Registry, device: &str) -> Result<PathBuf, (Status, String)> {
        let reg = registry.lock();
        if let Some((p, _)) = reg.iter().find(|(_, e)| e.stream == device) {
            return Ok(p.clone());
        }
        let p = Path::new(device);
        if reg.contains_key(p) || device_paths().iter().any(|d| d == p) {
            return Ok(p.to_path_buf());
        }
        let names: Vec<String> = device_paths()
            .iter()
            .map(|d| d.display().to_string())
            .chain(reg.values().map(|e| e.stream.clone()))
            .collect();
        Err((
            Status::NotFound,
            format!(
                "no V4L2 device `{device}` here (devices and streams: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            ),
        ))
    }

    pub(super) fn blocking(registry: &V4l2Registry, req: Request) -> Result<Response, (Status, String)> {
        match req {
            Request::V4l2ListDevices => Ok(Response::V4l2ListDevices(list_devices())),
            Request::V4l2ListControls(n) => {
                let path = resolve(registry, &n.name)?;
                let dev = Device::open(&path).map_err(|e| err(&e))?;
                Ok(Response::V4l2ListControls(dev.controls().map_err(|e| err(&e))?))
            }
            Request::V4l2GetControls(g) => {
                let path = resolve(registry, &g.device)?;
                let dev = Device::open(&path).map_err(|e| err(&e))?;
                Ok(Response::V4l2GetControls(
                    dev.get_controls(&g.ids).map_err(|e| err(&e))?,
                ))
            }
            Request::V4l2SetControls(s) => {
                let path = resolve(registry, &s.device)?;
                let dev = Device::open(&path).map_err(|e| err(&e))?;
                // Before setting: a control may take the device away (vivid's
                // Disconnect), and nothing could be queried afterwards.
                let infos = dev.control_infos().map_err(|e| err(&e))?;
                let applied = dev.set_controls(&s.values).map_err(|e| err(&e))?;
                drop(dev);
                // Remember values (not actions: buttons, write-only or
                // execute-on-write controls) for the device's source, to
                // re-apply when a lost device comes back.
                if let Some(entry) = registry.lock().get_mut(&path) {
                    for v in &s.values {
                        let state = infos.iter().any(|c| {
                            c.control.id == v.id
                                && c.raw_type != CTRL_TYPE_BUTTON
                                && c.control.flags & (CTRL_FLAG_WRITE_ONLY | CTRL_FLAG_EXECUTE_ON_WRITE) == 0
                        });
                        if !state {
                            continue;
                        }
                        entry.remembered.retain(|r| r.id != v.id);
                        entry.remembered.push(*v);
                    }
                }
                Ok(Response::V4l2SetControls(applied))
            }
            _ => Err((Status::UnknownCommand, "not a V4L2 command".into())),
        }
    }
}
