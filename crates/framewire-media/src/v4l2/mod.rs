//! V4L2 capture (Linux, feature `v4l2`): a small hand-written ioctl layer
//! over `nix`, memory-mapped streaming, controls, and the per-buffer frame
//! path. See docs/v4l2.md for why this binding and how it is tested.
//!
//! - [`sys`], the kernel ABI (structures with size assertions, ioctls).
//! - [`device::Device`], capabilities, formats/sizes/intervals, format and
//!   rate setting, controls (query, menu, get, set with range checks).
//! - [`stream::Capture`], REQBUFS/QUERYBUF/mmap/QBUF/DQBUF/STREAMON.
//! - [`frame`], format negotiation from what the device enumerates, and
//!   [`frame::FrameMaker`], which turns each buffer into wire frames
//!   (MJPEG as-is, raw, raw+zstd, or MJPEG-encoded; optional `mjpeg_scan`).

pub mod controls;
pub mod device;
pub mod frame;
pub mod stream;
pub mod sys;

pub use device::{Capabilities, ControlInfo, Device, PixFormat, V4l2Error, control_key, list_devices};
pub use frame::{Choice, FrameMaker, Want, WireFormat, negotiate};
pub use stream::{Capture, Dequeued};
