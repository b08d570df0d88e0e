//! Typed bodies of control requests and responses, one per command.
//!
//! A [`crate::message::ControlRequest`] carries its body undecoded;
//! [`Request::decode`] turns it into a typed value and [`Request::encode_body`]
//! back. Responses carry the command they answer, so [`Response::decode`]
//! needs nothing but the envelope. Readers ignore bytes after the last
//! field they know, so later versions can append fields.
//!
//! One module per command family: [`hello`] (HELLO, AUTH), [`streams`]
//! (LIST_STREAMS, SUBSCRIBE), [`stats`] (GET_STATS), [`node`] (DESCRIBE,
//! CONNECT, SNAPSHOT, SHUTDOWN), [`devices`] (V4L2 and monitors),
//! [`status`] (WATCH_STATUS, STATUS_REPORT), [`archive`] (ARCHIVE_LIST),
//! and [`request`], the typed
//! [`Request`] and [`Response`]. Every type is also here, at the top.

pub mod archive;
pub mod devices;
pub mod hello;
pub mod node;
pub mod request;
pub mod stats;
pub mod status;
pub mod streams;

pub use archive::*;
pub use devices::*;
pub use hello::*;
pub use node::*;
pub use request::*;
pub use stats::*;
pub use status::*;
pub use streams::*;

pub use crate::fields::Fields;
pub use crate::message::StreamOpen;
