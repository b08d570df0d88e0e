//! An open V4L2 device: capabilities, formats, sizes and rates, format
//! and rate setting (its controls are in [`super::controls`]).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use framewire_proto::control::{V4l2Control, V4l2Device, V4l2Format, V4l2FrameSize};
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

    pub(crate) fn unsupported(&self, message: String) -> V4l2Error {
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

pub use super::controls::{check_value, control_key};

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
