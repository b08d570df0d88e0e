//! framewire's sources and sinks that produce or consume pictures.
//!
//! - [`testpattern::TestPattern`]: moving colour bars with the frame number
//!   and capture time drawn into the picture, encoded as configured.
//! - [`jpeg_split`]: finds whole JPEG images in a byte stream (a file of
//!   concatenated JPEGs, or a device that splits or joins frames).
//! - `v4l2` (feature `v4l2`): capture devices through a hand-written ioctl
//!   layer; `x11` (feature `x11`): monitors, MIT-SHM screen grabs and
//!   XTEST injection.
//!
//! Nothing here does I/O on its own or reads a clock: callers pass the
//! sequence number and capture time of each frame.

pub mod compose;
pub mod font;
/// H.264 and H.265 access units (they live in `framewire-codec`, which
/// decodes and encodes them).
pub use framewire_codec::h26x;
pub mod jpeg_split;
pub mod testpattern;
pub mod timecode;
#[cfg(all(feature = "v4l2", target_os = "linux"))]
pub mod v4l2;
pub mod v4l2_names;
#[cfg(all(feature = "x11", target_os = "linux"))]
pub mod x11;
