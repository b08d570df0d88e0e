//! Error types of the wire format.

use crate::codes::{Command, MessageType};

/// A field could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// The input ended inside a field.
    #[error("field `{field}` truncated: needs {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A string field is not UTF-8.
    #[error("field `{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// A value does not fit its field's length prefix.
    #[error("field `{field}` is {len} long, at most {max} fits")]
    TooLong {
        /// The field being written.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The most its prefix can say.
        max: usize,
    },
    /// A value is outside what the field allows.
    #[error("field `{field}` is out of range")]
    OutOfRange {
        /// The field.
        field: &'static str,
    },
}

/// A message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The header declares a payload above the receiver's limit. Raised as
    /// soon as the header is read, before anything is allocated for it.
    #[error("{message_type} on channel {channel} declares a {declared}-byte payload, above the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The declared message type.
        message_type: MessageType,
        /// The declared channel.
        channel: u16,
        /// The declared `payload_length`.
        declared: u32,
        /// The receiver's limit.
        limit: u32,
    },
    /// The stream ended inside a message.
    #[error("stream ended inside a message: {buffered} of {expected} bytes received")]
    UnexpectedEof {
        /// Bytes of the partial message received.
        buffered: usize,
        /// Bytes the whole message needs (header included), if the header was complete.
        expected: usize,
    },
    /// A payload of a known type did not parse.
    #[error("malformed {message_type} on channel {channel}: {source}")]
    Malformed {
        /// The message type.
        message_type: MessageType,
        /// The channel.
        channel: u16,
        /// What was wrong.
        source: FieldError,
    },
}

/// The body of a control request or response did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {command} body: {source}")]
pub struct BodyError {
    /// The command whose body it is.
    pub command: Command,
    /// What was wrong.
    pub source: FieldError,
}

/// A message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field does not fit.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The payload is longer than `payload_length` can say.
    #[error("payload of {len} bytes does not fit a u32 length")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
    },
}
