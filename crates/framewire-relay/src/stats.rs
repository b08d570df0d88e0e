//! Counters, the send-latency histogram, and the snapshot the control plane
//! serializes.

use std::time::Duration;

use framewire_proto::control::{DropCount, DropReason, InputStats, OutputStats, Stats, StreamState};
use framewire_proto::{DeliveryMode, DropPolicy, TransportMode};

use crate::id::{InputId, OutputId};

/// Frames dropped, by reason. Indexable by any named [`DropReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounts([u64; DropReason::ALL.len()]);

impl DropCounts {
    fn slot(reason: DropReason) -> Option<usize> {
        DropReason::ALL.iter().position(|r| *r == reason)
    }

    pub(crate) fn add(&mut self, reason: DropReason) {
        if let Some(i) = Self::slot(reason) {
            self.0[i] += 1;
        }
    }

    /// Frames dropped for `reason` (0 for a reason this build does not know).
    pub fn get(&self, reason: DropReason) -> u64 {
        Self::slot(reason).map_or(0, |i| self.0[i])
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Non-zero counters in wire form.
    pub fn to_proto(&self) -> Vec<DropCount> {
        DropReason::ALL
            .iter()
            .zip(self.0)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| DropCount { reason: *r, count: n })
            .collect()
    }
}

/// Values below this many microseconds get one bucket each.
const LINEAR: u64 = 16;
/// Sub-buckets per power of two above that: 12.5 % resolution.
const SUB_BITS: u32 = 3;
/// Highest power of two tracked (2^36 µs is about 19 hours).
const MAX_EXP: u32 = 36;
const BUCKETS: usize = LINEAR as usize + ((MAX_EXP - 4) << SUB_BITS) as usize;

/// A fixed log-linear histogram of send latencies in microseconds.
///
/// Percentiles are reported as the upper edge of their bucket (never below
/// the true value, at most 12.5 % above it), capped at the exact maximum.
#[derive(Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Box<[u32; BUCKETS]>,
    count: u64,
    max_us: u64,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count)
            .field("p50", &self.percentile(0.5))
            .field("max", &self.max())
            .finish()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            max_us: 0,
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let us = us.min((1 << MAX_EXP) - 1);
    let exp = 63 - us.leading_zeros(); // >= 4 since us >= 16
    let sub = (us >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    LINEAR as usize + (((exp - 4) as usize) << SUB_BITS) + sub as usize
}

/// The largest value that falls in bucket `b`.
fn upper_edge(b: usize) -> u64 {
    if b < LINEAR as usize {
        return b as u64;
    }
    let rel = b - LINEAR as usize;
    let exp = (rel >> SUB_BITS) as u32 + 4;
    let sub = (rel & ((1 << SUB_BITS) - 1)) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    (1u64 << exp) + (sub + 1) * width - 1
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let b = bucket_of(us);
        self.counts[b] = self.counts[b].saturating_add(1);
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest latency recorded, exact.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }

    /// The `q` quantile (0.0..=1.0); zero when nothing was recorded.
    pub fn percentile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (b, &n) in self.counts.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return Duration::from_micros(upper_edge(b).min(self.max_us));
            }
        }
        self.max()
    }

    /// Median, 99th percentile and maximum.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count,
            p50: self.percentile(0.50),
            p99: self.percentile(0.99),
            max: self.max(),
        }
    }
}

/// Send latency (arrival in the relay to `sent`) of one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySummary {
    /// Frames measured.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Maximum.
    pub max: Duration,
}

/// One input feeding one output.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneSnapshot {
    /// The input.
    pub input: InputId,
    /// Path priority.
    pub priority: u8,
    /// Scheduler weight.
    pub weight: u32,
    /// Frames of this input offered to the output.
    pub frames_in: u64,
    /// Frames of this input the output finished sending.
    pub frames_sent: u64,
    /// Frames of this input the output dropped, by reason.
    pub drops: DropCounts,
    /// Frames queued now (not counting one in flight).
    pub queued_frames: u32,
    /// Bytes queued now.
    pub queued_bytes: u64,
    /// Skipping to this input's next keyframe.
    pub waiting_keyframe: bool,
    /// Not forwarded by the source-suppression scheduler.
    pub suppressed: bool,
    /// The input was removed; the lane goes once drained.
    pub detached: bool,
}

/// Counters and state of one output at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSnapshot {
    /// The output.
    pub id: OutputId,
    /// Delivery mode.
    pub mode: DeliveryMode,
    /// Encapsulated or opaque.
    pub transport: TransportMode,
    /// Drop policy.
    pub drop_policy: DropPolicy,
    /// Scheduler name.
    pub scheduler: &'static str,
    /// Frames offered to the output.
    pub frames_in: u64,
    /// Frames whose sending finished.
    pub frames_sent: u64,
    /// Bytes whose sending finished.
    pub bytes_sent: u64,
    /// Frames dropped, by reason.
    pub drops: DropCounts,
    /// Frames queued, not counting the one in flight.
    pub queued_frames: u32,
    /// Bytes queued, not counting the one in flight.
    pub queued_bytes: u64,
    /// Bytes of the frame in flight (0 when none).
    pub in_flight_bytes: u64,
    /// Whether a frame is in flight.
    pub in_flight: bool,
    /// Queued plus in flight: what the budgets bound.
    pub held_frames: u32,
    /// Queued plus in flight, bytes.
    pub held_bytes: u64,
    /// The frame budget in force (for low-latency, the structural bound,
    /// which grows with the frames of a group a new output catches up on).
    pub max_frames: u32,
    /// The byte budget in force.
    pub max_bytes: u64,
    /// The larger of held/max for frames and bytes, 0.0..=1.0 (may exceed
    /// 1.0 only while a frame admitted under a larger budget is in flight).
    pub budget_use: f64,
    /// Age of the oldest queued frame, if any.
    pub oldest_age: Option<Duration>,
    /// Send latency.
    pub latency: LatencySummary,
    /// Whether any input of this output is waiting for a keyframe.
    pub waiting_keyframe: bool,
    /// Per input.
    pub lanes: Vec<LaneSnapshot>,
}

/// What the relay cannot know about an output, for its wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLabels<'a> {
    /// The channel on the subscriber's connection.
    pub channel: u16,
    /// The stream's local name.
    pub stream: &'a str,
    /// The subscriber's address and name.
    pub peer: &'a str,
}

fn micros_u32(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl OutputSnapshot {
    /// The GET_STATS wire form. `queue_frames`/`queue_bytes` carry the held
    /// totals (queued plus in flight), the quantities `max_frames` and
    /// `max_bytes` bound; `priority` is the highest lane priority.
    pub fn to_proto(&self, labels: OutputLabels<'_>) -> OutputStats {
        OutputStats {
            channel: labels.channel,
            stream: labels.stream.to_owned(),
            peer: labels.peer.to_owned(),
            mode: self.mode,
            transport: self.transport,
            priority: self.lanes.iter().map(|l| l.priority).max().unwrap_or(0),
            frames_in: self.frames_in,
            frames_sent: self.frames_sent,
            bytes_sent: self.bytes_sent,
            drops: self.drops.to_proto(),
            queue_frames: self.held_frames,
            queue_bytes: self.held_bytes,
            max_frames: self.max_frames,
            max_bytes: self.max_bytes,
            oldest_age_us: self
                .oldest_age
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            latency_p50_us: micros_u32(self.latency.p50),
            latency_p99_us: micros_u32(self.latency.p99),
            latency_max_us: micros_u32(self.latency.max),
            waiting_keyframe: self.waiting_keyframe,
        }
    }
}

/// Counters of one input at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSnapshot {
    /// The input.
    pub id: InputId,
    /// Whether frames depend on earlier ones.
    pub inter_coded: bool,
    /// Complete frames received.
    pub frames_in: u64,
    /// Payload bytes of complete frames received.
    pub bytes_in: u64,
    /// Partial frames abandoned.
    pub frames_abandoned: u64,
    /// Bytes reserved for the partial frame being assembled (0 when none).
    pub assembling_bytes: u64,
    /// Outputs this input feeds.
    pub outputs: u32,
}

/// What the relay cannot know about an input, for its wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLabels<'a> {
    /// The stream's local name.
    pub stream: &'a str,
    /// Live, interrupted, failed, idle.
    pub state: StreamState,
    /// `host:port/stream` for a pulled edge; empty for a local source.
    pub upstream: &'a str,
    /// Times the edge reconnected.
    pub reconnects: u32,
}

impl InputSnapshot {
    /// The GET_STATS wire form.
    pub fn to_proto(&self, labels: InputLabels<'_>) -> InputStats {
        InputStats {
            stream: labels.stream.to_owned(),
            state: labels.state,
            upstream: labels.upstream.to_owned(),
            frames_in: self.frames_in,
            bytes_in: self.bytes_in,
            reconnects: labels.reconnects,
        }
    }
}

/// The whole relay at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Every input, in slot order.
    pub inputs: Vec<InputSnapshot>,
    /// Every output, in slot order.
    pub outputs: Vec<OutputSnapshot>,
}

impl Snapshot {
    /// Frames held by all outputs together (a shared frame counts once per output).
    pub fn held_frames(&self) -> u64 {
        self.outputs.iter().map(|o| u64::from(o.held_frames)).sum()
    }

    /// Bytes held by all outputs together (a shared frame counts once per output).
    pub fn held_bytes(&self) -> u64 {
        self.outputs.iter().map(|o| o.held_bytes).sum()
    }

    /// Bytes reserved by partial frames.
    pub fn assembling_bytes(&self) -> u64 {
        self.inputs.iter().map(|i| i.assembling_bytes).sum()
    }

    /// The GET_STATS wire form. The closures supply what the relay does not
    /// know about each input and output; an item they return `None` for is
    /// left out (e.g. an output whose subscription is already closing).
    pub fn to_proto<'a>(
        &self,
        mut input_labels: impl FnMut(InputId) -> Option<InputLabels<'a>>,
        mut output_labels: impl FnMut(OutputId) -> Option<OutputLabels<'a>>,
    ) -> Stats {
        Stats {
            inputs: self
                .inputs
                .iter()
                .filter_map(|i| input_labels(i.id).map(|l| i.to_proto(l)))
                .collect(),
            outputs: self
                .outputs
                .iter()
                .filter_map(|o| output_labels(o.id).map(|l| o.to_proto(l)))
                .collect(),
            // The relay engine does not see input events; the node adds them.
            input_events: Vec::new(),
            pass_through: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_their_values() {
        let mut last = 0;
        for us in (0..5000u64).chain([1 << 20, (1 << 20) + 12345, (1 << 36) - 1]) {
            let b = bucket_of(us);
            assert!(b >= last || us > 5000, "bucket order at {us}");
            last = b;
            assert!(upper_edge(b) >= us, "{us} above its bucket edge {}", upper_edge(b));
            if b > 0 {
                assert!(upper_edge(b - 1) < us, "{us} belongs to an earlier bucket");
            }
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }

    #[test]
    fn percentiles_bound_the_true_value() {
        let mut h = LatencyHistogram::default();
        // 1..=1000 ms in microseconds, in a scrambled order.
        let mut values: Vec<u64> = (1..=1000).map(|i| (i * 7919 % 1000 + 1) * 1000).collect();
        for v in &values {
            h.record(Duration::from_micros(*v));
        }
        values.sort_unstable();
        for q in [0.5, 0.9, 0.99, 1.0] {
            let exact = values[((q * 1000.0_f64).ceil() as usize).max(1) - 1];
            let got = h.percentile(q).as_micros() as u64;
            assert!(
                got >= exact && got as f64 <= exact as f64 * 1.125 + 1.0,
                "q={q} exact={exact} got={got}"
            );
        }
        assert_eq!(h.max(), Duration::from_millis(1000));
        assert_eq!(h.count(), 1000);
        assert_eq!(LatencyHistogram::default().percentile(0.5), Duration::ZERO);
    }

    #[test]
    fn drop_counts_by_reason() {
        let mut d = DropCounts::default();
        d.add(DropReason::Replaced);
        d.add(DropReason::Replaced);
        d.add(DropReason::Oversize);
        d.add(DropReason::Unknown(99));
        assert_eq!(d.get(DropReason::Replaced), 2);
        assert_eq!(d.total(), 3);
        assert_eq!(
            d.to_proto(),
            vec![
                DropCount {
                    reason: DropReason::Replaced,
                    count: 2
                },
                DropCount {
                    reason: DropReason::Oversize,
                    count: 1
                }
            ]
        );
    }
}
