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
//!
//! It also tells its driver where the client would act: at the end of an
//! RTSP message, and at the end of an RTP packet with the marker bit (the
//! last packet of a video frame) or of an RTCP packet (whose second byte,
//! the packet type, has the same bit set). Bytes before such an end can
//! wait to be passed with it, in one write instead of one per packet;
//! except whole packets of a channel that has never marked an end (audio),
//! which are to be passed soon ([`Feed::Soon`]).

/// What the bytes fed so far call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feed {
    /// They end a message or a frame: pass them now.
    End,
    /// Their end is still to come (a message, a frame's packets): they
    /// can wait for it.
    Hold,
    /// They hold a whole packet of a channel that does not mark its ends:
    /// pass them soon.
    Soon,
}

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
    DataHeader { have: usize, channel: u8, len: [u8; 2] },
    /// Bytes of interleaved data still to pass, `seen` of it passed, and
    /// whether its second byte has the marker bit.
    Data {
        channel: u8,
        left: usize,
        seen: usize,
        marker: bool,
    },
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
    /// Channels that have marked an end, one bit each.
    marking: [u64; 4],
    /// A whole packet of a channel not in `marking` came since the last
    /// [`Feed::End`].
    loose: bool,
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
            marking: [0; 4],
            loose: false,
        }
    }

    /// The next bytes from the server: what the bytes since the last
    /// [`Feed::End`] call for (see the module's notes), or the limit they
    /// break (the connection is then to be closed; the guard stays failed).
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<Feed, GuardError> {
        let mut ends = false;
        while let Some(&b) = bytes.first() {
            match &mut self.state {
                State::Start => {
                    bytes = &bytes[1..];
                    match b {
                        b'$' => {
                            self.state = State::DataHeader {
                                have: 0,
                                channel: 0,
                                len: [0; 2],
                            }
                        }
                        b'\r' | b'\n' => {}
                        _ => {
                            self.line.clear();
                            self.line.push(b);
                            self.state = State::Head { head: 1, body: 0 };
                        }
                    }
                }
                State::DataHeader { have, channel, len } => {
                    if *have == 0 {
                        *channel = b;
                    } else {
                        len[*have - 1] = b;
                    }
                    *have += 1;
                    bytes = &bytes[1..];
                    if *have == 3 {
                        let left = usize::from(u16::from_be_bytes(*len));
                        self.state = if left == 0 {
                            State::Start
                        } else {
                            State::Data {
                                channel: *channel,
                                left,
                                seen: 0,
                                marker: false,
                            }
                        };
                    }
                }
                State::Data {
                    channel,
                    left,
                    seen,
                    marker,
                } => {
                    let n = (*left).min(bytes.len());
                    if *seen <= 1 && *seen + n > 1 {
                        *marker = bytes[1 - *seen] & 0x80 != 0;
                    }
                    *seen += n;
                    *left -= n;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        let bit = (usize::from(*channel / 64), 1u64 << (*channel % 64));
                        if *marker {
                            self.marking[bit.0] |= bit.1;
                            ends = true;
                        } else if self.marking[bit.0] & bit.1 == 0 {
                            self.loose = true;
                        }
                        self.state = State::Start;
                    }
                }
                State::Body { left } => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(bytes.len());
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        ends = true;
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
                        ends |= body == 0;
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
        Ok(if ends {
            self.loose = false;
            Feed::End
        } else if self.loose {
            Feed::Soon
        } else {
            Feed::Hold
        })
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

    /// An RTP packet of `len` bytes, the marker bit as given.
    fn rtp(marker: bool, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len.max(12)];
        p[0] = 0x80;
        p[1] = if marker { 0x80 | 96 } else { 96 };
        p
    }

    #[test]
    fn the_end_of_a_message_or_of_a_marked_packet_is_told_in_any_pieces() {
        let cases: [(Vec<u8>, Feed); 6] = [
            (response(b"v=0\r\n"), Feed::End),
            (response(b""), Feed::End),
            // A channel not yet seen marking an end.
            (data(0, &rtp(false, 1400)), Feed::Soon),
            (data(0, &rtp(true, 900)), Feed::End),
            // An RTCP sender report: packet type 200 has the bit.
            (data(1, &[0x80, 200, 0, 6]), Feed::End),
            (data(0, &[]), Feed::Hold),
        ];
        for (bytes, told) in &cases {
            for piece in [1, 2, 3, 5, bytes.len()] {
                let mut g = Guard::new();
                let mut all = Vec::new();
                for chunk in bytes.chunks(piece) {
                    all.push(g.feed(chunk).unwrap());
                }
                // Only the piece that ends it says so.
                let last = all.pop().unwrap();
                assert_eq!(last, *told, "pieces of {piece} of {:?}", &bytes[..4]);
                assert!(all.iter().all(|t| *t == Feed::Hold), "pieces of {piece}: {all:?}");
            }
        }
        // Unmarked packets, then a marked one, in one read: one end.
        let mut g = Guard::new();
        let frame = [
            data(0, &rtp(false, 1400)),
            data(0, &rtp(false, 1400)),
            data(0, &rtp(true, 300)),
        ]
        .concat();
        assert_eq!(g.feed(&frame).unwrap(), Feed::End);
        // Channel 0 has marked an end: its next frame's packets wait for
        // theirs, while another channel's unmarked packet is to go soon,
        // until an end passes it on.
        assert_eq!(g.feed(&data(0, &rtp(false, 1400))).unwrap(), Feed::Hold);
        assert_eq!(g.feed(&data(2, &rtp(false, 160))).unwrap(), Feed::Soon);
        assert_eq!(g.feed(&data(0, &rtp(false, 1400))).unwrap(), Feed::Soon);
        assert_eq!(g.feed(&data(0, &rtp(true, 1400))).unwrap(), Feed::End);
        assert_eq!(g.feed(&data(0, &rtp(false, 1400))).unwrap(), Feed::Hold);
        // A message in pieces waits for its end.
        assert_eq!(g.feed(b"RTSP/1.0 200 OK\r\nCSeq: 3\r\n").unwrap(), Feed::Hold);
        assert_eq!(g.feed(b"\r\n").unwrap(), Feed::End);
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
