//! Each scheduler, with exact expected sequences.

mod common;

use std::time::{Duration, Instant};

use common::{drain, frame, ms, order};
use framewire_proto::control::DropReason;
use framewire_relay::{
    InputConfig, InputId, LaneConfig, OutputConfig, OutputId, Relay, SchedulerKind, SuppressionConfig,
};
use proptest::prelude::*;

const PLAIN: InputConfig = InputConfig { inter_coded: false };

/// A completeness output big enough never to drop, over `lanes`.
fn setup(kind: SchedulerKind, lanes: &[(u8, u32)]) -> (Relay, Vec<InputId>, OutputId) {
    let mut relay = Relay::default();
    let inputs: Vec<InputId> = lanes.iter().map(|_| relay.add_input(PLAIN)).collect();
    let cfgs: Vec<LaneConfig> = inputs
        .iter()
        .zip(lanes)
        .map(|(&i, &(p, w))| LaneConfig::new(i).with_priority(p).with_weight(w))
        .collect();
    let out = relay
        .add_output(OutputConfig::completeness(10_000, 1 << 30).with_scheduler(kind), &cfgs)
        .unwrap();
    (relay, inputs, out)
}

/// Lane letters of the drained sequence, e.g. "ABBB".
fn letters(relay: &mut Relay, inputs: &[InputId], out: OutputId, now: Instant) -> String {
    order(&drain(relay, out, now))
        .into_iter()
        .map(|(i, _)| (b'A' + inputs.iter().position(|x| *x == i).unwrap() as u8) as char)
        .collect()
}

#[test]
fn strict_priority_serves_the_highest_then_arrival_order() {
    let (mut relay, inp, out) = setup(SchedulerKind::StrictPriority, &[(10, 1), (200, 1), (200, 1)]);
    let t0 = Instant::now();
    for seq in 1..=2 {
        for &i in &inp {
            relay.push(i, frame(seq, 10, true), t0).unwrap();
        }
    }
    let got = order(&drain(&mut relay, out, t0));
    let want = [
        (inp[1], 1),
        (inp[2], 1),
        (inp[1], 2),
        (inp[2], 2),
        (inp[0], 1),
        (inp[0], 2),
    ];
    assert_eq!(got, want);
}

#[test]
fn strict_priority_sheds_the_lowest_priority_first() {
    let mut relay = Relay::default();
    let low = relay.add_input(PLAIN);
    let high = relay.add_input(PLAIN);
    let out = relay
        .add_output(
            OutputConfig::completeness(4, 1 << 20),
            &[
                LaneConfig::new(low).with_priority(1),
                LaneConfig::new(high).with_priority(9),
            ],
        )
        .unwrap();
    let t0 = Instant::now();
    relay.push(low, frame(1, 10, true), t0).unwrap();
    relay.push(high, frame(1, 10, true), t0).unwrap();
    relay.push(low, frame(2, 10, true), t0).unwrap();
    for seq in 2..=5 {
        relay.push(high, frame(seq, 10, true), t0).unwrap();
    }
    // high 3 evicts low 1, high 4 evicts low 2, high 5 evicts high 1.
    assert_eq!(
        order(&drain(&mut relay, out, t0)),
        [(high, 2), (high, 3), (high, 4), (high, 5)]
    );
    let s = relay.output_snapshot(out, t0).unwrap();
    assert_eq!((s.lanes[0].drops.total(), s.lanes[1].drops.total()), (2, 1));
}

#[test]
fn round_robin_takes_one_from_each_non_empty_input() {
    let (mut relay, inp, out) = setup(SchedulerKind::RoundRobin, &[(0, 1), (255, 1), (9, 1)]);
    let t0 = Instant::now();
    for (lane, n) in [(0, 3), (1, 1), (2, 2)] {
        for seq in 1..=n {
            relay.push(inp[lane], frame(seq, 10, true), t0).unwrap();
        }
    }
    // Priorities do not matter to round-robin.
    assert_eq!(letters(&mut relay, &inp, out, t0), "ABCACA");
}

#[test]
fn round_robin_interleaves_live_arrivals() {
    let (mut relay, inp, out) = setup(SchedulerKind::RoundRobin, &[(0, 1), (0, 1)]);
    let t0 = Instant::now();
    let mut got = String::new();
    // A sends two frames per tick, B one; the link takes two per tick.
    for tick in 0..4 {
        relay.push(inp[0], frame(2 * tick, 10, true), t0).unwrap();
        relay.push(inp[0], frame(2 * tick + 1, 10, true), t0).unwrap();
        relay.push(inp[1], frame(tick, 10, true), t0).unwrap();
        for _ in 0..2 {
            let t = relay.poll_transmit(out, t0).unwrap();
            got.push(if t.input == inp[0] { 'A' } else { 'B' });
            relay.sent(out, t0).unwrap();
        }
    }
    assert_eq!(got, "ABABABAB");
    assert_eq!(letters(&mut relay, &inp, out, t0), "AAAA");
}

#[test]
fn weighted_round_robin_one_to_three() {
    let (mut relay, inp, out) = setup(SchedulerKind::WeightedRoundRobin, &[(0, 1), (0, 3)]);
    let t0 = Instant::now();
    for seq in 1..=8 {
        relay.push(inp[0], frame(seq, 10, true), t0).unwrap();
        relay.push(inp[1], frame(seq, 10, true), t0).unwrap();
    }
    // B runs out after 8, then A has the link to itself.
    assert_eq!(letters(&mut relay, &inp, out, t0), "ABBBABBBABBAAAAA");
}

#[test]
fn weighted_round_robin_ratio_holds_over_a_long_backlog() {
    let (mut relay, inp, out) = setup(SchedulerKind::WeightedRoundRobin, &[(0, 1), (0, 3), (0, 4)]);
    let t0 = Instant::now();
    for seq in 1..=200 {
        for &i in &inp {
            relay.push(i, frame(seq, 10, true), t0).unwrap();
        }
    }
    let mut counts = [0; 3];
    for _ in 0..400 {
        let t = relay.poll_transmit(out, t0).unwrap();
        counts[inp.iter().position(|i| *i == t.input).unwrap()] += 1;
        relay.sent(out, t0).unwrap();
    }
    assert_eq!(counts, [50, 150, 200]);
}

#[test]
fn deficit_round_robin_is_fair_in_bytes_with_tenfold_frame_sizes() {
    // The same sequence whatever the quantum's scale: with a small quantum
    // the rounds in which nobody can send are skipped arithmetically.
    for quantum in [10_000, 1000, 100, 1] {
        let (mut relay, inp, out) = setup(SchedulerKind::DeficitRoundRobin { quantum }, &[(0, 1), (0, 1)]);
        let t0 = Instant::now();
        for seq in 1..=40 {
            relay.push(inp[0], frame(seq, 1000, true), t0).unwrap();
        }
        for seq in 1..=6 {
            relay.push(inp[1], frame(seq, 10_000, true), t0).unwrap();
        }
        let got = letters(&mut relay, &inp, out, t0);
        let round = format!("{}B", "A".repeat(10));
        assert_eq!(got, format!("{}BB", round.repeat(4)), "quantum {quantum}");
        let s = relay.output_snapshot(out, t0).unwrap();
        assert_eq!(s.bytes_sent, 40 * 1000 + 6 * 10_000);
    }
}

#[test]
fn deficit_round_robin_weights_scale_the_byte_share() {
    let (mut relay, inp, out) = setup(SchedulerKind::DeficitRoundRobin { quantum: 500 }, &[(0, 1), (0, 3)]);
    let t0 = Instant::now();
    for seq in 1..=300 {
        relay.push(inp[0], frame(seq, 250, true), t0).unwrap();
    }
    for seq in 1..=100 {
        relay.push(inp[1], frame(seq, 2500, true), t0).unwrap();
    }
    let mut bytes = [0usize; 2];
    while bytes[1] < 60 * 2500 {
        let t = relay.poll_transmit(out, t0).unwrap();
        bytes[usize::from(t.input == inp[1])] += t.frame.data.len();
        relay.sent(out, t0).unwrap();
    }
    // 3:1 in bytes: per round A earns 500 (two frames), B 1500; B's 60th
    // frame goes in round 100, after A's two of that round.
    assert_eq!(bytes, [50 * 1000, 60 * 2500]);
}

#[test]
fn source_suppression_with_hysteresis() {
    let cfg = SuppressionConfig {
        window: Duration::from_millis(800),
        suppress_above: 0.5,
        resume_below: 0.2,
        min_frames: 4,
    };
    let mut relay = Relay::default();
    let a = relay.add_input(PLAIN);
    let b = relay.add_input(PLAIN);
    let out = relay
        .add_output(
            OutputConfig::low_latency().with_scheduler(SchedulerKind::SourceSuppression(cfg)),
            &[LaneConfig::new(a), LaneConfig::new(b)],
        )
        .unwrap();
    let t0 = Instant::now();
    relay.push(b, frame(1, 10, true), t0).unwrap();
    let mut suppressed_at = Vec::new();
    // A's frames every 10 ms into a link that sends nothing: each replaces
    // the last. Frame 5 sees 3 drops in 4 offered (75 %) and is suppressed;
    // offers keep counting, so frame 17 sees 3 in 16 (18.75 %) and resumes;
    // replacements push the rate back up until frame 28 sees 14 in 27.
    for seq in 1..=30u64 {
        relay.push(a, frame(seq, 10, true), ms(t0, (seq - 1) * 10)).unwrap();
        if relay.output_snapshot(out, t0).unwrap().lanes[0].suppressed {
            suppressed_at.push(seq);
        }
    }
    let want: Vec<u64> = (5..=16).chain(28..=30).collect();
    assert_eq!(suppressed_at, want);
    let s = relay.output_snapshot(out, t0).unwrap();
    assert_eq!(s.lanes[0].drops.get(DropReason::Suppressed), 15);
    assert_eq!(s.lanes[0].drops.get(DropReason::Replaced), 14);
    assert_eq!((s.lanes[1].suppressed, s.lanes[1].drops.total()), (false, 0));
    let got = drain(&mut relay, out, ms(t0, 300));
    assert_eq!(order(&got), [(a, 27), (b, 1)]);
    assert_eq!(got[0].lost, 26);
    // A second later the window holds nothing: A flows again.
    relay.push(a, frame(31, 10, true), ms(t0, 1300)).unwrap();
    let got = drain(&mut relay, out, ms(t0, 1300));
    assert_eq!((got[0].frame.sequence, got[0].lost), (31, 3));
    assert!(!relay.output_snapshot(out, t0).unwrap().lanes[0].suppressed);
}

#[test]
fn invalid_suppression_thresholds_are_refused() {
    let mut relay = Relay::default();
    let a = relay.add_input(PLAIN);
    for (above, below, window) in [(0.2, 0.5, 1), (1.5, 0.1, 1), (0.5, 0.1, 0)] {
        let cfg = SuppressionConfig {
            window: Duration::from_secs(window),
            suppress_above: above,
            resume_below: below,
            min_frames: 1,
        };
        let o = OutputConfig::default().with_scheduler(SchedulerKind::SourceSuppression(cfg));
        assert!(relay.add_output(o, &[a.into()]).is_err());
    }
}

/// Textbook deficit round-robin over a fixed backlog: the order of lanes served.
fn reference_drr(quantum: u64, lanes: &[(u32, Vec<usize>)]) -> Vec<usize> {
    let mut queues: Vec<std::collections::VecDeque<usize>> =
        lanes.iter().map(|(_, q)| q.iter().copied().collect()).collect();
    let mut deficit = vec![0u64; lanes.len()];
    let mut out = Vec::new();
    while queues.iter().any(|q| !q.is_empty()) {
        for i in 0..lanes.len() {
            if queues[i].is_empty() {
                deficit[i] = 0;
                continue;
            }
            deficit[i] += quantum * u64::from(lanes[i].0);
            while let Some(&head) = queues[i].front() {
                if head as u64 > deficit[i] {
                    break;
                }
                deficit[i] -= head as u64;
                queues[i].pop_front();
                out.push(i);
            }
            if queues[i].is_empty() {
                deficit[i] = 0;
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// The engine's DRR (with its round skipping) serves exactly the
    /// textbook order.
    #[test]
    fn drr_matches_the_textbook_order(
        quantum in 1u32..3000,
        lanes in prop::collection::vec((1u32..4, prop::collection::vec(1usize..5000, 0..12)), 1..5),
    ) {
        let shape: Vec<(u8, u32)> = lanes.iter().map(|(w, _)| (0, *w)).collect();
        let (mut relay, inp, out) = setup(SchedulerKind::DeficitRoundRobin { quantum }, &shape);
        let t0 = Instant::now();
        for (i, (_, sizes)) in lanes.iter().enumerate() {
            for (seq, &len) in sizes.iter().enumerate() {
                relay.push(inp[i], frame(seq as u64, len, true), t0).unwrap();
            }
        }
        let got: Vec<usize> = order(&drain(&mut relay, out, t0))
            .into_iter()
            .map(|(i, _)| inp.iter().position(|x| *x == i).unwrap())
            .collect();
        prop_assert_eq!(got, reference_drr(u64::from(quantum), &lanes));
    }
}
