//! The controller's web UI end to end, with real nodes and the real
//! controller: `framewire demo` serving the UI, previews as wire messages,
//! `framewire user` and `framewire graph` over the HTTP API, the loopback
//! rule, WHEP and HLS from a node. The browser tests are in browser.rs.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use framewire_proto::control::Request;
use framewire_proto::{Decoder, Format, Message};
use futures_util::StreamExt;

use common::demo::{BIN, add_user, demo, framewire};

#[tokio::test]
async fn demo_serves_the_graph_and_previews_as_wire_messages() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = common::temp_dir("web-demo");
        let d = demo(&dir);
        let base = d.url.trim_end_matches('/').to_owned();
        // Open mode (no users): the demo graph, with live figures, appears.
        let mut g = serde_json::Value::Null;
        let whole = common::eventually_async(Duration::from_secs(30), async || {
            let r = framewire_web::client::request(&base, "GET", "/api/graph", &[], b"", Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            g = serde_json::from_slice(&r.body).unwrap();
            let live = g["edges"].as_array().unwrap().iter().any(|e| {
                e["downstream"] == "demo:viewer" && e["state"] == "live" && e["fps"].as_f64().unwrap_or(0.0) > 1.0
            });
            let names: Vec<&str> = g["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|n| n["name"].as_str())
                .collect();
            (live && names.contains(&"demo:source") && names.contains(&"demo:archive")).then_some(())
        })
        .await;
        assert!(whole.is_some(), "demo graph incomplete: {g}\n{}", d.out.lock().unwrap());
        // A preview over the WebSocket: STREAM_OPEN, then JPEG frames.
        let ws_url = format!("{}/ws/preview/demo:relay/bars", base.replacen("http://", "ws://", 1));
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str()).await.unwrap();
        let dec = Decoder::new();
        let mut frames = 0;
        let mut open = None;
        while frames < 3 {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let mut buf = BytesMut::from(&m.into_data()[..]);
            match dec.decode(&mut buf).unwrap().unwrap() {
                Message::ControlRequest(r) => open = Some(Request::decode(&r).unwrap()),
                Message::VideoFrame(f) => {
                    assert!(open.is_some(), "a frame before STREAM_OPEN");
                    assert_eq!(&f.data[..2], b"\xff\xd8", "a JPEG");
                    frames += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let Some(Request::StreamOpen(o)) = open else {
            panic!("no STREAM_OPEN")
        };
        assert_eq!((o.format, o.width, o.height), (Format::Mjpeg, 320, 240));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn graph_apply_and_export_with_a_token() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = common::temp_dir("web-graph");
        let ds = dir.to_str().unwrap();
        add_user(&dir, "ada", "admin");
        add_user(&dir, "vera", "viewer");
        let (code, admin_token, err) = framewire(&["user", "token", "ada", "--state-dir", ds], "", &[]);
        assert_eq!(code, 0, "{err}");
        let (_, viewer_token, _) = framewire(&["user", "token", "vera", "--state-dir", ds], "", &[]);
        let d = demo(&dir);
        let url = d.url.trim_end_matches('/').to_owned();
        let file = dir.join("wanted.json.in");
        std::fs::write(
            &file,
            r#"{"edge": [{"from": "demo:source", "stream": "bars", "to": "demo:archive", "local_name": "direct"}]}"#,
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let with = |t: &str| vec![("FRAMEWIRE_URL", url.clone()), ("FRAMEWIRE_TOKEN", t.trim().to_owned())];
        let env = |v: &Vec<(&'static str, String)>| v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
        let run = |args: &[&str], e: &Vec<(&'static str, String)>| {
            let e = env(e);
            let refs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
            framewire(args, "", &refs)
        };
        // No token: refused, nothing changes.
        let (code, _, err) = run(&["graph", "apply", f], &vec![("FRAMEWIRE_URL", url.clone())]);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("401") && err.contains("token"), "{err}");
        // A viewer may not apply.
        let (code, _, err) = run(&["graph", "apply", f], &with(&viewer_token));
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("403"), "{err}");
        // An admin may.
        let (code, out, err) = run(&["graph", "apply", f], &with(&admin_token));
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("applied: 1 edge"), "{out}");
        let (code, out, err) = run(&["graph", "export"], &with(&viewer_token));
        assert_eq!(code, 0, "{err}");
        let exported: toml::Value = toml::from_str(&out).unwrap();
        assert_eq!(exported["edge"][0]["to"].as_str(), Some("demo:archive"), "{out}");
        assert_eq!(exported["edge"][0]["local_name"].as_str(), Some("direct"), "{out}");
        // A refused document says which edge and why, and changes nothing.
        std::fs::write(
            &file,
            r#"{"edge": [{"from": "demo:ghost", "stream": "bars", "to": "demo:archive"}]}"#,
        )
        .unwrap();
        let (code, _, err) = run(&["graph", "apply", f], &with(&admin_token));
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("edge 0") || err.contains("demo:ghost"), "{err}");
        let (_, out, _) = run(&["graph", "export", "--format", "json"], &with(&admin_token));
        assert!(out.contains("direct") && !out.contains("ghost"), "{out}");
        // Two people edit at once: Alice and Bob both export; Alice applies
        // her edit; Bob's, based on the older version, is refused and
        // changes nothing; with --force it goes through.
        let (_, alice, _) = run(&["graph", "export"], &with(&admin_token));
        assert!(alice.starts_with("# version: "), "{alice}");
        let bob = alice.clone();
        let alice_file = dir.join("alice.toml");
        std::fs::write(&alice_file, alice.replace("priority = 128", "priority = 200")).unwrap();
        let (code, out, err) = run(&["graph", "apply", alice_file.to_str().unwrap()], &with(&admin_token));
        assert_eq!(code, 0, "{out}{err}");
        let bob_file = dir.join("bob.toml");
        std::fs::write(&bob_file, bob.replace("priority = 128", "priority = 7")).unwrap();
        let (code, _, err) = run(&["graph", "apply", bob_file.to_str().unwrap()], &with(&admin_token));
        assert_eq!(code, 3, "{err}");
        assert!(
            err.contains("changed since version") && err.contains("--force"),
            "{err}"
        );
        let (_, now, _) = run(&["graph", "export"], &with(&admin_token));
        assert!(
            now.contains("priority = 200"),
            "Bob's stale write changed the graph:\n{now}"
        );
        let (code, out, err) = run(
            &["graph", "apply", "--force", bob_file.to_str().unwrap()],
            &with(&admin_token),
        );
        assert_eq!(code, 0, "{out}{err}");
        let (_, now, _) = run(&["graph", "export"], &with(&admin_token));
        assert!(now.contains("priority = 7"), "{now}");
        // Unreachable controller: exit 4.
        let (code, _, _) = run(
            &["graph", "export"],
            &vec![("FRAMEWIRE_URL", "http://127.0.0.1:1".into())],
        );
        assert_eq!(code, 4);
    })
    .await
    .unwrap();
}

#[test]
fn a_controller_without_users_refuses_a_public_web_address() {
    let dir = common::temp_dir("web-public");
    let mut c = Command::new(BIN)
        .args([
            "node",
            "--name",
            "t:ctl",
            "--listen",
            "127.0.0.1:0",
            "--controller",
            "--web",
            "0.0.0.0:0",
            "--discovery",
            "off",
        ])
        .arg("--state-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if common::eventually(Duration::from_secs(20), || c.try_wait().unwrap()).is_none() {
        let _ = c.kill();
        panic!("the node kept running with an open web UI on 0.0.0.0");
    }
    let o = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("no users configured") && err.contains("framewire user add"),
        "{err}"
    );
}

/// The push-latency measurement and the browser run do not overlap: a
/// headless Chromium on the same two cores would be measured too.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// 50 browsers on the state WebSocket of the real controller: the time from
/// an operator's wiring request to each client seeing the new edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiring_reaches_50_state_websockets_quickly() {
    let _alone = HEAVY.lock().await;
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = common::temp_dir("web-push");
        let d = demo(&dir);
        let base = d.url.trim_end_matches('/').to_owned();
        let ws_url = format!("{}/ws/state", base.replacen("http://", "ws://", 1));
        let mut clients = Vec::new();
        for _ in 0..50 {
            let (mut c, _) = tokio_tungstenite::connect_async(ws_url.as_str()).await.unwrap();
            let _ = c.next().await.unwrap().unwrap();
            clients.push(c);
        }
        let s = framewire_web::client::request(&base, "GET", "/api/session", &[], b"", Duration::from_secs(5))
            .await
            .unwrap();
        let csrf = serde_json::from_slice::<serde_json::Value>(&s.body).unwrap()["csrf"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut all = Vec::new();
        for round in 0..5 {
            let id = format!("demo:archive/p{round}");
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            let mut tasks = Vec::new();
            for mut c in clients.drain(..) {
                let (tx, id) = (tx.clone(), id.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let m = c.next().await.unwrap().unwrap();
                        let text = m.into_text().unwrap();
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                        // Alerts come on the same socket: only graphs have edges.
                        if v["graph"]["edges"]
                            .as_array()
                            .is_some_and(|es| es.iter().any(|e| e["id"] == id.as_str()))
                        {
                            tx.send(Instant::now()).await.unwrap();
                            return c;
                        }
                    }
                }));
            }
            let body =
                format!(r#"{{"from":"demo:source","stream":"bars","to":"demo:archive","local_name":"p{round}"}}"#);
            let t0 = Instant::now();
            let r = framewire_web::client::request(
                &base,
                "POST",
                "/api/edges",
                &[("content-type", "application/json"), ("x-csrf-token", &csrf)],
                body.as_bytes(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            assert_eq!(r.status, 201, "{}", r.text());
            let mut lat = Vec::new();
            for _ in 0..50 {
                lat.push(rx.recv().await.unwrap().duration_since(t0));
            }
            for t in tasks {
                clients.push(t.await.unwrap());
            }
            lat.sort();
            println!(
                "wiring round {round}: 50 clients saw the new edge after p50 {:.1} ms, max {:.1} ms",
                lat[25].as_secs_f64() * 1e3,
                lat[49].as_secs_f64() * 1e3
            );
            all.extend(lat);
        }
        all.sort();
        let (p50, max) = (all[all.len() / 2], all[all.len() - 1]);
        println!(
            "all rounds: p50 {:.1} ms, max {:.1} ms",
            p50.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
        // The design's figure is 100 ms, asked of the median here; the
        // slowest client of 250 gets five times that as slack for a busy
        // 2-core machine running a debug build (a descheduled moment).
        assert!(p50 < Duration::from_millis(100), "p50 {p50:?}");
        assert!(max < Duration::from_millis(500), "max {max:?}");
    })
    .await
    .unwrap();
}

/// A QOI stream and an H.264 stream reach the browser's preview and the
/// MJPEG route as JPEG (the controller transcodes QOI; the node decodes
/// H.264 in order as `live~mjpeg`), through `framewire node --controller
/// --web`.
#[tokio::test]
async fn non_jpeg_streams_preview_as_jpeg() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = common::temp_dir("web-qoi");
        let web = format!("127.0.0.1:{}", common::free_port());
        let node = common::spawn_node(&[
            "--name",
            "t:qoi",
            "--source",
            "test-pattern:pat,size=160x120,fps=10,format=qoi",
            "--source",
            "test-pattern:live,size=160x120,fps=10,format=h264",
            "--controller",
            "--web",
            &web,
            "--state-dir",
            dir.to_str().unwrap(),
            "--discovery",
            "off",
        ]);
        assert!(node.wait_log("web UI on", Duration::from_secs(20)), "{}", node.log());
        // The controller needs a moment to learn the node's streams.
        for stream in ["pat", "live"] {
            let url = format!("ws://{web}/ws/preview/t:qoi/{stream}");
            let ws = common::eventually_async(Duration::from_secs(20), async || {
                tokio_tungstenite::connect_async(url.as_str())
                    .await
                    .ok()
                    .map(|(c, _)| c)
            });
            let mut ws = ws
                .await
                .unwrap_or_else(|| panic!("no preview of t:qoi/{stream}:\n{}", node.log()));
            let dec = Decoder::new();
            let mut jpegs = 0;
            while jpegs < 2 {
                let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                let mut buf = BytesMut::from(&m.into_data()[..]);
                match dec.decode(&mut buf).unwrap().unwrap() {
                    Message::ControlRequest(r) => {
                        let Request::StreamOpen(o) = Request::decode(&r).unwrap() else {
                            panic!()
                        };
                        assert_eq!(
                            (o.format, o.width, o.height),
                            (Format::Mjpeg, 160, 120),
                            "{stream} rewritten to MJPEG"
                        );
                    }
                    Message::VideoFrame(f) => {
                        assert_eq!(
                            (&f.data[..2], &f.data[f.data.len() - 2..]),
                            (&b"\xff\xd8"[..], &b"\xff\xd9"[..])
                        );
                        jpegs += 1;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        // A browser that decodes H.264 itself gets the stream as it is:
        // the parameter sets in STREAM_OPEN, then every access unit from a
        // keyframe on.
        let url = format!("ws://{web}/ws/preview/t:qoi/live?codec=h264");
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
        let dec = Decoder::new();
        let mut units: Vec<framewire_proto::VideoFrame> = Vec::new();
        while units.len() < 20 {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let mut buf = BytesMut::from(&m.into_data()[..]);
            match dec.decode(&mut buf).unwrap().unwrap() {
                Message::ControlRequest(r) => {
                    let Request::StreamOpen(o) = Request::decode(&r).unwrap() else {
                        panic!()
                    };
                    assert_eq!((o.format, o.width, o.height), (Format::H264, 160, 120));
                    assert!(!o.codec_config.is_empty(), "the parameter sets");
                }
                Message::VideoFrame(f) => units.push(f),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(units[0].flags.is_keyframe(), "starts at a keyframe");
        for w in units.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence + 1, "every frame, in order");
        }
        // A codec it does not know is refused.
        let bad = format!("ws://{web}/ws/preview/t:qoi/live?codec=vp9");
        assert!(tokio_tungstenite::connect_async(bad.as_str()).await.is_err());

        // And as MJPEG over HTTP.
        let mut s = tokio::net::TcpStream::connect(&web).await.unwrap();
        s.write_all(format!("GET /stream/t:qoi/pat.mjpeg HTTP/1.1\r\nHost: {web}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        while got.windows(2).filter(|w| *w == b"\xff\xd8").count() < 2 {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&got).contains("Content-Type: image/jpeg"));
    })
    .await
    .unwrap();
}

/// A plain HTTP/1.1 request; the status and the body.
fn http(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// A node with `--web` and no controller serves its own streams: the
/// graph of itself, and WebRTC playback (WHEP) to a real WebRTC peer
/// (`str0m` as the client: ICE, DTLS, SRTP), H.264 from a keyframe on.
#[test]
fn a_node_without_a_controller_serves_its_streams_over_whep() {
    use str0m::change::SdpAnswer;
    use str0m::media::{Direction, MediaKind};
    use str0m::net::{Protocol, Receive};
    use str0m::{Candidate, Event, Input, Output, RtcConfig};
    let dir = common::temp_dir("web-node-whep");
    let web = format!("127.0.0.1:{}", common::free_port());
    let node = common::spawn_node(&[
        "--name",
        "t:whep",
        "--source",
        "test-pattern:cam,size=320x240,fps=15,format=h264",
        "--web",
        &web,
        "--state-dir",
        dir.to_str().unwrap(),
        "--discovery",
        "off",
    ]);
    assert!(node.wait_log("web UI on", Duration::from_secs(20)), "{}", node.log());
    // The graph is this node alone, and it is no controller.
    let mut graph = serde_json::Value::Null;
    common::eventually_every(Duration::from_secs(20), Duration::from_millis(200), || {
        let (status, _, body) = http(&web, "GET", "/api/graph", "", "");
        assert_eq!(status, 200, "{body}");
        graph = serde_json::from_str(&body).unwrap();
        graph["nodes"][0]["streams"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
            .then_some(())
    });
    let names: Vec<_> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].clone())
        .collect();
    assert_eq!(names, [serde_json::json!("t:whep")], "{graph}");
    assert_eq!(
        graph["nodes"][0]["functions"].as_u64().unwrap() & 0x8,
        0,
        "not a controller: {graph}"
    );

    // A WebRTC peer asks for the stream.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let mut rtc = RtcConfig::new().clear_codecs().enable_h264(true).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    // As the page does: the session's CSRF token (open mode on loopback).
    let (_, _, session) = http(&web, "GET", "/api/session", "", "");
    let session: serde_json::Value = serde_json::from_str(&session).unwrap();
    let headers = format!(
        "Content-Type: application/sdp\r\nx-csrf-token: {}\r\n",
        session["csrf"].as_str().unwrap()
    );
    let (status, head, body) = http(&web, "POST", "/whep/t:whep/cam", &headers, &offer.to_sdp_string());
    assert_eq!(status, 201, "{head}\n{body}\n{}", node.log());
    assert!(head.to_ascii_lowercase().contains("\nlocation: /whep/"), "{head}");
    let answer = SdpAnswer::from_sdp_string(&body).unwrap();
    rtc.sdp_api().accept_answer(pending, answer).unwrap();

    // Access units until 20 arrived, within 20 s.
    let (mut frames, mut first_nal_types) = (0, Vec::new());
    let mut buf = vec![0u8; 2000];
    let end = Instant::now() + Duration::from_secs(20);
    while frames < 20 {
        assert!(Instant::now() < end, "{frames} access units in 20 s\n{}", node.log());
        let timeout = match rtc.poll_output().unwrap() {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                sock.send_to(&t.contents, t.destination).unwrap();
                continue;
            }
            Output::Event(Event::MediaData(d)) => {
                if frames == 0 {
                    first_nal_types = framewire_codec::h26x::nal_units(&d.data)
                        .filter_map(|n| n.first().map(|b| b & 0x1f))
                        .collect();
                }
                frames += 1;
                continue;
            }
            Output::Event(_) => continue,
        };
        let wait = timeout
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        sock.set_read_timeout(Some(wait.min(Duration::from_millis(100))))
            .unwrap();
        let input = match sock.recv_from(&mut buf) {
            Ok((n, source)) => Input::Receive(
                Instant::now(),
                Receive::new(Protocol::Udp, source, local, &buf[..n]).unwrap(),
            ),
            Err(_) => Input::Timeout(Instant::now()),
        };
        rtc.handle_input(input).unwrap();
    }
    // The first picture is a keyframe with its parameter sets (SPS, PPS, IDR).
    for t in [7, 8, 5] {
        assert!(
            first_nal_types.contains(&t),
            "first access unit's NAL types {first_nal_types:?}"
        );
    }
}
