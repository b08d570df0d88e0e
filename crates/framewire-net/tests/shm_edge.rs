//! Edges between nodes on one host over shared memory (docs/shm.md,
//! "Edges between nodes"): transport choice, intact frames, stats, and
//! what happens when either end goes away.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use framewire_net::{Client, ClientIdentity, EdgeConfig, EdgeTransport, Node, NodeConfig, ReplayConfig, SourceConfig};
use framewire_proto::control::{OutputStats, StreamState};
use framewire_proto::{
    Command, DeliveryMode, Features, Format, Message, Origin, PixelFormat, Request, Response, StreamOpen,
    SubscribeParams, TransportMode,
};

const W: u32 = 160;
const H: u32 = 120;
const FRAMES: usize = 8;

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn socket_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("fw-shm-test-{}-{tag}.sock", std::process::id()))
}

/// Frame `i`: every byte derived from `i`, so a frame is checked whole.
fn frame_bytes(i: usize) -> Vec<u8> {
    (0..(W * H * 4) as usize)
        .map(|k| (k.wrapping_mul(31) ^ i.wrapping_mul(197)) as u8)
        .collect()
}

fn replay_source() -> SourceConfig {
    SourceConfig::from(ReplayConfig {
        open: StreamOpen {
            format: Format::Raw,
            pixel_format: PixelFormat::Bgra,
            origin: Origin::Software,
            width: W,
            height: H,
            fps_num: 100,
            fps_den: 1,
            name: "cam".into(),
            codec_config: Default::default(),
        },
        frames: (0..FRAMES).map(|i| Bytes::from(frame_bytes(i))).collect(),
        fps: 100.0,
        looped: true,
    })
}

async fn upstream(shm: bool, tag: &str) -> Node {
    let mut cfg = NodeConfig::new("test:upstream", loopback());
    cfg.sources.push(replay_source());
    if shm {
        cfg.shm_socket = Some(socket_path(tag));
    }
    Node::start(cfg).await.unwrap()
}

async fn downstream(name: &str, up: &Node, transport: EdgeTransport, shm: bool, tag: &str) -> Node {
    let mut cfg = NodeConfig::new(name, loopback());
    if shm {
        cfg.shm_socket = Some(socket_path(tag));
    }
    cfg.edges.push(
        EdgeConfig::new(up.local_addr().to_string(), "cam")
            .with_params(SubscribeParams {
                mode: DeliveryMode::Completeness,
                max_frames: 16,
                ..SubscribeParams::default()
            })
            .over(transport),
    );
    Node::start(cfg).await.unwrap()
}

/// Subscribes to `cam` on `node` over TCP and checks `n` frames are intact.
async fn check_frames(node: &Node, n: usize) {
    let mut c = Client::connect(
        &node.local_addr().to_string(),
        &ClientIdentity::tool("test:check"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let params = SubscribeParams {
        mode: DeliveryMode::Completeness,
        max_frames: 64,
        ..SubscribeParams::default()
    };
    // The pulled stream appears once its upstream answered.
    let channel = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.subscribe("cam", params).await {
                Ok(ch) => break ch,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("the pulled stream within 10 s");
    let expected: Vec<Vec<u8>> = (0..FRAMES).map(frame_bytes).collect();
    let mut got = 0;
    let mut offset = None;
    while got < n {
        let msg = tokio::time::timeout(Duration::from_secs(5), c.next_message())
            .await
            .expect("a frame within 5 s")
            .unwrap()
            .expect("connection open");
        match msg {
            Message::VideoFrame(f) if f.channel == channel => {
                let i = expected
                    .iter()
                    .position(|e| e[..] == f.data[..])
                    .unwrap_or_else(|| panic!("frame {} is not one of the frames sent", f.sequence));
                // The replay goes round the frames in order: the sequence
                // number and the frame index keep one offset.
                let off = (f.sequence as usize + FRAMES - i) % FRAMES;
                assert_eq!(*offset.get_or_insert(off), off, "frame {} out of order", f.sequence);
                got += 1;
            }
            Message::ControlRequest(req) if req.command == Command::StreamOpen => c.ack(&req).await.unwrap(),
            _ => {}
        }
    }
}

fn outputs_of(node: &Node, peer_name: &str) -> Vec<OutputStats> {
    node.stats()
        .outputs
        .into_iter()
        .filter(|o| o.stream == "cam" && o.peer.contains(peer_name))
        .collect()
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_edge_between_local_nodes_uses_shm_and_frames_arrive_intact() {
    let up = upstream(true, "auto-up").await;
    let down = downstream("test:down", &up, EdgeTransport::Auto, true, "auto-down").await;
    check_frames(&down, 60).await;

    let outs = outputs_of(&up, "test:down");
    assert_eq!(outs.len(), 1, "one output for the edge: {outs:?}");
    assert_eq!(
        outs[0].transport,
        TransportMode::Shm,
        "the edge runs over shared memory"
    );
    assert!(outs[0].frames_sent >= 60, "frames sent {}", outs[0].frames_sent);

    // Both nodes offer it in DESCRIBE (and HELLO).
    let mut c = Client::connect(
        &up.local_addr().to_string(),
        &ClientIdentity::tool("test:describe"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_ne!(c.peer().features.0 & Features::SHM.0, 0, "HELLO offers shm");
    let Response::Describe(d) = c.request(Request::Describe).await.unwrap() else {
        panic!("DESCRIBE answer")
    };
    assert_ne!(d.features.0 & Features::SHM.0, 0, "DESCRIBE lists shm");
    down.shutdown().await;
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_when_asked_or_when_the_upstream_has_shm_off() {
    let up = upstream(true, "tcp-up").await;
    let asked = downstream("test:asked-tcp", &up, EdgeTransport::Tcp, true, "tcp-down").await;
    check_frames(&asked, 20).await;
    let outs = outputs_of(&up, "test:asked-tcp");
    assert_eq!(outs[0].transport, TransportMode::Encapsulated);
    asked.shutdown().await;
    up.shutdown().await;

    let plain = upstream(false, "unused").await;
    let auto = downstream("test:auto", &plain, EdgeTransport::Auto, true, "auto2-down").await;
    check_frames(&auto, 20).await;
    let outs = outputs_of(&plain, "test:auto");
    assert_eq!(outs[0].transport, TransportMode::Encapsulated, "auto falls back to TCP");
    auto.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shm_required_from_a_node_without_it_is_refused_with_the_reason() {
    let plain = upstream(false, "unused").await;
    // A subscriber asking for shm directly gets bad-request and the reason.
    let mut c = Client::connect(
        &plain.local_addr().to_string(),
        &ClientIdentity::tool("test:shm-client"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let params = SubscribeParams {
        transport: TransportMode::Shm,
        ..SubscribeParams::default()
    };
    let err = c.subscribe("cam", params).await.unwrap_err().to_string();
    assert!(err.contains("shared memory off"), "{err}");

    // An edge that insists on shm never goes live, and stays listed.
    let down = downstream("test:insists", &plain, EdgeTransport::Shm, true, "insist-down").await;
    wait_for("the insisting edge refused twice", || {
        down.status_report().edges.iter().any(|e| e.failed_attempts >= 2)
    })
    .await;
    let edge = down.stats().inputs.into_iter().find(|i| i.stream == "cam").unwrap();
    assert_ne!(edge.state, StreamState::Live);
    assert!(outputs_of(&plain, "test:insists").is_empty());
    down.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_local_downstreams_share_the_stream_and_one_leaving_frees_its_output() {
    let up = upstream(true, "four-up").await;
    let mut downs = Vec::new();
    for i in 0..4 {
        let name = format!("test:d{i}");
        downs.push(downstream(&name, &up, EdgeTransport::Auto, true, &format!("four-d{i}")).await);
    }
    for d in &downs {
        check_frames(d, 20).await;
    }
    for i in 0..4 {
        let outs = outputs_of(&up, &format!("test:d{i}"));
        assert_eq!(outs.len(), 1);
        assert_eq!(outs[0].transport, TransportMode::Shm);
    }
    // One downstream goes away: its output is gone, the others go on.
    let gone = downs.remove(0);
    gone.shutdown().await;
    wait_for("the departed subscriber's output to go", || {
        outputs_of(&up, "test:d0").is_empty()
    })
    .await;
    check_frames(&downs[0], 20).await;
    for d in downs {
        d.shutdown().await;
    }
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_goes_away_interrupts_the_edge_and_it_resumes_over_shm() {
    let up = upstream(true, "restart-up").await;
    let addr = up.local_addr();
    let down = downstream("test:follower", &up, EdgeTransport::Auto, true, "restart-down").await;
    check_frames(&down, 10).await;
    drop(up); // no graceful goodbye: sockets just close
    let state = |n: &Node| {
        n.stats()
            .inputs
            .into_iter()
            .find(|i| i.stream == "cam")
            .map(|i| i.state)
    };
    wait_for("the edge to be interrupted", || {
        state(&down) == Some(StreamState::Interrupted)
    })
    .await;

    // The upstream comes back on the same port; the edge resumes over shm.
    let mut cfg = NodeConfig::new("test:upstream", addr);
    cfg.sources.push(replay_source());
    cfg.shm_socket = Some(socket_path("restart-up2"));
    let up = Node::start(cfg).await.unwrap();
    wait_for("the edge to be live again", || state(&down) == Some(StreamState::Live)).await;
    check_frames(&down, 10).await;
    let outs = outputs_of(&up, "test:follower");
    assert_eq!(outs[0].transport, TransportMode::Shm);
    down.shutdown().await;
    up.shutdown().await;
}
