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
            retry_max: Duration::from_secs(2),
        }
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
    _shared: std::sync::Arc<crate::node::Shared>,
    cfg: X11SourceConfig,
    _stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, crate::error::NetError> {
    Err(crate::error::NetError::Refused(format!(
        "x11 source `{}`: this build has no X11 support (feature `x11`)",
        cfg.name
    )))
}

#[cfg(feature = "x11")]
mod imp {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use framewire_codec::{Encoder, Registry};
    use framewire_media::x11::{Grabber, Rect, Target};
    use framewire_proto::control::StreamState;
    use framewire_proto::{EventInfo, EventReason, FrameFlags, StreamEvent, StreamOpen};
    use framewire_relay::Frame;
    use tracing::{debug, info, warn};

    use super::X11SourceConfig;
    use crate::error::NetError;
    use crate::node::{Shared, now_ns};
    use crate::runtime::input::InputTarget;

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
    pub(crate) fn spawn(
        shared: Arc<Shared>,
        cfg: X11SourceConfig,
        stop: Arc<AtomicBool>,
    ) -> Result<std::thread::JoinHandle<()>, NetError> {
        let refuse = |e: String| NetError::Refused(format!("x11 source `{}`: {e}", cfg.name));
        let grabber = Grabber::open(&target(&cfg)).map_err(refuse)?;
        let mut encoder = Registry::builtin()
            .encoder(&cfg.encode)
            .map_err(|e| refuse(e.to_string()))?;
        let (fps_num, fps_den) = fps_fraction(cfg.fps);
        let rect = grabber.rect();
        let open = encoder.stream_open(rect.w, rect.h, fps_num, fps_den, &cfg.name);
        shared.add_stream(open.clone(), String::new(), StreamState::Live)?;
        set_target(&shared, &cfg, rect);
        info!(stream = %cfg.name, ?rect, fps = cfg.fps, format = %open.format, "x11 screen grab");
        let name = cfg.name.clone();
        Ok(std::thread::Builder::new()
            .name(format!("src:{name}"))
            .spawn(move || run(&shared, &cfg, &stop, grabber, encoder.as_mut(), open))?)
    }

    fn set_target(shared: &Shared, cfg: &X11SourceConfig, rect: Rect) {
        shared.input.set_target(
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
        shared: &Shared,
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
                            shared.stream_event(&cfg.name, StreamEvent::FormatChanged(open.clone()));
                        }
                        set_target(shared, cfg, rect);
                        shared.stream_event(
                            &cfg.name,
                            StreamEvent::Resumed(info_event(EventReason::DeviceLost, "display back".into())),
                        );
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
                if refit(shared, cfg, g, encoder, &mut open) {
                    discontinuity = true;
                }
            }
            let ts = now_ns();
            let t0 = Instant::now();
            let grabbed = g.grab();
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
                        shared.push(
                            &cfg.name,
                            Frame {
                                data,
                                sequence: seq,
                                timestamp_ns: ts,
                                flags,
                            },
                        );
                    }
                    Err(e) => warn!(stream = %cfg.name, error = %e, "x11 frame not encoded"),
                },
                Err(e) => {
                    // A screen that shrank under the grab fails it before the
                    // periodic check sees it: follow the new geometry.
                    if cfg.rect.is_none() && refit(shared, cfg, g, encoder, &mut open) {
                        checked = Instant::now();
                        discontinuity = true;
                        continue;
                    }
                    warn!(stream = %cfg.name, error = %e, "x11 display lost");
                    shared.stream_event(
                        &cfg.name,
                        StreamEvent::Interrupted(info_event(EventReason::DeviceLost, e)),
                    );
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
        shared: &Shared,
        cfg: &X11SourceConfig,
        g: &mut Grabber,
        encoder: &mut dyn Encoder,
        open: &mut StreamOpen,
    ) -> bool {
        let before = g.rect();
        match g.refit() {
            Ok(Some(r)) => {
                info!(stream = %cfg.name, from = ?before, to = ?r, "x11 monitor changed");
                set_target(shared, cfg, r);
                if (r.w, r.h) != (open.width, open.height) {
                    *open = encoder.stream_open(r.w, r.h, open.fps_num, open.fps_den, &cfg.name);
                    shared.stream_event(&cfg.name, StreamEvent::FormatChanged(open.clone()));
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
