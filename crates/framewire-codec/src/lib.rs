//! Per-frame codecs for framewire.
//!
//! Sources encode pictures into frame payloads before they go on the wire;
//! sinks decode payloads back into pictures. Relays never look inside a
//! payload, except where an output transcodes (see [`Transcoder`]).
//!
//! - [`PixelBuffer`]: a validated picture (layout, size, strides, bytes
//!   shared by reference) with the layout conversions codecs need.
//! - [`Encoder`] / [`Decoder`]: the traits every codec implements; their
//!   docs state the contract (intra-only payloads, no panics on input,
//!   no allocation beyond the checked picture size).
//! - [`Registry`]: which wire formats this build can decode and encode,
//!   keyed by the STREAM_OPEN format code; [`Registry::negotiate`] turns a
//!   STREAM_OPEN into a decoder or a [`Rejection`] with a readable reason.
//! - [`Transcoder`]: decode with one codec and encode with another, for a
//!   relay output that defines its own stream.
//!
//! # Codecs and features
//!
//! | format | feature | encoder | decoder | notes |
//! |---|---|---|---|---|
//! | MJPEG (0x0001) | `jpeg` | [`mjpeg::MjpegEncoder`] | [`mjpeg::MjpegDecoder`] | libjpeg-turbo; lossy; origin `libjpeg-turbo` |
//! | QOI (0x0007) | `qoi` | [`qoi::QoiEncoder`] | [`qoi::QoiDecoder`] | lossless; RGB/RGBA |
//! | raw (0x0008) | always | [`raw::RawEncoder`] | [`raw::RawDecoder`] | tightly packed pixels |
//! | raw + zstd (0x0009) | `zstd` | [`zstd::ZstdEncoder`] | [`zstd::ZstdDecoder`] | lossless; level 1 by default |
//!
//! # Example
//!
//! ```
//! use framewire_codec::{EncodeSpec, Registry, testkit};
//! use framewire_proto::PixelFormat;
//!
//! let registry = Registry::builtin();
//! let mut encoder = registry.encoder(&EncodeSpec::raw(PixelFormat::Bgra))?;
//! let picture = testkit::screen_like(64, 48, 1);
//! let open = encoder.stream_open(64, 48, 30, 1, "desk");
//! let payload = encoder.encode(&picture)?;
//!
//! let mut decoder = registry.negotiate(&open)?;
//! assert!(decoder.decode(&payload)?.pixels_eq(&picture));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Panics and errors
//!
//! Payloads come from the network: decoding never panics and returns a
//! [`CodecError`]. Pictures are checked against [`Limits`] from the
//! payload's header (or the stream's declared size for raw formats) before
//! pixel memory is allocated.

#![forbid(unsafe_code)]

mod codec;
mod error;
mod pixel;
mod registry;
mod transcode;

#[cfg(feature = "h264")]
pub mod h264;
pub mod h26x;
#[cfg(feature = "jpeg")]
pub mod mjpeg;
#[cfg(feature = "qoi")]
pub mod qoi;
pub mod raw;
pub mod testkit;
#[cfg(feature = "zstd")]
pub mod zstd;

pub use codec::{
    ChromaSubsampling, DEFAULT_JPEG_QUALITY, DEFAULT_KEYFRAME_INTERVAL, DEFAULT_MAX_PIXELS, DEFAULT_ZSTD_LEVEL,
    DecodeOptions, Decoder, EncodeSpec, Encoder, Limits, UNDECLARED_MAX_PIXELS,
};
pub use error::CodecError;
pub use pixel::{PixelBuffer, PixelLayout, Plane};
pub use registry::{CodecEntry, MakeDecoder, MakeEncoder, Registry, Rejection, enabled_features};
#[cfg(feature = "jpeg")]
pub use transcode::frame_to_thumbnail;
pub use transcode::{JpegError, Transcoder, frame_to_jpeg};
