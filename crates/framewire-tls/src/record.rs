//! TLS 1.3 record protection (RFC 8446 §5), without I/O.
//!
//! After rustls has done the handshake, a node connection's records are
//! sealed and opened here with the traffic keys rustls hands over
//! ([`rustls::kernel`]): a record is sealed straight from the caller's
//! bytes into the outgoing buffer (one pass, where rustls copies the
//! plaintext first and then seals it in place), and opened in place in the
//! buffer the socket was read into (where rustls copies it twice more on
//! the way to the reader). What the wire carries is the same TLS 1.3.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::ConnectionTrafficSecrets;

/// Bytes of a record header: type, legacy version, length.
pub const HEADER_LEN: usize = 5;
/// Most plaintext one record carries.
pub const MAX_PLAINTEXT: usize = 16 * 1024;
/// Most a record's protected body may be (plaintext, content type,
/// padding and tag: RFC 8446 §5.2).
pub const MAX_BODY: usize = MAX_PLAINTEXT + 256;
/// Bytes of the AEAD tag (AES-GCM and ChaCha20-Poly1305 alike).
pub const TAG_LEN: usize = 16;
/// A record's bytes on the wire beyond its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + 1 + TAG_LEN;

/// Record content types.
pub const ALERT: u8 = 21;
/// A handshake message (after the handshake: tickets, key updates).
pub const HANDSHAKE: u8 = 22;
/// Application data.
pub const APPLICATION_DATA: u8 = 23;

/// Why a record cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The header is not that of a TLS 1.3 protected record.
    #[error("a TLS record of type {0} where a protected record belongs")]
    NotProtected(u8),
    /// The header announces a body over the limit.
    #[error("a TLS record of {0} bytes (the most is {MAX_BODY})")]
    Oversized(usize),
    /// The tag does not verify: altered, or not from this peer's key.
    #[error("a TLS record failed to decrypt (altered, or another key)")]
    BadRecord,
    /// The inner plaintext is all padding.
    #[error("a TLS record with no content type")]
    NoContentType,
    /// The suite's key could not be used.
    #[error("the negotiated cipher suite's key cannot be used")]
    Key,
    /// A record of a content type that has no place after the handshake.
    #[error("a TLS record of content type {0} after the handshake")]
    Unexpected(u8),
}

/// One direction's record protection: key, IV and sequence number.
pub struct Protection {
    key: LessSafeKey,
    iv: [u8; aead::NONCE_LEN],
    seq: u64,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Protection {
    /// The protection of these traffic secrets, starting at `seq`.
    pub fn new(secrets: &ConnectionTrafficSecrets, seq: u64) -> Result<Protection, RecordError> {
        let (alg, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&aead::CHACHA20_POLY1305, key, iv),
            _ => return Err(RecordError::Key),
        };
        let key = UnboundKey::new(alg, key.as_ref()).map_err(|_| RecordError::Key)?;
        let iv: [u8; aead::NONCE_LEN] = iv.as_ref().try_into().map_err(|_| RecordError::Key)?;
        Ok(Protection {
            key: LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// Records protected so far with this key.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The next record's nonce: the IV with the sequence number XORed
    /// into its last eight bytes; the number then moves on.
    fn next_nonce(&mut self) -> Nonce {
        let mut n = self.iv;
        for (b, s) in n[aead::NONCE_LEN - 8..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        self.seq += 1;
        Nonce::assume_unique_for_key(n)
    }

    /// Appends to `out` one record carrying `plain` (at most
    /// [`MAX_PLAINTEXT`] bytes) as `content_type`.
    pub fn seal(&mut self, plain: &[u8], content_type: u8, out: &mut Vec<u8>) -> Result<(), RecordError> {
        let at = out.len();
        out.resize(at + plain.len() + OVERHEAD, 0);
        self.seal_into(plain, content_type, &mut out[at..]).map(|_| ())
    }

    /// Writes one record carrying `plain` (at most [`MAX_PLAINTEXT`]
    /// bytes) as `content_type` at the start of `out` (at least
    /// `plain.len() + OVERHEAD` bytes), encrypted from `plain` into `out`
    /// in one pass; returns its length.
    pub fn seal_into(&mut self, plain: &[u8], content_type: u8, out: &mut [u8]) -> Result<usize, RecordError> {
        debug_assert!(plain.len() <= MAX_PLAINTEXT);
        let body = plain.len() + 1 + TAG_LEN;
        let header = record_header(body);
        let out = out.get_mut(..HEADER_LEN + body).ok_or(RecordError::Key)?;
        out[..HEADER_LEN].copy_from_slice(&header);
        let (cipher, rest) = out[HEADER_LEN..].split_at_mut(plain.len());
        let nonce = self.next_nonce();
        self.key
            .seal_out_of_place_scatter(nonce, Aad::from(header), plain, cipher, &[content_type], rest)
            .map_err(|_| RecordError::Key)?;
        Ok(HEADER_LEN + body)
    }

    /// Opens the whole record `record` (header and body) into `out`, which
    /// must be as long as its inner plaintext (the body less the tag): the
    /// content type and the length of the content at the start of `out`.
    /// One pass from the record into `out`.
    pub fn open_into(&mut self, record: &[u8], out: &mut [u8]) -> Result<(u8, usize), RecordError> {
        let header: [u8; HEADER_LEN] = record[..HEADER_LEN].try_into().map_err(|_| RecordError::BadRecord)?;
        let body = &record[HEADER_LEN..];
        let inner = body.len().checked_sub(TAG_LEN).ok_or(RecordError::BadRecord)?;
        if out.len() != inner {
            return Err(RecordError::BadRecord);
        }
        let nonce = self.next_nonce();
        let (cipher, tag) = body.split_at(inner);
        self.key
            .open_separate_gather(nonce, Aad::from(header), cipher, tag, out)
            .map_err(|_| RecordError::BadRecord)?;
        let end = out.iter().rposition(|&b| b != 0).ok_or(RecordError::NoContentType)?;
        Ok((out[end], end))
    }

    /// Opens the whole record `record` (header and body) in place: its
    /// content type and where its plaintext is within `record`.
    pub fn open(&mut self, record: &mut [u8]) -> Result<(u8, std::ops::Range<usize>), RecordError> {
        let header: [u8; HEADER_LEN] = record[..HEADER_LEN].try_into().map_err(|_| RecordError::BadRecord)?;
        let nonce = self.next_nonce();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(header), &mut record[HEADER_LEN..])
            .map_err(|_| RecordError::BadRecord)?;
        // The content type is the last byte that is not padding.
        let end = plain.iter().rposition(|&b| b != 0).ok_or(RecordError::NoContentType)?;
        Ok((plain[end], HEADER_LEN..HEADER_LEN + end))
    }
}

/// The header of a protected record with a body of `body` bytes.
fn record_header(body: usize) -> [u8; HEADER_LEN] {
    let len = u16::try_from(body).unwrap_or(u16::MAX).to_be_bytes();
    [APPLICATION_DATA, 0x03, 0x03, len[0], len[1]]
}

/// The length of the whole record at the start of `buf` once all of it
/// is there (`None`: more bytes are needed).
pub fn complete_record(buf: &[u8]) -> Result<Option<usize>, RecordError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[0] != APPLICATION_DATA {
        return Err(RecordError::NotProtected(buf[0]));
    }
    let body = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if body > MAX_BODY {
        return Err(RecordError::Oversized(body));
    }
    if body < 1 + TAG_LEN {
        return Err(RecordError::BadRecord);
    }
    Ok((buf.len() >= HEADER_LEN + body).then_some(HEADER_LEN + body))
}

/// A KeyUpdate handshake message (RFC 8446 §4.6.3).
pub fn key_update(request_update: bool) -> [u8; 5] {
    [24, 0, 0, 1, u8::from(request_update)]
}

/// What a handshake record after the handshake asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostHandshake {
    /// Session tickets and the like: nothing to do.
    Nothing,
    /// The peer changed its key; with `true`, it asks us to change ours.
    KeyUpdate(bool),
}

/// Reads the handshake messages of one record. A record may hold several;
/// a key update is acted on, tickets are let go (node connections do not
/// resume sessions).
pub fn post_handshake(mut msgs: &[u8]) -> Result<Vec<PostHandshake>, RecordError> {
    let mut out = Vec::new();
    while !msgs.is_empty() {
        let [typ, a, b, c, rest @ ..] = msgs else {
            return Err(RecordError::BadRecord);
        };
        let len = u32::from_be_bytes([0, *a, *b, *c]) as usize;
        if rest.len() < len {
            return Err(RecordError::BadRecord);
        }
        let (body, more) = rest.split_at(len);
        out.push(match (*typ, body) {
            (24, [0]) => PostHandshake::KeyUpdate(false),
            (24, [1]) => PostHandshake::KeyUpdate(true),
            (24, _) => return Err(RecordError::BadRecord),
            _ => PostHandshake::Nothing,
        });
        msgs = more;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
