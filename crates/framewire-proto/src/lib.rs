//! framewire's wire format, with no I/O: no sockets, no tasks, no clock.
//!
//! Every message is an 8-byte header, `message_type u16 | channel_id u16 |
//! payload_length u32` (little-endian), then `payload_length` bytes. This
//! crate turns bytes into [`Message`]s and back, and control bodies into
//! typed [`Request`]s and [`Response`]s. `docs/protocol.md` describes every
//! field; its hex examples are checked against this crate by a test.
//!
//! # Reading a stream
//!
//! The caller owns the buffer and feeds whatever the transport read; the
//! decoder says "incomplete" (`Ok(None)`) until a whole message is in:
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use framewire_proto::{Decoder, FrameFlags, Message, VideoFrame};
//!
//! let frame = Message::VideoFrame(VideoFrame {
//!     channel: 1,
//!     sequence: 42,
//!     timestamp_ns: 1_700_000_000_000_000_000,
//!     flags: FrameFlags::KEYFRAME,
//!     data: Bytes::from_static(b"\xff\xd8...jpeg...\xff\xd9"),
//! });
//! let wire = frame.to_vec().unwrap();
//!
//! let decoder = Decoder::new();
//! let mut buf = BytesMut::new();
//! let mut got = Vec::new();
//! for piece in wire.chunks(5) {
//!     buf.extend_from_slice(piece); // what a socket read returned
//!     while let Some(msg) = decoder.decode(&mut buf).unwrap() {
//!         got.push(msg);
//!     }
//! }
//! assert_eq!(got, vec![frame]);
//! ```
//!
//! # Writing
//!
//! [`Message::encode`] returns the header (and the fields this layer
//! writes) apart from the shared payload, so a sender writes both with one
//! vectored write and a frame's bytes are never copied per output.
//!
//! # Panics, errors and limits
//!
//! Nothing in this crate panics on input from the network. Short input,
//! bad UTF-8, impossible list counts and oversize payloads are typed
//! errors. A `payload_length` above the decoder's limit (default 64 MiB) is
//! refused from the header alone, before anything is allocated for it; list
//! counts are checked against the bytes actually present before a vector is
//! reserved.

#![forbid(unsafe_code)]

pub mod codes;
pub mod control;
pub mod decoder;
pub mod error;
pub mod fields;
#[cfg(feature = "json")]
pub mod json;
pub mod message;
pub mod names;
pub mod wire;

pub use codes::{
    Command, ControlType, DeliveryMode, DropPolicy, EventCode, EventReason, Features, Format, FrameFlags,
    FunctionFlags, InputKind, MessageType, Origin, PixelFormat, Status, TransportMode,
};
pub use control::{AuthScheme, PROTOCOL_VERSION, Request, Response, StreamOpen, SubscribeParams};
pub use decoder::{DEFAULT_MAX_PAYLOAD, Decoder};
pub use error::{BodyError, DecodeError, EncodeError, FieldError};
pub use message::{
    ControlRequest, ControlResponse, Encoded, EventInfo, HEADER_LEN, Header, InputEvent, Message, Modifiers,
    NodeAnnouncement, StreamEvent, VideoFrame,
};
