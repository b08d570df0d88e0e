//! One RTSP client's connection: requests in, responses out, and the
//! frames of the stream it plays as RTP interleaved on the connection
//! (RFC 2326 §10.12).

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use std::ops::Range;

use framewire_codec::h26x::{Codec, nal_units};

use crate::auth::{AuthError, Digest};
use crate::packet::Packetizer;
use crate::request::{Input, Limits, ParseError, Request, RequestParser};
use crate::rtcp::sender_report;
use crate::sdp::{TRACK, payload_type, sdp};

/// The methods served, as OPTIONS lists them.
const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";

/// Stream time between two RTCP sender reports.
const REPORT_EVERY_NS: u64 = 5_000_000_000;

/// Seconds a session lives without a request (said in the Session header;
/// a client over TCP is alive while its connection is).
const SESSION_TIMEOUT: u32 = 60;

/// How a stream's frames go in RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// H.264 or H.265 access units (RFC 6184, RFC 7798).
    H26x(Codec),
    /// JPEG images (RFC 2435): only those [`jpeg::parse`](crate::jpeg::parse) takes.
    Jpeg,
}

/// What a client may play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDesc {
    /// The node's stream.
    pub name: String,
    /// How it goes in RTP.
    pub encoding: Encoding,
    /// Its parameter sets, Annex B (empty if not known yet: they come
    /// in-band before every keyframe too).
    pub config: Bytes,
    /// Frames per second as a fraction, if known.
    pub fps: Option<(u32, u32)>,
}

impl StreamDesc {
    /// A stream with no parameter sets or rate known.
    pub fn new(name: &str, codec: Codec) -> StreamDesc {
        StreamDesc::of(name, Encoding::H26x(codec))
    }

    /// A stream of any encoding, with nothing else known.
    pub fn of(name: &str, encoding: Encoding) -> StreamDesc {
        StreamDesc {
            name: name.to_owned(),
            encoding,
            config: Bytes::new(),
            fps: None,
        }
    }
}

/// The streams a server offers, by the path of their URL.
pub trait Catalog {
    /// The stream at `path` (the URL's path without its leading `/`).
    fn describe(&self, path: &str) -> Option<StreamDesc>;

    /// The server's RTP and RTCP ports for this connection's packets over
    /// UDP (bound by the driver when first asked); `None` serves RTP over
    /// TCP only.
    fn udp_ports(&self) -> Option<(u16, u16)> {
        None
    }

    /// A user's `HA1` ([`auth::ha1`](crate::auth::ha1)), for a connection
    /// that requires authentication; `None`: no such user (or not allowed).
    fn ha1(&self, user: &str) -> Option<String> {
        let _ = user;
        None
    }
}

/// Wrong answers to the challenge a connection takes before it is closed.
const MAX_FAILED_AUTH: u32 = 5;

/// What the driver is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the client.
    Send(Bytes),
    /// Write these, in order, to the client (one vectored write: RTP
    /// headers and slices of the shared frame).
    SendParts(Parts),
    /// Send these datagrams to the client's address, at `port`: from the
    /// server's RTP port, or its RTCP port when `rtcp`.
    Datagrams {
        /// The client's port.
        port: u16,
        /// From the server's RTCP port.
        rtcp: bool,
        /// The packets, in order.
        packets: Vec<Bytes>,
    },
    /// Start handing this stream's frames to [`Connection::frame`].
    Play {
        /// The stream as the catalog named it.
        stream: String,
    },
    /// Stop handing frames (PAUSE, TEARDOWN).
    Stop,
    /// Write what was queued, then close the connection.
    Close {
        /// Why, for the log.
        reason: String,
    },
}

/// Bytes to write in order, as slices of a buffer of headers and of a
/// shared frame: a frame's packets for one client without a copy of the
/// frame or a reference count per packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// The headers (interleaving, RTP, payload headers) of every packet.
    pub heads: Bytes,
    /// The frame the payloads are slices of.
    pub data: Bytes,
    /// Per packet: its header in `heads`, then its payload in `data`
    /// (empty for a packet that is all header).
    pub layout: Vec<(Range<usize>, Range<usize>)>,
}

impl Parts {
    /// The slices to write, in order (none empty).
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.layout
            .iter()
            .flat_map(|(h, p)| [&self.heads[h.clone()], &self.data[p.clone()]])
            .filter(|s| !s.is_empty())
    }

    /// The same slices as shared buffers, after the first `skip` bytes
    /// (what is left after a short write).
    pub fn into_bytes_after(self, mut skip: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        for (h, p) in &self.layout {
            for (buf, r) in [(&self.heads, h), (&self.data, p)] {
                let len = r.len();
                if skip >= len {
                    skip -= len;
                    continue;
                }
                out.push(buf.slice(r.start + skip..r.end));
                skip = 0;
            }
        }
        out
    }

    /// Bytes in all.
    pub fn len(&self) -> usize {
        self.layout.iter().map(|(h, p)| h.len() + p.len()).sum()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        self.slices().collect::<Vec<_>>().concat()
    }
}

/// One client.
#[derive(Debug)]
pub struct Connection {
    parser: RequestParser,
    out: VecDeque<Output>,
    session: Option<Session>,
    seed: u64,
    closed: bool,
    /// The address the client reached, for the SDP's origin line.
    host: String,
    /// The challenge, when requests other than OPTIONS need credentials.
    auth: Option<Digest>,
    /// Who the last request's credentials named.
    user: Option<String>,
    failed_auth: u32,
    /// The user the last wrong answer named.
    failed_user: Option<String>,
    /// Frames not sent: JPEG images RFC 2435 cannot carry.
    skipped: u64,
    /// The stream the last DESCRIBE described, by path: SETUP of that path
    /// plays what the client was told (the catalog's answer may change
    /// meanwhile, as an MJPEG stream's pictures do).
    described: Option<(String, StreamDesc)>,
}

/// Where a session's packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// Interleaved on the connection: RTP on this channel, RTCP on the next.
    Tcp(u8),
    /// Datagrams to the client's RTP and RTCP ports.
    Udp(u16, u16),
}

#[derive(Debug)]
struct Session {
    id: String,
    stream: StreamDesc,
    transport: Transport,
    packetizer: Packetizer,
    rtp_offset: u32,
    playing: bool,
    /// Packets and payload bytes sent, for sender reports.
    packets: u32,
    octets: u32,
    /// Capture time of the frame the last sender report described.
    reported: Option<u64>,
}

impl Connection {
    /// A connection whose session ids, SSRC and RTP offsets come from
    /// `seed` (random, from the driver).
    pub fn new(seed: u64) -> Connection {
        Connection::with_limits(seed, Limits::default())
    }

    /// The same, with other bounds on requests.
    pub fn with_limits(seed: u64, limits: Limits) -> Connection {
        Connection {
            parser: RequestParser::new(limits),
            out: VecDeque::new(),
            session: None,
            seed,
            closed: false,
            host: "0.0.0.0".into(),
            auth: None,
            user: None,
            failed_auth: 0,
            failed_user: None,
            skipped: 0,
            described: None,
        }
    }

    /// Every request but OPTIONS must carry Digest credentials the
    /// catalog's [`Catalog::ha1`] accepts; others get 401 and a challenge,
    /// and the connection closes after a few wrong answers.
    pub fn require_auth(&mut self) {
        self.auth = Some(Digest::new(mix(self.seed ^ 5)));
    }

    /// Frames not sent because RFC 2435 cannot carry them (a JPEG stream
    /// whose images changed kind after DESCRIBE).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Wrong answers to the challenge so far, and the user the last one
    /// named (for a server's limits across connections).
    pub fn failed_auth(&self) -> (u32, Option<&str>) {
        (self.failed_auth, self.failed_user.as_deref())
    }

    /// The user the connection's credentials named, once accepted.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The address the client connected to (the SDP names it).
    pub fn set_host(&mut self, host: &str) {
        self.host = host.to_owned();
    }

    /// Bytes the client sent.
    pub fn receive(&mut self, data: &[u8], catalog: &dyn Catalog) {
        if self.closed {
            return;
        }
        self.parser.feed(data);
        loop {
            match self.parser.next() {
                Ok(None) => return,
                // RTCP receiver reports: the connection being alive says enough.
                Ok(Some(Input::Interleaved { .. })) => {}
                Ok(Some(Input::Request(req))) => {
                    self.handle(&req, catalog);
                    // Closed by that request (too many wrong answers):
                    // the requests behind it get no answer.
                    if self.closed {
                        return;
                    }
                }
                Err(e) => return self.refuse(&e),
            }
        }
    }

    /// What to do next, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Whether frames are wanted now.
    pub fn playing(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.playing)
    }

    /// One access unit of the playing stream, captured at `timestamp_ns`
    /// (any epoch, nanoseconds): its RTP packets, framed for the
    /// connection, in one [`Output::SendParts`] (or [`Output::Datagrams`]
    /// over UDP). Nothing if not playing.
    pub fn frame(&mut self, au: &[u8], timestamp_ns: u64) {
        let data = Bytes::copy_from_slice(au);
        let nals = nal_ranges(&data);
        self.frame_shared(&data, &nals, timestamp_ns);
    }

    /// [`Connection::frame`] of a shared access unit whose NAL units are at
    /// `nals` ([`nal_ranges`]; one split serves every client of a stream).
    /// Over TCP the packets' payloads are slices of `data`, not copies.
    pub fn frame_shared(&mut self, data: &Bytes, nals: &[Range<usize>], timestamp_ns: u64) {
        // A closed connection says nothing more, whatever its session was.
        if self.closed {
            return;
        }
        let Some(s) = self.session.as_mut().filter(|s| s.playing) else {
            return;
        };
        // 90 kHz from the capture time, to the nearest tick; wraps as RTP
        // time does.
        let ticks = ((u128::from(timestamp_ns) * 90_000 + 500_000_000) / 1_000_000_000) as u32;
        let rtp_time = ticks.wrapping_add(s.rtp_offset);
        // A JPEG image RFC 2435 cannot carry is never sent broken: skipped.
        let jpeg = match s.stream.encoding {
            Encoding::Jpeg => match crate::jpeg::parse(data) {
                Ok(p) => Some(p),
                Err(_) => {
                    self.skipped += 1;
                    return;
                }
            },
            Encoding::H26x(_) => None,
        };
        let slices: Vec<&[u8]> = nals.iter().filter_map(|r| data.get(r.clone())).collect();
        let base = data.as_ptr() as usize;
        // Over TCP: the packets' headers in one buffer, and where each
        // packet's header and payload are.
        let mut heads = BytesMut::with_capacity(64 + 24 * (data.len() / 1000 + slices.len()));
        let mut layout: Vec<(Range<usize>, Range<usize>)> = Vec::new();
        let mut datagrams = Vec::new();
        let transport = s.transport;
        let (mut packets, mut octets) = (0u32, 0u32);
        let mut emit = |head: &[u8], payload: &[u8]| {
            match transport {
                Transport::Tcp(channel) => {
                    let at = heads.len();
                    heads.put_u8(b'$');
                    heads.put_u8(channel);
                    heads.put_u16((head.len() + payload.len()) as u16);
                    heads.put_slice(head);
                    let from = payload.as_ptr() as usize - base;
                    layout.push((at..heads.len(), from..from + payload.len()));
                }
                Transport::Udp(..) => datagrams.push(Bytes::from([head, payload].concat())),
            }
            packets += 1;
            octets += (head.len() - 12 + payload.len()) as u32;
        };
        match &jpeg {
            Some(p) => s
                .packetizer
                .packetize_jpeg(p, &data[p.scan.clone()], rtp_time, &mut emit),
            None => s.packetizer.packetize_parts(&slices, rtp_time, &mut emit),
        };
        s.packets = s.packets.wrapping_add(packets);
        s.octets = s.octets.wrapping_add(octets);
        // A sender report with the first frame and every 5 s of stream
        // time after (again at once if the capture clock went back).
        let due = s
            .reported
            .is_none_or(|t| timestamp_ns < t || timestamp_ns - t >= REPORT_EVERY_NS);
        let report = (packets > 0 && due).then(|| {
            s.reported = Some(timestamp_ns);
            sender_report(
                s.packetizer.ssrc(),
                timestamp_ns,
                rtp_time,
                s.packets,
                s.octets,
                "framewire",
            )
        });
        match transport {
            Transport::Tcp(channel) => {
                if let Some(sr) = report {
                    let at = heads.len();
                    interleave(&mut heads, channel.wrapping_add(1), &sr);
                    layout.push((at..heads.len(), 0..0));
                }
                if !layout.is_empty() {
                    self.out.push_back(Output::SendParts(Parts {
                        heads: heads.freeze(),
                        data: data.clone(),
                        layout,
                    }));
                }
            }
            Transport::Udp(rtp, rtcp) => {
                if !datagrams.is_empty() {
                    self.out.push_back(Output::Datagrams {
                        port: rtp,
                        rtcp: false,
                        packets: datagrams,
                    });
                }
                if let Some(sr) = report {
                    self.out.push_back(Output::Datagrams {
                        port: rtcp,
                        rtcp: true,
                        packets: vec![Bytes::from(sr)],
                    });
                }
            }
        }
    }

    /// Whether the session's packets go on the connection (a client over
    /// TCP is alive while it reads them; one over UDP says so with
    /// requests).
    pub fn interleaved(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| matches!(s.transport, Transport::Tcp(_)))
    }

    fn refuse(&mut self, e: &ParseError) {
        let status = match e {
            ParseError::BodyTooLarge(..) => "413 Request Entity Too Large",
            ParseError::HeadTooLarge(_) | ParseError::LineTooLong(_) | ParseError::Malformed(_) => "400 Bad Request",
        };
        self.out.push_back(Output::Send(response(status, None, &[], &[])));
        self.close(e.to_string());
    }

    fn close(&mut self, reason: String) {
        self.closed = true;
        if self.session.as_ref().is_some_and(|s| s.playing) {
            self.out.push_back(Output::Stop);
        }
        self.out.push_back(Output::Close { reason });
    }

    fn handle(&mut self, req: &Request, catalog: &dyn Catalog) {
        let Some(cseq) = req.cseq() else {
            self.out
                .push_back(Output::Send(response("400 Bad Request", None, &[], &[])));
            return;
        };
        if let Some(d) = self.auth.as_ref().filter(|_| req.method != "OPTIONS") {
            match d.check(&req.method, req.header("Authorization"), |u| catalog.ha1(u)) {
                Ok(user) => self.user = Some(user),
                Err(e) => {
                    let challenge = d.challenge();
                    let tried = !matches!(e, AuthError::Missing);
                    self.out.push_back(Output::Send(response(
                        "401 Unauthorized",
                        Some(cseq),
                        &[("WWW-Authenticate", challenge)],
                        &[],
                    )));
                    if tried {
                        self.failed_auth += 1;
                        if let AuthError::Refused(u) = &e {
                            self.failed_user = Some(u.clone());
                        }
                        if self.failed_auth >= MAX_FAILED_AUTH {
                            self.close(format!("{MAX_FAILED_AUTH} wrong answers to the challenge; last: {e}"));
                        }
                    }
                    return;
                }
            }
        }
        let reply = match req.method.as_str() {
            "OPTIONS" => Reply::ok().header("Public", PUBLIC),
            "DESCRIBE" => self.describe(req, catalog),
            "SETUP" => self.setup(req, catalog),
            "PLAY" => self.play(req),
            "PAUSE" => self.pause(req),
            "TEARDOWN" => self.teardown(req),
            "GET_PARAMETER" | "SET_PARAMETER" => match self.check_session(req) {
                Ok(()) => Reply::ok(),
                Err(r) => r,
            },
            _ => Reply::status("501 Not Implemented").header("Public", PUBLIC),
        };
        let session = reply.session.then(|| self.session_header()).flatten();
        let mut headers: Vec<(&str, String)> = reply.headers.iter().map(|(n, v)| (*n, v.clone())).collect();
        if let Some(s) = session {
            headers.push(("Session", s));
        }
        self.out
            .push_back(Output::Send(response(reply.status, Some(cseq), &headers, &reply.body)));
        if let Some(o) = reply.then {
            self.out.push_back(*o);
        }
    }

    fn describe(&mut self, req: &Request, catalog: &dyn Catalog) -> Reply {
        let Some(path) = path_of(&req.uri) else {
            return Reply::status("400 Bad Request");
        };
        let Some(desc) = catalog.describe(path) else {
            return Reply::status("404 Not Found");
        };
        let body = sdp(&desc, self.seed >> 1, &self.host);
        self.described = Some((path.to_owned(), desc));
        let base = format!("{}/", req.uri.trim_end_matches('/'));
        let mut r = Reply::ok()
            .header("Content-Base", &base)
            .header("Content-Type", "application/sdp");
        r.body = body.into_bytes();
        r
    }

    fn setup(&mut self, req: &Request, catalog: &dyn Catalog) -> Reply {
        let Some(path) = path_of(&req.uri) else {
            return Reply::status("400 Bad Request");
        };
        let path = path.strip_suffix(TRACK).map_or(path, |p| p.trim_end_matches('/'));
        let told = self
            .described
            .as_ref()
            .filter(|(p, _)| p == path)
            .map(|(_, d)| d.clone());
        let Some(desc) = told.or_else(|| catalog.describe(path)) else {
            return Reply::status("404 Not Found");
        };
        if let Some(s) = &self.session {
            if req.header("Session").map(session_id) != Some(s.id.as_str()) {
                return Reply::status("459 Aggregate Operation Not Allowed");
            }
            if s.playing {
                return Reply::status("455 Method Not Valid in This State");
            }
        }
        let asked = req.header("Transport").unwrap_or_default();
        let udp_ports = catalog.udp_ports();
        let Some(transport) = choose_transport(asked, udp_ports.is_some()) else {
            return Reply::status("461 Unsupported Transport");
        };
        let ssrc = (mix(self.seed ^ 1) >> 32) as u32;
        let first_seq = (mix(self.seed ^ 2) & 0xffff) as u16;
        let rtp_offset = (mix(self.seed ^ 3) & 0xffff_ffff) as u32;
        let id = format!("{:016X}", mix(self.seed));
        self.session = Some(Session {
            id,
            packetizer: Packetizer::of(desc.encoding, payload_type(desc.encoding), ssrc, first_seq),
            stream: desc,
            transport,
            rtp_offset,
            playing: false,
            packets: 0,
            octets: 0,
            reported: None,
        });
        let t = match (transport, udp_ports) {
            (Transport::Tcp(c), _) => format!(
                "RTP/AVP/TCP;unicast;interleaved={c}-{};ssrc={ssrc:08X}",
                c.wrapping_add(1)
            ),
            (Transport::Udp(a, b), Some((sa, sb))) => {
                format!("RTP/AVP;unicast;client_port={a}-{b};server_port={sa}-{sb};ssrc={ssrc:08X}")
            }
            (Transport::Udp(..), None) => unreachable!("chosen only with ports"),
        };
        Reply::ok().header("Transport", &t).with_session()
    }

    fn play(&mut self, req: &Request) -> Reply {
        if let Err(r) = self.check_session(req) {
            return r;
        }
        let Some(s) = self.session.as_mut() else {
            return Reply::status("454 Session Not Found");
        };
        let base = req.uri.trim_end_matches('/');
        let info = format!("url={base}/{TRACK};seq={}", s.packetizer.next_seq());
        let mut r = Reply::ok()
            .header("Range", "npt=now-")
            .header("RTP-Info", &info)
            .with_session();
        if !s.playing {
            s.playing = true;
            r.then = Some(Box::new(Output::Play {
                stream: s.stream.name.clone(),
            }));
        }
        r
    }

    fn pause(&mut self, req: &Request) -> Reply {
        if let Err(r) = self.check_session(req) {
            return r;
        }
        let mut r = Reply::ok().with_session();
        if let Some(s) = self.session.as_mut().filter(|s| s.playing) {
            s.playing = false;
            r.then = Some(Box::new(Output::Stop));
        }
        r
    }

    fn teardown(&mut self, req: &Request) -> Reply {
        if let Err(r) = self.check_session(req) {
            return r;
        }
        let mut r = Reply::ok();
        if self.session.take().is_some_and(|s| s.playing) {
            r.then = Some(Box::new(Output::Stop));
        }
        r
    }

    /// A request naming a session must name this connection's.
    fn check_session(&self, req: &Request) -> Result<(), Reply> {
        match (req.header("Session").map(session_id), &self.session) {
            (None, _) => Ok(()),
            (Some(id), Some(s)) if id == s.id => Ok(()),
            _ => Err(Reply::status("454 Session Not Found")),
        }
    }

    fn session_header(&self) -> Option<String> {
        self.session
            .as_ref()
            .map(|s| format!("{};timeout={SESSION_TIMEOUT}", s.id))
    }
}

/// A response being made.
struct Reply {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    session: bool,
    then: Option<Box<Output>>,
}

impl Reply {
    fn status(status: &'static str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            session: false,
            then: None,
        }
    }

    fn ok() -> Reply {
        Reply::status("200 OK")
    }

    fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn with_session(mut self) -> Reply {
        self.session = true;
        self
    }
}

/// Where the NAL units of `au` (Annex B) are, without their start codes.
pub fn nal_ranges(au: &[u8]) -> Vec<Range<usize>> {
    let base = au.as_ptr() as usize;
    nal_units(au)
        .map(|n| {
            let start = n.as_ptr() as usize - base;
            start..start + n.len()
        })
        .collect()
}

/// `packet` framed on `channel` of the RTSP connection (`$`, channel,
/// length).
fn interleave(buf: &mut BytesMut, channel: u8, packet: &[u8]) {
    buf.put_u8(b'$');
    buf.put_u8(channel);
    buf.put_u16(packet.len() as u16);
    buf.put_slice(packet);
}

fn response(status: &str, cseq: Option<u32>, headers: &[(&str, String)], body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(256 + body.len());
    b.put_slice(b"RTSP/1.0 ");
    b.put_slice(status.as_bytes());
    b.put_slice(b"\r\n");
    if let Some(c) = cseq {
        b.put_slice(format!("CSeq: {c}\r\n").as_bytes());
    }
    b.put_slice(concat!("Server: framewire/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes());
    for (n, v) in headers {
        b.put_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    if !body.is_empty() {
        b.put_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    b.put_slice(b"\r\n");
    b.put_slice(body);
    b.freeze()
}

/// The path of an RTSP URL without its leading `/` and any query
/// (`rtsp://host:8554/cam` → `cam`); `None` for `*` or another scheme.
fn path_of(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("rtsp://").or_else(|| uri.strip_prefix("rtsps://"))?;
    let path = rest.find('/').map_or("", |i| &rest[i + 1..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    Some(path.trim_end_matches('/'))
}

/// The session id of a Session header (`ID;timeout=60` → `ID`).
fn session_id(h: &str) -> &str {
    h.split(';').next().unwrap_or_default().trim()
}

/// The first transport of a Transport header that can be served: RTP
/// over TCP (interleaved on its channels, 0-1 if none named), or unicast
/// UDP to the client's ports when `udp`. Packets go only to the client's
/// own address: a `destination` is not followed.
fn choose_transport(header: &str, udp: bool) -> Option<Transport> {
    header.split(',').find_map(|spec| {
        let mut params = spec.split(';').map(str::trim);
        let proto = params.next()?;
        let params: Vec<&str> = params.collect();
        let value = |key: &str| params.iter().find_map(|p| p.strip_prefix(key)?.strip_prefix('='));
        if proto.eq_ignore_ascii_case("RTP/AVP/TCP") {
            let channel = value("interleaved")
                .and_then(|v| v.split('-').next()?.parse::<u8>().ok())
                .unwrap_or(0);
            return Some(Transport::Tcp(channel));
        }
        let plain = proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVP/UDP");
        if !plain || !udp || params.iter().any(|p| p.eq_ignore_ascii_case("multicast")) {
            return None;
        }
        let ports = value("client_port")?;
        let (a, b) = match ports.split_once('-') {
            Some((a, b)) => (a, Some(b)),
            None => (ports, None),
        };
        let a: u16 = a.parse().ok().filter(|a| *a > 0)?;
        let b: u16 = b.and_then(|b| b.parse().ok()).unwrap_or(a.wrapping_add(1));
        Some(Transport::Udp(a, b))
    })
}

/// SplitMix64: spreads a seed into independent-looking values.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
