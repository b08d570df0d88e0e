//! The live pushes over real sockets: the graph to 50 WebSocket clients
//! (time from a change to each client's receipt), previews as framewire
//! wire messages, MJPEG over HTTP, and the cross-origin refusal.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use framewire_proto::control::Request;
use framewire_proto::{Decoder, Format, Message};
use framewire_web::{WebConfig, WebServer};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn server(fake: Arc<common::Fake>) -> WebServer {
    let cfg = WebConfig::new("127.0.0.1:0".parse().unwrap());
    WebServer::bind(cfg, fake).await.unwrap()
}

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Client {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn next_graph(c: &mut Client) -> serde_json::Value {
    loop {
        match c.next().await.expect("socket open").unwrap() {
            Ws::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                // The alerts come on the same socket.
                if v["type"] == "alerts" {
                    continue;
                }
                assert_eq!(v["type"], "graph");
                return v["graph"].clone();
            }
            Ws::Ping(_) | Ws::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_changes_reach_50_clients_within_100_ms() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let fake = common::Fake::new();
        let srv = server(fake.clone()).await;
        let url = format!("ws://{}/ws/state", srv.local_addr());
        let mut clients = Vec::new();
        for _ in 0..50 {
            let mut c = connect(&url).await;
            assert_eq!(next_graph(&mut c).await["version"], 1);
            clients.push(c);
        }
        let mut rounds = Vec::new();
        for version in 2..=6u64 {
            let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(64);
            let mut waiting = Vec::new();
            for mut c in clients.drain(..) {
                let done_tx = done_tx.clone();
                waiting.push(tokio::spawn(async move {
                    let g = next_graph(&mut c).await;
                    let at = Instant::now();
                    done_tx.send((g["version"].as_u64().unwrap(), at)).await.unwrap();
                    c
                }));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let t0 = Instant::now();
            fake.graph_tx.send_replace(Arc::new(common::sample_graph(version)));
            let mut lat = Vec::new();
            for _ in 0..50 {
                let (v, at) = done_rx.recv().await.unwrap();
                assert_eq!(v, version);
                lat.push(at.duration_since(t0));
            }
            for w in waiting {
                clients.push(w.await.unwrap());
            }
            lat.sort();
            rounds.push((lat[25], lat[49]));
        }
        for (i, (p50, max)) in rounds.iter().enumerate() {
            println!(
                "push round {}: 50 clients, p50 {:.2} ms, max {:.2} ms",
                i + 1,
                p50.as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3
            );
            assert!(
                *max < Duration::from_millis(100),
                "round {}: slowest client after {max:?}",
                i + 1
            );
        }
        srv.shutdown().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn preview_is_stream_open_then_video_frames() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server(common::Fake::new()).await;
        let mut c = connect(&format!("ws://{}/ws/preview/cam/bars", srv.local_addr())).await;
        let dec = Decoder::new();
        let mut msgs = Vec::new();
        while msgs.len() < 4 {
            match c.next().await.unwrap().unwrap() {
                Ws::Binary(b) => {
                    let mut buf = BytesMut::from(&b[..]);
                    msgs.push(
                        dec.decode(&mut buf)
                            .unwrap()
                            .expect("one whole message per WebSocket message"),
                    );
                    assert!(buf.is_empty(), "exactly one message per WebSocket message");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let Message::ControlRequest(req) = &msgs[0] else {
            panic!("first is {:?}", msgs[0])
        };
        let Request::StreamOpen(open) = Request::decode(req).unwrap() else {
            panic!("not STREAM_OPEN")
        };
        assert_eq!(
            (req.channel, open.format, open.width, open.name.as_str()),
            (1, Format::Mjpeg, 64, "bars")
        );
        let mut last = None;
        for m in &msgs[1..] {
            let Message::VideoFrame(f) = m else {
                panic!("expected a frame, got {m:?}")
            };
            assert_eq!((f.channel, &f.data[..]), (1, common::JPEG));
            assert!(last.is_none_or(|l| f.sequence > l), "sequences grow");
            last = Some(f.sequence);
        }
        srv.shutdown().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn websockets_from_another_origin_are_refused() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server(common::Fake::new()).await;
        let url = format!("ws://{}/ws/state", srv.local_addr());
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut()
            .insert("origin", "http://evil.example".parse().unwrap());
        let err = tokio_tungstenite::connect_async(req).await.unwrap_err().to_string();
        assert!(err.contains("403"), "{err}");
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut()
            .insert("origin", format!("http://{}", srv.local_addr()).parse().unwrap());
        let (mut ok, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(next_graph(&mut ok).await["version"], 1);
        srv.shutdown().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn mjpeg_over_http_is_multipart_jpeg() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server(common::Fake::new()).await;
        let mut s = tokio::net::TcpStream::connect(srv.local_addr()).await.unwrap();
        s.write_all(
            format!(
                "GET /stream/cam/bars.mjpeg HTTP/1.1\r\nHost: {}\r\n\r\n",
                srv.local_addr()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // The body's chunks (chunked transfer encoding), once 3 are whole.
        let chunks = |g: &[u8]| -> Vec<Vec<u8>> {
            let Some(start) = g.windows(4).position(|w| w == b"\r\n\r\n") else {
                return vec![];
            };
            let (mut rest, mut out) = (&g[start + 4..], Vec::new());
            while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
                let n = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
                if rest.len() < eol + 2 + n + 2 {
                    break;
                }
                out.push(rest[eol + 2..eol + 2 + n].to_vec());
                rest = &rest[eol + 2 + n + 2..];
            }
            out
        };
        while chunks(&got).len() < 3 {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.contains("multipart/x-mixed-replace; boundary=framewire-frame"),
            "{text}"
        );
        let part = format!(
            "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            common::JPEG.len()
        );
        let chunks = chunks(&got);
        assert!(chunks[0].starts_with(b"--framewire-frame\r\n"), "{text}");
        // One picture a chunk, ending with the next part's boundary: a
        // browser shows it without waiting for the next picture.
        let mut ended = common::JPEG.to_vec();
        ended.extend_from_slice(b"\r\n--framewire-frame\r\n");
        for (i, c) in chunks.iter().enumerate() {
            let body = if i == 0 {
                &c[b"--framewire-frame\r\n".len()..]
            } else {
                &c[..]
            };
            assert!(body.starts_with(part.as_bytes()), "chunk {i}: {text}");
            assert!(
                body.ends_with(&ended),
                "chunk {i} does not end with the next boundary: {text}"
            );
        }
        srv.shutdown().await;
    })
    .await
    .unwrap();
}
