//! What happens to each dequeued buffer, and how the capture format is
//! chosen. No I/O here: the same code runs on a live device and on a
//! replayed capture in tests.
//!
//! - An MJPEG device's buffer is one frame, sent as-is (origin
//!   device-native, no re-encode), or, with `mjpeg_scan`, fed to a
//!   [`JpegSplitter`] for devices that split or join frames.
//! - A raw device's buffer is sent raw (tightly packed, converted to a
//!   layout the wire has a code for when the device's has none), raw+zstd,
//!   or encoded to MJPEG with the codec crate.

use bytes::Bytes;
use framewire_codec::{CodecError, EncodeSpec, Encoder, PixelBuffer, PixelLayout, Plane, Registry};
use framewire_proto::control::{V4l2Format, V4l2FrameSize};
use framewire_proto::{Format, Origin, PixelFormat, StreamOpen};

use super::device::PixFormat;
use super::sys::{fourcc, fourcc_str};
use crate::jpeg_split::{DEFAULT_MAX_IMAGE, JpegSplitter};

/// `MJPG`.
pub const MJPG: u32 = fourcc(b"MJPG");
/// `JPEG`.
pub const JPEG: u32 = fourcc(b"JPEG");
/// `YUYV` (packed 4:2:2).
pub const YUYV: u32 = fourcc(b"YUYV");
/// `YU12` (planar 4:2:0, I420).
pub const YU12: u32 = fourcc(b"YU12");
/// `NV12` (Y plane, interleaved UV 4:2:0).
pub const NV12: u32 = fourcc(b"NV12");
/// `BGR3` (B, G, R bytes).
pub const BGR3: u32 = fourcc(b"BGR3");
/// `RGB3` (R, G, B bytes).
pub const RGB3: u32 = fourcc(b"RGB3");
/// `BGR4`, `XR24`, `AR24` (B, G, R, X/A bytes).
pub const BGR4: u32 = fourcc(b"BGR4");
/// `XR24`.
pub const XR24: u32 = fourcc(b"XR24");
/// `AR24`.
pub const AR24: u32 = fourcc(b"AR24");
/// `AB24` (R, G, B, A bytes).
pub const AB24: u32 = fourcc(b"AB24");
/// `XB24` (R, G, B, X bytes).
pub const XB24: u32 = fourcc(b"XB24");

/// Device formats framewire captures, in the order `auto` prefers them:
/// compressed first (nothing to do per frame), then the cheapest raw ones.
pub const SUPPORTED: &[u32] = &[MJPG, JPEG, YUYV, NV12, YU12, BGR3, RGB3, XR24, AR24, BGR4, AB24, XB24];

/// Whether a fourcc is MJPEG.
pub fn is_mjpeg(code: u32) -> bool {
    code == MJPG || code == JPEG
}

/// How a capture source puts frames on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// As the device gives them: MJPEG as-is, raw formats raw.
    Native,
    /// Raw pixels (MJPEG devices: refused).
    Raw,
    /// Raw pixels compressed with zstd at this level.
    RawZstd(i32),
    /// MJPEG: as-is from an MJPEG device, encoded at this quality from a raw one.
    Mjpeg(u8),
}

/// What the configuration asks of the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Want {
    /// Fourcc; `None` = the first of [`SUPPORTED`] the device offers at the size.
    pub fourcc: Option<u32>,
    /// Size; `None` = 640x480 if offered, else the first size offered.
    pub size: Option<(u32, u32)>,
    /// Frames per second; `None` = the driver's default.
    pub fps: Option<f64>,
}

/// The format, size and interval chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// Fourcc.
    pub fourcc: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frame interval (seconds per frame) to set; `None` = leave as is.
    pub interval: Option<(u32, u32)>,
}

fn size_fits(s: &V4l2FrameSize, w: u32, h: u32) -> bool {
    match s.kind {
        0 => s.width == w && s.height == h,
        _ => {
            let on_step = |v: u32, min: u32, step: u32| step <= 1 || (v - min).is_multiple_of(step);
            (s.width..=s.max_width).contains(&w)
                && (s.height..=s.max_height).contains(&h)
                && on_step(w, s.width, s.step_width)
                && on_step(h, s.height, s.step_height)
        }
    }
}

fn fps_of((num, den): (u32, u32)) -> f64 {
    if num == 0 { 0.0 } else { f64::from(den) / f64::from(num) }
}

fn describe_size(s: &V4l2FrameSize) -> String {
    let rates: Vec<String> = s.intervals.iter().map(|&i| format!("{}", fps_of(i))).collect();
    let rates = if s.kind == 0 || rates.len() < 2 {
        rates.join("/")
    } else {
        format!("{}-{}", rates[1], rates[0])
    };
    let size = if s.kind == 0 {
        format!("{}x{}", s.width, s.height)
    } else {
        format!(
            "{}x{}..{}x{} step {}x{}",
            s.width, s.height, s.max_width, s.max_height, s.step_width, s.step_height
        )
    };
    if rates.is_empty() {
        size
    } else {
        format!("{size} @ {rates} fps")
    }
}

/// What a device offers, readable, for error messages: the formats framewire
/// can capture with their sizes and rates, then the other fourccs.
pub fn describe_offer(formats: &[V4l2Format]) -> String {
    let mut lines = Vec::new();
    let mut others = Vec::new();
    for f in formats {
        if SUPPORTED.contains(&f.fourcc) {
            let sizes: Vec<String> = f.sizes.iter().map(describe_size).collect();
            lines.push(format!("{}: {}", fourcc_str(f.fourcc), sizes.join(", ")));
        } else {
            others.push(fourcc_str(f.fourcc));
        }
    }
    if lines.is_empty() {
        lines.push("no format framewire can capture".into());
    }
    if !others.is_empty() {
        lines.push(format!("(not capturable here: {})", others.join(" ")));
    }
    lines.join("; ")
}

/// Picks the device format, size and interval from what it enumerates.
/// The error says what was asked and lists what the device offers.
pub fn negotiate(formats: &[V4l2Format], want: &Want) -> Result<Choice, String> {
    let offer = || describe_offer(formats);
    let candidates: Vec<&V4l2Format> = match want.fourcc {
        Some(code) => {
            if !SUPPORTED.contains(&code) {
                return Err(format!(
                    "pixel format {} is not one framewire captures ({}); the device offers {}",
                    fourcc_str(code),
                    SUPPORTED.iter().map(|&c| fourcc_str(c)).collect::<Vec<_>>().join(" "),
                    offer()
                ));
            }
            let f: Vec<&V4l2Format> = formats.iter().filter(|f| f.fourcc == code).collect();
            if f.is_empty() {
                return Err(format!(
                    "the device does not offer {}; it offers {}",
                    fourcc_str(code),
                    offer()
                ));
            }
            f
        }
        None => SUPPORTED
            .iter()
            .filter_map(|&c| formats.iter().find(|f| f.fourcc == c))
            .collect(),
    };
    if candidates.is_empty() {
        return Err(format!("the device offers no format framewire captures: {}", offer()));
    }
    let (w, h) = match want.size {
        Some(s) => s,
        None => {
            let any_vga = candidates
                .iter()
                .any(|f| f.sizes.is_empty() || f.sizes.iter().any(|s| size_fits(s, 640, 480)));
            match candidates[0].sizes.first() {
                Some(s) if !any_vga => (s.width, s.height),
                _ => (640, 480),
            }
        }
    };
    let Some((f, size)) = candidates.iter().find_map(|f| {
        if f.sizes.is_empty() {
            // The driver does not enumerate sizes: let S_FMT decide.
            return Some((*f, None));
        }
        f.sizes.iter().find(|s| size_fits(s, w, h)).map(|s| (*f, Some(s)))
    }) else {
        let what = want.fourcc.map_or("any capturable format".to_owned(), fourcc_str);
        return Err(format!(
            "{w}x{h} is not offered in {what}; the device offers {}",
            offer()
        ));
    };
    let interval = match (want.fps, size) {
        (None, _) => None,
        (Some(fps), None) => Some(fraction(fps)),
        (Some(fps), Some(s)) if s.intervals.is_empty() => Some(fraction(fps)),
        (Some(fps), Some(s)) if s.kind == 0 => {
            let found = s
                .intervals
                .iter()
                .copied()
                .find(|&i| (fps_of(i) - fps).abs() <= fps * 0.01);
            Some(found.ok_or_else(|| {
                format!(
                    "{fps} fps is not offered for {} {w}x{h}; the device offers {}",
                    fourcc_str(f.fourcc),
                    offer()
                )
            })?)
        }
        (Some(fps), Some(s)) => {
            // Stepwise or continuous: the two ends of the range.
            let (fast, slow) = (fps_of(s.intervals[0]), fps_of(s.intervals[s.intervals.len() - 1]));
            let (lo, hi) = if fast < slow { (fast, slow) } else { (slow, fast) };
            if fps < lo * 0.99 || fps > hi * 1.01 {
                return Err(format!(
                    "{fps} fps is outside {lo}-{hi} fps for {} {w}x{h}; the device offers {}",
                    fourcc_str(f.fourcc),
                    offer()
                ));
            }
            Some(fraction(fps))
        }
    };
    Ok(Choice {
        fourcc: f.fourcc,
        width: w,
        height: h,
        interval,
    })
}

/// A frame interval (seconds per frame) for `fps`, with millihertz precision.
pub fn fraction(fps: f64) -> (u32, u32) {
    // Cannot truncate: callers check fps is within 0..=100000.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let den = (fps * 1000.0).round() as u32;
    (1000, den.max(1))
}

/// How raw device bytes become a [`PixelBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawKind {
    /// Already in a wire layout.
    Direct(PixelLayout),
    /// NV12: converted to I420.
    Nv12,
    /// RGB3: converted to BGR.
    Rgb3,
}

fn raw_kind(code: u32) -> Option<RawKind> {
    Some(match code {
        YUYV => RawKind::Direct(PixelLayout::Yuyv),
        YU12 => RawKind::Direct(PixelLayout::I420),
        BGR3 => RawKind::Direct(PixelLayout::Bgr),
        XR24 | AR24 | BGR4 => RawKind::Direct(PixelLayout::Bgra),
        AB24 | XB24 => RawKind::Direct(PixelLayout::Rgba),
        NV12 => RawKind::Nv12,
        RGB3 => RawKind::Rgb3,
        _ => return None,
    })
}

fn wire_pixel_format(layout: PixelLayout) -> PixelFormat {
    match layout {
        PixelLayout::Bgra => PixelFormat::Bgra,
        PixelLayout::Rgba => PixelFormat::Rgba,
        PixelLayout::I420 => PixelFormat::Yuv420p,
        PixelLayout::Yuyv => PixelFormat::Yuv422Packed,
        _ => PixelFormat::Bgr,
    }
}

/// Turns each dequeued buffer into wire frames.
#[derive(Debug)]
pub struct FrameMaker {
    format: PixFormat,
    open: StreamOpen,
    mode: Mode,
    /// Draw the capture time into each picture (`crate::timecode`).
    timecode: bool,
}

#[derive(Debug)]
enum Mode {
    /// MJPEG buffers, one per frame.
    PassThrough,
    /// MJPEG byte stream, frames recovered by SOI/EOI.
    Scan(Box<JpegSplitter>),
    /// Raw pixels, packed tight.
    Raw(RawKind),
    /// Raw pixels through an encoder (zstd, MJPEG).
    Encode(RawKind, Box<dyn Encoder>),
}

impl FrameMaker {
    /// A frame maker for a device set to `format`, at `fps` (`num/den`
    /// frames per second, `(0, 1)` unknown), producing `output`.
    pub fn new(
        format: PixFormat,
        fps: (u32, u32),
        output: WireFormat,
        mjpeg_scan: bool,
        name: &str,
    ) -> Result<FrameMaker, String> {
        let (w, h) = (format.width, format.height);
        if is_mjpeg(format.fourcc) {
            if matches!(output, WireFormat::Raw | WireFormat::RawZstd(_)) {
                return Err(format!(
                    "the device sends MJPEG ({}); raw output needs a raw device format (use format = native or mjpeg)",
                    fourcc_str(format.fourcc)
                ));
            }
            let mode = if mjpeg_scan {
                Mode::Scan(Box::new(JpegSplitter::new(DEFAULT_MAX_IMAGE)))
            } else {
                Mode::PassThrough
            };
            let open = StreamOpen {
                format: Format::Mjpeg,
                pixel_format: PixelFormat::None,
                origin: Origin::DeviceNative,
                width: w,
                height: h,
                fps_num: fps.0,
                fps_den: fps.1,
                name: name.to_owned(),
                codec_config: Default::default(),
            };
            return Ok(FrameMaker {
                format,
                open,
                mode,
                timecode: false,
            });
        }
        let kind = raw_kind(format.fourcc).ok_or_else(|| {
            format!(
                "device format {} is not one framewire captures ({})",
                fourcc_str(format.fourcc),
                SUPPORTED.iter().map(|&c| fourcc_str(c)).collect::<Vec<_>>().join(" ")
            )
        })?;
        let layout = match kind {
            RawKind::Direct(l) => l,
            RawKind::Nv12 => PixelLayout::I420,
            RawKind::Rgb3 => PixelLayout::Bgr,
        };
        let pf = wire_pixel_format(layout);
        let spec = match output {
            WireFormat::Native | WireFormat::Raw => None,
            WireFormat::RawZstd(level) => Some(EncodeSpec::raw_zstd(pf, level)),
            WireFormat::Mjpeg(q) => Some(EncodeSpec::mjpeg(q)),
        };
        let (open, mode) = match spec {
            None => (
                StreamOpen {
                    format: Format::Raw,
                    pixel_format: pf,
                    origin: Origin::DeviceNative,
                    width: w,
                    height: h,
                    fps_num: fps.0,
                    fps_den: fps.1,
                    name: name.to_owned(),
                    codec_config: Default::default(),
                },
                Mode::Raw(kind),
            ),
            Some(spec) => {
                let enc = Registry::builtin().encoder(&spec).map_err(|r| r.to_string())?;
                (enc.stream_open(w, h, fps.0, fps.1, name), Mode::Encode(kind, enc))
            }
        };
        Ok(FrameMaker {
            format,
            open,
            mode,
            timecode: false,
        })
    }

    /// The stream's STREAM_OPEN.
    pub fn stream_open(&self) -> &StreamOpen {
        &self.open
    }

    /// The device format it was made for.
    pub fn format(&self) -> PixFormat {
        self.format
    }

    /// Draws each picture's capture time and number into it as a time code
    /// ([`FrameMaker::process_at`]); refused when the device's MJPEG is
    /// passed through, as there are no pictures to draw into.
    pub fn overlay_timecode(&mut self, on: bool) -> Result<(), String> {
        if on && matches!(self.mode, Mode::PassThrough | Mode::Scan(_)) {
            return Err(format!(
                "the device sends MJPEG ({}), passed through as it is: the time code needs a raw device format",
                fourcc_str(self.format.fourcc)
            ));
        }
        self.timecode = on;
        Ok(())
    }

    /// The frames in one dequeued buffer: exactly one, except with
    /// `mjpeg_scan` (none while a frame is incomplete, several when a
    /// buffer joins frames).
    pub fn process(&mut self, data: &[u8]) -> Result<Vec<Bytes>, CodecError> {
        self.process_at(data, 0, 0)
    }

    /// As [`FrameMaker::process`], for frame `sequence` captured at
    /// `timestamp_ns`: the time code drawn when it is on.
    pub fn process_at(&mut self, data: &[u8], sequence: u64, timestamp_ns: u64) -> Result<Vec<Bytes>, CodecError> {
        let code = self
            .timecode
            .then(|| crate::timecode::TimeCode::new(sequence, timestamp_ns));
        let coded = |pic: PixelBuffer| match code {
            Some(c) => crate::timecode::overlay(&pic, c),
            None => pic,
        };
        match &mut self.mode {
            Mode::PassThrough => Ok(vec![Bytes::copy_from_slice(data)]),
            Mode::Scan(s) => {
                s.push(data);
                Ok(std::iter::from_fn(|| s.next_frame()).collect())
            }
            Mode::Raw(kind) => {
                let kind = *kind;
                let pic = coded(picture(self.format, kind, data)?);
                Ok(vec![if pic.is_tight() {
                    pic.data().clone()
                } else {
                    pic.tight_bytes()
                }])
            }
            Mode::Encode(kind, enc) => {
                let pic = coded(picture(self.format, *kind, data)?);
                Ok(vec![enc.encode(&pic)?])
            }
        }
    }

    /// Drops any partial frame (after the device was lost). Returns
    /// whether one was dropped.
    pub fn reset(&mut self) -> bool {
        if let Mode::Scan(s) = &mut self.mode {
            let had = s.buffered() > 0;
            s.reset();
            return had;
        }
        false
    }

    /// The scanner's counters (with `mjpeg_scan`).
    pub fn scan_stats(&self) -> Option<crate::jpeg_split::SplitStats> {
        match &self.mode {
            Mode::Scan(s) => Some(s.stats()),
            _ => None,
        }
    }
}

/// A picture over the device's bytes: one copy into shared memory, the
/// device's stride kept; NV12 and RGB3 converted.
fn picture(f: PixFormat, kind: RawKind, data: &[u8]) -> Result<PixelBuffer, CodecError> {
    let (w, h) = (f.width, f.height);
    match kind {
        RawKind::Direct(layout) => {
            let tight_row = layout.row_bytes(0, w).unwrap_or(0);
            let stride = (f.bytesperline as usize).max(tight_row);
            if layout == PixelLayout::I420 {
                let cs = stride / 2;
                let ch = h.div_ceil(2) as usize;
                let y_len = stride * h as usize;
                let planes = [
                    Plane { offset: 0, stride },
                    Plane {
                        offset: y_len,
                        stride: cs,
                    },
                    Plane {
                        offset: y_len + cs * ch,
                        stride: cs,
                    },
                ];
                return PixelBuffer::with_planes(layout, w, h, &planes, Bytes::copy_from_slice(data));
            }
            let need = stride * (h as usize - 1) + tight_row;
            let bytes = Bytes::copy_from_slice(&data[..need.min(data.len())]);
            PixelBuffer::with_stride(layout, w, h, stride, bytes)
        }
        RawKind::Nv12 => {
            let stride = (f.bytesperline as usize).max(w as usize);
            let (wu, hu) = (w as usize, h as usize);
            let (cw, ch) = (wu.div_ceil(2), hu.div_ceil(2));
            let need = stride * hu + stride * ch;
            if data.len() < need.saturating_sub(stride - 2 * cw) {
                return Err(CodecError::DataTooShort {
                    needed: need,
                    got: data.len(),
                });
            }
            let mut out = Vec::with_capacity(wu * hu + 2 * cw * ch);
            for y in 0..hu {
                out.extend_from_slice(&data[y * stride..y * stride + wu]);
            }
            let uv = &data[stride * hu..];
            let mut v_plane = Vec::with_capacity(cw * ch);
            for y in 0..ch {
                let row = &uv[y * stride..];
                for x in 0..cw {
                    out.push(row[2 * x]);
                    v_plane.push(row[2 * x + 1]);
                }
            }
            out.extend_from_slice(&v_plane);
            PixelBuffer::new(PixelLayout::I420, w, h, out)
        }
        RawKind::Rgb3 => {
            let stride = (f.bytesperline as usize).max(3 * w as usize);
            let need = stride * (h as usize - 1) + 3 * w as usize;
            let bytes = Bytes::copy_from_slice(&data[..need.min(data.len())]);
            PixelBuffer::with_stride(PixelLayout::Rgb, w, h, stride, bytes)?.convert(PixelLayout::Bgr)
        }
    }
}

/// Maps a buffer's `CLOCK_MONOTONIC` capture time to `CLOCK_REALTIME`
/// (the wire's timestamp), given both clocks read now: the frame is as
/// old on the wall clock as it is on the monotonic one.
pub fn monotonic_to_realtime(buffer_mono_ns: u64, now_mono_ns: u64, now_real_ns: u64) -> u64 {
    now_real_ns.saturating_sub(now_mono_ns.saturating_sub(buffer_mono_ns))
}

/// `CLOCK_MONOTONIC` and `CLOCK_REALTIME` now, nanoseconds.
pub fn clocks_now() -> (u64, u64) {
    use nix::time::{ClockId, clock_gettime};
    let ns = |c| {
        clock_gettime(c).map_or(0, |t| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec()).unwrap_or(0)
        })
    };
    (ns(ClockId::CLOCK_MONOTONIC), ns(ClockId::CLOCK_REALTIME))
}

#[cfg(test)]
mod tests;
