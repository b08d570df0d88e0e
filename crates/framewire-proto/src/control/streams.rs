//! Streams and subscriptions: LIST_STREAMS, SUBSCRIBE and their answers,
//! and the state a stream is in.

use bytes::{BufMut, BytesMut};

use super::*;
use crate::codes::{DeliveryMode, DropPolicy, TransportMode};
use crate::error::FieldError;
use crate::fields::Fields;
use crate::wire::{Reader, WriteExt};

/// The state of a stream on the node that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamState {
    /// Frames are flowing (or will as soon as the source produces them).
    Live,
    /// The source or upstream is lost; retrying.
    Interrupted,
    /// Retrying has gone on past its limit; still retrying slowly.
    Failed,
    /// Not started (e.g. a capture-on-demand source with no subscriber).
    Idle,
    /// A value this build does not know.
    Unknown(u8),
}

impl StreamState {
    /// Wire value.
    pub fn to_raw(self) -> u8 {
        match self {
            StreamState::Live => 0,
            StreamState::Interrupted => 1,
            StreamState::Failed => 2,
            StreamState::Idle => 3,
            StreamState::Unknown(v) => v,
        }
    }
    /// From the wire value.
    pub fn from_raw(v: u8) -> StreamState {
        match v {
            0 => StreamState::Live,
            1 => StreamState::Interrupted,
            2 => StreamState::Failed,
            3 => StreamState::Idle,
            v => StreamState::Unknown(v),
        }
    }

    /// Lower-case name, as in JSON and metrics labels: `live`,
    /// `interrupted`, `failed`, `idle`, or `unknown`.
    pub fn label(self) -> &'static str {
        match self {
            StreamState::Live => "live",
            StreamState::Interrupted => "interrupted",
            StreamState::Failed => "failed",
            StreamState::Idle => "idle",
            StreamState::Unknown(_) => "unknown",
        }
    }
}

/// One entry of LIST_STREAMS: the stream's [`StreamOpen`] fields, then
/// `state u8, subscribers u16, frames u64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Format, size, rate and name.
    pub open: StreamOpen,
    /// Live, interrupted, failed or idle.
    pub state: StreamState,
    /// Current subscriptions.
    pub subscribers: u16,
    /// Frames produced or received so far.
    pub frames: u64,
}

impl Fields for StreamInfo {
    const MIN_LEN: usize = StreamOpen::MIN_LEN + 1 + 2 + 8;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        self.open.put(b)?;
        b.put_u8(self.state.to_raw());
        b.put_u16_le(self.subscribers);
        b.put_u64_le(self.frames);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(StreamInfo {
            open: StreamOpen::get(r)?,
            state: StreamState::from_raw(r.u8("state")?),
            subscribers: r.u16("subscribers")?,
            frames: r.u64("frames")?,
        })
    }
}

/// How a subscriber wants a stream delivered: `delivery_mode u8,
/// max_frames u32, max_bytes u64, drop_policy u8, priority u8,
/// transport_mode u8`. Zero budgets mean "the sender's default".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeParams {
    /// Low-latency or completeness.
    pub mode: DeliveryMode,
    /// Queue limit in frames (completeness); 0 = default.
    pub max_frames: u32,
    /// Queue limit in bytes; 0 = default.
    pub max_bytes: u64,
    /// Which frame a full queue gives up.
    pub drop_policy: DropPolicy,
    /// Path priority, 0 (lowest) to 255 (highest).
    pub priority: u8,
    /// Framed messages or bare bytes.
    pub transport: TransportMode,
}

impl Default for SubscribeParams {
    fn default() -> Self {
        SubscribeParams {
            mode: DeliveryMode::LowLatency,
            max_frames: 0,
            max_bytes: 0,
            drop_policy: DropPolicy::DropOldest,
            priority: 128,
            transport: TransportMode::Encapsulated,
        }
    }
}

impl Fields for SubscribeParams {
    const MIN_LEN: usize = 1 + 4 + 8 + 1 + 1 + 1;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u8(self.mode.to_raw());
        b.put_u32_le(self.max_frames);
        b.put_u64_le(self.max_bytes);
        b.put_u8(self.drop_policy.to_raw());
        b.put_u8(self.priority);
        b.put_u8(self.transport.to_raw());
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(SubscribeParams {
            mode: DeliveryMode::from_raw(r.u8("delivery_mode")?),
            max_frames: r.u32("max_frames")?,
            max_bytes: r.u64("max_bytes")?,
            drop_policy: DropPolicy::from_raw(r.u8("drop_policy")?),
            priority: r.u8("priority")?,
            transport: TransportMode::from_raw(r.u8("transport_mode")?),
        })
    }
}

/// SUBSCRIBE request: `stream string`, then [`SubscribeParams`], then,
/// optionally, `weight u16` and `max_rate u64` (docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// The stream's name on the responder.
    pub stream: String,
    /// How to deliver it.
    pub params: SubscribeParams,
    /// Share of a link under a weighted scheduler, at least 1.
    pub weight: u16,
    /// Bytes per second the sender may send of it (0: no cap).
    pub max_rate: u64,
}

impl Subscribe {
    /// A subscription to `stream` with weight 1 and no rate cap.
    pub fn new(stream: impl Into<String>, params: SubscribeParams) -> Subscribe {
        Subscribe {
            stream: stream.into(),
            params,
            weight: 1,
            max_rate: 0,
        }
    }
}

/// Writes the optional trailing fields of SUBSCRIBE and CONNECT: `weight
/// u16`, the subscription's share of a link under a weighted scheduler
/// (default 1; 0 reads as 1), then `max_rate u64`, the bytes per second the
/// sender may send of it (default 0, no cap). Each is written only when it
/// or a later one differs from its default, so a plain subscription is as
/// short as ever.
pub(crate) fn put_share(b: &mut BytesMut, weight: u16, max_rate: u64) {
    if weight > 1 || max_rate > 0 {
        b.put_u16_le(weight.max(1));
    }
    if max_rate > 0 {
        b.put_u64_le(max_rate);
    }
}

/// Reads the optional trailing weight and rate (1 and 0 when absent).
pub(crate) fn get_share(r: &mut Reader) -> Result<(u16, u64), FieldError> {
    let weight = if r.remaining() == 0 { 1 } else { r.u16("weight")?.max(1) };
    let max_rate = if r.remaining() == 0 { 0 } else { r.u64("max_rate")? };
    Ok((weight, max_rate))
}

impl Fields for Subscribe {
    const MIN_LEN: usize = 2 + SubscribeParams::MIN_LEN;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("stream", &self.stream)?;
        self.params.put(b)?;
        put_share(b, self.weight, self.max_rate);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        let stream = r.string("stream")?;
        let params = SubscribeParams::get(r)?;
        let (weight, max_rate) = get_share(r)?;
        Ok(Subscribe {
            stream,
            params,
            weight,
            max_rate,
        })
    }
}

/// SUBSCRIBE response: `channel u16`, the channel the stream will arrive
/// on; its STREAM_OPEN follows on that channel before the first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeReply {
    /// The stream's channel on this connection.
    pub channel: u16,
    /// For a shared-memory subscription: where and how to attach.
    pub shm: Option<ShmOffer>,
}

/// Where a shared-memory subscriber attaches: `shm_path string, token u64`,
/// present after `channel` only when the subscription asked for
/// transport 2 (shm) and was granted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShmOffer {
    /// The node's `SOCK_SEQPACKET` Unix socket.
    pub path: String,
    /// One-time token the subscriber sends first on that socket.
    pub token: u64,
}

impl Fields for SubscribeReply {
    const MIN_LEN: usize = 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u16_le(self.channel);
        if let Some(o) = &self.shm {
            b.put_string("shm_path", &o.path)?;
            b.put_u64_le(o.token);
        }
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        let channel = r.u16("channel")?;
        let shm = if r.remaining() > 0 {
            Some(ShmOffer {
                path: r.string("shm_path")?,
                token: r.u64("token")?,
            })
        } else {
            None
        };
        Ok(SubscribeReply { channel, shm })
    }
}

/// A single `string` field naming a stream, a device or a local edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The name; empty means "all" where the command says so.
    pub name: String,
}

impl Fields for Name {
    const MIN_LEN: usize = 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("name", &self.name)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Name {
            name: r.string("name")?,
        })
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name { name: s.to_owned() }
    }
}

/// SOURCE_ADD and SOURCE_SET: `table string`, a source's configuration as
/// a TOML table (`kind`, `name` and the kind's keys; docs/config.md), the
/// same a node's `[[source]]` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    /// The TOML text.
    pub table: String,
}

impl Fields for SourceTable {
    const MIN_LEN: usize = 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("table", &self.table)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(SourceTable {
            table: r.string("table")?,
        })
    }
}
