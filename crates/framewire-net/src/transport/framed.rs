//! Framing over an async byte stream: read whole messages, write them with
//! one vectored write per message.

use std::io::IoSlice;

use bytes::{Buf, BytesMut};
use framewire_proto::{DecodeError, Decoder, Encoded, HEADER_LEN, Header, Message, VideoFrame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::NetError;
use crate::transport::bufpool;

/// Read size for small messages.
const READ_CHUNK: usize = 64 * 1024;

/// Messages larger than this get an allocation of their own, exactly their
/// size, and are read no further than their end.
const LARGE_MESSAGE: usize = READ_CHUNK;

/// Reads whole messages from `R`.
///
/// Small messages are read in 64 KiB chunks and are slices of a shared
/// buffer. A large message (a video frame) is read into a buffer of its
/// own, of about its size, from [`crate::transport::bufpool`] (a recycled one whose
/// pages are already mapped, when one fits), and no byte past its end is
/// read into it: the frame then holds about its own bytes (a queued frame
/// pins nothing else), and its bytes are never copied again as they arrive.
///
/// Cancel-safe: a message read half-way when [`FramedRead::next`] is
/// dropped (in a `select!`) is finished by the next call.
#[derive(Debug)]
pub struct FramedRead<R> {
    inner: R,
    buf: BytesMut,
    decoder: Decoder,
    large: Option<Large>,
}

/// A large message being read: its first `have` bytes have arrived in
/// `payload`, whose length is how much of it is initialized (a reused
/// buffer's earlier bytes, or zeros ahead of what arrives), at most the
/// header's length.
#[derive(Debug)]
struct Large {
    header: Header,
    payload: Vec<u8>,
    have: usize,
}

impl<R: AsyncRead + Unpin> FramedRead<R> {
    /// Reads from `inner`, refusing payloads above the decoder's limit.
    pub fn new(inner: R, decoder: Decoder) -> Self {
        FramedRead {
            inner,
            buf: BytesMut::with_capacity(READ_CHUNK),
            decoder,
            large: None,
        }
    }

    /// The next message; `Ok(None)` at a clean end of stream (between
    /// messages). A malformed message of a known type is an error, but its
    /// bytes are consumed: the caller may log it and read on.
    pub async fn next(&mut self) -> Result<Option<Message>, NetError> {
        loop {
            if let Some(l) = &mut self.large {
                let len = l.header.payload_len as usize;
                if l.have == len {
                    let Large { header, payload, .. } = self.large.take().expect("checked above");
                    let payload = bufpool::global().share(payload);
                    return Ok(Some(Message::parse(header, payload)?));
                }
                // Into initialized room, no further than the message's end:
                // a TLS reader opens whole records straight into it. A new
                // buffer is zeroed only ahead of what has arrived (at most
                // as much again), so a claimed length costs little until
                // its bytes come.
                let room = len.min(l.have + l.have.max(READ_CHUNK));
                if l.payload.len() < room {
                    l.payload.resize(room, 0);
                }
                let n = self.inner.read(&mut l.payload[l.have..]).await?;
                if n == 0 {
                    return Err(DecodeError::UnexpectedEof {
                        buffered: HEADER_LEN + l.have,
                        expected: HEADER_LEN + len,
                    }
                    .into());
                }
                l.have += n;
                continue;
            }
            match self.decoder.check(&self.buf)? {
                Some(h) if HEADER_LEN + h.payload_len as usize > LARGE_MESSAGE => {
                    // Move what has arrived (at most one chunk) into a
                    // buffer for this message; read the rest straight in.
                    let len = h.payload_len as usize;
                    let mut payload = bufpool::global().reuse(len);
                    let have = (self.buf.len() - HEADER_LEN).min(len);
                    if payload.len() < have {
                        payload.resize(have, 0);
                    }
                    payload[..have].copy_from_slice(&self.buf[HEADER_LEN..HEADER_LEN + have]);
                    self.buf.advance(HEADER_LEN + have);
                    self.large = Some(Large {
                        header: h,
                        payload,
                        have,
                    });
                    continue;
                }
                _ => {}
            }
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
        self.buf.len() + self.large.as_ref().map_or(0, |l| HEADER_LEN + l.have)
    }

    /// Changes the largest payload accepted from now on (a node accepts
    /// only small messages until HELLO and AUTH are done).
    pub fn set_max_payload(&mut self, max: u32) {
        self.decoder = Decoder::with_max_payload(max);
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use framewire_proto::FrameFlags;
    use std::time::Duration;

    fn frame(sequence: u64, len: usize) -> (Vec<u8>, VideoFrame) {
        let f = VideoFrame {
            channel: 3,
            sequence,
            timestamp_ns: 42,
            flags: FrameFlags::default(),
            data: Bytes::from((0..len).map(|i| (i * 7 + sequence as usize) as u8).collect::<Vec<u8>>()),
        };
        let mut wire = f.encode_head().unwrap().to_vec();
        wire.extend_from_slice(&f.data);
        (wire, f)
    }

    fn video(m: Option<Message>) -> VideoFrame {
        match m {
            Some(Message::VideoFrame(v)) => v,
            other => panic!("expected a video frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_large_frame_read_in_pieces_survives_cancelled_reads() {
        let (mut tx, rx) = tokio::io::duplex(16 * 1024);
        let mut r = FramedRead::new(rx, Decoder::new());
        let (a, fa) = frame(1, 300_000);
        let (b, fb) = frame(2, 100);
        let (c, fc) = frame(3, 250_000);
        let mut all = a;
        all.extend_from_slice(&b);
        all.extend_from_slice(&c);
        let writer = tokio::spawn(async move {
            for piece in all.chunks(7_001) {
                tx.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        // Cancel `next` again and again mid-frame, as a `select!` would.
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while got.len() < 3 {
            assert!(tokio::time::Instant::now() < deadline, "frames did not arrive");
            if let Ok(m) = tokio::time::timeout(Duration::from_micros(50), r.next()).await {
                got.push(video(m.unwrap()));
            }
        }
        writer.await.unwrap();
        assert_eq!(got, vec![fa, fb, fc]);
        assert_eq!(r.buffered(), 0);
        assert!(r.next().await.unwrap().is_none(), "clean end after the last frame");
    }

    #[tokio::test]
    async fn a_frame_in_a_reused_buffer_shows_nothing_of_the_earlier_one() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut r = FramedRead::new(rx, Decoder::new());
        let (a, fa) = frame(1, 200_000);
        tx.write_all(&a).await.unwrap();
        let got = video(
            tokio::time::timeout(Duration::from_secs(10), r.next())
                .await
                .unwrap()
                .unwrap(),
        );
        assert_eq!(got, fa);
        drop(got);
        // A smaller frame next, in pieces: it may get the buffer just
        // dropped, its bytes still there; only the new frame's show.
        let (b, fb) = frame(2, 180_000);
        let writer = tokio::spawn(async move {
            for piece in b.chunks(30_000) {
                tx.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let got = video(
            tokio::time::timeout(Duration::from_secs(10), r.next())
                .await
                .unwrap()
                .unwrap(),
        );
        writer.await.unwrap();
        assert_eq!(got.data.len(), 180_000);
        assert_eq!(got, fb);
    }

    #[tokio::test]
    async fn a_large_frame_cut_off_is_an_error_naming_its_size() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut r = FramedRead::new(rx, Decoder::new());
        let (wire, _) = frame(1, 200_000);
        tx.write_all(&wire[..150_000]).await.unwrap();
        drop(tx);
        match tokio::time::timeout(Duration::from_secs(10), r.next()).await.unwrap() {
            Err(NetError::Decode(DecodeError::UnexpectedEof { buffered, expected })) => {
                assert_eq!((buffered, expected), (150_000, wire.len()));
            }
            other => panic!("expected an unexpected-EOF error, got {other:?}"),
        }
    }
}
