//! The hex examples in docs/protocol.md are the protocol's test vectors.
//!
//! Every ```` ```hex NAME ```` block in the document must decode to the value
//! this file expects for NAME, and re-encode to exactly the same bytes.
//! A vector in the document with no expectation here, or an expectation
//! with no vector there, fails the test: the document and the code cannot
//! drift apart.
//!
//! `cargo test -p framewire-proto --test protocol_doc -- --ignored --nocapture print_vectors`
//! prints every vector block, for writing the document.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use framewire_proto::codes::*;
use framewire_proto::control::*;
use framewire_proto::*;

enum Expect {
    Msg(Message),
    Req {
        channel: u16,
        id: u16,
        req: Request,
    },
    Resp {
        channel: u16,
        id: u16,
        resp: Response,
    },
    Err {
        id: u16,
        command: Command,
        status: Status,
        message: &'static str,
    },
}

impl Expect {
    fn message(&self) -> Message {
        match self {
            Expect::Msg(m) => m.clone(),
            Expect::Req { channel, id, req } => Message::ControlRequest(req.to_message(*channel, *id).unwrap()),
            Expect::Resp { channel, id, resp } => Message::ControlResponse(resp.to_message(*channel, *id).unwrap()),
            Expect::Err {
                id,
                command,
                status,
                message,
            } => Message::ControlResponse(ControlResponse::error(0, *id, *command, *status, message)),
        }
    }
}

const T0: u64 = 1_763_726_400_000_000_000; // 2025-11-21T12:00:00Z

/// A 1920x1080 H.264 stream with the SPS and PPS libx264 writes for it
/// (ultrafast).
fn h264_open() -> StreamOpen {
    StreamOpen {
        format: Format::H264,
        pixel_format: PixelFormat::None,
        origin: Origin::Unspecified,
        width: 1920,
        height: 1080,
        fps_num: 30,
        fps_den: 1,
        name: "cam".into(),
        codec_config: Bytes::from_static(&[
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x28, 0xda, 0x01, 0xe0, 0x08, 0x9f, 0x97, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
            0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x2a, 0, 0, 0, 1, 0x68, 0xce, 0x0f, 0xc8,
        ]),
    }
}

fn cam_open() -> StreamOpen {
    StreamOpen {
        format: Format::Mjpeg,
        pixel_format: PixelFormat::None,
        origin: Origin::DeviceNative,
        width: 1280,
        height: 720,
        fps_num: 30,
        fps_den: 1,
        name: "cam".into(),
        codec_config: Default::default(),
    }
}

fn ll() -> SubscribeParams {
    SubscribeParams {
        mode: DeliveryMode::LowLatency,
        max_frames: 1,
        max_bytes: 4_194_304,
        drop_policy: DropPolicy::DropOldest,
        priority: 200,
        transport: TransportMode::Encapsulated,
    }
}

fn hello(name: &str, nonce: &'static [u8]) -> control::Hello {
    control::Hello {
        protocol_version: PROTOCOL_VERSION,
        name: name.into(),
        site_id: 0,
        function_flags: FunctionFlags::SINK,
        features: Features::SHM,
        auth_scheme: if nonce.is_empty() {
            AuthScheme::None
        } else {
            AuthScheme::HmacSha256
        },
        nonce: Bytes::from_static(nonce),
    }
}

fn expectations() -> Vec<(&'static str, Expect)> {
    let info = |reason, message: &str| EventInfo {
        timestamp_ns: T0,
        reason,
        message: message.into(),
    };
    let input = InputEvent {
        kind: InputKind::KeyDown,
        timestamp_ns: T0,
        modifiers: Modifiers(Modifiers::CTRL),
        keysym: 0x0061, // XK_a
        scancode: 30,   // KEY_A
        button: 0,
        x: 0,
        y: 0,
        wheel_x: 0,
        wheel_y: 0,
    };
    let announce = NodeAnnouncement {
        protocol_version: 1,
        site_id: 0,
        tcp_port: 7400,
        function_flags: FunctionFlags::SOURCE,
        name: "v4l2:microscope".into(),
        extensions: Bytes::new(),
    };
    vec![
        (
            "video-frame",
            Expect::Msg(Message::VideoFrame(VideoFrame {
                channel: 1,
                sequence: 42,
                timestamp_ns: T0,
                flags: FrameFlags::KEYFRAME,
                data: Bytes::from_static(&[0xff, 0xd8, 0xff, 0xd9]),
            })),
        ),
        (
            "video-frame-discontinuity",
            Expect::Msg(Message::VideoFrame(VideoFrame {
                channel: 2,
                sequence: 7,
                timestamp_ns: T0 + 33_333_333,
                flags: FrameFlags::KEYFRAME.with(FrameFlags::DISCONTINUITY),
                data: Bytes::new(),
            })),
        ),
        (
            "hello-request",
            Expect::Req {
                channel: 0,
                id: 1,
                req: Request::Hello(hello("viewer:desk", b"")),
            },
        ),
        (
            "hello-request-auth",
            Expect::Req {
                channel: 0,
                id: 1,
                req: Request::Hello(hello("viewer:desk", &[0x11; 16])),
            },
        ),
        (
            "hello-response-auth",
            Expect::Resp {
                channel: 0,
                id: 1,
                resp: Response::Hello(HelloReply {
                    hello: control::Hello {
                        function_flags: FunctionFlags::SOURCE | FunctionFlags::RELAY,
                        nonce: Bytes::from_static(&[0x22; 16]),
                        ..hello("relay:bench", &[0x22; 16])
                    },
                    proof: Bytes::from_static(&[0xab; 32]),
                }),
            },
        ),
        (
            "hello-version-mismatch",
            Expect::Err {
                id: 1,
                command: Command::Hello,
                status: Status::VersionMismatch,
                message: "protocol version 2 not supported; this node speaks 1",
            },
        ),
        (
            "auth-request",
            Expect::Req {
                channel: 0,
                id: 2,
                req: Request::Auth(control::Auth {
                    proof: Bytes::from_static(&[0xcd; 32]),
                }),
            },
        ),
        (
            "auth-response",
            Expect::Resp {
                channel: 0,
                id: 2,
                resp: Response::Auth,
            },
        ),
        (
            "list-streams-request",
            Expect::Req {
                channel: 0,
                id: 3,
                req: Request::ListStreams,
            },
        ),
        (
            "list-streams-response",
            Expect::Resp {
                channel: 0,
                id: 3,
                resp: Response::ListStreams(vec![StreamInfo {
                    open: cam_open(),
                    state: StreamState::Live,
                    subscribers: 2,
                    frames: 1000,
                }]),
            },
        ),
        (
            "subscribe-request",
            Expect::Req {
                channel: 0,
                id: 4,
                req: Request::Subscribe(Subscribe {
                    stream: "cam".into(),
                    params: ll(),
                    weight: 1,
                    max_rate: 0,
                }),
            },
        ),
        (
            "subscribe-request-weight",
            Expect::Req {
                channel: 0,
                id: 4,
                req: Request::Subscribe(Subscribe {
                    stream: "cam".into(),
                    params: ll(),
                    weight: 3,
                    max_rate: 0,
                }),
            },
        ),
        (
            "subscribe-request-rate",
            Expect::Req {
                channel: 0,
                id: 4,
                req: Request::Subscribe(Subscribe {
                    stream: "cam".into(),
                    params: ll(),
                    weight: 1,
                    max_rate: 250_000,
                }),
            },
        ),
        (
            "subscribe-request-opaque",
            Expect::Req {
                channel: 0,
                id: 4,
                req: Request::Subscribe(Subscribe {
                    stream: "cam".into(),
                    params: SubscribeParams {
                        mode: DeliveryMode::Completeness,
                        max_frames: 64,
                        max_bytes: 33_554_432,
                        drop_policy: DropPolicy::DropNewest,
                        priority: 10,
                        transport: TransportMode::Opaque,
                    },
                    weight: 1,
                    max_rate: 0,
                }),
            },
        ),
        (
            "subscribe-response",
            Expect::Resp {
                channel: 0,
                id: 4,
                resp: Response::Subscribe(SubscribeReply { channel: 1, shm: None }),
            },
        ),
        (
            "subscribe-response-shm",
            Expect::Resp {
                channel: 0,
                id: 4,
                resp: Response::Subscribe(SubscribeReply {
                    channel: 1,
                    shm: Some(ShmOffer {
                        path: "/tmp/fw.sock".into(),
                        token: 0x0123_4567_89ab_cdef,
                    }),
                }),
            },
        ),
        (
            "subscribe-not-found",
            Expect::Err {
                id: 4,
                command: Command::Subscribe,
                status: Status::NotFound,
                message: "no stream named `cam2`",
            },
        ),
        (
            "unsubscribe-request",
            Expect::Req {
                channel: 1,
                id: 5,
                req: Request::Unsubscribe,
            },
        ),
        (
            "unsubscribe-response",
            Expect::Resp {
                channel: 1,
                id: 5,
                resp: Response::Unsubscribe,
            },
        ),
        (
            "stream-open-request",
            Expect::Req {
                channel: 1,
                id: 6,
                req: Request::StreamOpen(cam_open()),
            },
        ),
        (
            "stream-open-h264",
            Expect::Req {
                channel: 1,
                id: 6,
                req: Request::StreamOpen(h264_open()),
            },
        ),
        (
            "stream-open-response",
            Expect::Resp {
                channel: 1,
                id: 6,
                resp: Response::StreamOpen,
            },
        ),
        (
            "stream-open-unsupported",
            Expect::Err {
                id: 6,
                command: Command::StreamOpen,
                status: Status::UnsupportedFormat,
                message: "no decoder for h264",
            },
        ),
        (
            "get-stats-request",
            Expect::Req {
                channel: 0,
                id: 7,
                req: Request::GetStats(Name { name: String::new() }),
            },
        ),
        (
            "get-stats-response",
            Expect::Resp {
                channel: 0,
                id: 7,
                resp: Response::GetStats(Stats {
                    inputs: vec![InputStats {
                        stream: "cam".into(),
                        state: StreamState::Live,
                        upstream: "127.0.0.1:7400/cam".into(),
                        frames_in: 900,
                        bytes_in: 138_000_000,
                        reconnects: 1,
                    }],
                    outputs: vec![OutputStats {
                        channel: 1,
                        stream: "cam".into(),
                        peer: "127.0.0.1:50000 viewer:desk".into(),
                        mode: DeliveryMode::LowLatency,
                        transport: TransportMode::Encapsulated,
                        priority: 200,
                        frames_in: 900,
                        frames_sent: 880,
                        bytes_sent: 135_000_000,
                        drops: vec![DropCount {
                            reason: DropReason::Replaced,
                            count: 20,
                        }],
                        queue_frames: 1,
                        queue_bytes: 153_000,
                        max_frames: 1,
                        max_bytes: 4_194_304,
                        oldest_age_us: 120,
                        latency_p50_us: 85,
                        latency_p99_us: 640,
                        latency_max_us: 2100,
                        waiting_keyframe: false,
                    }],
                    input_events: vec![InputEventStats {
                        stream: "cam".into(),
                        received: 3,
                        injected: 3,
                        forwarded: 0,
                        kinds: vec![
                            InputKindCount {
                                kind: InputKind::MouseMove,
                                count: 1,
                            },
                            InputKindCount {
                                kind: InputKind::ButtonDown,
                                count: 1,
                            },
                            InputKindCount {
                                kind: InputKind::ButtonUp,
                                count: 1,
                            },
                        ],
                    }],
                    pass_through: Vec::new(),
                }),
            },
        ),
        (
            "connect-request",
            Expect::Req {
                channel: 0,
                id: 8,
                req: Request::Connect(Connect {
                    upstream: "127.0.0.1:7400".into(),
                    stream: "cam".into(),
                    local_name: "cam-relay".into(),
                    params: ll(),
                    weight: 1,
                    max_rate: 0,
                }),
            },
        ),
        (
            "connect-response",
            Expect::Resp {
                channel: 0,
                id: 8,
                resp: Response::Connect(Name {
                    name: "cam-relay".into(),
                }),
            },
        ),
        (
            "disconnect-request",
            Expect::Req {
                channel: 0,
                id: 9,
                req: Request::Disconnect(Name {
                    name: "cam-relay".into(),
                }),
            },
        ),
        (
            "disconnect-response",
            Expect::Resp {
                channel: 0,
                id: 9,
                resp: Response::Disconnect,
            },
        ),
        (
            "describe-request",
            Expect::Req {
                channel: 0,
                id: 10,
                req: Request::Describe,
            },
        ),
        (
            "describe-response",
            Expect::Resp {
                channel: 0,
                id: 10,
                resp: Response::Describe(Description {
                    name: "v4l2:microscope".into(),
                    software: "framewire 0.1.0".into(),
                    protocol_version: 1,
                    site_id: 0,
                    function_flags: FunctionFlags::SOURCE,
                    features: Features(Features::SHM.0 | Features::OPAQUE.0),
                    pid: 4242,
                    uptime_ms: 60_000,
                    hostname: "pi".into(),
                    streams: 1,
                    tcp_port: 7400,
                }),
            },
        ),
        (
            "snapshot-request",
            Expect::Req {
                channel: 0,
                id: 11,
                req: Request::Snapshot(Name { name: "cam".into() }),
            },
        ),
        (
            "snapshot-response",
            Expect::Resp {
                channel: 0,
                id: 11,
                resp: Response::Snapshot(Snapshot {
                    open: cam_open(),
                    sequence: 42,
                    timestamp_ns: T0,
                    flags: FrameFlags::KEYFRAME,
                    data: Bytes::from_static(&[0xff, 0xd8, 0xff, 0xd9]),
                }),
            },
        ),
        (
            "source-add-request",
            Expect::Req {
                channel: 0,
                id: 13,
                req: Request::SourceAdd(SourceTable {
                    table: "kind = \"test-pattern\"\nname = \"bars\"\n".into(),
                }),
            },
        ),
        (
            "source-add-response",
            Expect::Resp {
                channel: 0,
                id: 13,
                resp: Response::SourceAdd(Name { name: "bars".into() }),
            },
        ),
        (
            "source-set-request",
            Expect::Req {
                channel: 0,
                id: 14,
                req: Request::SourceSet(SourceTable {
                    table: "kind = \"test-pattern\"\nname = \"bars\"\nfps = 10\n".into(),
                }),
            },
        ),
        (
            "source-set-response",
            Expect::Resp {
                channel: 0,
                id: 14,
                resp: Response::SourceSet(Name { name: "bars".into() }),
            },
        ),
        (
            "source-remove-request",
            Expect::Req {
                channel: 0,
                id: 15,
                req: Request::SourceRemove(Name { name: "bars".into() }),
            },
        ),
        (
            "source-remove-response",
            Expect::Resp {
                channel: 0,
                id: 15,
                resp: Response::SourceRemove,
            },
        ),
        (
            "source-get-request",
            Expect::Req {
                channel: 0,
                id: 20,
                req: Request::SourceGet(Name { name: "bars".into() }),
            },
        ),
        (
            "source-get-response",
            Expect::Resp {
                channel: 0,
                id: 20,
                resp: Response::SourceGet(SourceTable {
                    table: "kind = \"test-pattern\"\nname = \"bars\"\nfps = 10\n".into(),
                }),
            },
        ),
        (
            "archive-list-request",
            Expect::Req {
                channel: 0,
                id: 21,
                req: Request::ArchiveList(ArchiveQuery {
                    stream: "bars".into(),
                    from_ns: 1_764_878_400_000_000_000,
                    to_ns: 1_764_882_000_000_000_000,
                }),
            },
        ),
        (
            "archive-list-response",
            Expect::Resp {
                channel: 0,
                id: 21,
                resp: Response::ArchiveList(ArchiveListing {
                    archives: vec![ArchivedStream {
                        stream: "bars".into(),
                        dir: "/srv/archive".into(),
                        state: "recording".into(),
                        codec: "mjpeg".into(),
                        segments: vec![ArchiveSegment {
                            start_ns: 1_764_878_400_000_000_000,
                            end_ns: 1_764_878_410_000_000_000,
                            frames: 300,
                            bytes: 1_234_567,
                            state: "closed".into(),
                        }],
                        gaps: vec![ArchiveGap {
                            start_ns: 1_764_878_410_000_000_000,
                            end_ns: 1_764_878_412_000_000_000,
                            frames: 30,
                            reason: "source-interrupted".into(),
                            detail: String::new(),
                        }],
                        truncated: false,
                    }],
                }),
            },
        ),
        (
            "archive-read-request",
            Expect::Req {
                channel: 0,
                id: 22,
                req: Request::ArchiveRead(ArchiveRead {
                    stream: "bars".into(),
                    from_ns: 1_764_878_400_000_000_000,
                    to_ns: 1_764_878_410_000_000_000,
                    offset: 0,
                    max_len: 1_048_576,
                }),
            },
        ),
        (
            "archive-read-response",
            Expect::Resp {
                channel: 0,
                id: 22,
                resp: Response::ArchiveRead(ArchiveChunk {
                    total: 4,
                    data: Bytes::from_static(&[0x1a, 0x45, 0xdf, 0xa3]),
                }),
            },
        ),
        (
            "archive-set-request",
            Expect::Req {
                channel: 0,
                id: 23,
                req: Request::ArchiveSet(ArchiveSet {
                    stream: "bars".into(),
                    recording: false,
                }),
            },
        ),
        (
            "archive-set-response",
            Expect::Resp {
                channel: 0,
                id: 23,
                resp: Response::ArchiveSet,
            },
        ),
        (
            "tunnel-request",
            Expect::Req {
                channel: 0,
                id: 24,
                req: Request::Tunnel(Name {
                    name: "1:lab:cam".into(),
                }),
            },
        ),
        (
            "tunnel-response",
            Expect::Resp {
                channel: 0,
                id: 24,
                resp: Response::Tunnel(Hello {
                    protocol_version: 1,
                    name: "lab:cam".into(),
                    site_id: 1,
                    function_flags: FunctionFlags::SOURCE | FunctionFlags::RELAY,
                    features: Features(0),
                    auth_scheme: AuthScheme::None,
                    nonce: Bytes::new(),
                }),
            },
        ),
        (
            "update-subscription-request",
            Expect::Req {
                channel: 1,
                id: 16,
                req: Request::UpdateSubscription(SubscribeParams {
                    mode: DeliveryMode::Completeness,
                    max_frames: 8,
                    max_bytes: 8_388_608,
                    drop_policy: DropPolicy::DropOldest,
                    priority: 200,
                    transport: TransportMode::Encapsulated,
                }),
            },
        ),
        (
            "update-subscription-response",
            Expect::Resp {
                channel: 1,
                id: 16,
                resp: Response::UpdateSubscription,
            },
        ),
        (
            "request-keyframe-request",
            Expect::Req {
                channel: 1,
                id: 17,
                req: Request::RequestKeyframe(Name { name: String::new() }),
            },
        ),
        (
            "request-keyframe-response",
            Expect::Resp {
                channel: 1,
                id: 17,
                resp: Response::RequestKeyframe,
            },
        ),
        (
            "shutdown-request",
            Expect::Req {
                channel: 0,
                id: 12,
                req: Request::Shutdown(control::Shutdown { grace_ms: 2000 }),
            },
        ),
        (
            "shutdown-response",
            Expect::Resp {
                channel: 0,
                id: 12,
                resp: Response::Shutdown,
            },
        ),
        (
            "v4l2-list-devices-request",
            Expect::Req {
                channel: 0,
                id: 13,
                req: Request::V4l2ListDevices,
            },
        ),
        (
            "v4l2-list-devices-response",
            Expect::Resp {
                channel: 0,
                id: 13,
                resp: Response::V4l2ListDevices(vec![V4l2Device {
                    path: "/dev/video0".into(),
                    card: "vivid".into(),
                    driver: "vivid".into(),
                    bus: "platform:vivid-000".into(),
                    capabilities: 0x0420_0001,
                    formats: vec![V4l2Format {
                        fourcc: u32::from_le_bytes(*b"YUYV"),
                        description: "YUYV 4:2:2".into(),
                        flags: 0,
                        sizes: vec![V4l2FrameSize {
                            kind: 0,
                            width: 640,
                            height: 480,
                            max_width: 640,
                            max_height: 480,
                            step_width: 0,
                            step_height: 0,
                            intervals: vec![(1, 30), (1, 25)],
                        }],
                    }],
                }]),
            },
        ),
        (
            "v4l2-list-controls-request",
            Expect::Req {
                channel: 0,
                id: 14,
                req: Request::V4l2ListControls(Name {
                    name: "/dev/video0".into(),
                }),
            },
        ),
        (
            "v4l2-list-controls-response",
            Expect::Resp {
                channel: 0,
                id: 14,
                resp: Response::V4l2ListControls(vec![
                    V4l2Control {
                        id: 0x0098_0900,
                        class: 0x0098_0000,
                        ctrl_type: ControlType::Integer,
                        name: "Brightness".into(),
                        min: 0,
                        max: 255,
                        step: 1,
                        default: 128,
                        flags: 0x20,
                        menu: vec![],
                    },
                    V4l2Control {
                        id: 0x0098_0918,
                        class: 0x0098_0000,
                        ctrl_type: ControlType::Menu,
                        name: "Power Line Frequency".into(),
                        min: 0,
                        max: 1,
                        step: 1,
                        default: 1,
                        flags: 0,
                        menu: vec![
                            MenuItem {
                                index: 0,
                                name: "Disabled".into(),
                                value: 0,
                            },
                            MenuItem {
                                index: 1,
                                name: "50 Hz".into(),
                                value: 0,
                            },
                        ],
                    },
                ]),
            },
        ),
        (
            "v4l2-get-controls-request",
            Expect::Req {
                channel: 0,
                id: 15,
                req: Request::V4l2GetControls(GetControls {
                    device: "/dev/video0".into(),
                    ids: vec![0x0098_0900],
                }),
            },
        ),
        (
            "v4l2-get-controls-response",
            Expect::Resp {
                channel: 0,
                id: 15,
                resp: Response::V4l2GetControls(vec![ControlValue {
                    id: 0x0098_0900,
                    value: 128,
                }]),
            },
        ),
        (
            "v4l2-set-controls-request",
            Expect::Req {
                channel: 0,
                id: 16,
                req: Request::V4l2SetControls(SetControls {
                    device: "/dev/video0".into(),
                    values: vec![ControlValue {
                        id: 0x0098_0900,
                        value: 200,
                    }],
                }),
            },
        ),
        (
            "v4l2-set-controls-response",
            Expect::Resp {
                channel: 0,
                id: 16,
                resp: Response::V4l2SetControls(vec![ControlValue {
                    id: 0x0098_0900,
                    value: 200,
                }]),
            },
        ),
        (
            "v4l2-set-controls-out-of-range",
            Expect::Err {
                id: 16,
                command: Command::V4l2SetControls,
                status: Status::BadRequest,
                message: "Brightness: 300 is above the maximum 255",
            },
        ),
        (
            "list-monitors-request",
            Expect::Req {
                channel: 0,
                id: 17,
                req: Request::ListMonitors,
            },
        ),
        (
            "list-monitors-response",
            Expect::Resp {
                channel: 0,
                id: 17,
                resp: Response::ListMonitors(vec![Monitor {
                    name: "HDMI-1".into(),
                    x: 1920,
                    y: 0,
                    width: 1920,
                    height: 1080,
                    width_mm: 527,
                    height_mm: 296,
                    refresh_mhz: 60_000,
                    primary: true,
                }]),
            },
        ),
        (
            "watch-status-request",
            Expect::Req {
                channel: 0,
                id: 19,
                req: Request::WatchStatus(WatchStatus { interval_ms: 1000 }),
            },
        ),
        (
            "watch-status-response",
            Expect::Resp {
                channel: 0,
                id: 19,
                resp: Response::WatchStatus,
            },
        ),
        (
            "status-report",
            Expect::Req {
                channel: 0,
                id: 0,
                req: Request::StatusReport(Box::new(StatusReport {
                    sequence: 7,
                    description: Description {
                        name: "lab:relay".into(),
                        software: "fw".into(),
                        protocol_version: 1,
                        site_id: 0,
                        function_flags: FunctionFlags::RELAY,
                        features: Features(Features::OPAQUE.0),
                        pid: 4242,
                        uptime_ms: 60_000,
                        hostname: "pi".into(),
                        streams: 1,
                        tcp_port: 7401,
                    },
                    streams: vec![StreamInfo {
                        open: StreamOpen {
                            name: "cam".into(),
                            ..cam_open()
                        },
                        state: StreamState::Live,
                        subscribers: 0,
                        frames: 900,
                    }],
                    stats: Stats::default(),
                    edges: vec![EdgeStatus {
                        local_name: "cam".into(),
                        upstream: "127.0.0.1:7400".into(),
                        stream: "cam".into(),
                        origin: EdgeOrigin::Connect,
                        state: StreamState::Live,
                        failed_attempts: 0,
                        params: SubscribeParams::default(),
                    }],
                    accept_formats: vec![Format::Mjpeg],
                })),
            },
        ),
        (
            "unknown-command-response",
            Expect::Err {
                id: 18,
                command: Command::Unknown(0x7777),
                status: Status::UnknownCommand,
                message: "unknown command 0x7777",
            },
        ),
        (
            "stream-event-interrupted",
            Expect::Msg(Message::StreamEvent {
                channel: 1,
                event: StreamEvent::Interrupted(info(EventReason::DeviceLost, "ENODEV")),
            }),
        ),
        (
            "stream-event-resumed",
            Expect::Msg(Message::StreamEvent {
                channel: 1,
                event: StreamEvent::Resumed(info(EventReason::Unspecified, "")),
            }),
        ),
        (
            "stream-event-closed",
            Expect::Msg(Message::StreamEvent {
                channel: 1,
                event: StreamEvent::Closed(info(EventReason::Shutdown, "")),
            }),
        ),
        (
            "stream-event-format-changed",
            Expect::Msg(Message::StreamEvent {
                channel: 1,
                event: StreamEvent::FormatChanged(StreamOpen {
                    width: 1920,
                    height: 1080,
                    ..cam_open()
                }),
            }),
        ),
        (
            "stream-event-format-changed-h264",
            Expect::Msg(Message::StreamEvent {
                channel: 1,
                event: StreamEvent::FormatChanged(h264_open()),
            }),
        ),
        (
            "input-event-key-down",
            Expect::Msg(Message::InputEvent {
                channel: 1,
                event: input,
            }),
        ),
        (
            "input-event-wheel",
            Expect::Msg(Message::InputEvent {
                channel: 1,
                event: InputEvent {
                    kind: InputKind::Wheel,
                    modifiers: Modifiers(0),
                    keysym: 0,
                    scancode: 0,
                    x: 640,
                    y: 360,
                    wheel_y: -120,
                    ..input
                },
            }),
        ),
        (
            "input-event-button-down",
            Expect::Msg(Message::InputEvent {
                channel: 1,
                event: InputEvent {
                    kind: InputKind::ButtonDown,
                    modifiers: Modifiers(0),
                    keysym: 0,
                    scancode: 0,
                    button: 1,
                    x: 100,
                    y: 50,
                    ..input
                },
            }),
        ),
        (
            "audio-frame",
            Expect::Msg(Message::AudioFrame {
                channel: 3,
                payload: Bytes::from_static(&[1, 2, 3, 4]),
            }),
        ),
        (
            "node-announcement",
            Expect::Msg(Message::NodeAnnouncement(announce.clone())),
        ),
        (
            "node-announcement-extended",
            Expect::Msg(Message::NodeAnnouncement(NodeAnnouncement {
                site_id: 2,
                function_flags: FunctionFlags::RELAY | FunctionFlags::CONTROLLER,
                name: "ctl:main".into(),
                extensions: Bytes::from_static(&[0x01, 0x02, 0x90, 0x1f]),
                ..announce.clone()
            })),
        ),
        ("node-goodbye", Expect::Msg(Message::NodeGoodbye(announce))),
        (
            "unknown-message-type",
            Expect::Msg(Message::Unknown {
                message_type: 0x0100,
                channel: 9,
                payload: Bytes::from_static(b"future"),
            }),
        ),
    ]
}

fn doc_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.md")
}

/// Every ```` ```hex NAME ```` block: name, line number, bytes.
fn doc_vectors(text: &str) -> Vec<(String, usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut current: Option<(String, usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some((name, start, hex)) = current.as_mut() {
            if trimmed == "```" {
                let bytes = hex::decode(hex.as_str()).unwrap_or_else(|e| panic!("vector `{name}` (line {start}): {e}"));
                out.push((std::mem::take(name), *start, bytes));
                current = None;
            } else {
                let data = trimmed.split('#').next().unwrap_or("");
                hex.extend(data.chars().filter(|c| !c.is_whitespace()));
            }
        } else if let Some(name) = trimmed.strip_prefix("```hex ") {
            current = Some((name.trim().to_owned(), i + 1, String::new()));
        }
    }
    assert!(current.is_none(), "unterminated hex block in docs/protocol.md");
    out
}

#[test]
fn every_documented_vector_decodes_and_re_encodes_exactly() {
    let text = std::fs::read_to_string(doc_path()).expect("docs/protocol.md is readable");
    let vectors = doc_vectors(&text);
    let expected: BTreeMap<&str, Expect> = expectations().into_iter().collect();
    let mut seen = std::collections::BTreeSet::new();

    for (name, line, bytes) in &vectors {
        let exp = expected
            .get(name.as_str())
            .unwrap_or_else(|| panic!("vector `{name}` (line {line}) has no expectation in this test"));
        assert!(seen.insert(name.clone()), "vector `{name}` appears twice");

        // Decode in two splits to exercise the streaming path.
        let decoder = Decoder::new();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&bytes[..bytes.len() / 2]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None, "`{name}` decoded early");
        buf.extend_from_slice(&bytes[bytes.len() / 2..]);
        let msg = decoder
            .decode(&mut buf)
            .unwrap_or_else(|e| panic!("`{name}` (line {line}): {e}"))
            .unwrap_or_else(|| panic!("`{name}` (line {line}) is incomplete"));
        assert!(buf.is_empty(), "`{name}` (line {line}) has trailing bytes");
        assert_eq!(msg, exp.message(), "`{name}` (line {line}) decodes to something else");

        // Typed bodies.
        match (exp, &msg) {
            (Expect::Req { req, .. }, Message::ControlRequest(env)) => {
                assert_eq!(&Request::decode(env).unwrap(), req, "`{name}` body");
            }
            (Expect::Resp { resp, .. }, Message::ControlResponse(env)) => {
                assert_eq!(&Response::decode(env).unwrap(), resp, "`{name}` body");
            }
            (Expect::Err { status, message, .. }, Message::ControlResponse(env)) => {
                assert_eq!(env.status, *status);
                assert_eq!(env.error_message().as_deref(), Some(*message));
            }
            _ => {}
        }

        assert_eq!(
            &msg.to_vec().unwrap(),
            bytes,
            "`{name}` (line {line}) re-encodes differently"
        );
    }
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains(**k)).collect();
    assert!(missing.is_empty(), "no vector in docs/protocol.md for {missing:?}");
    assert!(vectors.len() >= 50, "only {} vectors", vectors.len());
}

#[test]
fn every_message_type_and_command_has_a_vector() {
    let msgs: Vec<Message> = expectations().iter().map(|(_, e)| e.message()).collect();
    for t in MessageType::ALL {
        assert!(msgs.iter().any(|m| m.message_type() == *t), "no vector for {t}");
    }
    for c in Command::ALL {
        let req = msgs
            .iter()
            .any(|m| matches!(m, Message::ControlRequest(r) if r.command == *c));
        let resp = msgs
            .iter()
            .any(|m| matches!(m, Message::ControlResponse(r) if r.command == *c));
        // A pushed report is never answered: it has no response to show.
        let unanswered = *c == Command::StatusReport;
        assert!(
            req && (resp || unanswered),
            "command {c} lacks a request or response vector"
        );
    }
}

#[test]
#[ignore = "prints the vector blocks for docs/protocol.md"]
fn print_vectors() {
    for (name, exp) in expectations() {
        let bytes = exp.message().to_vec().unwrap();
        let mut s = format!("```hex {name}\n");
        let hexs = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ");
        s.push_str(&format!("{}   # header\n", hexs(&bytes[..8])));
        for row in bytes[8..].chunks(16) {
            s.push_str(&hexs(row));
            s.push('\n');
        }
        s.push_str("```\n");
        println!("{s}");
    }
}
