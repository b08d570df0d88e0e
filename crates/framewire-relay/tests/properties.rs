//! Properties over random sequences of pushes, polls, sends, partial
//! frames, abandons, budget changes, clock steps, input removals and
//! outputs joining late (from an inter-coded input's cached group).
//!
//! Case counts: `random_operations_keep_every_invariant` 2048 cases,
//! `single_lane_matches_a_reference_queue` 2048 cases (up to 150 operations
//! each).

// test-runner: alone (property tests keep both cores busy; scripts/run-tests.py)

mod common;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_proto::control::DropReason;
use framewire_proto::{DeliveryMode, DropPolicy, FrameFlags, TransportMode};
use framewire_relay::{
    Budget, Frame, FrameMeta, InputConfig, InputId, LaneConfig, OutputConfig, OutputId, Relay, RelayConfig,
    SchedulerKind, SuppressionConfig,
};
use proptest::prelude::*;

const CASES: u32 = 2048;

#[derive(Debug, Clone)]
struct OutSpec {
    mode: DeliveryMode,
    policy: DropPolicy,
    opaque: bool,
    scheduler: SchedulerKind,
    budget: (u32, u64),
    /// (input index, priority, weight)
    lanes: Vec<(usize, u8, u32)>,
}

#[derive(Debug, Clone)]
enum Op {
    Push { input: usize, len: usize, key: bool },
    Poll { output: usize },
    Sent { output: usize },
    Begin { input: usize, len: usize, key: bool },
    Append { input: usize, n: usize },
    Finish { input: usize },
    Abandon { input: usize },
    SetBudget { output: usize, frames: u32, bytes: u64 },
    Advance { ms: u64 },
    RemoveInput { input: usize },
    Join { spec: OutSpec },
}

fn scheduler() -> impl Strategy<Value = SchedulerKind> {
    prop_oneof![
        Just(SchedulerKind::StrictPriority),
        Just(SchedulerKind::RoundRobin),
        Just(SchedulerKind::WeightedRoundRobin),
        (1u32..3000).prop_map(|quantum| SchedulerKind::DeficitRoundRobin { quantum }),
        (50u64..1000, 0.3f64..0.9, 0.0f64..0.25, 1u32..6).prop_map(|(w, above, below, min)| {
            SchedulerKind::SourceSuppression(SuppressionConfig {
                window: Duration::from_millis(w),
                suppress_above: above,
                resume_below: below,
                min_frames: min,
            })
        }),
    ]
}

fn out_spec(inputs: usize) -> impl Strategy<Value = OutSpec> {
    (
        prop_oneof![Just(DeliveryMode::LowLatency), Just(DeliveryMode::Completeness)],
        prop_oneof![Just(DropPolicy::DropOldest), Just(DropPolicy::DropNewest)],
        any::<bool>(),
        scheduler(),
        (1u32..8, 100u64..6000),
        prop::sample::subsequence((0..inputs).collect::<Vec<_>>(), 1..=inputs),
        prop::collection::vec((any::<u8>(), 1u32..4), inputs),
    )
        .prop_map(|(mode, policy, opaque, scheduler, budget, chosen, params)| {
            let lanes: Vec<_> = chosen.iter().map(|&i| (i, params[i].0, params[i].1)).collect();
            OutSpec {
                mode,
                policy,
                // Opaque outputs carry one input.
                opaque: opaque && lanes.len() == 1,
                scheduler,
                budget,
                lanes,
            }
        })
}

fn op(inputs: usize, outputs: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..inputs, 0usize..2500, prop::bool::weighted(0.3)).prop_map(|(input, len, key)| Op::Push { input, len, key }),
        6 => (0..outputs + 3).prop_map(|output| Op::Poll { output }),
        6 => (0..outputs + 3).prop_map(|output| Op::Sent { output }),
        2 => (0..inputs, 0usize..3000, any::<bool>()).prop_map(|(input, len, key)| Op::Begin { input, len, key }),
        3 => (0..inputs, 0usize..1500).prop_map(|(input, n)| Op::Append { input, n }),
        2 => (0..inputs).prop_map(|input| Op::Finish { input }),
        1 => (0..inputs).prop_map(|input| Op::Abandon { input }),
        1 => (0..outputs + 3, 0u32..8, 0u64..6000).prop_map(|(output, frames, bytes)| Op::SetBudget { output, frames, bytes }),
        2 => (0u64..200).prop_map(|ms| Op::Advance { ms }),
        1 => Just(()).prop_map(move |()| Op::RemoveInput { input: inputs - 1 }),
        1 => out_spec(inputs).prop_map(|spec| Op::Join { spec }),
    ]
}

fn scenario() -> impl Strategy<Value = (Vec<bool>, Vec<OutSpec>, Vec<Op>)> {
    (1usize..=3, 1usize..=4).prop_flat_map(|(ni, no)| {
        (
            prop::collection::vec(any::<bool>(), ni),
            prop::collection::vec(out_spec(ni), no),
            prop::collection::vec(op(ni, no), 1..150),
        )
    })
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    vec![(seq % 251) as u8; len]
}

fn flags(key: bool) -> FrameFlags {
    if key { FrameFlags::KEYFRAME } else { FrameFlags(0) }
}

/// What the test knows independently of the engine.
struct Model {
    inputs: Vec<InputId>,
    outputs: Vec<OutputId>,
    specs: Vec<OutSpec>,
    inter: Vec<bool>,
    removed: Vec<bool>,
    next_seq: Vec<u64>,
    /// Frames offered to each input's outputs (pushed or abandoned).
    offered: Vec<u64>,
    /// (input, seq) -> payload address, for pushed frames.
    ptrs: HashMap<(usize, u64), *const u8>,
    /// The partial frame: (seq, declared, appended, key).
    partial: Vec<Option<(u64, usize, usize, bool)>>,
    /// Last sequence handed out per (output, input).
    last: HashMap<(usize, usize), u64>,
    in_flight: Vec<bool>,
    /// The budget shrank while a frame was in flight.
    shrunk: Vec<bool>,
    /// Per output, what its frames-in count lags the frames offered to
    /// its inputs: for an output that joined late, the frames offered
    /// before it joined less the cached group it was given.
    base: Vec<i64>,
    /// An output that joined late: a lane's first frame starts where the
    /// engine chose (the cached group, or the next keyframe), and a
    /// low-latency lane may hold a group while it catches up.
    late: Vec<bool>,
    /// (output, input) lanes of late outputs that have sent nothing yet.
    fresh: std::collections::HashSet<(usize, usize)>,
    now: Instant,
}

impl Model {
    fn input_index(&self, id: InputId) -> usize {
        self.inputs
            .iter()
            .position(|i| *i == id)
            .expect("transmit names a known input")
    }

    fn check_transmit(&mut self, o: usize, t: &framewire_relay::Transmit) -> Result<(), TestCaseError> {
        let i = self.input_index(t.input);
        let seq = t.frame.sequence;
        prop_assert!(self.specs[o].lanes.iter().any(|l| l.0 == i), "input not on this output");
        prop_assert_eq!(&t.frame.data[..], &payload(seq, t.frame.data.len())[..]);
        if let Some(p) = self.ptrs.get(&(i, seq)) {
            prop_assert_eq!(t.frame.data.as_ptr(), *p, "payload copied");
        }
        if self.fresh.remove(&(o, i)) {
            // Where a late lane starts is the engine's choice; a keyframe
            // of an inter-coded input, at least.
            prop_assert!(
                !self.inter[i] || t.frame.flags.is_keyframe(),
                "a late lane starts at a keyframe"
            );
            prop_assert_eq!(t.frame.flags.is_discontinuity(), t.lost > 0);
            self.last.insert((o, i), seq);
            return Ok(());
        }
        let expected_next = self.last.get(&(o, i)).map_or(0, |l| l + 1);
        prop_assert!(
            seq >= expected_next,
            "out of order or twice: {} after {:?}",
            seq,
            self.last.get(&(o, i))
        );
        prop_assert_eq!(t.lost, seq - expected_next, "lost count");
        prop_assert_eq!(t.frame.flags.is_discontinuity(), t.lost > 0);
        if self.inter[i] && t.lost > 0 {
            prop_assert!(
                t.frame.flags.is_keyframe(),
                "inter-coded frame after a gap is not a keyframe"
            );
        }
        prop_assert_eq!(t.encapsulated, !self.specs[o].opaque);
        self.last.insert((o, i), seq);
        Ok(())
    }

    fn check_all(&self, relay: &Relay) -> Result<(), TestCaseError> {
        let snap = relay.snapshot(self.now);
        for (o, &oid) in self.outputs.iter().enumerate() {
            let s = snap.outputs.iter().find(|s| s.id == oid).expect("output present");
            let within = s.held_frames <= s.max_frames && s.held_bytes <= s.max_bytes;
            prop_assert!(
                within || (self.shrunk[o] && s.queued_frames == 0 && s.in_flight),
                "output {} over budget: {} frames / {} bytes of {} / {}",
                o,
                s.held_frames,
                s.held_bytes,
                s.max_frames,
                s.max_bytes
            );
            prop_assert_eq!(s.frames_in, s.frames_sent + s.drops.total() + u64::from(s.held_frames));
            let lane_frames: u32 = s.lanes.iter().map(|l| l.queued_frames).sum();
            let lane_bytes: u64 = s.lanes.iter().map(|l| l.queued_bytes).sum();
            prop_assert_eq!((lane_frames, lane_bytes), (s.queued_frames, s.queued_bytes));
            let offered: u64 = self.specs[o].lanes.iter().map(|l| self.offered[l.0]).sum();
            prop_assert_eq!(s.frames_in as i64, offered as i64 - self.base[o]);
            prop_assert_eq!(s.in_flight, self.in_flight[o]);
            if s.mode == DeliveryMode::LowLatency && !self.late[o] {
                prop_assert!(s.lanes.iter().all(|l| l.queued_frames <= 1));
            }
        }
        Ok(())
    }
}

fn output_config(s: &OutSpec) -> OutputConfig {
    OutputConfig {
        mode: s.mode,
        transport: if s.opaque {
            TransportMode::Opaque
        } else {
            TransportMode::Encapsulated
        },
        budget: Budget::new(s.budget.0, s.budget.1),
        drop_policy: s.policy,
        scheduler: s.scheduler,
    }
}

fn run_scenario(inter: Vec<bool>, specs: Vec<OutSpec>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut relay = Relay::new(RelayConfig::default().with_max_frame_bytes(2000));
    let inputs: Vec<InputId> = inter
        .iter()
        .map(|&inter_coded| relay.add_input(InputConfig { inter_coded }))
        .collect();
    let mut outputs = Vec::new();
    for s in &specs {
        let lanes: Vec<LaneConfig> = s
            .lanes
            .iter()
            .map(|&(i, p, w)| LaneConfig::new(inputs[i]).with_priority(p).with_weight(w))
            .collect();
        outputs.push(relay.add_output(output_config(s), &lanes).expect("valid output"));
    }
    let n_in = inputs.len();
    let n_out = outputs.len();
    let mut m = Model {
        inputs,
        outputs,
        specs,
        inter,
        removed: vec![false; n_in],
        next_seq: vec![0; n_in],
        offered: vec![0; n_in],
        ptrs: HashMap::new(),
        partial: vec![None; n_in],
        last: HashMap::new(),
        in_flight: vec![false; n_out],
        shrunk: vec![false; n_out],
        base: vec![0; n_out],
        late: vec![false; n_out],
        fresh: std::collections::HashSet::new(),
        now: Instant::now(),
    };
    for op in ops {
        match op {
            Op::Push { input, len, key } => {
                let seq = m.next_seq[input];
                let data = Bytes::from(payload(seq, len));
                let ptr = data.as_ptr();
                let frame = Frame {
                    data,
                    sequence: seq,
                    timestamp_ns: seq,
                    flags: flags(key),
                };
                let ready_before: Vec<bool> = m.outputs.iter().map(|&o| relay.is_ready(o)).collect();
                let res = relay.push(m.inputs[input], frame, m.now).map(<[OutputId]>::to_vec);
                let ok = !m.removed[input] && m.partial[input].is_none() && len <= 2000;
                prop_assert_eq!(res.is_ok(), ok, "push result {:?}", res);
                if let Ok(woken) = res {
                    m.next_seq[input] += 1;
                    m.offered[input] += 1;
                    m.ptrs.insert((input, seq), ptr);
                    for (o, &oid) in m.outputs.iter().enumerate() {
                        let became = !ready_before[o] && relay.is_ready(oid);
                        prop_assert_eq!(woken.contains(&oid), became, "wake list for output {}", o);
                    }
                }
            }
            Op::Poll { output } => {
                let output = output % m.outputs.len();
                let t = relay.poll_transmit(m.outputs[output], m.now);
                if m.in_flight[output] {
                    prop_assert!(t.is_none(), "second frame in flight");
                }
                if let Some(t) = t {
                    m.check_transmit(output, &t)?;
                    m.in_flight[output] = true;
                }
            }
            Op::Sent { output } => {
                let output = output % m.outputs.len();
                let r = relay.sent(m.outputs[output], m.now);
                prop_assert_eq!(r.is_ok(), m.in_flight[output]);
                m.in_flight[output] = false;
                m.shrunk[output] = false;
            }
            Op::Begin { input, len, key } => {
                let seq = m.next_seq[input];
                let meta = FrameMeta {
                    sequence: seq,
                    timestamp_ns: seq,
                    flags: flags(key),
                };
                let r = relay.begin_frame(m.inputs[input], meta, len);
                let ok = !m.removed[input] && m.partial[input].is_none() && len <= 2000;
                prop_assert_eq!(r.is_ok(), ok);
                if ok {
                    m.next_seq[input] += 1;
                    m.partial[input] = Some((seq, len, 0, key));
                }
            }
            Op::Append { input, n } => {
                if let Some((seq, declared, got, key)) = m.partial[input] {
                    let n = n.min(declared - got);
                    relay
                        .append(m.inputs[input], &payload(seq, n))
                        .expect("within the declared length");
                    m.partial[input] = Some((seq, declared, got + n, key));
                } else {
                    prop_assert!(relay.append(m.inputs[input], b"x").is_err());
                }
            }
            Op::Finish { input } => {
                let r = relay.finish(m.inputs[input], m.now).map(<[OutputId]>::to_vec);
                match m.partial[input] {
                    Some((_, declared, got, _)) if declared == got => {
                        prop_assert!(r.is_ok());
                        m.partial[input] = None;
                        m.offered[input] += 1;
                    }
                    _ => prop_assert!(r.is_err()),
                }
            }
            Op::Abandon { input } => {
                let r = relay.abandon(m.inputs[input], m.now);
                if m.removed[input] {
                    prop_assert!(r.is_err());
                } else {
                    prop_assert_eq!(r, Ok(m.partial[input].is_some()));
                    if m.partial[input].take().is_some() {
                        m.offered[input] += 1;
                    }
                }
                prop_assert_eq!(
                    relay.input_snapshot(m.inputs[input]).map_or(0, |s| s.assembling_bytes),
                    0
                );
            }
            Op::SetBudget { output, frames, bytes } => {
                let output = output % m.outputs.len();
                relay
                    .set_budget(m.outputs[output], Budget::new(frames, bytes), m.now)
                    .expect("output exists");
                if m.in_flight[output] {
                    m.shrunk[output] = true;
                }
            }
            Op::Advance { ms } => m.now += Duration::from_millis(ms),
            Op::Join { spec } => {
                let lanes: Vec<LaneConfig> = spec
                    .lanes
                    .iter()
                    .map(|&(i, p, w)| LaneConfig::new(m.inputs[i]).with_priority(p).with_weight(w))
                    .collect();
                let r = relay.add_output(output_config(&spec), &lanes);
                let gone = spec.lanes.iter().any(|l| m.removed[l.0]);
                prop_assert_eq!(r.is_ok(), !gone, "join {:?}", r);
                if let Ok(oid) = r {
                    let o = m.outputs.len();
                    let given = relay.output_snapshot(oid, m.now).expect("joined").frames_in;
                    let offered: u64 = spec.lanes.iter().map(|l| m.offered[l.0]).sum();
                    m.base.push(offered as i64 - given as i64);
                    m.late.push(true);
                    m.fresh.extend(spec.lanes.iter().map(|l| (o, l.0)));
                    m.outputs.push(oid);
                    m.specs.push(spec);
                    m.in_flight.push(false);
                    m.shrunk.push(false);
                }
            }
            Op::RemoveInput { input } => {
                let r = relay.remove_input(m.inputs[input], m.now);
                prop_assert_eq!(r.is_ok(), !m.removed[input]);
                if !m.removed[input] && m.partial[input].take().is_some() {
                    m.offered[input] += 1;
                }
                m.removed[input] = true;
            }
        }
        m.check_all(&relay)?;
    }
    // Drain everything: nothing may be left held.
    for input in 0..n_in {
        if !m.removed[input] && relay.abandon(m.inputs[input], m.now).expect("input exists") {
            m.offered[input] += 1;
        }
    }
    for o in 0..m.outputs.len() {
        if m.in_flight[o] {
            relay.sent(m.outputs[o], m.now).expect("in flight");
            m.in_flight[o] = false;
            m.shrunk[o] = false;
        }
        while let Some(t) = relay.poll_transmit(m.outputs[o], m.now) {
            m.check_transmit(o, &t)?;
            relay.sent(m.outputs[o], m.now).expect("in flight");
        }
    }
    m.check_all(&relay)?;
    let snap = relay.snapshot(m.now);
    prop_assert_eq!(
        (snap.held_frames(), snap.held_bytes(), snap.assembling_bytes()),
        (0, 0, 0)
    );
    for s in &snap.outputs {
        prop_assert_eq!(s.frames_in, s.frames_sent + s.drops.total());
        prop_assert!(s.lanes.iter().all(|l| !l.detached), "drained detached lanes are gone");
        prop_assert_eq!(s.oldest_age, None);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    /// Budgets never exceeded (except by a frame in flight when the budget
    /// shrank under it), per-input order kept on every output, no frame
    /// twice, lost counts exact, keyframe rule kept, payloads never copied,
    /// accounting balanced and zero after draining, wake list exact.
    #[test]
    fn random_operations_keep_every_invariant((inter, specs, ops) in scenario()) {
        run_scenario(inter, specs, ops)?;
    }
}

#[derive(Debug, Clone)]
enum SimpleOp {
    Push(usize),
    Poll,
    Sent,
    Budget(u32, u64),
}

/// The obvious single-input queue, written without the engine's structure.
#[derive(Default)]
struct Reference {
    low_latency: bool,
    drop_newest: bool,
    max_frames: u32,
    max_bytes: u64,
    queue: VecDeque<(u64, u64)>,
    in_flight: Option<u64>,
    drops: HashMap<&'static str, u64>,
}

impl Reference {
    fn held(&self) -> (u64, u64) {
        let f = self.in_flight.map_or(0, |_| 1);
        let b = self.in_flight.unwrap_or(0);
        (
            self.queue.len() as u64 + f,
            self.queue.iter().map(|e| e.1).sum::<u64>() + b,
        )
    }

    fn count(&mut self, reason: &'static str) {
        *self.drops.entry(reason).or_default() += 1;
    }

    fn push(&mut self, seq: u64, len: u64) {
        if len > self.max_bytes {
            return self.count("oversize");
        }
        if self.low_latency && self.queue.pop_front().is_some() {
            self.count("replaced");
        }
        loop {
            let (f, b) = self.held();
            let over_frames = !self.low_latency && f + 1 > u64::from(self.max_frames);
            let over_bytes = b + len > self.max_bytes;
            if !over_frames && !over_bytes {
                break;
            }
            let reason = if over_frames { "frames" } else { "bytes" };
            self.count(reason);
            if self.drop_newest || self.queue.pop_front().is_none() {
                return;
            }
        }
        self.queue.push_back((seq, len));
    }

    fn set_budget(&mut self, frames: u32, bytes: u64) {
        self.max_frames = if frames == 0 { 64 } else { frames };
        self.max_bytes = if bytes == 0 { 64 << 20 } else { bytes };
        loop {
            let (f, b) = self.held();
            let over_frames = !self.low_latency && f > u64::from(self.max_frames);
            let over_bytes = b > self.max_bytes;
            if !(over_frames || over_bytes) || self.queue.pop_front().is_none() {
                break;
            }
            self.count(if over_frames { "frames" } else { "bytes" });
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    /// One intra-coded input on one output: the engine hands out exactly
    /// what a plain reference queue does, and counts the same drops.
    #[test]
    fn single_lane_matches_a_reference_queue(
        low_latency in any::<bool>(),
        drop_newest in any::<bool>(),
        frames in 1u32..6,
        bytes in 1u64..4000,
        ops in prop::collection::vec(prop_oneof![
            4 => (0usize..1500).prop_map(SimpleOp::Push),
            3 => Just(SimpleOp::Poll),
            3 => Just(SimpleOp::Sent),
            1 => (0u32..6, 0u64..4000).prop_map(|(f, b)| SimpleOp::Budget(f, b)),
        ], 1..150),
    ) {
        let mut relay = Relay::default();
        let input = relay.add_input(InputConfig { inter_coded: false });
        let cfg = OutputConfig {
            mode: if low_latency { DeliveryMode::LowLatency } else { DeliveryMode::Completeness },
            drop_policy: if drop_newest { DropPolicy::DropNewest } else { DropPolicy::DropOldest },
            budget: Budget::new(frames, bytes),
            ..OutputConfig::default()
        };
        let out = relay.add_output(cfg, &[LaneConfig::new(input)]).expect("valid");
        let mut r = Reference { low_latency, drop_newest, max_frames: frames, max_bytes: bytes, ..Reference::default() };
        let now = Instant::now();
        let mut seq = 0;
        for op in ops {
            match op {
                SimpleOp::Push(len) => {
                    relay.push(input, Frame { data: Bytes::from(vec![0; len]), sequence: seq, timestamp_ns: 0, flags: FrameFlags(0) }, now).expect("input exists");
                    r.push(seq, len as u64);
                    seq += 1;
                }
                SimpleOp::Poll => {
                    let got = relay.poll_transmit(out, now).map(|t| t.frame.sequence);
                    let want = if r.in_flight.is_some() { None } else { r.queue.pop_front().map(|(s, l)| { r.in_flight = Some(l); s }) };
                    prop_assert_eq!(got, want);
                }
                SimpleOp::Sent => {
                    prop_assert_eq!(relay.sent(out, now).is_ok(), r.in_flight.take().is_some());
                }
                SimpleOp::Budget(f, b) => {
                    relay.set_budget(out, Budget::new(f, b), now).expect("output exists");
                    r.set_budget(f, b);
                }
            }
            let s = relay.output_snapshot(out, now).expect("output exists");
            prop_assert_eq!((u64::from(s.held_frames), s.held_bytes), r.held());
            let d = |k| r.drops.get(k).copied().unwrap_or(0);
            prop_assert_eq!(s.drops.get(DropReason::Replaced), d("replaced"));
            prop_assert_eq!(s.drops.get(DropReason::Oversize), d("oversize"));
            prop_assert_eq!(s.drops.get(DropReason::FrameBudget), d("frames"));
            prop_assert_eq!(s.drops.get(DropReason::ByteBudget), d("bytes"));
        }
    }
}
