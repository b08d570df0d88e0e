//! The `rtsp` source against an RTSP server that is not ours (GStreamer's,
//! crates/framewire/tests/tools/rtsp_server.py): H.264, H.265 and MJPEG
//! over TCP and UDP, with Digest authentication; camera time as capture
//! time; a camera that goes away, wedges, or comes back; and hostile
//! servers (garbage, a huge SDP, truncated RTP packets), each with a clear
//! reason while the node's other streams keep flowing.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::media::*;
use common::*;
use framewire_media::h26x::Codec;
use framewire_proto::{EventReason, Format, Message, StreamEvent, SubscribeParams};

/// Frames of a 30 fps camera, by their capture times: consecutive
/// sequence numbers are 1/30 s apart (the camera's clock, not arrival).
/// The map moves its anchor when a frame arrives sooner after capture than
/// any before (a busy machine delays the first ones): such a step is
/// backwards, and there are few.
fn check_camera_time(got: &Got) {
    let (mut pairs, mut steps) = (0, Vec::new());
    for w in got.frames.windows(2) {
        // The map settles on the quickest frame of the session's first few.
        if w[0].sequence > 15 && w[1].sequence == w[0].sequence + 1 && !w[1].flags.is_discontinuity() {
            let d = w[1].timestamp_ns.wrapping_sub(w[0].timestamp_ns) as i64;
            assert!(
                d < 33_333_333 + 1_000_000,
                "frames {} and {} are {d} ns apart",
                w[0].sequence,
                w[1].sequence
            );
            if d < 33_333_333 - 1_000_000 {
                steps.push((w[1].sequence, d));
            }
            pairs += 1;
        }
    }
    assert!(pairs >= 20, "only {pairs} consecutive frames");
    assert!(
        steps.len() <= 3,
        "frames and their spacing in ns, off 1/30 s: {steps:?}"
    );
    let now = framewire_net::now_ns();
    let last = got.frames.last().unwrap().timestamp_ns;
    assert!(
        now.abs_diff(last) < 2_000_000_000,
        "capture time {last} is far from now {now}"
    );
}

/// The benchmark's cameras (`framewire bench ingest`) play a pre-encoded
/// clip in a loop: a client sees one unbroken stream across the loop's
/// seams, every frame in order, decodable, at the camera's regular pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_playing_a_clip_in_a_loop_is_one_unbroken_stream() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = temp_dir("rtsp-clip");
        let port = free_port();
        // One second: two groups of 15 frames, then again.
        let _server = rtsp_server_with(port, "h264", &["--clip", "1"]);
        let node = node_with("test:rtsp", &format!("rtsp:cam,url=rtsp://127.0.0.1:{port}/cam"));
        wait_frames(node.addr, "cam", Duration::from_secs(30)).await;
        let got = collect(node.addr, "cam", Duration::from_secs(20), |g| g.frames.len() >= 100).await;
        assert!(got.frames.len() >= 100, "{} frames", got.frames.len());
        for w in got.frames.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence + 1, "a gap after {}", w[0].sequence);
            assert!(!w[1].flags.is_discontinuity(), "{}: {:?}", w[1].sequence, w[1].flags);
        }
        check_passthrough(&got, Codec::H264, (640, 360), &dir);
        check_camera_time(&got);
    })
    .await
    .expect("within 90 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_in_h264_h265_and_mjpeg_over_tcp_and_udp_with_digest() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let dir = temp_dir("rtsp-cameras");
        let cred = dir.join("cam.cred");
        std::fs::write(&cred, "viewer:s3cr:et\n").unwrap();
        let cases = [
            ("h264", "tcp", "url"),
            ("h264", "udp", "file"),
            ("h265", "tcp", ""),
            ("mjpeg", "udp", ""),
        ];
        for (codec, transport, auth) in cases {
            let port = free_port();
            let _server = if auth.is_empty() {
                rtsp_server(port, codec)
            } else {
                rtsp_server_with(port, codec, &["--user", "viewer:s3cr:et"])
            };
            let spec = match auth {
                "url" => format!("rtsp:cam,url=rtsp://viewer:s3cr%3Aet@127.0.0.1:{port}/cam"),
                "file" => format!(
                    "rtsp:cam,url=rtsp://127.0.0.1:{port}/cam,credentials={}",
                    cred.display()
                ),
                _ => format!("rtsp:cam,url=rtsp://127.0.0.1:{port}/cam"),
            };
            let spec = format!("{spec},codec={codec},transport={transport}");
            let node = node_with("test:rtsp", &spec);
            wait_frames(node.addr, "cam", Duration::from_secs(30)).await;
            let got = collect(node.addr, "cam", Duration::from_secs(20), |g| g.frames.len() >= 45).await;
            assert!(
                got.frames.len() >= 45,
                "{codec}/{transport}: {} frames",
                got.frames.len()
            );
            match codec {
                "h264" => check_passthrough(&got, Codec::H264, (640, 360), &dir),
                "h265" => check_passthrough(&got, Codec::H265, (640, 360), &dir),
                _ => {
                    let open = got.opens.last().expect("a STREAM_OPEN");
                    assert_eq!((open.format, open.width, open.height), (Format::Mjpeg, 640, 360));
                    for f in &got.frames {
                        assert_eq!(framewire_net::jpeg_size(&f.data), Some((640, 360)));
                    }
                }
            }
            check_camera_time(&got);
            assert!(!node.log().contains("s3cr"), "the password is never logged");
        }

        // A wrong password: said plainly, no frames, and tried again.
        let port = free_port();
        let _server = rtsp_server_with(port, "h264", &["--user", "viewer:right"]);
        let node = node_with(
            "test:rtsp",
            &format!("rtsp:cam,url=rtsp://viewer:wrong@127.0.0.1:{port}/cam"),
        );
        assert!(node.wait_log("401", Duration::from_secs(20)), "{}", node.log());
        let s = stats(node.addr).await;
        assert!(s.inputs.iter().all(|i| i.frames_in == 0));

        // A codec the camera does not send: the reason names what it does.
        let node = node_with(
            "test:rtsp",
            &format!("rtsp:cam,url=rtsp://viewer:right@127.0.0.1:{port}/cam,codec=h265"),
        );
        assert!(
            node.wait_log("offers no h265 video (it offers: video h264)", Duration::from_secs(20)),
            "{}",
            node.log()
        );
    })
    .await
    .expect("within 150 s");
}

/// Waits for the next event of `want`'s kind on `c`, within `timeout`.
async fn wait_event(c: &mut framewire_net::Client, timeout: Duration, want: fn(&StreamEvent) -> bool) -> StreamEvent {
    let end = Instant::now() + timeout;
    loop {
        let left = end.checked_duration_since(Instant::now()).expect("the event in time");
        if let Some(Message::StreamEvent { event, .. }) = next(c, left).await
            && want(&event)
        {
            return event;
        }
    }
}

/// Frames of the node's test pattern come in while the camera is away.
async fn others_flow(addr: std::net::SocketAddr) {
    let got = collect(addr, "pattern", Duration::from_secs(5), |g| g.frames.len() >= 10).await;
    assert!(got.frames.len() >= 10, "the other stream stalled: {}", got.frames.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_wedges_or_goes_away_is_interrupted_and_resumed() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let port = free_port();
        let mut server = rtsp_server(port, "h264");
        let node = spawn_node(&[
            "--name",
            "test:rtsp",
            "--discovery",
            "off",
            "--no-shm",
            "--source",
            &format!("rtsp:cam,url=rtsp://127.0.0.1:{port}/cam,stall=2"),
            "--source",
            "test-pattern:pattern,size=160x120,fps=30",
        ]);
        wait_frames(node.addr, "cam", Duration::from_secs(30)).await;
        let mut c = client(node.addr, "test:viewer").await;
        subscribe(&mut c, "cam", SubscribeParams::default()).await;

        // Wedged: the server stops (SIGSTOP) with its connection open.
        let pid = server.0.id().to_string();
        Command::new("kill").args(["-STOP", &pid]).status().unwrap();
        let e = wait_event(&mut c, Duration::from_secs(15), |e| {
            matches!(e, StreamEvent::Interrupted(_))
        })
        .await;
        let StreamEvent::Interrupted(info) = e else {
            unreachable!()
        };
        assert_eq!(info.reason, EventReason::Stalled, "{info:?}");
        assert!(info.message.contains("no frame from the camera"), "{info:?}");
        others_flow(node.addr).await;
        Command::new("kill").args(["-CONT", &pid]).status().unwrap();
        wait_event(&mut c, Duration::from_secs(20), |e| {
            matches!(e, StreamEvent::Resumed(_))
        })
        .await;
        let f = loop {
            if let Some(Message::VideoFrame(f)) = next(&mut c, Duration::from_secs(10)).await {
                break f;
            }
        };
        assert!(f.flags.is_keyframe() && f.flags.is_discontinuity(), "{:?}", f.flags);

        // Gone: the server is killed, then started again on its port.
        drop(server);
        let e = wait_event(&mut c, Duration::from_secs(15), |e| {
            matches!(e, StreamEvent::Interrupted(_))
        })
        .await;
        let StreamEvent::Interrupted(info) = e else {
            unreachable!()
        };
        assert!(!info.message.is_empty(), "{info:?}");
        others_flow(node.addr).await;
        server = rtsp_server(port, "h264");
        wait_event(&mut c, Duration::from_secs(20), |e| {
            matches!(e, StreamEvent::Resumed(_))
        })
        .await;
        let f = loop {
            if let Some(Message::VideoFrame(f)) = next(&mut c, Duration::from_secs(10)).await {
                break f;
            }
        };
        assert!(f.flags.is_keyframe() && f.flags.is_discontinuity(), "{:?}", f.flags);
        drop(server);
        assert!(!node.log().contains("panicked"), "{}", node.log());
    })
    .await
    .expect("within 120 s");
}

/// A server on `listener` that answers every connection with `answer`.
fn hostile_server(listener: TcpListener, answer: fn(&mut TcpStream)) {
    std::thread::spawn(move || {
        for mut s in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || answer(&mut s));
        }
    });
}

/// Reads one RTSP request; its CSeq.
fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 {
            return None;
        }
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("CSeq:").map(|v| v.trim().to_owned()))
}

fn garbage(s: &mut TcpStream) {
    let _ = read_request(s);
    let mut x = 0x2545_f491_u32;
    for _ in 0..200 {
        let chunk: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        if s.write_all(&chunk).is_err() {
            return;
        }
    }
}

fn huge_sdp(s: &mut TcpStream) {
    let Some(cseq) = read_request(s) else { return };
    let head = format!(
        "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Length: 4000000000\r\n\r\nv=0\r\n"
    );
    if s.write_all(head.as_bytes()).is_err() {
        return;
    }
    let filler = vec![b'a'; 1 << 20];
    // Up to 4 GB, as announced, while the client reads.
    for _ in 0..4000 {
        if s.write_all(&filler).is_err() {
            return;
        }
    }
}

/// Relays a connection to `upstream`, cutting to a third of its length
/// every fifth RTP packet the server sends interleaved whose H.264 NAL
/// unit type `cut` picks (its RTSP messages pass whole).
fn truncating_relay(listener: TcpListener, upstream: u16, cut: fn(u8) -> bool) {
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (mut c_rx, mut s_tx) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_rx, &mut s_tx);
            });
            let (mut s_rx, mut c_tx) = (server, client);
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                let mut n_rtp = 0u64;
                loop {
                    let Ok(n) = s_rx.read(&mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    loop {
                        if buf.first() == Some(&b'$') && buf.len() >= 4 {
                            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                            if buf.len() < 4 + len {
                                break;
                            }
                            let mut pkt: Vec<u8> = buf.drain(..4 + len).collect();
                            let picked = pkt[1] == 0 && len > 30 && cut(pkt[4 + 12] & 0x1f);
                            n_rtp += u64::from(picked);
                            if picked && n_rtp.is_multiple_of(5) {
                                let keep = 12 + (len - 12) / 3;
                                pkt.truncate(4 + keep);
                                pkt[2..4].copy_from_slice(&u16::try_from(keep).unwrap().to_be_bytes());
                            }
                            if c_tx.write_all(&pkt).is_err() {
                                return;
                            }
                        } else if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            let body = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if buf.len() < end + 4 + body {
                                break;
                            }
                            let msg: Vec<u8> = buf.drain(..end + 4 + body).collect();
                            if c_tx.write_all(&msg).is_err() {
                                return;
                            }
                        } else {
                            break;
                        }
                    }
                }
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_servers_get_a_reason_and_a_retry_and_hurt_nothing_else() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let garbage_at = TcpListener::bind("127.0.0.1:0").unwrap();
        let huge_at = TcpListener::bind("127.0.0.1:0").unwrap();
        let cut_at = TcpListener::bind("127.0.0.1:0").unwrap();
        let bad_sps_at = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = |l: &TcpListener| l.local_addr().unwrap().port();
        let (g, h, t, b) = (port(&garbage_at), port(&huge_at), port(&cut_at), port(&bad_sps_at));
        hostile_server(garbage_at, garbage);
        hostile_server(huge_at, huge_sdp);
        let real = free_port();
        let _server = rtsp_server(real, "h264");
        // Every fifth fragment of a slice (FU-A) cut; every fifth SPS.
        truncating_relay(cut_at, real, |t| t == 28);
        truncating_relay(bad_sps_at, real, |t| t == 7);
        let node = spawn_node(&[
            "--name",
            "test:rtsp",
            "--discovery",
            "off",
            "--no-shm",
            "--source",
            &format!("rtsp:garbage,url=rtsp://127.0.0.1:{g}/cam"),
            "--source",
            &format!("rtsp:huge,url=rtsp://127.0.0.1:{h}/cam"),
            "--source",
            &format!("rtsp:cut,url=rtsp://127.0.0.1:{t}/cam"),
            "--source",
            &format!("rtsp:badsps,url=rtsp://127.0.0.1:{b}/cam"),
            "--source",
            "test-pattern:pattern,size=160x120,fps=30",
        ]);
        let pid = node.child.id();
        let start_rss = rss_mb(pid);
        let huge = "announced an RTSP message body of 4000000000 bytes";
        assert!(node.wait_log(huge, Duration::from_secs(20)), "{}", node.log());
        // Garbage, and a broken parameter set: the RTSP client says what
        // it is.
        for want in [
            "stream=garbage reason=DESCRIBE: RTSP framing error",
            "stream=badsps reason=Bad SPS",
        ] {
            assert!(node.wait_log(want, Duration::from_secs(20)), "{want}: {}", node.log());
        }
        // Truncated packets: the damaged pictures are dropped (or the
        // session is started again); what comes through decodes.
        if !node.wait_log("format stream=cut", Duration::from_secs(30)) {
            panic!("{}", node.log());
        }
        wait_frames(node.addr, "cut", Duration::from_secs(30)).await;
        let got = collect(node.addr, "cut", Duration::from_secs(20), |g| g.frames.len() >= 30).await;
        assert!(!got.frames.is_empty(), "frames of the damaged stream");
        let dir = temp_dir("rtsp-hostile");
        let (name, _, _, _, _) = probe(&got.frames, &dir.join("cut.h264"));
        assert_eq!(name, "h264");
        others_flow(node.addr).await;
        // The hostile ones are retried a few times.
        let retries = || {
            node.log()
                .lines()
                .filter(|l| l.contains("session ended") && l.contains("stream=huge"))
                .count()
        };
        eventually_async(Duration::from_secs(30), async || (retries() >= 2).then_some(())).await;
        assert!(retries() >= 2, "the huge-SDP server was tried {} times", retries());
        let grown = rss_mb(pid) - start_rss;
        assert!(grown < 64.0, "the node grew by {grown:.0} MB");
        others_flow(node.addr).await;
        assert!(!node.log().contains("panicked"), "{}", node.log());
    })
    .await
    .expect("within 120 s");
}
