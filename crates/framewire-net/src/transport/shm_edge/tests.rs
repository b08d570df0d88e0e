use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_proto::control::StreamState;
use framewire_proto::{
    DeliveryMode, Format, FrameFlags, Message, Origin, PixelFormat, StreamEvent, StreamOpen, SubscribeParams,
};
use framewire_relay::Frame;

use crate::config::{EdgeConfig, EdgeTransport, NodeConfig};
use crate::node::Node;
use crate::transport::client::{Client, ClientIdentity};

fn open(width: u32) -> StreamOpen {
    StreamOpen {
        format: Format::Mjpeg,
        pixel_format: PixelFormat::None,
        origin: Origin::Unspecified,
        width,
        height: 16,
        fps_num: 30,
        fps_den: 1,
        name: "s".into(),
        codec_config: Bytes::new(),
    }
}

/// The upstream says "format changed" and pushes the first frame of the new
/// format at once, again and again. Events come over TCP and frames over
/// shared memory, two sockets; downstream, every frame still comes after
/// the format change before it (the format is the sequence number here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_by_shared_memory_never_overtakes_its_format_change() {
    const CHANGES: u32 = 400;
    let loopback = "127.0.0.1:0".parse().unwrap();
    let mut up_cfg = NodeConfig::new("test:up", loopback);
    let sock = std::env::temp_dir().join(format!("fw-shm-fmt-{}.sock", std::process::id()));
    up_cfg.shm_socket = Some(sock);
    let up = Node::start(up_cfg).await.unwrap();
    let core = up.core().clone();
    core.add_stream(open(1), "test".into(), StreamState::Live).unwrap();
    let mut down_cfg = NodeConfig::new("test:down", loopback);
    let params = SubscribeParams {
        mode: DeliveryMode::Completeness,
        max_frames: 64,
        ..SubscribeParams::default()
    };
    down_cfg.edges.push(
        EdgeConfig::new(up.local_addr().to_string(), "s")
            .with_params(params)
            .over(EdgeTransport::Shm),
    );
    let down = Node::start(down_cfg).await.unwrap();
    let mut c = Client::connect(
        &down.local_addr().to_string(),
        &ClientIdentity::tool("test:check"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let channel = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.subscribe("s", params).await {
                Ok(ch) => break ch,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("the pulled stream within 10 s");
    // The edge is attached once a frame pushed now comes through.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        core.push("s", frame(1));
        match tokio::time::timeout(Duration::from_millis(100), c.next_message()).await {
            Ok(Ok(Some(Message::VideoFrame(f)))) if f.channel == channel => break,
            _ => assert!(Instant::now() < end, "no frame through the edge in 10 s"),
        }
    }
    let source = std::thread::spawn(move || {
        for k in 2..=CHANGES {
            core.stream_event("s", StreamEvent::FormatChanged(open(k)));
            core.push("s", frame(u64::from(k)));
            std::thread::sleep(Duration::from_micros(500));
        }
    });
    let mut announced = 1u64;
    let mut frames = 0u32;
    let end = Instant::now() + Duration::from_secs(20);
    while announced < u64::from(CHANGES) {
        let left = end.saturating_duration_since(Instant::now());
        let m = tokio::time::timeout(left, c.next_message())
            .await
            .unwrap_or_else(|_| panic!("in 20 s: {frames} frames, the last format {announced}"))
            .unwrap()
            .expect("open");
        match m {
            Message::StreamEvent {
                event: StreamEvent::FormatChanged(o),
                ..
            } => announced = u64::from(o.width),
            Message::VideoFrame(f) if f.channel == channel => {
                assert!(
                    f.sequence <= announced,
                    "frame {} came before its format change (last seen: {announced})",
                    f.sequence
                );
                assert_eq!(f.flags.0 & 0xffff_0000, 0, "the edge's own bits leaked");
                frames += 1;
            }
            _ => {}
        }
    }
    assert!(frames > CHANGES / 4, "{frames} frames");
    source.join().unwrap();
}

fn frame(sequence: u64) -> Frame {
    Frame {
        data: Bytes::from_static(b"\xff\xd8frame\xff\xd9"),
        sequence,
        timestamp_ns: 0,
        flags: FrameFlags::KEYFRAME,
    }
}
