//! QOI: lossless, single pass, strong on screen content.
//!
//! QOI stores RGB or RGBA only. BGRA/BGR pictures are swizzled to RGBA/RGB
//! and YUV pictures converted to RGB before encoding, so a `.qoi` payload
//! written to a file opens with the right colours in any QOI reader.

use bytes::Bytes;
use framewire_proto::{Format, Origin, PixelFormat, StreamOpen};

use crate::codec::check_decoded_size;
use crate::{CodecError, DecodeOptions, Decoder, Encoder, Limits, PixelBuffer, PixelLayout};

/// QOI's header size in bytes.
pub const QOI_HEADER_LEN: usize = 14;
/// QOI's end marker size in bytes.
const QOI_END_LEN: usize = 8;
/// The most pixels one payload byte can stand for (a QOI_OP_RUN of 62).
const QOI_MAX_PIXELS_PER_BYTE: u64 = 62;

/// Encodes pictures as QOI images (RGBA when the picture has alpha, else RGB).
#[derive(Debug, Default)]
pub struct QoiEncoder {
    _private: (),
}

impl QoiEncoder {
    /// A QOI encoder.
    pub fn new() -> Self {
        QoiEncoder { _private: () }
    }
}

impl Encoder for QoiEncoder {
    fn format(&self) -> Format {
        Format::Qoi
    }
    fn pixel_format(&self) -> PixelFormat {
        PixelFormat::None
    }
    fn origin(&self) -> Origin {
        Origin::Software
    }
    fn encode(&mut self, frame: &PixelBuffer) -> Result<Bytes, CodecError> {
        let target = if frame.layout().has_alpha() {
            PixelLayout::Rgba
        } else {
            PixelLayout::Rgb
        };
        let pixels = frame.convert(target)?.tight_bytes();
        let out = ::qoi::Encoder::new(&pixels[..], frame.width(), frame.height())
            .and_then(|e| e.encode_to_vec())
            .map_err(|e| CodecError::Encode {
                format: Format::Qoi,
                detail: e.to_string(),
            })?;
        Ok(Bytes::from(out))
    }
}

/// Decodes QOI payloads into [`DecodeOptions::rgb_layout`].
#[derive(Debug)]
pub struct QoiDecoder {
    limits: Limits,
    layout: PixelLayout,
    declared: (u32, u32),
}

impl QoiDecoder {
    /// A decoder for the stream `open` announces; a non-zero width and
    /// height there must match every frame.
    pub fn new(open: &StreamOpen, options: &DecodeOptions) -> Result<Self, CodecError> {
        if !options.rgb_layout.is_rgb() {
            return Err(CodecError::Unsupported(format!(
                "QOI decodes to RGB layouts, not {}",
                options.rgb_layout
            )));
        }
        Ok(QoiDecoder {
            limits: options.limits,
            layout: options.rgb_layout,
            declared: (open.width, open.height),
        })
    }
}

impl Decoder for QoiDecoder {
    fn format(&self) -> Format {
        Format::Qoi
    }
    fn decode(&mut self, payload: &Bytes) -> Result<PixelBuffer, CodecError> {
        let corrupt = |detail: String| CodecError::Corrupt {
            format: Format::Qoi,
            detail,
        };
        if payload.len() < QOI_HEADER_LEN + QOI_END_LEN {
            return Err(corrupt(format!(
                "{} bytes is shorter than header and end marker",
                payload.len()
            )));
        }
        // Our own look at the header first: size limits before anything else.
        if &payload[..4] != b"qoif" {
            return Err(corrupt("no qoif magic".into()));
        }
        let be32 = |i: usize| u32::from_be_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]]);
        let (w, h) = (u64::from(be32(4)), u64::from(be32(8)));
        check_decoded_size(Format::Qoi, w, h, &self.limits, self.declared)?;
        let header = ::qoi::decode_header(&payload[..]).map_err(|e| corrupt(e.to_string()))?;
        // Refuse a header claiming more pixels than the payload can encode,
        // before allocating for them.
        let body = (payload.len() - QOI_HEADER_LEN - QOI_END_LEN) as u64;
        if w * h > body.saturating_mul(QOI_MAX_PIXELS_PER_BYTE) {
            return Err(corrupt(format!("{w}x{h} cannot fit in {body} bytes of QOI data")));
        }
        let (channels, decoded_layout) = if self.layout.has_alpha() {
            (::qoi::Channels::Rgba, PixelLayout::Rgba)
        } else {
            (::qoi::Channels::Rgb, PixelLayout::Rgb)
        };
        let pixels = ::qoi::Decoder::new(&payload[..])
            .map(|d| d.with_channels(channels))
            .and_then(|mut d| d.decode_to_vec())
            .map_err(|e| corrupt(e.to_string()))?;
        let picture = PixelBuffer::new(decoded_layout, header.width, header.height, pixels)?;
        picture.convert(self.layout)
    }
}
