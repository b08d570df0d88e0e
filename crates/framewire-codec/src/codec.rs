//! The encoder and decoder traits, their settings and limits.

use std::fmt;

use bytes::Bytes;
use framewire_proto::{Format, Origin, PixelFormat, StreamOpen};

use crate::{CodecError, PixelBuffer, PixelLayout};

/// Default largest picture a decoder accepts: 8192 x 8192 (64 Mpx).
pub const DEFAULT_MAX_PIXELS: u64 = 8192 * 8192;
/// Largest picture of a stream that declares no size (0x0): 3840x2160.
pub const UNDECLARED_MAX_PIXELS: u64 = 3840 * 2160;
/// Default JPEG quality (1..=100).
pub const DEFAULT_JPEG_QUALITY: u8 = 85;
/// Default zstd compression level.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;
/// Default H.264 keyframe interval, in frames (2 s at 30 fps).
pub const DEFAULT_KEYFRAME_INTERVAL: u32 = 60;

/// Turns pictures into frame payloads for one stream.
///
/// # Contract
/// - [`Encoder::encode`] takes a [`PixelBuffer`] of any layout and any
///   strides; when the codec needs another layout it converts (see
///   [`PixelBuffer::convert`]). It returns one complete frame payload. For
///   intra-only formats every payload is self-contained; an inter-coded
///   encoder (H.264) says which payloads a decoder can start at
///   ([`Encoder::keyframe`]) and makes one on request
///   ([`Encoder::force_keyframe`]).
/// - [`Encoder::format`], [`Encoder::pixel_format`] and [`Encoder::origin`]
///   are fixed for the encoder's life; they are what the stream's
///   STREAM_OPEN carries ([`Encoder::stream_open`] builds it).
/// - An error concerns that frame only; the encoder stays usable.
/// - Never panics on a valid [`PixelBuffer`].
pub trait Encoder: Send + fmt::Debug {
    /// The wire format of the payloads.
    fn format(&self) -> Format;
    /// The pixel format for STREAM_OPEN: the raw layout for raw formats,
    /// [`PixelFormat::None`] for compressed ones.
    fn pixel_format(&self) -> PixelFormat;
    /// How the payloads are produced (informational).
    fn origin(&self) -> Origin;
    /// Encodes one picture into one frame payload.
    fn encode(&mut self, frame: &PixelBuffer) -> Result<Bytes, CodecError>;

    /// Whether the payload [`Encoder::encode`] returned last is one a
    /// decoder can start at (always, for intra-only formats).
    fn keyframe(&self) -> bool {
        true
    }

    /// Makes the next payload a keyframe (nothing to do for intra-only
    /// formats).
    fn force_keyframe(&mut self) {}

    /// The codec configuration for STREAM_OPEN (H.264: SPS and PPS in
    /// Annex B), once known; empty for formats without one.
    fn codec_config(&self) -> Bytes {
        Bytes::new()
    }

    /// The STREAM_OPEN announcing a stream of this encoder's payloads.
    fn stream_open(&self, width: u32, height: u32, fps_num: u32, fps_den: u32, name: &str) -> StreamOpen {
        StreamOpen {
            format: self.format(),
            pixel_format: self.pixel_format(),
            origin: self.origin(),
            width,
            height,
            fps_num,
            fps_den,
            name: name.to_owned(),
            codec_config: self.codec_config(),
        }
    }
}

/// Turns frame payloads of one stream back into pictures.
///
/// # Contract
/// - A decoder is made for one stream from its STREAM_OPEN (see
///   [`crate::Registry::negotiate`]); each call takes one frame payload and
///   returns one picture, independent of earlier frames.
/// - Payloads come from the network: truncated, corrupt or hostile input
///   returns a [`CodecError`], never panics, and the decoder stays usable
///   for the next frame.
/// - Memory: the decoder reads the payload's own header (JPEG SOF, QOI
///   header) or the stream's declared size first and refuses pictures over
///   [`Limits::max_pixels`] or differing from a non-zero declared width and
///   height *before* allocating pixel memory; it never allocates more than
///   that size allows.
/// - Raw formats decode to their declared layout; compressed formats decode
///   to [`DecodeOptions::rgb_layout`].
pub trait Decoder: Send + fmt::Debug {
    /// The wire format this decoder reads.
    fn format(&self) -> Format;
    /// Decodes one frame payload.
    fn decode(&mut self, payload: &Bytes) -> Result<PixelBuffer, CodecError>;
}

/// Size limits applied to every decoded picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest width x height accepted.
    pub max_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

impl Limits {
    /// Refuses zero or oversized dimensions.
    pub fn check(&self, width: u64, height: u64) -> Result<(), CodecError> {
        if width == 0 || height == 0 {
            return Err(CodecError::ZeroDimension {
                width: width.min(u64::from(u32::MAX)) as u32,
                height: height.min(u64::from(u32::MAX)) as u32,
            });
        }
        match width.checked_mul(height) {
            Some(px) if px <= self.max_pixels => Ok(()),
            _ => Err(CodecError::TooLarge {
                width,
                height,
                max_pixels: self.max_pixels,
            }),
        }
    }
}

/// Options for every decoder a registry makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Size limits.
    pub limits: Limits,
    /// The RGB-family layout compressed formats (MJPEG, QOI) decode into.
    pub rgb_layout: PixelLayout,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            limits: Limits::default(),
            rgb_layout: PixelLayout::Rgba,
        }
    }
}

/// Chroma subsampling of a JPEG encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChromaSubsampling {
    /// 4:4:4, full-resolution chroma (best for text and UI edges).
    S444,
    /// 4:2:2, half horizontal chroma.
    S422,
    /// 4:2:0, half horizontal and vertical chroma (what cameras send).
    S420,
    /// Luma only.
    Gray,
}

/// What an encoder should produce. Fields that do not apply to the format
/// are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeSpec {
    /// The wire format.
    pub format: Format,
    /// For raw formats: the pixel layout on the wire.
    pub pixel_format: PixelFormat,
    /// JPEG quality, 1..=100.
    pub quality: u8,
    /// JPEG chroma subsampling.
    pub subsampling: ChromaSubsampling,
    /// zstd level (1 is fast; up to 22; negative levels are faster still).
    pub zstd_level: i32,
    /// H.264 target bit rate in bits per second; 0 picks one from the
    /// picture size (about 2 bits per pixel per second).
    pub bitrate: u32,
    /// H.264: a keyframe at least every this many frames.
    pub keyframe_interval: u32,
}

impl EncodeSpec {
    /// MJPEG at `quality`, 4:2:0.
    pub const fn mjpeg(quality: u8) -> Self {
        EncodeSpec {
            format: Format::Mjpeg,
            pixel_format: PixelFormat::None,
            quality,
            subsampling: ChromaSubsampling::S420,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            bitrate: 0,
            keyframe_interval: DEFAULT_KEYFRAME_INTERVAL,
        }
    }

    /// H.264 at `bitrate` bits per second (0: from the picture size), a
    /// keyframe at least every `keyframe_interval` frames.
    pub const fn h264(bitrate: u32, keyframe_interval: u32) -> Self {
        EncodeSpec {
            format: Format::H264,
            bitrate,
            keyframe_interval,
            ..Self::mjpeg(DEFAULT_JPEG_QUALITY)
        }
    }

    /// QOI.
    pub const fn qoi() -> Self {
        EncodeSpec {
            format: Format::Qoi,
            ..Self::mjpeg(DEFAULT_JPEG_QUALITY)
        }
    }

    /// Raw pixels in `pixel_format`.
    pub const fn raw(pixel_format: PixelFormat) -> Self {
        EncodeSpec {
            format: Format::Raw,
            pixel_format,
            ..Self::mjpeg(DEFAULT_JPEG_QUALITY)
        }
    }

    /// Raw pixels in `pixel_format` compressed with zstd at `level`.
    pub const fn raw_zstd(pixel_format: PixelFormat, level: i32) -> Self {
        EncodeSpec {
            format: Format::RawZstd,
            pixel_format,
            zstd_level: level,
            ..Self::mjpeg(DEFAULT_JPEG_QUALITY)
        }
    }

    /// The same spec with another chroma subsampling.
    pub const fn with_subsampling(mut self, subsampling: ChromaSubsampling) -> Self {
        self.subsampling = subsampling;
        self
    }
}

/// Width, height and layout of a raw stream, checked against the limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawGeometry {
    pub(crate) layout: PixelLayout,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) frame_size: usize,
}

impl RawGeometry {
    pub(crate) fn from_open(open: &StreamOpen, options: &DecodeOptions) -> Result<Self, CodecError> {
        let layout = PixelLayout::from_wire(open.pixel_format).ok_or_else(|| {
            CodecError::Unsupported(format!(
                "{} needs a raw pixel format, got {}",
                open.format, open.pixel_format
            ))
        })?;
        options.limits.check(u64::from(open.width), u64::from(open.height))?;
        layout.check_dimensions(open.width, open.height)?;
        let frame_size = layout.frame_size(open.width, open.height)?;
        Ok(RawGeometry {
            layout,
            width: open.width,
            height: open.height,
            frame_size,
        })
    }
}

/// The raw layout an encoder spec asks for.
pub(crate) fn raw_layout(spec: &EncodeSpec) -> Result<PixelLayout, CodecError> {
    PixelLayout::from_wire(spec.pixel_format).ok_or_else(|| {
        CodecError::Unsupported(format!(
            "{} needs a raw pixel format, got {}",
            spec.format, spec.pixel_format
        ))
    })
}

/// Checks a decoded picture's size against the limits and the declared size.
#[cfg(any(feature = "jpeg", feature = "qoi", feature = "h264"))]
pub(crate) fn check_decoded_size(
    format: Format,
    width: u64,
    height: u64,
    limits: &Limits,
    declared: (u32, u32),
) -> Result<(), CodecError> {
    let (dw, dh) = declared;
    if dw == 0 && dh == 0 {
        // A stream that declares no size (a file of JPEGs without one): its
        // pictures may be no larger than UHD, whatever their headers say.
        Limits {
            max_pixels: limits.max_pixels.min(UNDECLARED_MAX_PIXELS),
        }
        .check(width, height)?;
    } else {
        limits.check(width, height)?;
    }
    if (dw != 0 || dh != 0) && (u64::from(dw) != width || u64::from(dh) != height) {
        return Err(CodecError::DimensionMismatch {
            format,
            width,
            height,
            declared_width: dw,
            declared_height: dh,
        });
    }
    Ok(())
}
