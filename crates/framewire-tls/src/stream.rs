//! A node connection over TLS 1.3: rustls does the handshake (its
//! unbuffered API over the socket), then hands over the traffic keys
//! ([`rustls::kernel`]) and the connection's records are sealed and opened
//! by [`crate::record`], straight between the socket's buffers and the
//! caller's. Key updates go through rustls (it derives the next keys):
//! ours before the cipher's record limit, and the peer's when it sends
//! one.
//!
//! The two halves are separate, as a TCP stream's are: a [`TlsReader`]
//! and a [`TlsWriter`], each with its own direction's key.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::kernel::KernelConnection;
use rustls::pki_types::ServerName;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, InsufficientSizeError, UnbufferedStatus};
use rustls::{ClientConfig, ConnectionTrafficSecrets, ExtractedSecrets, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::record::{self, PostHandshake, Protection, RecordError};

/// Bytes read from the socket at once (records are opened from this
/// buffer). 256 KiB against 64: raw 1080p through a relay over TLS kept
/// 72 % of plain TCP instead of 63 % (medians of three,
/// docs/benchmarks.md), fewer reads for each frame.
const READ_BUFFER: usize = 256 << 10;
/// Most plaintext sealed per write before it goes to the socket.
const WRITE_BATCH: usize = 256 << 10;
/// Room for the records of one batch: its bytes, the overhead of a
/// record per 16 KiB and per slice of a vectored write, a key update.
const PENDING: usize = WRITE_BATCH + 64 * record::OVERHEAD;
/// Records sent with one key before it is changed: far below AES-GCM's
/// limit of 2^24.5 (RFC 8446 §5.5).
const KEY_UPDATE_AFTER: u64 = 1 << 23;
/// The most the handshake buffers from the peer (a certificate chain).
const MAX_HANDSHAKE: usize = 256 << 10;

/// The server side of a handshake on `sock`: the two halves, and whether
/// the client showed a certificate that verified.
pub async fn accept(sock: TcpStream, config: Arc<ServerConfig>) -> io::Result<(TlsReader, TlsWriter, bool)> {
    let conn = UnbufferedServerConnection::new(config).map_err(invalid)?;
    let (conn, sock, rest) = handshake(sock, Side::Server(conn)).await?;
    let certified = conn.certified();
    let (secrets, kernel) = conn.into_kernel()?;
    let (r, w) = halves(sock, secrets, kernel, rest)?;
    Ok((r, w, certified))
}

/// The client side: a handshake with the server `name` on `sock`.
pub async fn connect(
    sock: TcpStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> io::Result<(TlsReader, TlsWriter)> {
    let conn = UnbufferedClientConnection::new(config, name).map_err(invalid)?;
    let (conn, sock, rest) = handshake(sock, Side::Client(conn)).await?;
    let (secrets, kernel) = conn.into_kernel()?;
    halves(sock, secrets, kernel, rest)
}

/// A rustls error as an I/O error that carries it (callers look inside
/// for the reason a handshake failed).
fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn record_error(e: RecordError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// A connection in its handshake.
enum Side {
    Client(UnbufferedClientConnection),
    Server(UnbufferedServerConnection),
}

/// The connection once the handshake is done: it derives new keys.
enum Kernel {
    Client(KernelConnection<ClientConnectionData>),
    Server(KernelConnection<ServerConnectionData>),
}

impl Kernel {
    fn update(&mut self, tx: bool) -> Result<(u64, ConnectionTrafficSecrets), rustls::Error> {
        match (self, tx) {
            (Kernel::Client(k), true) => k.update_tx_secret(),
            (Kernel::Client(k), false) => k.update_rx_secret(),
            (Kernel::Server(k), true) => k.update_tx_secret(),
            (Kernel::Server(k), false) => k.update_rx_secret(),
        }
    }
}

/// What the handshake loop does after a state.
enum Next {
    Read,
    Send,
    Done,
    Again,
}

impl Side {
    fn step<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> Step<'c, 'i> {
        match self {
            Side::Client(c) => Step::Client(c.process_tls_records(incoming)),
            Side::Server(s) => Step::Server(s.process_tls_records(incoming)),
        }
    }

    fn common(&self) -> &rustls::CommonState {
        match self {
            Side::Client(c) => c,
            Side::Server(s) => s,
        }
    }

    fn certified(&self) -> bool {
        self.common().peer_certificates().is_some_and(|c| !c.is_empty())
    }

    fn into_kernel(self) -> io::Result<(ExtractedSecrets, Kernel)> {
        Ok(match self {
            Side::Client(c) => {
                let (s, k) = c.dangerous_into_kernel_connection().map_err(invalid)?;
                (s, Kernel::Client(k))
            }
            Side::Server(c) => {
                let (s, k) = c.dangerous_into_kernel_connection().map_err(invalid)?;
                (s, Kernel::Server(k))
            }
        })
    }
}

enum Step<'c, 'i> {
    Client(UnbufferedStatus<'c, 'i, ClientConnectionData>),
    Server(UnbufferedStatus<'c, 'i, ServerConnectionData>),
}

/// Handles one state of the handshake: what to do next, and the bytes of
/// `incoming` it is done with. Plaintext that came with the handshake is
/// kept in `early`; messages to send are put in `out`.
fn handle<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    out: &mut Vec<u8>,
    early: &mut Vec<u8>,
    failed: &mut Option<rustls::Error>,
) -> io::Result<(Next, usize)> {
    let mut discard = status.discard;
    let next = match status.state {
        Err(e) => {
            // Once: rustls then hands over the alert it queued for the
            // peer; the second time the error is final.
            if let Some(first) = failed.take() {
                return Err(invalid(first));
            }
            *failed = Some(e);
            Next::Again
        }
        Ok(ConnectionState::EncodeTlsData(mut s)) => {
            let at = out.len();
            out.resize(at + 4096, 0);
            loop {
                match s.encode(&mut out[at..]) {
                    Ok(n) => {
                        out.truncate(at + n);
                        break;
                    }
                    Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                        out.resize(at + required_size, 0);
                    }
                    Err(e) => return Err(io::Error::other(e.to_string())),
                }
            }
            Next::Again
        }
        Ok(ConnectionState::TransmitTlsData(t)) => {
            t.done();
            Next::Send
        }
        Ok(ConnectionState::BlockedHandshake) => Next::Read,
        Ok(ConnectionState::WriteTraffic(_)) => Next::Done,
        Ok(ConnectionState::ReadTraffic(mut r)) => {
            while let Some(rec) = r.next_record() {
                let rec = rec.map_err(invalid)?;
                discard += rec.discard;
                early.extend_from_slice(rec.payload);
            }
            Next::Again
        }
        Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection in the TLS handshake",
            ));
        }
        Ok(_) => return Err(io::Error::other("an unexpected state in the TLS handshake")),
    };
    Ok((next, discard))
}

/// Bytes the handshake read past its end: raw records, and plaintext
/// rustls already opened.
struct Rest {
    raw: Vec<u8>,
    plain: Vec<u8>,
}

async fn handshake(mut sock: TcpStream, mut conn: Side) -> io::Result<(Side, TcpStream, Rest)> {
    let mut incoming = vec![0u8; 16 << 10];
    let mut used = 0;
    let mut out = Vec::new();
    let mut early = Vec::new();
    let mut failed = None;
    loop {
        let handled = match conn.step(&mut incoming[..used]) {
            Step::Client(s) => handle(s, &mut out, &mut early, &mut failed),
            Step::Server(s) => handle(s, &mut out, &mut early, &mut failed),
        };
        let (next, discard) = match handled {
            Ok(h) => h,
            Err(e) => {
                // The alert rustls made for the peer, if it is not out yet.
                if !out.is_empty() {
                    let _ = sock.write_all(&out).await;
                }
                return Err(e);
            }
        };
        incoming.copy_within(discard..used, 0);
        used -= discard;
        let read = match next {
            Next::Again => false,
            Next::Send => {
                sock.write_all(&out).await?;
                out.clear();
                false
            }
            // A server may send before the client has finished; the
            // handshake is done when the client's Finished has come.
            Next::Done if conn.common().is_handshaking() => true,
            Next::Done => break,
            Next::Read => true,
        };
        if read {
            if let Some(e) = failed.take() {
                if !out.is_empty() {
                    let _ = sock.write_all(&out).await;
                }
                return Err(invalid(e));
            }
            if used == incoming.len() {
                if used >= MAX_HANDSHAKE {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the peer's TLS handshake is over 256 KiB",
                    ));
                }
                incoming.resize(used * 2, 0);
            }
            let n = sock.read(&mut incoming[used..]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection in the TLS handshake",
                ));
            }
            used += n;
        }
    }
    incoming.truncate(used);
    Ok((
        conn,
        sock,
        Rest {
            raw: incoming,
            plain: early,
        },
    ))
}

fn halves(
    sock: TcpStream,
    secrets: ExtractedSecrets,
    kernel: Kernel,
    rest: Rest,
) -> io::Result<(TlsReader, TlsWriter)> {
    let (tx_seq, tx) = secrets.tx;
    let (rx_seq, rx) = secrets.rx;
    let shared = Arc::new(Shared {
        kernel: Mutex::new(kernel),
        update_asked: AtomicBool::new(false),
    });
    let (r, w) = sock.into_split();
    let mut buf = vec![0u8; READ_BUFFER + record::HEADER_LEN + record::MAX_BODY];
    if rest.raw.len() > buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "too much data after the TLS handshake",
        ));
    }
    buf[..rest.raw.len()].copy_from_slice(&rest.raw);
    let reader = TlsReader {
        sock: r,
        shared: shared.clone(),
        rx: Protection::new(&rx, rx_seq).map_err(record_error)?,
        buf,
        start: 0,
        end: rest.raw.len(),
        plain: 0..0,
        early: rest.plain,
        eof: false,
    };
    let writer = TlsWriter {
        sock: w,
        shared,
        tx: Protection::new(&tx, tx_seq).map_err(record_error)?,
        pending: vec![0; PENDING],
        pending_len: 0,
        sent: 0,
        sealed_for: 0,
        update_after: KEY_UPDATE_AFTER,
        closed: false,
    };
    Ok((reader, writer))
}

/// What the halves share: the key schedule, and whether the peer asked
/// for a key update of ours.
struct Shared {
    kernel: Mutex<Kernel>,
    update_asked: AtomicBool,
}

impl Shared {
    fn update(&self, tx: bool) -> io::Result<Protection> {
        let (seq, secrets) = self
            .kernel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(tx)
            .map_err(invalid)?;
        Protection::new(&secrets, seq).map_err(record_error)
    }
}

/// The reading half.
pub struct TlsReader {
    sock: OwnedReadHalf,
    shared: Arc<Shared>,
    rx: Protection,
    /// Bytes from the socket; records are opened in place.
    buf: Vec<u8>,
    /// Bytes of `buf` not yet taken as records.
    start: usize,
    end: usize,
    /// Opened plaintext in `buf` not yet read.
    plain: Range<usize>,
    /// Plaintext that came with the handshake, read first.
    early: Vec<u8>,
    eof: bool,
}

impl std::fmt::Debug for TlsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReader")
            .field("rx", &self.rx)
            .finish_non_exhaustive()
    }
}

impl TlsReader {
    /// Acts on a record that is not application data.
    fn control(&mut self, typ: u8, body: &[u8]) -> io::Result<()> {
        match typ {
            record::HANDSHAKE => {
                for m in record::post_handshake(body).map_err(record_error)? {
                    if let PostHandshake::KeyUpdate(asked) = m {
                        self.rx = self.shared.update(false)?;
                        if asked {
                            self.shared.update_asked.store(true, Ordering::Relaxed);
                        }
                    }
                }
                Ok(())
            }
            record::ALERT => match *body {
                [_, 0] => {
                    self.eof = true;
                    Ok(())
                }
                // As rustls says it, so callers read the reason alike.
                [_, desc] => Err(invalid(rustls::Error::AlertReceived(desc.into()))),
                _ => Err(record_error(RecordError::BadRecord)),
            },
            other => Err(record_error(RecordError::Unexpected(other))),
        }
    }
}

impl AsyncRead for TlsReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        loop {
            if !me.early.is_empty() {
                let n = me.early.len().min(out.remaining());
                out.put_slice(&me.early[..n]);
                me.early.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if !me.plain.is_empty() {
                let n = me.plain.len().min(out.remaining());
                out.put_slice(&me.buf[me.plain.start..me.plain.start + n]);
                me.plain.start += n;
                return Poll::Ready(Ok(()));
            }
            if me.eof || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let at = me.start;
            if let Some(len) = record::complete_record(&me.buf[at..me.end]).map_err(record_error)? {
                me.start += len;
                let inner = len - record::HEADER_LEN - record::TAG_LEN;
                if out.initialized().len() - out.filled().len() >= inner {
                    // The caller's buffer has room, already initialized (a
                    // frame's buffer): opened straight into it.
                    let dst = &mut out.initialize_unfilled_to(inner)[..inner];
                    let (typ, n) = me.rx.open_into(&me.buf[at..at + len], dst).map_err(record_error)?;
                    if typ == record::APPLICATION_DATA {
                        out.advance(n);
                        if n > 0 {
                            return Poll::Ready(Ok(()));
                        }
                    } else {
                        let body = dst[..n].to_vec();
                        me.control(typ, &body)?;
                    }
                    continue;
                }
                // Else opened in place, and read from there.
                let (typ, range) = me.rx.open(&mut me.buf[at..at + len]).map_err(record_error)?;
                let range = at + range.start..at + range.end;
                if typ == record::APPLICATION_DATA {
                    me.plain = range;
                } else {
                    let body = me.buf[range].to_vec();
                    me.control(typ, &body)?;
                }
                continue;
            }
            // More bytes are needed: keep the partial record at the
            // front when the room behind it is short of a whole one.
            if me.buf.len() - me.end < record::HEADER_LEN + record::MAX_BODY {
                me.buf.copy_within(me.start..me.end, 0);
                me.end -= me.start;
                me.start = 0;
            }
            let mut rb = ReadBuf::new(&mut me.buf[me.end..]);
            ready!(Pin::new(&mut me.sock).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                if me.start == me.end {
                    // Closed without close_notify: an end all the same
                    // (the framing above sees a message cut short).
                    me.eof = true;
                    return Poll::Ready(Ok(()));
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection in the middle of a TLS record",
                )));
            }
            me.end += n;
        }
    }
}

/// The writing half.
pub struct TlsWriter {
    sock: OwnedWriteHalf,
    shared: Arc<Shared>,
    tx: Protection,
    /// Sealed records (the first `pending_len` bytes) not yet all given
    /// to the socket (up to `sent`). Allocated once, never cleared.
    pending: Vec<u8>,
    pending_len: usize,
    sent: usize,
    /// The caller's bytes `pending` carries, reported written once it is
    /// out (the caller repeats a write that returned pending).
    sealed_for: usize,
    update_after: u64,
    closed: bool,
}

impl std::fmt::Debug for TlsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsWriter")
            .field("tx", &self.tx)
            .finish_non_exhaustive()
    }
}

impl TlsWriter {
    /// Changes the key after this many records instead of the default
    /// (tests: a key update without sending gigabytes).
    #[doc(hidden)]
    pub fn set_key_update_after(&mut self, records: u64) {
        self.update_after = records;
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending_len {
            let n = ready!(Pin::new(&mut self.sock).poll_write(cx, &self.pending[self.sent..self.pending_len]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending_len = 0;
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Seals one record after those pending (there is room: the callers
    /// keep within [`PENDING`]).
    fn seal(&mut self, plain: &[u8], content_type: u8) -> io::Result<()> {
        let n = self
            .tx
            .seal_into(plain, content_type, &mut self.pending[self.pending_len..])
            .map_err(record_error)?;
        self.pending_len += n;
        Ok(())
    }

    /// A key update of ours, when the key has carried enough records or
    /// the peer asked: the message goes under the old key, then the new
    /// one is used.
    fn maybe_update_key(&mut self) -> io::Result<()> {
        if self.tx.seq() < self.update_after && !self.shared.update_asked.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let next = self.shared.update(true)?;
        self.seal(&record::key_update(false), record::HANDSHAKE)?;
        self.tx = next;
        Ok(())
    }
}

impl AsyncWrite for TlsWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        ready!(me.poll_pending(cx))?;
        if me.sealed_for > 0 {
            return Poll::Ready(Ok(std::mem::take(&mut me.sealed_for)));
        }
        me.maybe_update_key()?;
        let mut taken = 0;
        'bufs: for b in bufs {
            for chunk in b.chunks(record::MAX_PLAINTEXT) {
                let chunk = &chunk[..chunk.len().min(WRITE_BATCH - taken)];
                if me.pending_len + chunk.len() + record::OVERHEAD > PENDING - 2 * record::OVERHEAD {
                    break 'bufs;
                }
                me.seal(chunk, record::APPLICATION_DATA)?;
                taken += chunk.len();
                if taken == WRITE_BATCH {
                    break 'bufs;
                }
            }
        }
        match me.poll_pending(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(taken)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                me.sealed_for = taken;
                Poll::Pending
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.sock).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        ready!(me.poll_pending(cx))?;
        if !me.closed {
            me.closed = true;
            // close_notify: a warning-level alert, description 0.
            me.seal(&[1, 0], record::ALERT)?;
            ready!(me.poll_pending(cx))?;
        }
        Pin::new(&mut me.sock).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
