//! The message envelope: the 8-byte header and every message type's payload.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codes::{
    Command, EventCode, EventReason, Format, FrameFlags, FunctionFlags, InputKind, MessageType, Origin, PixelFormat,
    Status,
};
use crate::error::{DecodeError, EncodeError, FieldError};
use crate::fields::Fields;
use crate::wire::{Reader, WriteExt};

/// Length of the header that precedes every message.
pub const HEADER_LEN: usize = 8;

/// Length of the fixed fields at the start of a video frame's payload
/// (`sequence u64, timestamp_ns u64, flags u32`).
pub const VIDEO_PREFIX_LEN: usize = 20;

/// The 8-byte header: `message_type u16 | channel_id u16 | payload_length u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// How to read the payload.
    pub message_type: MessageType,
    /// The stream channel, or 0.
    pub channel: u16,
    /// Bytes of payload after the header.
    pub payload_len: u32,
}

impl Header {
    /// Reads a header from exactly eight bytes.
    pub fn from_bytes(b: [u8; HEADER_LEN]) -> Header {
        Header {
            message_type: MessageType::from_raw(u16::from_le_bytes([b[0], b[1]])),
            channel: u16::from_le_bytes([b[2], b[3]]),
            payload_len: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// The header's eight bytes.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let t = self.message_type.to_raw().to_le_bytes();
        let c = self.channel.to_le_bytes();
        let l = self.payload_len.to_le_bytes();
        [t[0], t[1], c[0], c[1], l[0], l[1], l[2], l[3]]
    }
}

/// A video frame: `sequence u64, timestamp_ns u64, flags u32`, then the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// The stream channel.
    pub channel: u16,
    /// Increases by one per frame the source produced.
    pub sequence: u64,
    /// Source capture time, nanoseconds since the Unix epoch (CLOCK_REALTIME).
    pub timestamp_ns: u64,
    /// Keyframe, discontinuity and future bits (kept as received).
    pub flags: FrameFlags,
    /// The encoded frame, shared, never copied by the envelope.
    pub data: Bytes,
}

impl VideoFrame {
    /// The header plus the fixed fields, ready to be written before
    /// [`VideoFrame::data`] in one vectored write.
    pub fn encode_head(&self) -> Result<[u8; HEADER_LEN + VIDEO_PREFIX_LEN], EncodeError> {
        let payload_len = payload_len(VIDEO_PREFIX_LEN + self.data.len())?;
        let mut out = [0u8; HEADER_LEN + VIDEO_PREFIX_LEN];
        out[..HEADER_LEN].copy_from_slice(
            &Header {
                message_type: MessageType::VideoFrame,
                channel: self.channel,
                payload_len,
            }
            .to_bytes(),
        );
        out[8..16].copy_from_slice(&self.sequence.to_le_bytes());
        out[16..24].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        out[24..28].copy_from_slice(&self.flags.0.to_le_bytes());
        Ok(out)
    }
}

/// A control request envelope: `request_id u16, command u16`, then the
/// command's fields (see [`crate::control::Request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRequest {
    /// 0, or the channel the request concerns.
    pub channel: u16,
    /// Chosen by the requester; echoed in the response.
    pub request_id: u16,
    /// What to do.
    pub command: Command,
    /// The command's fields, undecoded.
    pub body: Bytes,
}

/// A control response envelope: `request_id u16, status u16, command u16`,
/// then the command's result fields when `status` is ok, or a message
/// string when it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlResponse {
    /// As the request's.
    pub channel: u16,
    /// The request this answers.
    pub request_id: u16,
    /// Ok or why not.
    pub status: Status,
    /// The command answered (an echo of the request's).
    pub command: Command,
    /// Result fields, or an error message string, undecoded.
    pub body: Bytes,
}

impl ControlResponse {
    /// An error response carrying a human-readable message.
    pub fn error(channel: u16, request_id: u16, command: Command, status: Status, message: &str) -> ControlResponse {
        let mut body = BytesMut::with_capacity(2 + message.len());
        // A message longer than 65535 bytes is cut at a character boundary.
        let mut end = message.len().min(usize::from(u16::MAX));
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        // Cannot fail: `end` fits a u16 by construction.
        let _ = body.put_string("message", &message[..end]);
        ControlResponse {
            channel,
            request_id,
            status,
            command,
            body: body.freeze(),
        }
    }

    /// The error message of a response whose status is not ok.
    pub fn error_message(&self) -> Option<String> {
        if self.status == Status::Ok {
            return None;
        }
        Reader::new(self.body.clone()).string("message").ok()
    }
}

/// Fields common to the interrupted, resumed and closed stream events:
/// `timestamp_ns u64, reason u8, message string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInfo {
    /// When it happened, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Why.
    pub reason: EventReason,
    /// A human-readable detail; may be empty.
    pub message: String,
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
    /// The codec configuration: for H.264 and H.265, the stream's
    /// parameter sets (VPS, SPS, PPS) in Annex B form; empty when none is
    /// known or the format has none. Carried only by the STREAM_OPEN
    /// request, as an optional trailing `codec_config blob16`; listings,
    /// status reports and events leave it out (empty).
    pub codec_config: Bytes,
}

impl StreamOpen {
    /// Writes the STREAM_OPEN request's (and a *format-changed* event's)
    /// body: the fields, then the codec configuration if there is one.
    pub(crate) fn put_request(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        self.put(b)?;
        if !self.codec_config.is_empty() {
            b.put_blob16("codec_config", &self.codec_config)?;
        }
        Ok(())
    }

    /// Reads the STREAM_OPEN request's body.
    pub(crate) fn get_request(r: &mut Reader) -> Result<Self, FieldError> {
        let mut open = StreamOpen::get(r)?;
        if r.remaining() > 0 {
            open.codec_config = r.blob16("codec_config")?;
        }
        Ok(open)
    }
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
            codec_config: Bytes::new(),
        })
    }
}

/// A stream lifecycle event (seed 003, Device Resilience).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The stream stopped; discard any partial frame and reset parsers.
    Interrupted(EventInfo),
    /// The stream is back; a clean frame boundary follows.
    Resumed(EventInfo),
    /// The stream ended for good.
    Closed(EventInfo),
    /// Format, size or rate changed; the new STREAM_OPEN fields follow.
    FormatChanged(StreamOpen),
    /// An event code this build does not know, kept whole.
    Unknown {
        /// The event code.
        code: u8,
        /// The fields after the code.
        fields: Bytes,
    },
}

impl StreamEvent {
    /// The event's code.
    pub fn code(&self) -> EventCode {
        match self {
            StreamEvent::Interrupted(_) => EventCode::Interrupted,
            StreamEvent::Resumed(_) => EventCode::Resumed,
            StreamEvent::Closed(_) => EventCode::Closed,
            StreamEvent::FormatChanged(_) => EventCode::FormatChanged,
            StreamEvent::Unknown { code, .. } => EventCode::Unknown(*code),
        }
    }
}

/// Bits of [`InputEvent::modifiers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Modifiers(pub u16);

impl Modifiers {
    /// Shift.
    pub const SHIFT: u16 = 0x01;
    /// Control.
    pub const CTRL: u16 = 0x02;
    /// Alt (Mod1).
    pub const ALT: u16 = 0x04;
    /// Super / Windows / Command (Mod4).
    pub const SUPER: u16 = 0x08;
    /// Caps lock is on.
    pub const CAPS_LOCK: u16 = 0x10;
    /// Num lock is on.
    pub const NUM_LOCK: u16 = 0x20;
}

/// A keyboard or mouse event a viewer forwards upstream, in the source's
/// pixel coordinates. The layout is fixed (36 bytes); fields that do not
/// apply to a kind are zero.
///
/// `kind u8, timestamp_ns u64, modifiers u16, keysym u32, scancode u32,
/// button u8, x i32, y i32, wheel_x i32, wheel_y i32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    /// What happened.
    pub kind: InputKind,
    /// When the viewer saw it, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Modifier keys held ([`Modifiers`] bits).
    pub modifiers: Modifiers,
    /// The key as an X11 keysym (layout-independent meaning), for key events.
    pub keysym: u32,
    /// The key's physical position as a Linux evdev scancode, 0 if unknown.
    pub scancode: u32,
    /// Mouse button: 1 left, 2 middle, 3 right, 8 back, 9 forward.
    pub button: u8,
    /// Pointer x in source pixels (may be outside the picture while dragging).
    pub x: i32,
    /// Pointer y in source pixels.
    pub y: i32,
    /// Horizontal wheel, in 1/120 of a notch (positive: right).
    pub wheel_x: i32,
    /// Vertical wheel, in 1/120 of a notch (positive: away from the user).
    pub wheel_y: i32,
}

/// Length of an input event's payload.
pub const INPUT_EVENT_LEN: usize = 36;

/// A node announcement or goodbye (discovery):
/// `protocol_version u8, site_id u16, tcp_port u16, function_flags u16,
/// name_len u8, name`, then extension bytes readers ignore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAnnouncement {
    /// The sender's wire format version.
    pub protocol_version: u8,
    /// The sender's site (0 = local).
    pub site_id: u16,
    /// Where the sender accepts TCP connections.
    pub tcp_port: u16,
    /// What the sender does.
    pub function_flags: FunctionFlags,
    /// `namespace:instance`, at most 255 bytes.
    pub name: String,
    /// Bytes after the name; kept so they forward unchanged.
    pub extensions: Bytes,
}

/// Every message of the wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// 0x0001.
    VideoFrame(VideoFrame),
    /// 0x0002.
    ControlRequest(ControlRequest),
    /// 0x0003.
    ControlResponse(ControlResponse),
    /// 0x0004.
    StreamEvent {
        /// The stream channel.
        channel: u16,
        /// The event.
        event: StreamEvent,
    },
    /// 0x0005.
    InputEvent {
        /// The stream channel the viewer watches.
        channel: u16,
        /// The event.
        event: InputEvent,
    },
    /// 0x0006, reserved: the payload passes through untouched.
    AudioFrame {
        /// The stream channel.
        channel: u16,
        /// The payload, undecoded.
        payload: Bytes,
    },
    /// 0x0010.
    NodeAnnouncement(NodeAnnouncement),
    /// 0x0011.
    NodeGoodbye(NodeAnnouncement),
    /// A type this build does not know: skipped or forwarded whole.
    Unknown {
        /// The raw message type.
        message_type: u16,
        /// The channel.
        channel: u16,
        /// The payload, undecoded.
        payload: Bytes,
    },
}

/// An encoded message as two parts for one vectored write: `head` holds the
/// header and any fields this layer wrote, `body` is a shared payload
/// (frame data, a control body) that was not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The header and the fields before `body`.
    pub head: Bytes,
    /// The rest of the payload, shared.
    pub body: Bytes,
}

impl Encoded {
    /// Total bytes on the wire.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// Whether there is nothing to write (never true for a real message).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The two parts joined (copies; for tests, datagrams and logs).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(&self.head);
        v.extend_from_slice(&self.body);
        v
    }
}

/// A control response whose result fields are `fields` and then `body`
/// (shared, not copied), encoded.
pub(crate) fn response_encoded(
    channel: u16,
    request_id: u16,
    command: Command,
    fields: &[u8],
    body: Bytes,
) -> Result<Encoded, EncodeError> {
    let header = Header {
        message_type: MessageType::ControlResponse,
        channel,
        payload_len: payload_len(6 + fields.len() + body.len())?,
    };
    let mut head = BytesMut::with_capacity(HEADER_LEN + 6 + fields.len());
    head.put_slice(&header.to_bytes());
    head.put_u16_le(request_id);
    head.put_u16_le(Status::Ok.to_raw());
    head.put_u16_le(command.to_raw());
    head.put_slice(fields);
    Ok(Encoded {
        head: head.freeze(),
        body,
    })
}

fn payload_len(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::PayloadTooLarge { len })
}

impl Message {
    /// The message's type code.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::VideoFrame(_) => MessageType::VideoFrame,
            Message::ControlRequest(_) => MessageType::ControlRequest,
            Message::ControlResponse(_) => MessageType::ControlResponse,
            Message::StreamEvent { .. } => MessageType::StreamEvent,
            Message::InputEvent { .. } => MessageType::InputEvent,
            Message::AudioFrame { .. } => MessageType::AudioFrame,
            Message::NodeAnnouncement(_) => MessageType::NodeAnnouncement,
            Message::NodeGoodbye(_) => MessageType::NodeGoodbye,
            Message::Unknown { message_type, .. } => MessageType::from_raw(*message_type),
        }
    }

    /// The header's channel.
    pub fn channel(&self) -> u16 {
        match self {
            Message::VideoFrame(f) => f.channel,
            Message::ControlRequest(r) => r.channel,
            Message::ControlResponse(r) => r.channel,
            Message::StreamEvent { channel, .. }
            | Message::InputEvent { channel, .. }
            | Message::AudioFrame { channel, .. }
            | Message::Unknown { channel, .. } => *channel,
            Message::NodeAnnouncement(_) | Message::NodeGoodbye(_) => 0,
        }
    }

    /// Encodes the message. Shared payloads (frame data, control bodies,
    /// audio, unknown payloads) go into [`Encoded::body`] without a copy.
    pub fn encode(&self) -> Result<Encoded, EncodeError> {
        let channel = self.channel();
        let message_type = self.message_type();
        // Fields written by this layer, after the header.
        let mut fields = BytesMut::new();
        let body: Bytes = match self {
            Message::VideoFrame(f) => {
                let head = f.encode_head()?;
                return Ok(Encoded {
                    head: Bytes::copy_from_slice(&head),
                    body: f.data.clone(),
                });
            }
            Message::ControlRequest(r) => {
                fields.put_u16_le(r.request_id);
                fields.put_u16_le(r.command.to_raw());
                r.body.clone()
            }
            Message::ControlResponse(r) => {
                fields.put_u16_le(r.request_id);
                fields.put_u16_le(r.status.to_raw());
                fields.put_u16_le(r.command.to_raw());
                r.body.clone()
            }
            Message::StreamEvent { event, .. } => {
                fields.put_u8(event.code().to_raw());
                match event {
                    StreamEvent::Interrupted(i) | StreamEvent::Resumed(i) | StreamEvent::Closed(i) => {
                        fields.put_u64_le(i.timestamp_ns);
                        fields.put_u8(i.reason.to_raw());
                        fields.put_string("message", &i.message)?;
                        Bytes::new()
                    }
                    StreamEvent::FormatChanged(open) => {
                        open.put_request(&mut fields)?;
                        Bytes::new()
                    }
                    StreamEvent::Unknown { fields: rest, .. } => rest.clone(),
                }
            }
            Message::InputEvent { event, .. } => {
                fields.put_u8(event.kind.to_raw());
                fields.put_u64_le(event.timestamp_ns);
                fields.put_u16_le(event.modifiers.0);
                fields.put_u32_le(event.keysym);
                fields.put_u32_le(event.scancode);
                fields.put_u8(event.button);
                fields.put_i32_le(event.x);
                fields.put_i32_le(event.y);
                fields.put_i32_le(event.wheel_x);
                fields.put_i32_le(event.wheel_y);
                Bytes::new()
            }
            Message::AudioFrame { payload, .. } | Message::Unknown { payload, .. } => payload.clone(),
            Message::NodeAnnouncement(a) | Message::NodeGoodbye(a) => {
                let name_len = u8::try_from(a.name.len()).map_err(|_| FieldError::TooLong {
                    field: "name",
                    len: a.name.len(),
                    max: 255,
                })?;
                fields.put_u8(a.protocol_version);
                fields.put_u16_le(a.site_id);
                fields.put_u16_le(a.tcp_port);
                fields.put_u16_le(a.function_flags.0);
                fields.put_u8(name_len);
                fields.put_slice(a.name.as_bytes());
                a.extensions.clone()
            }
        };
        let header = Header {
            message_type,
            channel,
            payload_len: payload_len(fields.len() + body.len())?,
        };
        let mut head = BytesMut::with_capacity(HEADER_LEN + fields.len());
        head.put_slice(&header.to_bytes());
        head.put_slice(&fields);
        Ok(Encoded {
            head: head.freeze(),
            body,
        })
    }

    /// Encodes into one contiguous buffer (copies the payload; for tests,
    /// datagrams and logs, not for the frame path).
    pub fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        Ok(self.encode()?.to_vec())
    }

    /// Parses a whole message from its header and payload. Slices of
    /// `payload` are kept without copying.
    pub fn parse(header: Header, payload: Bytes) -> Result<Message, DecodeError> {
        let malformed = |source: FieldError| DecodeError::Malformed {
            message_type: header.message_type,
            channel: header.channel,
            source,
        };
        let channel = header.channel;
        let mut r = Reader::new(payload);
        let msg = match header.message_type {
            MessageType::VideoFrame => {
                let sequence = r.u64("sequence").map_err(malformed)?;
                let timestamp_ns = r.u64("timestamp_ns").map_err(malformed)?;
                let flags = FrameFlags(r.u32("flags").map_err(malformed)?);
                Message::VideoFrame(VideoFrame {
                    channel,
                    sequence,
                    timestamp_ns,
                    flags,
                    data: r.rest(),
                })
            }
            MessageType::ControlRequest => {
                let request_id = r.u16("request_id").map_err(malformed)?;
                let command = Command::from_raw(r.u16("command").map_err(malformed)?);
                Message::ControlRequest(ControlRequest {
                    channel,
                    request_id,
                    command,
                    body: r.rest(),
                })
            }
            MessageType::ControlResponse => {
                let request_id = r.u16("request_id").map_err(malformed)?;
                let status = Status::from_raw(r.u16("status").map_err(malformed)?);
                let command = Command::from_raw(r.u16("command").map_err(malformed)?);
                Message::ControlResponse(ControlResponse {
                    channel,
                    request_id,
                    status,
                    command,
                    body: r.rest(),
                })
            }
            MessageType::StreamEvent => {
                let code = r.u8("event_code").map_err(malformed)?;
                let event = match EventCode::from_raw(code) {
                    EventCode::FormatChanged => {
                        StreamEvent::FormatChanged(StreamOpen::get_request(&mut r).map_err(malformed)?)
                    }
                    c @ (EventCode::Interrupted | EventCode::Resumed | EventCode::Closed) => {
                        let info = EventInfo {
                            timestamp_ns: r.u64("timestamp_ns").map_err(malformed)?,
                            reason: EventReason::from_raw(r.u8("reason").map_err(malformed)?),
                            message: r.string("message").map_err(malformed)?,
                        };
                        match c {
                            EventCode::Interrupted => StreamEvent::Interrupted(info),
                            EventCode::Resumed => StreamEvent::Resumed(info),
                            _ => StreamEvent::Closed(info),
                        }
                    }
                    _ => StreamEvent::Unknown { code, fields: r.rest() },
                };
                Message::StreamEvent { channel, event }
            }
            MessageType::InputEvent => {
                let event = (|| -> Result<InputEvent, FieldError> {
                    Ok(InputEvent {
                        kind: InputKind::from_raw(r.u8("kind")?),
                        timestamp_ns: r.u64("timestamp_ns")?,
                        modifiers: Modifiers(r.u16("modifiers")?),
                        keysym: r.u32("keysym")?,
                        scancode: r.u32("scancode")?,
                        button: r.u8("button")?,
                        x: r.i32("x")?,
                        y: r.i32("y")?,
                        wheel_x: r.i32("wheel_x")?,
                        wheel_y: r.i32("wheel_y")?,
                    })
                })()
                .map_err(malformed)?;
                Message::InputEvent { channel, event }
            }
            MessageType::AudioFrame => Message::AudioFrame {
                channel,
                payload: r.rest(),
            },
            MessageType::NodeAnnouncement | MessageType::NodeGoodbye => {
                let a = parse_announcement(&mut r).map_err(malformed)?;
                if header.message_type == MessageType::NodeAnnouncement {
                    Message::NodeAnnouncement(a)
                } else {
                    Message::NodeGoodbye(a)
                }
            }
            MessageType::Unknown(raw) => Message::Unknown {
                message_type: raw,
                channel,
                payload: r.rest(),
            },
        };
        Ok(msg)
    }
}

fn parse_announcement(r: &mut Reader) -> Result<NodeAnnouncement, FieldError> {
    let protocol_version = r.u8("protocol_version")?;
    let site_id = r.u16("site_id")?;
    let tcp_port = r.u16("tcp_port")?;
    let function_flags = FunctionFlags(r.u16("function_flags")?);
    let name_len = usize::from(r.u8("name_len")?);
    let raw = r.bytes(name_len, "name")?;
    let name = String::from_utf8(raw.to_vec()).map_err(|_| FieldError::InvalidUtf8 { field: "name" })?;
    Ok(NodeAnnouncement {
        protocol_version,
        site_id,
        tcp_port,
        function_flags,
        name,
        extensions: r.clone().rest(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let h = Header {
            message_type: MessageType::VideoFrame,
            channel: 0x0203,
            payload_len: 0x0a0b0c0d,
        };
        assert_eq!(h.to_bytes(), [0x01, 0x00, 0x03, 0x02, 0x0d, 0x0c, 0x0b, 0x0a]);
        assert_eq!(Header::from_bytes(h.to_bytes()), h);
    }

    #[test]
    fn video_frame_data_is_not_copied() {
        let data = Bytes::from(vec![7u8; 1000]);
        let m = Message::VideoFrame(VideoFrame {
            channel: 1,
            sequence: 2,
            timestamp_ns: 3,
            flags: FrameFlags::KEYFRAME,
            data: data.clone(),
        });
        let e = m.encode().unwrap();
        assert_eq!(e.head.len(), HEADER_LEN + VIDEO_PREFIX_LEN);
        assert_eq!(e.body.as_ptr(), data.as_ptr());
    }

    #[test]
    fn error_response_carries_message() {
        let r = ControlResponse::error(0, 9, Command::Subscribe, Status::NotFound, "no stream `cam`");
        assert_eq!(r.error_message().as_deref(), Some("no stream `cam`"));
        let ok = ControlResponse {
            status: Status::Ok,
            ..r
        };
        assert_eq!(ok.error_message(), None);
    }

    #[test]
    fn error_message_is_cut_at_a_char_boundary() {
        let long = "é".repeat(40_000); // 80,000 bytes
        let r = ControlResponse::error(0, 1, Command::Hello, Status::Internal, &long);
        let m = r.error_message().unwrap();
        assert!(m.len() <= usize::from(u16::MAX));
        assert!(m.chars().all(|c| c == 'é'));
    }
}
