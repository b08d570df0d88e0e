//! How V4L2 codes and names are written for people: fourccs as text and
//! control names in a comparable form. Plain functions with no device
//! access, so a tool that only talks to remote nodes can use them without
//! the `v4l2` feature.

pub use framewire_proto::control::fourcc_str;

/// A control name in a comparable form: lower case, runs of anything but
/// letters and digits as one `_` (as `v4l2-ctl` prints them).
pub fn control_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.push(ch.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        assert_eq!(fourcc_str(u32::from_le_bytes(*b"YUYV")), "YUYV");
        assert_eq!(fourcc_str(u32::from_le_bytes(*b"Y16 ") | (1 << 31)), "Y16 -BE");
        assert_eq!(control_key("White Balance, Automatic"), "white_balance_automatic");
        assert_eq!(control_key("  Brightness"), "brightness");
    }
}
