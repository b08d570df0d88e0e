//! The crate's one error type.

use framewire_proto::Format;

use crate::PixelLayout;

/// Everything that can go wrong building a pixel buffer, encoding or decoding.
///
/// Decoders return these for bad input instead of panicking; each variant
/// says which limit or check the input failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Width or height is zero.
    #[error("picture has a zero dimension ({width}x{height})")]
    ZeroDimension {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// A size computation overflowed `usize`.
    #[error("picture size {width}x{height} overflows")]
    Overflow {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// The layout needs an even width (two pixels share chroma in YUYV).
    #[error("{layout} needs an even width, got {width}")]
    OddWidth {
        /// The layout.
        layout: PixelLayout,
        /// The width given.
        width: u32,
    },
    /// A plane's stride is shorter than one row of pixels.
    #[error("plane {plane} stride {stride} is below the row size {min}")]
    StrideTooSmall {
        /// Plane index.
        plane: usize,
        /// The stride given.
        stride: usize,
        /// Bytes one row needs.
        min: usize,
    },
    /// The plane description does not fit the layout.
    #[error("{layout} has {expected} plane(s), got {got}")]
    PlaneCount {
        /// The layout.
        layout: PixelLayout,
        /// Planes the layout has.
        expected: usize,
        /// Planes given.
        got: usize,
    },
    /// The pixel data is shorter than the planes need.
    #[error("pixel data is {got} bytes, the picture needs {needed}")]
    DataTooShort {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// Tightly packed pixel data of the wrong length.
    #[error("pixel data is {got} bytes, the tightly packed picture is {expected}")]
    BufferLength {
        /// Bytes the picture needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// A payload has the wrong size for what the stream declared.
    #[error("{format} payload decodes to {got} bytes, the stream declares {expected}")]
    SizeMismatch {
        /// The stream's format.
        format: Format,
        /// Bytes the stream's width, height and pixel format give.
        expected: usize,
        /// Bytes found (or a lower bound when decoding stopped early).
        got: usize,
    },
    /// The picture is larger than the configured limit; refused before any
    /// pixel memory is allocated.
    #[error("{width}x{height} exceeds the limit of {max_pixels} pixels")]
    TooLarge {
        /// Width found.
        width: u64,
        /// Height found.
        height: u64,
        /// The limit.
        max_pixels: u64,
    },
    /// A frame's size differs from what the stream declared.
    #[error("{format} frame is {width}x{height}, the stream declares {declared_width}x{declared_height}")]
    DimensionMismatch {
        /// The stream's format.
        format: Format,
        /// Width in the frame.
        width: u64,
        /// Height in the frame.
        height: u64,
        /// Width in STREAM_OPEN.
        declared_width: u32,
        /// Height in STREAM_OPEN.
        declared_height: u32,
    },
    /// The payload is truncated or corrupt.
    #[error("corrupt {format} payload: {detail}")]
    Corrupt {
        /// The stream's format.
        format: Format,
        /// What the codec library said.
        detail: String,
    },
    /// The codec library failed while encoding.
    #[error("{format} encoder failed: {detail}")]
    Encode {
        /// The encoder's format.
        format: Format,
        /// What the codec library said.
        detail: String,
    },
    /// A setting or combination this build does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
}
