//! Pixel buffers: layout, size, strides, and the conversions codecs need.
//!
//! A [`PixelBuffer`] is validated when it is built: every plane's rows fit
//! inside the data, so reading a row can never go out of bounds afterwards.
//!
//! YUV layouts use BT.601 with limited ("studio") range, Y in 16..=235 and
//! chroma in 16..=240, which is how cameras deliver YUYV and how ffmpeg reads
//! `yuv420p` / `yuyv422` raw video by default.

use std::fmt;

use bytes::Bytes;
use framewire_proto::PixelFormat;

use crate::CodecError;

/// How the pixels of a [`PixelBuffer`] are laid out in memory.
///
/// All wire pixel formats have a layout; [`PixelLayout::Rgb`] exists only
/// inside a process (JPEG and QOI decode to it), it has no wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PixelLayout {
    /// B, G, R, A bytes per pixel.
    Bgra,
    /// R, G, B, A bytes per pixel.
    Rgba,
    /// B, G, R bytes per pixel.
    Bgr,
    /// R, G, B bytes per pixel (no wire code).
    Rgb,
    /// Planar YUV 4:2:0: a Y plane, then U and V planes of half width and
    /// height, rounded up.
    I420,
    /// Packed YUV 4:2:2: Y0 U Y1 V for each pair of pixels; even widths only.
    Yuyv,
}

/// The red, green, blue and alpha byte positions of an RGB-family layout.
#[derive(Debug, Clone, Copy)]
struct RgbDesc {
    bpp: usize,
    r: usize,
    g: usize,
    b: usize,
    a: Option<usize>,
}

impl PixelLayout {
    /// Every layout.
    pub const ALL: &'static [PixelLayout] = &[
        PixelLayout::Bgra,
        PixelLayout::Rgba,
        PixelLayout::Bgr,
        PixelLayout::Rgb,
        PixelLayout::I420,
        PixelLayout::Yuyv,
    ];

    /// The layout of a wire pixel format, if it has one.
    pub const fn from_wire(format: PixelFormat) -> Option<PixelLayout> {
        match format {
            PixelFormat::Bgra => Some(PixelLayout::Bgra),
            PixelFormat::Rgba => Some(PixelLayout::Rgba),
            PixelFormat::Bgr => Some(PixelLayout::Bgr),
            PixelFormat::Yuv420p => Some(PixelLayout::I420),
            PixelFormat::Yuv422Packed => Some(PixelLayout::Yuyv),
            _ => None,
        }
    }

    /// The wire pixel format of this layout; `None` for [`PixelLayout::Rgb`].
    pub const fn to_wire(self) -> Option<PixelFormat> {
        match self {
            PixelLayout::Bgra => Some(PixelFormat::Bgra),
            PixelLayout::Rgba => Some(PixelFormat::Rgba),
            PixelLayout::Bgr => Some(PixelFormat::Bgr),
            PixelLayout::Rgb => None,
            PixelLayout::I420 => Some(PixelFormat::Yuv420p),
            PixelLayout::Yuyv => Some(PixelFormat::Yuv422Packed),
        }
    }

    /// A short lower-case name (ffmpeg's `-pix_fmt` name where there is one).
    pub const fn label(self) -> &'static str {
        match self {
            PixelLayout::Bgra => "bgra",
            PixelLayout::Rgba => "rgba",
            PixelLayout::Bgr => "bgr24",
            PixelLayout::Rgb => "rgb24",
            PixelLayout::I420 => "yuv420p",
            PixelLayout::Yuyv => "yuyv422",
        }
    }

    /// Number of planes: 3 for [`PixelLayout::I420`], else 1.
    pub const fn plane_count(self) -> usize {
        match self {
            PixelLayout::I420 => 3,
            _ => 1,
        }
    }

    /// Whether the layout has an alpha channel.
    pub const fn has_alpha(self) -> bool {
        matches!(self, PixelLayout::Bgra | PixelLayout::Rgba)
    }

    /// Whether the layout is one of the packed RGB family.
    pub const fn is_rgb(self) -> bool {
        matches!(
            self,
            PixelLayout::Bgra | PixelLayout::Rgba | PixelLayout::Bgr | PixelLayout::Rgb
        )
    }

    const fn rgb_desc(self) -> Option<RgbDesc> {
        match self {
            PixelLayout::Bgra => Some(RgbDesc {
                bpp: 4,
                r: 2,
                g: 1,
                b: 0,
                a: Some(3),
            }),
            PixelLayout::Rgba => Some(RgbDesc {
                bpp: 4,
                r: 0,
                g: 1,
                b: 2,
                a: Some(3),
            }),
            PixelLayout::Bgr => Some(RgbDesc {
                bpp: 3,
                r: 2,
                g: 1,
                b: 0,
                a: None,
            }),
            PixelLayout::Rgb => Some(RgbDesc {
                bpp: 3,
                r: 0,
                g: 1,
                b: 2,
                a: None,
            }),
            PixelLayout::I420 | PixelLayout::Yuyv => None,
        }
    }

    /// Bytes in one row of `plane` for a picture `width` pixels wide, or
    /// `None` on overflow or for a plane the layout does not have.
    pub fn row_bytes(self, plane: usize, width: u32) -> Option<usize> {
        let w = usize::try_from(width).ok()?;
        match (self, plane) {
            (PixelLayout::Bgra | PixelLayout::Rgba, 0) => w.checked_mul(4),
            (PixelLayout::Bgr | PixelLayout::Rgb, 0) => w.checked_mul(3),
            (PixelLayout::Yuyv, 0) => w.checked_mul(2),
            (PixelLayout::I420, 0) => Some(w),
            (PixelLayout::I420, 1 | 2) => Some(w.div_ceil(2)),
            _ => None,
        }
    }

    /// Rows in `plane` for a picture `height` pixels high.
    pub fn plane_rows(self, plane: usize, height: u32) -> usize {
        let h = height as usize;
        match (self, plane) {
            (PixelLayout::I420, 1 | 2) => h.div_ceil(2),
            _ => h,
        }
    }

    /// Checks `width` and `height` for this layout: non-zero, even width for
    /// YUYV, sizes that fit `usize`.
    pub fn check_dimensions(self, width: u32, height: u32) -> Result<(), CodecError> {
        if width == 0 || height == 0 {
            return Err(CodecError::ZeroDimension { width, height });
        }
        if self == PixelLayout::Yuyv && !width.is_multiple_of(2) {
            return Err(CodecError::OddWidth { layout: self, width });
        }
        self.frame_size(width, height).map(|_| ())
    }

    /// Bytes of a tightly packed picture (planes back to back, no padding).
    pub fn frame_size(self, width: u32, height: u32) -> Result<usize, CodecError> {
        let mut total = 0usize;
        for plane in 0..self.plane_count() {
            let size = self
                .row_bytes(plane, width)
                .and_then(|row| row.checked_mul(self.plane_rows(plane, height)));
            total = size
                .and_then(|s| total.checked_add(s))
                .ok_or(CodecError::Overflow { width, height })?;
        }
        Ok(total)
    }

    fn tight_planes(self, width: u32, height: u32) -> Result<[Plane; 3], CodecError> {
        let mut planes = [Plane::default(); 3];
        let mut offset = 0usize;
        for (plane, p) in planes.iter_mut().enumerate().take(self.plane_count()) {
            let row = self
                .row_bytes(plane, width)
                .ok_or(CodecError::Overflow { width, height })?;
            *p = Plane { offset, stride: row };
            offset = row
                .checked_mul(self.plane_rows(plane, height))
                .and_then(|s| offset.checked_add(s))
                .ok_or(CodecError::Overflow { width, height })?;
        }
        Ok(planes)
    }
}

impl fmt::Display for PixelLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Where one plane starts in a [`PixelBuffer`]'s data and how far apart its
/// rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plane {
    /// Byte offset of the plane's first row.
    pub offset: usize,
    /// Bytes from one row's start to the next (at least the row size).
    pub stride: usize,
}

/// A picture: layout, size, per-plane strides and the bytes, shared by
/// reference ([`Bytes`]) so handing a frame on never copies it.
///
/// Built only through validating constructors; once built, every row of
/// every plane lies inside the data.
#[derive(Clone)]
pub struct PixelBuffer {
    layout: PixelLayout,
    width: u32,
    height: u32,
    planes: [Plane; 3],
    data: Bytes,
}

impl fmt::Debug for PixelBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PixelBuffer")
            .field("layout", &self.layout)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("planes", &&self.planes[..self.layout.plane_count()])
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl PixelBuffer {
    /// A tightly packed picture: rows back to back, planes back to back.
    /// `data` must be exactly [`PixelLayout::frame_size`] bytes.
    pub fn new(layout: PixelLayout, width: u32, height: u32, data: impl Into<Bytes>) -> Result<Self, CodecError> {
        let data = data.into();
        layout.check_dimensions(width, height)?;
        let needed = layout.frame_size(width, height)?;
        if data.len() != needed {
            return Err(CodecError::BufferLength {
                expected: needed,
                got: data.len(),
            });
        }
        let planes = layout.tight_planes(width, height)?;
        Ok(PixelBuffer {
            layout,
            width,
            height,
            planes,
            data,
        })
    }

    /// A single-plane picture whose rows are `stride` bytes apart.
    pub fn with_stride(
        layout: PixelLayout,
        width: u32,
        height: u32,
        stride: usize,
        data: impl Into<Bytes>,
    ) -> Result<Self, CodecError> {
        Self::with_planes(layout, width, height, &[Plane { offset: 0, stride }], data)
    }

    /// A picture with explicit plane offsets and strides (one entry per
    /// plane of `layout`). Planes may be padded or in any order, but every
    /// row must lie inside `data`.
    pub fn with_planes(
        layout: PixelLayout,
        width: u32,
        height: u32,
        planes: &[Plane],
        data: impl Into<Bytes>,
    ) -> Result<Self, CodecError> {
        let data = data.into();
        layout.check_dimensions(width, height)?;
        if planes.len() != layout.plane_count() {
            return Err(CodecError::PlaneCount {
                layout,
                expected: layout.plane_count(),
                got: planes.len(),
            });
        }
        let mut stored = [Plane::default(); 3];
        for (i, p) in planes.iter().enumerate() {
            let row = layout
                .row_bytes(i, width)
                .ok_or(CodecError::Overflow { width, height })?;
            if p.stride < row {
                return Err(CodecError::StrideTooSmall {
                    plane: i,
                    stride: p.stride,
                    min: row,
                });
            }
            let rows = layout.plane_rows(i, height);
            // rows >= 1 because height >= 1.
            let end = p
                .stride
                .checked_mul(rows - 1)
                .and_then(|v| v.checked_add(row))
                .and_then(|v| v.checked_add(p.offset))
                .ok_or(CodecError::Overflow { width, height })?;
            if end > data.len() {
                return Err(CodecError::DataTooShort {
                    needed: end,
                    got: data.len(),
                });
            }
            stored[i] = *p;
        }
        Ok(PixelBuffer {
            layout,
            width,
            height,
            planes: stored,
            data,
        })
    }

    /// The layout.
    pub fn layout(&self) -> PixelLayout {
        self.layout
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The underlying bytes (including any padding).
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Offset and stride of `plane`.
    ///
    /// # Panics
    /// If `plane` is not below [`PixelLayout::plane_count`].
    pub fn plane(&self, plane: usize) -> Plane {
        assert!(plane < self.layout.plane_count(), "plane {plane} out of range");
        self.planes[plane]
    }

    /// The pixel bytes of row `y` of `plane`, without padding.
    ///
    /// # Panics
    /// If `plane` or `y` is out of range (a caller bug; the buffer itself
    /// was validated when built).
    pub fn row(&self, plane: usize, y: usize) -> &[u8] {
        let p = self.plane(plane);
        assert!(y < self.layout.plane_rows(plane, self.height), "row {y} out of range");
        // Validated at construction: row_bytes exists and every row is inside data.
        let len = self.layout.row_bytes(plane, self.width).unwrap_or(0);
        let start = p.offset + p.stride * y;
        &self.data[start..start + len]
    }

    /// Bytes of this picture tightly packed.
    pub fn frame_size(&self) -> usize {
        // Validated at construction, so it cannot overflow.
        self.layout.frame_size(self.width, self.height).unwrap_or(0)
    }

    /// Whether rows and planes are back to back with no padding, starting at
    /// offset 0, and the data holds nothing else.
    pub fn is_tight(&self) -> bool {
        match self.layout.tight_planes(self.width, self.height) {
            Ok(t) => t == self.planes && self.data.len() == self.frame_size(),
            Err(_) => false,
        }
    }

    /// The pixels tightly packed: shared without copying when already tight.
    pub fn tight_bytes(&self) -> Bytes {
        if self.is_tight() {
            return self.data.clone();
        }
        let mut out = Vec::with_capacity(self.frame_size());
        for plane in 0..self.layout.plane_count() {
            for y in 0..self.layout.plane_rows(plane, self.height) {
                out.extend_from_slice(self.row(plane, y));
            }
        }
        Bytes::from(out)
    }

    /// This picture with tight packing (see [`PixelBuffer::tight_bytes`]).
    pub fn to_tight(&self) -> PixelBuffer {
        if self.is_tight() {
            return self.clone();
        }
        let data = self.tight_bytes();
        // Same layout and size as a validated buffer, tightly packed.
        let planes = self.layout.tight_planes(self.width, self.height).unwrap_or(self.planes);
        PixelBuffer {
            layout: self.layout,
            width: self.width,
            height: self.height,
            planes,
            data,
        }
    }

    /// Whether both pictures have the same layout, size and pixel bytes
    /// (padding ignored).
    pub fn pixels_eq(&self, other: &PixelBuffer) -> bool {
        if self.layout != other.layout || self.width != other.width || self.height != other.height {
            return false;
        }
        (0..self.layout.plane_count())
            .all(|p| (0..self.layout.plane_rows(p, self.height)).all(|y| self.row(p, y) == other.row(p, y)))
    }

    /// The picture in another layout, tightly packed. Converting to the same
    /// layout repacks tightly (sharing the bytes if already tight).
    ///
    /// YUV is BT.601 limited range (see the module doc); RGB to 4:2:0 or
    /// 4:2:2 averages the chroma of each 2x2 or 2x1 block; alpha is dropped
    /// or set to 255. Fails only with [`CodecError::OddWidth`] when
    /// converting an odd-width picture to YUYV.
    pub fn convert(&self, to: PixelLayout) -> Result<PixelBuffer, CodecError> {
        if to == self.layout {
            return Ok(self.to_tight());
        }
        to.check_dimensions(self.width, self.height)?;
        let mut out = vec![0u8; to.frame_size(self.width, self.height)?];
        let w = self.width as usize;
        let h = self.height as usize;
        match (self.layout.rgb_desc(), to.rgb_desc()) {
            (Some(s), Some(d)) => rgb_to_rgb(self, s, d, &mut out, w),
            (None, Some(d)) if self.layout == PixelLayout::I420 => i420_to_rgb(self, d, &mut out, w, h),
            (None, Some(d)) => yuyv_to_rgb(self, d, &mut out, w),
            (Some(s), None) if to == PixelLayout::I420 => rgb_to_i420(self, s, &mut out, w, h),
            (Some(s), None) => rgb_to_yuyv(self, s, &mut out, w),
            (None, None) if to == PixelLayout::I420 => yuyv_to_i420(self, &mut out, w, h),
            (None, None) => i420_to_yuyv(self, &mut out, w),
        }
        PixelBuffer::new(to, self.width, self.height, out)
    }
}

/// BT.601 limited range: Y from R, G, B.
#[inline]
pub(crate) fn rgb_to_y(r: u8, g: u8, b: u8) -> u8 {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

/// BT.601 limited range: U and V from R, G, B.
#[inline]
pub(crate) fn rgb_to_uv(r: i32, g: i32, b: i32) -> (u8, u8) {
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
}

/// BT.601 limited range: R, G, B from Y, U, V.
#[inline]
pub(crate) fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16);
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let r = (c + 409 * e + 128) >> 8;
    let g = (c - 100 * d - 208 * e + 128) >> 8;
    let b = (c + 516 * d + 128) >> 8;
    [r.clamp(0, 255) as u8, g.clamp(0, 255) as u8, b.clamp(0, 255) as u8]
}

#[inline]
fn put_rgb(d: &RgbDesc, px: &mut [u8], rgb: [u8; 3]) {
    px[d.r] = rgb[0];
    px[d.g] = rgb[1];
    px[d.b] = rgb[2];
    if let Some(a) = d.a {
        px[a] = 255;
    }
}

fn rgb_to_rgb(src: &PixelBuffer, s: RgbDesc, d: RgbDesc, out: &mut [u8], w: usize) {
    let drow = w * d.bpp;
    let swap_rb = s.bpp == 4 && d.bpp == 4 && s.r == d.b && s.b == d.r;
    for (y, dst) in out.chunks_exact_mut(drow).enumerate() {
        let row = src.row(0, y);
        if swap_rb {
            for (sp, dp) in row.chunks_exact(4).zip(dst.chunks_exact_mut(4)) {
                dp.copy_from_slice(&[sp[2], sp[1], sp[0], sp[3]]);
            }
        } else {
            for (sp, dp) in row.chunks_exact(s.bpp).zip(dst.chunks_exact_mut(d.bpp)) {
                dp[d.r] = sp[s.r];
                dp[d.g] = sp[s.g];
                dp[d.b] = sp[s.b];
                if let Some(a) = d.a {
                    dp[a] = s.a.map_or(255, |i| sp[i]);
                }
            }
        }
    }
}

fn i420_to_rgb(src: &PixelBuffer, d: RgbDesc, out: &mut [u8], w: usize, h: usize) {
    let drow = w * d.bpp;
    for (y, dst) in out.chunks_exact_mut(drow).enumerate().take(h) {
        let (yr, ur, vr) = (src.row(0, y), src.row(1, y / 2), src.row(2, y / 2));
        for (x, px) in dst.chunks_exact_mut(d.bpp).enumerate() {
            put_rgb(&d, px, yuv_to_rgb(yr[x], ur[x / 2], vr[x / 2]));
        }
    }
}

fn yuyv_to_rgb(src: &PixelBuffer, d: RgbDesc, out: &mut [u8], w: usize) {
    let drow = w * d.bpp;
    for (y, dst) in out.chunks_exact_mut(drow).enumerate() {
        let row = src.row(0, y);
        for (quad, pair) in row.chunks_exact(4).zip(dst.chunks_exact_mut(2 * d.bpp)) {
            let (p0, p1) = pair.split_at_mut(d.bpp);
            put_rgb(&d, p0, yuv_to_rgb(quad[0], quad[1], quad[3]));
            put_rgb(&d, p1, yuv_to_rgb(quad[2], quad[1], quad[3]));
        }
    }
}

fn rgb_to_i420(src: &PixelBuffer, s: RgbDesc, out: &mut [u8], w: usize, h: usize) {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (yp, chroma) = out.split_at_mut(w * h);
    let (up, vp) = chroma.split_at_mut(cw * ch);
    for (y, dst) in yp.chunks_exact_mut(w).enumerate() {
        for (sp, dy) in src.row(0, y).chunks_exact(s.bpp).zip(dst.iter_mut()) {
            *dy = rgb_to_y(sp[s.r], sp[s.g], sp[s.b]);
        }
    }
    for cy in 0..ch {
        let r0 = src.row(0, 2 * cy);
        let r1 = src.row(0, (2 * cy + 1).min(h - 1));
        for cx in 0..cw {
            let x0 = 2 * cx;
            let x1 = (x0 + 1).min(w - 1);
            let mut sum = [0i32; 3];
            for row in [r0, r1] {
                for x in [x0, x1] {
                    let p = &row[x * s.bpp..];
                    sum[0] += i32::from(p[s.r]);
                    sum[1] += i32::from(p[s.g]);
                    sum[2] += i32::from(p[s.b]);
                }
            }
            let (u, v) = rgb_to_uv((sum[0] + 2) >> 2, (sum[1] + 2) >> 2, (sum[2] + 2) >> 2);
            up[cy * cw + cx] = u;
            vp[cy * cw + cx] = v;
        }
    }
}

fn rgb_to_yuyv(src: &PixelBuffer, s: RgbDesc, out: &mut [u8], w: usize) {
    for (y, dst) in out.chunks_exact_mut(w * 2).enumerate() {
        let row = src.row(0, y);
        for (pair, quad) in row.chunks_exact(2 * s.bpp).zip(dst.chunks_exact_mut(4)) {
            let (p0, p1) = pair.split_at(s.bpp);
            let r = (i32::from(p0[s.r]) + i32::from(p1[s.r]) + 1) >> 1;
            let g = (i32::from(p0[s.g]) + i32::from(p1[s.g]) + 1) >> 1;
            let b = (i32::from(p0[s.b]) + i32::from(p1[s.b]) + 1) >> 1;
            let (u, v) = rgb_to_uv(r, g, b);
            quad.copy_from_slice(&[
                rgb_to_y(p0[s.r], p0[s.g], p0[s.b]),
                u,
                rgb_to_y(p1[s.r], p1[s.g], p1[s.b]),
                v,
            ]);
        }
    }
}

fn yuyv_to_i420(src: &PixelBuffer, out: &mut [u8], w: usize, h: usize) {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (yp, chroma) = out.split_at_mut(w * h);
    let (up, vp) = chroma.split_at_mut(cw * ch);
    for (y, dst) in yp.chunks_exact_mut(w).enumerate() {
        for (quad, pair) in src.row(0, y).chunks_exact(4).zip(dst.chunks_exact_mut(2)) {
            pair[0] = quad[0];
            pair[1] = quad[2];
        }
    }
    for cy in 0..ch {
        let r0 = src.row(0, 2 * cy);
        let r1 = src.row(0, (2 * cy + 1).min(h - 1));
        for (cx, (q0, q1)) in r0.chunks_exact(4).zip(r1.chunks_exact(4)).enumerate() {
            up[cy * cw + cx] = ((u16::from(q0[1]) + u16::from(q1[1]) + 1) >> 1) as u8;
            vp[cy * cw + cx] = ((u16::from(q0[3]) + u16::from(q1[3]) + 1) >> 1) as u8;
        }
    }
}

fn i420_to_yuyv(src: &PixelBuffer, out: &mut [u8], w: usize) {
    for (y, dst) in out.chunks_exact_mut(w * 2).enumerate() {
        let (yr, ur, vr) = (src.row(0, y), src.row(1, y / 2), src.row(2, y / 2));
        for (i, quad) in dst.chunks_exact_mut(4).enumerate() {
            quad.copy_from_slice(&[yr[2 * i], ur[i], yr[2 * i + 1], vr[i]]);
        }
    }
}
