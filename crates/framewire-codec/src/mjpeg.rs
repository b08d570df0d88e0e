//! MJPEG through libjpeg-turbo: each frame a baseline JFIF JPEG.
//!
//! The encoder takes RGB-family pictures as they are (any stride) and
//! converts YUV pictures to RGB first. The decoder reads the JPEG header,
//! checks the size against the limits and the stream's declared size, and
//! only then allocates. It decodes to an RGB-family layout, or with
//! [`MjpegDecoder::decode_planes`] straight to the JPEG's own Y, Cb, Cr
//! planes for a conversion on the GPU.

use bytes::Bytes;
use framewire_proto::{Format, Origin, PixelFormat, StreamOpen};
use turbojpeg::{Compressor, Decompressor, Image, Subsamp, YuvImage};

use crate::codec::check_decoded_size;
use crate::{
    ChromaSubsampling, CodecError, DecodeOptions, Decoder, EncodeSpec, Encoder, Limits, PixelBuffer, PixelLayout,
};

/// Most progressive scans a frame may have (guards against scan floods).
pub const MAX_PROGRESSIVE_SCANS: u32 = 64;

fn tj_format(layout: PixelLayout) -> Option<turbojpeg::PixelFormat> {
    match layout {
        PixelLayout::Bgra => Some(turbojpeg::PixelFormat::BGRA),
        PixelLayout::Rgba => Some(turbojpeg::PixelFormat::RGBA),
        PixelLayout::Bgr => Some(turbojpeg::PixelFormat::BGR),
        PixelLayout::Rgb => Some(turbojpeg::PixelFormat::RGB),
        _ => None,
    }
}

fn tj_subsamp(s: ChromaSubsampling) -> Subsamp {
    match s {
        ChromaSubsampling::S444 => Subsamp::None,
        ChromaSubsampling::S422 => Subsamp::Sub2x1,
        ChromaSubsampling::S420 => Subsamp::Sub2x2,
        ChromaSubsampling::Gray => Subsamp::Gray,
    }
}

/// Encodes pictures as JPEG with libjpeg-turbo.
pub struct MjpegEncoder {
    quality: u8,
    subsampling: ChromaSubsampling,
    compressor: Compressor,
}

impl std::fmt::Debug for MjpegEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MjpegEncoder")
            .field("quality", &self.quality)
            .field("subsampling", &self.subsampling)
            .finish_non_exhaustive()
    }
}

impl MjpegEncoder {
    /// An encoder at `spec.quality` (1..=100) with `spec.subsampling`.
    pub fn new(spec: &EncodeSpec) -> Result<Self, CodecError> {
        if !(1..=100).contains(&spec.quality) {
            return Err(CodecError::Unsupported(format!(
                "JPEG quality {} (takes 1..=100)",
                spec.quality
            )));
        }
        let err = |e: turbojpeg::Error| CodecError::Encode {
            format: Format::Mjpeg,
            detail: e.to_string(),
        };
        let mut compressor = Compressor::new().map_err(err)?;
        compressor.set_quality(i32::from(spec.quality)).map_err(err)?;
        compressor.set_subsamp(tj_subsamp(spec.subsampling)).map_err(err)?;
        Ok(MjpegEncoder {
            quality: spec.quality,
            subsampling: spec.subsampling,
            compressor,
        })
    }

    /// The quality.
    pub fn quality(&self) -> u8 {
        self.quality
    }

    /// The chroma subsampling.
    pub fn subsampling(&self) -> ChromaSubsampling {
        self.subsampling
    }
}

impl Encoder for MjpegEncoder {
    fn format(&self) -> Format {
        Format::Mjpeg
    }
    fn pixel_format(&self) -> PixelFormat {
        PixelFormat::None
    }
    fn origin(&self) -> Origin {
        Origin::LibjpegTurbo
    }
    fn encode(&mut self, frame: &PixelBuffer) -> Result<Bytes, CodecError> {
        if frame.layout() == PixelLayout::I420 && self.subsampling == ChromaSubsampling::S420 {
            return self.encode_i420(frame);
        }
        let converted;
        let (frame, format) = match tj_format(frame.layout()) {
            Some(f) => (frame, f),
            None => {
                converted = frame.convert(PixelLayout::Rgb)?;
                (&converted, turbojpeg::PixelFormat::RGB)
            }
        };
        let plane = frame.plane(0);
        let image = Image {
            pixels: &frame.data()[plane.offset..],
            width: frame.width() as usize,
            pitch: plane.stride,
            height: frame.height() as usize,
            format,
        };
        let out = self.compressor.compress_to_vec(image).map_err(|e| CodecError::Encode {
            format: Format::Mjpeg,
            detail: e.to_string(),
        })?;
        Ok(Bytes::from(out))
    }
}

/// Studio-swing luma (16..=235) to the full range a JPEG holds.
const Y_TO_FULL: [u8; 256] = range_lut(16, 219);
/// Studio-swing chroma (16..=240 around 128) to full range.
const C_TO_FULL: [u8; 256] = range_lut(128 - 112, 224);

/// Full-range luma to studio swing.
const Y_TO_STUDIO: [u8; 256] = squeeze_lut(16, 219);
/// Full-range chroma to studio swing.
const C_TO_STUDIO: [u8; 256] = squeeze_lut(16, 224);

/// `v` from 0..=255 squeezed into `lo..=lo+span`, rounded.
const fn squeeze_lut(lo: i32, span: i32) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (lo + (i as i32 * span * 2 + 255) / (2 * 255)) as u8;
        i += 1;
    }
    t
}

/// `v` from `lo..=lo+span` stretched to 0..=255, rounded and clamped.
const fn range_lut(lo: i32, span: i32) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let v = ((i as i32 - lo) * 255 * 2 + span) / (2 * span);
        t[i] = if v < 0 {
            0
        } else if v > 255 {
            255
        } else {
            v as u8
        };
        i += 1;
    }
    t
}

impl MjpegEncoder {
    /// An I420 picture (studio swing) encoded from its planes, 4:2:0, with
    /// no RGB in between: the planes are only stretched to full range.
    fn encode_i420(&mut self, frame: &PixelBuffer) -> Result<Bytes, CodecError> {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut planes = Vec::with_capacity(w * h + 2 * cw * ch);
        for y in 0..h {
            planes.extend(frame.row(0, y)[..w].iter().map(|&v| Y_TO_FULL[usize::from(v)]));
        }
        for plane in 1..3 {
            for y in 0..ch {
                planes.extend(frame.row(plane, y)[..cw].iter().map(|&v| C_TO_FULL[usize::from(v)]));
            }
        }
        let image = YuvImage {
            pixels: &planes[..],
            width: w,
            align: 1,
            height: h,
            subsamp: Subsamp::Sub2x2,
        };
        let out = self
            .compressor
            .compress_yuv_to_vec(image)
            .map_err(|e| CodecError::Encode {
                format: Format::Mjpeg,
                detail: e.to_string(),
            })?;
        Ok(Bytes::from(out))
    }
}

/// A JPEG's Y, Cb, Cr planes as stored in the file: BT.601 full range
/// (JFIF), chroma at the JPEG's own subsampling.
#[derive(Clone)]
pub struct YuvPlanes {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// The JPEG's chroma subsampling.
    pub subsampling: ChromaSubsampling,
    /// Bytes per row and rows of the Y plane (padded to whole chroma blocks).
    pub y_size: (usize, usize),
    /// Bytes per row and rows of each chroma plane (`(0, 0)` for grayscale).
    pub chroma_size: (usize, usize),
    /// Y, then Cb, then Cr, back to back.
    pub data: Bytes,
}

impl std::fmt::Debug for YuvPlanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YuvPlanes")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("subsampling", &self.subsampling)
            .field("y_size", &self.y_size)
            .field("chroma_size", &self.chroma_size)
            .finish_non_exhaustive()
    }
}

impl YuvPlanes {
    /// The Y plane.
    pub fn y(&self) -> &[u8] {
        &self.data[..self.y_size.0 * self.y_size.1]
    }
    /// The Cb (U) plane.
    pub fn cb(&self) -> &[u8] {
        let start = self.y_size.0 * self.y_size.1;
        &self.data[start..start + self.chroma_size.0 * self.chroma_size.1]
    }
    /// The Cr (V) plane.
    pub fn cr(&self) -> &[u8] {
        let start = self.y_size.0 * self.y_size.1 + self.chroma_size.0 * self.chroma_size.1;
        &self.data[start..start + self.chroma_size.0 * self.chroma_size.1]
    }
}

/// Decodes MJPEG payloads with libjpeg-turbo.
pub struct MjpegDecoder {
    decompressor: Decompressor,
    limits: Limits,
    layout: PixelLayout,
    declared: (u32, u32),
}

impl std::fmt::Debug for MjpegDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MjpegDecoder")
            .field("limits", &self.limits)
            .field("layout", &self.layout)
            .field("declared", &self.declared)
            .finish_non_exhaustive()
    }
}

fn new_decompressor() -> Result<Decompressor, CodecError> {
    let err = |e: turbojpeg::Error| CodecError::Unsupported(format!("JPEG decompressor: {e}"));
    let mut decompressor = Decompressor::new().map_err(err)?;
    decompressor.set_scan_limit(MAX_PROGRESSIVE_SCANS).map_err(err)?;
    Ok(decompressor)
}

impl MjpegDecoder {
    /// After a failed decode libjpeg-turbo's handle can keep state from the
    /// bad frame (it then misreads the next good one), so start afresh.
    fn after<T>(&mut self, result: Result<T, CodecError>) -> Result<T, CodecError> {
        if result.is_err() {
            match new_decompressor() {
                Ok(d) => self.decompressor = d,
                Err(e) => return Err(e),
            }
        }
        result
    }

    /// A decoder for the stream `open` announces; a non-zero width and
    /// height there must match every frame.
    pub fn new(open: &StreamOpen, options: &DecodeOptions) -> Result<Self, CodecError> {
        if tj_format(options.rgb_layout).is_none() {
            return Err(CodecError::Unsupported(format!(
                "MJPEG decodes to RGB layouts, not {}",
                options.rgb_layout
            )));
        }
        Ok(MjpegDecoder {
            decompressor: new_decompressor()?,
            limits: options.limits,
            layout: options.rgb_layout,
            declared: (open.width, open.height),
        })
    }

    fn header(&mut self, payload: &[u8]) -> Result<turbojpeg::DecompressHeader, CodecError> {
        let header = self
            .decompressor
            .read_header(payload)
            .map_err(|e| CodecError::Corrupt {
                format: Format::Mjpeg,
                detail: e.to_string(),
            })?;
        check_decoded_size(
            Format::Mjpeg,
            header.width as u64,
            header.height as u64,
            &self.limits,
            self.declared,
        )?;
        Ok(header)
    }

    /// Decodes a frame to its Y, Cb, Cr planes without colour conversion.
    pub fn decode_planes(&mut self, payload: &[u8]) -> Result<YuvPlanes, CodecError> {
        let result = self.decode_planes_inner(payload);
        self.after(result)
    }

    fn decode_planes_inner(&mut self, payload: &[u8]) -> Result<YuvPlanes, CodecError> {
        let header = self.header(payload)?;
        let subsampling = match header.subsamp {
            Subsamp::None => ChromaSubsampling::S444,
            Subsamp::Sub2x1 => ChromaSubsampling::S422,
            Subsamp::Sub2x2 => ChromaSubsampling::S420,
            Subsamp::Gray => ChromaSubsampling::Gray,
            other => {
                return Err(CodecError::Unsupported(format!(
                    "JPEG chroma subsampling {other:?} to planes"
                )));
            }
        };
        let corrupt = |e: turbojpeg::Error| CodecError::Corrupt {
            format: Format::Mjpeg,
            detail: e.to_string(),
        };
        let len = turbojpeg::yuv_pixels_len(header.width, 1, header.height, header.subsamp).map_err(corrupt)?;
        let mut image = YuvImage {
            pixels: vec![0u8; len],
            width: header.width,
            align: 1,
            height: header.height,
            subsamp: header.subsamp,
        };
        self.decompressor
            .decompress_to_yuv(payload, image.as_deref_mut())
            .map_err(corrupt)?;
        let chroma_size = if subsampling == ChromaSubsampling::Gray {
            (0, 0)
        } else {
            image.uv_size()
        };
        Ok(YuvPlanes {
            // Checked against the limits above, so both fit in u32.
            width: header.width as u32,
            height: header.height as u32,
            subsampling,
            y_size: image.y_size(),
            chroma_size,
            data: Bytes::from(image.pixels),
        })
    }
}

/// The smallest of 1/8, 1/4, 1/2 that keeps a picture at least
/// `min_w`×`min_h`, else full size.
fn scale_for(header: &turbojpeg::DecompressHeader, min_w: u32, min_h: u32) -> turbojpeg::ScalingFactor {
    [
        turbojpeg::ScalingFactor::ONE_EIGHTH,
        turbojpeg::ScalingFactor::ONE_QUARTER,
        turbojpeg::ScalingFactor::ONE_HALF,
    ]
    .into_iter()
    .find(|f| f.scale(header.width) >= min_w as usize && f.scale(header.height) >= min_h as usize)
    .unwrap_or(turbojpeg::ScalingFactor::ONE)
}

impl Decoder for MjpegDecoder {
    fn format(&self) -> Format {
        Format::Mjpeg
    }
    fn decode(&mut self, payload: &Bytes) -> Result<PixelBuffer, CodecError> {
        let result = self.decode_rgb(payload);
        self.after(result)
    }
}

impl MjpegDecoder {
    /// Decodes at 1/8, 1/4 or 1/2 of the picture's size, the smallest that
    /// is still at least `min_w`×`min_h` (or full size): libjpeg-turbo
    /// scales inside the inverse DCT, so a picture shown small costs a
    /// fraction of a full decode. The limits apply to the full size.
    pub fn decode_at_least(&mut self, payload: &[u8], min_w: u32, min_h: u32) -> Result<PixelBuffer, CodecError> {
        let result = self.decode_scaled(payload, min_w, min_h);
        let reset = self.decompressor.set_scaling_factor(turbojpeg::ScalingFactor::ONE);
        let result = self.after(result);
        reset.map_err(|e| CodecError::Unsupported(format!("JPEG scaling: {e}")))?;
        result
    }

    /// As [`MjpegDecoder::decode_at_least`], to I420 (studio swing) from
    /// the JPEG's own planes, with no RGB between: 4:2:0 chroma is taken as
    /// it is, 4:2:2 and 4:4:4 averaged down, grey given neutral chroma.
    pub fn decode_i420_at_least(&mut self, payload: &[u8], min_w: u32, min_h: u32) -> Result<PixelBuffer, CodecError> {
        let result = self.decode_i420_scaled(payload, min_w, min_h);
        let reset = self.decompressor.set_scaling_factor(turbojpeg::ScalingFactor::ONE);
        let result = self.after(result);
        reset.map_err(|e| CodecError::Unsupported(format!("JPEG scaling: {e}")))?;
        result
    }

    fn decode_i420_scaled(&mut self, payload: &[u8], min_w: u32, min_h: u32) -> Result<PixelBuffer, CodecError> {
        let header = self.header(payload)?;
        let factor = scale_for(&header, min_w, min_h);
        self.decompressor
            .set_scaling_factor(factor)
            .map_err(|e| CodecError::Unsupported(format!("JPEG scaling: {e}")))?;
        let header = header.scaled(factor);
        let corrupt = |e: turbojpeg::Error| CodecError::Corrupt {
            format: Format::Mjpeg,
            detail: e.to_string(),
        };
        let (w, h) = (header.width, header.height);
        let len = turbojpeg::yuv_pixels_len(w, 1, h, header.subsamp).map_err(corrupt)?;
        let mut image = YuvImage {
            pixels: vec![0u8; len],
            width: w,
            align: 1,
            height: h,
            subsamp: header.subsamp,
        };
        self.decompressor
            .decompress_to_yuv(payload, image.as_deref_mut())
            .map_err(corrupt)?;
        let src = &image.pixels;
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut out = Vec::with_capacity(w * h + 2 * cw * ch);
        out.extend(src[..w * h].iter().map(|&v| Y_TO_STUDIO[usize::from(v)]));
        // Source chroma planes: width and height of each.
        let (sw, sh) = match header.subsamp {
            Subsamp::Sub2x2 => (cw, ch),
            Subsamp::Sub2x1 => (cw, h),
            Subsamp::None => (w, h),
            Subsamp::Gray => (0, 0),
            other => {
                return Err(CodecError::Unsupported(format!(
                    "JPEG chroma subsampling {other:?} to planes"
                )));
            }
        };
        for plane in 0..2 {
            if sw == 0 {
                out.resize(out.len() + cw * ch, 128);
                continue;
            }
            let p = &src[w * h + plane * sw * sh..w * h + (plane + 1) * sw * sh];
            if (sw, sh) == (cw, ch) {
                // 4:2:0 already: sample for sample.
                out.extend(p.iter().map(|&v| C_TO_STUDIO[usize::from(v)]));
                continue;
            }
            // Source rows and columns per I420 chroma sample.
            let (fx, fy) = (sw / cw.max(1), sh / ch.max(1));
            for y in 0..ch {
                for x in 0..cw {
                    let (x0, y0) = ((x * fx).min(sw - 1), (y * fy).min(sh - 1));
                    let (x1, y1) = ((x0 + fx - 1).min(sw - 1), (y0 + fy - 1).min(sh - 1));
                    let sum = u32::from(p[y0 * sw + x0])
                        + u32::from(p[y0 * sw + x1])
                        + u32::from(p[y1 * sw + x0])
                        + u32::from(p[y1 * sw + x1]);
                    out.push(C_TO_STUDIO[(sum / 4) as usize]);
                }
            }
        }
        // Within the limits checked on the header: fits in u32.
        #[allow(clippy::cast_possible_truncation)]
        PixelBuffer::new(PixelLayout::I420, w as u32, h as u32, out)
    }

    fn decode_scaled(&mut self, payload: &[u8], min_w: u32, min_h: u32) -> Result<PixelBuffer, CodecError> {
        let header = self.header(payload)?;
        let factor = scale_for(&header, min_w, min_h);
        self.decompressor
            .set_scaling_factor(factor)
            .map_err(|e| CodecError::Unsupported(format!("JPEG scaling: {e}")))?;
        self.decode_with(payload, header.scaled(factor))
    }

    fn decode_rgb(&mut self, payload: &[u8]) -> Result<PixelBuffer, CodecError> {
        let header = self.header(payload)?;
        self.decode_with(payload, header)
    }

    /// Decompresses into a picture of `header`'s (perhaps scaled) size.
    fn decode_with(&mut self, payload: &[u8], header: turbojpeg::DecompressHeader) -> Result<PixelBuffer, CodecError> {
        // tj_format is Some: checked in new().
        let format = tj_format(self.layout).unwrap_or(turbojpeg::PixelFormat::RGBA);
        let (w, h) = (header.width as u32, header.height as u32);
        let size = self.layout.frame_size(w, h)?;
        let mut pixels = vec![0u8; size];
        let image = Image {
            pixels: &mut pixels[..],
            width: header.width,
            pitch: size / header.height,
            height: header.height,
            format,
        };
        self.decompressor
            .decompress(payload, image)
            .map_err(|e| CodecError::Corrupt {
                format: Format::Mjpeg,
                detail: e.to_string(),
            })?;
        PixelBuffer::new(self.layout, w, h, pixels)
    }
}
