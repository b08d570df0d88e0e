//! Bounds on what an RTSP server may send, without I/O.
//!
//! The RTSP client buffers a whole message (head and body) before it looks
//! at it, with no limit of its own: a server that announces a body of
//! gigabytes, or never ends its header lines, would have the node buffer
//! all of it. The guard follows the framing of the server's byte stream —
//! RTSP messages (head lines, then `Content-Length` bytes of body) and
//! interleaved data (`$`, channel, a 16-bit length, that many bytes, so
//! bounded by the framing itself) — and refuses, with the reason, a
//! message whose line, head or body is over its limit. The bytes it passes
//! are not changed.

use std::fmt;

/// Longest line of a message head.
pub(crate) const MAX_LINE: usize = 8 * 1024;
/// Largest message head (status or request line and headers).
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Largest message body (an SDP is a few kilobytes).
pub(crate) const MAX_BODY: u64 = 256 * 1024;

/// Why the guard refused the server's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GuardError {
    /// A head line longer than [`MAX_LINE`].
    LineTooLong,
    /// A message head larger than [`MAX_HEAD`].
    HeadTooLarge,
    /// A `Content-Length` larger than [`MAX_BODY`].
    BodyTooLarge(u64),
    /// A `Content-Length` that is not a number.
    BadContentLength(String),
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::LineTooLong => write!(f, "the server sent an RTSP header line over {MAX_LINE} bytes"),
            GuardError::HeadTooLarge => write!(f, "the server sent an RTSP message head over {MAX_HEAD} bytes"),
            GuardError::BodyTooLarge(n) => write!(
                f,
                "the server announced an RTSP message body of {n} bytes (the limit is {MAX_BODY})"
            ),
            GuardError::BadContentLength(v) => write!(f, "the server sent Content-Length `{v}`"),
        }
    }
}

impl std::error::Error for GuardError {}

#[derive(Debug)]
enum State {
    /// Between messages.
    Start,
    /// The 3 bytes after `$` (channel and length), `have` of them so far.
    DataHeader { have: usize, len: [u8; 2] },
    /// Bytes of interleaved data still to pass.
    Data { left: usize },
    /// In a message head.
    Head { head: usize, body: u64 },
    /// Bytes of a message body still to pass.
    Body { left: u64 },
}

/// The guard of one connection's server-to-client bytes.
#[derive(Debug)]
pub(crate) struct Guard {
    state: State,
    /// The current head line (kept up to [`MAX_LINE`] bytes).
    line: Vec<u8>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard::new()
    }
}

impl Guard {
    pub(crate) fn new() -> Guard {
        Guard {
            state: State::Start,
            line: Vec::new(),
        }
    }

    /// The next bytes from the server: fine, or the limit they break (the
    /// connection is then to be closed; the guard stays failed).
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), GuardError> {
        while let Some(&b) = bytes.first() {
            match &mut self.state {
                State::Start => {
                    bytes = &bytes[1..];
                    match b {
                        b'$' => self.state = State::DataHeader { have: 0, len: [0; 2] },
                        b'\r' | b'\n' => {}
                        _ => {
                            self.line.clear();
                            self.line.push(b);
                            self.state = State::Head { head: 1, body: 0 };
                        }
                    }
                }
                State::DataHeader { have, len } => {
                    if *have > 0 {
                        len[*have - 1] = b;
                    }
                    *have += 1;
                    bytes = &bytes[1..];
                    if *have == 3 {
                        let left = usize::from(u16::from_be_bytes(*len));
                        self.state = if left == 0 { State::Start } else { State::Data { left } };
                    }
                }
                State::Data { left } => {
                    let n = (*left).min(bytes.len());
                    *left -= n;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = State::Start;
                    }
                }
                State::Body { left } => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(bytes.len());
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = State::Start;
                    }
                }
                State::Head { head, body } => {
                    let (head, body) = (*head, *body);
                    let end = bytes.iter().position(|&c| c == b'\n');
                    let take = end.map_or(bytes.len(), |i| i + 1);
                    let head = head + take;
                    if head > MAX_HEAD {
                        return Err(self.fail(GuardError::HeadTooLarge));
                    }
                    if self.line.len() + take > MAX_LINE {
                        return Err(self.fail(GuardError::LineTooLong));
                    }
                    self.line.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    self.state = State::Head { head, body };
                    if end.is_none() {
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let text = line.strip_suffix(b"\n").unwrap_or(&line);
                    let text = text.strip_suffix(b"\r").unwrap_or(text);
                    if text.is_empty() {
                        self.state = if body == 0 {
                            State::Start
                        } else {
                            State::Body { left: body }
                        };
                    } else if let Some(n) = content_length(text) {
                        let n = n.map_err(|v| self.fail(GuardError::BadContentLength(v)))?;
                        if n > MAX_BODY {
                            return Err(self.fail(GuardError::BodyTooLarge(n)));
                        }
                        self.state = State::Head { head, body: n };
                    }
                }
            }
        }
        Ok(())
    }

    fn fail(&mut self, e: GuardError) -> GuardError {
        // A failed guard refuses everything after: it stays in a head that
        // is already too large.
        self.state = State::Head {
            head: usize::MAX / 2,
            body: 0,
        };
        e
    }
}

/// The value of a `Content-Length` header line, if `line` is one.
fn content_length(line: &[u8]) -> Option<Result<u64, String>> {
    let colon = line.iter().position(|&c| c == b':')?;
    let (name, value) = line.split_at(colon);
    if !name.trim_ascii().eq_ignore_ascii_case(b"content-length") {
        return None;
    }
    let value = String::from_utf8_lossy(value[1..].trim_ascii()).into_owned();
    Some(value.parse::<u64>().map_err(|_| value.chars().take(40).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &[u8]) -> Vec<u8> {
        let mut m = format!(
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        m.extend_from_slice(body);
        m
    }

    fn data(channel: u8, payload: &[u8]) -> Vec<u8> {
        let mut d = vec![b'$', channel];
        d.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
        d.extend_from_slice(payload);
        d
    }

    #[test]
    fn messages_and_interleaved_data_pass_in_any_pieces() {
        // A body and a data frame that contain what looks like framing.
        let stream = [
            response(b"v=0\r\n\r\n$\x00\xff\xff"),
            data(0, b"RTSP/1.0 200 OK\r\nContent-Length: 99999999\r\n\r\n"),
            data(1, &[]),
            b"\r\n".to_vec(),
            response(b""),
            data(0, &[0x24; 3000]),
        ]
        .concat();
        for piece in [1, 2, 3, 7, 64, stream.len()] {
            let mut g = Guard::new();
            for chunk in stream.chunks(piece) {
                g.feed(chunk).unwrap_or_else(|e| panic!("pieces of {piece}: {e}"));
            }
            assert!(matches!(g.state, State::Start), "pieces of {piece}: {:?}", g.state);
        }
    }

    #[test]
    fn a_huge_body_a_long_line_or_an_endless_head_is_refused() {
        let mut g = Guard::new();
        let e = g
            .feed(b"RTSP/1.0 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
            .unwrap_err();
        assert_eq!(e, GuardError::BodyTooLarge(1_000_000_000));
        assert!(e.to_string().contains("1000000000 bytes"), "{e}");
        // Once failed, it stays failed.
        assert!(g.feed(b"\r\n").is_err());

        let mut g = Guard::new();
        g.feed(b"RTSP/1.0 200 OK\r\nX: ").unwrap();
        let e = (0..100).find_map(|_| g.feed(&[b'a'; 1000]).err()).unwrap();
        assert_eq!(e, GuardError::LineTooLong);

        let mut g = Guard::new();
        let e = (0..5000)
            .find_map(|_| g.feed(b"X-Filler: 0123456789\r\n").err())
            .unwrap();
        assert_eq!(e, GuardError::HeadTooLarge);

        let mut g = Guard::new();
        let e = g.feed(b"RTSP/1.0 200 OK\r\nContent-Length: lots\r\n\r\n").unwrap_err();
        assert_eq!(e, GuardError::BadContentLength("lots".into()));

        // At the limit is fine.
        let mut g = Guard::new();
        g.feed(&response(&vec![b'a'; usize::try_from(MAX_BODY).unwrap()]))
            .unwrap();
    }
}
