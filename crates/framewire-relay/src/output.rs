//! One output: its lanes, budgets, drop policy, scheduler and counters.

use std::time::Instant;

use framewire_proto::control::DropReason;
use framewire_proto::{DeliveryMode, DropPolicy, FrameFlags, TransportMode};

use crate::config::{Budget, OutputConfig, RelayConfig};
use crate::error::RelayError;
use crate::frame::{Frame, Transmit};
use crate::id::{InputId, OutputId};
use crate::lane::{Entry, Lane};
use crate::sched::{AnyScheduler, Scheduler};
use crate::stats::{DropCounts, LaneSnapshot, LatencyHistogram, OutputSnapshot};

/// The delivery mode, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    LowLatency,
    Completeness,
}

/// The frame being written by the transport.
#[derive(Debug)]
struct InFlight {
    input: InputId,
    len: u64,
    arrival: Instant,
}

#[derive(Debug)]
pub(crate) struct Output {
    mode: Mode,
    drop_newest: bool,
    encapsulated: bool,
    config: OutputConfig,
    max_frames: u32,
    max_bytes: u64,
    pub(crate) lanes: Vec<Lane>,
    sched: AnyScheduler,
    in_flight: Option<InFlight>,
    queued_frames: u32,
    queued_bytes: u64,
    next_order: u64,
    frames_in: u64,
    frames_sent: u64,
    bytes_sent: u64,
    drops: DropCounts,
    /// Every drop counted in `drops`, in one number.
    drops_total: u64,
    latency: LatencyHistogram,
}

fn resolve(budget: Budget, relay: &RelayConfig) -> (u32, u64) {
    let frames = if budget.max_frames == 0 {
        relay.default_max_frames
    } else {
        budget.max_frames
    };
    let bytes = if budget.max_bytes == 0 {
        relay.default_max_bytes
    } else {
        budget.max_bytes
    };
    (frames, bytes)
}

impl Output {
    pub(crate) fn new(config: OutputConfig, relay: &RelayConfig) -> Result<Self, RelayError> {
        let mode = match config.mode {
            DeliveryMode::LowLatency => Mode::LowLatency,
            DeliveryMode::Completeness => Mode::Completeness,
            _ => return Err(RelayError::InvalidConfig("unknown delivery mode")),
        };
        let drop_newest = match config.drop_policy {
            DropPolicy::DropOldest => false,
            DropPolicy::DropNewest => true,
            _ => return Err(RelayError::InvalidConfig("unknown drop policy")),
        };
        let encapsulated = match config.transport {
            // Shared memory carries the header fields beside the bytes.
            TransportMode::Encapsulated | TransportMode::Shm => true,
            TransportMode::Opaque => false,
            _ => return Err(RelayError::InvalidConfig("unknown transport mode")),
        };
        config.scheduler.validate()?;
        let (max_frames, max_bytes) = resolve(config.budget, relay);
        Ok(Output {
            mode,
            drop_newest,
            encapsulated,
            config,
            max_frames,
            max_bytes,
            lanes: Vec::new(),
            sched: AnyScheduler::new(config.scheduler),
            in_flight: None,
            queued_frames: 0,
            queued_bytes: 0,
            next_order: 0,
            frames_in: 0,
            frames_sent: 0,
            bytes_sent: 0,
            drops: DropCounts::default(),
            drops_total: 0,
            latency: LatencyHistogram::default(),
        })
    }

    /// The index of the live (not detached) lane of `input`.
    pub(crate) fn lane_of(&self, input: InputId) -> Option<usize> {
        self.lanes.iter().position(|l| l.input == input && !l.detached)
    }

    pub(crate) fn add_lane(&mut self, lane: Lane) -> Result<(), RelayError> {
        if !self.encapsulated && self.lanes.iter().any(|l| !l.detached) {
            return Err(RelayError::InvalidConfig("an opaque output carries one input"));
        }
        self.lanes.push(lane);
        self.sched.lane_added(&self.lanes);
        Ok(())
    }

    /// Stops feeding `lane` from its input. Its queued frames still drain;
    /// the lane goes once it is empty.
    pub(crate) fn detach(&mut self, li: usize) {
        self.lanes[li].detached = true;
        self.reap(li);
    }

    fn reap(&mut self, li: usize) {
        if self.lanes[li].detached && self.lanes[li].is_empty() {
            self.lanes.remove(li);
            Scheduler::<Lane>::lane_removed(&mut self.sched, li);
        }
    }

    /// Removes every drained detached lane. Lane indices change, so this
    /// runs only at the end of an operation.
    fn reap_all(&mut self) {
        for i in (0..self.lanes.len()).rev() {
            self.reap(i);
        }
    }

    /// Something queued and nothing in flight: the writer has work.
    pub(crate) fn ready(&self) -> bool {
        self.in_flight.is_none() && self.queued_frames > 0
    }

    /// The length and arrival order of the frame that has waited longest,
    /// when the output is ready: exactly the next frame for one input.
    pub(crate) fn next_head(&self) -> Option<(usize, u64)> {
        if !self.ready() {
            return None;
        }
        let li = crate::sched::oldest_head(&self.lanes)?;
        Some((self.lanes[li].head_len()?, self.lanes[li].head_order()?))
    }

    /// Drops the frame that has waited longest, as suppressed (a link's
    /// source suppression refused it). False when nothing is ready.
    pub(crate) fn suppress_next(&mut self, now: Instant) -> bool {
        if !self.ready() {
            return false;
        }
        let Some(li) = crate::sched::oldest_head(&self.lanes) else {
            return false;
        };
        self.drop_head(li, DropReason::Suppressed, now);
        // A detached lane emptied by this goes now, as after any drop.
        self.reap_all();
        true
    }

    fn held_frames(&self) -> u32 {
        self.queued_frames + u32::from(self.in_flight.is_some())
    }

    fn held_bytes(&self) -> u64 {
        self.queued_bytes + self.in_flight.as_ref().map_or(0, |f| f.len)
    }

    /// The frame limit in force: configured for completeness; for
    /// low-latency one pending frame per lane plus the one in flight, and
    /// the frames a lane holds beyond its one while it catches up on a
    /// group of pictures (or after, until they are sent), so that they
    /// never count against another lane.
    fn frame_limit(&self) -> u32 {
        match self.mode {
            Mode::Completeness => self.max_frames,
            Mode::LowLatency => {
                let extra: usize = self.lanes.iter().map(|l| l.queue.len().saturating_sub(1)).sum();
                u32::try_from(self.lanes.len() + 1 + extra).unwrap_or(u32::MAX)
            }
        }
    }

    /// Frames this output dropped, for every reason.
    pub(crate) fn drops_total(&self) -> u64 {
        self.drops_total
    }

    /// Counts a drop of a frame of lane `li` that never got queued.
    fn drop_arriving(&mut self, li: usize, reason: DropReason, now: Instant) {
        self.drops.add(reason);
        self.drops_total += 1;
        let lane = &mut self.lanes[li];
        lane.drops.add(reason);
        lane.lost += 1;
        lane.catch_up = None;
        if lane.inter_coded {
            lane.waiting_keyframe = true;
        }
        if is_congestion(reason) {
            Scheduler::<Lane>::register_drop(&mut self.sched, li, now);
        }
    }

    /// Drops the head of lane `li`, then (inter-coded) every following
    /// frame that depended on it, up to the next queued keyframe.
    fn drop_head(&mut self, li: usize, reason: DropReason, now: Instant) {
        let mut reason = reason;
        self.lanes[li].catch_up = None;
        loop {
            let lane = &mut self.lanes[li];
            let Some(e) = lane.queue.pop_front() else {
                // The dependents reached the end of the queue: the next
                // frame to arrive must be a keyframe.
                if lane.inter_coded {
                    lane.waiting_keyframe = true;
                }
                break;
            };
            let len = e.frame.data.len() as u64;
            lane.queued_bytes -= len;
            lane.drops.add(reason);
            // The gap moves to the frame after it.
            match lane.queue.front_mut() {
                Some(next) => next.lost += e.lost + 1,
                None => lane.lost += e.lost + 1,
            }
            self.queued_frames -= 1;
            self.queued_bytes -= len;
            self.drops.add(reason);
            self.drops_total += 1;
            if is_congestion(reason) {
                Scheduler::<Lane>::register_drop(&mut self.sched, li, now);
            }
            let lane = &self.lanes[li];
            if !lane.inter_coded || lane.queue.front().is_some_and(|f| f.key) {
                break;
            }
            reason = DropReason::WaitingKeyframe;
        }
    }

    /// A new lane's start from its input's current group of pictures
    /// (keyframe first, with their arrival times), so its decoder shows a
    /// picture at once and reaches the current one: the whole group is
    /// queued. A low-latency lane then catches up (see [`Output::offer`]);
    /// if the group does not fit its byte budget, it takes the keyframe
    /// alone (a picture at once) and waits for the next keyframe, the rest
    /// of the group counted as offered and dropped.
    pub(crate) fn seed(&mut self, li: usize, gop: &[(Frame, Instant)]) {
        let Some((key, key_at)) = gop.first() else { return };
        if !key.flags.is_keyframe() || li >= self.lanes.len() {
            return;
        }
        let bytes: u64 = gop.iter().map(|(f, _)| f.data.len() as u64).sum();
        match self.mode {
            Mode::LowLatency if self.held_bytes() + bytes > self.max_bytes => {
                self.offer_inner(li, key, *key_at);
                for (_, at) in &gop[1..] {
                    self.frames_in += 1;
                    self.lanes[li].frames_in += 1;
                    self.drop_arriving(li, DropReason::WaitingKeyframe, *at);
                }
            }
            mode => {
                let low_latency = mode == Mode::LowLatency;
                if low_latency {
                    self.lanes[li].catch_up = Some(usize::MAX);
                }
                // Drained detached lanes go only after the last offer: `li`
                // must keep naming this lane (a lane removed before it
                // would move it).
                for (f, at) in gop {
                    self.offer_inner(li, f, *at);
                }
                let lane = &mut self.lanes[li];
                if low_latency && lane.catch_up.is_some() {
                    // The first frame after the group may queue behind it.
                    lane.catch_up = Some(lane.queue.len() + 1);
                }
            }
        }
        self.reap_all();
    }

    /// Offers a live frame of lane `li`. Never fails, never waits: the
    /// frame is queued or dropped and counted. A low-latency lane catching up
    /// queues it behind the group while it gains on the input: at each
    /// arrival it must hold fewer frames than at the one before. One that
    /// does not (a link no faster than the stream), or a keyframe (a newer
    /// start than the group), ends the catch-up: the newest frame wins
    /// again, and what depended on a replaced frame waits for a keyframe.
    pub(crate) fn offer(&mut self, li: usize, frame: &Frame, now: Instant) {
        let lane = &mut self.lanes[li];
        if let Some(before) = lane.catch_up {
            let key = !lane.inter_coded || frame.flags.is_keyframe();
            let held = lane.queue.len();
            lane.catch_up = (!key && held < before).then_some(held);
        }
        self.offer_inner(li, frame, now);
        self.reap_all();
    }

    fn offer_inner(&mut self, li: usize, frame: &Frame, now: Instant) {
        self.frames_in += 1;
        let lane = &mut self.lanes[li];
        lane.frames_in += 1;
        let key = !lane.inter_coded || frame.flags.is_keyframe();
        if !Scheduler::<Lane>::admit(&mut self.sched, li, now) {
            return self.drop_arriving(li, DropReason::Suppressed, now);
        }
        let len = frame.data.len() as u64;
        if len > self.max_bytes {
            return self.drop_arriving(li, DropReason::Oversize, now);
        }
        let lane = &self.lanes[li];
        if self.mode == Mode::LowLatency && !lane.is_empty() && lane.catch_up.is_none() {
            // Newest wins: the unsent frame of this input gives way.
            self.drop_head(li, DropReason::Replaced, now);
        }
        if self.lanes[li].waiting_keyframe && !key {
            return self.drop_arriving(li, DropReason::WaitingKeyframe, now);
        }
        loop {
            let over_frames = self.held_frames() >= self.frame_limit();
            let over_bytes = self.held_bytes() + len > self.max_bytes;
            if !over_frames && !over_bytes {
                break;
            }
            let reason = if over_frames {
                DropReason::FrameBudget
            } else {
                DropReason::ByteBudget
            };
            let victim = if self.drop_newest {
                None
            } else {
                self.sched.victim(&self.lanes)
            };
            match victim {
                Some(v) => self.drop_head(v, reason, now),
                // Drop-newest, or only the in-flight frame is left.
                None => return self.drop_arriving(li, reason, now),
            }
        }
        // Making room may have dropped this lane's own frames.
        let lane = &mut self.lanes[li];
        if lane.waiting_keyframe {
            if !key {
                return self.drop_arriving(li, DropReason::WaitingKeyframe, now);
            }
            lane.waiting_keyframe = false;
        }
        lane.queue.push_back(Entry {
            frame: frame.clone(),
            arrival: now,
            order: self.next_order,
            key,
            lost: std::mem::take(&mut lane.lost),
        });
        lane.queued_bytes += len;
        self.next_order += 1;
        self.queued_frames += 1;
        self.queued_bytes += len;
    }

    /// A partial frame of lane `li`'s input was abandoned: it counts as
    /// offered and dropped, and breaks an inter-coded chain.
    pub(crate) fn abandoned(&mut self, li: usize, now: Instant) {
        self.frames_in += 1;
        self.lanes[li].frames_in += 1;
        self.drop_arriving(li, DropReason::Abandoned, now);
    }

    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.in_flight.is_some() {
            return None;
        }
        let li = self.sched.pick(&self.lanes, now)?;
        let lane = self.lanes.get_mut(li)?;
        let Some(entry) = lane.queue.pop_front() else {
            debug_assert!(false, "scheduler picked an empty lane");
            return None;
        };
        let len = entry.frame.data.len() as u64;
        lane.queued_bytes -= len;
        if lane.queue.is_empty() {
            // Caught up: the lane is live again, newest frame wins.
            lane.catch_up = None;
        }
        let lost = entry.lost;
        let input = lane.input;
        self.queued_frames -= 1;
        self.queued_bytes -= len;
        self.sched.register_send(&self.lanes, li, len as usize, now);
        self.in_flight = Some(InFlight {
            input,
            len,
            arrival: entry.arrival,
        });
        self.reap_all();
        let mut frame = entry.frame;
        if lost > 0 {
            frame.flags = frame.flags.with(FrameFlags::DISCONTINUITY);
        }
        Some(Transmit {
            input,
            frame,
            lost,
            encapsulated: self.encapsulated,
        })
    }

    pub(crate) fn sent(&mut self, id: OutputId, now: Instant) -> Result<bool, RelayError> {
        let f = self.in_flight.take().ok_or(RelayError::NothingInFlight(id))?;
        self.frames_sent += 1;
        self.bytes_sent += f.len;
        self.latency.record(now.saturating_duration_since(f.arrival));
        if let Some(li) = self.lanes.iter().position(|l| l.input == f.input) {
            self.lanes[li].frames_sent += 1;
        }
        Ok(self.ready())
    }

    /// Applies a new budget, dropping queued frames (never the one in
    /// flight) until the output fits it, per its drop policy's victim order.
    pub(crate) fn set_budget(&mut self, budget: Budget, relay: &RelayConfig, now: Instant) {
        (self.max_frames, self.max_bytes) = resolve(budget, relay);
        self.config.budget = budget;
        loop {
            let over_frames = self.held_frames() > self.frame_limit();
            let over_bytes = self.held_bytes() > self.max_bytes;
            if !over_frames && !over_bytes {
                break;
            }
            let reason = if over_frames {
                DropReason::FrameBudget
            } else {
                DropReason::ByteBudget
            };
            // A shrunk budget always trims queued frames; with drop-newest
            // the newest queued frame would break continuity just the same,
            // so both policies give up the scheduler's victim.
            let Some(v) = self.sched.victim(&self.lanes) else { break };
            self.drop_head(v, reason, now);
        }
        self.reap_all();
    }

    /// The inputs feeding this output (not counting detached lanes).
    pub(crate) fn inputs(&self) -> impl Iterator<Item = InputId> + '_ {
        self.lanes.iter().filter(|l| !l.detached).map(|l| l.input)
    }

    pub(crate) fn snapshot(&self, id: OutputId, now: Instant) -> OutputSnapshot {
        let held_frames = self.held_frames();
        let held_bytes = self.held_bytes();
        let max_frames = self.frame_limit();
        let budget_use = (f64::from(held_frames) / f64::from(max_frames.max(1)))
            .max(held_bytes as f64 / self.max_bytes.max(1) as f64);
        let oldest_age = self
            .lanes
            .iter()
            .filter_map(|l| l.queue.front().map(|e| e.arrival))
            .min()
            .map(|a| now.saturating_duration_since(a));
        OutputSnapshot {
            id,
            mode: self.config.mode,
            transport: self.config.transport,
            drop_policy: self.config.drop_policy,
            scheduler: self.config.scheduler.label(),
            frames_in: self.frames_in,
            frames_sent: self.frames_sent,
            bytes_sent: self.bytes_sent,
            drops: self.drops,
            queued_frames: self.queued_frames,
            queued_bytes: self.queued_bytes,
            in_flight_bytes: self.in_flight.as_ref().map_or(0, |f| f.len),
            in_flight: self.in_flight.is_some(),
            held_frames,
            held_bytes,
            max_frames,
            max_bytes: self.max_bytes,
            budget_use,
            oldest_age,
            latency: self.latency.summary(),
            waiting_keyframe: self.lanes.iter().any(|l| l.waiting_keyframe && !l.detached),
            lanes: self
                .lanes
                .iter()
                .enumerate()
                .map(|(i, l)| LaneSnapshot {
                    input: l.input,
                    priority: l.priority,
                    weight: l.weight,
                    frames_in: l.frames_in,
                    frames_sent: l.frames_sent,
                    drops: l.drops,
                    queued_frames: u32::try_from(l.queue.len()).unwrap_or(u32::MAX),
                    queued_bytes: l.queued_bytes,
                    waiting_keyframe: l.waiting_keyframe,
                    suppressed: Scheduler::<Lane>::is_suppressed(&self.sched, i),
                    detached: l.detached,
                })
                .collect(),
        }
    }
}

/// Drops that signal a congested output (what source suppression measures).
fn is_congestion(reason: DropReason) -> bool {
    matches!(
        reason,
        DropReason::Replaced | DropReason::FrameBudget | DropReason::ByteBudget | DropReason::Oversize
    )
}
