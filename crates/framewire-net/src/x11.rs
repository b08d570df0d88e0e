//! X11: monitor geometry (LIST_MONITORS), the screen-grab source, and the
//! input events viewers send back upstream (docs/x11.md).
//!
//! - **Monitors** come from XRandR 1.5 `GetMonitors` on every screen of the
//!   display, with the refresh rate of the first output's CRTC mode.
//!   Monitors of screen N > 0 are named `NAME@N` so names stay unique.
//! - **Grabbing** uses MIT-SHM with a memfd-backed segment passed to the
//!   server (`ShmAttachFd`): one `ShmGetImage` per frame copies the
//!   rectangle into memory shared with the server, which is then encoded
//!   (QOI, raw+zstd, MJPEG) on the source's thread. The X padding byte is
//!   set to 255 (opaque alpha) so lossless streams are bit-exact.
//! - A display that goes away makes the stream *interrupted* (reason
//!   device-lost); the source reconnects with backoff and says *resumed*. A
//!   grabbed monitor that changes size gives *format-changed* with the new
//!   STREAM_OPEN.
//! - **Input events** from viewers are counted per stream and kind
//!   (GET_STATS) and logged; for a pulled stream they go upstream on the
//!   edge's subscription; for an `x11` source configured with
//!   `inject = true` they are replayed into the display through XTEST
//!   (pointer, buttons, wheel as buttons 4-7, keys by the display's keymap).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use framewire_codec::EncodeSpec;
use framewire_proto::control::{InputEventStats, InputKindCount};
use framewire_proto::{InputEvent, InputKind, Message};
use tokio::sync::mpsc;
use tracing::{debug, info};

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

/// Where a stream's input events go.
#[derive(Debug, Clone)]
pub(crate) struct InputTarget {
    #[cfg_attr(not(feature = "x11"), allow(dead_code))]
    display: Option<String>,
    #[cfg_attr(not(feature = "x11"), allow(dead_code))]
    screen: usize,
    /// Top-left of the grabbed rectangle on its screen.
    #[cfg_attr(not(feature = "x11"), allow(dead_code))]
    origin: (i32, i32),
    #[cfg_attr(not(feature = "x11"), allow(dead_code))]
    inject: bool,
}

/// Counters of one stream's input events.
#[derive(Debug, Default, Clone)]
pub(crate) struct InputCounts {
    received: u64,
    injected: u64,
    forwarded: u64,
    /// Received, by kind (`kind - 1`; unknown kinds are not counted here).
    kinds: [u64; 6],
}

/// Counters shared with the injector thread.
pub(crate) type SharedCounts = std::sync::Arc<Mutex<BTreeMap<String, InputCounts>>>;

/// Input events received by this node, per stream: counted, logged, and
/// either injected (an `x11` source with injection on) or passed upstream
/// (a pulled edge).
#[derive(Debug, Default)]
pub(crate) struct InputRegistry {
    targets: Mutex<HashMap<String, InputTarget>>,
    counts: SharedCounts,
    /// Where to pass a pulled stream's events upstream: the edge session's
    /// outbox and its channel there.
    forwarders: Mutex<HashMap<String, (mpsc::Sender<Message>, u16)>>,
    #[cfg(feature = "x11")]
    injector: Mutex<Option<std::sync::mpsc::Sender<Injection>>>,
    /// Per stream: the log lines left in this second, and events not logged.
    log_budget: Mutex<HashMap<String, LogBudget>>,
}

/// Input events logged per stream and second; the rest are counted and
/// the count shows on the next line logged (a viewer cannot flood the log).
const INPUT_LOG_PER_SECOND: u32 = 10;

#[derive(Debug)]
struct LogBudget {
    window: std::time::Instant,
    left: u32,
    suppressed: u64,
}

impl LogBudget {
    /// Whether to log one more event now; if so, how many were not logged before it.
    fn take(&mut self, now: std::time::Instant) -> Option<u64> {
        if now.duration_since(self.window) >= std::time::Duration::from_secs(1) {
            self.window = now;
            self.left = INPUT_LOG_PER_SECOND;
        }
        if self.left == 0 {
            self.suppressed += 1;
            return None;
        }
        self.left -= 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// A pulled stream's input events going upstream for one edge session:
/// set up when the session subscribes, undone when it ends (dropped).
pub(crate) struct Forwarding {
    shared: std::sync::Arc<crate::node::Shared>,
    stream: String,
    tx: mpsc::Sender<Message>,
}

impl Forwarding {
    /// Events for `stream` go out on `client` (the session's connection to
    /// the upstream) on `channel` while the session reads it.
    pub(crate) fn start(
        shared: &std::sync::Arc<crate::node::Shared>,
        stream: &str,
        channel: u16,
        client: &mut crate::transport::client::Client,
    ) -> Forwarding {
        let (tx, rx) = mpsc::channel(FORWARD_QUEUE);
        client.send_while_waiting(rx);
        shared.input.set_forwarder(stream, tx.clone(), channel);
        Forwarding {
            shared: shared.clone(),
            stream: stream.to_owned(),
            tx,
        }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        self.shared.input.clear_forwarder(&self.stream, &self.tx);
    }
}

/// One event for the injector thread.
#[cfg_attr(not(feature = "x11"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct Injection {
    stream: String,
    target: InputTarget,
    event: InputEvent,
}

/// Events queued for an upstream; more are dropped (a stalled upstream
/// must not make the node hold viewers' input without limit).
pub(crate) const FORWARD_QUEUE: usize = 256;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl InputRegistry {
    #[cfg_attr(not(feature = "x11"), allow(dead_code))]
    fn set_target(&self, stream: &str, t: InputTarget) {
        lock(&self.targets).insert(stream.to_owned(), t);
    }

    /// Passes events for `stream` upstream through `tx`, as INPUT_EVENTs
    /// on `channel`, from now on.
    pub(crate) fn set_forwarder(&self, stream: &str, tx: mpsc::Sender<Message>, channel: u16) {
        lock(&self.forwarders).insert(stream.to_owned(), (tx, channel));
    }

    /// Stops passing events for `stream` upstream, if `tx` is still the way.
    pub(crate) fn clear_forwarder(&self, stream: &str, tx: &mpsc::Sender<Message>) {
        let mut f = lock(&self.forwarders);
        if f.get(stream).is_some_and(|(t, _)| t.same_channel(tx)) {
            f.remove(stream);
        }
    }

    /// Forgets a stream that is gone: its counters, target and forwarder.
    pub(crate) fn forget(&self, stream: &str) {
        lock(&self.counts).remove(stream);
        lock(&self.targets).remove(stream);
        lock(&self.forwarders).remove(stream);
    }

    /// Handles one input event a viewer sent on a subscription to `stream`.
    pub(crate) fn event(&self, stream: &str, event: InputEvent) {
        {
            let mut c = lock(&self.counts);
            let e = c.entry(stream.to_owned()).or_default();
            e.received += 1;
            if let Some(k) = usize::from(event.kind.to_raw()).checked_sub(1)
                && k < e.kinds.len()
            {
                e.kinds[k] += 1;
            }
        }
        let now = std::time::Instant::now();
        let logged = lock(&self.log_budget)
            .entry(stream.to_owned())
            .or_insert(LogBudget {
                window: now,
                left: INPUT_LOG_PER_SECOND,
                suppressed: 0,
            })
            .take(now);
        if let Some(not_logged) = logged {
            info!(
            stream,
            kind = %event.kind,
            x = event.x,
            y = event.y,
            button = event.button,
            keysym = event.keysym,
            wheel_y = event.wheel_y,
            modifiers = event.modifiers.0,
            // Since the viewer saw it (meaningful when both clocks agree).
            age_ms = crate::node::now_ns().saturating_sub(event.timestamp_ns) as f64 / 1e6,
            not_logged,
            "input event"
            );
        }
        let forwarder = lock(&self.forwarders).get(stream).cloned();
        if let Some((tx, channel)) = forwarder {
            if tx.try_send(Message::InputEvent { channel, event }).is_ok() {
                lock(&self.counts).entry(stream.to_owned()).or_default().forwarded += 1;
            } else {
                debug!(stream, "input event not forwarded: the upstream's queue is full");
            }
        } else {
            self.inject(stream, event);
        }
    }

    /// Replays the event into the display of an `x11` source that asked for it.
    #[cfg(feature = "x11")]
    fn inject(&self, stream: &str, event: InputEvent) {
        let target = lock(&self.targets).get(stream).cloned();
        if let Some(target) = target.filter(|t| t.inject) {
            let mut inj = lock(&self.injector);
            if inj.is_none() {
                *inj = imp::start_injector(self.counts.clone()).ok();
            }
            let job = Injection {
                stream: stream.to_owned(),
                target,
                event,
            };
            if let Some(tx) = inj.as_ref()
                && tx.send(job).is_err()
            {
                *inj = None;
            }
        }
    }

    /// Without X11 support nothing is replayed.
    #[cfg(not(feature = "x11"))]
    #[allow(clippy::unused_self)]
    fn inject(&self, _stream: &str, _event: InputEvent) {}

    /// Counters for GET_STATS (of one stream, or all when `only` is empty).
    pub(crate) fn stats(&self, only: &str) -> Vec<InputEventStats> {
        lock(&self.counts)
            .iter()
            .filter(|(name, _)| only.is_empty() || name.as_str() == only)
            .map(|(name, c)| InputEventStats {
                stream: name.clone(),
                received: c.received,
                injected: c.injected,
                forwarded: c.forwarded,
                kinds: c
                    .kinds
                    .iter()
                    .zip(1u8..)
                    .filter(|(n, _)| **n > 0)
                    .map(|(n, k)| InputKindCount {
                        kind: InputKind::from_raw(k),
                        count: *n,
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(feature = "x11")]
pub(crate) use imp::{list_monitors, spawn};

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
    use std::num::NonZeroUsize;
    use std::os::fd::{AsFd, OwnedFd};
    use std::ptr::NonNull;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use framewire_codec::{Encoder, PixelBuffer, PixelLayout, Registry};
    use framewire_proto::control::{Monitor, StreamState};
    use framewire_proto::{EventInfo, EventReason, FrameFlags, InputEvent, InputKind, StreamEvent, StreamOpen};
    use framewire_relay::Frame;
    use nix::sys::memfd::{MFdFlags, memfd_create};
    use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};
    use tracing::{debug, info, warn};
    use x11rb::connection::{Connection, RequestConnection};
    use x11rb::protocol::randr::ConnectionExt as _;
    use x11rb::protocol::shm::ConnectionExt as _;
    use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};
    use x11rb::protocol::xtest::ConnectionExt as _;
    use x11rb::rust_connection::RustConnection;

    use super::{Injection, InputTarget, SharedCounts, X11SourceConfig};
    use crate::error::NetError;
    use crate::node::{Shared, now_ns};

    /// A monitor with the screen it is on.
    #[derive(Debug, Clone)]
    pub(crate) struct ScreenMonitor {
        pub(crate) screen: usize,
        pub(crate) monitor: Monitor,
    }

    fn connect(display: Option<&str>) -> Result<(RustConnection, usize), String> {
        x11rb::connect(display).map_err(|e| format!("cannot open X display {}: {e}", display.unwrap_or("$DISPLAY")))
    }

    fn err(e: impl std::fmt::Display) -> String {
        e.to_string()
    }

    /// Every monitor of every screen.
    fn monitors_of(conn: &RustConnection) -> Result<Vec<ScreenMonitor>, String> {
        let has_randr = conn
            .extension_information(x11rb::protocol::randr::X11_EXTENSION_NAME)
            .map_err(err)?
            .is_some();
        let mut out = Vec::new();
        for (i, screen) in conn.setup().roots.iter().enumerate() {
            let suffix = if i == 0 { String::new() } else { format!("@{i}") };
            // The size now (RandR may have changed it since the connection's setup).
            let (sw, sh) = current_size(conn, i)?;
            let whole = || Monitor {
                name: format!("screen{suffix}"),
                x: 0,
                y: 0,
                width: sw,
                height: sh,
                width_mm: u32::from(screen.width_in_millimeters),
                height_mm: u32::from(screen.height_in_millimeters),
                refresh_mhz: 0,
                primary: i == 0,
            };
            if !has_randr {
                out.push(ScreenMonitor {
                    screen: i,
                    monitor: whole(),
                });
                continue;
            }
            conn.randr_query_version(1, 5).map_err(err)?.reply().map_err(err)?;
            let mons = conn
                .randr_get_monitors(screen.root, true)
                .map_err(err)?
                .reply()
                .map_err(err)?;
            let res = conn
                .randr_get_screen_resources_current(screen.root)
                .map_err(err)?
                .reply()
                .ok();
            if mons.monitors.is_empty() {
                out.push(ScreenMonitor {
                    screen: i,
                    monitor: whole(),
                });
                continue;
            }
            for m in mons.monitors {
                let name = conn.get_atom_name(m.name).map_err(err)?.reply().map_err(err)?.name;
                let refresh_mhz = match (&res, m.outputs.first()) {
                    (Some(res), Some(&output)) => refresh_of(conn, res, output).unwrap_or(0),
                    _ => 0,
                };
                out.push(ScreenMonitor {
                    screen: i,
                    monitor: Monitor {
                        name: format!("{}{suffix}", String::from_utf8_lossy(&name)),
                        x: i32::from(m.x),
                        y: i32::from(m.y),
                        width: u32::from(m.width),
                        height: u32::from(m.height),
                        width_mm: m.width_in_millimeters,
                        height_mm: m.height_in_millimeters,
                        refresh_mhz,
                        primary: m.primary,
                    },
                });
            }
        }
        Ok(out)
    }

    /// The size of screen `i` now, from its root window's geometry.
    fn current_size(conn: &RustConnection, i: usize) -> Result<(u32, u32), String> {
        let root = conn.setup().roots.get(i).ok_or("no such screen")?.root;
        let g = conn.get_geometry(root).map_err(err)?.reply().map_err(err)?;
        Ok((u32::from(g.width), u32::from(g.height)))
    }

    fn refresh_of(
        conn: &RustConnection,
        res: &x11rb::protocol::randr::GetScreenResourcesCurrentReply,
        output: x11rb::protocol::randr::Output,
    ) -> Option<u32> {
        let oi = conn
            .randr_get_output_info(output, res.config_timestamp)
            .ok()?
            .reply()
            .ok()?;
        if oi.crtc == 0 {
            return None;
        }
        let ci = conn
            .randr_get_crtc_info(oi.crtc, res.config_timestamp)
            .ok()?
            .reply()
            .ok()?;
        let mode = res.modes.iter().find(|m| m.id == ci.mode)?;
        let total = u64::from(mode.htotal) * u64::from(mode.vtotal);
        if total == 0 {
            return None;
        }
        u32::try_from(u64::from(mode.dot_clock) * 1000 / total).ok()
    }

    /// LIST_MONITORS: the monitors of `display` (`None` = `$DISPLAY`).
    pub(crate) fn list_monitors(display: Option<&str>) -> Result<Vec<Monitor>, String> {
        let (conn, _) = connect(display)?;
        Ok(monitors_of(&conn)?.into_iter().map(|m| m.monitor).collect())
    }

    /// The rectangle a source grabs: screen, x, y, width, height.
    fn resolve(conn: &RustConnection, default_screen: usize, cfg: &X11SourceConfig) -> Result<Rect, String> {
        if let Some((x, y, w, h)) = cfg.rect {
            let screen = cfg.screen.unwrap_or(default_screen);
            if screen >= conn.setup().roots.len() {
                return Err(format!("the display has no screen {screen}"));
            }
            let (sw, sh) = current_size(conn, screen)?;
            let fits = x >= 0
                && y >= 0
                && w > 0
                && h > 0
                && i64::from(x) + i64::from(w) <= i64::from(sw)
                && i64::from(y) + i64::from(h) <= i64::from(sh);
            if !fits {
                return Err(format!(
                    "the rectangle {w}x{h}+{x}+{y} is not inside screen {screen} ({sw}x{sh})"
                ));
            }
            return Ok(Rect { screen, x, y, w, h });
        }
        let mons = monitors_of(conn)?;
        let found = match &cfg.monitor {
            Some(name) => mons.iter().find(|m| &m.monitor.name == name).ok_or_else(|| {
                let names: Vec<&str> = mons.iter().map(|m| m.monitor.name.as_str()).collect();
                format!("no monitor named `{name}` (have: {})", names.join(", "))
            })?,
            None => mons
                .iter()
                .find(|m| m.monitor.primary)
                .or_else(|| mons.first())
                .ok_or("the display has no monitors")?,
        };
        Ok(Rect {
            screen: found.screen,
            x: found.monitor.x,
            y: found.monitor.y,
            w: found.monitor.width,
            h: found.monitor.height,
        })
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Rect {
        screen: usize,
        x: i32,
        y: i32,
        w: u32,
        h: u32,
    }

    /// A memfd shared with the X server, mapped here.
    #[derive(Debug)]
    struct Segment {
        seg: u32,
        ptr: NonNull<std::ffi::c_void>,
        len: usize,
    }

    // SAFETY: the mapping is owned by the Segment and only read through &self.
    unsafe impl Send for Segment {}

    impl Segment {
        fn new(conn: &RustConnection, len: usize) -> Result<Segment, String> {
            let fd: OwnedFd = memfd_create(c"framewire-x11", MFdFlags::MFD_CLOEXEC).map_err(err)?;
            nix::unistd::ftruncate(&fd, i64::try_from(len).map_err(err)?).map_err(err)?;
            let nz = NonZeroUsize::new(len).ok_or("empty grab rectangle")?;
            // SAFETY: a fresh shared mapping of a memfd we own, `len` bytes,
            // which the file has; unmapped in Drop.
            let ptr = unsafe {
                mmap(
                    None,
                    nz,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    MapFlags::MAP_SHARED,
                    fd.as_fd(),
                    0,
                )
            }
            .map_err(err)?;
            let seg = conn.generate_id().map_err(err)?;
            let attach = conn
                .shm_attach_fd(seg, fd, false)
                .map_err(err)
                .and_then(|c| c.check().map_err(err));
            if let Err(e) = attach {
                // SAFETY: the mapping made above, not yet shared with anyone.
                unsafe {
                    let _ = munmap(ptr, len);
                }
                return Err(format!("MIT-SHM attach failed: {e}"));
            }
            Ok(Segment { seg, ptr, len })
        }

        fn bytes(&self) -> &[u8] {
            // SAFETY: ptr maps `len` readable bytes for the Segment's life; the
            // server writes only during a ShmGetImage, which has completed
            // (its reply was read) before this is called.
            unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>(), self.len) }
        }
    }

    impl Drop for Segment {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `new`; no slice of it outlives &self.
            unsafe {
                let _ = munmap(self.ptr, self.len);
            }
        }
    }

    /// One connection grabbing one rectangle.
    struct Grabber {
        conn: RustConnection,
        root: u32,
        rect: Rect,
        seg: Segment,
    }

    impl std::fmt::Debug for Grabber {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Grabber").field("rect", &self.rect).finish()
        }
    }

    impl Grabber {
        fn open(cfg: &X11SourceConfig) -> Result<Grabber, String> {
            let (conn, default_screen) = connect(cfg.display.as_deref())?;
            if conn
                .extension_information(x11rb::protocol::shm::X11_EXTENSION_NAME)
                .map_err(err)?
                .is_none()
            {
                return Err("the X server has no MIT-SHM extension".into());
            }
            conn.shm_query_version().map_err(err)?.reply().map_err(err)?;
            let rect = resolve(&conn, default_screen, cfg)?;
            let root = conn.setup().roots[rect.screen].root;
            let len = rect.w as usize * rect.h as usize * 4;
            let seg = Segment::new(&conn, len)?;
            Ok(Grabber { conn, root, rect, seg })
        }

        /// Grabs one picture as BGRA (alpha 255).
        fn grab(&mut self) -> Result<PixelBuffer, String> {
            let r = self.rect;
            let (x, y) = (i16::try_from(r.x).map_err(err)?, i16::try_from(r.y).map_err(err)?);
            let (w, h) = (u16::try_from(r.w).map_err(err)?, u16::try_from(r.h).map_err(err)?);
            let reply = self
                .conn
                .shm_get_image(self.root, x, y, w, h, !0, ImageFormat::Z_PIXMAP.into(), self.seg.seg, 0)
                .map_err(err)?
                .reply()
                .map_err(err)?;
            if reply.depth != 24 && reply.depth != 32 {
                return Err(format!("unsupported X depth {}", reply.depth));
            }
            let mut data = self.seg.bytes().to_vec();
            for px in data.chunks_exact_mut(4) {
                px[3] = 255;
            }
            PixelBuffer::new(PixelLayout::Bgra, r.w, r.h, data).map_err(err)
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
        let grabber = Grabber::open(&cfg).map_err(refuse)?;
        let mut encoder = Registry::builtin()
            .encoder(&cfg.encode)
            .map_err(|e| refuse(e.to_string()))?;
        let (fps_num, fps_den) = fps_fraction(cfg.fps);
        let open = encoder.stream_open(grabber.rect.w, grabber.rect.h, fps_num, fps_den, &cfg.name);
        shared.add_stream(open.clone(), String::new(), StreamState::Live)?;
        set_target(&shared, &cfg, grabber.rect);
        info!(stream = %cfg.name, rect = ?grabber.rect, fps = cfg.fps, format = %open.format, "x11 screen grab");
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
                match Grabber::open(cfg) {
                    Ok(g) => {
                        info!(stream = %cfg.name, rect = ?g.rect, "x11 display back");
                        if (g.rect.w, g.rect.h) != (open.width, open.height) {
                            open = encoder.stream_open(g.rect.w, g.rect.h, open.fps_num, open.fps_den, &cfg.name);
                            shared.stream_event(&cfg.name, StreamEvent::FormatChanged(open.clone()));
                        }
                        set_target(shared, cfg, g.rect);
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

    /// Re-reads the grabbed monitor's geometry; if it moved or changed
    /// size, grabs the new rectangle from now on (and says format-changed
    /// when the size differs). True if the rectangle changed.
    fn refit(
        shared: &Shared,
        cfg: &X11SourceConfig,
        g: &mut Grabber,
        encoder: &mut dyn Encoder,
        open: &mut StreamOpen,
    ) -> bool {
        let Ok(r) = resolve(&g.conn, g.rect.screen, cfg) else {
            return false;
        };
        if r == g.rect {
            return false;
        }
        match Segment::new(&g.conn, r.w as usize * r.h as usize * 4) {
            Ok(seg) => {
                info!(stream = %cfg.name, from = ?g.rect, to = ?r, "x11 monitor changed");
                g.seg = seg;
                g.rect = r;
                g.root = g.conn.setup().roots[r.screen].root;
                set_target(shared, cfg, r);
                if (r.w, r.h) != (open.width, open.height) {
                    *open = encoder.stream_open(r.w, r.h, open.fps_num, open.fps_den, &cfg.name);
                    shared.stream_event(&cfg.name, StreamEvent::FormatChanged(open.clone()));
                }
                true
            }
            Err(e) => {
                warn!(stream = %cfg.name, error = %e, "x11 resize: new segment failed");
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

    /// A display the injector talks to, with its keyboard mapping.
    struct InjectConn {
        conn: RustConnection,
        /// Keysyms of each keycode from `min_keycode`, `per` per keycode.
        keysyms: Vec<u32>,
        per: usize,
        min_keycode: u8,
        /// Keycodes this injector gave a keysym, oldest first.
        remapped: Vec<u8>,
    }

    impl InjectConn {
        fn open(display: Option<&str>) -> Result<InjectConn, String> {
            let (conn, _) = connect(display)?;
            if conn
                .extension_information(x11rb::protocol::xtest::X11_EXTENSION_NAME)
                .map_err(err)?
                .is_none()
            {
                return Err("the X server has no XTEST extension".into());
            }
            let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
            let map = conn
                .get_keyboard_mapping(min, max - min + 1)
                .map_err(err)?
                .reply()
                .map_err(err)?;
            Ok(InjectConn {
                per: usize::from(map.keysyms_per_keycode),
                keysyms: map.keysyms,
                min_keycode: min,
                remapped: Vec::new(),
                conn,
            })
        }

        /// The keycode that types `keysym` on this display: one whose
        /// first group has it, unshifted preferred.
        fn keycode(&self, keysym: u32) -> Option<u8> {
            if keysym == 0 || self.per == 0 {
                return None;
            }
            for col in 0..self.per.min(2) {
                for (i, syms) in self.keysyms.chunks(self.per).enumerate() {
                    if syms[col] == keysym {
                        return u8::try_from(usize::from(self.min_keycode) + i).ok();
                    }
                }
            }
            None
        }

        /// The keycode of an evdev scancode (+8, the evdev rules' offset).
        fn scancode_keycode(&self, scancode: u32) -> Option<u8> {
            if scancode == 0 {
                return None;
            }
            u8::try_from(scancode + 8).ok().filter(|k| *k >= self.min_keycode)
        }

        /// Gives `keysym` to a keycode that has none (the highest free
        /// one; once none is free, the one given away longest ago), as
        /// `xdotool type` does, so characters this display's layout lacks
        /// can still be typed. The keycode, or `None` if the keymap has no
        /// room.
        fn remap(&mut self, keysym: u32) -> Result<Option<u8>, String> {
            if self.per == 0 {
                return Ok(None);
            }
            let free = self
                .keysyms
                .chunks(self.per)
                .enumerate()
                .rev()
                .find(|(_, syms)| syms.iter().all(|s| *s == 0))
                .map(|(i, _)| i);
            let index = match free {
                Some(i) => i,
                None if !self.remapped.is_empty() => {
                    let code = self.remapped.remove(0);
                    usize::from(code - self.min_keycode)
                }
                None => return Ok(None),
            };
            let code = u8::try_from(usize::from(self.min_keycode) + index).map_err(err)?;
            // Unshifted and shifted alike, so a held Shift changes nothing.
            let mut syms = vec![0u32; self.per];
            syms[0] = keysym;
            if self.per > 1 {
                syms[1] = keysym;
            }
            let per = u8::try_from(self.per).map_err(err)?;
            self.conn
                .change_keyboard_mapping(1, code, per, &syms)
                .map_err(err)?
                .check()
                .map_err(err)?;
            self.keysyms[index * self.per..(index + 1) * self.per].copy_from_slice(&syms);
            self.remapped.push(code);
            debug!(keysym, keycode = code, "XTEST: keysym given to a free keycode");
            Ok(Some(code))
        }
    }

    /// Starts the XTEST injector thread (one per node, connections per display).
    pub(super) fn start_injector(counts: SharedCounts) -> std::io::Result<std::sync::mpsc::Sender<Injection>> {
        let (tx, rx) = std::sync::mpsc::channel::<Injection>();
        std::thread::Builder::new().name("x11-inject".into()).spawn(move || {
            let mut conns: std::collections::HashMap<Option<String>, InjectConn> = Default::default();
            for job in rx {
                let t = &job.target;
                if !conns.contains_key(&t.display) {
                    match InjectConn::open(t.display.as_deref()) {
                        Ok(c) => {
                            conns.insert(t.display.clone(), c);
                        }
                        Err(e) => {
                            warn!(error = %e, "XTEST injection: no display");
                            continue;
                        }
                    }
                }
                let Some(c) = conns.get_mut(&t.display) else { continue };
                match inject(c, t, &job.event) {
                    Ok(true) => {
                        super::lock(&counts).entry(job.stream).or_default().injected += 1;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        warn!(error = %e, "XTEST injection failed");
                        conns.remove(&t.display);
                    }
                }
            }
        })?;
        Ok(tx)
    }

    /// Most wheel clicks replayed for one event.
    const MAX_WHEEL_CLICKS: i32 = 10;

    /// Wheel clicks (X buttons 4/5 vertical, 6/7 horizontal) for a wheel
    /// event in 1/120 notches; a partial notch still clicks once.
    pub(crate) fn wheel_clicks(ev: &InputEvent) -> Vec<(u8, i32)> {
        let clicks = |v: i32| {
            ((v.unsigned_abs() + 60) / 120)
                .max(1)
                .min(MAX_WHEEL_CLICKS.unsigned_abs())
        };
        let mut out = Vec::new();
        if ev.wheel_y != 0 {
            // Positive: away from the user, which X calls up (button 4).
            out.push((
                if ev.wheel_y > 0 { 4 } else { 5 },
                i32::try_from(clicks(ev.wheel_y)).unwrap_or(1),
            ));
        }
        if ev.wheel_x != 0 {
            out.push((
                if ev.wheel_x > 0 { 7 } else { 6 },
                i32::try_from(clicks(ev.wheel_x)).unwrap_or(1),
            ));
        }
        out
    }

    /// Replays one event; `Ok(false)` if there is nothing to replay (a key
    /// this display cannot type, an unknown kind).
    fn inject(c: &mut InjectConn, t: &InputTarget, ev: &InputEvent) -> Result<bool, String> {
        use x11rb::protocol::xproto::{
            BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT, KEY_RELEASE_EVENT, MOTION_NOTIFY_EVENT,
        };
        // A key this layout cannot type gets a free keycode first (its
        // press; its release then finds that keycode).
        let mut key = None;
        if matches!(ev.kind, InputKind::KeyDown | InputKind::KeyUp) {
            // The key's meaning first (the keysym on this display's
            // layout, else on a free keycode), its position (scancode)
            // only for keys without a keysym or when the keymap is full.
            key = c.keycode(ev.keysym);
            if key.is_none() && ev.kind == InputKind::KeyDown && ev.keysym != 0 {
                key = c.remap(ev.keysym)?;
            }
            if key.is_none() {
                key = c.scancode_keycode(ev.scancode);
            }
        }
        let conn = &c.conn;
        let root = conn.setup().roots.get(t.screen).ok_or("no such screen")?.root;
        let x = i16::try_from(t.origin.0.saturating_add(ev.x)).unwrap_or(0);
        let y = i16::try_from(t.origin.1.saturating_add(ev.y)).unwrap_or(0);
        let fake = |kind: u8, detail: u8| -> Result<(), String> {
            conn.xtest_fake_input(kind, detail, 0, root, x, y, 0).map_err(err)?;
            Ok(())
        };
        match ev.kind {
            InputKind::MouseMove => fake(MOTION_NOTIFY_EVENT, 0)?,
            InputKind::ButtonDown | InputKind::ButtonUp if ev.button == 0 => return Ok(false),
            InputKind::ButtonDown => {
                fake(MOTION_NOTIFY_EVENT, 0)?;
                fake(BUTTON_PRESS_EVENT, ev.button)?;
            }
            InputKind::ButtonUp => {
                fake(MOTION_NOTIFY_EVENT, 0)?;
                fake(BUTTON_RELEASE_EVENT, ev.button)?;
            }
            InputKind::Wheel => {
                let clicks = wheel_clicks(ev);
                if clicks.is_empty() {
                    return Ok(false);
                }
                fake(MOTION_NOTIFY_EVENT, 0)?;
                for (button, n) in clicks {
                    for _ in 0..n {
                        fake(BUTTON_PRESS_EVENT, button)?;
                        fake(BUTTON_RELEASE_EVENT, button)?;
                    }
                }
            }
            InputKind::KeyDown | InputKind::KeyUp => {
                let Some(code) = key else {
                    debug!(
                        keysym = ev.keysym,
                        scancode = ev.scancode,
                        "XTEST: no keycode for this key here"
                    );
                    return Ok(false);
                };
                let kind = if ev.kind == InputKind::KeyDown {
                    KEY_PRESS_EVENT
                } else {
                    KEY_RELEASE_EVENT
                };
                // Keys go where the display's focus is; the pointer stays.
                conn.xtest_fake_input(kind, code, 0, root, 0, 0, 0).map_err(err)?;
            }
            _ => return Ok(false),
        }
        conn.flush().map_err(err)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use framewire_proto::{InputEvent, InputKind, Message, Modifiers};
    use tokio::sync::mpsc;

    use super::{FORWARD_QUEUE, InputRegistry};

    fn ev(kind: InputKind) -> InputEvent {
        InputEvent {
            kind,
            timestamp_ns: 1,
            modifiers: Modifiers(0),
            keysym: 0x61,
            scancode: 30,
            button: 1,
            x: 10,
            y: 20,
            wheel_x: 0,
            wheel_y: 120,
        }
    }

    #[test]
    fn counts_per_stream_and_kind() {
        let r = InputRegistry::default();
        for k in [
            InputKind::KeyDown,
            InputKind::KeyDown,
            InputKind::Wheel,
            InputKind::Unknown(99),
        ] {
            r.event("a", ev(k));
        }
        r.event("b", ev(InputKind::MouseMove));
        let all = r.stats("");
        assert_eq!(all.len(), 2);
        let a = &r.stats("a")[0];
        assert_eq!((a.stream.as_str(), a.received, a.injected, a.forwarded), ("a", 4, 0, 0));
        let kinds: Vec<(InputKind, u64)> = a.kinds.iter().map(|k| (k.kind, k.count)).collect();
        assert_eq!(kinds, vec![(InputKind::KeyDown, 2), (InputKind::Wheel, 1)]);
        assert!(r.stats("c").is_empty());
    }

    #[test]
    fn forwards_to_the_upstream_until_cleared() {
        let r = InputRegistry::default();
        let (tx, mut rx) = mpsc::channel(FORWARD_QUEUE);
        r.set_forwarder("s", tx.clone(), 7);
        r.event("s", ev(InputKind::ButtonDown));
        assert_eq!(
            rx.try_recv().unwrap(),
            Message::InputEvent {
                channel: 7,
                event: ev(InputKind::ButtonDown)
            }
        );
        assert_eq!(r.stats("s")[0].forwarded, 1);
        // Another session's sender does not clear this one.
        let (other, _orx) = mpsc::channel(1);
        r.clear_forwarder("s", &other);
        r.event("s", ev(InputKind::ButtonUp));
        assert!(rx.try_recv().is_ok());
        r.clear_forwarder("s", &tx);
        r.event("s", ev(InputKind::ButtonUp));
        assert!(rx.try_recv().is_err());
        let s = &r.stats("s")[0];
        assert_eq!((s.received, s.forwarded), (3, 2));
    }

    #[test]
    fn a_full_upstream_queue_drops_and_does_not_count() {
        let r = InputRegistry::default();
        let (tx, _rx) = mpsc::channel(2);
        r.set_forwarder("s", tx, 1);
        for _ in 0..5 {
            r.event("s", ev(InputKind::MouseMove));
        }
        let s = &r.stats("s")[0];
        assert_eq!((s.received, s.forwarded), (5, 2));
        r.forget("s");
        assert!(r.stats("").is_empty());
    }

    #[cfg(feature = "x11")]
    #[test]
    fn wheel_notches_become_button_clicks() {
        use super::imp::wheel_clicks;
        let w = |x: i32, y: i32| InputEvent {
            wheel_x: x,
            wheel_y: y,
            ..ev(InputKind::Wheel)
        };
        assert_eq!(wheel_clicks(&w(0, 120)), vec![(4, 1)]);
        assert_eq!(wheel_clicks(&w(0, -240)), vec![(5, 2)]);
        assert_eq!(wheel_clicks(&w(30, 0)), vec![(7, 1)]);
        assert_eq!(wheel_clicks(&w(-120, 120)), vec![(4, 1), (6, 1)]);
        assert_eq!(wheel_clicks(&w(0, i32::MIN)), vec![(5, 10)]);
        assert!(wheel_clicks(&w(0, 0)).is_empty());
    }
}
