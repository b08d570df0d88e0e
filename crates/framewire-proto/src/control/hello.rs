//! HELLO and AUTH: the handshake that opens every connection.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codes::{Features, FunctionFlags};
use crate::error::FieldError;
use crate::fields::Fields;
use crate::wire::{Reader, WriteExt};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;

/// Authentication schemes offered in HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthScheme {
    /// No authentication.
    None,
    /// Challenge-response with HMAC-SHA-256 over both nonces and a
    /// deployment key that never crosses the wire.
    HmacSha256,
    /// A scheme this build does not know.
    Unknown(u8),
}

impl AuthScheme {
    /// Wire value.
    pub fn to_raw(self) -> u8 {
        match self {
            AuthScheme::None => 0,
            AuthScheme::HmacSha256 => 1,
            AuthScheme::Unknown(v) => v,
        }
    }
    /// From the wire value.
    pub fn from_raw(v: u8) -> AuthScheme {
        match v {
            0 => AuthScheme::None,
            1 => AuthScheme::HmacSha256,
            v => AuthScheme::Unknown(v),
        }
    }
}

/// HELLO request: `protocol_version u8, name string, site_id u16,
/// function_flags u16, features u32, auth_scheme u8, nonce blob16`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The sender's protocol version.
    pub protocol_version: u8,
    /// `namespace:instance`.
    pub name: String,
    /// The sender's site (0 = local).
    pub site_id: u16,
    /// What the sender does.
    pub function_flags: FunctionFlags,
    /// Optional capabilities (shared memory, opaque).
    pub features: Features,
    /// The scheme the sender wants, or none.
    pub auth_scheme: AuthScheme,
    /// The sender's challenge for the other end (empty without auth).
    pub nonce: Bytes,
}

impl Fields for Hello {
    const MIN_LEN: usize = 1 + 2 + 2 + 2 + 4 + 1 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u8(self.protocol_version);
        b.put_string("name", &self.name)?;
        b.put_u16_le(self.site_id);
        b.put_u16_le(self.function_flags.0);
        b.put_u32_le(self.features.0);
        b.put_u8(self.auth_scheme.to_raw());
        b.put_blob16("nonce", &self.nonce)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Hello {
            protocol_version: r.u8("protocol_version")?,
            name: r.string("name")?,
            site_id: r.u16("site_id")?,
            function_flags: FunctionFlags(r.u16("function_flags")?),
            features: Features(r.u32("features")?),
            auth_scheme: AuthScheme::from_raw(r.u8("auth_scheme")?),
            nonce: r.blob16("nonce")?,
        })
    }
}

/// HELLO response: the responder's [`Hello`] fields (its own nonce), then
/// `proof blob16`: its MAC over the requester's nonce (empty without auth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloReply {
    /// The responder's identity and challenge.
    pub hello: Hello,
    /// The responder's proof that it holds the key.
    pub proof: Bytes,
}

impl Fields for HelloReply {
    const MIN_LEN: usize = Hello::MIN_LEN + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        self.hello.put(b)?;
        b.put_blob16("proof", &self.proof)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(HelloReply {
            hello: Hello::get(r)?,
            proof: r.blob16("proof")?,
        })
    }
}

/// AUTH request: `proof blob16`, the requester's MAC over the responder's nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// The requester's proof.
    pub proof: Bytes,
}

impl Fields for Auth {
    const MIN_LEN: usize = 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_blob16("proof", &self.proof)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Auth {
            proof: r.blob16("proof")?,
        })
    }
}
