//! Nodes in one process, joined by real TCP on loopback.

use std::time::Duration;

use framewire_codec::EncodeSpec;
use framewire_media::testpattern::TestPatternConfig;
use framewire_net::{Client, ClientIdentity, EdgeConfig, Node, NodeConfig, SourceConfig};
use framewire_proto::{Command, DeliveryMode, Message, PixelFormat, Request, Response, StreamEvent, SubscribeParams};

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn pattern(name: &str, fps: u32) -> SourceConfig {
    SourceConfig::from(TestPatternConfig {
        name: name.into(),
        width: 64,
        height: 48,
        fps_num: fps,
        fps_den: 1,
        encode: EncodeSpec::raw(PixelFormat::Bgra),
    })
}

fn completeness() -> SubscribeParams {
    SubscribeParams {
        mode: DeliveryMode::Completeness,
        max_frames: 256,
        ..SubscribeParams::default()
    }
}

async fn frames(client: &mut Client, channel: u16, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(5), client.next_message())
            .await
            .expect("frames within 5 s")
            .unwrap()
            .expect("connection open");
        match msg {
            Message::VideoFrame(f) => {
                assert_eq!(f.channel, channel);
                assert_eq!(f.data.len(), 64 * 48 * 4);
                seqs.push(f.sequence);
            }
            Message::ControlRequest(req) if req.command == Command::StreamOpen => client.ack(&req).await.unwrap(),
            _ => {}
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_relay_subscriber_in_order() {
    let mut src_cfg = NodeConfig::new("test:source", loopback());
    src_cfg.sources.push(pattern("bars", 200));
    let source = Node::start(src_cfg).await.unwrap();

    let relay = Node::start(NodeConfig::new("test:relay", loopback())).await.unwrap();
    relay
        .connect(
            EdgeConfig::new(source.local_addr().to_string(), "bars")
                .named("bars-relayed")
                .with_params(completeness()),
        )
        .unwrap();

    let who = ClientIdentity::tool("test:sink");
    let mut client = Client::connect(&relay.local_addr().to_string(), &who, Duration::from_secs(5))
        .await
        .unwrap();
    // The relay serves the stream once its upstream answered.
    let channel = loop {
        match client.subscribe("bars-relayed", completeness()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let seqs = frames(&mut client, channel, 50).await;
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, none lost: {seqs:?}"
    );

    match client.request(Request::ListStreams).await.unwrap() {
        Response::ListStreams(s) => {
            assert_eq!(s.len(), 1);
            assert_eq!(s[0].open.name, "bars-relayed");
            assert_eq!(s[0].open.width, 64);
        }
        other => panic!("{other:?}"),
    }
    let stats = relay.stats();
    assert_eq!(stats.inputs.len(), 1);
    assert!(stats.inputs[0].frames_in >= 50);
    assert_eq!(stats.outputs.len(), 1);
    source.shutdown().await;
    // The relay's subscriber is told the upstream went away.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = tokio::time::timeout_at(deadline, client.next_message())
            .await
            .expect("event in time");
        if let Ok(Some(Message::StreamEvent {
            event: StreamEvent::Interrupted(_),
            ..
        })) = m
        {
            break;
        }
    }
    relay.shutdown().await;
}

/// An edge whose upstream never answers is retried quickly, then reported
/// failed after the window, then retried slowly; its stats say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_retried_then_reported_failed() {
    use framewire_net::ReconnectPolicy;
    use framewire_proto::control::{StreamState, WatchStatus};
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = NodeConfig::new("test:relay", loopback());
    cfg.reconnect = ReconnectPolicy {
        first: Duration::from_millis(10),
        max: Duration::from_millis(40),
        window: Duration::from_millis(800),
        slow: Duration::from_millis(300),
    };
    cfg.edges.push(EdgeConfig::new(dead.to_string(), "cam"));
    let started = std::time::Instant::now();
    let node = Node::start(cfg).await.unwrap();
    let edge = |n: &Node| {
        n.stats()
            .inputs
            .into_iter()
            .find(|i| i.stream == "cam")
            .expect("the edge is listed")
    };

    tokio::time::sleep(Duration::from_millis(400)).await;
    let early = edge(&node);
    assert_eq!(early.state, StreamState::Interrupted);
    assert_eq!(early.upstream, format!("{dead}/cam"));
    assert!(early.reconnects >= 5, "quick retries: {} in 400 ms", early.reconnects);

    // Reported failed once the window has passed: a watcher is told.
    let who = ClientIdentity::tool("test:watch");
    let mut watch = Client::connect(&node.local_addr().to_string(), &who, Duration::from_secs(5))
        .await
        .unwrap();
    let r = watch
        .request(Request::WatchStatus(WatchStatus { interval_ms: 100 }))
        .await
        .unwrap();
    assert_eq!(r, Response::WatchStatus);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = tokio::time::timeout_at(deadline, watch.next_message())
            .await
            .expect("reported failed within 5 s")
            .unwrap()
            .expect("open");
        if let Message::ControlRequest(req) = m
            && req.command == Command::StatusReport
            && let Ok(Request::StatusReport(r)) = Request::decode(&req)
            && r.edges.iter().any(|e| e.state == StreamState::Failed)
        {
            break;
        }
    }
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(800),
        "failed after {after:?}, within the window"
    );
    let failed = edge(&node);
    assert_eq!(failed.state, StreamState::Failed, "failed after the window");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let later = edge(&node);
    assert_eq!(later.state, StreamState::Failed);
    let slow_tries = later.reconnects - failed.reconnects;
    assert!(
        (2..=5).contains(&slow_tries),
        "{slow_tries} tries in 1 s at one per 300 ms"
    );
    node.shutdown().await;
}
