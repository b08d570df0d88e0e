//! `NodeState` driven without a runtime: no tasks, no sockets, time made up.

use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_proto::control::{EdgeOrigin, StreamState};
use framewire_proto::{
    DeliveryMode, EventInfo, EventReason, Features, Format, FrameFlags, FunctionFlags, Origin, PixelFormat,
    StreamEvent, StreamOpen, SubscribeParams,
};
use framewire_relay::{Frame, RelayConfig};

use super::*;

fn identity() -> Identity {
    Identity {
        name: "t:state".into(),
        site_id: 0,
        function_flags: FunctionFlags::RELAY,
        features: Features(0),
        tcp_port: 7400,
        pid: 1,
        hostname: "here".into(),
        accept_formats: Vec::new(),
    }
}

fn state(limits: Limits) -> NodeState {
    NodeState::new(RelayConfig::default(), limits, identity())
}

fn open(name: &str) -> StreamOpen {
    StreamOpen {
        format: Format::Mjpeg,
        pixel_format: PixelFormat::None,
        origin: Origin::LibjpegTurbo,
        width: 64,
        height: 48,
        fps_num: 30,
        fps_den: 1,
        name: name.into(),
        codec_config: Default::default(),
    }
}

fn frame(seq: u64, len: usize) -> Frame {
    Frame {
        data: Bytes::from(vec![seq as u8; len]),
        sequence: seq,
        timestamp_ns: 1_000,
        flags: FrameFlags::KEYFRAME,
    }
}

fn info(stream: &str, channel: u16) -> OutputInfo {
    OutputInfo {
        stream: stream.into(),
        channel,
        peer: "127.0.0.1:1 t:peer".into(),
        events: true,
        params: SubscribeParams::default(),
        formats_told: 0,
    }
}

#[test]
fn streams_take_names_not_paths_and_only_once() {
    let mut s = state(Limits::default());
    s.add_stream(open("bars"), String::new(), StreamState::Live).unwrap();
    assert_eq!(
        s.add_stream(open("bars"), String::new(), StreamState::Live)
            .unwrap_err(),
        StateError::StreamExists("bars".into())
    );
    for bad in ["a/b", "..", "x\ny", ""] {
        let e = s.add_stream(open(bad), String::new(), StreamState::Live).unwrap_err();
        assert!(matches!(e, StateError::Name(_)), "{bad:?}: {e:?}");
        assert_eq!(e.status(), framewire_proto::Status::BadRequest);
    }
    assert_eq!(s.stream_names(), ["bars"]);
}

#[test]
fn a_push_names_the_outputs_to_wake_and_a_low_latency_output_keeps_the_newest() {
    let t = Instant::now();
    let mut s = state(Limits::default());
    s.add_stream(open("bars"), String::new(), StreamState::Live).unwrap();
    let (id, o) = s
        .add_output("bars", &SubscribeParams::default(), info("bars", 1))
        .unwrap();
    assert_eq!(o.name, "bars");
    assert_eq!(s.push("bars", frame(1, 10), t, 2_000).unwrap(), &[id]);
    s.push("bars", frame(2, 10), t, 2_000).unwrap();
    let tx = s.poll_transmit(id, t).unwrap();
    assert_eq!(tx.frame.sequence, 2, "the newest frame wins");
    s.sent(id, t);
    assert!(s.poll_transmit(id, t).is_none());
    // A frame for a stream that is gone is dropped quietly.
    assert!(s.push("gone", frame(3, 10), t, 2_000).unwrap().is_empty());
}

#[test]
fn outputs_that_begin_dropping_are_told_at_most_every_300_ms() {
    let t = Instant::now();
    let ms = |n: u64| t + Duration::from_millis(n);
    let mut s = state(Limits::default());
    s.add_stream(open("bars"), String::new(), StreamState::Live).unwrap();
    let (id, _) = s
        .add_output("bars", &SubscribeParams::default(), info("bars", 1))
        .unwrap();
    s.push("bars", frame(1, 10), t, 0).unwrap();
    assert!(!s.drops_to_tell(t), "nothing dropped yet");
    // Low latency: a newer frame replaces the unsent one.
    s.push("bars", frame(2, 10), ms(10), 0).unwrap();
    assert!(s.drops_to_tell(ms(10)));
    s.push("bars", frame(3, 10), ms(20), 0).unwrap();
    assert!(!s.drops_to_tell(ms(20)), "told again within 300 ms");
    assert!(
        s.drops_to_tell(ms(310)),
        "the drop at 20 ms is told once the 300 ms are over"
    );
    // Sent in time: nothing more to tell, however long after.
    s.poll_transmit(id, ms(320)).unwrap();
    s.sent(id, ms(320));
    s.push("bars", frame(4, 10), ms(330), 0).unwrap();
    assert!(!s.drops_to_tell(ms(2_000)));
}

#[test]
fn completeness_budgets_are_clamped_to_the_nodes_maxima() {
    let limits = Limits {
        max_output_frames: 8,
        max_output_bytes: 100,
        ..Limits::default()
    };
    let t = Instant::now();
    let mut s = state(limits);
    s.add_stream(open("bars"), String::new(), StreamState::Live).unwrap();
    let greedy = SubscribeParams {
        mode: DeliveryMode::Completeness,
        max_frames: u32::MAX,
        max_bytes: u64::MAX,
        ..SubscribeParams::default()
    };
    let (id, _) = s.add_output("bars", &greedy, info("bars", 1)).unwrap();
    for seq in 1..=50 {
        s.push("bars", frame(seq, 30), t, 0).unwrap();
    }
    let st = s.stats("", t, &|_, _| 0);
    let out = &st.outputs[0];
    assert_eq!((out.max_frames, out.max_bytes), (8, 100));
    assert!(out.queue_bytes <= 100 && out.queue_frames <= 8, "{out:?}");
    // Asking for the default gets the default, under the maxima too.
    let (_, _) = s
        .add_output(
            "bars",
            &SubscribeParams {
                max_frames: 0,
                max_bytes: 0,
                ..greedy
            },
            info("bars", 2),
        )
        .unwrap();
    let st = s.stats("", t, &|_, _| 0);
    assert!(st.outputs.iter().all(|o| o.max_bytes <= 100 && o.max_frames <= 8));
    let _ = id;
}

#[test]
fn outputs_and_edges_are_capped_with_a_reason() {
    let limits = Limits {
        max_outputs: 2,
        max_edges: 1,
        ..Limits::default()
    };
    let mut s = state(limits);
    s.add_stream(open("bars"), String::new(), StreamState::Live).unwrap();
    s.add_output("bars", &SubscribeParams::default(), info("bars", 1))
        .unwrap();
    s.add_output("bars", &SubscribeParams::default(), info("bars", 2))
        .unwrap();
    let e = s
        .add_output("bars", &SubscribeParams::default(), info("bars", 3))
        .unwrap_err();
    assert_eq!(e, StateError::TooManyOutputs(2));
    assert!(e.to_string().contains("max_outputs"), "{e}");
    let e = s
        .add_output("nope", &SubscribeParams::default(), info("nope", 3))
        .unwrap_err();
    assert!(
        matches!(&e, StateError::NoStream { known, .. } if known == "bars"),
        "{e}"
    );

    s.add_edge(EdgeConfig::new("127.0.0.1:1", "cam"), EdgeOrigin::Connect)
        .unwrap();
    let e = s
        .add_edge(EdgeConfig::new("127.0.0.1:1", "cam2"), EdgeOrigin::Connect)
        .unwrap_err();
    assert_eq!(e, StateError::TooManyEdges(1));
    let e = s
        .add_edge(EdgeConfig::new("127.0.0.1:1", "x").named("../y"), EdgeOrigin::Connect)
        .unwrap_err();
    assert!(matches!(e, StateError::Name(_)));
    s.remove_edge("cam").unwrap();
    assert!(
        s.add_edge(EdgeConfig::new("127.0.0.1:1", "bars"), EdgeOrigin::Connect)
            .is_err(),
        "a stream's name"
    );
    assert_eq!(s.remove_edge("cam").unwrap_err(), StateError::NoEdge("cam".into()));
}

#[test]
fn events_reach_the_outputs_that_take_them_and_set_the_state() {
    let mut s = state(Limits::default());
    s.add_stream(open("bars"), "10.0.0.1:7400/bars".into(), StreamState::Live)
        .unwrap();
    let (framed, _) = s
        .add_output("bars", &SubscribeParams::default(), info("bars", 5))
        .unwrap();
    let mut sink = info("bars", 0);
    sink.events = false;
    s.add_output("bars", &SubscribeParams::default(), sink).unwrap();
    let ev = StreamEvent::Interrupted(EventInfo {
        timestamp_ns: 0,
        reason: EventReason::Stalled,
        message: String::new(),
    });
    assert_eq!(s.stream_event("bars", &ev), vec![(framed, 5)]);
    assert_eq!(s.stream("bars").unwrap().state, StreamState::Interrupted);
    assert_eq!(s.stream_infos()[0].state, StreamState::Interrupted);
    assert_eq!(s.reconnected("bars").map(|r| r.0), Some(StreamState::Interrupted));
    assert_eq!(s.stats("", Instant::now(), &|_, _| 0).inputs[0].reconnects, 1);
    // Removing the stream takes its outputs with it.
    let gone = s.remove_stream("bars", Instant::now()).unwrap();
    assert_eq!(gone.len(), 2);
    assert_eq!(s.subscribers("bars"), 0);
    assert!(s.stats("", Instant::now(), &|_, _| 0).outputs.is_empty());
}

#[test]
fn room_snapshots_and_reports() {
    let t = Instant::now();
    let mut s = state(Limits::default());
    s.add_stream(open("bars"), String::new(), StreamState::Live).unwrap();
    assert!(!s.has_room("bars", 10, t), "no outputs, no room");
    let (id, _) = s
        .add_output("bars", &SubscribeParams::default(), info("bars", 1))
        .unwrap();
    assert!(s.has_room("bars", 10, t));
    let f = frame(7, 1000);
    let data = f.data.clone();
    s.push("bars", f, t, 0).unwrap();
    assert!(!s.has_room("bars", 10, t), "a low-latency output with a frame pending");
    let snap = s.snapshot("bars").unwrap();
    assert_eq!(snap.sequence, 7);
    assert_eq!(
        snap.data.as_ptr(),
        data.as_ptr(),
        "the snapshot shares the frame's bytes"
    );
    let d = s.describe(Duration::from_millis(1500));
    assert_eq!((d.name.as_str(), d.uptime_ms, d.streams), ("t:state", 1500, 1));
    let st = s.stats("", t, &|_, o| if o == id { 3 } else { 0 });
    assert_eq!(st.outputs[0].drops.last().unwrap().count, 3, "skipped shm frames count");
    s.add_edge(EdgeConfig::new("127.0.0.1:1", "cam"), EdgeOrigin::Config)
        .unwrap();
    assert!(s.set_edge_state("cam", StreamState::Failed, true));
    assert!(!s.set_edge_state("cam", StreamState::Failed, true));
    let r = s.status_report(4, Duration::ZERO, s.stats("", t, &|_, _| 0));
    assert_eq!(r.sequence, 4);
    assert_eq!(r.edges[0].failed_attempts, 2);
    // An edge that never connected shows in the inputs, failed.
    assert!(
        r.stats
            .inputs
            .iter()
            .any(|i| i.stream == "cam" && i.state == StreamState::Failed)
    );
}

#[test]
fn long_peer_labels_are_cut_so_stats_always_encode() {
    let mut s = state(Limits::default());
    s.add_stream(open("bars"), String::new(), StreamState::Live).unwrap();
    let mut i = info("bars", 1);
    i.peer = "p".repeat(70_000);
    s.add_output("bars", &SubscribeParams::default(), i).unwrap();
    let st = s.stats("", Instant::now(), &|_, _| 0);
    let req = framewire_proto::Response::GetStats(st);
    assert!(
        req.to_message(0, 1).is_ok(),
        "a stats answer with a long peer label encodes"
    );
}

#[test]
fn a_gateways_edge_nobody_takes_is_reaped_after_its_idle_time() {
    let t = Instant::now();
    let idle = Duration::from_secs(30);
    let mut s = state(Limits::default());
    s.add_edge(
        EdgeConfig::new("10.0.0.1:7400", "cam").named("cam@2:lab:cam"),
        EdgeOrigin::Discovery,
    )
    .unwrap();
    s.add_edge(EdgeConfig::new("10.0.0.1:7400", "kept"), EdgeOrigin::Connect)
        .unwrap();
    assert!(s.idle_gateway_edges(t, idle).is_empty(), "the clock starts now");
    // Someone takes it for a while: not idle.
    s.add_stream(open("cam@2:lab:cam"), "10.0.0.1:7400/cam".into(), StreamState::Live)
        .unwrap();
    let (id, _) = s
        .add_output("cam@2:lab:cam", &SubscribeParams::default(), info("cam@2:lab:cam", 1))
        .unwrap();
    assert!(s.idle_gateway_edges(t + idle, idle).is_empty());
    s.remove_output(id, t + idle);
    assert!(s.idle_gateway_edges(t + idle, idle).is_empty(), "idle only from now");
    assert_eq!(
        s.idle_gateway_edges(t + 2 * idle, idle),
        ["cam@2:lab:cam"],
        "edges made by CONNECT stay"
    );
}

#[test]
fn a_pulled_stream_passes_a_frame_on_once_and_an_upstream_that_restarted_anew() {
    let t = Instant::now();
    let mut s = state(Limits::default());
    s.add_stream(open("bars"), "up:7400/bars".into(), StreamState::Live)
        .unwrap();
    let (id, _) = s
        .add_output("bars", &SubscribeParams::default(), info("bars", 1))
        .unwrap();
    let at = |seq: u64, ts: u64| Frame {
        timestamp_ns: ts,
        ..frame(seq, 10)
    };
    let mut seen = Vec::new();
    let mut push = |s: &mut NodeState, f: Frame| {
        s.push("bars", f, t, 0).unwrap();
        while let Some(tx) = s.poll_transmit(id, t) {
            s.sent(id, t);
            seen.push((tx.frame.sequence, tx.frame.flags.is_discontinuity()));
        }
    };
    for seq in 10..=12 {
        push(&mut s, at(seq, seq * 1000));
    }
    // A new session replays 10..=12 (the first marked), then goes on.
    let mut first = at(10, 10_000);
    first.flags = first.flags.with(FrameFlags::DISCONTINUITY);
    push(&mut s, first);
    push(&mut s, at(11, 11_000));
    push(&mut s, at(12, 12_000));
    push(&mut s, at(13, 13_000));
    // Another replays from 10, but 14 never comes: 15 carries the gap.
    let mut first = at(10, 10_000);
    first.flags = first.flags.with(FrameFlags::DISCONTINUITY);
    push(&mut s, first);
    push(&mut s, at(15, 15_000));
    // The upstream restarted: numbers from 1 again, captured later.
    push(&mut s, at(1, 20_000));
    assert_eq!(
        seen,
        [
            (10, false),
            (11, false),
            (12, false),
            (13, false),
            (15, true),
            (1, false)
        ]
    );
    assert_eq!(s.stream("bars").unwrap().replayed, 4);
    // A local source's frames are its own business: not filtered.
    s.add_stream(open("local"), String::new(), StreamState::Live).unwrap();
    s.push("local", at(5, 5_000), t, 0).unwrap();
    assert_eq!(s.stream("local").unwrap().replayed, 0);
}
