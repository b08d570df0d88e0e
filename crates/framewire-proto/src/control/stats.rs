//! GET_STATS: counters of every input and output, and the drops by reason.

use bytes::{BufMut, BytesMut};

use super::*;
use crate::codes::{DeliveryMode, InputKind, TransportMode};
use crate::error::FieldError;
use crate::fields::{Fields, get_bool, get_list, put_list};
use crate::wire::{Reader, WriteExt};

/// Why a relay output dropped a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// A low-latency slot's unsent frame was replaced by a newer one.
    Replaced,
    /// The queue was at its frame limit.
    FrameBudget,
    /// The queue was at its byte limit.
    ByteBudget,
    /// The frame alone was larger than the whole byte budget.
    Oversize,
    /// The input was suppressed by the scheduler.
    Suppressed,
    /// An inter-coded stream waited for its next keyframe.
    WaitingKeyframe,
    /// The frame's input dropped before it was complete.
    Abandoned,
    /// A reason this build does not know.
    Unknown(u8),
}

impl DropReason {
    /// Every named reason.
    pub const ALL: [DropReason; 7] = [
        DropReason::Replaced,
        DropReason::FrameBudget,
        DropReason::ByteBudget,
        DropReason::Oversize,
        DropReason::Suppressed,
        DropReason::WaitingKeyframe,
        DropReason::Abandoned,
    ];
    /// Wire value.
    pub fn to_raw(self) -> u8 {
        match self {
            DropReason::Replaced => 1,
            DropReason::FrameBudget => 2,
            DropReason::ByteBudget => 3,
            DropReason::Oversize => 4,
            DropReason::Suppressed => 5,
            DropReason::WaitingKeyframe => 6,
            DropReason::Abandoned => 7,
            DropReason::Unknown(v) => v,
        }
    }
    /// From the wire value.
    pub fn from_raw(v: u8) -> DropReason {
        match v {
            1 => DropReason::Replaced,
            2 => DropReason::FrameBudget,
            3 => DropReason::ByteBudget,
            4 => DropReason::Oversize,
            5 => DropReason::Suppressed,
            6 => DropReason::WaitingKeyframe,
            7 => DropReason::Abandoned,
            v => DropReason::Unknown(v),
        }
    }
    /// A short name for logs and the CLI.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Replaced => "replaced",
            DropReason::FrameBudget => "frame-budget",
            DropReason::ByteBudget => "byte-budget",
            DropReason::Oversize => "oversize",
            DropReason::Suppressed => "suppressed",
            DropReason::WaitingKeyframe => "waiting-keyframe",
            DropReason::Abandoned => "abandoned",
            DropReason::Unknown(_) => "unknown",
        }
    }
}

/// A drop counter: `reason u8, count u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropCount {
    /// Why.
    pub reason: DropReason,
    /// How many frames.
    pub count: u64,
}

impl Fields for DropCount {
    const MIN_LEN: usize = 9;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u8(self.reason.to_raw());
        b.put_u64_le(self.count);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(DropCount {
            reason: DropReason::from_raw(r.u8("reason")?),
            count: r.u64("count")?,
        })
    }
}

/// Counters of one input (a stream a node produces or receives):
/// `stream string, state u8, upstream string, frames_in u64, bytes_in u64,
/// reconnects u32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputStats {
    /// The stream's local name.
    pub stream: String,
    /// Live, interrupted, failed, idle.
    pub state: StreamState,
    /// `host:port/stream` for a pulled edge; empty for a local source.
    pub upstream: String,
    /// Frames received or produced.
    pub frames_in: u64,
    /// Payload bytes received or produced.
    pub bytes_in: u64,
    /// Times a pulled edge reconnected.
    pub reconnects: u32,
}

impl Fields for InputStats {
    const MIN_LEN: usize = 2 + 1 + 2 + 8 + 8 + 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("stream", &self.stream)?;
        b.put_u8(self.state.to_raw());
        b.put_string("upstream", &self.upstream)?;
        b.put_u64_le(self.frames_in);
        b.put_u64_le(self.bytes_in);
        b.put_u32_le(self.reconnects);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(InputStats {
            stream: r.string("stream")?,
            state: StreamState::from_raw(r.u8("state")?),
            upstream: r.string("upstream")?,
            frames_in: r.u64("frames_in")?,
            bytes_in: r.u64("bytes_in")?,
            reconnects: r.u32("reconnects")?,
        })
    }
}

/// Counters of one output (a subscription):
/// `channel u16, stream string, peer string, delivery_mode u8,
/// transport_mode u8, priority u8, frames_in u64, frames_sent u64,
/// bytes_sent u64, drops list(DropCount), queue_frames u32,
/// queue_bytes u64, max_frames u32, max_bytes u64, oldest_age_us u64,
/// latency_p50_us u32, latency_p99_us u32, latency_max_us u32,
/// waiting_keyframe u8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputStats {
    /// The channel on the subscriber's connection.
    pub channel: u16,
    /// The stream's local name.
    pub stream: String,
    /// The subscriber's address and name.
    pub peer: String,
    /// Low-latency or completeness.
    pub mode: DeliveryMode,
    /// Encapsulated or opaque.
    pub transport: TransportMode,
    /// Path priority.
    pub priority: u8,
    /// Frames offered to this output.
    pub frames_in: u64,
    /// Frames handed to the transport.
    pub frames_sent: u64,
    /// Bytes handed to the transport.
    pub bytes_sent: u64,
    /// Frames dropped, by reason (reasons with a zero count may be left out).
    pub drops: Vec<DropCount>,
    /// Frames queued now.
    pub queue_frames: u32,
    /// Bytes queued now.
    pub queue_bytes: u64,
    /// The frame budget.
    pub max_frames: u32,
    /// The byte budget.
    pub max_bytes: u64,
    /// Age of the oldest queued frame, microseconds.
    pub oldest_age_us: u64,
    /// Send latency (arrival to written), median, microseconds.
    pub latency_p50_us: u32,
    /// Send latency, 99th percentile, microseconds.
    pub latency_p99_us: u32,
    /// Send latency, maximum, microseconds.
    pub latency_max_us: u32,
    /// Whether the output is skipping to the next keyframe.
    pub waiting_keyframe: bool,
}

impl Fields for OutputStats {
    const MIN_LEN: usize = 2 + 2 + 2 + 3 + 24 + 2 + 4 + 8 + 4 + 8 + 8 + 12 + 1;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u16_le(self.channel);
        b.put_string("stream", &self.stream)?;
        b.put_string("peer", &self.peer)?;
        b.put_u8(self.mode.to_raw());
        b.put_u8(self.transport.to_raw());
        b.put_u8(self.priority);
        b.put_u64_le(self.frames_in);
        b.put_u64_le(self.frames_sent);
        b.put_u64_le(self.bytes_sent);
        put_list(b, "drops", &self.drops)?;
        b.put_u32_le(self.queue_frames);
        b.put_u64_le(self.queue_bytes);
        b.put_u32_le(self.max_frames);
        b.put_u64_le(self.max_bytes);
        b.put_u64_le(self.oldest_age_us);
        b.put_u32_le(self.latency_p50_us);
        b.put_u32_le(self.latency_p99_us);
        b.put_u32_le(self.latency_max_us);
        b.put_u8(u8::from(self.waiting_keyframe));
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(OutputStats {
            channel: r.u16("channel")?,
            stream: r.string("stream")?,
            peer: r.string("peer")?,
            mode: DeliveryMode::from_raw(r.u8("delivery_mode")?),
            transport: TransportMode::from_raw(r.u8("transport_mode")?),
            priority: r.u8("priority")?,
            frames_in: r.u64("frames_in")?,
            frames_sent: r.u64("frames_sent")?,
            bytes_sent: r.u64("bytes_sent")?,
            drops: get_list(r, "drops")?,
            queue_frames: r.u32("queue_frames")?,
            queue_bytes: r.u64("queue_bytes")?,
            max_frames: r.u32("max_frames")?,
            max_bytes: r.u64("max_bytes")?,
            oldest_age_us: r.u64("oldest_age_us")?,
            latency_p50_us: r.u32("latency_p50_us")?,
            latency_p99_us: r.u32("latency_p99_us")?,
            latency_max_us: r.u32("latency_max_us")?,
            waiting_keyframe: get_bool(r, "waiting_keyframe")?,
        })
    }
}

/// How many input events of one kind: `kind u8, count u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputKindCount {
    /// The event kind.
    pub kind: InputKind,
    /// Events of that kind.
    pub count: u64,
}

impl Fields for InputKindCount {
    const MIN_LEN: usize = 9;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u8(self.kind.to_raw());
        b.put_u64_le(self.count);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(InputKindCount {
            kind: InputKind::from_raw(r.u8("kind")?),
            count: r.u64("count")?,
        })
    }
}

/// Input events (INPUT_EVENT) viewers sent for one stream of this node:
/// `stream string, received u64, injected u64, forwarded u64,
/// kinds list(kind u8, count u64)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputEventStats {
    /// The stream's local name.
    pub stream: String,
    /// Events received from subscribers of the stream.
    pub received: u64,
    /// Events replayed into the source's display (XTEST).
    pub injected: u64,
    /// Events passed upstream (the stream is a pulled edge).
    pub forwarded: u64,
    /// Received events by kind (kinds with a zero count may be left out).
    pub kinds: Vec<InputKindCount>,
}

impl Fields for InputEventStats {
    const MIN_LEN: usize = 2 + 24 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("stream", &self.stream)?;
        b.put_u64_le(self.received);
        b.put_u64_le(self.injected);
        b.put_u64_le(self.forwarded);
        put_list(b, "kinds", &self.kinds)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(InputEventStats {
            stream: r.string("stream")?,
            received: r.u64("received")?,
            injected: r.u64("injected")?,
            forwarded: r.u64("forwarded")?,
            kinds: get_list(r, "kinds")?,
        })
    }
}

/// Messages of one type a node passed through on one stream without
/// interpreting them (audio frames, types it does not know):
/// `stream string, message_type u16, messages u64, bytes u64, dropped u64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassThroughStats {
    /// The stream's local name.
    pub stream: String,
    /// The message type (0x0006 audio, or a code this build does not know).
    pub message_type: u16,
    /// Messages of that type that arrived on the stream's channel.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Copies not passed on because a subscriber's connection queue was full.
    pub dropped: u64,
}

impl Fields for PassThroughStats {
    const MIN_LEN: usize = 2 + 2 + 24;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("stream", &self.stream)?;
        b.put_u16_le(self.message_type);
        b.put_u64_le(self.messages);
        b.put_u64_le(self.bytes);
        b.put_u64_le(self.dropped);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(PassThroughStats {
            stream: r.string("stream")?,
            message_type: r.u16("message_type")?,
            messages: r.u64("messages")?,
            bytes: r.u64("bytes")?,
            dropped: r.u64("dropped")?,
        })
    }
}

/// GET_STATS response: `inputs list(InputStats), outputs list(OutputStats),
/// input_events list(InputEventStats)[, pass_through list(PassThroughStats)]`.
/// The last two lists were appended later: a body that ends after
/// `outputs` reads as no input events. The pass-through list belongs to
/// the GET_STATS response only (written by [`Response`]'s encoding when
/// not empty, read when the body goes on); a STATUS_REPORT's stats end
/// with `input_events`, and these fields encode the three lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// Streams produced or received.
    pub inputs: Vec<InputStats>,
    /// Subscriptions served.
    pub outputs: Vec<OutputStats>,
    /// Input events from viewers, per stream that received any.
    pub input_events: Vec<InputEventStats>,
    /// Messages passed through uninterpreted, per stream and type.
    pub pass_through: Vec<PassThroughStats>,
}

impl Fields for Stats {
    const MIN_LEN: usize = 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        put_list(b, "inputs", &self.inputs)?;
        put_list(b, "outputs", &self.outputs)?;
        put_list(b, "input_events", &self.input_events)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        let inputs = get_list(r, "inputs")?;
        let outputs = get_list(r, "outputs")?;
        let input_events = if r.remaining() == 0 {
            Vec::new()
        } else {
            get_list(r, "input_events")?
        };
        Ok(Stats {
            inputs,
            outputs,
            input_events,
            pass_through: Vec::new(),
        })
    }
}
