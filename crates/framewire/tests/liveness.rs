//! Liveness on every link (docs/security.md, "Threat model of a node"): a
//! frozen upstream is *interrupted* within seconds and *live* again at
//! once when it resumes; idle connections give their place back; one port
//! never starves another; an upstream that floods before answering, or
//! offers shared memory nobody asked for, is cut off.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::fake::fake_upstream;
use common::*;
use framewire_proto::control::{ShmOffer, SubscribeReply};
use framewire_proto::{EventReason, FrameFlags, Message, Request, Response, StreamEvent, SubscribeParams, VideoFrame};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_upstream_is_interrupted_then_live_again() {
    let cam = spawn_node(&[
        "--name",
        "t:cam",
        "--discovery",
        "off",
        "--source",
        "test-pattern:bars,size=160x120,fps=10",
    ]);
    let up = format!("{}/bars", cam.addr);
    let relay = spawn_node(&["--name", "t:relay", "--discovery", "off", "--upstream", &up]);
    let mut c = client(relay.addr, "test:viewer").await;
    subscribe(&mut c, "bars", SubscribeParams::default()).await;
    // Live first.
    let mut frames = 0;
    while frames < 5 {
        if let Some(Message::VideoFrame(_)) = next(&mut c, Duration::from_secs(5)).await {
            frames += 1;
        }
    }
    // The upstream freezes (process stopped: its kernel still keeps the connection).
    cam.signal("STOP");
    let frozen = Instant::now();
    let interrupted = loop {
        match next(&mut c, Duration::from_secs(5)).await {
            Some(Message::StreamEvent {
                event: StreamEvent::Interrupted(info),
                ..
            }) => break info,
            Some(_) => {}
            None => {
                cam.signal("CONT");
                panic!("no interrupted event {:?} after the upstream froze", frozen.elapsed());
            }
        }
    };
    let after = frozen.elapsed();
    assert_eq!(interrupted.reason, EventReason::Stalled, "{interrupted:?}");
    assert!(after < Duration::from_secs(3), "interrupted after {after:?}");
    let s = stats(relay.addr).await;
    let input = s.inputs.iter().find(|i| i.stream == "bars").unwrap();
    assert_eq!(input.state.label(), "interrupted", "{input:?}");
    // It resumes: frames again within a second.
    cam.signal("CONT");
    let resumed = Instant::now();
    loop {
        match next(&mut c, Duration::from_secs(3)).await {
            Some(Message::VideoFrame(_)) => break,
            Some(_) => {}
            None => panic!("no frame within 3 s of the upstream resuming"),
        }
    }
    let back = resumed.elapsed();
    eprintln!("frozen upstream: interrupted after {after:?}; live again {back:?} after it resumed");
    assert!(back < Duration::from_secs(1), "live again after {back:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_give_their_place_back() {
    let dir = temp_dir("live-idle");
    let cfg = config_file(
        &dir,
        "name = \"t:target\"\n[limits]\nmax_connections = 4\nidle_timeout_ms = 1500\n",
    );
    let node = spawn_node(&["--config", &cfg, "--discovery", "off"]);
    let addr = node.addr;
    // Four connections say HELLO and then nothing; each holds its place
    // once the node has answered it.
    let said_hello = Instant::now();
    let idle: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        (0..4)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(&raw::hello("test:idle")).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let n = s.read(&mut [0u8; 512]).expect("HELLO answered");
                assert!(n > 0, "closed before answering HELLO");
                s
            })
            .collect()
    })
    .await
    .unwrap();
    // A fifth is told why it is refused.
    let refused = framewire_net::Client::connect(
        &addr.to_string(),
        &framewire_net::ClientIdentity::tool("test:fifth"),
        Duration::from_secs(3),
    )
    .await;
    match refused {
        Err(framewire_net::NetError::Remote { status, message, .. }) => {
            assert_eq!(status, framewire_proto::Status::Busy, "{message}");
            assert!(message.contains("at most 4"), "{message}");
        }
        other => panic!("a fifth connection over the cap of 4: {:?}", other.map(|_| ())),
    }
    // After the idle time the node closes them...
    let idle = tokio::task::spawn_blocking(move || idle.into_iter().map(closed).collect::<Vec<_>>())
        .await
        .unwrap();
    let closed_after = said_hello.elapsed();
    assert!(
        closed_after >= Duration::from_millis(1500),
        "closed after {closed_after:?}, before the idle time"
    );
    // ...and a new client is served (the place is given back just after
    // the socket is closed).
    let t = Instant::now();
    let mut last = None;
    let mut c = eventually_async(Duration::from_secs(1), async || {
        let c = framewire_net::Client::connect(
            &addr.to_string(),
            &framewire_net::ClientIdentity::tool("test:after"),
            Duration::from_secs(3),
        )
        .await;
        c.map_err(|e| last = Some(e)).ok()
    })
    .await
    .unwrap_or_else(|| panic!("no place after the idle connections were closed: {last:?}"));
    assert!(matches!(
        c.request(Request::Describe).await.unwrap(),
        Response::Describe(_)
    ));
    assert!(t.elapsed() < Duration::from_secs(1));
    drop(idle);
}

/// `s` once the node has closed it (end of stream, or reset), within 5 s.
fn closed(mut s: TcpStream) -> TcpStream {
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return s,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return s,
            Err(e) => panic!("an idle connection still open: {e}"),
        }
    }
}

#[test]
fn an_opaque_port_flood_cannot_starve_the_main_port() {
    let opaque = format!("127.0.0.1:{}", free_port());
    let mut cmd = std::process::Command::new("prlimit");
    cmd.args(["--nofile=512:512", env!("CARGO_BIN_EXE_framewire"), "node"]);
    cmd.args(["--name", "t:target", "--listen", "127.0.0.1:0", "--discovery", "off"]);
    cmd.args(["--source", "test-pattern:bars,size=160x120,fps=10"]);
    cmd.args(["--opaque", &format!("bars={opaque}")]);
    let node = spawn_command(cmd, Duration::from_secs(20));
    let flood: Vec<TcpStream> = (0..600).filter_map(|_| TcpStream::connect(&opaque).ok()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = Instant::now();
        let mut c = framewire_net::Client::connect(
            &node.addr.to_string(),
            &framewire_net::ClientIdentity::tool("test:main"),
            Duration::from_secs(3),
        )
        .await
        .expect("the main port answers HELLO during an opaque-port flood");
        assert!(matches!(
            c.request(Request::Describe).await.unwrap(),
            Response::Describe(_)
        ));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    });
    drop(flood);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_floods_before_answering_is_cut_off() {
    let fake = fake_upstream(|mut s, _| async move {
        let frame = Message::VideoFrame(VideoFrame {
            channel: 1,
            sequence: 0,
            timestamp_ns: 0,
            flags: FrameFlags::KEYFRAME,
            data: bytes::Bytes::from(vec![0u8; 1 << 20]),
        })
        .to_vec()
        .unwrap();
        // Up to 1.3 GB of frames, and never an answer.
        for _ in 0..1300 {
            if s.write_all(&frame).await.is_err() {
                return;
            }
        }
    })
    .await;
    let up = format!("{fake}/bars");
    let node = spawn_node(&["--name", "t:down", "--discovery", "off", "--upstream", &up]);
    let pid = node.child.id();
    let idle = rss_mb(pid);
    let (_, peak) = peak_rss_during(pid, tokio::time::sleep(Duration::from_secs(4))).await;
    let grown = peak - idle;
    eprintln!("an upstream sending before it answers: downstream RSS +{grown:.1} MiB");
    assert!(
        grown < 64.0,
        "the downstream buffered what it never asked for: +{grown:.1} MiB"
    );
    assert!(node.wait_log("before", Duration::from_secs(5)), "{}", node.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shm_offer_nobody_asked_for_is_not_taken() {
    let dir = temp_dir("live-shm-offer");
    let path = dir.join("bait.sock");
    // A socket of the kind a node's shared-memory server has (SEQPACKET).
    let bait = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None).unwrap();
    bait.bind(&socket2::SockAddr::unix(&path).unwrap()).unwrap();
    bait.listen(8).unwrap();
    bait.set_nonblocking(true).unwrap();
    let p = path.display().to_string();
    let fake = fake_upstream(move |mut s, id| async move {
        let reply = Response::Subscribe(SubscribeReply {
            channel: 1,
            shm: Some(ShmOffer { path: p, token: 42 }),
        });
        let m = Message::ControlResponse(reply.to_message(0, id).unwrap());
        let _ = s.write_all(&m.to_vec().unwrap()).await;
        // The stream opens: a node that took the offer attaches now.
        let open = Request::StreamOpen(framewire_proto::StreamOpen {
            format: framewire_proto::Format::Mjpeg,
            pixel_format: framewire_proto::PixelFormat::None,
            origin: framewire_proto::Origin::LibjpegTurbo,
            width: 160,
            height: 120,
            fps_num: 10,
            fps_den: 1,
            name: "bars".into(),
            codec_config: Default::default(),
        });
        let m = Message::ControlRequest(open.to_message(1, 1).unwrap());
        let _ = s.write_all(&m.to_vec().unwrap()).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let up = format!("{fake}/bars");
    let node = spawn_node(&["--name", "t:down", "--discovery", "off", "--no-shm", "--upstream", &up]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        bait.accept().is_err(),
        "the node connected to a socket the upstream chose, though it subscribed over TCP"
    );
    drop(node);
}
