//! The `x11` source: a screen grab (`framewire_media::x11`, MIT-SHM),
//! encoded (QOI, raw+zstd, MJPEG) on the source's thread; and the monitors
//! family that answers LIST_MONITORS (docs/x11.md).
//!
//! A display that goes away makes the stream *interrupted* (reason
//! device-lost); the source reconnects with backoff and says *resumed*. A
//! grabbed monitor that changes size gives *format-changed* with the new
//! STREAM_OPEN. Viewers' input for the stream goes to the display when the
//! source says `inject = true` (`runtime::input`).

use std::time::Duration;

use framewire_codec::EncodeSpec;

use crate::config::{ConfigError, SourceConfig};

/// A screen-grab source.
#[derive(Debug, Clone)]
pub struct X11SourceConfig {
    /// Stream name.
    pub name: String,
    /// X display (`:1`); `None` = `$DISPLAY`.
    pub display: Option<String>,
    /// Monitor to grab by name (LIST_MONITORS); `None` = the primary (or
    /// first) monitor. Ignored when `rect` is set.
    pub monitor: Option<String>,
    /// Explicit rectangle `(x, y, width, height)` on screen `screen`.
    pub rect: Option<(i32, i32, u32, u32)>,
    /// Screen for `rect` (default: the display's default screen).
    pub screen: Option<usize>,
    /// Frames per second.
    pub fps: f64,
    /// Wire encoding.
    pub encode: EncodeSpec,
    /// Replay input events from viewers into the display through XTEST.
    /// Off by default: anyone who may subscribe could then type here.
    pub inject: bool,
    /// Draw each frame's capture time and number into it as a time code
    /// (`framewire_media::timecode`), for `framewire latency`.
    pub timecode: bool,
    /// Longest wait between reconnect attempts after the display was lost.
    pub retry_max: Duration,
}

/// Default grab rate.
pub const X11_DEFAULT_FPS: f64 = 30.0;

impl X11SourceConfig {
    /// A source named `name` grabbing the primary monitor of `$DISPLAY` at
    /// 30 fps as QOI.
    pub fn new(name: &str) -> X11SourceConfig {
        X11SourceConfig {
            name: name.to_owned(),
            display: None,
            monitor: None,
            rect: None,
            screen: None,
            fps: X11_DEFAULT_FPS,
            encode: EncodeSpec::qoi(),
            inject: false,
            timecode: false,
            retry_max: Duration::from_secs(2),
        }
    }
}

/// The keys of an `x11` source (docs/x11.md).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    name: String,
    /// X display, e.g. `:1`; default `$DISPLAY`.
    display: Option<String>,
    /// Monitor to grab, by name (`framewire monitors`); default the primary one.
    monitor: Option<String>,
    /// A rectangle instead of a monitor, X geometry `WxH+X+Y`.
    rect: Option<String>,
    /// Screen of `rect`, default the display's default screen.
    screen: Option<usize>,
    /// Frames per second, default 30.
    #[serde(default = "default_fps")]
    fps: f64,
    /// `qoi` (default), `raw`, `raw-zstd`, `mjpeg`.
    #[serde(default = "default_qoi")]
    format: String,
    /// JPEG quality for `mjpeg`, default 85.
    #[serde(default = "default_quality")]
    quality: u8,
    /// zstd level for `raw-zstd`, default 1.
    #[serde(default = "default_zstd_level")]
    zstd_level: i32,
    /// Replay viewers' input into this display through XTEST, default false.
    #[serde(default)]
    inject_input: bool,
    /// Draw the capture time into every frame as a time code, default false.
    #[serde(default)]
    timecode: bool,
}

fn default_fps() -> f64 {
    X11_DEFAULT_FPS
}
fn default_qoi() -> String {
    "qoi".into()
}
fn default_quality() -> u8 {
    85
}
fn default_zstd_level() -> i32 {
    1
}

/// X geometry `WxH+X+Y` (or `WxH`, at 0,0).
fn parse_geometry(g: &str) -> Result<(i32, i32, u32, u32), ConfigError> {
    let (size, pos) = match g.find('+') {
        Some(i) => (&g[..i], &g[i + 1..]),
        None => (g, "0+0"),
    };
    let (w, h) = super::parse_size(size)?;
    let bad = || ConfigError::new(format!("`{g}`: expected WxH+X+Y"));
    let (x, y) = pos.split_once('+').ok_or_else(bad)?;
    Ok((x.parse().map_err(|_| bad())?, y.parse().map_err(|_| bad())?, w, h))
}

pub(super) fn from_table(table: toml::Table) -> Result<SourceConfig, ConfigError> {
    use framewire_codec::ChromaSubsampling;
    use framewire_proto::PixelFormat;
    let k: Keys = super::keys("x11", table)?;
    let mut c = X11SourceConfig::new(&k.name);
    c.display = k.display;
    c.monitor = k.monitor;
    c.screen = k.screen;
    c.rect = match k.rect.as_deref() {
        None => None,
        Some(g) => Some(parse_geometry(g).map_err(|e| ConfigError::new(format!("x11 source `{}`: {e}", k.name)))?),
    };
    if !(k.fps > 0.0 && k.fps <= 1000.0) {
        return Err(ConfigError::new(format!(
            "x11 source `{}`: fps {} is out of range",
            k.name, k.fps
        )));
    }
    c.fps = k.fps;
    c.encode = match k.format.as_str() {
        "qoi" => EncodeSpec::qoi(),
        "raw" => EncodeSpec::raw(PixelFormat::Bgra),
        "raw-zstd" => EncodeSpec::raw_zstd(PixelFormat::Bgra, k.zstd_level),
        "mjpeg" => EncodeSpec::mjpeg(super::jpeg_quality(k.quality)?).with_subsampling(ChromaSubsampling::S420),
        other => {
            return Err(ConfigError::new(format!(
                "x11 source `{}`: unknown format `{other}` (qoi, raw, raw-zstd, mjpeg)",
                k.name
            )));
        }
    };
    c.inject = k.inject_input;
    c.timecode = k.timecode;
    Ok(c.into())
}

impl From<X11SourceConfig> for SourceConfig {
    fn from(c: X11SourceConfig) -> SourceConfig {
        SourceConfig::new(c)
    }
}

impl crate::api::SourceSpec for X11SourceConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "x11"
    }

    fn start(&self, host: crate::api::SourceHost) -> Result<std::thread::JoinHandle<()>, crate::error::NetError> {
        spawn(host, self.clone())
    }
}

#[cfg(feature = "x11")]
pub(crate) use imp::spawn;

#[cfg(feature = "x11")]
pub(crate) fn list_monitors(display: Option<&str>) -> Result<Vec<framewire_proto::control::Monitor>, String> {
    framewire_media::x11::list_monitors(display)
}

/// LIST_MONITORS: the monitors of the display this node grabs (its first
/// X11 source's, else `$DISPLAY`).
#[derive(Debug)]
pub(crate) struct MonitorsFamily {
    display: Option<String>,
}

impl MonitorsFamily {
    pub(crate) fn new(display: Option<String>) -> MonitorsFamily {
        MonitorsFamily { display }
    }
}

impl crate::runtime::devices::DeviceFamily for MonitorsFamily {
    fn answers(&self, command: framewire_proto::Command) -> bool {
        command == framewire_proto::Command::ListMonitors
    }

    fn handle(&self, _req: framewire_proto::Request) -> Result<framewire_proto::Response, crate::error::CommandError> {
        list_monitors(self.display.as_deref())
            .map(framewire_proto::Response::ListMonitors)
            .map_err(|e| crate::error::CommandError::new(framewire_proto::Status::NotFound, e))
    }
}

/// The XRandR monitors of every screen of an X display (`None` =
/// `$DISPLAY`), as LIST_MONITORS reports them: RandR 1.5 monitors
/// (including those made with `xrandr --setmonitor`), `NAME@N` on screen
/// N > 0, the whole screen when it has none. An error says why there are
/// none (no display, or a build without X11).
pub fn local_monitors(display: Option<&str>) -> Result<Vec<framewire_proto::control::Monitor>, String> {
    list_monitors(display)
}

#[cfg(not(feature = "x11"))]
pub(crate) fn list_monitors(_display: Option<&str>) -> Result<Vec<framewire_proto::control::Monitor>, String> {
    Err("this node was built without X11 support".into())
}

#[cfg(not(feature = "x11"))]
pub(crate) fn spawn(
    _host: crate::api::SourceHost,
    cfg: X11SourceConfig,
) -> Result<std::thread::JoinHandle<()>, crate::error::NetError> {
    Err(crate::error::NetError::Source {
        kind: "x11",
        stream: cfg.name.clone(),
        reason: "this build has no X11 support (feature `x11`)".into(),
    })
}

#[cfg(feature = "x11")]
mod imp {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use framewire_codec::{Encoder, Registry};
    use framewire_media::x11::{Grabber, Rect, Target};
    use framewire_proto::control::StreamState;
    use framewire_proto::{EventInfo, EventReason, FrameFlags, StreamEvent, StreamOpen};
    use framewire_relay::Frame;
    use tracing::{debug, info, warn};

    use super::X11SourceConfig;
    use crate::api::{SourceHost, StreamOut};
    use crate::clock::now_ns;
    use crate::error::NetError;
    use crate::runtime::input::{InputRegistry, InputTarget};

    fn target(cfg: &X11SourceConfig) -> Target {
        Target {
            display: cfg.display.clone(),
            monitor: cfg.monitor.clone(),
            rect: cfg.rect,
            screen: cfg.screen,
        }
    }

    fn info_event(reason: EventReason, message: String) -> EventInfo {
        EventInfo {
            timestamp_ns: now_ns(),
            reason,
            message,
        }
    }

    fn fps_fraction(fps: f64) -> (u32, u32) {
        // Rounded to 1/1000 fps; the rate is informational on the wire.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let num = (fps * 1000.0).round().clamp(0.0, f64::from(u32::MAX)) as u32;
        (num, 1000)
    }

    /// Starts a screen-grab source. The display must be reachable now (the
    /// stream's size comes from it); later losses are stream events.
    pub(crate) fn spawn(host: SourceHost, cfg: X11SourceConfig) -> Result<std::thread::JoinHandle<()>, NetError> {
        let refuse = |reason: String| NetError::Source {
            kind: "x11",
            stream: cfg.name.clone(),
            reason,
        };
        let grabber = Grabber::open(&target(&cfg)).map_err(refuse)?;
        let mut encoder = Registry::builtin()
            .encoder(&cfg.encode)
            .map_err(|e| refuse(e.to_string()))?;
        let (fps_num, fps_den) = fps_fraction(cfg.fps);
        let rect = grabber.rect();
        let open = encoder.stream_open(rect.w, rect.h, fps_num, fps_den, &cfg.name);
        let out = host.open(open.clone(), StreamState::Live)?;
        let input = host
            .extension::<InputRegistry>()
            .ok_or_else(|| refuse("this node has no input registry".into()))?;
        set_target(&input, &cfg, rect);
        info!(stream = %cfg.name, ?rect, fps = cfg.fps, format = %open.format, "x11 screen grab");
        let name = cfg.name.clone();
        Ok(std::thread::Builder::new().name(format!("src:{name}")).spawn(move || {
            let stop = host.stop_flag();
            let io = Io {
                out: &out,
                input: &input,
            };
            run(&io, &cfg, &stop, grabber, encoder.as_mut(), open)
        })?)
    }

    /// Where a grab's frames, events and input targets go.
    struct Io<'a> {
        out: &'a StreamOut,
        input: &'a InputRegistry,
    }

    fn set_target(input: &InputRegistry, cfg: &X11SourceConfig, rect: Rect) {
        input.set_target(
            &cfg.name,
            InputTarget {
                display: cfg.display.clone(),
                screen: rect.screen,
                origin: (rect.x, rect.y),
                inject: cfg.inject,
            },
        );
    }

    /// How often the grabbed monitor's geometry is checked.
    const GEOMETRY_CHECK: Duration = Duration::from_secs(1);

    fn run(
        io: &Io<'_>,
        cfg: &X11SourceConfig,
        stop: &AtomicBool,
        grabber: Grabber,
        encoder: &mut dyn Encoder,
        mut open: StreamOpen,
    ) {
        let period = if cfg.fps > 0.0 {
            Duration::from_secs_f64(1.0 / cfg.fps)
        } else {
            Duration::ZERO
        };
        let mut grabber = Some(grabber);
        let mut seq = 0u64;
        let mut next = Instant::now();
        let mut checked = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let mut discontinuity = false;
        // Grab and encode times, reported at debug level every 5 s.
        let (mut n, mut grab_t, mut enc_t, mut report) = (0u32, Duration::ZERO, Duration::ZERO, Instant::now());
        while !stop.load(Ordering::Relaxed) {
            let Some(g) = grabber.as_mut() else {
                // Lost: reconnect with backoff.
                sleep_unless_stopped(backoff, stop);
                match Grabber::open(&target(cfg)) {
                    Ok(g) => {
                        let rect = g.rect();
                        info!(stream = %cfg.name, ?rect, "x11 display back");
                        if (rect.w, rect.h) != (open.width, open.height) {
                            open = encoder.stream_open(rect.w, rect.h, open.fps_num, open.fps_den, &cfg.name);
                            io.out.event(StreamEvent::FormatChanged(open.clone()));
                        }
                        set_target(io.input, cfg, rect);
                        io.out.event(StreamEvent::Resumed(info_event(
                            EventReason::DeviceLost,
                            "display back".into(),
                        )));
                        grabber = Some(g);
                        backoff = Duration::from_millis(50);
                        discontinuity = true;
                        next = Instant::now();
                    }
                    Err(_) => backoff = (backoff * 2).min(cfg.retry_max),
                }
                continue;
            };
            // The grabbed monitor may have changed size.
            if cfg.rect.is_none() && checked.elapsed() >= GEOMETRY_CHECK {
                checked = Instant::now();
                if refit(io, cfg, g, encoder, &mut open) {
                    discontinuity = true;
                }
            }
            let ts = now_ns();
            let t0 = Instant::now();
            let grabbed = g.grab().map(|pic| {
                if cfg.timecode {
                    framewire_media::timecode::overlay(&pic, framewire_media::timecode::TimeCode::new(seq, ts))
                } else {
                    pic
                }
            });
            let t1 = Instant::now();
            match grabbed {
                Ok(pic) => match encoder.encode(&pic) {
                    Ok(data) => {
                        n += 1;
                        grab_t += t1 - t0;
                        enc_t += t1.elapsed();
                        if report.elapsed() >= Duration::from_secs(5) {
                            debug!(
                                stream = %cfg.name,
                                frames = n,
                                grab_ms = grab_t.as_secs_f64() * 1e3 / f64::from(n),
                                encode_ms = enc_t.as_secs_f64() * 1e3 / f64::from(n),
                                "x11 grab timing"
                            );
                            (n, grab_t, enc_t, report) = (0, Duration::ZERO, Duration::ZERO, Instant::now());
                        }
                        seq += 1;
                        let mut flags = FrameFlags::KEYFRAME;
                        if discontinuity {
                            flags = flags.with(FrameFlags::DISCONTINUITY);
                            discontinuity = false;
                        }
                        io.out.push(Frame {
                            data,
                            sequence: seq,
                            timestamp_ns: ts,
                            flags,
                        });
                    }
                    Err(e) => warn!(stream = %cfg.name, error = %e, "x11 frame not encoded"),
                },
                Err(e) => {
                    // A screen that shrank under the grab fails it before the
                    // periodic check sees it: follow the new geometry.
                    if cfg.rect.is_none() && refit(io, cfg, g, encoder, &mut open) {
                        checked = Instant::now();
                        discontinuity = true;
                        continue;
                    }
                    warn!(stream = %cfg.name, error = %e, "x11 display lost");
                    io.out
                        .event(StreamEvent::Interrupted(info_event(EventReason::DeviceLost, e)));
                    grabber = None;
                    continue;
                }
            }
            next += period;
            let now = Instant::now();
            if next > now {
                sleep_unless_stopped(next - now, stop);
            } else {
                next = now;
            }
        }
    }

    /// Follows the grabbed monitor's geometry (it moved or changed size),
    /// saying format-changed when the size differs. True if it changed.
    fn refit(
        io: &Io<'_>,
        cfg: &X11SourceConfig,
        g: &mut Grabber,
        encoder: &mut dyn Encoder,
        open: &mut StreamOpen,
    ) -> bool {
        let before = g.rect();
        match g.refit() {
            Ok(Some(r)) => {
                info!(stream = %cfg.name, from = ?before, to = ?r, "x11 monitor changed");
                set_target(io.input, cfg, r);
                if (r.w, r.h) != (open.width, open.height) {
                    *open = encoder.stream_open(r.w, r.h, open.fps_num, open.fps_den, &cfg.name);
                    io.out.event(StreamEvent::FormatChanged(open.clone()));
                }
                true
            }
            Ok(None) => false,
            Err(e) => {
                warn!(stream = %cfg.name, error = %e, "x11 resize: the new grab failed");
                false
            }
        }
    }

    fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
        let end = Instant::now() + d;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= end {
                return;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }
}
