//! Raw pixels, passed through: the payload is the picture tightly packed
//! (rows and planes back to back) in the STREAM_OPEN's pixel format.

use bytes::Bytes;
use framewire_proto::{Format, Origin, PixelFormat, StreamOpen};

use crate::codec::{RawGeometry, raw_layout};
use crate::{CodecError, DecodeOptions, Decoder, EncodeSpec, Encoder, PixelBuffer, PixelLayout};

/// Encodes pictures as raw pixels in a fixed layout.
#[derive(Debug)]
pub struct RawEncoder {
    layout: PixelLayout,
    pixel_format: PixelFormat,
}

impl RawEncoder {
    /// An encoder writing `spec.pixel_format`.
    pub fn new(spec: &EncodeSpec) -> Result<Self, CodecError> {
        Ok(RawEncoder {
            layout: raw_layout(spec)?,
            pixel_format: spec.pixel_format,
        })
    }
}

impl Encoder for RawEncoder {
    fn format(&self) -> Format {
        Format::Raw
    }
    fn pixel_format(&self) -> PixelFormat {
        self.pixel_format
    }
    fn origin(&self) -> Origin {
        Origin::Software
    }
    fn encode(&mut self, frame: &PixelBuffer) -> Result<Bytes, CodecError> {
        // A tight picture already in the layout is shared, not copied.
        Ok(frame.convert(self.layout)?.tight_bytes())
    }
}

/// Decodes raw payloads; the payload must be exactly the declared size.
#[derive(Debug)]
pub struct RawDecoder {
    geometry: RawGeometry,
}

impl RawDecoder {
    /// A decoder for the stream `open` announces (width, height and pixel
    /// format must be set).
    pub fn new(open: &StreamOpen, options: &DecodeOptions) -> Result<Self, CodecError> {
        Ok(RawDecoder {
            geometry: RawGeometry::from_open(open, options)?,
        })
    }
}

impl Decoder for RawDecoder {
    fn format(&self) -> Format {
        Format::Raw
    }
    fn decode(&mut self, payload: &Bytes) -> Result<PixelBuffer, CodecError> {
        let g = &self.geometry;
        if payload.len() != g.frame_size {
            return Err(CodecError::SizeMismatch {
                format: Format::Raw,
                expected: g.frame_size,
                got: payload.len(),
            });
        }
        PixelBuffer::new(g.layout, g.width, g.height, payload.clone())
    }
}
