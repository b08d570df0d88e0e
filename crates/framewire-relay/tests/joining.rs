//! A new output of an inter-coded input: where it starts (a keyframe: the
//! cached group of pictures at once, or the next one), how a low-latency
//! output catches up on the group, and when it gives up, each with an
//! exact expected outcome.

mod common;

use std::time::{Duration, Instant};

use common::{drain, frame, ms, order, seqs};
use framewire_proto::FrameFlags;
use framewire_proto::control::DropReason;
use framewire_relay::{Budget, FrameMeta, InputConfig, LaneConfig, OutputConfig, Relay, RelayConfig};

const PLAIN: InputConfig = InputConfig { inter_coded: false };
const INTER: InputConfig = InputConfig { inter_coded: true };

#[test]
fn a_new_output_of_an_inter_coded_input_starts_at_a_keyframe() {
    // Without a group-of-pictures cache: at the next keyframe.
    let mut relay = Relay::new(RelayConfig::default().with_gop_cache_bytes(0));
    let input = relay.add_input(INTER);
    let t0 = Instant::now();
    relay.push(input, frame(1, 100, true), t0).unwrap();
    relay.push(input, frame(2, 100, false), t0).unwrap();
    // Joins in the middle of a group of pictures.
    let late = relay
        .add_output(OutputConfig::completeness(8, 1 << 20), &[LaneConfig::new(input)])
        .unwrap();
    relay.push(input, frame(3, 100, false), t0).unwrap();
    relay.push(input, frame(4, 100, true), t0).unwrap();
    relay.push(input, frame(5, 100, false), t0).unwrap();
    assert_eq!(seqs(&drain(&mut relay, late, t0)), [4, 5]);
    let snap = relay.output_snapshot(late, t0).unwrap();
    assert_eq!(snap.drops.get(DropReason::WaitingKeyframe), 1);
    // A plain input's new output takes the next frame, whatever it is.
    let plain = relay.add_input(PLAIN);
    let out = relay
        .add_output(OutputConfig::low_latency(), &[LaneConfig::new(plain)])
        .unwrap();
    relay.push(plain, frame(1, 100, false), t0).unwrap();
    assert_eq!(seqs(&drain(&mut relay, out, t0)), [1]);
}

/// An inter-coded input with a group in progress: key 1, then 2 and 3.
fn mid_group(cache: usize) -> (Relay, framewire_relay::InputId, Instant) {
    let mut relay = Relay::new(RelayConfig::default().with_gop_cache_bytes(cache));
    let input = relay.add_input(INTER);
    let t0 = Instant::now();
    relay.push(input, frame(1, 100, true), t0).unwrap();
    relay.push(input, frame(2, 100, false), ms(t0, 33)).unwrap();
    relay.push(input, frame(3, 100, false), ms(t0, 66)).unwrap();
    (relay, input, t0)
}

/// [`mid_group`] with a cache, and a low-latency output that joins it.
fn joined_low_latency() -> (Relay, framewire_relay::InputId, framewire_relay::OutputId, Instant) {
    let (mut relay, input, t0) = mid_group(1 << 20);
    let out = relay
        .add_output(OutputConfig::low_latency(), &[LaneConfig::new(input)])
        .unwrap();
    (relay, input, out, t0)
}

#[test]
fn a_completeness_output_joining_mid_group_gets_the_whole_group_at_once() {
    let (mut relay, input, t0) = mid_group(1 << 20);
    let out = relay
        .add_output(OutputConfig::completeness(16, 1 << 20), &[LaneConfig::new(input)])
        .unwrap();
    assert!(relay.is_ready(out), "a frame is ready at once");
    relay.push(input, frame(4, 100, false), ms(t0, 100)).unwrap();
    let got = drain(&mut relay, out, ms(t0, 100));
    assert_eq!(seqs(&got), [1, 2, 3, 4]);
    assert_eq!(got[0].lost, 0);
    let s = relay.output_snapshot(out, ms(t0, 100)).unwrap();
    assert_eq!((s.frames_in, s.frames_sent, s.drops.total()), (4, 4, 0));
    // The cached frames count their wait since they arrived.
    assert!(s.latency.max >= Duration::from_millis(100));
}

#[test]
fn a_low_latency_output_joining_mid_group_catches_up_and_goes_on_live() {
    let (mut relay, input, out, t0) = joined_low_latency();
    assert!(relay.is_ready(out), "a frame is ready at once");
    // The whole group at once: its decoder shows a picture and reaches the
    // current one, with nothing lost.
    let got = drain(&mut relay, out, t0);
    assert_eq!(seqs(&got), [1, 2, 3]);
    assert!(got.iter().all(|t| t.lost == 0));
    // Live from there on: the next frames follow it directly.
    relay.push(input, frame(4, 100, false), ms(t0, 100)).unwrap();
    assert_eq!(seqs(&drain(&mut relay, out, ms(t0, 100))), [4]);
    // Caught up, it is low-latency again: of two frames before a send, the
    // newest wins, and the frame after a replaced one waits for a keyframe.
    relay.push(input, frame(5, 100, false), ms(t0, 133)).unwrap();
    relay.push(input, frame(6, 100, false), ms(t0, 166)).unwrap();
    assert!(drain(&mut relay, out, ms(t0, 166)).is_empty());
    relay.push(input, frame(7, 100, true), ms(t0, 200)).unwrap();
    let got = drain(&mut relay, out, ms(t0, 200));
    assert_eq!(seqs(&got), [7]);
    assert_eq!(got[0].lost, 2);
    let s = relay.output_snapshot(out, ms(t0, 200)).unwrap();
    assert_eq!((s.frames_in, s.frames_sent), (7, 5));
    assert_eq!(s.drops.get(DropReason::Replaced), 1);
    assert_eq!(s.drops.get(DropReason::WaitingKeyframe), 1);

    // A frame that comes while the group is partly sent queues behind it.
    let (mut relay, input, out, t0) = joined_low_latency();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(relay.poll_transmit(out, t0).unwrap().frame.sequence);
        relay.sent(out, t0).unwrap();
    }
    relay.push(input, frame(4, 100, false), ms(t0, 100)).unwrap();
    assert_eq!(relay.output_snapshot(out, ms(t0, 100)).unwrap().queued_frames, 2);
    got.extend(seqs(&drain(&mut relay, out, ms(t0, 100))));
    assert_eq!(got, [1, 2, 3, 4]);
    assert_eq!(relay.output_snapshot(out, ms(t0, 100)).unwrap().drops.total(), 0);

    // A keyframe that comes while the group waits is a newer start: the
    // group gives way to it.
    let (mut relay, input, out, t0) = joined_low_latency();
    relay.push(input, frame(4, 100, true), ms(t0, 100)).unwrap();
    let got = drain(&mut relay, out, ms(t0, 100));
    assert_eq!(seqs(&got), [4]);
    assert_eq!(got[0].lost, 3);
    let s = relay.output_snapshot(out, ms(t0, 100)).unwrap();
    // The keyframe replaced, its dependents with it.
    assert_eq!(s.drops.get(DropReason::Replaced), 1);
    assert_eq!(s.drops.get(DropReason::WaitingKeyframe), 2);

    // Right after a keyframe, the next frame queues behind it, unsent or not.
    for send_first in [false, true] {
        let mut relay = Relay::default();
        let input = relay.add_input(INTER);
        relay.push(input, frame(1, 100, true), t0).unwrap();
        let out = relay
            .add_output(OutputConfig::low_latency(), &[LaneConfig::new(input)])
            .unwrap();
        let mut got = Vec::new();
        if send_first {
            got = seqs(&drain(&mut relay, out, t0));
        }
        relay.push(input, frame(2, 100, false), t0).unwrap();
        got.extend(seqs(&drain(&mut relay, out, t0)));
        assert_eq!(got, [1, 2], "sent first: {send_first}");
    }
}

#[test]
fn a_low_latency_output_that_cannot_catch_up_waits_for_the_next_keyframe() {
    // A group of 3; the output sends nothing while 4 and 5 arrive.
    let (mut relay, input, out, t0) = joined_low_latency();
    // One frame more than the group may queue behind it...
    relay.push(input, frame(4, 100, false), ms(t0, 100)).unwrap();
    let s = relay.output_snapshot(out, ms(t0, 100)).unwrap();
    assert_eq!((s.queued_frames, s.drops.total()), (4, 0));
    // ...but a link further behind than that is not catching up: the
    // newest wins, what depended on the dropped frames goes, and the
    // lane waits for a keyframe.
    relay.push(input, frame(5, 100, false), ms(t0, 133)).unwrap();
    assert!(drain(&mut relay, out, ms(t0, 133)).is_empty());
    relay.push(input, frame(6, 100, false), ms(t0, 166)).unwrap();
    relay.push(input, frame(7, 100, true), ms(t0, 200)).unwrap();
    let got = drain(&mut relay, out, ms(t0, 200));
    assert_eq!(seqs(&got), [7]);
    assert_eq!(got[0].lost, 6);
    let s = relay.output_snapshot(out, ms(t0, 200)).unwrap();
    assert_eq!((s.frames_in, s.frames_sent, s.drops.total()), (7, 1, 6));

    // The same while one frame is in flight: it finishes, the rest waits.
    let (mut relay, input, out, t0) = joined_low_latency();
    let first = relay.poll_transmit(out, t0).unwrap();
    assert_eq!(first.frame.sequence, 1);
    for (seq, at) in [(4, 100), (5, 133), (6, 166)] {
        relay.push(input, frame(seq, 100, false), ms(t0, at)).unwrap();
    }
    relay.sent(out, ms(t0, 166)).unwrap();
    assert!(drain(&mut relay, out, ms(t0, 166)).is_empty());
    relay.push(input, frame(7, 100, true), ms(t0, 200)).unwrap();
    let got = drain(&mut relay, out, ms(t0, 200));
    assert_eq!(seqs(&got), [7]);
    // 2 to 5 queued and replaced, 6 waited: the gap after 1.
    assert_eq!(got[0].lost, 5);
    let s = relay.output_snapshot(out, ms(t0, 200)).unwrap();
    assert_eq!((s.frames_in, s.frames_sent, s.drops.total()), (7, 2, 5));

    // A link that sends one frame for each that comes only keeps pace, a
    // group behind: that is not catching up either.
    let (mut relay, input, out, t0) = joined_low_latency();
    let mut sent = Vec::new();
    for seq in 4..10 {
        if let Some(t) = relay.poll_transmit(out, t0) {
            sent.push(t.frame.sequence);
            relay.sent(out, t0).unwrap();
        }
        relay.push(input, frame(seq, 100, false), ms(t0, 33 * seq)).unwrap();
    }
    assert_eq!(sent, [1, 2], "then the group gave way");
    let s = relay.output_snapshot(out, ms(t0, 300)).unwrap();
    assert_eq!((s.queued_frames, s.drops.total()), (0, 7));
}

#[test]
fn a_group_over_a_low_latency_budget_gives_the_keyframe_alone() {
    // 250 bytes of budget: the group of three (300 bytes) does not fit.
    let (mut relay, input, t0) = mid_group(1 << 20);
    let config = OutputConfig {
        budget: Budget::new(0, 250),
        ..OutputConfig::low_latency()
    };
    let out = relay.add_output(config, &[LaneConfig::new(input)]).unwrap();
    assert_eq!(seqs(&drain(&mut relay, out, t0)), [1]);
    // 4 depends on 2 and 3, which it never got.
    relay.push(input, frame(4, 100, false), ms(t0, 100)).unwrap();
    assert!(drain(&mut relay, out, ms(t0, 100)).is_empty());
    relay.push(input, frame(5, 100, true), ms(t0, 133)).unwrap();
    let got = drain(&mut relay, out, ms(t0, 133));
    assert_eq!(seqs(&got), [5]);
    assert_eq!(got[0].lost, 3);
    let s = relay.output_snapshot(out, ms(t0, 133)).unwrap();
    assert_eq!(s.drops.get(DropReason::WaitingKeyframe), 3);
}

#[test]
fn a_lane_catching_up_takes_nothing_from_the_other_lanes() {
    // One output of two inputs: the camera's group, and a plain stream.
    let (mut relay, cam, t0) = mid_group(1 << 20);
    let plain = relay.add_input(PLAIN);
    let out = relay
        .add_output(
            OutputConfig::low_latency(),
            &[LaneConfig::new(cam), LaneConfig::new(plain)],
        )
        .unwrap();
    relay.push(plain, frame(1, 100, false), ms(t0, 100)).unwrap();
    relay.push(cam, frame(4, 100, false), ms(t0, 100)).unwrap();
    let s = relay.output_snapshot(out, ms(t0, 100)).unwrap();
    assert_eq!((s.queued_frames, s.drops.total()), (5, 0));
    assert!(s.held_frames <= s.max_frames, "{} of {}", s.held_frames, s.max_frames);
    let got = order(&drain(&mut relay, out, ms(t0, 100)));
    let of = |i| {
        got.iter()
            .filter(|(input, _)| *input == i)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
    };
    assert_eq!((of(cam), of(plain)), (vec![1, 2, 3, 4], vec![1]));
    let s = relay.output_snapshot(out, ms(t0, 100)).unwrap();
    assert_eq!((s.frames_sent, s.drops.total()), (5, 0));

    // A catch-up that ends with frames still queued (here a frame too big
    // for the output's budget) leaves them to be sent, and they still do
    // not count against the other lane.
    let (mut relay, cam, t0) = mid_group(1 << 20);
    let plain = relay.add_input(PLAIN);
    let config = OutputConfig {
        budget: Budget::new(0, 1000),
        ..OutputConfig::low_latency()
    };
    let out = relay
        .add_output(config, &[LaneConfig::new(cam), LaneConfig::new(plain)])
        .unwrap();
    relay.push(cam, frame(4, 2000, false), ms(t0, 100)).unwrap();
    relay.push(plain, frame(1, 100, false), ms(t0, 100)).unwrap();
    let s = relay.output_snapshot(out, ms(t0, 100)).unwrap();
    assert_eq!(
        (s.queued_frames, s.drops.get(DropReason::Oversize), s.drops.total()),
        (4, 1, 1)
    );
    assert!(s.held_frames <= s.max_frames, "{} of {}", s.held_frames, s.max_frames);
    let got = order(&drain(&mut relay, out, ms(t0, 100)));
    let of = |i| {
        got.iter()
            .filter(|(input, _)| *input == i)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
    };
    assert_eq!((of(cam), of(plain)), (vec![1, 2, 3], vec![1]));
}

#[test]
fn a_group_too_long_for_the_cache_or_broken_is_not_offered() {
    // 250 bytes of cache: 1 and 2 fit, 3 does not; nothing until key 4.
    let (mut relay, input, t0) = mid_group(250);
    let out = relay
        .add_output(OutputConfig::completeness(16, 1 << 20), &[LaneConfig::new(input)])
        .unwrap();
    assert!(!relay.is_ready(out));
    relay.push(input, frame(4, 100, true), t0).unwrap();
    assert_eq!(seqs(&drain(&mut relay, out, t0)), [4]);

    // A frame lost in pieces breaks the group.
    let (mut relay, input, t0) = mid_group(1 << 20);
    let meta = FrameMeta {
        sequence: 4,
        timestamp_ns: 0,
        flags: FrameFlags(0),
    };
    relay.begin_frame(input, meta, 100).unwrap();
    relay.abandon(input, t0).unwrap();
    let out = relay
        .add_output(OutputConfig::completeness(16, 1 << 20), &[LaneConfig::new(input)])
        .unwrap();
    assert!(!relay.is_ready(out), "a broken group is not offered");
    // A plain input keeps no group.
    let mut relay = Relay::default();
    let plain = relay.add_input(PLAIN);
    relay.push(plain, frame(1, 100, true), t0).unwrap();
    let out = relay
        .add_output(OutputConfig::completeness(16, 1 << 20), &[LaneConfig::new(plain)])
        .unwrap();
    assert!(!relay.is_ready(out));
}

#[test]
fn a_detached_lane_emptied_by_suppression_goes_and_attaching_again_works() {
    // A detached lane whose last frame a link's suppression drops is gone
    // at once; an input attached again gets its cached group (three
    // frames) whole on its new lane.
    let (mut relay, inter, t0) = mid_group(1 << 20);
    let plain = relay.add_input(PLAIN);
    let out = relay
        .add_output(
            OutputConfig::completeness(16, 1 << 20),
            &[LaneConfig::new(plain), LaneConfig::new(inter)],
        )
        .unwrap();
    assert_eq!(seqs(&drain(&mut relay, out, t0)), [1, 2, 3]);
    relay.push(plain, frame(7, 100, true), ms(t0, 1)).unwrap();
    relay.detach(out, plain).unwrap();
    relay.detach(out, inter).unwrap();
    assert!(relay.suppress_next(out, t0), "frame 7 is suppressed");
    let s = relay.output_snapshot(out, t0).unwrap();
    assert!(s.lanes.is_empty(), "both lanes drained and detached: {:?}", s.lanes);
    relay.attach(out, LaneConfig::new(inter)).unwrap();
    assert_eq!(seqs(&drain(&mut relay, out, t0)), [1, 2, 3]);
    let s = relay.output_snapshot(out, t0).unwrap();
    assert_eq!((s.frames_in, s.frames_sent, s.drops.total()), (7, 6, 1));
}

#[test]
fn a_group_with_a_frame_that_never_arrived_is_not_cached() {
    // Key 1, then 2 and 3; 4 never reaches the input (lost upstream), 5
    // arrives: a new output must not be handed 1, 2, 3 and then 5.
    let (mut relay, input, t0) = mid_group(1 << 20);
    relay.push(input, frame(5, 100, false), ms(t0, 133)).unwrap();
    let out = relay
        .add_output(OutputConfig::completeness(16, 1 << 20), &[LaneConfig::new(input)])
        .unwrap();
    assert!(!relay.is_ready(out), "a broken group is not offered");
    relay.push(input, frame(6, 100, true), ms(t0, 166)).unwrap();
    assert_eq!(seqs(&drain(&mut relay, out, ms(t0, 166))), [6]);
}
