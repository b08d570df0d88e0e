//! framewire's RTSP server, without I/O.
//!
//! A [`Connection`] is one RTSP client: bytes it sent go in with
//! [`Connection::receive`], and what to do comes out of
//! [`Connection::poll_output`]: bytes to send (responses, and RTP packets
//! interleaved on the connection), and "play this stream" or "stop". The
//! frames of a playing stream go in with [`Connection::frame`], which
//! packetizes them (H.264 as RFC 6184, H.265 as RFC 7798) and frames them
//! for the connection, with an RTCP sender report every 5 s of stream time. The driver (framewire-net) owns the socket, the
//! node's streams and the clock.
//!
//! ```
//! use framewire_rtsp::{Catalog, Connection, Output, StreamDesc};
//! use framewire_codec::h26x::Codec;
//!
//! struct One;
//! impl Catalog for One {
//!     fn describe(&self, path: &str) -> Option<StreamDesc> {
//!         (path == "cam").then(|| StreamDesc::new("cam", Codec::H264))
//!     }
//! }
//!
//! let mut c = Connection::new(7);
//! c.receive(b"OPTIONS rtsp://127.0.0.1/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n", &One);
//! let Some(Output::Send(bytes)) = c.poll_output() else { panic!() };
//! assert!(bytes.starts_with(b"RTSP/1.0 200 OK\r\n"));
//! ```

pub mod auth;
mod conn;
pub mod jpeg;
mod packet;
mod request;
mod rtcp;
mod sdp;

pub use conn::{Catalog, Connection, Encoding, Output, Parts, StreamDesc, nal_ranges};
pub use packet::{MAX_PAYLOAD, Packetizer};
pub use request::{Limits, ParseError, Request, RequestParser};
pub use rtcp::sender_report;
pub use sdp::sdp;
