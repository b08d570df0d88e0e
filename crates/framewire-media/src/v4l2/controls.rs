//! A device's controls: query (with menus), get, and set with range
//! checks, through the extended-control ioctls.

use framewire_proto::ControlType;
use framewire_proto::control::{ControlValue, MenuItem, V4l2Control};
use nix::errno::Errno;

use super::device::{ControlInfo, Device, V4l2Error, xioctl};
use super::sys::{self, cstr, zeroed};

pub use crate::v4l2_names::control_key;

impl Device {
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
            match xioctl(self.path(), "VIDIOC_QUERY_EXT_CTRL", || unsafe {
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
            match xioctl(self.path(), "VIDIOC_QUERYMENU", || unsafe {
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
        xioctl(self.path(), "VIDIOC_G_EXT_CTRLS", || unsafe {
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
            let r = xioctl(self.path(), "VIDIOC_S_EXT_CTRLS", || unsafe {
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
