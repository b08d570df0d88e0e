//! The unit the relay moves: a complete frame, and the transmit the
//! transport is handed.

use bytes::Bytes;
use framewire_proto::{FrameFlags, VideoFrame};

use crate::id::InputId;

/// One complete frame as it entered the relay.
///
/// `data` is shared by reference: every output holding the frame holds a
/// clone of the same [`Bytes`], never a copy of the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The payload, e.g. a slice of the buffer the frame was read into.
    pub data: Bytes,
    /// The source's frame counter.
    pub sequence: u64,
    /// Source capture time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Keyframe and discontinuity bits, as received.
    pub flags: FrameFlags,
}

impl Frame {
    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl From<VideoFrame> for Frame {
    /// Keeps everything but the channel, which belongs to the connection.
    fn from(v: VideoFrame) -> Self {
        Frame {
            data: v.data,
            sequence: v.sequence,
            timestamp_ns: v.timestamp_ns,
            flags: v.flags,
        }
    }
}

/// The fields of a frame known before its payload, for frames assembled in
/// pieces (see [`Relay::begin_frame`](crate::Relay::begin_frame)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// The source's frame counter.
    pub sequence: u64,
    /// Source capture time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Keyframe and discontinuity bits.
    pub flags: FrameFlags,
}

/// A frame handed to the transport by [`Relay::poll_transmit`](crate::Relay::poll_transmit).
///
/// From this moment the frame is *in flight*: it still counts against the
/// output's budgets but nothing can cut, replace or drop it. The transport
/// writes it whole, then calls [`Relay::sent`](crate::Relay::sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Which input the frame came from (the driver maps it to a channel).
    pub input: InputId,
    /// The frame. `flags` has [`FrameFlags::DISCONTINUITY`] added when
    /// `lost > 0`.
    pub frame: Frame,
    /// Frames of this input this output dropped between the previous frame
    /// of this input it handed out and this one.
    pub lost: u64,
    /// `false` for an opaque output: write the payload bytes only, no
    /// header, no control messages.
    pub encapsulated: bool,
}
