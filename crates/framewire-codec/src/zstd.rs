//! Raw pixels compressed with zstd.
//!
//! # Payload
//! One zstd frame whose content is the picture tightly packed in the
//! STREAM_OPEN's pixel format, exactly as a [`crate::raw`] payload. Width,
//! height and layout are *not* repeated per frame: the stream declares them
//! once. Our encoder writes the frame's content size, so `zstd -d` turns a
//! payload into a file ffmpeg reads as `-f rawvideo`.
//!
//! # Decoding safely
//! The decoder knows the exact size a frame must have (width x height x
//! layout, checked against the limits when the stream opens). It refuses a
//! frame whose header states another content size, then decompresses into a
//! buffer of exactly that size: a payload that would expand further fails
//! instead of growing the buffer, and one that expands to less is refused.

use bytes::Bytes;
use framewire_proto::{Format, Origin, PixelFormat, StreamOpen};

use crate::codec::{RawGeometry, raw_layout};
use crate::{CodecError, DecodeOptions, Decoder, EncodeSpec, Encoder, PixelBuffer, PixelLayout};

/// Encodes pictures as raw pixels + zstd.
pub struct ZstdEncoder {
    layout: PixelLayout,
    pixel_format: PixelFormat,
    level: i32,
    ctx: ::zstd::bulk::Compressor<'static>,
}

impl std::fmt::Debug for ZstdEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdEncoder")
            .field("layout", &self.layout)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl ZstdEncoder {
    /// An encoder writing `spec.pixel_format` at `spec.zstd_level`.
    pub fn new(spec: &EncodeSpec) -> Result<Self, CodecError> {
        let layout = raw_layout(spec)?;
        let (min, max) = (::zstd::zstd_safe::min_c_level(), ::zstd::zstd_safe::max_c_level());
        if !(min..=max).contains(&spec.zstd_level) {
            return Err(CodecError::Unsupported(format!(
                "zstd level {} (this build takes {min}..={max})",
                spec.zstd_level
            )));
        }
        let ctx = ::zstd::bulk::Compressor::new(spec.zstd_level).map_err(|e| CodecError::Encode {
            format: Format::RawZstd,
            detail: e.to_string(),
        })?;
        Ok(ZstdEncoder {
            layout,
            pixel_format: spec.pixel_format,
            level: spec.zstd_level,
            ctx,
        })
    }

    /// The compression level.
    pub fn level(&self) -> i32 {
        self.level
    }
}

impl Encoder for ZstdEncoder {
    fn format(&self) -> Format {
        Format::RawZstd
    }
    fn pixel_format(&self) -> PixelFormat {
        self.pixel_format
    }
    fn origin(&self) -> Origin {
        Origin::Software
    }
    fn encode(&mut self, frame: &PixelBuffer) -> Result<Bytes, CodecError> {
        let raw = frame.convert(self.layout)?.tight_bytes();
        let mut out = Vec::with_capacity(::zstd::zstd_safe::compress_bound(raw.len()));
        self.ctx
            .compress_to_buffer(&raw[..], &mut out)
            .map_err(|e| CodecError::Encode {
                format: Format::RawZstd,
                detail: e.to_string(),
            })?;
        Ok(Bytes::from(out))
    }
}

/// Decodes raw + zstd payloads of one stream; see the module doc.
pub struct ZstdDecoder {
    geometry: RawGeometry,
    ctx: ::zstd::bulk::Decompressor<'static>,
}

impl std::fmt::Debug for ZstdDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdDecoder")
            .field("geometry", &self.geometry)
            .finish_non_exhaustive()
    }
}

impl ZstdDecoder {
    /// A decoder for the stream `open` announces (width, height and pixel
    /// format must be set).
    pub fn new(open: &StreamOpen, options: &DecodeOptions) -> Result<Self, CodecError> {
        let geometry = RawGeometry::from_open(open, options)?;
        let ctx = ::zstd::bulk::Decompressor::new()
            .map_err(|e| CodecError::Unsupported(format!("zstd decompressor: {e}")))?;
        Ok(ZstdDecoder { geometry, ctx })
    }
}

impl Decoder for ZstdDecoder {
    fn format(&self) -> Format {
        Format::RawZstd
    }
    fn decode(&mut self, payload: &Bytes) -> Result<PixelBuffer, CodecError> {
        let g = &self.geometry;
        let corrupt = |detail: String| CodecError::Corrupt {
            format: Format::RawZstd,
            detail,
        };
        match ::zstd::zstd_safe::get_frame_content_size(payload) {
            Ok(Some(n)) if n != g.frame_size as u64 => {
                return Err(CodecError::SizeMismatch {
                    format: Format::RawZstd,
                    expected: g.frame_size,
                    got: usize::try_from(n).unwrap_or(usize::MAX),
                });
            }
            Ok(_) => {}
            Err(_) => return Err(corrupt("not a zstd frame".into())),
        }
        // Exactly the declared size: decompression cannot write past it.
        let mut out = Vec::with_capacity(g.frame_size);
        let n = self
            .ctx
            .decompress_to_buffer(&payload[..], &mut out)
            .map_err(|e| corrupt(e.to_string()))?;
        if n != g.frame_size || out.len() != g.frame_size {
            return Err(CodecError::SizeMismatch {
                format: Format::RawZstd,
                expected: g.frame_size,
                got: n,
            });
        }
        PixelBuffer::new(g.layout, g.width, g.height, out)
    }
}
