//! Deployment keys between real nodes on 127.0.0.1: the handshake of
//! docs/protocol.md ("HELLO and AUTH"), refusals, replays, and what an
//! unauthenticated peer gets (nothing but a refusal).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use framewire_codec::EncodeSpec;
use framewire_media::testpattern::TestPatternConfig;
use framewire_net::framed::{FramedRead, write_message};
use framewire_net::{
    Client, ClientIdentity, DeploymentKey, EdgeConfig, NetError, Node, NodeConfig, OpaquePortConfig, SourceConfig,
};
use framewire_proto::control::{Auth, AuthScheme, Hello, StreamState};
use framewire_proto::{
    Command, Decoder, DeliveryMode, Features, FunctionFlags, Message, PROTOCOL_VERSION, PixelFormat, Request, Response,
    Status, SubscribeParams,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn key(b: u8) -> DeploymentKey {
    DeploymentKey::from_bytes(&[b; 32]).unwrap()
}

fn pattern(name: &str) -> SourceConfig {
    SourceConfig::from(TestPatternConfig {
        name: name.into(),
        width: 32,
        height: 24,
        fps_num: 100,
        fps_den: 1,
        encode: EncodeSpec::raw(PixelFormat::Bgra),
    })
}

async fn source_node(k: Option<DeploymentKey>) -> Node {
    let mut cfg = NodeConfig::new("test:source", loopback());
    cfg.sources.push(pattern("bars"));
    cfg.key = k;
    Node::start(cfg).await.unwrap()
}

fn who(k: Option<DeploymentKey>) -> ClientIdentity {
    ClientIdentity::tool("test:client").with_key(k)
}

async fn connect(node: &Node, k: Option<DeploymentKey>) -> Result<Client, NetError> {
    Client::connect(&node.local_addr().to_string(), &who(k), Duration::from_secs(5)).await
}

/// Subscribes (retrying until the stream exists) and waits for `n` frames.
async fn receive_frames(client: &mut Client, stream: &str, n: usize) {
    let params = SubscribeParams {
        mode: DeliveryMode::Completeness,
        max_frames: 64,
        ..SubscribeParams::default()
    };
    let channel = loop {
        match client.subscribe(stream, params).await {
            Ok(c) => break c,
            Err(NetError::Remote {
                status: Status::NotFound,
                ..
            }) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("subscribe: {e}"),
        }
    };
    let mut got = 0;
    while got < n {
        match client.next_message().await.unwrap().expect("open") {
            Message::VideoFrame(f) if f.channel == channel => got += 1,
            Message::ControlRequest(req) if req.command == Command::StreamOpen => client.ack(&req).await.unwrap(),
            _ => {}
        }
    }
}

/// A raw connection: frames in and out by hand.
struct Raw {
    r: FramedRead<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Raw {
    async fn dial(node: &Node) -> Raw {
        let s = TcpStream::connect(node.local_addr()).await.unwrap();
        let (r, w) = s.into_split();
        Raw {
            r: FramedRead::new(r, Decoder::new()),
            w,
        }
    }

    async fn send(&mut self, m: &Message) {
        write_message(&mut self.w, m).await.unwrap();
    }

    async fn send_bytes(&mut self, b: &[u8]) {
        self.w.write_all(b).await.unwrap();
    }

    /// Next message, `None` at a clean close.
    async fn next(&mut self) -> Option<Message> {
        timeout(T, self.r.next())
            .await
            .expect("an answer in time")
            .ok()
            .flatten()
    }

    /// Expects a permission-denied response, then the close; returns its message.
    async fn expect_denied_then_close(&mut self) -> String {
        let msg = match self.next().await {
            Some(Message::ControlResponse(r)) => {
                assert_eq!(r.status, Status::PermissionDenied, "{r:?}");
                r.error_message().unwrap_or_default()
            }
            other => panic!("expected permission-denied, got {other:?}"),
        };
        assert!(self.next().await.is_none(), "the node closes after refusing");
        msg
    }
}

fn hello_msg(scheme: AuthScheme, nonce: Bytes, id: u16) -> Message {
    let h = Request::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        name: "test:raw".into(),
        site_id: 0,
        function_flags: FunctionFlags::SINK,
        features: Features(0),
        auth_scheme: scheme,
        nonce,
    });
    Message::ControlRequest(h.to_message(0, id).unwrap())
}

fn auth_msg(proof: Bytes, id: u16) -> Message {
    Message::ControlRequest(Request::Auth(Auth { proof }).to_message(0, id).unwrap())
}

/// Sends HELLO with `nonce`, returns the node's reply (its nonce and proof).
async fn raw_hello(raw: &mut Raw, nonce: &[u8]) -> framewire_proto::control::HelloReply {
    raw.send(&hello_msg(AuthScheme::HmacSha256, Bytes::copy_from_slice(nonce), 1))
        .await;
    match raw.next().await {
        Some(Message::ControlResponse(r)) if r.status == Status::Ok => match Response::decode(&r).unwrap() {
            Response::Hello(h) => h,
            other => panic!("{other:?}"),
        },
        other => panic!("expected a HELLO reply, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_key_both_ends_streams_flow_also_through_an_edge() {
    timeout(Duration::from_secs(30), async {
        let source = source_node(Some(key(1))).await;
        let mut client = connect(&source, Some(key(1))).await.unwrap();
        assert_eq!(client.peer().auth_scheme, AuthScheme::HmacSha256);
        receive_frames(&mut client, "bars", 5).await;

        // An edge between two keyed nodes, and a keyed client of the relay.
        let mut rcfg = NodeConfig::new("test:relay", loopback());
        rcfg.key = Some(key(1));
        let relay = Node::start(rcfg).await.unwrap();
        relay
            .connect(EdgeConfig::new(source.local_addr().to_string(), "bars").named("relayed"))
            .unwrap();
        let mut c2 = connect(&relay, Some(key(1))).await.unwrap();
        receive_frames(&mut c2, "relayed", 5).await;
        let s = relay.stats();
        let edge = s.inputs.iter().find(|i| i.stream == "relayed").unwrap();
        assert_eq!(edge.state, StreamState::Live);
        assert!(edge.frames_in >= 5);
    })
    .await
    .expect("within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused_both_ways() {
    timeout(Duration::from_secs(20), async {
        let node = source_node(Some(key(1))).await;
        // The client finds the node's proof wrong and stops before AUTH.
        let e = connect(&node, Some(key(2))).await.unwrap_err();
        assert!(matches!(e, NetError::Auth(_)), "{e}");
        assert!(e.to_string().contains("different keys"), "{e}");

        // A requester that ignores the node's proof and sends AUTH anyway
        // with the wrong key: permission-denied, close, nothing else.
        let mut raw = Raw::dial(&node).await;
        let q = [9u8; 16];
        let reply = raw_hello(&mut raw, &q).await;
        assert_eq!(reply.hello.auth_scheme, AuthScheme::HmacSha256);
        assert_eq!(reply.hello.nonce.len(), 16);
        assert!(!key(2).verify_responder(&q, &reply.hello.nonce, &reply.proof));
        assert!(key(1).verify_responder(&q, &reply.hello.nonce, &reply.proof));
        raw.send(&auth_msg(key(2).requester_proof(&q, &reply.hello.nonce), 2))
            .await;
        let msg = raw.expect_denied_then_close().await;
        assert!(msg.contains("authentication failed"), "{msg}");

        // The node counted both refusals (the early close and the bad proof).
        loop {
            let text = node.metrics_text();
            let line = text
                .lines()
                .find(|l| l.starts_with("framewire_auth_refusals_total "))
                .unwrap();
            let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            if n >= 2.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // No subscriber was ever created.
        assert!(node.stats().outputs.is_empty());
    })
    .await
    .expect("within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_client_is_refused_by_a_keyed_node() {
    timeout(Duration::from_secs(20), async {
        let node = source_node(Some(key(1))).await;
        let e = connect(&node, None).await.unwrap_err();
        match &e {
            NetError::Remote { status, message, .. } => {
                assert_eq!(*status, Status::PermissionDenied);
                assert!(message.contains("requires authentication"), "{message}");
                assert!(message.contains("--key-file"), "{message}");
            }
            other => panic!("{other}"),
        }
        // An unknown scheme is refused too.
        let mut raw = Raw::dial(&node).await;
        raw.send(&hello_msg(AuthScheme::Unknown(7), Bytes::from_static(&[1; 16]), 1))
            .await;
        let msg = raw.expect_denied_then_close().await;
        assert!(msg.contains("unsupported authentication"), "{msg}");
        // A short nonce is refused.
        let mut raw = Raw::dial(&node).await;
        raw.send(&hello_msg(AuthScheme::HmacSha256, Bytes::from_static(&[1; 4]), 1))
            .await;
        raw.expect_denied_then_close().await;
    })
    .await
    .expect("within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_client_refuses_and_is_refused_by_a_keyless_node() {
    timeout(Duration::from_secs(20), async {
        let node = source_node(None).await;
        let e = connect(&node, Some(key(1))).await.unwrap_err();
        match &e {
            NetError::Remote { status, message, .. } => {
                assert_eq!(*status, Status::PermissionDenied);
                assert!(message.contains("no deployment key configured"), "{message}");
            }
            other => panic!("{other}"),
        }
        // Without a key both ends still talk.
        let mut c = connect(&node, None).await.unwrap();
        receive_frames(&mut c, "bars", 2).await;
    })
    .await
    .expect("within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_client_refuses_a_node_that_offers_no_auth() {
    // A fake node that answers HELLO with scheme none (a downgrade): the
    // client must not go on.
    timeout(Duration::from_secs(20), async {
        let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut r = FramedRead::new(r, Decoder::new());
            let Some(Message::ControlRequest(req)) = r.next().await.unwrap() else {
                panic!("HELLO expected")
            };
            let reply = Response::Hello(framewire_proto::control::HelloReply {
                hello: Hello {
                    protocol_version: PROTOCOL_VERSION,
                    name: "fake:node".into(),
                    site_id: 0,
                    function_flags: FunctionFlags::RELAY,
                    features: Features(0),
                    auth_scheme: AuthScheme::None,
                    nonce: Bytes::new(),
                },
                proof: Bytes::new(),
            });
            write_message(
                &mut w,
                &Message::ControlResponse(reply.to_message(0, req.request_id).unwrap()),
            )
            .await
            .unwrap();
            // Whatever the client sends next (it should send nothing).
            r.next().await.ok().flatten()
        });
        let e = Client::connect(&addr.to_string(), &who(Some(key(1))), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, NetError::Auth(_)), "{e}");
        assert!(e.to_string().contains("offers no authentication"), "{e}");
        let after = fake.await.unwrap();
        assert!(after.is_none(), "the client sent {after:?} after a downgrade");
    })
    .await
    .expect("within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_handshake_is_refused() {
    timeout(Duration::from_secs(20), async {
        let node = source_node(Some(key(1))).await;
        let k = key(1);
        // A good session, recorded.
        let q = [0x42u8; 16];
        let mut raw = Raw::dial(&node).await;
        let first = raw_hello(&mut raw, &q).await;
        assert!(k.verify_responder(&q, &first.hello.nonce, &first.proof));
        let recorded = auth_msg(k.requester_proof(&q, &first.hello.nonce), 2)
            .encode()
            .unwrap()
            .to_vec();
        raw.send_bytes(&recorded).await;
        match raw.next().await {
            Some(Message::ControlResponse(r)) => assert_eq!(r.status, Status::Ok, "{r:?}"),
            other => panic!("{other:?}"),
        }
        raw.send(&Message::ControlRequest(Request::ListStreams.to_message(0, 3).unwrap()))
            .await;
        match raw.next().await {
            Some(Message::ControlResponse(r)) => assert_eq!(r.status, Status::Ok),
            other => panic!("{other:?}"),
        }

        // The same HELLO and AUTH bytes on a new connection: the node's nonce
        // is fresh, so the recorded proof no longer matches.
        let mut replay = Raw::dial(&node).await;
        let second = raw_hello(&mut replay, &q).await;
        assert_ne!(first.hello.nonce, second.hello.nonce, "nonces are fresh per connection");
        replay.send_bytes(&recorded).await;
        let msg = replay.expect_denied_then_close().await;
        assert!(msg.contains("authentication failed"), "{msg}");
    })
    .await
    .expect("within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_before_auth_get_permission_denied_and_close() {
    timeout(Duration::from_secs(20), async {
        let node = source_node(Some(key(1))).await;
        // Before HELLO.
        let mut raw = Raw::dial(&node).await;
        raw.send(&Message::ControlRequest(Request::ListStreams.to_message(0, 1).unwrap()))
            .await;
        let msg = raw.expect_denied_then_close().await;
        assert!(msg.contains("not authenticated"), "{msg}");

        // After HELLO, instead of AUTH.
        let mut raw = Raw::dial(&node).await;
        raw_hello(&mut raw, &[5u8; 16]).await;
        let sub = Request::Subscribe(framewire_proto::control::Subscribe::new(
            "bars",
            SubscribeParams::default(),
        ));
        raw.send(&Message::ControlRequest(sub.to_message(0, 2).unwrap())).await;
        let msg = raw.expect_denied_then_close().await;
        assert!(msg.contains("AUTH must follow HELLO"), "{msg}");
        assert!(node.stats().outputs.is_empty(), "no output was created");
    })
    .await
    .expect("within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_is_dropped_after_the_hello_timeout() {
    timeout(Duration::from_secs(20), async {
        let mut cfg = NodeConfig::new("test:slow", loopback());
        cfg.key = Some(key(1));
        cfg.limits.hello_timeout = Duration::from_millis(300);
        let node = Node::start(cfg).await.unwrap();
        let mut raw = Raw::dial(&node).await;
        raw_hello(&mut raw, &[5u8; 16]).await;
        // No AUTH: the node closes once the timeout passes.
        let t = std::time::Instant::now();
        assert!(raw.next().await.is_none());
        assert!(t.elapsed() < Duration::from_secs(5));
    })
    .await
    .expect("within 20 s");
}

/// Forwards one connection to `target`, recording both directions.
async fn recording_proxy(target: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        let (a, _) = listener.accept().await.unwrap();
        let b = TcpStream::connect(target).await.unwrap();
        let (mut ar, mut aw) = a.into_split();
        let (mut br, mut bw) = b.into_split();
        let s1 = seen2.clone();
        let up = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = ar.read(&mut buf).await {
                if n == 0 || bw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                s1.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = br.read(&mut buf).await {
            if n == 0 || aw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            seen2.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        up.abort();
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_crosses_the_wire() {
    timeout(Duration::from_secs(20), async {
        let k = DeploymentKey::generate().unwrap();
        let node = source_node(Some(k.clone())).await;
        let (proxy, seen) = recording_proxy(node.local_addr()).await;
        let mut c = Client::connect(&proxy.to_string(), &who(Some(k.clone())), Duration::from_secs(5))
            .await
            .unwrap();
        receive_frames(&mut c, "bars", 10).await;
        drop(c);
        let bytes = seen.lock().unwrap().clone();
        assert!(
            bytes.len() > 10 * 32 * 24 * 4,
            "traffic was captured ({} bytes)",
            bytes.len()
        );
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(k.expose_bytes()), "raw key on the wire");
        assert!(!contains(&k.expose_bytes()[..16]), "half of the key on the wire");
        assert!(!contains(k.to_hex().as_bytes()), "hex key on the wire");
        // And the handshake did happen on this traffic: HMAC scheme in HELLO.
        assert!(contains(b"test:client"));
    })
    .await
    .expect("within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_to_a_node_with_another_key_reports_failed() {
    timeout(Duration::from_secs(20), async {
        let source = source_node(Some(key(1))).await;
        let mut rcfg = NodeConfig::new("test:relay", loopback());
        rcfg.key = Some(key(2));
        let relay = Node::start(rcfg).await.unwrap();
        relay
            .connect(EdgeConfig::new(source.local_addr().to_string(), "bars").named("far"))
            .unwrap();
        // Failed at once (not after the 30 s reconnect window), over the wire too.
        let mut c = connect(&relay, Some(key(2))).await.unwrap();
        loop {
            let Response::GetStats(s) = c
                .request(Request::GetStats(framewire_proto::control::Name {
                    name: String::new(),
                }))
                .await
                .unwrap()
            else {
                panic!("GET_STATS")
            };
            let e = s.inputs.iter().find(|i| i.stream == "far").expect("the edge is listed");
            assert_eq!(e.frames_in, 0);
            if e.state == StreamState::Failed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let text = relay.metrics_text();
        assert!(text.contains("framewire_edge_failed{stream=\"far\""), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("framewire_edge_failed{stream=\"far\"") && l.ends_with(" 1"))
        );
    })
    .await
    .expect("within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_port_on_a_keyed_node_needs_allow_unauthenticated() {
    timeout(Duration::from_secs(20), async {
        let opaque = |allow| OpaquePortConfig {
            stream: "bars".into(),
            listen: loopback(),
            params: SubscribeParams::default(),
            allow_unauthenticated: allow,
        };
        let mut cfg = NodeConfig::new("test:op", loopback());
        cfg.sources.push(pattern("bars"));
        cfg.key = Some(key(1));
        cfg.opaque_ports.push(opaque(false));
        let e = Node::start(cfg.clone()).await.unwrap_err();
        assert!(e.to_string().contains("allow_unauthenticated"), "{e}");
        cfg.opaque_ports = vec![opaque(true)];
        let node = Node::start(cfg).await.unwrap();
        node.shutdown().await;
    })
    .await
    .expect("within 20 s");
}
