//! RTSP requests, and RTP/RTCP packets interleaved with them, read from a
//! client's bytes within bounds: a client cannot make the server hold more
//! than one bounded message.

use bytes::{Buf, Bytes, BytesMut};

/// How large what a client sends may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request line or a header line, in bytes.
    pub line: usize,
    /// A request's head (request line and headers), in bytes.
    pub head: usize,
    /// A request's body, in bytes.
    pub body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            line: 4 << 10,
            head: 16 << 10,
            body: 64 << 10,
        }
    }
}

/// What a client sent that is not RTSP, or is too large.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A line longer than [`Limits::line`].
    #[error("a line of the request is longer than {0} bytes")]
    LineTooLong(usize),
    /// A head larger than [`Limits::head`].
    #[error("the request's head is larger than {0} bytes")]
    HeadTooLarge(usize),
    /// A body larger than [`Limits::body`].
    #[error("the request's body of {0} bytes is larger than {1} bytes")]
    BodyTooLarge(u64, usize),
    /// Not an RTSP request.
    #[error("not an RTSP request: {0}")]
    Malformed(&'static str),
}

/// One RTSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `OPTIONS`, `DESCRIBE`, …
    pub method: String,
    /// The request URI as sent (`rtsp://host:port/path`, or `*`).
    pub uri: String,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Bytes,
}

impl Request {
    /// The first header of that name (names compare without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `CSeq` header as a number.
    pub fn cseq(&self) -> Option<u32> {
        self.header("CSeq")?.trim().parse().ok()
    }
}

/// What the parser found next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A request.
    Request(Request),
    /// A packet interleaved on `channel` (`$`, channel, length, packet):
    /// RTCP receiver reports of a client playing over TCP.
    Interleaved {
        /// The interleaved channel.
        channel: u8,
        /// The packet.
        data: Bytes,
    },
}

/// Reads requests from a client's bytes as they arrive.
#[derive(Debug, Default)]
pub struct RequestParser {
    buf: BytesMut,
    limits: Limits,
}

impl RequestParser {
    /// A parser with these bounds.
    pub fn new(limits: Limits) -> RequestParser {
        RequestParser {
            buf: BytesMut::new(),
            limits,
        }
    }

    /// Bytes the client sent. Call [`RequestParser::next`] until it
    /// returns `Ok(None)` after each: what is kept between calls is less
    /// than one message's bounds.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes held, not yet a whole message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, `Ok(None)` if more bytes are needed. After
    /// an error the connection is to be closed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Input>, ParseError> {
        // Blank lines between messages are allowed.
        while self.buf.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
            self.buf.advance(1);
        }
        match self.buf.first() {
            None => Ok(None),
            Some(b'$') => Ok(self.interleaved()),
            Some(_) => self.request(),
        }
    }

    fn interleaved(&mut self) -> Option<Input> {
        let len = usize::from(u16::from_be_bytes([*self.buf.get(2)?, *self.buf.get(3)?]));
        if self.buf.len() < 4 + len {
            return None;
        }
        let channel = self.buf[1];
        self.buf.advance(4);
        let data = self.buf.split_to(len).freeze();
        Some(Input::Interleaved { channel, data })
    }

    fn request(&mut self) -> Result<Option<Input>, ParseError> {
        let Some(head_len) = head_end(&self.buf[..self.buf.len().min(self.limits.head + 4)]) else {
            if self.buf.len() > self.limits.head {
                return Err(ParseError::HeadTooLarge(self.limits.head));
            }
            let open_line = self.buf.len() - self.buf.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            if open_line > self.limits.line {
                return Err(ParseError::LineTooLong(self.limits.line));
            }
            return Ok(None);
        };
        let head = std::str::from_utf8(&self.buf[..head_len]).map_err(|_| ParseError::Malformed("not UTF-8"))?;
        let mut lines = head.lines();
        let first = lines.next().unwrap_or_default();
        if first.len() > self.limits.line {
            return Err(ParseError::LineTooLong(self.limits.line));
        }
        let mut parts = first.split(' ');
        let (Some(method), Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::Malformed("the request line is not METHOD URI RTSP/1.0"));
        };
        if !version.starts_with("RTSP/1.") {
            return Err(ParseError::Malformed("not RTSP/1.x"));
        }
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            return Err(ParseError::Malformed("the method is not a word in capitals"));
        }
        let mut headers = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            if line.len() > self.limits.line {
                return Err(ParseError::LineTooLong(self.limits.line));
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(ParseError::Malformed("a header line without a colon"));
            };
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let mut req = Request {
            method: method.to_owned(),
            uri: uri.to_owned(),
            headers,
            body: Bytes::new(),
        };
        let body_len: u64 = match req.header("Content-Length") {
            None => 0,
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| ParseError::Malformed("Content-Length is not a number"))?,
        };
        if body_len > self.limits.body as u64 {
            return Err(ParseError::BodyTooLarge(body_len, self.limits.body));
        }
        let body_len = body_len as usize;
        if self.buf.len() < head_len + body_len {
            return Ok(None);
        }
        self.buf.advance(head_len);
        req.body = self.buf.split_to(body_len).freeze();
        Ok(Some(Input::Request(req)))
    }
}

/// Where the head ends (after its blank line: CRLF CRLF, or LF LF).
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = buf[i..].iter().position(|b| *b == b'\n') {
        let at = i + p;
        let rest = &buf[at + 1..];
        if rest.starts_with(b"\r\n") {
            return Some(at + 3);
        }
        if rest.starts_with(b"\n") {
            return Some(at + 2);
        }
        i = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut RequestParser) -> Vec<Input> {
        std::iter::from_fn(|| p.next().unwrap()).collect()
    }

    #[test]
    fn requests_and_interleaved_packets_in_pieces() {
        let wire: &[u8] = b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n\
            $\x01\x00\x03abc\
            SET_PARAMETER rtsp://h/cam RTSP/1.0\r\nCSeq: 2\r\ncontent-length: 5\r\n\r\nhello";
        for chunk in [1, 3, 7, wire.len()] {
            let mut p = RequestParser::default();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                p.feed(piece);
                got.extend(all(&mut p));
            }
            assert_eq!(got.len(), 3, "in pieces of {chunk}");
            let Input::Request(r) = &got[0] else { panic!() };
            assert_eq!(
                (r.method.as_str(), r.uri.as_str(), r.cseq()),
                ("OPTIONS", "rtsp://h/cam", Some(1))
            );
            assert_eq!(
                got[1],
                Input::Interleaved {
                    channel: 1,
                    data: Bytes::from_static(b"abc")
                }
            );
            let Input::Request(r) = &got[2] else { panic!() };
            assert_eq!((r.cseq(), &r.body[..]), (Some(2), &b"hello"[..]));
            assert_eq!(p.buffered(), 0);
        }
    }

    #[test]
    fn oversized_and_malformed_requests_are_refused_with_the_reason() {
        let limits = Limits::default();
        let mut p = RequestParser::default();
        p.feed(&vec![b'A'; limits.line + 1]);
        assert_eq!(p.next(), Err(ParseError::LineTooLong(limits.line)));

        let mut p = RequestParser::default();
        p.feed(b"OPTIONS * RTSP/1.0\r\n");
        for i in 0..2000 {
            p.feed(format!("X-Filler-{i}: {}\r\n", "y".repeat(20)).as_bytes());
        }
        assert_eq!(p.next(), Err(ParseError::HeadTooLarge(limits.head)));

        let mut p = RequestParser::default();
        p.feed(b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 4294967296\r\n\r\n");
        assert_eq!(p.next(), Err(ParseError::BodyTooLarge(1 << 32, limits.body)));

        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"OPTIONS *\r\n\r\n",
            b"options * RTSP/1.0\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nno colon\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nContent-Length: -1\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nX: \xff\r\n\r\n",
        ] {
            let mut p = RequestParser::default();
            p.feed(bad);
            assert!(matches!(p.next(), Err(ParseError::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn what_waits_for_more_stays_within_the_bounds() {
        let limits = Limits::default();
        let mut p = RequestParser::default();
        // A body that never comes whole.
        p.feed(format!("SET_PARAMETER * RTSP/1.0\r\nContent-Length: {}\r\n\r\n", limits.body).as_bytes());
        p.feed(&vec![0; limits.body - 1]);
        assert_eq!(p.next(), Ok(None));
        assert!(p.buffered() < limits.head + limits.body);
        // An interleaved packet is at most 64 KiB by its framing.
        let mut p = RequestParser::default();
        p.feed(b"$\x00\xff\xff");
        p.feed(&[0; 1000]);
        assert_eq!(p.next(), Ok(None));
    }
}
