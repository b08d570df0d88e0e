//! Delivery modes, budgets, keyframes, partial frames and counters, each
//! with an exact expected outcome.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{drain, frame, ms, seqs};
use framewire_proto::control::{DropReason, StreamState};
use framewire_proto::{DropPolicy, FrameFlags, TransportMode};
use framewire_relay::{
    Budget, FrameMeta, InputConfig, InputLabels, LaneConfig, OutputConfig, OutputLabels, Relay, RelayConfig, RelayError,
};

const PLAIN: InputConfig = InputConfig { inter_coded: false };
const INTER: InputConfig = InputConfig { inter_coded: true };

#[test]
fn fan_out_shares_one_buffer_and_counters_drain_to_zero() {
    let mut relay = Relay::default();
    let input = relay.add_input(PLAIN);
    let mut outs = Vec::new();
    for i in 0..8 {
        let cfg = if i % 2 == 0 {
            OutputConfig::low_latency()
        } else {
            OutputConfig::completeness(16, 1 << 20)
        };
        outs.push(relay.add_output(cfg, &[LaneConfig::new(input)]).unwrap());
    }
    let t0 = Instant::now();
    let mut ptrs = Vec::new();
    for seq in 0..4 {
        let f = frame(seq, 10_000, true);
        ptrs.push(f.data.as_ptr());
        let woken = relay.push(input, f, t0).unwrap().to_vec();
        // Only the first push finds every output idle.
        assert_eq!(woken.len(), if seq == 0 { 8 } else { 0 });
    }
    let snap = relay.snapshot(t0);
    // 4 completeness outputs hold 4 frames each, 4 low-latency outputs 1 each.
    assert_eq!(snap.held_frames(), 4 * 4 + 4);
    // Each low-latency output replaced 3: the relay's running count says so.
    assert_eq!(relay.dropped(), 4 * 3);
    assert_eq!(
        relay.dropped(),
        snap.outputs.iter().map(|o| o.drops.total()).sum::<u64>()
    );
    assert_eq!(snap.held_bytes(), 20 * 10_000);
    for &o in &outs {
        for t in drain(&mut relay, o, t0) {
            let i = t.frame.sequence as usize;
            assert_eq!(t.frame.data.as_ptr(), ptrs[i], "output {o} got a copy of frame {i}");
        }
    }
    let snap = relay.snapshot(t0);
    assert_eq!(snap.held_frames(), 0);
    assert_eq!(snap.held_bytes(), 0);
    for o in &snap.outputs {
        assert_eq!((o.queued_frames, o.queued_bytes, o.in_flight_bytes), (0, 0, 0));
        assert_eq!(o.frames_in, o.frames_sent + o.drops.total());
        assert_eq!(o.budget_use, 0.0);
        assert_eq!(o.oldest_age, None);
    }
}

#[test]
fn low_latency_newest_wins_and_in_flight_is_never_cut() {
    let mut relay = Relay::default();
    let input = relay.add_input(PLAIN);
    let out = relay
        .add_output(OutputConfig::low_latency(), &[LaneConfig::new(input)])
        .unwrap();
    let t0 = Instant::now();
    relay.push(input, frame(1, 100, true), t0).unwrap();
    let first = relay.poll_transmit(out, t0).unwrap();
    assert_eq!(first.frame.sequence, 1);
    assert_eq!(relay.poll_transmit(out, t0), None, "one frame in flight at a time");
    for seq in 2..=5 {
        // In flight: nothing to wake.
        assert!(relay.push(input, frame(seq, 100, true), t0).unwrap().is_empty());
    }
    let s = relay.output_snapshot(out, t0).unwrap();
    assert_eq!(s.drops.get(DropReason::Replaced), 3);
    assert_eq!(relay.dropped(), 3);
    assert_eq!((s.held_frames, s.queued_frames, s.in_flight), (2, 1, true));
    assert!(relay.sent(out, ms(t0, 10)).unwrap());
    let t = relay.poll_transmit(out, t0).unwrap();
    assert_eq!((t.frame.sequence, t.lost), (5, 3));
    assert!(t.frame.flags.is_discontinuity());
    assert!(!relay.sent(out, ms(t0, 20)).unwrap());
    let s = relay.output_snapshot(out, t0).unwrap();
    assert_eq!((s.frames_in, s.frames_sent, s.drops.total()), (5, 2, 3));
    assert_eq!(s.latency.max, Duration::from_millis(20));
}

#[test]
fn completeness_drop_oldest_and_drop_newest() {
    for (policy, expect) in [
        (DropPolicy::DropOldest, vec![1, 5, 6]),
        (DropPolicy::DropNewest, vec![1, 2, 3]),
    ] {
        let mut relay = Relay::default();
        let input = relay.add_input(PLAIN);
        let cfg = OutputConfig::completeness(3, 1 << 20).with_drop_policy(policy);
        let out = relay.add_output(cfg, &[LaneConfig::new(input)]).unwrap();
        let t0 = Instant::now();
        relay.push(input, frame(1, 10, true), t0).unwrap();
        // Frame 1 in flight still counts: two more fit, then the limit.
        let t1 = relay.poll_transmit(out, t0).unwrap();
        for seq in 2..=6 {
            relay.push(input, frame(seq, 10, true), t0).unwrap();
            let s = relay.output_snapshot(out, t0).unwrap();
            assert!(s.held_frames <= 3);
        }
        relay.sent(out, t0).unwrap();
        let mut got = vec![t1.frame.sequence];
        got.extend(seqs(&drain(&mut relay, out, t0)));
        assert_eq!(got, expect, "{policy:?}");
        let s = relay.output_snapshot(out, t0).unwrap();
        assert_eq!(s.drops.get(DropReason::FrameBudget), 3, "{policy:?}");
    }
}

#[test]
fn byte_budget_and_oversize_never_wedge_the_queue() {
    let mut relay = Relay::default();
    let input = relay.add_input(PLAIN);
    let out = relay
        .add_output(OutputConfig::completeness(100, 1000), &[LaneConfig::new(input)])
        .unwrap();
    let t0 = Instant::now();
    relay.push(input, frame(1, 400, true), t0).unwrap();
    relay.push(input, frame(2, 400, true), t0).unwrap();
    // 1001 bytes alone: larger than the whole budget.
    relay.push(input, frame(3, 1001, true), t0).unwrap();
    // 400 more would make 1200: the oldest gives way.
    relay.push(input, frame(4, 400, true), t0).unwrap();
    let s = relay.output_snapshot(out, t0).unwrap();
    assert_eq!(s.drops.get(DropReason::Oversize), 1);
    assert_eq!(s.drops.get(DropReason::ByteBudget), 1);
    assert_eq!(s.held_bytes, 800);
    assert_eq!(s.budget_use, 0.8);
    assert_eq!(seqs(&drain(&mut relay, out, t0)), [2, 4]);
}

#[test]
fn shrinking_the_budget_trims_the_queue_but_not_the_frame_in_flight() {
    let mut relay = Relay::default();
    let input = relay.add_input(PLAIN);
    let out = relay
        .add_output(OutputConfig::completeness(10, 10_000), &[LaneConfig::new(input)])
        .unwrap();
    let t0 = Instant::now();
    for seq in 1..=5 {
        relay.push(input, frame(seq, 1000, true), t0).unwrap();
    }
    let t = relay.poll_transmit(out, t0).unwrap();
    assert_eq!(t.frame.sequence, 1);
    relay.set_budget(out, Budget::new(2, 500), t0).unwrap();
    let s = relay.output_snapshot(out, t0).unwrap();
    assert_eq!((s.queued_frames, s.held_bytes, s.max_bytes), (0, 1000, 500));
    assert_eq!(
        s.drops.get(DropReason::FrameBudget) + s.drops.get(DropReason::ByteBudget),
        4
    );
    assert!(s.budget_use > 1.0, "the in-flight frame is the only excess");
    relay.sent(out, t0).unwrap();
    // Growing it back lets new frames in again.
    relay.set_budget(out, Budget::new(2, 2000), t0).unwrap();
    relay.push(input, frame(6, 1000, true), t0).unwrap();
    relay.push(input, frame(7, 1000, true), t0).unwrap();
    relay.push(input, frame(8, 1000, true), t0).unwrap();
    assert_eq!(seqs(&drain(&mut relay, out, t0)), [7, 8]);
    // Zero means the relay default.
    relay.set_budget(out, Budget::new(0, 0), t0).unwrap();
    let s = relay.output_snapshot(out, t0).unwrap();
    assert_eq!(
        (s.max_frames, s.max_bytes),
        (framewire_relay::DEFAULT_MAX_FRAMES, framewire_relay::DEFAULT_MAX_BYTES)
    );
}

#[test]
fn opaque_output_under_congestion_carries_whole_frames_only() {
    let mut relay = Relay::default();
    let input = relay.add_input(PLAIN);
    let cfg = OutputConfig::completeness(100, 3000)
        .with_transport(TransportMode::Opaque)
        .with_drop_policy(DropPolicy::DropNewest);
    let out = relay.add_output(cfg, &[LaneConfig::new(input)]).unwrap();
    let other = relay.add_input(PLAIN);
    assert!(matches!(
        relay.attach(out, LaneConfig::new(other)),
        Err(RelayError::InvalidConfig(_))
    ));
    let t0 = Instant::now();
    let mut pushed = Vec::new();
    let mut wire = Vec::new();
    // A slow reader: the transport writes 500 bytes per tick, one frame at a
    // time; a 1000-byte frame arrives every tick.
    let mut writing: Option<(framewire_relay::Transmit, usize)> = None;
    for tick in 0..40u64 {
        let f = frame(tick, 1000, true);
        pushed.push(f.data.clone());
        relay.push(input, f, ms(t0, tick)).unwrap();
        if tick == 20 {
            // The budget shrinks mid-frame: the started frame still finishes.
            relay.set_budget(out, Budget::new(100, 1000), ms(t0, tick)).unwrap();
        }
        let mut room = 500;
        while room > 0 {
            if writing.is_none() {
                writing = relay.poll_transmit(out, ms(t0, tick)).map(|t| (t, 0));
            }
            let Some((t, off)) = writing.as_mut() else { break };
            assert!(!t.encapsulated);
            let n = room.min(t.frame.data.len() - *off);
            wire.extend_from_slice(&t.frame.data[*off..*off + n]);
            *off += n;
            room -= n;
            if *off == t.frame.data.len() {
                writing = None;
                relay.sent(out, ms(t0, tick)).unwrap();
            }
        }
        let s = relay.output_snapshot(out, ms(t0, tick)).unwrap();
        assert!(s.held_bytes <= 3000);
    }
    // The byte stream is whole pushed frames, in push order, with gaps.
    assert_eq!(wire.len() % 1000, 0);
    let mut last = None;
    for chunk in wire.chunks(1000) {
        let seq = pushed
            .iter()
            .position(|p| p[..] == *chunk)
            .expect("a whole pushed frame") as u64;
        assert!(last.is_none_or(|l| seq > l), "in order, each once");
        last = Some(seq);
    }
    let s = relay.output_snapshot(out, t0).unwrap();
    assert!(
        s.drops.get(DropReason::ByteBudget) > 10,
        "congestion drops whole frames"
    );
    assert_eq!(s.frames_sent as usize, wire.len() / 1000);
    assert_eq!(s.transport, TransportMode::Opaque);
}

#[test]
fn inter_coded_output_skips_to_the_next_keyframe() {
    let mut relay = Relay::default();
    let input = relay.add_input(INTER);
    let cfg = OutputConfig::completeness(3, 1 << 20);
    let out = relay.add_output(cfg, &[LaneConfig::new(input)]).unwrap();
    let t0 = Instant::now();
    // K1 P2 P3, then P4 makes K1 give way: P2 and P3 depended on it.
    for (seq, key) in [
        (1, true),
        (2, false),
        (3, false),
        (4, false),
        (5, false),
        (6, true),
        (7, false),
    ] {
        relay.push(input, frame(seq, 10, key), t0).unwrap();
        if seq == 4 {
            let s = relay.output_snapshot(out, t0).unwrap();
            assert!(s.waiting_keyframe && s.lanes[0].waiting_keyframe);
        }
    }
    let s = relay.output_snapshot(out, t0).unwrap();
    assert!(!s.waiting_keyframe);
    assert_eq!(s.drops.get(DropReason::FrameBudget), 1);
    // P2, P3 purged; P4, P5 arrived while waiting.
    assert_eq!(s.drops.get(DropReason::WaitingKeyframe), 4);
    let got = drain(&mut relay, out, t0);
    assert_eq!(seqs(&got), [6, 7]);
    assert_eq!(got[0].lost, 5);
    assert!(
        got[0]
            .frame
            .flags
            .contains(FrameFlags::KEYFRAME.with(FrameFlags::DISCONTINUITY))
    );
    assert_eq!(got[1].lost, 0);
    assert!(!got[1].frame.flags.is_discontinuity());
}

#[test]
fn drop_oldest_keeps_a_queued_keyframe_and_what_follows_it() {
    let mut relay = Relay::default();
    let input = relay.add_input(INTER);
    let out = relay
        .add_output(OutputConfig::completeness(4, 1 << 20), &[LaneConfig::new(input)])
        .unwrap();
    let t0 = Instant::now();
    for (seq, key) in [(1, true), (2, false), (3, true), (4, false), (5, false)] {
        relay.push(input, frame(seq, 10, key), t0).unwrap();
    }
    // K1 gives way, P2 depended on it, K3 starts a new chain.
    assert_eq!(seqs(&drain(&mut relay, out, t0)), [3, 4, 5]);
    let s = relay.output_snapshot(out, t0).unwrap();
    assert_eq!(
        (
            s.drops.get(DropReason::FrameBudget),
            s.drops.get(DropReason::WaitingKeyframe)
        ),
        (1, 1)
    );
    assert!(!s.waiting_keyframe);
}

#[test]
fn low_latency_inter_coded_replacement_waits_for_a_keyframe() {
    let mut relay = Relay::default();
    let input = relay.add_input(INTER);
    let out = relay
        .add_output(OutputConfig::low_latency(), &[LaneConfig::new(input)])
        .unwrap();
    let t0 = Instant::now();
    relay.push(input, frame(1, 10, true), t0).unwrap();
    relay.push(input, frame(2, 10, false), t0).unwrap(); // replaces K1, then cannot be decoded
    relay.push(input, frame(3, 10, false), t0).unwrap();
    assert_eq!(relay.poll_transmit(out, t0), None);
    let s = relay.output_snapshot(out, t0).unwrap();
    assert!(s.waiting_keyframe);
    assert_eq!(s.drops.get(DropReason::Replaced), 1);
    assert_eq!(s.drops.get(DropReason::WaitingKeyframe), 2);
    relay.push(input, frame(4, 10, true), t0).unwrap();
    let got = drain(&mut relay, out, t0);
    assert_eq!((seqs(&got), got[0].lost), (vec![4], 3));

    // The same sequence on an intra-only input: every frame is a keyframe.
    let plain = relay.add_input(PLAIN);
    let out2 = relay
        .add_output(OutputConfig::low_latency(), &[LaneConfig::new(plain)])
        .unwrap();
    for seq in 1..=3 {
        relay.push(plain, frame(seq, 10, false), t0).unwrap();
    }
    assert_eq!(seqs(&drain(&mut relay, out2, t0)), [3]);
}

#[test]
fn partial_frames_assemble_and_abandon_releases_at_once() {
    let mut relay = Relay::default();
    let input = relay.add_input(INTER);
    let out = relay
        .add_output(OutputConfig::completeness(8, 1 << 20), &[LaneConfig::new(input)])
        .unwrap();
    let t0 = Instant::now();
    let meta = |seq, key| FrameMeta {
        sequence: seq,
        timestamp_ns: seq,
        flags: if key { FrameFlags::KEYFRAME } else { FrameFlags(0) },
    };
    relay.begin_frame(input, meta(1, true), 6).unwrap();
    assert_eq!(
        relay.push(input, frame(9, 1, true), t0),
        Err(RelayError::AssemblyInProgress(input))
    );
    relay.append(input, b"abc").unwrap();
    assert!(matches!(
        relay.finish(input, t0),
        Err(RelayError::AssemblyIncomplete { got: 3, .. })
    ));
    assert!(matches!(
        relay.append(input, b"defg"),
        Err(RelayError::AssemblyOverrun { got: 7, .. })
    ));
    relay.append(input, b"def").unwrap();
    assert_eq!(relay.finish(input, t0).unwrap(), &[out][..]);

    // A large frame starts arriving, then the upstream drops.
    relay.begin_frame(input, meta(2, false), 1 << 16).unwrap();
    relay.append(input, &[7; 1000]).unwrap();
    assert_eq!(relay.input_snapshot(input).unwrap().assembling_bytes, 1 << 16);
    assert!(relay.abandon(input, t0).unwrap());
    assert!(!relay.abandon(input, t0).unwrap(), "nothing left to abandon");
    let i = relay.input_snapshot(input).unwrap();
    assert_eq!(
        (i.assembling_bytes, i.frames_abandoned, i.frames_in, i.bytes_in),
        (0, 1, 1, 6)
    );
    let s = relay.output_snapshot(out, t0).unwrap();
    assert_eq!(s.drops.get(DropReason::Abandoned), 1);
    assert!(s.waiting_keyframe, "a lost inter-coded frame breaks the chain");
    assert_eq!(s.held_bytes, 6, "only the finished frame is held");
    assert_eq!(s.frames_in, 2);

    relay.push(input, frame(3, 10, false), t0).unwrap();
    relay.push(input, frame(4, 10, true), t0).unwrap();
    let got = drain(&mut relay, out, t0);
    assert_eq!(got[0].frame.data, Bytes::from_static(b"abcdef"));
    assert_eq!(seqs(&got), [1, 4]);
    assert_eq!(got[1].lost, 2);

    // Removing the input mid-frame abandons it too.
    relay.begin_frame(input, meta(5, true), 100).unwrap();
    relay.append(input, &[1; 50]).unwrap();
    relay.remove_input(input, t0).unwrap();
    assert_eq!(relay.snapshot(t0).assembling_bytes(), 0);
    assert_eq!(
        relay.output_snapshot(out, t0).unwrap().drops.get(DropReason::Abandoned),
        2
    );
    assert_eq!(
        relay.begin_frame(input, meta(6, true), 1),
        Err(RelayError::UnknownInput(input))
    );
    let big = RelayConfig::default().max_frame_bytes + 1;
    let other = relay.add_input(PLAIN);
    assert!(matches!(
        relay.begin_frame(other, meta(1, true), big),
        Err(RelayError::FrameTooLarge { .. })
    ));
}

#[test]
fn removed_input_drains_then_its_lane_goes() {
    let mut relay = Relay::default();
    let a = relay.add_input(PLAIN);
    let b = relay.add_input(PLAIN);
    let cfg = OutputConfig::completeness(10, 1 << 20);
    let out = relay
        .add_output(cfg, &[LaneConfig::new(a), LaneConfig::new(b)])
        .unwrap();
    let t0 = Instant::now();
    relay.push(a, frame(1, 10, true), t0).unwrap();
    relay.push(a, frame(2, 10, true), t0).unwrap();
    relay.remove_input(a, t0).unwrap();
    assert_eq!(relay.push(a, frame(3, 10, true), t0), Err(RelayError::UnknownInput(a)));
    let s = relay.output_snapshot(out, t0).unwrap();
    assert_eq!((s.lanes.len(), s.lanes[0].detached), (2, true));
    assert_eq!(seqs(&drain(&mut relay, out, t0)), [1, 2]);
    assert_eq!(relay.output_snapshot(out, t0).unwrap().lanes.len(), 1);
    relay.push(b, frame(4, 10, true), t0).unwrap();
    assert_eq!(seqs(&drain(&mut relay, out, t0)), [4]);

    // Removing an output releases even its frame in flight.
    relay.push(b, frame(5, 10, true), t0).unwrap();
    relay.push(b, frame(6, 10, true), t0).unwrap();
    let _in_flight = relay.poll_transmit(out, t0).unwrap();
    let last = relay.remove_output(out, t0).unwrap();
    assert_eq!((last.held_frames, last.frames_in), (2, 5));
    assert_eq!(relay.input_snapshot(b).unwrap().outputs, 0);
    assert_eq!(relay.sent(out, t0), Err(RelayError::UnknownOutput(out)));
    assert_eq!(relay.snapshot(t0).held_frames(), 0);
}

#[test]
fn wake_list_names_exactly_the_outputs_that_became_ready() {
    let mut relay = Relay::default();
    let input = relay.add_input(PLAIN);
    let idle = relay
        .add_output(OutputConfig::low_latency(), &[LaneConfig::new(input)])
        .unwrap();
    let busy = relay
        .add_output(OutputConfig::low_latency(), &[LaneConfig::new(input)])
        .unwrap();
    let queued = relay
        .add_output(OutputConfig::completeness(8, 1 << 20), &[LaneConfig::new(input)])
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(
        relay.push(input, frame(1, 1, true), t0).unwrap(),
        &[idle, busy, queued][..]
    );
    drain(&mut relay, idle, t0);
    relay.poll_transmit(busy, t0).unwrap();
    // idle: empty again; busy: in flight; queued: still has frame 1.
    assert_eq!(relay.push(input, frame(2, 1, true), t0).unwrap(), &[idle][..]);
    assert!(relay.is_ready(queued) && !relay.is_ready(busy));
    assert_eq!(relay.sent(idle, t0), Err(RelayError::NothingInFlight(idle)));
}

#[test]
fn invalid_configurations_are_refused() {
    let mut relay = Relay::default();
    let a = relay.add_input(PLAIN);
    let cases = [
        OutputConfig {
            mode: framewire_proto::DeliveryMode::Unknown(9),
            ..OutputConfig::default()
        },
        OutputConfig::default().with_drop_policy(DropPolicy::Unknown(9)),
        OutputConfig::default().with_transport(TransportMode::Unknown(9)),
        OutputConfig::default().with_scheduler(framewire_relay::SchedulerKind::DeficitRoundRobin { quantum: 0 }),
    ];
    for cfg in cases {
        assert!(matches!(
            relay.add_output(cfg, &[LaneConfig::new(a)]),
            Err(RelayError::InvalidConfig(_))
        ));
    }
    assert!(relay.add_output(OutputConfig::default(), &[]).is_err());
    assert!(
        relay
            .add_output(OutputConfig::default(), &[a.into(), a.into()])
            .is_err()
    );
    let out = relay.add_output(OutputConfig::default(), &[a.into()]).unwrap();
    assert_eq!(
        relay.attach(out, a.into()),
        Err(RelayError::AlreadyAttached { input: a, output: out })
    );
    assert_eq!(relay.output_count(), 1);
}

#[test]
fn snapshot_converts_to_the_wire_stats() {
    let mut relay = Relay::default();
    let input = relay.add_input(PLAIN);
    let out = relay
        .add_output(
            OutputConfig::completeness(2, 1 << 20),
            &[LaneConfig::new(input).with_priority(200)],
        )
        .unwrap();
    let t0 = Instant::now();
    for seq in 1..=3 {
        relay.push(input, frame(seq, 100, true), ms(t0, seq)).unwrap();
    }
    let t = relay.poll_transmit(out, ms(t0, 3)).unwrap();
    assert_eq!(t.frame.sequence, 2);
    relay.sent(out, ms(t0, 10)).unwrap();
    let snap = relay.snapshot(ms(t0, 12));
    let o = &snap.outputs[0];
    assert_eq!(o.oldest_age, Some(Duration::from_millis(9)));
    let w = o.to_proto(OutputLabels {
        channel: 3,
        stream: "cam",
        peer: "10.0.0.2:7000 viewer",
    });
    assert_eq!((w.channel, w.stream.as_str(), w.priority), (3, "cam", 200));
    assert_eq!((w.frames_in, w.frames_sent, w.bytes_sent), (3, 1, 100));
    assert_eq!(w.drops.len(), 1);
    assert_eq!((w.drops[0].reason, w.drops[0].count), (DropReason::FrameBudget, 1));
    assert_eq!(
        (w.queue_frames, w.queue_bytes, w.max_frames, w.max_bytes),
        (1, 100, 2, 1 << 20)
    );
    assert_eq!(w.oldest_age_us, 9000);
    // Frame 2 arrived at 2 ms, was sent at 10 ms.
    assert_eq!(
        (w.latency_p50_us, w.latency_p99_us, w.latency_max_us),
        (8000, 8000, 8000)
    );
    assert!(!w.waiting_keyframe);
    let i = snap.inputs[0].to_proto(InputLabels {
        stream: "cam",
        state: StreamState::Live,
        upstream: "",
        reconnects: 0,
    });
    assert_eq!((i.frames_in, i.bytes_in), (3, 300));

    let labels = InputLabels {
        stream: "cam",
        state: StreamState::Live,
        upstream: "",
        reconnects: 0,
    };
    let all = snap.to_proto(|_| Some(labels), |_| None);
    assert_eq!((all.inputs.len(), all.outputs.len()), (1, 0));
    assert_eq!(all.inputs[0], i);
}

#[test]
fn next_head_describes_the_next_frame_and_suppress_next_drops_it() {
    let mut relay = Relay::default();
    let input = relay.add_input(PLAIN);
    let out = relay
        .add_output(OutputConfig::completeness(8, 1 << 20), &[LaneConfig::new(input)])
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(relay.next_head(out), None);
    relay.push(input, frame(1, 300, true), t0).unwrap();
    relay.push(input, frame(2, 500, true), t0).unwrap();
    let (len, tag) = relay.next_head(out).expect("a frame is ready");
    assert_eq!(len, 300);
    assert!(relay.suppress_next(out, t0));
    let (len2, tag2) = relay.next_head(out).expect("the second frame");
    assert_eq!(len2, 500);
    assert_ne!(tag, tag2);
    assert_eq!(seqs(&drain(&mut relay, out, t0)), [2]);
    assert!(!relay.suppress_next(out, t0));
    let snap = relay.output_snapshot(out, t0).unwrap();
    assert_eq!(snap.drops.get(DropReason::Suppressed), 1);
    assert_eq!(snap.frames_in, snap.frames_sent + snap.drops.total());
}
