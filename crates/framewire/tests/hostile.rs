//! Hostile and broken peers affect only their own connection: garbage,
//! oversize lengths, unknown message types, a frame cut off half-way, a peer
//! that never reads, a thousand idle connections. Meanwhile a witness
//! subscriber keeps receiving every frame, and the node keeps answering.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use framewire_proto::control::{Hello, Subscribe};
use framewire_proto::{
    AuthScheme, DeliveryMode, Features, FunctionFlags, Message, PROTOCOL_VERSION, Request, Response, SubscribeParams,
};

fn hello_bytes() -> Vec<u8> {
    let req = Request::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        name: "test:hostile".into(),
        site_id: 0,
        function_flags: FunctionFlags::SINK,
        features: Features(0),
        auth_scheme: AuthScheme::None,
        nonce: bytes::Bytes::new(),
    });
    Message::ControlRequest(req.to_message(0, 1).unwrap()).to_vec().unwrap()
}

fn raw(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads until the node closes the connection; true if it did within 5 s.
fn closed_by_node(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
    false
}

/// Lines of the node's log that name `peer`.
fn lines_naming(node: &NodeProc, peer: &str) -> Vec<String> {
    node.log()
        .lines()
        .filter(|l| l.contains(peer))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_affect_only_their_own_connection() {
    let node = spawn_node(&[
        "--name",
        "test:target",
        "--source",
        "test-pattern:bars,size=160x120,fps=100,format=raw",
    ]);
    // The witness: a well-behaved completeness subscriber.
    let mut witness = client(node.addr, "test:witness").await;
    let params = SubscribeParams {
        mode: DeliveryMode::Completeness,
        max_frames: 256,
        ..SubscribeParams::default()
    };
    subscribe(&mut witness, "bars", params).await;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let witness_task = tokio::spawn(async move {
        let mut seqs = Vec::new();
        loop {
            tokio::select! {
                m = next(&mut witness, Duration::from_secs(3)) => match m {
                    Some(Message::VideoFrame(f)) => seqs.push(f.sequence),
                    Some(_) => {}
                    None => break,
                },
                _ = stop_rx.changed() => break,
            }
        }
        seqs
    });
    let addr = node.addr;
    let started = Instant::now();

    tokio::task::spawn_blocking(move || {
        // 1. Garbage bytes instead of HELLO.
        let mut g = raw(addr);
        let peer = g.local_addr().unwrap().to_string();
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let _ = g.write_all(&garbage);
        assert!(closed_by_node(&mut g), "garbage: connection not closed");
        (peer, "garbage")
    })
    .await
    .map(|(peer, what)| {
        assert!(
            node.wait_log(&peer, Duration::from_secs(3)),
            "{what}: no log line names {peer}"
        );
        assert_eq!(
            lines_naming(&node, &peer).len(),
            1,
            "{what}: {:?}",
            lines_naming(&node, &peer)
        );
    })
    .unwrap();

    // 2. An oversize payload_length (after a good HELLO).
    let peer = tokio::task::spawn_blocking(move || {
        let mut s = raw(addr);
        s.write_all(&hello_bytes()).unwrap();
        s.write_all(&[0x01, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff, 0x7f]).unwrap();
        assert!(closed_by_node(&mut s), "oversize: connection not closed");
        s.local_addr().unwrap().to_string()
    })
    .await
    .unwrap();
    assert!(node.wait_log(&peer, Duration::from_secs(3)));
    let lines = lines_naming(&node, &peer);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("above the limit"), "{lines:?}");

    // 3. Unknown message types are skipped; the connection stays usable.
    let mut c = client(addr, "test:unknown").await;
    for t in [0x0100u16, 0x7777, 0xffff] {
        c.send(&Message::Unknown {
            message_type: t,
            channel: 3,
            payload: bytes::Bytes::from_static(b"from the future"),
        })
        .await
        .unwrap();
    }
    match c.request(Request::ListStreams).await.unwrap() {
        Response::ListStreams(s) => assert_eq!(s[0].open.name, "bars"),
        other => panic!("{other:?}"),
    }
    drop(c);

    // 4. A frame cut off half-way, then the peer goes.
    let peer = tokio::task::spawn_blocking(move || {
        let mut s = raw(addr);
        s.write_all(&hello_bytes()).unwrap();
        s.write_all(&[0x01, 0x00, 0x01, 0x00, 0xe8, 0x03, 0x00, 0x00]).unwrap(); // 1000 bytes declared
        s.write_all(&[0xaa; 500]).unwrap();
        let peer = s.local_addr().unwrap().to_string();
        let _ = s.shutdown(std::net::Shutdown::Write);
        assert!(closed_by_node(&mut s), "cut-off frame: connection not closed");
        peer
    })
    .await
    .unwrap();
    assert!(node.wait_log(&peer, Duration::from_secs(3)));
    let lines = lines_naming(&node, &peer);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("ended inside a message"), "{lines:?}");

    // 5. A peer that subscribes and never reads.
    let never = tokio::task::spawn_blocking(move || {
        let mut s = raw(addr);
        s.write_all(&hello_bytes()).unwrap();
        let sub = Request::Subscribe(Subscribe {
            stream: "bars".into(),
            params: SubscribeParams {
                mode: DeliveryMode::Completeness,
                max_frames: 4,
                ..SubscribeParams::default()
            },
            weight: 1,
            max_rate: 0,
        });
        s.write_all(&Message::ControlRequest(sub.to_message(0, 2).unwrap()).to_vec().unwrap())
            .unwrap();
        s
    })
    .await
    .unwrap();

    // 6. A thousand idle connections.
    let idle =
        tokio::task::spawn_blocking(move || (0..1000).map(|_| TcpStream::connect(addr).unwrap()).collect::<Vec<_>>())
            .await
            .unwrap();
    // The node still answers a new client promptly.
    let t = Instant::now();
    let mut c = client(addr, "test:after").await;
    assert!(matches!(
        c.request(Request::Describe).await.unwrap(),
        Response::Describe(_)
    ));
    assert!(t.elapsed() < Duration::from_secs(2), "DESCRIBE took {:?}", t.elapsed());

    // Let the stalled and idle peers sit for a while with the witness reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let seqs = witness_task.await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    drop((never, idle));

    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "the witness lost or reordered frames"
    );
    let rate = seqs.len() as f64 / elapsed;
    assert!(rate > 80.0, "witness rate {rate:.1} fps for a 100 fps source");
    let mut node = node;
    assert_eq!(node.child.try_wait().unwrap(), None, "the node is still running");
    node.kill();
}

/// A peer speaking another protocol version gets a clear error and a close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_mismatch_is_refused_with_a_reason() {
    let node = spawn_node(&["--name", "test:target"]);
    let mut s = raw(node.addr);
    let req = Request::Hello(Hello {
        protocol_version: PROTOCOL_VERSION + 1,
        name: "test:future".into(),
        site_id: 0,
        function_flags: FunctionFlags::SINK,
        features: Features(0),
        auth_scheme: AuthScheme::None,
        nonce: bytes::Bytes::new(),
    });
    s.write_all(&Message::ControlRequest(req.to_message(0, 1).unwrap()).to_vec().unwrap())
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let mut b = bytes::BytesMut::from(&buf[..]);
    let Some(Message::ControlResponse(r)) = framewire_proto::Decoder::new().decode(&mut b).unwrap() else {
        panic!("no response")
    };
    assert_eq!(r.status, framewire_proto::Status::VersionMismatch);
    let msg = r.error_message().unwrap();
    assert!(msg.contains("protocol version 2") && msg.contains("speaks 1"), "{msg}");
    assert!(node.wait_log("test:future", Duration::from_secs(3)));
}
