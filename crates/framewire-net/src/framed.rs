//! Framing over an async byte stream: read whole messages, write them with
//! one vectored write per message.

use std::io::IoSlice;

use bytes::BytesMut;
use framewire_proto::{Decoder, Encoded, Message, VideoFrame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::NetError;

/// Initial read buffer; grows to the size of the largest message in flight.
const READ_CHUNK: usize = 64 * 1024;

/// Reads whole messages from `R`.
#[derive(Debug)]
pub struct FramedRead<R> {
    inner: R,
    buf: BytesMut,
    decoder: Decoder,
}

impl<R: AsyncRead + Unpin> FramedRead<R> {
    /// Reads from `inner`, refusing payloads above the decoder's limit.
    pub fn new(inner: R, decoder: Decoder) -> Self {
        FramedRead {
            inner,
            buf: BytesMut::with_capacity(READ_CHUNK),
            decoder,
        }
    }

    /// The next message; `Ok(None)` at a clean end of stream (between
    /// messages). A malformed message of a known type is an error, but its
    /// bytes are consumed: the caller may log it and read on.
    pub async fn next(&mut self) -> Result<Option<Message>, NetError> {
        loop {
            if let Some(msg) = self.decoder.decode(&mut self.buf)? {
                return Ok(Some(msg));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            let n = self.inner.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Ok(self.decoder.decode_eof(&mut self.buf)?);
            }
        }
    }

    /// Bytes received but not yet part of a whole message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The underlying reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Writes all of `parts` with as few `writev` calls as the socket allows.
pub async fn write_all_vectored<W: AsyncWrite + Unpin>(w: &mut W, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut storage: [IoSlice<'_>; 4] = [IoSlice::new(&[]); 4];
    let n = parts.len().min(storage.len());
    for (slot, part) in storage.iter_mut().zip(parts) {
        *slot = IoSlice::new(part);
    }
    let mut slices = &mut storage[..n];
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let written = w.write_vectored(slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

/// Writes an encoded message (header part and shared payload) in one go.
pub async fn write_encoded<W: AsyncWrite + Unpin>(w: &mut W, e: &Encoded) -> std::io::Result<()> {
    write_all_vectored(w, &[&e.head, &e.body]).await
}

/// Writes a message.
pub async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, m: &Message) -> Result<(), NetError> {
    let e = m.encode()?;
    write_encoded(w, &e).await?;
    Ok(())
}

/// Writes a video frame: its 28-byte header from the stack, its data shared.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, f: &VideoFrame) -> Result<(), NetError> {
    let head = f.encode_head()?;
    write_all_vectored(w, &[&head, &f.data]).await?;
    Ok(())
}

/// Flushes `w` (a no-op for sockets, needed for buffered writers).
pub async fn flush<W: AsyncWrite + Unpin>(w: &mut W) -> std::io::Result<()> {
    w.flush().await
}
