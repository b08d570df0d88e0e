//! Typed bodies of control requests and responses, one per command.
//!
//! A [`crate::message::ControlRequest`] carries its body undecoded;
//! [`Request::decode`] turns it into a typed value and [`Request::encode_body`]
//! back. Responses carry the command they answer, so [`Response::decode`]
//! needs nothing but the envelope. Readers ignore bytes after the last
//! field they know, so later versions can append fields.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codes::{
    Command, ControlType, DeliveryMode, DropPolicy, Features, Format, FrameFlags, FunctionFlags, InputKind, Origin,
    PixelFormat, Status, TransportMode,
};
use crate::error::{BodyError, EncodeError, FieldError};
use crate::message::{ControlRequest, ControlResponse, Encoded};
use crate::wire::{Reader, WriteExt};

/// A value with a fixed field layout inside a control body.
pub trait Fields: Sized {
    /// Smallest encoding, used to refuse impossible list counts early.
    const MIN_LEN: usize;
    /// Appends the fields.
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError>;
    /// Reads the fields.
    fn get(r: &mut Reader) -> Result<Self, FieldError>;
}

fn put_list<T: Fields>(b: &mut BytesMut, field: &'static str, items: &[T]) -> Result<(), FieldError> {
    b.put_count(field, items.len())?;
    for item in items {
        item.put(b)?;
    }
    Ok(())
}

fn get_list<T: Fields>(r: &mut Reader, field: &'static str) -> Result<Vec<T>, FieldError> {
    let n = r.count(T::MIN_LEN, field)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(T::get(r)?);
    }
    Ok(v)
}

fn get_bool(r: &mut Reader, field: &'static str) -> Result<bool, FieldError> {
    match r.u8(field)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(FieldError::OutOfRange { field }),
    }
}

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;

/// Authentication schemes offered in HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthScheme {
    /// No authentication.
    None,
    /// Challenge-response with HMAC-SHA-256 over both nonces and a
    /// deployment key that never crosses the wire.
    HmacSha256,
    /// A scheme this build does not know.
    Unknown(u8),
}

impl AuthScheme {
    /// Wire value.
    pub fn to_raw(self) -> u8 {
        match self {
            AuthScheme::None => 0,
            AuthScheme::HmacSha256 => 1,
            AuthScheme::Unknown(v) => v,
        }
    }
    /// From the wire value.
    pub fn from_raw(v: u8) -> AuthScheme {
        match v {
            0 => AuthScheme::None,
            1 => AuthScheme::HmacSha256,
            v => AuthScheme::Unknown(v),
        }
    }
}

/// HELLO request: `protocol_version u8, name string, site_id u16,
/// function_flags u16, features u32, auth_scheme u8, nonce blob16`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The sender's protocol version.
    pub protocol_version: u8,
    /// `namespace:instance`.
    pub name: String,
    /// The sender's site (0 = local).
    pub site_id: u16,
    /// What the sender does.
    pub function_flags: FunctionFlags,
    /// Optional capabilities (shared memory, opaque).
    pub features: Features,
    /// The scheme the sender wants, or none.
    pub auth_scheme: AuthScheme,
    /// The sender's challenge for the other end (empty without auth).
    pub nonce: Bytes,
}

impl Fields for Hello {
    const MIN_LEN: usize = 1 + 2 + 2 + 2 + 4 + 1 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u8(self.protocol_version);
        b.put_string("name", &self.name)?;
        b.put_u16_le(self.site_id);
        b.put_u16_le(self.function_flags.0);
        b.put_u32_le(self.features.0);
        b.put_u8(self.auth_scheme.to_raw());
        b.put_blob16("nonce", &self.nonce)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Hello {
            protocol_version: r.u8("protocol_version")?,
            name: r.string("name")?,
            site_id: r.u16("site_id")?,
            function_flags: FunctionFlags(r.u16("function_flags")?),
            features: Features(r.u32("features")?),
            auth_scheme: AuthScheme::from_raw(r.u8("auth_scheme")?),
            nonce: r.blob16("nonce")?,
        })
    }
}

/// HELLO response: the responder's [`Hello`] fields (its own nonce), then
/// `proof blob16`: its MAC over the requester's nonce (empty without auth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloReply {
    /// The responder's identity and challenge.
    pub hello: Hello,
    /// The responder's proof that it holds the key.
    pub proof: Bytes,
}

impl Fields for HelloReply {
    const MIN_LEN: usize = Hello::MIN_LEN + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        self.hello.put(b)?;
        b.put_blob16("proof", &self.proof)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(HelloReply {
            hello: Hello::get(r)?,
            proof: r.blob16("proof")?,
        })
    }
}

/// AUTH request: `proof blob16`, the requester's MAC over the responder's nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// The requester's proof.
    pub proof: Bytes,
}

impl Fields for Auth {
    const MIN_LEN: usize = 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_blob16("proof", &self.proof)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Auth {
            proof: r.blob16("proof")?,
        })
    }
}

/// STREAM_OPEN: `format u16, pixel_format u16, origin u16, width u32,
/// height u32, fps_num u32, fps_den u32, name string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOpen {
    /// How the payload bytes are encoded.
    pub format: Format,
    /// Pixel layout for raw formats; `None` otherwise.
    pub pixel_format: PixelFormat,
    /// How the frames were produced.
    pub origin: Origin,
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Nominal rate numerator (0 = unknown or variable).
    pub fps_num: u32,
    /// Nominal rate denominator.
    pub fps_den: u32,
    /// The stream's name on the sending node.
    pub name: String,
}

impl Fields for StreamOpen {
    const MIN_LEN: usize = 6 + 16 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u16_le(self.format.to_raw());
        b.put_u16_le(self.pixel_format.to_raw());
        b.put_u16_le(self.origin.to_raw());
        b.put_u32_le(self.width);
        b.put_u32_le(self.height);
        b.put_u32_le(self.fps_num);
        b.put_u32_le(self.fps_den);
        b.put_string("name", &self.name)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(StreamOpen {
            format: Format::from_raw(r.u16("format")?),
            pixel_format: PixelFormat::from_raw(r.u16("pixel_format")?),
            origin: Origin::from_raw(r.u16("origin")?),
            width: r.u32("width")?,
            height: r.u32("height")?,
            fps_num: r.u32("fps_num")?,
            fps_den: r.u32("fps_den")?,
            name: r.string("name")?,
        })
    }
}

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

/// SUBSCRIBE request: `stream string`, then [`SubscribeParams`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// The stream's name on the responder.
    pub stream: String,
    /// How to deliver it.
    pub params: SubscribeParams,
}

impl Fields for Subscribe {
    const MIN_LEN: usize = 2 + SubscribeParams::MIN_LEN;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("stream", &self.stream)?;
        self.params.put(b)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Subscribe {
            stream: r.string("stream")?,
            params: SubscribeParams::get(r)?,
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

/// GET_STATS response: `inputs list(InputStats), outputs list(OutputStats),
/// input_events list(InputEventStats)`. The last list was appended later:
/// a body that ends after `outputs` reads as no input events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// Streams produced or received.
    pub inputs: Vec<InputStats>,
    /// Subscriptions served.
    pub outputs: Vec<OutputStats>,
    /// Input events from viewers, per stream that received any.
    pub input_events: Vec<InputEventStats>,
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
        })
    }
}

/// CONNECT request: `upstream string (host:port), stream string,
/// local_name string`, then [`SubscribeParams`]. The receiver dials the
/// upstream, subscribes, and re-serves the stream as `local_name` (the
/// upstream's name when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// `host:port` of the upstream node.
    pub upstream: String,
    /// The stream's name on the upstream node.
    pub stream: String,
    /// The name to re-serve it under; empty = the same name.
    pub local_name: String,
    /// How to subscribe.
    pub params: SubscribeParams,
}

impl Fields for Connect {
    const MIN_LEN: usize = 6 + SubscribeParams::MIN_LEN;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("upstream", &self.upstream)?;
        b.put_string("stream", &self.stream)?;
        b.put_string("local_name", &self.local_name)?;
        self.params.put(b)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Connect {
            upstream: r.string("upstream")?,
            stream: r.string("stream")?,
            local_name: r.string("local_name")?,
            params: SubscribeParams::get(r)?,
        })
    }
}

/// DESCRIBE response: `name string, software string, protocol_version u8,
/// site_id u16, function_flags u16, features u32, pid u32, uptime_ms u64,
/// hostname string, streams u16, tcp_port u16`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// `namespace:instance`.
    pub name: String,
    /// Software name and version.
    pub software: String,
    /// Wire format version.
    pub protocol_version: u8,
    /// Site id.
    pub site_id: u16,
    /// What the node does.
    pub function_flags: FunctionFlags,
    /// Optional capabilities.
    pub features: Features,
    /// Process id.
    pub pid: u32,
    /// Milliseconds since the node started.
    pub uptime_ms: u64,
    /// The host's name.
    pub hostname: String,
    /// Streams served.
    pub streams: u16,
    /// The TCP port the node listens on.
    pub tcp_port: u16,
}

impl Fields for Description {
    const MIN_LEN: usize = 2 + 2 + 1 + 2 + 2 + 4 + 4 + 8 + 2 + 2 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("name", &self.name)?;
        b.put_string("software", &self.software)?;
        b.put_u8(self.protocol_version);
        b.put_u16_le(self.site_id);
        b.put_u16_le(self.function_flags.0);
        b.put_u32_le(self.features.0);
        b.put_u32_le(self.pid);
        b.put_u64_le(self.uptime_ms);
        b.put_string("hostname", &self.hostname)?;
        b.put_u16_le(self.streams);
        b.put_u16_le(self.tcp_port);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Description {
            name: r.string("name")?,
            software: r.string("software")?,
            protocol_version: r.u8("protocol_version")?,
            site_id: r.u16("site_id")?,
            function_flags: FunctionFlags(r.u16("function_flags")?),
            features: Features(r.u32("features")?),
            pid: r.u32("pid")?,
            uptime_ms: r.u64("uptime_ms")?,
            hostname: r.string("hostname")?,
            streams: r.u16("streams")?,
            tcp_port: r.u16("tcp_port")?,
        })
    }
}

/// SNAPSHOT response: the stream's [`StreamOpen`], then `sequence u64,
/// timestamp_ns u64, flags u32, data blob32` (the latest frame, encoded as
/// the stream carries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// How to decode `data`.
    pub open: StreamOpen,
    /// The frame's sequence number.
    pub sequence: u64,
    /// Its capture time.
    pub timestamp_ns: u64,
    /// Its flags.
    pub flags: FrameFlags,
    /// The frame, as carried.
    pub data: Bytes,
}

impl Fields for Snapshot {
    const MIN_LEN: usize = StreamOpen::MIN_LEN + 8 + 8 + 4 + 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        self.open.put(b)?;
        b.put_u64_le(self.sequence);
        b.put_u64_le(self.timestamp_ns);
        b.put_u32_le(self.flags.0);
        b.put_blob32("data", &self.data)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Snapshot {
            open: StreamOpen::get(r)?,
            sequence: r.u64("sequence")?,
            timestamp_ns: r.u64("timestamp_ns")?,
            flags: FrameFlags(r.u32("flags")?),
            data: r.blob32("data")?,
        })
    }
}

impl Snapshot {
    /// The whole SNAPSHOT answer (status ok) with the frame's bytes in
    /// [`Encoded::body`], shared rather than copied: the same bytes as
    /// `Message::ControlResponse(Response::Snapshot(..).to_message(..))`.
    pub fn encode_response(&self, channel: u16, request_id: u16) -> Result<Encoded, EncodeError> {
        let mut fields = BytesMut::new();
        self.open.put(&mut fields)?;
        fields.put_u64_le(self.sequence);
        fields.put_u64_le(self.timestamp_ns);
        fields.put_u32_le(self.flags.0);
        let len = u32::try_from(self.data.len()).map_err(|_| FieldError::TooLong {
            field: "data",
            len: self.data.len(),
            max: u32::MAX as usize,
        })?;
        fields.put_u32_le(len);
        crate::message::response_encoded(channel, request_id, Command::Snapshot, &fields, self.data.clone())
    }
}

/// SHUTDOWN request: `grace_ms u32`, how long in-flight frames may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// Milliseconds to finish in-flight work before closing.
    pub grace_ms: u32,
}

impl Fields for Shutdown {
    const MIN_LEN: usize = 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.grace_ms);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Shutdown {
            grace_ms: r.u32("grace_ms")?,
        })
    }
}

/// A frame size a V4L2 format offers, with its frame intervals:
/// `kind u8 (0 discrete, 1 stepwise, 2 continuous), width u32, height u32,
/// max_width u32, max_height u32, step_width u32, step_height u32,
/// intervals list(num u32, den u32)`. For discrete sizes the maxima equal
/// the size and the steps are 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2FrameSize {
    /// 0 discrete, 1 stepwise, 2 continuous.
    pub kind: u8,
    /// Width (minimum width for stepwise).
    pub width: u32,
    /// Height (minimum height for stepwise).
    pub height: u32,
    /// Maximum width.
    pub max_width: u32,
    /// Maximum height.
    pub max_height: u32,
    /// Width step.
    pub step_width: u32,
    /// Height step.
    pub step_height: u32,
    /// Frame intervals (seconds per frame) as `(numerator, denominator)`.
    pub intervals: Vec<(u32, u32)>,
}

impl Fields for (u32, u32) {
    const MIN_LEN: usize = 8;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.0);
        b.put_u32_le(self.1);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok((r.u32("num")?, r.u32("den")?))
    }
}

impl Fields for V4l2FrameSize {
    const MIN_LEN: usize = 1 + 24 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u8(self.kind);
        b.put_u32_le(self.width);
        b.put_u32_le(self.height);
        b.put_u32_le(self.max_width);
        b.put_u32_le(self.max_height);
        b.put_u32_le(self.step_width);
        b.put_u32_le(self.step_height);
        put_list(b, "intervals", &self.intervals)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(V4l2FrameSize {
            kind: r.u8("kind")?,
            width: r.u32("width")?,
            height: r.u32("height")?,
            max_width: r.u32("max_width")?,
            max_height: r.u32("max_height")?,
            step_width: r.u32("step_width")?,
            step_height: r.u32("step_height")?,
            intervals: get_list(r, "intervals")?,
        })
    }
}

/// A pixel format a V4L2 device offers: `fourcc u32, description string,
/// flags u32, sizes list(V4l2FrameSize)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Format {
    /// The four-character code, little-endian (`MJPG`, `YUYV`, ...).
    pub fourcc: u32,
    /// The driver's description.
    pub description: String,
    /// `V4L2_FMT_FLAG_*` bits.
    pub flags: u32,
    /// Frame sizes and their intervals.
    pub sizes: Vec<V4l2FrameSize>,
}

impl Fields for V4l2Format {
    const MIN_LEN: usize = 4 + 2 + 4 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.fourcc);
        b.put_string("description", &self.description)?;
        b.put_u32_le(self.flags);
        put_list(b, "sizes", &self.sizes)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(V4l2Format {
            fourcc: r.u32("fourcc")?,
            description: r.string("description")?,
            flags: r.u32("flags")?,
            sizes: get_list(r, "sizes")?,
        })
    }
}

/// One V4L2 capture device: `path string, card string, driver string,
/// bus string, capabilities u32, formats list(V4l2Format)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Device {
    /// `/dev/videoN`.
    pub path: String,
    /// The card name.
    pub card: String,
    /// The driver name.
    pub driver: String,
    /// The bus info.
    pub bus: String,
    /// `V4L2_CAP_*` device capabilities.
    pub capabilities: u32,
    /// Capture formats.
    pub formats: Vec<V4l2Format>,
}

impl Fields for V4l2Device {
    const MIN_LEN: usize = 8 + 4 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("path", &self.path)?;
        b.put_string("card", &self.card)?;
        b.put_string("driver", &self.driver)?;
        b.put_string("bus", &self.bus)?;
        b.put_u32_le(self.capabilities);
        put_list(b, "formats", &self.formats)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(V4l2Device {
            path: r.string("path")?,
            card: r.string("card")?,
            driver: r.string("driver")?,
            bus: r.string("bus")?,
            capabilities: r.u32("capabilities")?,
            formats: get_list(r, "formats")?,
        })
    }
}

/// A menu item of a V4L2 menu control: `index u32, name string, value i64`
/// (`name` for menus, `value` for integer menus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuItem {
    /// The item's index (the value to set).
    pub index: u32,
    /// Its label (menu controls).
    pub name: String,
    /// Its value (integer-menu controls).
    pub value: i64,
}

impl Fields for MenuItem {
    const MIN_LEN: usize = 4 + 2 + 8;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.index);
        b.put_string("name", &self.name)?;
        b.put_i64_le(self.value);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(MenuItem {
            index: r.u32("index")?,
            name: r.string("name")?,
            value: r.i64("value")?,
        })
    }
}

/// A V4L2 control: `id u32, class u32, type u8, name string, min i64,
/// max i64, step u64, default i64, flags u32, menu list(MenuItem)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Control {
    /// The control id (`V4L2_CID_*`).
    pub id: u32,
    /// The control class (`V4L2_CTRL_CLASS_*`).
    pub class: u32,
    /// Integer, boolean, menu, button, ...
    pub ctrl_type: ControlType,
    /// The driver's name for it.
    pub name: String,
    /// Minimum.
    pub min: i64,
    /// Maximum.
    pub max: i64,
    /// Step.
    pub step: u64,
    /// Default.
    pub default: i64,
    /// `V4L2_CTRL_FLAG_*` bits (read-only, inactive, ...).
    pub flags: u32,
    /// Menu items (menu and integer-menu controls).
    pub menu: Vec<MenuItem>,
}

impl Fields for V4l2Control {
    const MIN_LEN: usize = 4 + 4 + 1 + 2 + 32 + 4 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.id);
        b.put_u32_le(self.class);
        b.put_u8(self.ctrl_type.to_raw());
        b.put_string("name", &self.name)?;
        b.put_i64_le(self.min);
        b.put_i64_le(self.max);
        b.put_u64_le(self.step);
        b.put_i64_le(self.default);
        b.put_u32_le(self.flags);
        put_list(b, "menu", &self.menu)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(V4l2Control {
            id: r.u32("id")?,
            class: r.u32("class")?,
            ctrl_type: ControlType::from_raw(r.u8("type")?),
            name: r.string("name")?,
            min: r.i64("min")?,
            max: r.i64("max")?,
            step: r.u64("step")?,
            default: r.i64("default")?,
            flags: r.u32("flags")?,
            menu: get_list(r, "menu")?,
        })
    }
}

/// A control's value: `id u32, value i64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlValue {
    /// The control id.
    pub id: u32,
    /// Its value.
    pub value: i64,
}

impl Fields for ControlValue {
    const MIN_LEN: usize = 12;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.id);
        b.put_i64_le(self.value);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(ControlValue {
            id: r.u32("id")?,
            value: r.i64("value")?,
        })
    }
}

impl Fields for u32 {
    const MIN_LEN: usize = 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(*self);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        r.u32("id")
    }
}

/// V4L2_GET_CONTROLS request: `device string, ids list(u32)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetControls {
    /// The device path.
    pub device: String,
    /// Which controls; empty = all.
    pub ids: Vec<u32>,
}

impl Fields for GetControls {
    const MIN_LEN: usize = 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("device", &self.device)?;
        put_list(b, "ids", &self.ids)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(GetControls {
            device: r.string("device")?,
            ids: get_list(r, "ids")?,
        })
    }
}

/// V4L2_SET_CONTROLS request: `device string, values list(ControlValue)`.
/// Applied in order without restarting the stream; the first value out of
/// range or read-only fails the request with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetControls {
    /// The device path.
    pub device: String,
    /// What to set.
    pub values: Vec<ControlValue>,
}

impl Fields for SetControls {
    const MIN_LEN: usize = 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("device", &self.device)?;
        put_list(b, "values", &self.values)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(SetControls {
            device: r.string("device")?,
            values: get_list(r, "values")?,
        })
    }
}

/// An X11 monitor (XRandR): `name string, x i32, y i32, width u32,
/// height u32, width_mm u32, height_mm u32, refresh_mhz u32, primary u8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    /// The output's name (`HDMI-1`, `screen`, ...).
    pub name: String,
    /// Left edge in the desktop.
    pub x: i32,
    /// Top edge in the desktop.
    pub y: i32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Physical width, millimetres (0 = unknown).
    pub width_mm: u32,
    /// Physical height, millimetres (0 = unknown).
    pub height_mm: u32,
    /// Refresh rate in millihertz (0 = unknown).
    pub refresh_mhz: u32,
    /// Whether it is the primary monitor.
    pub primary: bool,
}

impl Fields for Monitor {
    const MIN_LEN: usize = 2 + 28 + 1;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("name", &self.name)?;
        b.put_i32_le(self.x);
        b.put_i32_le(self.y);
        b.put_u32_le(self.width);
        b.put_u32_le(self.height);
        b.put_u32_le(self.width_mm);
        b.put_u32_le(self.height_mm);
        b.put_u32_le(self.refresh_mhz);
        b.put_u8(u8::from(self.primary));
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Monitor {
            name: r.string("name")?,
            x: r.i32("x")?,
            y: r.i32("y")?,
            width: r.u32("width")?,
            height: r.u32("height")?,
            width_mm: r.u32("width_mm")?,
            height_mm: r.u32("height_mm")?,
            refresh_mhz: r.u32("refresh_mhz")?,
            primary: get_bool(r, "primary")?,
        })
    }
}

/// WATCH_STATUS request: `interval_ms u32` (0 = 1000). After an ok answer
/// the node pushes a [`StatusReport`] on this connection at once, every
/// `interval_ms`, and within a few milliseconds of every change to its
/// streams, edges or outputs, until the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchStatus {
    /// Period of the heartbeat report, ms; 0 = the default (1000).
    pub interval_ms: u32,
}

impl Fields for WatchStatus {
    const MIN_LEN: usize = 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.interval_ms);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(WatchStatus {
            interval_ms: r.u32("interval_ms")?,
        })
    }
}

/// Where a pulled edge comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EdgeOrigin {
    /// The node's own configuration (file or command line).
    Config,
    /// A CONNECT request (a controller or a person with the CLI).
    Connect,
    /// Opened by discovery for a remote stream.
    Discovery,
    /// A value this build does not know.
    Unknown(u8),
}

impl EdgeOrigin {
    /// Wire value.
    pub fn to_raw(self) -> u8 {
        match self {
            EdgeOrigin::Config => 0,
            EdgeOrigin::Connect => 1,
            EdgeOrigin::Discovery => 2,
            EdgeOrigin::Unknown(v) => v,
        }
    }
    /// From the wire value.
    pub fn from_raw(v: u8) -> EdgeOrigin {
        match v {
            0 => EdgeOrigin::Config,
            1 => EdgeOrigin::Connect,
            2 => EdgeOrigin::Discovery,
            v => EdgeOrigin::Unknown(v),
        }
    }
}

/// One pulled edge in a [`StatusReport`]: `local_name string,
/// upstream string (host:port), stream string, origin u8, state u8,
/// failed_attempts u32`, then [`SubscribeParams`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeStatus {
    /// The name the stream is served under here.
    pub local_name: String,
    /// `host:port` of the upstream node, as given.
    pub upstream: String,
    /// The stream's name on the upstream.
    pub stream: String,
    /// Config, CONNECT or discovery.
    pub origin: EdgeOrigin,
    /// Live, interrupted (retrying), failed (retrying slowly).
    pub state: StreamState,
    /// Connection attempts that failed since the edge was last live.
    pub failed_attempts: u32,
    /// How it subscribes.
    pub params: SubscribeParams,
}

impl Fields for EdgeStatus {
    const MIN_LEN: usize = 6 + 1 + 1 + 4 + SubscribeParams::MIN_LEN;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("local_name", &self.local_name)?;
        b.put_string("upstream", &self.upstream)?;
        b.put_string("stream", &self.stream)?;
        b.put_u8(self.origin.to_raw());
        b.put_u8(self.state.to_raw());
        b.put_u32_le(self.failed_attempts);
        self.params.put(b)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(EdgeStatus {
            local_name: r.string("local_name")?,
            upstream: r.string("upstream")?,
            stream: r.string("stream")?,
            origin: EdgeOrigin::from_raw(r.u8("origin")?),
            state: StreamState::from_raw(r.u8("state")?),
            failed_attempts: r.u32("failed_attempts")?,
            params: SubscribeParams::get(r)?,
        })
    }
}

impl Fields for u16 {
    const MIN_LEN: usize = 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u16_le(*self);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        r.u16("value")
    }
}

/// STATUS_REPORT, pushed by a watched node: `sequence u32, description
/// Description, streams list(StreamInfo), stats Stats, edges
/// list(EdgeStatus), accept_formats list(u16)`. `accept_formats` lists the
/// stream formats the node accepts on a pulled edge; empty = every format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// Counts reports on this connection from 0.
    pub sequence: u32,
    /// Who the node is (as DESCRIBE answers).
    pub description: Description,
    /// Its streams (as LIST_STREAMS answers).
    pub streams: Vec<StreamInfo>,
    /// Its counters (as GET_STATS with an empty name answers).
    pub stats: Stats,
    /// Its pulled edges.
    pub edges: Vec<EdgeStatus>,
    /// Formats accepted on pulled edges (empty = all).
    pub accept_formats: Vec<Format>,
}

impl Fields for StatusReport {
    const MIN_LEN: usize = 4 + Description::MIN_LEN + 2 + Stats::MIN_LEN + 2 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.sequence);
        self.description.put(b)?;
        put_list(b, "streams", &self.streams)?;
        self.stats.put(b)?;
        put_list(b, "edges", &self.edges)?;
        let formats: Vec<u16> = self.accept_formats.iter().map(|f| f.to_raw()).collect();
        put_list(b, "accept_formats", &formats)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(StatusReport {
            sequence: r.u32("sequence")?,
            description: Description::get(r)?,
            streams: get_list(r, "streams")?,
            stats: Stats::get(r)?,
            edges: get_list(r, "edges")?,
            accept_formats: get_list::<u16>(r, "accept_formats")?
                .into_iter()
                .map(Format::from_raw)
                .collect(),
        })
    }
}

/// A typed control request body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// HELLO.
    Hello(Hello),
    /// AUTH.
    Auth(Auth),
    /// LIST_STREAMS (no fields).
    ListStreams,
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// UNSUBSCRIBE (no fields; the header's channel names the subscription).
    Unsubscribe,
    /// STREAM_OPEN (on the stream's channel).
    StreamOpen(StreamOpen),
    /// GET_STATS: `stream string` (empty = all).
    GetStats(Name),
    /// CONNECT.
    Connect(Connect),
    /// DISCONNECT: `local_name string`.
    Disconnect(Name),
    /// DESCRIBE (no fields).
    Describe,
    /// SNAPSHOT: `stream string`.
    Snapshot(Name),
    /// SHUTDOWN.
    Shutdown(Shutdown),
    /// V4L2_LIST_DEVICES (no fields).
    V4l2ListDevices,
    /// V4L2_LIST_CONTROLS: `device string`.
    V4l2ListControls(Name),
    /// V4L2_GET_CONTROLS.
    V4l2GetControls(GetControls),
    /// V4L2_SET_CONTROLS.
    V4l2SetControls(SetControls),
    /// LIST_MONITORS (no fields).
    ListMonitors,
    /// WATCH_STATUS.
    WatchStatus(WatchStatus),
    /// STATUS_REPORT (pushed by a watched node; not answered).
    StatusReport(Box<StatusReport>),
    /// A command this build does not know (answer `unknown-command`).
    Unknown {
        /// The raw command.
        command: u16,
        /// Its fields, undecoded.
        body: Bytes,
    },
}

impl Request {
    /// The command number.
    pub fn command(&self) -> Command {
        match self {
            Request::Hello(_) => Command::Hello,
            Request::Auth(_) => Command::Auth,
            Request::ListStreams => Command::ListStreams,
            Request::Subscribe(_) => Command::Subscribe,
            Request::Unsubscribe => Command::Unsubscribe,
            Request::StreamOpen(_) => Command::StreamOpen,
            Request::GetStats(_) => Command::GetStats,
            Request::Connect(_) => Command::Connect,
            Request::Disconnect(_) => Command::Disconnect,
            Request::Describe => Command::Describe,
            Request::Snapshot(_) => Command::Snapshot,
            Request::Shutdown(_) => Command::Shutdown,
            Request::V4l2ListDevices => Command::V4l2ListDevices,
            Request::V4l2ListControls(_) => Command::V4l2ListControls,
            Request::V4l2GetControls(_) => Command::V4l2GetControls,
            Request::V4l2SetControls(_) => Command::V4l2SetControls,
            Request::ListMonitors => Command::ListMonitors,
            Request::WatchStatus(_) => Command::WatchStatus,
            Request::StatusReport(_) => Command::StatusReport,
            Request::Unknown { command, .. } => Command::from_raw(*command),
        }
    }

    /// The body's bytes.
    pub fn encode_body(&self) -> Result<Bytes, FieldError> {
        let mut b = BytesMut::new();
        match self {
            Request::Hello(x) => x.put(&mut b)?,
            Request::Auth(x) => x.put(&mut b)?,
            Request::Subscribe(x) => x.put(&mut b)?,
            Request::StreamOpen(x) => x.put(&mut b)?,
            Request::GetStats(x) | Request::Disconnect(x) | Request::Snapshot(x) | Request::V4l2ListControls(x) => {
                x.put(&mut b)?;
            }
            Request::Connect(x) => x.put(&mut b)?,
            Request::Shutdown(x) => x.put(&mut b)?,
            Request::V4l2GetControls(x) => x.put(&mut b)?,
            Request::V4l2SetControls(x) => x.put(&mut b)?,
            Request::WatchStatus(x) => x.put(&mut b)?,
            Request::StatusReport(x) => x.put(&mut b)?,
            Request::ListStreams
            | Request::Unsubscribe
            | Request::Describe
            | Request::V4l2ListDevices
            | Request::ListMonitors => {}
            Request::Unknown { body, .. } => return Ok(body.clone()),
        }
        Ok(b.freeze())
    }

    /// The whole envelope for this request.
    pub fn to_message(&self, channel: u16, request_id: u16) -> Result<ControlRequest, FieldError> {
        Ok(ControlRequest {
            channel,
            request_id,
            command: self.command(),
            body: self.encode_body()?,
        })
    }

    /// Parses a request envelope's body.
    pub fn decode(req: &ControlRequest) -> Result<Request, BodyError> {
        let mut r = Reader::new(req.body.clone());
        let err = |source| BodyError {
            command: req.command,
            source,
        };
        Ok(match req.command {
            Command::Hello => Request::Hello(Hello::get(&mut r).map_err(err)?),
            Command::Auth => Request::Auth(Auth::get(&mut r).map_err(err)?),
            Command::ListStreams => Request::ListStreams,
            Command::Subscribe => Request::Subscribe(Subscribe::get(&mut r).map_err(err)?),
            Command::Unsubscribe => Request::Unsubscribe,
            Command::StreamOpen => Request::StreamOpen(StreamOpen::get(&mut r).map_err(err)?),
            Command::GetStats => Request::GetStats(Name::get(&mut r).map_err(err)?),
            Command::Connect => Request::Connect(Connect::get(&mut r).map_err(err)?),
            Command::Disconnect => Request::Disconnect(Name::get(&mut r).map_err(err)?),
            Command::Describe => Request::Describe,
            Command::Snapshot => Request::Snapshot(Name::get(&mut r).map_err(err)?),
            Command::Shutdown => Request::Shutdown(Shutdown::get(&mut r).map_err(err)?),
            Command::V4l2ListDevices => Request::V4l2ListDevices,
            Command::V4l2ListControls => Request::V4l2ListControls(Name::get(&mut r).map_err(err)?),
            Command::V4l2GetControls => Request::V4l2GetControls(GetControls::get(&mut r).map_err(err)?),
            Command::V4l2SetControls => Request::V4l2SetControls(SetControls::get(&mut r).map_err(err)?),
            Command::ListMonitors => Request::ListMonitors,
            Command::WatchStatus => Request::WatchStatus(WatchStatus::get(&mut r).map_err(err)?),
            Command::StatusReport => Request::StatusReport(Box::new(StatusReport::get(&mut r).map_err(err)?)),
            Command::Unknown(command) => Request::Unknown {
                command,
                body: req.body.clone(),
            },
        })
    }
}

/// A typed body of a successful control response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// HELLO.
    Hello(HelloReply),
    /// AUTH (no fields).
    Auth,
    /// LIST_STREAMS: `streams list(StreamInfo)`.
    ListStreams(Vec<StreamInfo>),
    /// SUBSCRIBE.
    Subscribe(SubscribeReply),
    /// UNSUBSCRIBE (no fields).
    Unsubscribe,
    /// STREAM_OPEN accepted (no fields).
    StreamOpen,
    /// GET_STATS.
    GetStats(Stats),
    /// CONNECT: `local_name string`, the name the stream is served under.
    Connect(Name),
    /// DISCONNECT (no fields).
    Disconnect,
    /// DESCRIBE.
    Describe(Description),
    /// SNAPSHOT.
    Snapshot(Snapshot),
    /// SHUTDOWN accepted (no fields).
    Shutdown,
    /// V4L2_LIST_DEVICES: `devices list(V4l2Device)`.
    V4l2ListDevices(Vec<V4l2Device>),
    /// V4L2_LIST_CONTROLS: `controls list(V4l2Control)`.
    V4l2ListControls(Vec<V4l2Control>),
    /// V4L2_GET_CONTROLS: `values list(ControlValue)`.
    V4l2GetControls(Vec<ControlValue>),
    /// V4L2_SET_CONTROLS: `values list(ControlValue)`, as applied.
    V4l2SetControls(Vec<ControlValue>),
    /// LIST_MONITORS: `monitors list(Monitor)`.
    ListMonitors(Vec<Monitor>),
    /// WATCH_STATUS accepted (no fields).
    WatchStatus,
    /// A command this build does not know.
    Unknown {
        /// The raw command.
        command: u16,
        /// Its fields, undecoded.
        body: Bytes,
    },
}

impl Response {
    /// The command answered.
    pub fn command(&self) -> Command {
        match self {
            Response::Hello(_) => Command::Hello,
            Response::Auth => Command::Auth,
            Response::ListStreams(_) => Command::ListStreams,
            Response::Subscribe(_) => Command::Subscribe,
            Response::Unsubscribe => Command::Unsubscribe,
            Response::StreamOpen => Command::StreamOpen,
            Response::GetStats(_) => Command::GetStats,
            Response::Connect(_) => Command::Connect,
            Response::Disconnect => Command::Disconnect,
            Response::Describe(_) => Command::Describe,
            Response::Snapshot(_) => Command::Snapshot,
            Response::Shutdown => Command::Shutdown,
            Response::V4l2ListDevices(_) => Command::V4l2ListDevices,
            Response::V4l2ListControls(_) => Command::V4l2ListControls,
            Response::V4l2GetControls(_) => Command::V4l2GetControls,
            Response::V4l2SetControls(_) => Command::V4l2SetControls,
            Response::ListMonitors(_) => Command::ListMonitors,
            Response::WatchStatus => Command::WatchStatus,
            Response::Unknown { command, .. } => Command::from_raw(*command),
        }
    }

    /// The body's bytes.
    pub fn encode_body(&self) -> Result<Bytes, FieldError> {
        let mut b = BytesMut::new();
        match self {
            Response::Hello(x) => x.put(&mut b)?,
            Response::ListStreams(x) => put_list(&mut b, "streams", x)?,
            Response::Subscribe(x) => x.put(&mut b)?,
            Response::GetStats(x) => x.put(&mut b)?,
            Response::Connect(x) => x.put(&mut b)?,
            Response::Describe(x) => x.put(&mut b)?,
            Response::Snapshot(x) => x.put(&mut b)?,
            Response::V4l2ListDevices(x) => put_list(&mut b, "devices", x)?,
            Response::V4l2ListControls(x) => put_list(&mut b, "controls", x)?,
            Response::V4l2GetControls(x) | Response::V4l2SetControls(x) => put_list(&mut b, "values", x)?,
            Response::ListMonitors(x) => put_list(&mut b, "monitors", x)?,
            Response::Auth
            | Response::Unsubscribe
            | Response::StreamOpen
            | Response::Disconnect
            | Response::Shutdown
            | Response::WatchStatus => {}
            Response::Unknown { body, .. } => return Ok(body.clone()),
        }
        Ok(b.freeze())
    }

    /// The whole envelope of a successful response.
    pub fn to_message(&self, channel: u16, request_id: u16) -> Result<ControlResponse, FieldError> {
        Ok(ControlResponse {
            channel,
            request_id,
            status: Status::Ok,
            command: self.command(),
            body: self.encode_body()?,
        })
    }

    /// Parses the body of a response whose status is ok. (For an error
    /// status use [`ControlResponse::error_message`].)
    pub fn decode(resp: &ControlResponse) -> Result<Response, BodyError> {
        let mut r = Reader::new(resp.body.clone());
        let err = |source| BodyError {
            command: resp.command,
            source,
        };
        Ok(match resp.command {
            Command::Hello => Response::Hello(HelloReply::get(&mut r).map_err(err)?),
            Command::Auth => Response::Auth,
            Command::ListStreams => Response::ListStreams(get_list(&mut r, "streams").map_err(err)?),
            Command::Subscribe => Response::Subscribe(SubscribeReply::get(&mut r).map_err(err)?),
            Command::Unsubscribe => Response::Unsubscribe,
            Command::StreamOpen => Response::StreamOpen,
            Command::GetStats => Response::GetStats(Stats::get(&mut r).map_err(err)?),
            Command::Connect => Response::Connect(Name::get(&mut r).map_err(err)?),
            Command::Disconnect => Response::Disconnect,
            Command::Describe => Response::Describe(Description::get(&mut r).map_err(err)?),
            Command::Snapshot => Response::Snapshot(Snapshot::get(&mut r).map_err(err)?),
            Command::Shutdown => Response::Shutdown,
            Command::V4l2ListDevices => Response::V4l2ListDevices(get_list(&mut r, "devices").map_err(err)?),
            Command::V4l2ListControls => Response::V4l2ListControls(get_list(&mut r, "controls").map_err(err)?),
            Command::V4l2GetControls => Response::V4l2GetControls(get_list(&mut r, "values").map_err(err)?),
            Command::V4l2SetControls => Response::V4l2SetControls(get_list(&mut r, "values").map_err(err)?),
            Command::ListMonitors => Response::ListMonitors(get_list(&mut r, "monitors").map_err(err)?),
            Command::WatchStatus => Response::WatchStatus,
            // A report is pushed, never answered: an answer to one is carried undecoded.
            Command::StatusReport => Response::Unknown {
                command: Command::StatusReport.to_raw(),
                body: resp.body.clone(),
            },
            Command::Unknown(command) => Response::Unknown {
                command,
                body: resp.body.clone(),
            },
        })
    }
}
