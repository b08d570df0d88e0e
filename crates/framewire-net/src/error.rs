//! The network layer's error type.

use std::net::SocketAddr;

use framewire_proto::{BodyError, Command, DecodeError, EncodeError, FieldError, Status};

/// What went wrong on a connection or in a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not the protocol.
    #[error("protocol: {0}")]
    Decode(#[from] DecodeError),
    /// A message could not be encoded.
    #[error("encode: {0}")]
    Encode(#[from] EncodeError),
    /// A control body did not parse.
    #[error("protocol: {0}")]
    Body(#[from] BodyError),
    /// The peer answered with an error status.
    #[error("{command} refused by the peer ({status}): {message}")]
    Remote {
        /// The command refused.
        command: Command,
        /// Why, as a code.
        status: Status,
        /// Why, in words.
        message: String,
    },
    /// The peer did something the protocol does not allow.
    #[error("protocol ({peer}): {message}")]
    Protocol {
        /// The peer: its address, and its name when known.
        peer: String,
        /// What it did.
        message: String,
    },
    /// Nothing came in time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(std::time::Duration, &'static str),
    /// The peer closed the connection.
    #[error("connection closed by {0}")]
    Closed(String),
    /// An address did not resolve or parse.
    #[error("bad address `{0}`: {1}")]
    Address(String, String),
    /// Could not bind a listening socket.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Authentication failed or was impossible (wrong key, no key on one
    /// side). The message names the peer, never the key.
    #[error("authentication: {0}")]
    Auth(String),
    /// The TLS handshake failed (a certificate of another CA, expired, or
    /// for another name; no certificate where one is required).
    #[error("TLS with {peer}: {reason}")]
    Tls {
        /// The peer's address.
        peer: String,
        /// Why, in words.
        reason: String,
    },
    /// A deployment key could not be loaded.
    #[error("{0}")]
    Key(#[from] crate::auth::KeyError),
    /// The node's configuration cannot run as it is.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The node's state refused a change (a name taken or missing, a limit).
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// A source could not start.
    #[error("{kind} source `{stream}`: {reason}")]
    Source {
        /// Its kind (`v4l2`, `x11`, ...).
        kind: &'static str,
        /// The stream it would produce.
        stream: String,
        /// Why not.
        reason: String,
    },
    /// Discovery could not start.
    #[error("discovery: {reason}")]
    Discovery {
        /// The leg whose socket failed, if one did.
        leg: Option<String>,
        /// Why.
        reason: String,
    },
    /// A pulled stream's format is one this node does not take.
    #[error("stream `{stream}`: this node accepts only {accepted} on pulled edges, not {format}")]
    FormatRefused {
        /// The local stream.
        stream: String,
        /// Its format.
        format: framewire_proto::Format,
        /// The formats taken, for people (`mjpeg, raw`).
        accepted: String,
    },
    /// The peer stayed connected but sent nothing for this long.
    #[error("the upstream sent nothing for {0:?} (stalled)")]
    Stalled(std::time::Duration),
    /// The peer sent more than this many bytes of other messages before
    /// answering a request.
    #[error("{addr} sent more than {limit} bytes of other messages before answering")]
    Flooded {
        /// The peer.
        addr: String,
        /// The bound.
        limit: usize,
    },
}

impl From<FieldError> for NetError {
    fn from(e: FieldError) -> Self {
        NetError::Encode(EncodeError::Field(e))
    }
}

/// A control command refused: the status and the message its answer
/// carries to the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct CommandError {
    pub(crate) status: Status,
    pub(crate) message: String,
}

impl CommandError {
    pub(crate) fn new(status: Status, message: impl Into<String>) -> CommandError {
        CommandError {
            status,
            message: message.into(),
        }
    }
}

impl From<crate::state::StateError> for CommandError {
    fn from(e: crate::state::StateError) -> CommandError {
        CommandError::new(e.status(), e.to_string())
    }
}
