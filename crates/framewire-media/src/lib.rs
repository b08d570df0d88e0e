//! framewire's sources and sinks that produce or consume pictures.
//!
//! - [`testpattern::TestPattern`]: moving colour bars with the frame number
//!   and capture time drawn into the picture, encoded as configured.
//! - [`jpeg_split`]: finds whole JPEG images in a byte stream (a file of
//!   concatenated JPEGs, or a device that splits or joins frames).
//!
//! Nothing here does I/O on its own or reads a clock: callers pass the
//! sequence number and capture time of each frame.

pub mod font;
pub mod jpeg_split;
pub mod testpattern;
#[cfg(all(feature = "v4l2", target_os = "linux"))]
pub mod v4l2;
pub mod v4l2_names;
