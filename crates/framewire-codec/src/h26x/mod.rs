//! H.264 and H.265 in Annex B form, as framewire carries them: one access
//! unit (every NAL unit of one picture, start codes included) per frame.
//!
//! - [`nal_units`] walks the NAL units of a buffer;
//!   [`Codec::kind`] says what one is (a slice of a keyframe, of another
//!   picture, a parameter set, a delimiter, ...).
//! - [`AccessUnit`] sums up one frame: whether it is a keyframe (IDR for
//!   H.264, IRAP for H.265), and which parameter sets it carries.
//! - [`ParamSets`] keeps the latest VPS/SPS/PPS of a stream and puts them
//!   in front of a keyframe that lacks them ([`ParamSets::complete`]), so a
//!   receiver can start at any keyframe; [`ParamSets::config`] is the
//!   stream's codec configuration for STREAM_OPEN.
//! - [`AuSplitter`] cuts a byte stream (ffmpeg's `-f h264`/`-f hevc`
//!   output) into access units.
//! - [`sps_size`] reads the picture size from an SPS.
//!
//! Nothing here allocates per NAL unit or panics on any input: malformed
//! bytes give `None` or are passed through as they are.

mod split;
mod sps;

pub use split::{AuSplitter, SplitterStats};
pub use sps::sps_size;

use bytes::{BufMut, Bytes, BytesMut};

/// Which of the two codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
}

/// What a NAL unit is, as far as framing and starting go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NalKind {
    /// A slice of a picture a decoder can start at (IDR; H.265 IRAP).
    KeySlice,
    /// A slice of any other picture.
    Slice,
    /// H.265 video parameter set.
    Vps,
    /// Sequence parameter set.
    Sps,
    /// Picture parameter set.
    Pps,
    /// Access unit delimiter: starts an access unit.
    Aud,
    /// Supplemental information (before the picture's slices).
    Sei,
    /// Anything else (end of sequence, filler, reserved, ...).
    Other,
}

impl NalKind {
    /// Whether it carries picture data.
    pub fn is_slice(self) -> bool {
        matches!(self, NalKind::KeySlice | NalKind::Slice)
    }
}

impl Codec {
    /// The kind of the NAL unit `nal` (without its start code); `None`
    /// for an empty or truncated header.
    pub fn kind(self, nal: &[u8]) -> Option<NalKind> {
        match self {
            Codec::H264 => {
                let t = nal.first()? & 0x1f;
                Some(match t {
                    5 => NalKind::KeySlice,
                    1..=4 => NalKind::Slice,
                    6 => NalKind::Sei,
                    7 => NalKind::Sps,
                    8 => NalKind::Pps,
                    9 => NalKind::Aud,
                    _ => NalKind::Other,
                })
            }
            Codec::H265 => {
                if nal.len() < 2 {
                    return None;
                }
                let t = (nal[0] >> 1) & 0x3f;
                Some(match t {
                    16..=21 => NalKind::KeySlice,
                    0..=9 => NalKind::Slice,
                    32 => NalKind::Vps,
                    33 => NalKind::Sps,
                    34 => NalKind::Pps,
                    35 => NalKind::Aud,
                    39 | 40 => NalKind::Sei,
                    _ => NalKind::Other,
                })
            }
        }
    }

    /// Whether the slice `nal` is the first of its picture
    /// (`first_mb_in_slice == 0`; H.265 `first_slice_segment_in_pic_flag`).
    pub fn first_slice(self, nal: &[u8]) -> bool {
        let at = match self {
            Codec::H264 => 1,
            Codec::H265 => 2,
        };
        // ue(v) == 0 is a single 1 bit; the H.265 flag is the first bit.
        nal.get(at).is_some_and(|b| b & 0x80 != 0)
    }

    /// The stream format's label, as on the wire (`h264`, `h265`).
    pub fn label(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
        }
    }
}

/// The NAL units of an Annex B buffer, without their start codes. Bytes
/// before the first start code are skipped; trailing zero bytes of a NAL
/// unit (part of the next start code) are trimmed.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = match find_start(data, 0) {
        Some((_, body)) => &data[body..],
        None => &data[data.len()..],
    };
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (nal, next) = match find_start(rest, 0) {
            Some((at, body)) => (&rest[..at], &rest[body..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        let mut end = nal.len();
        while end > 0 && nal[end - 1] == 0 {
            end -= 1;
        }
        Some(&nal[..end])
    })
    .filter(|n| !n.is_empty())
}

/// The next start code at or after `from`: where it begins and where the
/// NAL unit after it begins. Looks for the `01` byte (with SIMD) and then
/// at the two zero bytes before it.
fn find_start(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from + 2;
    while i < data.len() {
        let one = i + memchr::memchr(1, &data[i..])?;
        if data[one - 2] == 0 && data[one - 1] == 0 {
            return Some((one - 2, one + 1));
        }
        i = one + 1;
    }
    None
}

/// What one access unit holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccessUnit {
    /// A picture a decoder can start at.
    pub keyframe: bool,
    /// Whether it has picture data at all.
    pub has_slice: bool,
    /// Which parameter sets it carries in-band.
    pub has_vps: bool,
    /// An SPS.
    pub has_sps: bool,
    /// A PPS.
    pub has_pps: bool,
}

impl AccessUnit {
    /// Looks at the NAL units of `au`.
    pub fn of(codec: Codec, au: &[u8]) -> AccessUnit {
        let mut a = AccessUnit::default();
        for nal in nal_units(au) {
            a.take(codec.kind(nal));
        }
        a
    }

    fn take(&mut self, kind: Option<NalKind>) {
        match kind {
            Some(NalKind::KeySlice) => {
                self.keyframe = true;
                self.has_slice = true;
            }
            Some(NalKind::Slice) => self.has_slice = true,
            Some(NalKind::Vps) => self.has_vps = true,
            Some(NalKind::Sps) => self.has_sps = true,
            Some(NalKind::Pps) => self.has_pps = true,
            _ => {}
        }
    }
}

/// The latest parameter sets of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamSets {
    /// H.265 only.
    pub vps: Option<Bytes>,
    /// Sequence parameter set (without start code).
    pub sps: Option<Bytes>,
    /// Picture parameter set (without start code).
    pub pps: Option<Bytes>,
}

impl ParamSets {
    /// Takes the parameter sets `au` carries; returns whether any changed.
    pub fn update(&mut self, codec: Codec, au: &[u8]) -> bool {
        self.scan(codec, au).1
    }

    /// Looks at `au` once: what it holds ([`AccessUnit::of`]), and whether
    /// a parameter set it carries changed (taken, as [`ParamSets::update`]).
    pub fn scan(&mut self, codec: Codec, au: &[u8]) -> (AccessUnit, bool) {
        let mut a = AccessUnit::default();
        let mut changed = false;
        for nal in nal_units(au) {
            let kind = codec.kind(nal);
            a.take(kind);
            let slot = match kind {
                Some(NalKind::Vps) => &mut self.vps,
                Some(NalKind::Sps) => &mut self.sps,
                Some(NalKind::Pps) => &mut self.pps,
                _ => continue,
            };
            if slot.as_deref() != Some(nal) {
                *slot = Some(Bytes::copy_from_slice(nal));
                changed = true;
            }
        }
        (a, changed)
    }

    /// Whether every set the codec needs is known.
    pub fn is_complete(&self, codec: Codec) -> bool {
        self.sps.is_some() && self.pps.is_some() && (codec == Codec::H264 || self.vps.is_some())
    }

    /// The codec configuration for STREAM_OPEN: the known parameter sets
    /// in Annex B form (VPS, SPS, PPS, each after a 4-byte start code);
    /// empty when none is known.
    pub fn config(&self) -> Bytes {
        let mut b = BytesMut::new();
        for p in [&self.vps, &self.sps, &self.pps].into_iter().flatten() {
            b.put_slice(&[0, 0, 0, 1]);
            b.put_slice(p);
        }
        b.freeze()
    }

    /// `au` as it should go on the wire: a keyframe missing parameter sets
    /// gets the known ones in front (after its delimiter, if it has one);
    /// anything else is returned as it is, without a copy.
    pub fn complete(&self, codec: Codec, au: Bytes) -> Bytes {
        let a = AccessUnit::of(codec, &au);
        self.complete_as(codec, au, a)
    }

    /// [`ParamSets::complete`] of an access unit already looked at (`a` is
    /// what [`ParamSets::scan`] found in it).
    pub fn complete_as(&self, codec: Codec, au: Bytes, a: AccessUnit) -> Bytes {
        let missing = (codec == Codec::H265 && !a.has_vps && self.vps.is_some())
            || (!a.has_sps && self.sps.is_some())
            || (!a.has_pps && self.pps.is_some());
        if !a.keyframe || !missing {
            return au;
        }
        let mut out = BytesMut::with_capacity(au.len() + 256);
        // An access unit delimiter stays first.
        let mut body = &au[..];
        if let Some(first) = nal_units(&au).next()
            && codec.kind(first) == Some(NalKind::Aud)
            && let Some(pos) = subslice_end(&au, first)
        {
            out.put_slice(&au[..pos]);
            body = &au[pos..];
        }
        let sets: [(bool, &Option<Bytes>); 3] = [
            (a.has_vps || codec == Codec::H264, &self.vps),
            (a.has_sps, &self.sps),
            (a.has_pps, &self.pps),
        ];
        for (present, set) in sets {
            if let (false, Some(p)) = (present, set) {
                out.put_slice(&[0, 0, 0, 1]);
                out.put_slice(p);
            }
        }
        out.put_slice(body);
        out.freeze()
    }
}

/// Where `part` (a subslice of `whole`) ends, as an index into `whole`.
fn subslice_end(whole: &[u8], part: &[u8]) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start + part.len();
    (end <= whole.len()).then_some(end)
}

#[cfg(test)]
mod tests;
