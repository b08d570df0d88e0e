//! An open V4L2 device: capabilities, formats, sizes and rates, format
//! and rate setting, and controls.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use framewire_proto::ControlType;
use framewire_proto::control::{ControlValue, MenuItem, V4l2Control, V4l2Device, V4l2Format, V4l2FrameSize};
use nix::errno::Errno;

use super::sys::{self, cstr, fourcc_str, zeroed};

/// Why a V4L2 operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum V4l2Error {
    /// A system call failed.
    #[error("{path}: {op}: {errno}")]
    Sys {
        /// The device.
        path: String,
        /// The ioctl or call (`VIDIOC_DQBUF`, `open`, ...).
        op: &'static str,
        /// The error number.
        errno: Errno,
    },
    /// The device cannot do what was asked (not a capture device, the
    /// format or size is not offered, ...). The message lists what it offers.
    #[error("{path}: {message}")]
    Unsupported {
        /// The device.
        path: String,
        /// What is wrong and what the device offers.
        message: String,
    },
    /// A control request was refused (out of range, read-only, no such
    /// control): the message says why.
    #[error("{0}")]
    Control(String),
}

impl V4l2Error {
    /// Whether the error means the device went away or broke (unplugged,
    /// driver reported a fatal error): the source should close it and wait
    /// for it to come back.
    pub fn is_device_lost(&self) -> bool {
        matches!(
            self,
            V4l2Error::Sys {
                errno: Errno::ENODEV
                    | Errno::EIO
                    | Errno::ENXIO
                    | Errno::ENOENT
                    | Errno::EPIPE
                    | Errno::EBADF
                    | Errno::ESHUTDOWN,
                ..
            }
        )
    }

    /// The error number, for system call failures.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            V4l2Error::Sys { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// What `VIDIOC_QUERYCAP` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The driver's name (`uvcvideo`, `vivid`).
    pub driver: String,
    /// The card's name.
    pub card: String,
    /// Bus information (`usb-0000:00:14.0-1`, `platform:vivid-000`).
    pub bus: String,
    /// Capabilities of the whole physical device.
    pub capabilities: u32,
    /// Capabilities of this node (equal to `capabilities` on old drivers).
    pub device_caps: u32,
}

impl Capabilities {
    /// Whether this node captures video with streaming I/O.
    pub fn is_streaming_capture(&self) -> bool {
        self.device_caps & sys::CAP_VIDEO_CAPTURE != 0 && self.device_caps & sys::CAP_STREAMING != 0
    }
}

/// The format a device is set to (`VIDIOC_G_FMT`/`S_FMT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixFormat {
    /// Fourcc.
    pub fourcc: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per line of the first plane (0 for compressed formats).
    pub bytesperline: u32,
    /// Largest size of one buffer's data.
    pub sizeimage: u32,
}

/// A control as `VIDIOC_QUERY_EXT_CTRL` describes it, with the raw type.
#[derive(Debug, Clone)]
pub struct ControlInfo {
    /// The wire description.
    pub control: V4l2Control,
    /// The kernel's type number (compound types are >= 0x100).
    pub raw_type: u32,
}

/// An open V4L2 device node.
#[derive(Debug)]
pub struct Device {
    fd: OwnedFd,
    path: PathBuf,
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Runs an ioctl, retrying on `EINTR`.
pub(crate) fn xioctl(path: &Path, op: &'static str, mut f: impl FnMut() -> nix::Result<i32>) -> Result<(), V4l2Error> {
    loop {
        match f() {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                return Err(V4l2Error::Sys {
                    path: path.display().to_string(),
                    op,
                    errno,
                });
            }
        }
    }
}

impl Device {
    /// Opens `path` read-write and non-blocking.
    pub fn open(path: impl AsRef<Path>) -> Result<Device, V4l2Error> {
        let path = path.as_ref().to_path_buf();
        let file = File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| V4l2Error::Sys {
                path: path.display().to_string(),
                op: "open",
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        Ok(Device { fd: file.into(), path })
    }

    /// The path it was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    fn unsupported(&self, message: String) -> V4l2Error {
        V4l2Error::Unsupported {
            path: self.path.display().to_string(),
            message,
        }
    }

    /// `VIDIOC_QUERYCAP`.
    pub fn capabilities(&self) -> Result<Capabilities, V4l2Error> {
        let mut cap: sys::v4l2_capability = zeroed();
        // SAFETY: `cap` is a valid, writable v4l2_capability for the
        // duration of the call; the fd is open.
        xioctl(&self.path, "VIDIOC_QUERYCAP", || unsafe {
            sys::vidioc_querycap(self.raw(), &mut cap)
        })?;
        let device_caps = if cap.capabilities & sys::CAP_DEVICE_CAPS != 0 {
            cap.device_caps
        } else {
            cap.capabilities
        };
        Ok(Capabilities {
            driver: cstr(&cap.driver),
            card: cstr(&cap.card),
            bus: cstr(&cap.bus_info),
            capabilities: cap.capabilities,
            device_caps,
        })
    }

    /// Capture formats with their sizes and intervals (`VIDIOC_ENUM_FMT`,
    /// `VIDIOC_ENUM_FRAMESIZES`, `VIDIOC_ENUM_FRAMEINTERVALS`).
    pub fn formats(&self) -> Result<Vec<V4l2Format>, V4l2Error> {
        let mut out = Vec::new();
        for index in 0.. {
            let mut d: sys::v4l2_fmtdesc = zeroed();
            d.index = index;
            d.type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
            // SAFETY: `d` is a valid v4l2_fmtdesc, live across the call.
            match xioctl(&self.path, "VIDIOC_ENUM_FMT", || unsafe {
                sys::vidioc_enum_fmt(self.raw(), &mut d)
            }) {
                Ok(()) => {}
                Err(V4l2Error::Sys {
                    errno: Errno::EINVAL, ..
                }) => break,
                Err(e) => return Err(e),
            }
            out.push(V4l2Format {
                fourcc: d.pixelformat,
                description: cstr(&d.description),
                flags: d.flags,
                sizes: self.frame_sizes(d.pixelformat)?,
            });
        }
        Ok(out)
    }

    fn frame_sizes(&self, fourcc: u32) -> Result<Vec<V4l2FrameSize>, V4l2Error> {
        let mut out = Vec::new();
        for index in 0.. {
            let mut s: sys::v4l2_frmsizeenum = zeroed();
            s.index = index;
            s.pixel_format = fourcc;
            // SAFETY: `s` is a valid v4l2_frmsizeenum, live across the call.
            let r = xioctl(&self.path, "VIDIOC_ENUM_FRAMESIZES", || unsafe {
                sys::vidioc_enum_framesizes(self.raw(), &mut s)
            });
            match r {
                Ok(()) => {}
                Err(V4l2Error::Sys {
                    errno: Errno::EINVAL | Errno::ENOTTY,
                    ..
                }) => break,
                Err(e) => return Err(e),
            }
            let size = if s.type_ == sys::FRM_TYPE_DISCRETE {
                // SAFETY: the kernel filled the `discrete` member (type says so).
                let d = unsafe { s.u.discrete };
                V4l2FrameSize {
                    kind: 0,
                    width: d.width,
                    height: d.height,
                    max_width: d.width,
                    max_height: d.height,
                    step_width: 0,
                    step_height: 0,
                    intervals: self.intervals(fourcc, d.width, d.height)?,
                }
            } else {
                // SAFETY: stepwise and continuous both fill `stepwise`.
                let w = unsafe { s.u.stepwise };
                V4l2FrameSize {
                    kind: if s.type_ == sys::FRM_TYPE_STEPWISE { 1 } else { 2 },
                    width: w.min_width,
                    height: w.min_height,
                    max_width: w.max_width,
                    max_height: w.max_height,
                    step_width: w.step_width,
                    step_height: w.step_height,
                    intervals: self.intervals(fourcc, w.max_width, w.max_height)?,
                }
            };
            let last = size.kind != 0;
            out.push(size);
            if last {
                break; // stepwise and continuous come as index 0 only
            }
        }
        Ok(out)
    }

    /// Frame intervals of a size. Stepwise ranges are given as their two
    /// ends (minimum and maximum interval).
    fn intervals(&self, fourcc: u32, width: u32, height: u32) -> Result<Vec<(u32, u32)>, V4l2Error> {
        let mut out = Vec::new();
        for index in 0.. {
            let mut v: sys::v4l2_frmivalenum = zeroed();
            v.index = index;
            v.pixel_format = fourcc;
            v.width = width;
            v.height = height;
            // SAFETY: `v` is a valid v4l2_frmivalenum, live across the call.
            let r = xioctl(&self.path, "VIDIOC_ENUM_FRAMEINTERVALS", || unsafe {
                sys::vidioc_enum_frameintervals(self.raw(), &mut v)
            });
            match r {
                Ok(()) => {}
                Err(V4l2Error::Sys {
                    errno: Errno::EINVAL | Errno::ENOTTY,
                    ..
                }) => break,
                Err(e) => return Err(e),
            }
            if v.type_ == sys::FRM_TYPE_DISCRETE {
                // SAFETY: the kernel filled `discrete` (type says so).
                let f = unsafe { v.u.discrete };
                out.push((f.numerator, f.denominator));
            } else {
                // SAFETY: stepwise and continuous fill `stepwise`.
                let s = unsafe { v.u.stepwise };
                out.push((s.min.numerator, s.min.denominator));
                out.push((s.max.numerator, s.max.denominator));
                break;
            }
        }
        Ok(out)
    }

    /// LIST_DEVICES entry for this device.
    pub fn describe(&self) -> Result<V4l2Device, V4l2Error> {
        let caps = self.capabilities()?;
        Ok(V4l2Device {
            path: self.path.display().to_string(),
            card: caps.card,
            driver: caps.driver,
            bus: caps.bus,
            capabilities: caps.device_caps,
            formats: self.formats()?,
        })
    }

    /// `VIDIOC_G_FMT`.
    pub fn format(&self) -> Result<PixFormat, V4l2Error> {
        let mut f: sys::v4l2_format = zeroed();
        f.type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
        // SAFETY: `f` is a valid v4l2_format, live across the call.
        xioctl(&self.path, "VIDIOC_G_FMT", || unsafe {
            sys::vidioc_g_fmt(self.raw(), &mut f)
        })?;
        Ok(pix(&f))
    }

    /// `VIDIOC_S_FMT`; fails unless the driver took exactly this fourcc and size.
    pub fn set_format(&self, fourcc: u32, width: u32, height: u32) -> Result<PixFormat, V4l2Error> {
        let mut f: sys::v4l2_format = zeroed();
        f.type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
        f.fmt.pix = sys::v4l2_pix_format {
            width,
            height,
            pixelformat: fourcc,
            field: sys::FIELD_ANY,
            ..Default::default()
        };
        // SAFETY: `f` is a valid v4l2_format, live across the call.
        xioctl(&self.path, "VIDIOC_S_FMT", || unsafe {
            sys::vidioc_s_fmt(self.raw(), &mut f)
        })?;
        let got = pix(&f);
        if (got.fourcc, got.width, got.height) != (fourcc, width, height) {
            return Err(self.unsupported(format!(
                "asked for {} {width}x{height}, the driver set {} {}x{}",
                fourcc_str(fourcc),
                fourcc_str(got.fourcc),
                got.width,
                got.height
            )));
        }
        Ok(got)
    }

    /// `VIDIOC_S_PARM` with a frame interval of `num/den` seconds; returns
    /// the interval the driver chose, or `None` when the driver has no
    /// frame-rate setting.
    pub fn set_interval(&self, num: u32, den: u32) -> Result<Option<(u32, u32)>, V4l2Error> {
        let mut p: sys::v4l2_streamparm = zeroed();
        p.type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
        // SAFETY: `p` is a valid v4l2_streamparm, live across the call.
        match xioctl(&self.path, "VIDIOC_G_PARM", || unsafe {
            sys::vidioc_g_parm(self.raw(), &mut p)
        }) {
            Ok(()) => {}
            Err(V4l2Error::Sys {
                errno: Errno::ENOTTY | Errno::EINVAL,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        }
        // SAFETY: for a capture type the kernel fills `capture`.
        if unsafe { p.parm.capture }.capability & sys::CAP_TIMEPERFRAME == 0 {
            return Ok(None);
        }
        p.parm.capture = sys::v4l2_captureparm {
            timeperframe: sys::v4l2_fract {
                numerator: num,
                denominator: den,
            },
            ..Default::default()
        };
        // SAFETY: as above.
        xioctl(&self.path, "VIDIOC_S_PARM", || unsafe {
            sys::vidioc_s_parm(self.raw(), &mut p)
        })?;
        // SAFETY: the kernel filled `capture` back.
        let t = unsafe { p.parm.capture }.timeperframe;
        Ok(Some((t.numerator, t.denominator)))
    }

    /// Every control (`VIDIOC_QUERY_EXT_CTRL` with `NEXT_CTRL`), class
    /// markers and disabled controls left out. Compound controls (arrays,
    /// areas) are listed with their kernel type in `raw_type`.
    pub fn control_infos(&self) -> Result<Vec<ControlInfo>, V4l2Error> {
        let mut out = Vec::new();
        let mut id = sys::CTRL_FLAG_NEXT_CTRL;
        loop {
            let mut q: sys::v4l2_query_ext_ctrl = zeroed();
            q.id = id;
            // SAFETY: `q` is a valid v4l2_query_ext_ctrl, live across the call.
            match xioctl(&self.path, "VIDIOC_QUERY_EXT_CTRL", || unsafe {
                sys::vidioc_query_ext_ctrl(self.raw(), &mut q)
            }) {
                Ok(()) => {}
                Err(V4l2Error::Sys {
                    errno: Errno::EINVAL | Errno::ENOTTY,
                    ..
                }) => break,
                Err(e) => return Err(e),
            }
            id = q.id | sys::CTRL_FLAG_NEXT_CTRL;
            if q.type_ == sys::CTRL_TYPE_CTRL_CLASS || q.flags & sys::CTRL_FLAG_DISABLED != 0 {
                continue;
            }
            let menu = if matches!(q.type_, sys::CTRL_TYPE_MENU | sys::CTRL_TYPE_INTEGER_MENU) {
                self.menu(&q)?
            } else {
                Vec::new()
            };
            let ctrl_type = match u8::try_from(q.type_) {
                Ok(t) if q.type_ < 0x100 => ControlType::from_raw(t),
                _ => ControlType::Unknown(0xff),
            };
            out.push(ControlInfo {
                raw_type: q.type_,
                control: V4l2Control {
                    id: q.id,
                    class: sys::ctrl_id2class(q.id),
                    ctrl_type,
                    name: cstr(&q.name),
                    min: q.minimum,
                    max: q.maximum,
                    step: q.step,
                    default: q.default_value,
                    flags: q.flags,
                    menu,
                },
            });
        }
        Ok(out)
    }

    /// LIST_CONTROLS: the controls whose value fits an integer (compound
    /// controls left out: the protocol carries one `i64` per value).
    pub fn controls(&self) -> Result<Vec<V4l2Control>, V4l2Error> {
        Ok(self
            .control_infos()?
            .into_iter()
            .filter(|c| c.raw_type < 0x100)
            .map(|c| c.control)
            .collect())
    }

    fn menu(&self, q: &sys::v4l2_query_ext_ctrl) -> Result<Vec<MenuItem>, V4l2Error> {
        let mut out = Vec::new();
        let (Ok(lo), Ok(hi)) = (u32::try_from(q.minimum), u32::try_from(q.maximum)) else {
            return Ok(out);
        };
        for index in lo..=hi.min(lo.saturating_add(1024)) {
            let mut m: sys::v4l2_querymenu = zeroed();
            m.id = q.id;
            m.index = index;
            // SAFETY: `m` is a valid v4l2_querymenu, live across the call.
            match xioctl(&self.path, "VIDIOC_QUERYMENU", || unsafe {
                sys::vidioc_querymenu(self.raw(), &mut m)
            }) {
                Ok(()) => {}
                Err(V4l2Error::Sys {
                    errno: Errno::EINVAL, ..
                }) => continue, // a hole in the menu
                Err(e) => return Err(e),
            }
            let item = if q.type_ == sys::CTRL_TYPE_INTEGER_MENU {
                // SAFETY: integer menus fill `value`; the union is read by copy.
                let value = unsafe { m.u.value };
                MenuItem {
                    index,
                    name: value.to_string(),
                    value,
                }
            } else {
                // SAFETY: named menus fill `name`; the union is read by copy.
                let name = unsafe { m.u.name };
                MenuItem {
                    index,
                    name: cstr(&name),
                    value: i64::from(index),
                }
            };
            out.push(item);
        }
        Ok(out)
    }

    /// Current values (`VIDIOC_G_EXT_CTRLS`, one control at a time so one
    /// write-only or volatile control does not fail the rest). `ids` empty:
    /// every readable control with an integer value.
    pub fn get_controls(&self, ids: &[u32]) -> Result<Vec<ControlValue>, V4l2Error> {
        let infos = self.control_infos()?;
        let wanted: Vec<&ControlInfo> = if ids.is_empty() {
            infos.iter().filter(|c| readable(c)).collect()
        } else {
            ids.iter()
                .map(|id| {
                    infos
                        .iter()
                        .find(|c| c.control.id == *id)
                        .ok_or_else(|| V4l2Error::Control(format!("no control with id 0x{id:08x}")))
                })
                .collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(wanted.len());
        for c in wanted {
            if !readable(c) {
                return Err(V4l2Error::Control(format!(
                    "control `{}` cannot be read ({})",
                    c.control.name,
                    if c.control.flags & sys::CTRL_FLAG_WRITE_ONLY != 0 {
                        "write-only"
                    } else {
                        "no integer value"
                    }
                )));
            }
            out.push(ControlValue {
                id: c.control.id,
                value: self.get_one(c)?,
            });
        }
        Ok(out)
    }

    fn get_one(&self, c: &ControlInfo) -> Result<i64, V4l2Error> {
        let mut ctrl: sys::v4l2_ext_control = zeroed();
        ctrl.id = c.control.id;
        let mut ext: sys::v4l2_ext_controls = zeroed();
        ext.which = sys::ctrl_id2class(c.control.id);
        ext.count = 1;
        ext.controls = &mut ctrl;
        // SAFETY: `ext` points at `ctrl`, one element, both live across the
        // call; integer controls carry no payload pointer.
        xioctl(&self.path, "VIDIOC_G_EXT_CTRLS", || unsafe {
            sys::vidioc_g_ext_ctrls(self.raw(), &mut ext)
        })?;
        Ok(ext_value(c.raw_type, ctrl))
    }

    /// Sets values in order (`VIDIOC_S_EXT_CTRLS`, one at a time), after
    /// checking each against the control's range, step, menu and flags;
    /// the first refused value fails the call with the reason. Returns the
    /// values as the driver holds them afterwards (buttons read as 0).
    pub fn set_controls(&self, values: &[ControlValue]) -> Result<Vec<ControlValue>, V4l2Error> {
        let infos = self.control_infos()?;
        let mut checked = Vec::with_capacity(values.len());
        for v in values {
            let c = infos
                .iter()
                .find(|c| c.control.id == v.id)
                .ok_or_else(|| V4l2Error::Control(format!("no control with id 0x{:08x}", v.id)))?;
            check_value(c, v.value).map_err(V4l2Error::Control)?;
            checked.push((c, v.value));
        }
        let mut out = Vec::with_capacity(checked.len());
        for (c, value) in checked {
            let mut ctrl: sys::v4l2_ext_control = zeroed();
            ctrl.id = c.control.id;
            if c.raw_type == sys::CTRL_TYPE_INTEGER64 {
                ctrl.u.value64 = value;
            } else {
                // Range-checked above: fits 32 bits (bitmasks as u32).
                #[allow(clippy::cast_possible_truncation)]
                {
                    ctrl.u.value = value as i32;
                }
            }
            let mut ext: sys::v4l2_ext_controls = zeroed();
            ext.which = sys::ctrl_id2class(c.control.id);
            ext.count = 1;
            ext.controls = &mut ctrl;
            // SAFETY: `ext` points at `ctrl`, one element, both live across
            // the call; integer controls carry no payload pointer.
            let r = xioctl(&self.path, "VIDIOC_S_EXT_CTRLS", || unsafe {
                sys::vidioc_s_ext_ctrls(self.raw(), &mut ext)
            });
            match r {
                Ok(()) => {}
                Err(V4l2Error::Sys {
                    errno: e @ (Errno::EINVAL | Errno::ERANGE | Errno::EACCES | Errno::EBUSY),
                    ..
                }) => {
                    return Err(V4l2Error::Control(format!(
                        "the driver refused {} = {value}: {e}",
                        c.control.name
                    )));
                }
                Err(e) => return Err(e),
            }
            let now = if readable(c) { self.get_one(c)? } else { 0 };
            out.push(ControlValue {
                id: c.control.id,
                value: now,
            });
        }
        Ok(out)
    }
}

fn pix(f: &sys::v4l2_format) -> PixFormat {
    // SAFETY: for a capture type the kernel fills `pix`.
    let p = unsafe { f.fmt.pix };
    PixFormat {
        fourcc: p.pixelformat,
        width: p.width,
        height: p.height,
        bytesperline: p.bytesperline,
        sizeimage: p.sizeimage,
    }
}

fn ext_value(raw_type: u32, ctrl: sys::v4l2_ext_control) -> i64 {
    // SAFETY (both arms): the union is plain integers read by copy from a
    // packed struct; which member is valid follows from the control type.
    if raw_type == sys::CTRL_TYPE_INTEGER64 {
        let u = ctrl.u;
        // SAFETY: 64-bit controls fill `value64`.
        unsafe { u.value64 }
    } else if raw_type == sys::CTRL_TYPE_BITMASK {
        let u = ctrl.u;
        // SAFETY: other integer controls fill `value` (32 bits); a bitmask
        // is unsigned.
        i64::from(unsafe { u.value } as u32)
    } else {
        let u = ctrl.u;
        // SAFETY: as above.
        i64::from(unsafe { u.value })
    }
}

/// Whether GET_CONTROLS can read a control.
fn readable(c: &ControlInfo) -> bool {
    c.control.flags & sys::CTRL_FLAG_WRITE_ONLY == 0
        && matches!(
            c.raw_type,
            sys::CTRL_TYPE_INTEGER
                | sys::CTRL_TYPE_BOOLEAN
                | sys::CTRL_TYPE_MENU
                | sys::CTRL_TYPE_INTEGER64
                | sys::CTRL_TYPE_BITMASK
                | sys::CTRL_TYPE_INTEGER_MENU
        )
}

/// Checks a value against a control's type, flags, range, step and menu.
pub fn check_value(c: &ControlInfo, value: i64) -> Result<(), String> {
    let k = &c.control;
    let name = &k.name;
    if k.flags & sys::CTRL_FLAG_READ_ONLY != 0 {
        return Err(format!("control `{name}` is read-only"));
    }
    if k.flags & sys::CTRL_FLAG_INACTIVE != 0 {
        return Err(format!(
            "control `{name}` is inactive (another control governs it, e.g. its automatic mode)"
        ));
    }
    match c.raw_type {
        sys::CTRL_TYPE_BUTTON => return Ok(()),
        sys::CTRL_TYPE_INTEGER
        | sys::CTRL_TYPE_BOOLEAN
        | sys::CTRL_TYPE_MENU
        | sys::CTRL_TYPE_INTEGER64
        | sys::CTRL_TYPE_INTEGER_MENU => {}
        sys::CTRL_TYPE_BITMASK => {
            // `max` is the mask of bits that may be set.
            return if value < 0 || value & !k.max != 0 {
                Err(format!("{name} = {value:#x} sets bits outside the mask {:#x}", k.max))
            } else {
                Ok(())
            };
        }
        _ => return Err(format!("control `{name}` has no integer value (type {})", c.raw_type)),
    }
    if value < k.min || value > k.max {
        return Err(format!("{name} = {value} is out of range ({}..={})", k.min, k.max));
    }
    if k.step > 1 && matches!(c.raw_type, sys::CTRL_TYPE_INTEGER | sys::CTRL_TYPE_INTEGER64) {
        let off = value.abs_diff(k.min);
        if !off.is_multiple_of(k.step) {
            return Err(format!(
                "{name} = {value} is not on a step ({} + n * {})",
                k.min, k.step
            ));
        }
    }
    if matches!(c.raw_type, sys::CTRL_TYPE_MENU | sys::CTRL_TYPE_INTEGER_MENU)
        && !k.menu.iter().any(|m| i64::from(m.index) == value)
    {
        let items: Vec<String> = k.menu.iter().map(|m| format!("{}={}", m.index, m.name)).collect();
        return Err(format!("{name} = {value} is not a menu item ({})", items.join(", ")));
    }
    Ok(())
}

pub use crate::v4l2_names::control_key;

/// The `/dev/video*` nodes, sorted by number.
pub fn device_paths() -> Vec<PathBuf> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u32 = name.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// LIST_DEVICES: every video capture node that can stream. Nodes that
/// cannot be opened or are not capture devices are left out.
pub fn list_devices() -> Vec<V4l2Device> {
    device_paths()
        .into_iter()
        .filter_map(|p| {
            let d = Device::open(&p).ok()?;
            if !d.capabilities().ok()?.is_streaming_capture() {
                return None;
            }
            d.describe().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(raw_type: u32, min: i64, max: i64, step: u64, flags: u32) -> ControlInfo {
        ControlInfo {
            raw_type,
            control: V4l2Control {
                id: 1,
                class: 0,
                ctrl_type: ControlType::from_raw(raw_type as u8),
                name: "Brightness".into(),
                min,
                max,
                step,
                default: min,
                flags,
                menu: vec![
                    MenuItem {
                        index: 1,
                        name: "a".into(),
                        value: 1,
                    },
                    MenuItem {
                        index: 3,
                        name: "c".into(),
                        value: 3,
                    },
                ],
            },
        }
    }

    #[test]
    fn values_are_checked_with_a_reason() {
        let int = info(sys::CTRL_TYPE_INTEGER, 0, 255, 1, 0);
        assert!(check_value(&int, 200).is_ok());
        let e = check_value(&int, 300).unwrap_err();
        assert!(e.contains("out of range (0..=255)"), "{e}");
        let stepped = info(sys::CTRL_TYPE_INTEGER, 0, 100, 10, 0);
        assert!(check_value(&stepped, 15).unwrap_err().contains("step"));
        let ro = info(sys::CTRL_TYPE_INTEGER, 0, 255, 1, sys::CTRL_FLAG_READ_ONLY);
        assert!(check_value(&ro, 1).unwrap_err().contains("read-only"));
        let inactive = info(sys::CTRL_TYPE_INTEGER, 0, 255, 1, sys::CTRL_FLAG_INACTIVE);
        assert!(check_value(&inactive, 1).unwrap_err().contains("inactive"));
        let menu = info(sys::CTRL_TYPE_MENU, 1, 3, 1, 0);
        assert!(check_value(&menu, 3).is_ok());
        assert!(
            check_value(&menu, 2)
                .unwrap_err()
                .contains("not a menu item (1=a, 3=c)")
        );
        let mask = info(sys::CTRL_TYPE_BITMASK, 0, 0x8040_2010, 0, 0);
        assert!(check_value(&mask, 0x8000_2000).is_ok());
        assert!(check_value(&mask, 1).is_err());
        let compound = info(0x100, 0, 1, 1, 0);
        assert!(check_value(&compound, 0).is_err());
    }

    #[test]
    fn names_compare_like_v4l2_ctl_prints_them() {
        assert_eq!(control_key("White Balance, Automatic"), "white_balance_automatic");
        assert_eq!(control_key("Integer 32 Bits"), "integer_32_bits");
        assert_eq!(control_key("brightness"), "brightness");
        assert_eq!(control_key("Limited RGB Range (16-235)"), "limited_rgb_range_16_235");
    }
}
