//! Framing over an async byte stream: read whole messages, write them with
//! one vectored write per message.

use std::io::IoSlice;

use bytes::BytesMut;
use framewire_proto::{Decoder, Encoded, HEADER_LEN, Message, VideoFrame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::NetError;

/// Read size for small messages.
const READ_CHUNK: usize = 64 * 1024;

/// Messages larger than this get an allocation of their own, exactly their
/// size, and are read no further than their end.
const LARGE_MESSAGE: usize = READ_CHUNK;

/// Reads whole messages from `R`.
///
/// Small messages are read in 64 KiB chunks and are slices of a shared
/// buffer. A large message (a video frame) is read into an allocation of
/// exactly its size, and no byte past its end is read into it: the frame
/// then owns exactly its bytes (a queued frame pins nothing else), and its
/// bytes are never copied again as they arrive.
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
            let n = match self.decoder.check(&self.buf)? {
                Some(h) if HEADER_LEN + h.payload_len as usize > LARGE_MESSAGE => {
                    let total = HEADER_LEN + h.payload_len as usize;
                    if self.buf.capacity() < total {
                        // Move what has arrived (at most one chunk) into an
                        // allocation of exactly this message's size.
                        let mut exact = BytesMut::with_capacity(total);
                        exact.extend_from_slice(&self.buf);
                        self.buf = exact;
                    }
                    let rest = (total - self.buf.len()) as u64;
                    (&mut self.inner).take(rest).read_buf(&mut self.buf).await?
                }
                _ => {
                    if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                        self.buf.reserve(READ_CHUNK);
                    }
                    self.inner.read_buf(&mut self.buf).await?
                }
            };
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
