//! X11: the monitors of a display, and grabbing a rectangle of a screen
//! through MIT-SHM (docs/x11.md).
//!
//! - **Monitors** come from XRandR 1.5 `GetMonitors` on every screen of the
//!   display, with the refresh rate of the first output's CRTC mode.
//!   Monitors of screen N > 0 are named `NAME@N` so names stay unique.
//! - **Grabbing** uses MIT-SHM with a memfd-backed segment passed to the
//!   server (`ShmAttachFd`): one `ShmGetImage` per frame copies the
//!   rectangle into memory shared with the server. The X padding byte is
//!   set to 255 (opaque alpha) so lossless encodings are bit-exact.
//! - **Injection** ([`inject`]) replays viewers' input into a display
//!   through XTEST.

pub mod inject;

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use framewire_codec::{PixelBuffer, PixelLayout};
use framewire_proto::control::Monitor;
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};
use x11rb::rust_connection::RustConnection;

/// What to grab: a monitor by name (`None`: the primary, or the first),
/// or an explicit rectangle `(x, y, width, height)` on a screen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// X display (`:1`); `None` = `$DISPLAY`.
    pub display: Option<String>,
    /// Monitor to grab by name; ignored when `rect` is set.
    pub monitor: Option<String>,
    /// Explicit rectangle on `screen`.
    pub rect: Option<(i32, i32, u32, u32)>,
    /// Screen of `rect` (default: the display's default screen).
    pub screen: Option<usize>,
}

fn connect(display: Option<&str>) -> Result<(RustConnection, usize), String> {
    x11rb::connect(display).map_err(|e| format!("cannot open X display {}: {e}", display.unwrap_or("$DISPLAY")))
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A monitor with the screen it is on.
#[derive(Debug, Clone)]
struct ScreenMonitor {
    screen: usize,
    monitor: Monitor,
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
pub fn list_monitors(display: Option<&str>) -> Result<Vec<Monitor>, String> {
    let (conn, _) = connect(display)?;
    Ok(monitors_of(&conn)?.into_iter().map(|m| m.monitor).collect())
}

/// The rectangle a source grabs: screen, x, y, width, height.
fn resolve(conn: &RustConnection, default_screen: usize, cfg: &Target) -> Result<Rect, String> {
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

/// A rectangle of a screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// The screen.
    pub screen: usize,
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
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
pub struct Grabber {
    conn: RustConnection,
    root: u32,
    rect: Rect,
    seg: Segment,
    target: Target,
}

impl std::fmt::Debug for Grabber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grabber").field("rect", &self.rect).finish()
    }
}

impl Grabber {
    /// Connects to the display and sets up the grab of `target`. An error
    /// says why not (no display, no MIT-SHM, no such monitor, a rectangle
    /// outside the screen).
    pub fn open(target: &Target) -> Result<Grabber, String> {
        let cfg = target;
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
        Ok(Grabber {
            conn,
            root,
            rect,
            seg,
            target: target.clone(),
        })
    }

    /// The rectangle grabbed.
    pub fn rect(&self) -> Rect {
        self.rect
    }

    /// Re-reads the grabbed monitor's geometry (a grab of a monitor, not a
    /// fixed rectangle); if it moved or changed size, grabs the new
    /// rectangle from now on. The new rectangle if it changed.
    pub fn refit(&mut self) -> Result<Option<Rect>, String> {
        if self.target.rect.is_some() {
            return Ok(None);
        }
        let r = resolve(&self.conn, self.rect.screen, &self.target)?;
        if r == self.rect {
            return Ok(None);
        }
        self.seg = Segment::new(&self.conn, r.w as usize * r.h as usize * 4)?;
        self.rect = r;
        self.root = self.conn.setup().roots[r.screen].root;
        Ok(Some(r))
    }

    /// Grabs one picture as BGRA (alpha 255).
    pub fn grab(&mut self) -> Result<PixelBuffer, String> {
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
