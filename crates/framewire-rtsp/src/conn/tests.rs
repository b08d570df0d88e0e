use super::*;

struct Cams;

impl Catalog for Cams {
    fn describe(&self, path: &str) -> Option<StreamDesc> {
        let mut d = match path {
            "cam" => StreamDesc::new("cam", Codec::H264),
            "site/hevc" => StreamDesc::new("hevc", Codec::H265),
            _ => return None,
        };
        d.fps = Some((30, 1));
        Some(d)
    }

    fn ha1(&self, user: &str) -> Option<String> {
        (user == "ann").then(|| crate::auth::ha1("ann", "secret"))
    }
}

/// What a frame's output writes on the connection.
fn written(o: Option<Output>) -> Vec<u8> {
    match o {
        Some(Output::SendParts(parts)) => parts.to_vec(),
        Some(Output::Send(b)) => b.to_vec(),
        o => panic!("not bytes to write: {o:?}"),
    }
}

/// Sends `req` (CRLFs added) and returns the response's text, and what
/// else came out.
fn ask(c: &mut Connection, req: &str) -> (String, Vec<Output>) {
    let wire = format!("{}\r\n\r\n", req.trim_end().replace('\n', "\r\n"));
    c.receive(wire.as_bytes(), &Cams);
    let mut text = None;
    let mut rest = Vec::new();
    while let Some(o) = c.poll_output() {
        match o {
            Output::Send(b) if text.is_none() => text = Some(String::from_utf8(b.to_vec()).unwrap()),
            o => rest.push(o),
        }
    }
    (text.expect("a response"), rest)
}

fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[test]
fn options_describe_setup_play_teardown_over_tcp() {
    let mut c = Connection::new(99);
    c.set_host("127.0.0.1");
    let (r, _) = ask(&mut c, "OPTIONS rtsp://127.0.0.1:8554/cam RTSP/1.0\nCSeq: 1");
    assert!(r.starts_with("RTSP/1.0 200 OK\r\nCSeq: 1\r\n"), "{r}");
    assert!(header(&r, "Public").unwrap().contains("DESCRIBE, SETUP, PLAY"));

    let (r, _) = ask(
        &mut c,
        "DESCRIBE rtsp://127.0.0.1:8554/cam RTSP/1.0\nCSeq: 2\nAccept: application/sdp",
    );
    assert_eq!(header(&r, "Content-Base"), Some("rtsp://127.0.0.1:8554/cam/"));
    assert_eq!(header(&r, "Content-Type"), Some("application/sdp"));
    let body = r.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(header(&r, "Content-Length"), Some(body.len().to_string().as_str()));
    assert!(
        body.contains("a=rtpmap:96 H264/90000") && body.contains("IN IP4 127.0.0.1"),
        "{body}"
    );

    let (r, _) = ask(
        &mut c,
        "SETUP rtsp://127.0.0.1:8554/cam/trackID=0 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP/TCP;unicast;interleaved=4-5",
    );
    assert!(r.starts_with("RTSP/1.0 200 OK"), "{r}");
    let t = header(&r, "Transport").unwrap();
    assert!(t.starts_with("RTP/AVP/TCP;unicast;interleaved=4-5;ssrc="), "{t}");
    let session = header(&r, "Session").unwrap();
    assert!(session.ends_with(";timeout=60"), "{session}");
    let id = session_id(session).to_owned();
    assert!(!c.playing());

    // Frames before PLAY go nowhere.
    c.frame(&[0, 0, 0, 1, 0x65, 0x88], 0);
    assert_eq!(c.poll_output(), None);

    let (r, then) = ask(
        &mut c,
        &format!("PLAY rtsp://127.0.0.1:8554/cam/ RTSP/1.0\nCSeq: 4\nSession: {id}\nRange: npt=0.000-"),
    );
    assert!(r.starts_with("RTSP/1.0 200 OK"), "{r}");
    let info = header(&r, "RTP-Info").unwrap();
    assert!(
        info.starts_with("url=rtsp://127.0.0.1:8554/cam/trackID=0;seq="),
        "{info}"
    );
    assert_eq!(then, [Output::Play { stream: "cam".into() }]);
    assert!(c.playing());

    // A frame: RTP on channel 4, the sequence RTP-Info named, 90 kHz time.
    c.frame(&[0, 0, 0, 1, 0x65, 0x88, 0x84], 1_000_000_000);
    let b = written(c.poll_output());
    assert_eq!(&b[..4], &[b'$', 4, 0, 15]);
    let seq: u16 = info.rsplit('=').next().unwrap().parse().unwrap();
    assert_eq!(u16::from_be_bytes([b[6], b[7]]), seq);
    assert_eq!(b[5], 0x80 | 96, "marker and payload type");
    assert_eq!(&b[16..19], &[0x65, 0x88, 0x84]);
    let t1 = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    // With the first frame, a sender report on the RTCP channel: same SSRC,
    // same RTP time, one packet of 3 bytes so far.
    let sr = &b[19..];
    assert_eq!((sr[0], sr[1]), (b'$', 5));
    assert_eq!(usize::from(u16::from_be_bytes([sr[2], sr[3]])), sr.len() - 4);
    let sr = &sr[4..];
    assert_eq!(sr[1], 200);
    assert_eq!(&sr[4..8], &b[12..16], "the SSRC");
    assert_eq!(u32::from_be_bytes(sr[16..20].try_into().unwrap()), t1);
    assert_eq!(&sr[20..28], &[0, 0, 0, 1, 0, 0, 0, 3]);
    c.frame(&[0, 0, 0, 1, 0x41, 0x9a], 1_000_000_000 + 1_000_000_000 / 30);
    let b = written(c.poll_output());
    assert_eq!(u32::from_be_bytes([b[8], b[9], b[10], b[11]]).wrapping_sub(t1), 3000);
    assert_eq!(b.len(), 4 + 12 + 2, "no report 33 ms later");
    c.frame(&[0, 0, 0, 1, 0x41, 0x9a], 6_000_000_000);
    let b = written(c.poll_output());
    assert_eq!(b[18 + 1], 5, "a report 5 s later");

    // Keep-alive, then the end.
    let (r, _) = ask(
        &mut c,
        &format!("GET_PARAMETER rtsp://127.0.0.1:8554/cam/ RTSP/1.0\nCSeq: 5\nSession: {id}"),
    );
    assert!(r.starts_with("RTSP/1.0 200 OK"), "{r}");
    let (r, then) = ask(
        &mut c,
        &format!("TEARDOWN rtsp://127.0.0.1:8554/cam/ RTSP/1.0\nCSeq: 6\nSession: {id}"),
    );
    assert!(r.starts_with("RTSP/1.0 200 OK"), "{r}");
    assert_eq!(then, [Output::Stop]);
    assert!(!c.playing());
}

#[test]
fn refusals_name_the_problem_in_the_status() {
    let mut c = Connection::new(1);
    let status = |c: &mut Connection, req: &str| ask(c, req).0.lines().next().unwrap().to_owned();
    assert_eq!(
        status(&mut c, "DESCRIBE rtsp://h/none RTSP/1.0\nCSeq: 1"),
        "RTSP/1.0 404 Not Found"
    );
    assert_eq!(
        status(&mut c, "DESCRIBE * RTSP/1.0\nCSeq: 2"),
        "RTSP/1.0 400 Bad Request"
    );
    assert_eq!(
        status(
            &mut c,
            "SETUP rtsp://h/cam/trackID=0 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP;unicast;client_port=5000-5001"
        ),
        "RTSP/1.0 461 Unsupported Transport"
    );
    assert_eq!(
        status(&mut c, "PLAY rtsp://h/cam RTSP/1.0\nCSeq: 4\nSession: NOPE"),
        "RTSP/1.0 454 Session Not Found"
    );
    assert_eq!(
        status(&mut c, "PLAY rtsp://h/cam RTSP/1.0\nCSeq: 5"),
        "RTSP/1.0 454 Session Not Found"
    );
    assert_eq!(
        status(&mut c, "RECORD rtsp://h/cam RTSP/1.0\nCSeq: 6"),
        "RTSP/1.0 501 Not Implemented"
    );
    assert_eq!(status(&mut c, "OPTIONS * RTSP/1.0"), "RTSP/1.0 400 Bad Request");
    // An H.265 stream at a path with a slash, over TCP with no channel named.
    let (r, _) = ask(
        &mut c,
        "SETUP rtsp://h/site/hevc/trackID=0 RTSP/1.0\nCSeq: 7\nTransport: RTP/AVP;unicast,RTP/AVP/TCP;unicast",
    );
    assert!(header(&r, "Transport").unwrap().contains("interleaved=0-1"), "{r}");
    // A second session on the same connection is not served.
    assert_eq!(
        status(
            &mut c,
            "SETUP rtsp://h/cam/trackID=0 RTSP/1.0\nCSeq: 8\nTransport: RTP/AVP/TCP;interleaved=2-3"
        ),
        "RTSP/1.0 459 Aggregate Operation Not Allowed"
    );
}

#[test]
fn garbage_closes_the_connection_after_a_response() {
    let mut c = Connection::new(1);
    c.receive(b"\x16\x03\x01\x02\x00 hello\r\n\r\n", &Cams);
    let Some(Output::Send(b)) = c.poll_output() else {
        panic!()
    };
    assert!(b.starts_with(b"RTSP/1.0 400 Bad Request\r\n"));
    assert!(matches!(c.poll_output(), Some(Output::Close { .. })));
    // Nothing more is read from it.
    c.receive(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", &Cams);
    assert_eq!(c.poll_output(), None);

    let mut c = Connection::new(1);
    c.receive(&vec![b'A'; 10_000], &Cams);
    let Some(Output::Send(b)) = c.poll_output() else {
        panic!()
    };
    assert!(b.starts_with(b"RTSP/1.0 400 Bad Request\r\n"));
    let Some(Output::Close { reason }) = c.poll_output() else {
        panic!()
    };
    assert!(reason.contains("longer than"), "{reason}");
}

#[test]
fn urls_and_transports() {
    assert_eq!(path_of("rtsp://h:8554/cam"), Some("cam"));
    assert_eq!(path_of("rtsp://h/a/b/?x=1"), Some("a/b"));
    assert_eq!(path_of("rtsp://h"), Some(""));
    assert_eq!(path_of("*"), None);
    let t = |h: &str, udp: bool| choose_transport(h, udp);
    assert_eq!(t("RTP/AVP/TCP;unicast;interleaved=6-7", false), Some(Transport::Tcp(6)));
    assert_eq!(t("RTP/AVP;unicast;client_port=1-2", false), None);
    assert_eq!(
        t("RTP/AVP;unicast;client_port=5000-5001", true),
        Some(Transport::Udp(5000, 5001))
    );
    assert_eq!(
        t("RTP/AVP/UDP;unicast;client_port=5000", true),
        Some(Transport::Udp(5000, 5001))
    );
    assert_eq!(t("RTP/AVP;multicast;client_port=5000-5001", true), None);
    assert_eq!(t("RTP/AVP;unicast;client_port=0-1", true), None);
    assert_eq!(
        t("RTP/AVP;multicast,RTP/AVP/TCP;unicast", true),
        Some(Transport::Tcp(0)),
        "the first that can be served"
    );
    assert_eq!(t("RTP/AVP/TCP;interleaved=x", false), Some(Transport::Tcp(0)));
    assert_eq!(session_id(" ABC ;timeout=60"), "ABC");
    assert_ne!(mix(1), mix(2));
}

/// The same catalog, with UDP ports bound.
struct WithUdp;

impl Catalog for WithUdp {
    fn describe(&self, path: &str) -> Option<StreamDesc> {
        Cams.describe(path)
    }

    fn udp_ports(&self) -> Option<(u16, u16)> {
        Some((6970, 6971))
    }
}

#[test]
fn rtp_and_reports_as_datagrams_to_the_clients_ports() {
    let mut c = Connection::new(5);
    let wire = "SETUP rtsp://h/cam/trackID=0 RTSP/1.0\r\nCSeq: 1\r\n\
        Transport: RTP/AVP;unicast;client_port=5000-5001;destination=10.9.9.9\r\n\r\n";
    c.receive(wire.as_bytes(), &WithUdp);
    let Some(Output::Send(r)) = c.poll_output() else {
        panic!()
    };
    let r = String::from_utf8(r.to_vec()).unwrap();
    let t = header(&r, "Transport").unwrap();
    assert!(
        t.starts_with("RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc="),
        "{t}"
    );
    let id = session_id(header(&r, "Session").unwrap()).to_owned();
    c.receive(
        format!("PLAY rtsp://h/cam RTSP/1.0\r\nCSeq: 2\r\nSession: {id}\r\n\r\n").as_bytes(),
        &WithUdp,
    );
    assert!(matches!(c.poll_output(), Some(Output::Send(_))));
    assert_eq!(c.poll_output(), Some(Output::Play { stream: "cam".into() }));
    assert!(c.playing() && !c.interleaved());
    let mut big = vec![0, 0, 0, 1, 0x65];
    big.extend(std::iter::repeat_n(0x22, 3000));
    c.frame(&big, 1_000_000_000);
    let Some(Output::Datagrams { port, rtcp, packets }) = c.poll_output() else {
        panic!()
    };
    assert_eq!((port, rtcp, packets.len()), (5000, false, 3), "three FU-A packets");
    assert!(packets[2][1] & 0x80 != 0, "the marker on the last");
    let Some(Output::Datagrams { port, rtcp, packets }) = c.poll_output() else {
        panic!()
    };
    assert_eq!((port, rtcp, packets[0][1]), (5001, true, 200));
}

#[test]
fn pause_stops_the_frames_and_play_starts_them_again() {
    let mut c = Connection::new(3);
    let (r, _) = ask(
        &mut c,
        "SETUP rtsp://h/cam/trackID=0 RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1",
    );
    let id = session_id(header(&r, "Session").unwrap()).to_owned();
    let (_, then) = ask(&mut c, &format!("PLAY rtsp://h/cam RTSP/1.0\nCSeq: 2\nSession: {id}"));
    assert_eq!(then, [Output::Play { stream: "cam".into() }]);
    // PLAY again while playing: answered, nothing more to start.
    let (r, then) = ask(&mut c, &format!("PLAY rtsp://h/cam RTSP/1.0\nCSeq: 3\nSession: {id}"));
    assert!(r.starts_with("RTSP/1.0 200 OK") && then.is_empty(), "{r} {then:?}");
    let (r, then) = ask(&mut c, &format!("PAUSE rtsp://h/cam RTSP/1.0\nCSeq: 4\nSession: {id}"));
    assert!(r.starts_with("RTSP/1.0 200 OK"), "{r}");
    assert_eq!(then, [Output::Stop]);
    c.frame(&[0, 0, 0, 1, 0x65, 0x88], 0);
    assert_eq!(c.poll_output(), None, "no frames while paused");
    let (r, then) = ask(&mut c, &format!("PLAY rtsp://h/cam RTSP/1.0\nCSeq: 5\nSession: {id}"));
    assert!(r.starts_with("RTSP/1.0 200 OK"), "{r}");
    assert_eq!(then, [Output::Play { stream: "cam".into() }]);
    c.frame(&[0, 0, 0, 1, 0x65, 0x88], 0);
    assert!(!written(c.poll_output()).is_empty());
    // A SETUP while playing is refused.
    let (r, _) = ask(
        &mut c,
        &format!("SETUP rtsp://h/cam/trackID=0 RTSP/1.0\nCSeq: 6\nSession: {id}\nTransport: RTP/AVP/TCP"),
    );
    assert!(r.starts_with("RTSP/1.0 455"), "{r}");
}

#[test]
fn a_connection_closed_while_playing_says_nothing_more() {
    let mut c = Connection::new(4);
    let (r, _) = ask(
        &mut c,
        "SETUP rtsp://h/cam/trackID=0 RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1",
    );
    let id = session_id(header(&r, "Session").unwrap()).to_owned();
    let (_, then) = ask(&mut c, &format!("PLAY rtsp://h/cam RTSP/1.0\nCSeq: 2\nSession: {id}"));
    assert_eq!(then, [Output::Play { stream: "cam".into() }]);
    // Garbage closes it: the answer, stop, close; then frames go nowhere.
    c.receive(b"\x16\x03\x01 not rtsp\r\n\r\n", &Cams);
    let out: Vec<Output> = std::iter::from_fn(|| c.poll_output()).collect();
    assert!(
        matches!(out.as_slice(), [Output::Send(_), Output::Stop, Output::Close { .. }]),
        "{out:?}"
    );
    c.frame(&[0, 0, 0, 1, 0x65, 0x88], 0);
    assert_eq!(c.poll_output(), None, "a frame after close");
}

/// The Digest answer of `user` with `password` to the challenge in `resp`.
fn answer(resp: &str, method: &str, uri: &str, user: &str, password: &str) -> String {
    use md5::{Digest as _, Md5};
    let hex = |s: String| -> String { Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect() };
    let challenge = header(resp, "WWW-Authenticate").expect("a challenge");
    let nonce = challenge.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap();
    let ha1 = crate::auth::ha1(user, password);
    let r = hex(format!("{ha1}:{nonce}:{}", hex(format!("{method}:{uri}"))));
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"framewire\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\""
    )
}

#[test]
fn a_connection_that_requires_auth_challenges_and_closes_after_wrong_answers() {
    let uri = "rtsp://127.0.0.1:8554/cam";
    let mut c = Connection::new(5);
    c.require_auth();
    // OPTIONS needs nothing; DESCRIBE without credentials gets a challenge.
    let (r, _) = ask(&mut c, &format!("OPTIONS {uri} RTSP/1.0\nCSeq: 1"));
    assert!(r.starts_with("RTSP/1.0 200 OK"), "{r}");
    let (r, rest) = ask(&mut c, &format!("DESCRIBE {uri} RTSP/1.0\nCSeq: 2"));
    assert!(r.starts_with("RTSP/1.0 401 Unauthorized\r\nCSeq: 2"), "{r}");
    assert!(rest.is_empty() && c.user().is_none());
    let good = answer(&r, "DESCRIBE", uri, "ann", "secret");
    let (ok, _) = ask(&mut c, &format!("DESCRIBE {uri} RTSP/1.0\nCSeq: 3\n{good}"));
    assert!(ok.starts_with("RTSP/1.0 200 OK"), "{ok}");
    assert_eq!(c.user(), Some("ann"));
    // Each request carries its own answer: the DESCRIBE one does not SETUP.
    let (r2, _) = ask(
        &mut c,
        &format!("SETUP {uri}/trackID=0 RTSP/1.0\nCSeq: 4\n{good}\nTransport: RTP/AVP/TCP;interleaved=0-1"),
    );
    assert!(r2.starts_with("RTSP/1.0 401"), "{r2}");
    // Wrong passwords: the fifth wrong answer (with the SETUP's) closes
    // the connection.
    for n in 0..4 {
        let bad = answer(&r, "DESCRIBE", uri, "ann", "guess");
        let (r, rest) = ask(&mut c, &format!("DESCRIBE {uri} RTSP/1.0\nCSeq: {}\n{bad}", 10 + n));
        assert!(r.starts_with("RTSP/1.0 401"), "{r}");
        assert_eq!(
            rest.iter().any(|o| matches!(o, Output::Close { .. })),
            n == 3,
            "answer {n}: {rest:?}"
        );
    }
}

#[test]
fn requests_behind_the_one_that_closes_get_no_answer() {
    // Five wrong answers in one segment, and an OPTIONS after them: the
    // fifth closes the connection, and nothing is said after the close.
    let uri = "rtsp://127.0.0.1:8554/cam";
    let mut c = Connection::new(6);
    c.require_auth();
    let (r, _) = ask(&mut c, &format!("DESCRIBE {uri} RTSP/1.0\nCSeq: 1"));
    let bad = answer(&r, "DESCRIBE", uri, "ann", "guess");
    let mut wire = String::new();
    for n in 0..5 {
        wire += &format!("DESCRIBE {uri} RTSP/1.0\r\nCSeq: {}\r\n{bad}\r\n\r\n", 10 + n);
    }
    wire += &format!("OPTIONS {uri} RTSP/1.0\r\nCSeq: 20\r\n\r\n");
    c.receive(wire.as_bytes(), &Cams);
    let out: Vec<Output> = std::iter::from_fn(|| c.poll_output()).collect();
    let close = out.iter().position(|o| matches!(o, Output::Close { .. }));
    assert_eq!(close, Some(out.len() - 1), "{out:?}");
    assert_eq!(out.len(), 6, "five answers, then the close: {out:?}");
}

/// A catalog whose answer changes with each call (an MJPEG stream whose
/// pictures stop fitting RFC 2435 between DESCRIBE and SETUP).
struct Fickle(std::cell::Cell<u32>);

impl Catalog for Fickle {
    fn describe(&self, path: &str) -> Option<StreamDesc> {
        let n = self.0.get();
        self.0.set(n + 1);
        (path == "cam").then(|| {
            if n.is_multiple_of(2) {
                StreamDesc::of("cam", Encoding::Jpeg)
            } else {
                StreamDesc::new("cam~h264", Codec::H264)
            }
        })
    }
}

#[test]
fn setup_plays_what_describe_announced() {
    let cat = Fickle(std::cell::Cell::new(0));
    let mut c = Connection::new(3);
    let send = |c: &mut Connection, req: &str| {
        let wire = format!("{}\r\n\r\n", req.trim_end().replace('\n', "\r\n"));
        c.receive(wire.as_bytes(), &cat);
        let mut out = Vec::new();
        while let Some(o) = c.poll_output() {
            out.push(o);
        }
        out
    };
    let out = send(&mut c, "DESCRIBE rtsp://h/cam RTSP/1.0\nCSeq: 1");
    assert!(matches!(&out[0], Output::Send(b) if String::from_utf8_lossy(b).contains("JPEG/90000")));
    let setup = send(
        &mut c,
        "SETUP rtsp://h/cam/trackID=0 RTSP/1.0\nCSeq: 2\nTransport: RTP/AVP/TCP;interleaved=0-1",
    );
    let text = match &setup[0] {
        Output::Send(b) => String::from_utf8_lossy(b).into_owned(),
        o => panic!("{o:?}"),
    };
    let id = header(&text, "Session")
        .expect(&text)
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let out = send(&mut c, &format!("PLAY rtsp://h/cam RTSP/1.0\nCSeq: 3\nSession: {id}"));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Play { stream } if stream == "cam")),
        "SETUP took the catalog's new answer: {out:?}"
    );
}

#[test]
fn parts_left_after_a_short_write_are_the_rest_of_the_bytes() {
    let parts = Parts {
        heads: Bytes::from_static(b"AAABBBCC"),
        data: Bytes::from_static(b"0123456789"),
        layout: vec![(0..3, 0..4), (3..6, 0..0), (6..8, 6..10)],
    };
    let all = parts.to_vec();
    assert_eq!(all, b"AAA0123BBBCC6789");
    assert_eq!(parts.len(), all.len());
    for skip in 0..=all.len() {
        let rest = parts.clone().into_bytes_after(skip);
        assert!(rest.iter().all(|b| !b.is_empty()), "skip {skip}: {rest:?}");
        assert_eq!(rest.concat(), all[skip..], "skip {skip}");
    }
}
