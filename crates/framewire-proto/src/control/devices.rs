//! The devices around a node: V4L2 formats and controls, X11 monitors.

use bytes::{BufMut, BytesMut};

use crate::codes::ControlType;
use crate::error::FieldError;
use crate::fields::{Fields, get_bool, get_list, put_list};
use crate::wire::{Reader, WriteExt};

/// A fourcc as text, e.g. `YUYV` (`?` for bytes that are not printable);
/// big-endian variants (bit 31 set) as `v4l2-ctl` prints them, `Y16 -BE`.
pub fn fourcc_str(code: u32) -> String {
    let s: String = (code & !(1 << 31))
        .to_le_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect();
    if code & (1 << 31) != 0 { format!("{s}-BE") } else { s }
}

/// A frame size a V4L2 format offers, with its frame intervals:
/// `kind u8 (0 discrete, 1 stepwise, 2 continuous), width u32, height u32,
/// max_width u32, max_height u32, step_width u32, step_height u32,
/// intervals list(num u32, den u32)`. For discrete sizes the maxima equal
/// the size and the steps are 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2FrameSize {
    /// 0 discrete, 1 stepwise, 2 continuous.
    pub kind: u8,
    /// Width (minimum width for stepwise).
    pub width: u32,
    /// Height (minimum height for stepwise).
    pub height: u32,
    /// Maximum width.
    pub max_width: u32,
    /// Maximum height.
    pub max_height: u32,
    /// Width step.
    pub step_width: u32,
    /// Height step.
    pub step_height: u32,
    /// Frame intervals (seconds per frame) as `(numerator, denominator)`.
    pub intervals: Vec<(u32, u32)>,
}

impl Fields for V4l2FrameSize {
    const MIN_LEN: usize = 1 + 24 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u8(self.kind);
        b.put_u32_le(self.width);
        b.put_u32_le(self.height);
        b.put_u32_le(self.max_width);
        b.put_u32_le(self.max_height);
        b.put_u32_le(self.step_width);
        b.put_u32_le(self.step_height);
        put_list(b, "intervals", &self.intervals)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(V4l2FrameSize {
            kind: r.u8("kind")?,
            width: r.u32("width")?,
            height: r.u32("height")?,
            max_width: r.u32("max_width")?,
            max_height: r.u32("max_height")?,
            step_width: r.u32("step_width")?,
            step_height: r.u32("step_height")?,
            intervals: get_list(r, "intervals")?,
        })
    }
}

/// A pixel format a V4L2 device offers: `fourcc u32, description string,
/// flags u32, sizes list(V4l2FrameSize)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Format {
    /// The four-character code, little-endian (`MJPG`, `YUYV`, ...).
    pub fourcc: u32,
    /// The driver's description.
    pub description: String,
    /// `V4L2_FMT_FLAG_*` bits.
    pub flags: u32,
    /// Frame sizes and their intervals.
    pub sizes: Vec<V4l2FrameSize>,
}

impl Fields for V4l2Format {
    const MIN_LEN: usize = 4 + 2 + 4 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.fourcc);
        b.put_string("description", &self.description)?;
        b.put_u32_le(self.flags);
        put_list(b, "sizes", &self.sizes)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(V4l2Format {
            fourcc: r.u32("fourcc")?,
            description: r.string("description")?,
            flags: r.u32("flags")?,
            sizes: get_list(r, "sizes")?,
        })
    }
}

/// One V4L2 capture device: `path string, card string, driver string,
/// bus string, capabilities u32, formats list(V4l2Format)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Device {
    /// `/dev/videoN`.
    pub path: String,
    /// The card name.
    pub card: String,
    /// The driver name.
    pub driver: String,
    /// The bus info.
    pub bus: String,
    /// `V4L2_CAP_*` device capabilities.
    pub capabilities: u32,
    /// Capture formats.
    pub formats: Vec<V4l2Format>,
}

impl Fields for V4l2Device {
    const MIN_LEN: usize = 8 + 4 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("path", &self.path)?;
        b.put_string("card", &self.card)?;
        b.put_string("driver", &self.driver)?;
        b.put_string("bus", &self.bus)?;
        b.put_u32_le(self.capabilities);
        put_list(b, "formats", &self.formats)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(V4l2Device {
            path: r.string("path")?,
            card: r.string("card")?,
            driver: r.string("driver")?,
            bus: r.string("bus")?,
            capabilities: r.u32("capabilities")?,
            formats: get_list(r, "formats")?,
        })
    }
}

/// A menu item of a V4L2 menu control: `index u32, name string, value i64`
/// (`name` for menus, `value` for integer menus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuItem {
    /// The item's index (the value to set).
    pub index: u32,
    /// Its label (menu controls).
    pub name: String,
    /// Its value (integer-menu controls).
    pub value: i64,
}

impl Fields for MenuItem {
    const MIN_LEN: usize = 4 + 2 + 8;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.index);
        b.put_string("name", &self.name)?;
        b.put_i64_le(self.value);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(MenuItem {
            index: r.u32("index")?,
            name: r.string("name")?,
            value: r.i64("value")?,
        })
    }
}

/// A V4L2 control: `id u32, class u32, type u8, name string, min i64,
/// max i64, step u64, default i64, flags u32, menu list(MenuItem)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Control {
    /// The control id (`V4L2_CID_*`).
    pub id: u32,
    /// The control class (`V4L2_CTRL_CLASS_*`).
    pub class: u32,
    /// Integer, boolean, menu, button, ...
    pub ctrl_type: ControlType,
    /// The driver's name for it.
    pub name: String,
    /// Minimum.
    pub min: i64,
    /// Maximum.
    pub max: i64,
    /// Step.
    pub step: u64,
    /// Default.
    pub default: i64,
    /// `V4L2_CTRL_FLAG_*` bits (read-only, inactive, ...).
    pub flags: u32,
    /// Menu items (menu and integer-menu controls).
    pub menu: Vec<MenuItem>,
}

impl Fields for V4l2Control {
    const MIN_LEN: usize = 4 + 4 + 1 + 2 + 32 + 4 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.id);
        b.put_u32_le(self.class);
        b.put_u8(self.ctrl_type.to_raw());
        b.put_string("name", &self.name)?;
        b.put_i64_le(self.min);
        b.put_i64_le(self.max);
        b.put_u64_le(self.step);
        b.put_i64_le(self.default);
        b.put_u32_le(self.flags);
        put_list(b, "menu", &self.menu)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(V4l2Control {
            id: r.u32("id")?,
            class: r.u32("class")?,
            ctrl_type: ControlType::from_raw(r.u8("type")?),
            name: r.string("name")?,
            min: r.i64("min")?,
            max: r.i64("max")?,
            step: r.u64("step")?,
            default: r.i64("default")?,
            flags: r.u32("flags")?,
            menu: get_list(r, "menu")?,
        })
    }
}

/// A control's value: `id u32, value i64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlValue {
    /// The control id.
    pub id: u32,
    /// Its value.
    pub value: i64,
}

impl Fields for ControlValue {
    const MIN_LEN: usize = 12;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.id);
        b.put_i64_le(self.value);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(ControlValue {
            id: r.u32("id")?,
            value: r.i64("value")?,
        })
    }
}

/// V4L2_GET_CONTROLS request: `device string, ids list(u32)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetControls {
    /// The device path.
    pub device: String,
    /// Which controls; empty = all.
    pub ids: Vec<u32>,
}

impl Fields for GetControls {
    const MIN_LEN: usize = 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("device", &self.device)?;
        put_list(b, "ids", &self.ids)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(GetControls {
            device: r.string("device")?,
            ids: get_list(r, "ids")?,
        })
    }
}

/// V4L2_SET_CONTROLS request: `device string, values list(ControlValue)`.
/// Applied in order without restarting the stream; the first value out of
/// range or read-only fails the request with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetControls {
    /// The device path.
    pub device: String,
    /// What to set.
    pub values: Vec<ControlValue>,
}

impl Fields for SetControls {
    const MIN_LEN: usize = 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("device", &self.device)?;
        put_list(b, "values", &self.values)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(SetControls {
            device: r.string("device")?,
            values: get_list(r, "values")?,
        })
    }
}

/// An X11 monitor (XRandR): `name string, x i32, y i32, width u32,
/// height u32, width_mm u32, height_mm u32, refresh_mhz u32, primary u8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    /// The output's name (`HDMI-1`, `screen`, ...).
    pub name: String,
    /// Left edge in the desktop.
    pub x: i32,
    /// Top edge in the desktop.
    pub y: i32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Physical width, millimetres (0 = unknown).
    pub width_mm: u32,
    /// Physical height, millimetres (0 = unknown).
    pub height_mm: u32,
    /// Refresh rate in millihertz (0 = unknown).
    pub refresh_mhz: u32,
    /// Whether it is the primary monitor.
    pub primary: bool,
}

impl Fields for Monitor {
    const MIN_LEN: usize = 2 + 28 + 1;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("name", &self.name)?;
        b.put_i32_le(self.x);
        b.put_i32_le(self.y);
        b.put_u32_le(self.width);
        b.put_u32_le(self.height);
        b.put_u32_le(self.width_mm);
        b.put_u32_le(self.height_mm);
        b.put_u32_le(self.refresh_mhz);
        b.put_u8(u8::from(self.primary));
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Monitor {
            name: r.string("name")?,
            x: r.i32("x")?,
            y: r.i32("y")?,
            width: r.u32("width")?,
            height: r.u32("height")?,
            width_mm: r.u32("width_mm")?,
            height_mm: r.u32("height_mm")?,
            refresh_mhz: r.u32("refresh_mhz")?,
            primary: get_bool(r, "primary")?,
        })
    }
}
