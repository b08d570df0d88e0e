//! The web server against clients that are slow, greedy or hostile
//! (docs/security.md, "The web server"): unfinished headers, connection
//! floods, stream floods, oversized WebSocket messages, foreign Host names,
//! cross-site requests, and the headers every answer carries. Each test
//! runs a real server on loopback with short limits.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use framewire_web::{WebConfig, WebLimits, WebServer};
use futures_util::{SinkExt, StreamExt};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A server with the test users (vera, otto, ada) and the given limits:
/// the server, the users' tokens and its state directory (removed when the
/// test ends).
async fn server(tag: &str, limits: WebLimits, hosts: &[&str]) -> (WebServer, [String; 3], TempDir) {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("fw-web-{tag}-"))
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_path_buf();
    let (users, tokens) = common::users();
    users.save(&dir.join(framewire_web::auth::USERS_FILE)).unwrap();
    let mut cfg = WebConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.state_dir = Some(dir);
    cfg.limits = limits;
    cfg.hosts = hosts.iter().map(|h| h.to_string()).collect();
    (WebServer::bind(cfg, common::Fake::new()).await.unwrap(), tokens, tmp)
}

/// A TCP connection from `from` (any 127.x address: each is its own client).
async fn dial(to: SocketAddr, from: [u8; 4]) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
    s.connect(to).await.unwrap()
}

/// What `GET /` from `from` gets once it is `want` (the server has seen
/// the connections opened or closed before), or the last answer after 5 s.
async fn ask_until(to: SocketAddr, from: [u8; 4], want: u16) -> (u16, String) {
    let mut last = (0, String::new());
    common::eventually(Duration::from_secs(5), async || {
        last = ask(to, from, &get("/", "127.0.0.1", "")).await;
        (last.0 == want).then_some(())
    })
    .await;
    last
}

/// Sends a whole request and reads the status line and headers.
async fn ask(to: SocketAddr, from: [u8; 4], request: &str) -> (u16, String) {
    let mut s = dial(to, from).await;
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("an answer in time")
            .unwrap();
        buf.extend_from_slice(&chunk[..n]);
        if n == 0 || buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn get(path: &str, host: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n{extra}connection: close\r\n\r\n")
}

/// Whether the server closed the connection (EOF or reset) within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 512];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline.into(), s.read(&mut b)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {} // an error answer before the close
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_headers_are_closed_in_time_while_others_are_answered() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut limits = WebLimits::default();
        limits.header_timeout = Duration::from_secs(1);
        limits.max_connections_per_address = 100;
        let (srv, _, _dir) = server("slowloris", limits, &[]).await;
        let addr = srv.local_addr();
        // 300 connections from three other addresses that send half a header.
        let mut slow = Vec::new();
        for i in 0..300 {
            let mut s = dial(addr, [127, 0, 0, 2 + (i % 3) as u8]).await;
            s.write_all(b"GET /api/graph HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
                .await
                .unwrap();
            slow.push(s);
        }
        // A normal request is answered at once all the same.
        let t = Instant::now();
        let (status, _) = ask(addr, [127, 0, 0, 1], &get("/", "127.0.0.1", "")).await;
        assert_eq!(status, 200);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "answered in {:?}",
            t.elapsed()
        );
        // Every unfinished header is closed within the timeout (and a bit).
        let t = Instant::now();
        for s in &mut slow {
            assert!(
                closed_within(s, Duration::from_secs(3)).await,
                "a slow header was kept open"
            );
        }
        assert!(t.elapsed() < Duration::from_secs(3), "closed after {:?}", t.elapsed());
        // A kept-alive connection that sends nothing more is closed too.
        let mut idle = dial(addr, [127, 0, 0, 1]).await;
        idle.write_all(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut b = vec![0u8; 64 * 1024];
        let n = idle.read(&mut b).await.unwrap();
        assert!(n > 0);
        assert!(
            closed_within(&mut idle, Duration::from_secs(4)).await,
            "an idle keep-alive connection was kept open"
        );
        srv.shutdown().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_caps_get_503_and_the_rest_still_work() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut limits = WebLimits::default();
        limits.max_connections_per_address = 8;
        limits.max_connections = 12;
        let (srv, _, _dir) = server("conncap", limits, &[]).await;
        let addr = srv.local_addr();
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(dial(addr, [127, 0, 0, 2]).await);
        }
        // The ninth from that address is refused with a reason (once the
        // server holds the eight)...
        let (status, text) = ask_until(addr, [127, 0, 0, 2], 503).await;
        assert_eq!(status, 503, "{text}");
        assert!(text.to_ascii_lowercase().contains("retry-after"), "{text}");
        // ...while another address is served,
        assert_eq!(ask(addr, [127, 0, 0, 1], &get("/", "127.0.0.1", "")).await.0, 200);
        // until the total cap is reached.
        for _ in 0..4 {
            held.push(dial(addr, [127, 0, 0, 3]).await);
        }
        assert_eq!(ask_until(addr, [127, 0, 0, 1], 503).await.0, 503);
        // Closing connections gives their places back.
        held.clear();
        assert_eq!(ask_until(addr, [127, 0, 0, 2], 200).await.0, 200);
        srv.shutdown().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_are_capped_per_user_and_websocket_messages_are_small() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut limits = WebLimits::default();
        limits.max_streams_per_user = 2;
        limits.max_streams = 3;
        let (srv, tokens, _dir) = server("streams", limits, &[]).await;
        let addr = srv.local_addr();
        let auth = |i: usize| format!("authorization: Bearer {}\r\n", tokens[i]);
        let open = |i: usize| {
            let a = auth(i);
            async move {
                let mut s = dial(addr, [127, 0, 0, 1]).await;
                s.write_all(get("/stream/cam/bars.mjpeg", "127.0.0.1", &a).as_bytes())
                    .await
                    .unwrap();
                let mut b = vec![0u8; 4096];
                let n = s.read(&mut b).await.unwrap();
                let head = String::from_utf8_lossy(&b[..n]).into_owned();
                (head.split(' ').nth(1).unwrap_or("").to_owned(), s)
            }
        };
        let (a1, s1) = open(0).await;
        let (a2, _s2) = open(0).await;
        assert_eq!((a1.as_str(), a2.as_str()), ("200", "200"));
        let (a3, _) = open(0).await;
        assert_eq!(a3, "429", "a third stream of one user");
        let (b1, _s3) = open(1).await;
        assert_eq!(b1, "200", "another user");
        let (b2, _) = open(1).await;
        assert_eq!(b2, "429", "over the total");
        drop(s1);
        let mut again = String::new();
        let _s4 = common::eventually(Duration::from_secs(5), async || {
            let (code, s) = open(0).await;
            again = code;
            (again == "200").then_some(s)
        })
        .await;
        assert_eq!(again, "200", "a closed stream gives its place back");

        // A WebSocket client that sends a big message is cut off.
        let url = format!("ws://{addr}/ws/state");
        let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {}", tokens[0]).parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let _graph = ws.next().await.unwrap().unwrap();
        let _ = ws
            .send(tokio_tungstenite::tungstenite::Message::Binary(
                vec![0u8; 1 << 20].into(),
            ))
            .await;
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match ws.next().await {
                    None | Some(Err(_)) | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(end.is_ok(), "the socket stayed open after a 1 MiB message");
        srv.shutdown().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_names_are_refused_with_users_too() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (srv, _, _dir) = server("hosts", WebLimits::default(), &["ctl.lab.example"]).await;
        let addr = srv.local_addr();
        let login = |host: &str| {
            let body = r#"{"name":"vera","password":"vera-password"}"#;
            format!(
                "POST /api/login HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let (status, text) = ask(addr, [127, 0, 0, 1], &login("evil.example")).await;
        assert_eq!(status, 403, "{text}");
        assert_eq!(ask(addr, [127, 0, 0, 1], &login("ctl.lab.example:7480")).await.0, 200);
        assert_eq!(ask(addr, [127, 0, 0, 1], &login("127.0.0.1")).await.0, 200);
        srv.shutdown().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_page_of_another_site_cannot_use_an_open_server() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut cfg = WebConfig::new("127.0.0.1:0".parse().unwrap());
        cfg.limits = WebLimits::default();
        let srv = WebServer::bind(cfg, common::Fake::new()).await.unwrap();
        let addr = srv.local_addr();
        let host = addr.to_string();
        // <img src="http://127.0.0.1:PORT/stream/..."> on another site.
        let img = "sec-fetch-site: cross-site\r\nsec-fetch-mode: no-cors\r\nsec-fetch-dest: image\r\n";
        assert_eq!(
            ask(addr, [127, 0, 0, 1], &get("/stream/cam/bars.mjpeg", &host, img))
                .await
                .0,
            403
        );
        // Probing names through fetch() from another origin.
        let probe = "origin: http://evil.example\r\n";
        assert_eq!(
            ask(addr, [127, 0, 0, 1], &get("/api/nodes/cam", &host, probe)).await.0,
            403
        );
        // The same from the page itself, or from ffplay (no browser headers), works.
        let own = "sec-fetch-site: same-origin\r\n";
        assert_eq!(
            ask(addr, [127, 0, 0, 1], &get("/api/nodes/cam", &host, own)).await.0,
            200
        );
        assert_eq!(
            ask(addr, [127, 0, 0, 1], &get("/api/nodes/cam", &host, "")).await.0,
            200
        );
        // A link from elsewhere to the page still opens it.
        let nav = "sec-fetch-site: cross-site\r\nsec-fetch-mode: navigate\r\n";
        assert_eq!(ask(addr, [127, 0, 0, 1], &get("/", &host, nav)).await.0, 200);
        srv.shutdown().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (srv, tokens, _dir) = server("headers", WebLimits::default(), &[]).await;
        let addr = srv.local_addr();
        let auth = format!("authorization: Bearer {}\r\n", tokens[0]);
        let cases: [(&str, &str, u16); 6] = [
            ("/", "", 200),
            ("/assets/app.js", "", 200),
            ("/api/session", &auth, 200),
            ("/api/tokens", &auth, 403),
            ("/stream/cam/bars.mjpeg", &auth, 200),
            ("/nope", "", 404),
        ];
        for (path, extra, want) in cases {
            let (status, head) = ask(addr, [127, 0, 0, 1], &get(path, "127.0.0.1", extra)).await;
            let head = head.to_ascii_lowercase();
            assert_eq!(status, want, "{path}: {head}");
            for h in ["x-content-type-options: nosniff", "referrer-policy: no-referrer", "x-frame-options: deny"] {
                assert!(head.contains(h), "{path} lacks {h}: {head}");
            }
            assert!(head.contains("base-uri 'none'"), "{path}: CSP without base-uri: {head}");
            if path.starts_with("/api/") {
                assert!(head.contains("cache-control: no-store"), "{path}: {head}");
            }
            if path == "/" {
                assert!(head.contains("form-action 'self'"), "{head}");
            }
        }
        // The login answer (it sets the session) is never stored either.
        let body = r#"{"name":"vera","password":"vera-password"}"#;
        let (status, head) = ask(
            addr,
            [127, 0, 0, 1],
            &format!(
                "POST /api/login HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        assert_eq!(status, 200);
        assert!(head.to_ascii_lowercase().contains("cache-control: no-store"), "{head}");
        srv.shutdown().await;
    })
    .await
    .unwrap();
}

#[allow(dead_code)]
fn _assert_send(_: Arc<common::Fake>) {}
