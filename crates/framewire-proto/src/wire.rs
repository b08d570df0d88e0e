//! Explicit little-endian field access: every field is put and got by hand.
//!
//! [`Reader`] reads from a [`Bytes`] so that byte strings can be sliced out
//! without copying. Short input is an error ([`FieldError`]), never a panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::FieldError;

/// Reads fields from the front of a payload.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    /// A reader over `buf`.
    pub fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// What is left, without copying.
    pub fn rest(self) -> Bytes {
        self.buf
    }

    fn need(&self, n: usize, field: &'static str) -> Result<(), FieldError> {
        if self.buf.len() < n {
            Err(FieldError::Truncated {
                field,
                needed: n,
                available: self.buf.len(),
            })
        } else {
            Ok(())
        }
    }

    /// A `u8`.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, FieldError> {
        self.need(1, field)?;
        Ok(self.buf.get_u8())
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, FieldError> {
        self.need(2, field)?;
        Ok(self.buf.get_u16_le())
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, FieldError> {
        self.need(4, field)?;
        Ok(self.buf.get_u32_le())
    }

    /// A little-endian `i32`.
    pub fn i32(&mut self, field: &'static str) -> Result<i32, FieldError> {
        self.need(4, field)?;
        Ok(self.buf.get_i32_le())
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, FieldError> {
        self.need(8, field)?;
        Ok(self.buf.get_u64_le())
    }

    /// A little-endian `i64`.
    pub fn i64(&mut self, field: &'static str) -> Result<i64, FieldError> {
        self.need(8, field)?;
        Ok(self.buf.get_i64_le())
    }

    /// `n` bytes, sliced without copying.
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<Bytes, FieldError> {
        self.need(n, field)?;
        Ok(self.buf.split_to(n))
    }

    /// A string: `u16` length, then UTF-8 bytes.
    pub fn string(&mut self, field: &'static str) -> Result<String, FieldError> {
        let len = usize::from(self.u16(field)?);
        let raw = self.bytes(len, field)?;
        String::from_utf8(raw.to_vec()).map_err(|_| FieldError::InvalidUtf8 { field })
    }

    /// A short byte string: `u16` length, then the bytes.
    pub fn blob16(&mut self, field: &'static str) -> Result<Bytes, FieldError> {
        let len = usize::from(self.u16(field)?);
        self.bytes(len, field)
    }

    /// A long byte string: `u32` length, then the bytes.
    pub fn blob32(&mut self, field: &'static str) -> Result<Bytes, FieldError> {
        let len = self.u32(field)?;
        let len = usize::try_from(len).map_err(|_| FieldError::OutOfRange { field })?;
        self.bytes(len, field)
    }

    /// A `u16` element count for a list whose elements take at least
    /// `min_element_len` bytes each. A count the remaining input cannot
    /// possibly hold is refused here, before anything is allocated for it.
    pub fn count(&mut self, min_element_len: usize, field: &'static str) -> Result<usize, FieldError> {
        let n = usize::from(self.u16(field)?);
        let min_total = n.saturating_mul(min_element_len.max(1));
        if min_total > self.buf.len() {
            return Err(FieldError::Truncated {
                field,
                needed: min_total,
                available: self.buf.len(),
            });
        }
        Ok(n)
    }
}

/// Writes fields onto the end of a buffer. All writes are infallible
/// except those whose length does not fit the field's length prefix.
pub trait WriteExt: BufMut {
    /// A string: `u16` length, then UTF-8 bytes.
    fn put_string(&mut self, field: &'static str, s: &str) -> Result<(), FieldError> {
        let len = u16::try_from(s.len()).map_err(|_| FieldError::TooLong {
            field,
            len: s.len(),
            max: usize::from(u16::MAX),
        })?;
        self.put_u16_le(len);
        self.put_slice(s.as_bytes());
        Ok(())
    }

    /// A short byte string: `u16` length, then the bytes.
    fn put_blob16(&mut self, field: &'static str, b: &[u8]) -> Result<(), FieldError> {
        let len = u16::try_from(b.len()).map_err(|_| FieldError::TooLong {
            field,
            len: b.len(),
            max: usize::from(u16::MAX),
        })?;
        self.put_u16_le(len);
        self.put_slice(b);
        Ok(())
    }

    /// A long byte string: `u32` length, then the bytes.
    fn put_blob32(&mut self, field: &'static str, b: &[u8]) -> Result<(), FieldError> {
        let len = u32::try_from(b.len()).map_err(|_| FieldError::TooLong {
            field,
            len: b.len(),
            max: u32::MAX as usize,
        })?;
        self.put_u32_le(len);
        self.put_slice(b);
        Ok(())
    }

    /// A `u16` element count.
    fn put_count(&mut self, field: &'static str, n: usize) -> Result<(), FieldError> {
        let n16 = u16::try_from(n).map_err(|_| FieldError::TooLong {
            field,
            len: n,
            max: usize::from(u16::MAX),
        })?;
        self.put_u16_le(n16);
        Ok(())
    }
}

impl WriteExt for BytesMut {}
impl WriteExt for Vec<u8> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_an_error() {
        let mut r = Reader::new(Bytes::from_static(&[1, 2, 3]));
        assert_eq!(
            r.u32("x"),
            Err(FieldError::Truncated {
                field: "x",
                needed: 4,
                available: 3
            })
        );
        assert_eq!(r.u16("y"), Ok(0x0201));
    }

    #[test]
    fn impossible_counts_are_refused_before_allocation() {
        // 65535 elements of at least 4 bytes cannot fit in 2 bytes.
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xff, 0, 0]));
        assert!(r.count(4, "items").is_err());
    }

    #[test]
    fn strings_round_trip() {
        let mut b = BytesMut::new();
        b.put_string("s", "v4l2:microscope").unwrap();
        let mut r = Reader::new(b.freeze());
        assert_eq!(r.string("s").unwrap(), "v4l2:microscope");
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut r = Reader::new(Bytes::from_static(&[2, 0, 0xff, 0xfe]));
        assert_eq!(r.string("s"), Err(FieldError::InvalidUtf8 { field: "s" }));
    }
}
