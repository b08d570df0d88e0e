//! The RTSP server's connection engine fed what any client may send: the
//! requests a player makes (OPTIONS, DESCRIBE, SETUP over TCP or UDP,
//! PLAY, PAUSE, TEARDOWN, GET_PARAMETER) with any fields, answers to the
//! digest challenge, interleaved RTP/RTCP, garbage, all cut at any byte;
//! and frames of any bytes for the stream it plays (H.264, H.265, JPEG).
//! It never panics; every answer is an RTSP response or an interleaved
//! packet of a channel the client set up; after it says close it says
//! nothing more.
#![no_main]

use bytes::Bytes;
use framewire_codec::h26x::Codec;
use framewire_rtsp::{Catalog, Connection, Encoding, Limits, Output, StreamDesc};
use libfuzzer_sys::fuzz_target;

include!("input_common.rs");

struct Streams;

impl Catalog for Streams {
    fn describe(&self, path: &str) -> Option<StreamDesc> {
        match path {
            "cam" => {
                let mut d = StreamDesc::new("cam", Codec::H264);
                d.config = Bytes::from_static(b"\0\0\0\x01\x67\x42\xc0\x1e\xd9\0\0\0\x01\x68\xce\x3c\x80");
                d.fps = Some((30, 1));
                Some(d)
            }
            "hevc" => Some(StreamDesc::new("hevc", Codec::H265)),
            "mjpeg" => Some(StreamDesc::of("mjpeg", Encoding::Jpeg)),
            _ => None,
        }
    }

    fn udp_ports(&self) -> Option<(u16, u16)> {
        Some((6970, 6971))
    }

    fn ha1(&self, user: &str) -> Option<String> {
        (user == "ann").then(|| framewire_rtsp::auth::ha1("ann", "secret"))
    }
}

const METHODS: &[&str] = &[
    "OPTIONS",
    "DESCRIBE",
    "SETUP",
    "PLAY",
    "PAUSE",
    "TEARDOWN",
    "GET_PARAMETER",
    "SET_PARAMETER",
    "ANNOUNCE",
    "RECORD",
];
const PATHS: &[&str] = &["cam", "hevc", "mjpeg", "nope", "cam/trackID=0", "", "../x"];

/// One request, shaped like a player's, with fields the bytes choose.
fn request(b: &mut Input, cseq: &mut u32, session: &Option<String>) -> Vec<u8> {
    let method = METHODS[usize::from(b.u8()) % METHODS.len()];
    let path = PATHS[usize::from(b.u8()) % PATHS.len()];
    *cseq += 1;
    let mut r = format!("{method} rtsp://127.0.0.1:8554/{path} RTSP/1.0\r\n");
    let flags = b.u8();
    if flags & 1 == 0 {
        r += &format!("CSeq: {cseq}\r\n");
    }
    if flags & 2 == 0
        && let Some(s) = session
    {
        r += &format!("Session: {s}\r\n");
    }
    if method == "SETUP" {
        let c = b.u8();
        r += &match c % 4 {
            0 => format!(
                "Transport: RTP/AVP/TCP;unicast;interleaved={}-{}\r\n",
                c,
                c.wrapping_add(1)
            ),
            1 => format!("Transport: RTP/AVP;unicast;client_port={}-{}\r\n", b.u16(), b.u16()),
            2 => "Transport: RTP/AVP;multicast\r\n".to_owned(),
            _ => format!("Transport: {}\r\n", b.text()),
        };
    }
    if flags & 4 != 0 {
        r += &format!(
            "Authorization: Digest username=\"{}\", realm=\"framewire\", nonce=\"{}\", uri=\"/{path}\", response=\"{}\"\r\n",
            if flags & 8 != 0 { "ann" } else { "bob" },
            b.text(),
            b.text()
        );
    }
    if flags & 16 != 0 {
        r += &format!("{}: {}\r\n", b.text(), b.text());
    }
    if flags & 32 != 0 {
        let body = b.text();
        r += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    } else {
        r += "\r\n";
    }
    r.into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let mut b = Input(data);
    let limits = Limits {
        line: 512,
        head: 2048,
        body: 1024,
    };
    let mut c = Connection::with_limits(u64::from(b.u16()), limits);
    if b.u8() % 4 == 0 {
        c.require_auth();
    }
    let mut cseq = 0;
    let mut session: Option<String> = None;
    let mut closed = false;
    while !b.0.is_empty() {
        match b.u8() % 8 {
            0 => {
                let n = usize::from(b.u16()) % 4096;
                c.receive(&b.bytes(n), &Streams);
            }
            1 => {
                // Interleaved RTCP from the client.
                let n = b.u8();
                let mut p = vec![b'$', b.u8() % 4, 0, n];
                p.extend(b.bytes(usize::from(n)));
                c.receive(&p, &Streams);
            }
            2 | 3 => {
                let n = usize::from(b.u16()) % 6000;
                let au = b.bytes(n);
                c.frame(&au, u64::from(b.u16()) * 1_000_000);
            }
            _ => {
                let req = request(&mut b, &mut cseq, &session);
                // Sent whole or in two pieces.
                let cut = usize::from(b.u8()).min(req.len());
                c.receive(&req[..cut], &Streams);
                c.receive(&req[cut..], &Streams);
            }
        }
        while let Some(out) = c.poll_output() {
            assert!(!closed, "output after close: {out:?}");
            match out {
                Output::Send(bytes) => {
                    assert!(
                        bytes.starts_with(b"RTSP/1.0 ") || bytes.first() == Some(&b'$'),
                        "neither a response nor interleaved: {:?}",
                        &bytes[..bytes.len().min(32)]
                    );
                    if let Some(s) = std::str::from_utf8(&bytes).ok().and_then(|t| {
                        t.lines()
                            .find_map(|l| l.strip_prefix("Session: "))
                            .map(|v| v.split(';').next().unwrap_or("").to_owned())
                    }) {
                        session = Some(s);
                    }
                }
                Output::SendParts(parts) => {
                    let all = parts.to_vec();
                    assert_eq!(all.len(), parts.len());
                    // Interleaved packets, each whole.
                    let mut rest = &all[..];
                    while !rest.is_empty() {
                        assert_eq!(rest[0], b'$', "an interleaved packet");
                        assert!(rest.len() >= 4);
                        let n = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
                        assert!(rest.len() >= 4 + n, "a packet cut");
                        rest = &rest[4 + n..];
                    }
                }
                Output::Datagrams { packets, .. } => {
                    assert!(packets.iter().all(|p| p.len() <= 1500), "a datagram over 1500 bytes");
                }
                Output::Play { stream } => assert!(["cam", "hevc", "mjpeg"].contains(&stream.as_str())),
                Output::Stop => {}
                Output::Close { .. } => closed = true,
            }
        }
    }
});
