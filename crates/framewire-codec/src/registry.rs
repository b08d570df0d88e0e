//! The codec registry and stream negotiation.
//!
//! A [`Registry`] maps a wire [`Format`] code to the codecs this build has.
//! A receiving node calls [`Registry::negotiate`] with each STREAM_OPEN: it
//! gets a decoder, or a [`Rejection`] carrying the status and reason to put
//! in the control response.

use std::collections::BTreeMap;
use std::fmt;

use framewire_proto::{Format, Status, StreamOpen};

use crate::{CodecError, DecodeOptions, Decoder, EncodeSpec, Encoder};

/// Makes a decoder for a stream.
pub type MakeDecoder = fn(&StreamOpen, &DecodeOptions) -> Result<Box<dyn Decoder>, CodecError>;
/// Makes an encoder for a spec.
pub type MakeEncoder = fn(&EncodeSpec) -> Result<Box<dyn Encoder>, CodecError>;

/// What one format has in this build.
#[derive(Debug, Clone, Copy)]
pub struct CodecEntry {
    /// The wire format.
    pub format: Format,
    /// The cargo feature (or component) that provides it.
    pub provider: &'static str,
    /// How to make a decoder, if there is one.
    pub decoder: Option<MakeDecoder>,
    /// How to make an encoder, if there is one.
    pub encoder: Option<MakeEncoder>,
}

/// The cargo features of this crate compiled into this build.
pub fn enabled_features() -> Vec<&'static str> {
    let mut features = Vec::new();
    if cfg!(feature = "jpeg") {
        features.push("jpeg");
    }
    if cfg!(feature = "qoi") {
        features.push("qoi");
    }
    if cfg!(feature = "zstd") {
        features.push("zstd");
    }
    if cfg!(feature = "h264") {
        features.push("h264");
    }
    features
}

/// The codecs this build has, keyed by wire format code.
#[derive(Debug, Clone)]
pub struct Registry {
    entries: BTreeMap<u16, CodecEntry>,
    options: DecodeOptions,
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

/// A refused STREAM_OPEN: the status and a reason a person can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The control response status.
    pub status: Status,
    /// Why, in words.
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.reason)
    }
}

impl std::error::Error for Rejection {}

impl Registry {
    /// No codecs at all.
    pub fn empty() -> Self {
        Registry {
            entries: BTreeMap::new(),
            options: DecodeOptions::default(),
        }
    }

    /// Every codec compiled into this build, with default decode options.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        r.register(CodecEntry {
            format: Format::Raw,
            provider: "raw",
            decoder: Some(|open, opts| Ok(Box::new(crate::raw::RawDecoder::new(open, opts)?))),
            encoder: Some(|spec| Ok(Box::new(crate::raw::RawEncoder::new(spec)?))),
        });
        #[cfg(feature = "jpeg")]
        r.register(CodecEntry {
            format: Format::Mjpeg,
            provider: "jpeg",
            decoder: Some(|open, opts| Ok(Box::new(crate::mjpeg::MjpegDecoder::new(open, opts)?))),
            encoder: Some(|spec| Ok(Box::new(crate::mjpeg::MjpegEncoder::new(spec)?))),
        });
        #[cfg(feature = "h264")]
        r.register(CodecEntry {
            format: Format::H264,
            provider: "openh264",
            decoder: Some(|open, opts| Ok(Box::new(crate::h264::H264Decoder::new(open, opts)?))),
            encoder: Some(|spec| Ok(Box::new(crate::h264::H264Encoder::new(spec)?))),
        });
        #[cfg(feature = "qoi")]
        r.register(CodecEntry {
            format: Format::Qoi,
            provider: "qoi",
            decoder: Some(|open, opts| Ok(Box::new(crate::qoi::QoiDecoder::new(open, opts)?))),
            encoder: Some(|_| Ok(Box::new(crate::qoi::QoiEncoder::new()))),
        });
        #[cfg(feature = "zstd")]
        r.register(CodecEntry {
            format: Format::RawZstd,
            provider: "zstd",
            decoder: Some(|open, opts| Ok(Box::new(crate::zstd::ZstdDecoder::new(open, opts)?))),
            encoder: Some(|spec| Ok(Box::new(crate::zstd::ZstdEncoder::new(spec)?))),
        });
        r
    }

    /// Adds or replaces the entry for `entry.format`.
    pub fn register(&mut self, entry: CodecEntry) {
        self.entries.insert(entry.format.to_raw(), entry);
    }

    /// The same registry with other decode options.
    pub fn with_options(mut self, options: DecodeOptions) -> Self {
        self.options = options;
        self
    }

    /// The decode options every decoder gets.
    pub fn options(&self) -> &DecodeOptions {
        &self.options
    }

    /// The entry for `format`.
    pub fn entry(&self, format: Format) -> Option<&CodecEntry> {
        self.entries.get(&format.to_raw())
    }

    /// Whether this build decodes `format`.
    pub fn can_decode(&self, format: Format) -> bool {
        self.entry(format).is_some_and(|e| e.decoder.is_some())
    }

    /// Whether this build encodes `format`.
    pub fn can_encode(&self, format: Format) -> bool {
        self.entry(format).is_some_and(|e| e.encoder.is_some())
    }

    /// Formats this build decodes, in code order.
    pub fn decodable(&self) -> Vec<Format> {
        self.entries
            .values()
            .filter(|e| e.decoder.is_some())
            .map(|e| e.format)
            .collect()
    }

    /// Formats this build encodes, in code order.
    pub fn encodable(&self) -> Vec<Format> {
        self.entries
            .values()
            .filter(|e| e.encoder.is_some())
            .map(|e| e.format)
            .collect()
    }

    fn build_note() -> String {
        let features = enabled_features();
        if features.is_empty() {
            "in this build (features: none)".to_owned()
        } else {
            format!("in this build (features: {})", features.join(", "))
        }
    }

    /// Accepts a STREAM_OPEN with a decoder for it, or rejects it.
    ///
    /// Rejections: [`Status::UnsupportedFormat`] when there is no decoder
    /// for the format or the pixel format; [`Status::BadRequest`] when the
    /// size is invalid or over the limits.
    pub fn negotiate(&self, open: &StreamOpen) -> Result<Box<dyn Decoder>, Rejection> {
        let make = self
            .entry(open.format)
            .and_then(|e| e.decoder)
            .ok_or_else(|| Rejection {
                status: Status::UnsupportedFormat,
                reason: format!("no decoder for {} {}", open.format, Self::build_note()),
            })?;
        make(open, &self.options).map_err(|e| rejection(open.format, e))
    }

    /// An encoder for `spec`.
    pub fn encoder(&self, spec: &EncodeSpec) -> Result<Box<dyn Encoder>, Rejection> {
        let make = self
            .entry(spec.format)
            .and_then(|e| e.encoder)
            .ok_or_else(|| Rejection {
                status: Status::UnsupportedFormat,
                reason: format!("no encoder for {} {}", spec.format, Self::build_note()),
            })?;
        make(spec).map_err(|e| rejection(spec.format, e))
    }
}

fn rejection(format: Format, e: CodecError) -> Rejection {
    let status = match e {
        CodecError::Unsupported(_) => Status::UnsupportedFormat,
        _ => Status::BadRequest,
    };
    Rejection {
        status,
        reason: format!("{format}: {e}"),
    }
}
