//! The streaming decoder: bytes in any split, whole messages out.
//!
//! The caller owns a [`BytesMut`], appends whatever the transport read, and
//! calls [`Decoder::decode`] until it returns `Ok(None)` ("incomplete": read
//! more). Whole payloads are split off the buffer and frozen, so a frame's
//! data is a slice of the bytes read from the socket, never copied again.
//!
//! A `payload_length` above the limit is refused as soon as the 8 header
//! bytes are in, before anything is reserved for it. The decoder itself
//! never allocates: how the buffer grows is the caller's choice (the
//! network layer gives each large frame an allocation of exactly its size).

use bytes::{Bytes, BytesMut};

use crate::error::DecodeError;
use crate::message::{HEADER_LEN, Header, Message};

/// The default receiver limit on `payload_length`: 64 MiB.
pub const DEFAULT_MAX_PAYLOAD: u32 = 64 * 1024 * 1024;

/// Splits a byte stream into messages. Holds no bytes itself: the buffer is
/// the caller's, so the decoder never outlives or duplicates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    max_payload: u32,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

impl Decoder {
    /// A decoder with the default 64 MiB payload limit.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// A decoder refusing payloads longer than `max_payload` bytes.
    pub fn with_max_payload(max_payload: u32) -> Decoder {
        Decoder { max_payload }
    }

    /// The payload limit.
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// The cheap check: the header of the message at the front of `buf` if
    /// its 8 bytes are in, validated against the limit. `Ok(None)` means
    /// "incomplete", not an error.
    pub fn check(&self, buf: &[u8]) -> Result<Option<Header>, DecodeError> {
        let Some(raw) = buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = Header::from_bytes(*raw);
        if header.payload_len > self.max_payload {
            return Err(DecodeError::PayloadTooLarge {
                message_type: header.message_type,
                channel: header.channel,
                declared: header.payload_len,
                limit: self.max_payload,
            });
        }
        Ok(Some(header))
    }

    /// Splits the next whole message off `buf` without parsing its payload
    /// (what a relay needs to forward a type it does not know).
    pub fn decode_raw(&self, buf: &mut BytesMut) -> Result<Option<(Header, Bytes)>, DecodeError> {
        let Some(header) = self.check(buf)? else {
            return Ok(None);
        };
        // Cannot truncate: payload_len <= max_payload, a u32, and usize is at
        // least 32 bits on every target this crate builds for.
        let total = HEADER_LEN + header.payload_len as usize;
        if buf.len() < total {
            return Ok(None);
        }
        let mut frame = buf.split_to(total);
        let payload = frame.split_off(HEADER_LEN).freeze();
        Ok(Some((header, payload)))
    }

    /// Splits and parses the next whole message. A payload of a known type
    /// that does not parse is [`DecodeError::Malformed`]; its bytes have
    /// been consumed, so the stream stays in sync and the caller may go on.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        match self.decode_raw(buf)? {
            Some((header, payload)) => Message::parse(header, payload).map(Some),
            None => Ok(None),
        }
    }

    /// As [`Decoder::decode`], at the end of the stream: leftover bytes that
    /// do not make a whole message are [`DecodeError::UnexpectedEof`].
    pub fn decode_eof(&self, buf: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        match self.decode(buf)? {
            Some(m) => Ok(Some(m)),
            None if buf.is_empty() => Ok(None),
            None => {
                let expected = self
                    .check(buf)?
                    .map_or(HEADER_LEN, |h| HEADER_LEN + h.payload_len as usize);
                Err(DecodeError::UnexpectedEof {
                    buffered: buf.len(),
                    expected,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::{FrameFlags, MessageType};
    use crate::message::VideoFrame;

    fn frame(seq: u64, len: usize) -> Message {
        Message::VideoFrame(VideoFrame {
            channel: 3,
            sequence: seq,
            timestamp_ns: 1_700_000_000_000_000_000 + seq,
            flags: FrameFlags::KEYFRAME,
            data: Bytes::from(vec![seq as u8; len]),
        })
    }

    #[test]
    fn any_split_gives_the_same_messages() {
        let msgs: Vec<Message> = (0..5).map(|i| frame(i, 10 * i as usize)).collect();
        let wire: Vec<u8> = msgs.iter().flat_map(|m| m.to_vec().unwrap()).collect();
        for chunk in [1, 2, 3, 7, 8, 9, 28, 100, wire.len()] {
            let d = Decoder::new();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(m) = d.decode(&mut buf).unwrap() {
                    out.push(m);
                }
            }
            assert_eq!(d.decode_eof(&mut buf).unwrap(), None);
            assert_eq!(out, msgs, "chunk size {chunk}");
        }
    }

    #[test]
    fn oversize_is_refused_from_the_header_alone() {
        let d = Decoder::with_max_payload(1000);
        let mut buf = BytesMut::from(&[0x01, 0x00, 0x05, 0x00, 0xe9, 0x03, 0x00, 0x00][..]);
        let err = d.decode(&mut buf).unwrap_err();
        assert_eq!(
            err,
            DecodeError::PayloadTooLarge {
                message_type: MessageType::VideoFrame,
                channel: 5,
                declared: 1001,
                limit: 1000
            }
        );
        // Nothing was reserved for the declared payload.
        assert!(buf.capacity() < 1000);
        // Nor for a payload within the limit that has not arrived.
        let mut buf = BytesMut::from(&[0x01, 0x00, 0x05, 0x00, 0xe8, 0x03, 0x00, 0x00][..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() < 1000);
    }

    #[test]
    fn a_limit_sized_payload_is_accepted() {
        let d = Decoder::with_max_payload(28);
        let mut buf = BytesMut::from(&frame(1, 8).to_vec().unwrap()[..]);
        assert!(d.decode(&mut buf).unwrap().is_some());
    }

    #[test]
    fn eof_inside_a_message_is_an_error() {
        let wire = frame(1, 50).to_vec().unwrap();
        let d = Decoder::new();
        for cut in [1, 7, 8, 20, wire.len() - 1] {
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(d.decode(&mut buf).unwrap(), None);
            assert!(matches!(d.decode_eof(&mut buf), Err(DecodeError::UnexpectedEof { .. })));
        }
    }

    #[test]
    fn malformed_known_type_keeps_the_stream_in_sync() {
        // A video frame whose payload is too short for its fixed fields,
        // followed by a good frame.
        let mut wire = vec![0x01, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0xaa, 0xbb];
        wire.extend(frame(9, 3).to_vec().unwrap());
        let d = Decoder::new();
        let mut buf = BytesMut::from(&wire[..]);
        assert!(matches!(d.decode(&mut buf), Err(DecodeError::Malformed { .. })));
        assert_eq!(d.decode(&mut buf).unwrap(), Some(frame(9, 3)));
    }

    #[test]
    fn decoded_frame_data_is_a_slice_of_the_read_buffer() {
        let wire = frame(4, 4096).to_vec().unwrap();
        let mut buf = BytesMut::from(&wire[..]);
        let base = buf.as_ptr() as usize;
        let Some(Message::VideoFrame(f)) = Decoder::new().decode(&mut buf).unwrap() else {
            panic!("expected a frame");
        };
        assert_eq!(f.data.as_ptr() as usize, base + 28);
    }
}
