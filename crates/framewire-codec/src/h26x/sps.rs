//! The picture size in an H.264 or H.265 sequence parameter set.

use super::Codec;

/// Reads bits of an RBSP (emulation-prevention bytes already removed).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.pos += n;
        (self.pos <= self.data.len() * 8).then_some(())
    }

    /// Exp-Golomb unsigned; `None` past 31 leading zeros.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        ((1u64 << zeros) - 1 + u64::from(rest)).try_into().ok()
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// The RBSP of a NAL unit payload: `00 00 03` becomes `00 00`.
fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Width and height (after cropping) from an SPS NAL unit (header
/// included, start code not); `None` if it does not parse.
pub fn sps_size(codec: Codec, nal: &[u8]) -> Option<(u32, u32)> {
    match codec {
        Codec::H264 => h264(&rbsp(nal.get(1..)?)),
        Codec::H265 => h265(&rbsp(nal.get(2..)?)),
    }
}

fn h264(data: &[u8]) -> Option<(u32, u32)> {
    let mut r = Bits { data, pos: 0 };
    let profile = r.bits(8)?;
    r.skip(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma = 1;
    let mut separate = false;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma = r.ue()?;
        if chroma == 3 {
            separate = r.bit()? == 1;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass
        if r.bit()? == 1 {
            let lists = if chroma == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256).rem_euclid(256);
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed
    let w_mbs = u64::from(r.ue()?) + 1;
    let h_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = u64::from(r.bit()?);
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field
    }
    r.bit()?; // direct_8x8_inference
    let (mut l, mut rr, mut t, mut b) = (0u64, 0u64, 0u64, 0u64);
    if r.bit()? == 1 {
        l = r.ue()?.into();
        rr = r.ue()?.into();
        t = r.ue()?.into();
        b = r.ue()?.into();
    }
    let array_type = if separate { 0 } else { chroma };
    let (cx, cy) = match array_type {
        0 => (1, 2 - frame_mbs_only),
        1 => (2, 2 * (2 - frame_mbs_only)),
        2 => (2, 2 - frame_mbs_only),
        _ => (1, 2 - frame_mbs_only),
    };
    let w = (w_mbs * 16).checked_sub(cx * (l + rr))?;
    let h = ((2 - frame_mbs_only) * h_units * 16).checked_sub(cy * (t + b))?;
    Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?))
}

fn h265(data: &[u8]) -> Option<(u32, u32)> {
    let mut r = Bits { data, pos: 0 };
    r.bits(4)?; // sps_video_parameter_set_id
    let sub_layers = r.bits(3)? as usize;
    r.bit()?; // temporal_id_nesting
    // profile_tier_level: general profile (88 bits) and level (8 bits).
    r.skip(96)?;
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(sub_layers) {
        *p = (r.bit()? == 1, r.bit()? == 1);
    }
    if sub_layers > 0 {
        r.skip(2 * (8 - sub_layers))?;
    }
    for &(profile, level) in present.iter().take(sub_layers) {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma = r.ue()?;
    if chroma == 3 {
        r.bit()?; // separate_colour_plane
    }
    let w = u64::from(r.ue()?);
    let h = u64::from(r.ue()?);
    let (mut l, mut rr, mut t, mut b) = (0u64, 0u64, 0u64, 0u64);
    if r.bit()? == 1 {
        l = r.ue()?.into();
        rr = r.ue()?.into();
        t = r.ue()?.into();
        b = r.ue()?.into();
    }
    let (sx, sy) = match chroma {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let w = w.checked_sub(sx * (l + rr))?;
    let h = h.checked_sub(sy * (t + b))?;
    Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?))
}
