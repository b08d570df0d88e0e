//! The relay engine driven by any sequence of operations: inputs and
//! outputs added and removed, lanes attached and detached, whole and
//! partial frames, polls, sends, budget changes, suppression and clock
//! steps, in whatever order the bytes say. Wrong calls (an unknown id, a
//! frame too large, a send with nothing in flight) must be refused, never
//! panic; after every operation each output accounts for every frame
//! offered to it (sent, dropped with a reason, or held), holds no more than
//! its budget (except a frame in flight under a budget shrunk since), a
//! low-latency lane at most one pending frame (but while it catches up on
//! an inter-coded input's cached group), and hands each input's frames out
//! in order; at the end everything drains.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_proto::{DeliveryMode, DropPolicy, FrameFlags, TransportMode};
use framewire_relay::{
    Budget, Frame, FrameMeta, InputConfig, InputId, LaneConfig, OutputConfig, OutputId, Relay, RelayConfig,
    SchedulerKind, SuppressionConfig, Transmit,
};
use libfuzzer_sys::fuzz_target;

const MAX_FRAME: usize = 4000;

include!("input_common.rs");

fn scheduler(b: &mut Input) -> SchedulerKind {
    match b.u8() % 5 {
        0 => SchedulerKind::StrictPriority,
        1 => SchedulerKind::RoundRobin,
        2 => SchedulerKind::WeightedRoundRobin,
        3 => SchedulerKind::DeficitRoundRobin {
            quantum: u32::from(b.u16()).max(1),
        },
        _ => SchedulerKind::SourceSuppression(SuppressionConfig {
            window: Duration::from_millis(u64::from(b.u8()) * 4 + 1),
            suppress_above: 0.3 + f64::from(b.u8() % 60) / 100.0,
            resume_below: f64::from(b.u8() % 25) / 100.0,
            min_frames: u32::from(b.u8() % 6) + 1,
        }),
    }
}

fn payload(seq: u64, len: usize) -> Bytes {
    Bytes::from(vec![(seq % 251) as u8; len])
}

#[derive(Default)]
struct Model {
    inputs: Vec<InputId>,
    outputs: Vec<OutputId>,
    next_seq: HashMap<InputId, u64>,
    /// The partial frame of an input: (declared, appended).
    partial: HashMap<InputId, (usize, usize)>,
    /// Last sequence handed out per (output, input) since the lane was
    /// attached.
    last: HashMap<(OutputId, InputId), u64>,
    /// Pairs detached once: a lane attached again beside one that still
    /// drains is a lane of its own (`Relay::attach`), so order is checked
    /// only for pairs never detached.
    detached: std::collections::HashSet<(OutputId, InputId)>,
    in_flight: HashMap<OutputId, bool>,
    /// The budget shrank while a frame was in flight.
    shrunk: HashMap<OutputId, bool>,
    /// Inputs of inter-coded streams (whose groups of pictures are cached).
    inter: std::collections::HashSet<InputId>,
}

impl Model {
    fn check_transmit(&mut self, o: OutputId, t: &Transmit) {
        let seq = t.frame.sequence;
        assert!(
            self.inputs.contains(&t.input),
            "a transmit of an input that was never added"
        );
        assert_eq!(
            &t.frame.data[..],
            &payload(seq, t.frame.data.len())[..],
            "payload changed"
        );
        assert_eq!(t.frame.flags.is_discontinuity(), t.lost > 0);
        if self.detached.contains(&(o, t.input)) {
            return;
        }
        if let Some(&last) = self.last.get(&(o, t.input)) {
            assert!(seq > last, "frame {seq} after {last}: out of order or twice");
            assert_eq!(t.lost, seq - last - 1, "lost count");
        }
        self.last.insert((o, t.input), seq);
    }

    fn check(&self, relay: &Relay, now: Instant) {
        let snap = relay.snapshot(now);
        for &o in &self.outputs {
            let s = snap.outputs.iter().find(|s| s.id == o).expect("output present");
            let within = s.held_frames <= s.max_frames && s.held_bytes <= s.max_bytes;
            assert!(
                within || (self.shrunk.get(&o) == Some(&true) && s.queued_frames == 0 && s.in_flight),
                "over budget: {} frames / {} bytes of {} / {}",
                s.held_frames,
                s.held_bytes,
                s.max_frames,
                s.max_bytes
            );
            assert_eq!(
                s.frames_in,
                s.frames_sent + s.drops.total() + u64::from(s.held_frames),
                "a frame unaccounted for"
            );
            let lane_frames: u32 = s.lanes.iter().map(|l| l.queued_frames).sum();
            let lane_bytes: u64 = s.lanes.iter().map(|l| l.queued_bytes).sum();
            assert_eq!((lane_frames, lane_bytes), (s.queued_frames, s.queued_bytes));
            assert_eq!(s.in_flight, self.in_flight.get(&o) == Some(&true));
            if s.mode == DeliveryMode::LowLatency {
                // One pending frame a lane, but for a lane that joined an
                // inter-coded input and catches up on its cached group.
                assert!(
                    s.lanes
                        .iter()
                        .all(|l| l.queued_frames <= 1 || self.inter.contains(&l.input)),
                    "a low-latency lane of an intra-only input queues"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Input(data);
    let mut relay = Relay::new(
        RelayConfig::default()
            .with_max_frame_bytes(MAX_FRAME)
            .with_gop_cache_bytes(usize::from(b.u16())),
    );
    let mut m = Model::default();
    let mut now = Instant::now();
    while !b.0.is_empty() {
        match b.u8() % 16 {
            0 if m.inputs.len() < 6 => {
                let inter_coded = b.u8() & 1 == 1;
                let id = relay.add_input(InputConfig { inter_coded });
                if inter_coded {
                    m.inter.insert(id);
                }
                m.inputs.push(id);
            }
            1 => {
                if let Some(i) = b.pick(&m.inputs) {
                    let live = m.next_seq.get(&i) != Some(&u64::MAX);
                    assert_eq!(relay.remove_input(i, now).is_ok(), live);
                    m.partial.remove(&i);
                    m.next_seq.insert(i, u64::MAX);
                }
            }
            2 if m.outputs.len() < 6 => {
                let flags = b.u8();
                let mut lanes = Vec::new();
                for &i in &m.inputs {
                    if b.u8() & 1 == 1 {
                        lanes.push(
                            LaneConfig::new(i)
                                .with_priority(b.u8())
                                .with_weight(u32::from(b.u8() % 4)),
                        );
                    }
                }
                let cfg = OutputConfig {
                    mode: if flags & 1 == 1 {
                        DeliveryMode::LowLatency
                    } else {
                        DeliveryMode::Completeness
                    },
                    transport: if flags & 2 == 2 {
                        TransportMode::Opaque
                    } else {
                        TransportMode::Encapsulated
                    },
                    budget: Budget::new(u32::from(b.u8() % 9), u64::from(b.u16())),
                    drop_policy: if flags & 4 == 4 {
                        DropPolicy::DropNewest
                    } else {
                        DropPolicy::DropOldest
                    },
                    scheduler: scheduler(&mut b),
                };
                if let Ok(o) = relay.add_output(cfg, &lanes) {
                    m.outputs.push(o);
                }
            }
            3 => {
                if let Some(o) = b.pick(&m.outputs) {
                    let snap = relay.remove_output(o, now).expect("a known output goes");
                    assert_eq!(
                        snap.frames_in,
                        snap.frames_sent + snap.drops.total() + u64::from(snap.held_frames)
                    );
                    m.outputs.retain(|x| *x != o);
                    assert!(relay.remove_output(o, now).is_err(), "removed twice");
                    assert!(relay.poll_transmit(o, now).is_none(), "a removed output sends");
                }
            }
            4 => {
                if let (Some(o), Some(i)) = (b.pick(&m.outputs), b.pick(&m.inputs)) {
                    if relay.attach(o, LaneConfig::new(i).with_priority(b.u8())).is_ok() {
                        m.last.remove(&(o, i));
                    }
                }
            }
            5 => {
                if let (Some(o), Some(i)) = (b.pick(&m.outputs), b.pick(&m.inputs)) {
                    if relay.detach(o, i).is_ok() {
                        m.detached.insert((o, i));
                    }
                }
            }
            6 | 7 => {
                if let Some(i) = b.pick(&m.inputs) {
                    let whole = b.u8() % 2 == 0;
                    let len = usize::from(b.u16()) % (MAX_FRAME + 200);
                    let key = b.u8() & 1 == 1;
                    let seq = m.next_seq.get(&i).copied().unwrap_or(0);
                    let ok = seq != u64::MAX && !m.partial.contains_key(&i) && len <= MAX_FRAME;
                    let flags = if key { FrameFlags::KEYFRAME } else { FrameFlags(0) };
                    let r = if whole {
                        let frame = Frame {
                            data: payload(seq, len),
                            sequence: seq,
                            timestamp_ns: seq,
                            flags,
                        };
                        relay.push(i, frame, now).map(|_| ())
                    } else {
                        let meta = FrameMeta {
                            sequence: seq,
                            timestamp_ns: seq,
                            flags,
                        };
                        relay.begin_frame(i, meta, len)
                    };
                    assert_eq!(r.is_ok(), ok, "push or begin: {r:?}");
                    if ok {
                        m.next_seq.insert(i, seq + 1);
                        if !whole {
                            m.partial.insert(i, (len, 0));
                        }
                    }
                }
            }
            8 => {
                if let Some(i) = b.pick(&m.inputs) {
                    let n = usize::from(b.u16()) % 3000;
                    let seq = m.next_seq.get(&i).copied().unwrap_or(0).wrapping_sub(1);
                    match m.partial.get_mut(&i) {
                        Some((declared, got)) if *got + n <= *declared => {
                            relay.append(i, &payload(seq, n)).expect("within the declared length");
                            *got += n;
                        }
                        Some(_) => assert!(relay.append(i, &payload(seq, n)).is_err(), "past the declared length"),
                        None => assert!(relay.append(i, b"x").is_err(), "append with no frame begun"),
                    }
                }
            }
            9 => {
                if let Some(i) = b.pick(&m.inputs) {
                    let r = relay.finish(i, now).map(|_| ());
                    match m.partial.get(&i) {
                        Some((declared, got)) if declared == got => {
                            assert!(r.is_ok(), "finish of a whole frame: {r:?}");
                            m.partial.remove(&i);
                        }
                        _ => assert!(r.is_err(), "finish of a frame not whole"),
                    }
                }
            }
            10 => {
                if let Some(i) = b.pick(&m.inputs) {
                    let r = relay.abandon(i, now);
                    if m.next_seq.get(&i) == Some(&u64::MAX) {
                        assert!(r.is_err());
                    } else {
                        assert_eq!(r, Ok(m.partial.remove(&i).is_some()));
                    }
                }
            }
            11 => {
                if let Some(o) = b.pick(&m.outputs) {
                    let t = relay.poll_transmit(o, now);
                    if m.in_flight.get(&o) == Some(&true) {
                        assert!(t.is_none(), "a second frame in flight");
                    }
                    if let Some(t) = t {
                        m.check_transmit(o, &t);
                        m.in_flight.insert(o, true);
                    }
                }
            }
            12 => {
                if let Some(o) = b.pick(&m.outputs) {
                    let r = relay.sent(o, now);
                    assert_eq!(r.is_ok(), m.in_flight.get(&o) == Some(&true));
                    m.in_flight.insert(o, false);
                    m.shrunk.insert(o, false);
                }
            }
            13 => {
                if let Some(o) = b.pick(&m.outputs) {
                    let budget = Budget::new(u32::from(b.u8() % 9), u64::from(b.u16()));
                    relay.set_budget(o, budget, now).expect("a known output");
                    if m.in_flight.get(&o) == Some(&true) {
                        m.shrunk.insert(o, true);
                    }
                }
            }
            14 => now += Duration::from_millis(u64::from(b.u16())),
            _ => {
                if let Some(o) = b.pick(&m.outputs) {
                    relay.suppress_next(o, now);
                }
            }
        }
        m.check(&relay, now);
    }
    // Drain: nothing may stay held.
    for &i in &m.inputs {
        if m.next_seq.get(&i) != Some(&u64::MAX) {
            relay.abandon(i, now).expect("a live input");
        }
    }
    for &o in &m.outputs.clone() {
        if m.in_flight.get(&o) == Some(&true) {
            relay.sent(o, now).expect("in flight");
            m.in_flight.insert(o, false);
            m.shrunk.insert(o, false);
        }
        while let Some(t) = relay.poll_transmit(o, now) {
            m.check_transmit(o, &t);
            relay.sent(o, now).expect("in flight");
        }
    }
    m.check(&relay, now);
    let snap = relay.snapshot(now);
    assert_eq!(
        (snap.held_frames(), snap.held_bytes(), snap.assembling_bytes()),
        (0, 0, 0)
    );
});
