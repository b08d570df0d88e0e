//! Code tables: message types, commands, statuses, and the format,
//! pixel-format and origin codes of a stream.
//!
//! Every table is an *open* enum: a value this build does not know is kept
//! as `Unknown(raw)` and encodes back to the same number, so a relay can
//! forward a stream whose format it has never heard of.

/// Declares an open `u16`/`u8` code enum with named values plus `Unknown`.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $label:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this build does not know; kept so it round-trips.
            Unknown($repr),
        }

        impl $name {
            /// Every named value, in table order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as it appears on the wire.
            pub const fn to_raw(self) -> $repr {
                match self {
                    $( $name::$variant => $value, )+
                    $name::Unknown(v) => v,
                }
            }

            /// The named value for `raw`, or `Unknown(raw)`.
            pub const fn from_raw(raw: $repr) -> Self {
                match raw {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }

            /// A short lower-case name for logs, docs and the CLI.
            pub const fn label(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                    $name::Unknown(_) => "unknown",
                }
            }

            /// Looks a value up by its label (as printed by [`Self::label`]).
            pub fn from_label(label: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.label().eq_ignore_ascii_case(label))
            }
        }

        impl From<$repr> for $name {
            fn from(raw: $repr) -> Self {
                Self::from_raw(raw)
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                v.to_raw()
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self {
                    $name::Unknown(v) => write!(f, "unknown(0x{v:x})"),
                    other => f.write_str(other.label()),
                }
            }
        }
    };
}

open_enum! {
    /// The `message_type` field of the 8-byte header.
    pub enum MessageType: u16 {
        /// A video frame on a stream channel.
        VideoFrame = 0x0001 => "video-frame",
        /// A control request.
        ControlRequest = 0x0002 => "control-request",
        /// A control response.
        ControlResponse = 0x0003 => "control-response",
        /// A stream lifecycle event.
        StreamEvent = 0x0004 => "stream-event",
        /// A keyboard or mouse event sent upstream by a viewer.
        InputEvent = 0x0005 => "input-event",
        /// Reserved for audio; carried untouched.
        AudioFrame = 0x0006 => "audio-frame",
        /// Discovery: a node announces itself.
        NodeAnnouncement = 0x0010 => "node-announcement",
        /// Discovery: a node leaves.
        NodeGoodbye = 0x0011 => "node-goodbye",
    }
}

open_enum! {
    /// The `command` field of a control request (and its echo in the response).
    pub enum Command: u16 {
        /// Opens a session: versions, identities, features, authentication.
        Hello = 0x0001 => "hello",
        /// Second half of the authentication exchange.
        Auth = 0x0002 => "auth",
        /// Lists the streams a node serves.
        ListStreams = 0x0010 => "list-streams",
        /// Asks for a stream on this connection.
        Subscribe = 0x0011 => "subscribe",
        /// Ends a subscription (the header's channel names it).
        Unsubscribe = 0x0012 => "unsubscribe",
        /// Announces a channel's stream before its first frame.
        StreamOpen = 0x0013 => "stream-open",
        /// Per-input and per-output counters.
        GetStats = 0x0014 => "get-stats",
        /// Tells a (downstream) node to subscribe to a stream on another node.
        Connect = 0x0015 => "connect",
        /// Undoes a `Connect`.
        Disconnect = 0x0016 => "disconnect",
        /// Who the node is and what it runs.
        Describe = 0x0017 => "describe",
        /// The latest frame of a stream.
        Snapshot = 0x0018 => "snapshot",
        /// Asks the node to shut down gracefully.
        Shutdown = 0x0019 => "shutdown",
        /// Changes a subscription's budgets and priority in place (the
        /// header's channel names it).
        UpdateSubscription = 0x001a => "update-subscription",
        /// Asks for a keyframe of a stream soon: the stream named, or (name
        /// empty) the one of the subscription on the header's channel.
        RequestKeyframe = 0x001b => "request-keyframe",
        /// V4L2: devices on the node's host.
        V4l2ListDevices = 0x0020 => "v4l2-list-devices",
        /// V4L2: a device's controls with ranges and menus.
        V4l2ListControls = 0x0021 => "v4l2-list-controls",
        /// V4L2: current control values.
        V4l2GetControls = 0x0022 => "v4l2-get-controls",
        /// V4L2: set control values.
        V4l2SetControls = 0x0023 => "v4l2-set-controls",
        /// X11: monitor geometry through XRandR.
        ListMonitors = 0x0030 => "list-monitors",
        /// Controller: push a status report on this connection once a second and on every change.
        WatchStatus = 0x0040 => "watch-status",
        /// Controller: a status report pushed by a watched node (request id 0, not answered).
        StatusReport = 0x0041 => "status-report",
        /// Starts a source from a spec (its TOML table).
        SourceAdd = 0x0050 => "source-add",
        /// Replaces a running source's spec, keeping its stream.
        SourceSet = 0x0051 => "source-set",
        /// Stops a source and removes its stream.
        SourceRemove = 0x0052 => "source-remove",
        /// A running source's table (secrets masked).
        SourceGet = 0x0053 => "source-get",
        /// What a node's archives hold in a time window.
        ArchiveList = 0x0060 => "archive-list",
        /// A chunk of a range of a recording, as one file.
        ArchiveRead = 0x0061 => "archive-read",
        /// Pauses or resumes an archive sink.
        ArchiveSet = 0x0062 => "archive-set",
        /// Connects this connection, through a gateway, to a node of
        /// another site; every later message goes to it and back.
        Tunnel = 0x0070 => "tunnel",
    }
}

open_enum! {
    /// The `status` field of a control response.
    pub enum Status: u16 {
        /// Success.
        Ok = 0x0000 => "ok",
        /// The command number is not known to the responder.
        UnknownCommand = 0x0001 => "unknown-command",
        /// The request's fields did not parse or were out of range.
        BadRequest = 0x0002 => "bad-request",
        /// The named stream, device or node does not exist.
        NotFound = 0x0003 => "not-found",
        /// The receiver has no decoder for the stream's format.
        UnsupportedFormat = 0x0004 => "unsupported-format",
        /// Not allowed (no or failed authentication, insufficient role).
        PermissionDenied = 0x0005 => "permission-denied",
        /// A resource is in use or a limit was reached; try again later.
        Busy = 0x0006 => "busy",
        /// The responder failed; its message says why.
        Internal = 0x0007 => "internal",
        /// The protocol versions of the two ends are not compatible.
        VersionMismatch = 0x0008 => "version-mismatch",
    }
}

open_enum! {
    /// Wire format of a stream's frame payloads (seed 003, Codec Module).
    pub enum Format: u16 {
        /// Motion JPEG: one JPEG image per frame.
        Mjpeg = 0x0001 => "mjpeg",
        /// H.264 / AVC.
        H264 = 0x0002 => "h264",
        /// H.265 / HEVC.
        H265 = 0x0003 => "h265",
        /// AV1.
        Av1 = 0x0004 => "av1",
        /// FFV1 (lossless).
        Ffv1 = 0x0005 => "ffv1",
        /// Apple ProRes.
        ProRes = 0x0006 => "prores",
        /// QOI (lossless image).
        Qoi = 0x0007 => "qoi",
        /// Raw pixels; see the pixel format.
        Raw = 0x0008 => "raw",
        /// Raw pixels compressed with zstd; see the pixel format.
        RawZstd = 0x0009 => "raw-zstd",
    }
}

impl Format {
    /// Whether frames of this format may depend on earlier frames, so a
    /// receiver that lost one must wait for the next keyframe.
    ///
    /// Unknown formats are treated as inter-coded: that is the safe choice,
    /// since skipping to a keyframe never corrupts a picture.
    pub const fn is_inter_coded(self) -> bool {
        !matches!(
            self,
            Format::Mjpeg | Format::Qoi | Format::Raw | Format::RawZstd | Format::Ffv1 | Format::ProRes
        )
    }
}

open_enum! {
    /// Pixel layout of raw formats; zero for compressed formats.
    pub enum PixelFormat: u16 {
        /// Not applicable (compressed formats).
        None = 0x0000 => "none",
        /// B, G, R, A bytes per pixel.
        Bgra = 0x0001 => "bgra",
        /// R, G, B, A bytes per pixel.
        Rgba = 0x0002 => "rgba",
        /// B, G, R bytes per pixel.
        Bgr = 0x0003 => "bgr",
        /// Y plane, then U and V planes at half width and height (I420).
        Yuv420p = 0x0004 => "yuv420p",
        /// Y0 U Y1 V, two pixels in four bytes (YUYV).
        Yuv422Packed = 0x0005 => "yuyv422",
    }
}

open_enum! {
    /// How a stream's frames were produced; informational.
    pub enum Origin: u16 {
        /// Not stated.
        Unspecified = 0x0000 => "unspecified",
        /// The camera or capture card encoded it.
        DeviceNative = 0x0001 => "device-native",
        /// libjpeg-turbo, in process.
        LibjpegTurbo = 0x0002 => "libjpeg-turbo",
        /// ffmpeg's libavcodec, in process.
        Libavcodec = 0x0003 => "libavcodec",
        /// An ffmpeg subprocess.
        FfmpegSubprocess = 0x0004 => "ffmpeg-subprocess",
        /// VA-API hardware encoder.
        VaApi = 0x0005 => "vaapi",
        /// NVENC hardware encoder.
        Nvenc = 0x0006 => "nvenc",
        /// Other software.
        Software = 0x0007 => "software",
    }
}

open_enum! {
    /// How an output trades latency against completeness.
    pub enum DeliveryMode: u8 {
        /// One slot; the newest frame replaces an unsent one.
        LowLatency = 0 => "low-latency",
        /// A bounded queue with a drop policy.
        Completeness = 1 => "completeness",
    }
}

open_enum! {
    /// Which frame a full completeness queue gives up.
    pub enum DropPolicy: u8 {
        /// Drop the oldest queued frame (keeps recency).
        DropOldest = 0 => "drop-oldest",
        /// Drop the arriving frame (keeps continuity).
        DropNewest = 1 => "drop-newest",
    }
}

open_enum! {
    /// Whether a subscription carries framed messages or bare bytes.
    pub enum TransportMode: u8 {
        /// Every message with its 8-byte header.
        Encapsulated = 0 => "encapsulated",
        /// Only the frame bytes, no headers, no control.
        Opaque = 1 => "opaque",
        /// Frames in shared memory on this host; control stays on the TCP
        /// connection (docs/shm.md, "Edges between nodes").
        Shm = 2 => "shm",
    }
}

open_enum! {
    /// The `event_code` of a stream event.
    pub enum EventCode: u8 {
        /// The stream stopped (device or upstream lost); bytes stop.
        Interrupted = 0x01 => "interrupted",
        /// The stream is back; a clean frame boundary follows.
        Resumed = 0x02 => "resumed",
        /// The stream ended for good.
        Closed = 0x03 => "closed",
        /// The stream's format, size or rate changed; new fields follow.
        FormatChanged = 0x04 => "format-changed",
    }
}

open_enum! {
    /// Why a stream event happened.
    pub enum EventReason: u8 {
        /// Not stated.
        Unspecified = 0 => "unspecified",
        /// The capture device vanished or failed.
        DeviceLost = 1 => "device-lost",
        /// The upstream node or connection went away.
        UpstreamLost = 2 => "upstream-lost",
        /// The sender is shutting down.
        Shutdown = 3 => "shutdown",
        /// The subscriber asked to stop.
        Unsubscribed = 4 => "unsubscribed",
        /// An error; the message says which.
        Error = 5 => "error",
        /// The upstream is connected but sends nothing: no frame for
        /// max(2 s, 10 frame intervals) of a live stream.
        Stalled = 6 => "stalled",
        /// The source was removed (SOURCE_REMOVE).
        SourceRemoved = 7 => "source-removed",
        /// The source is being changed (SOURCE_SET): it resumes with its
        /// new settings, or its old ones if the new ones fail.
        Reconfigured = 8 => "reconfigured",
    }
}

open_enum! {
    /// What kind of input event a viewer forwards.
    pub enum InputKind: u8 {
        /// A key went down.
        KeyDown = 1 => "key-down",
        /// A key went up.
        KeyUp = 2 => "key-up",
        /// The pointer moved.
        MouseMove = 3 => "mouse-move",
        /// A mouse button went down.
        ButtonDown = 4 => "button-down",
        /// A mouse button went up.
        ButtonUp = 5 => "button-up",
        /// The wheel turned.
        Wheel = 6 => "wheel",
    }
}

open_enum! {
    /// Type of a V4L2 control (the kernel's `v4l2_ctrl_type` numbers).
    pub enum ControlType: u8 {
        /// A signed integer with min, max and step.
        Integer = 1 => "integer",
        /// On or off.
        Boolean = 2 => "boolean",
        /// One of named menu items.
        Menu = 3 => "menu",
        /// An action with no value.
        Button = 4 => "button",
        /// A 64-bit integer.
        Integer64 = 5 => "integer64",
        /// A control class marker (no value).
        CtrlClass = 6 => "class",
        /// A string.
        String = 7 => "string",
        /// A bit mask.
        Bitmask = 8 => "bitmask",
        /// One of integer menu items.
        IntegerMenu = 9 => "integer-menu",
    }
}

/// Bits of a node's `function_flags` (discovery and HELLO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FunctionFlags(pub u16);

impl FunctionFlags {
    /// Produces video.
    pub const SOURCE: FunctionFlags = FunctionFlags(0x0001);
    /// Receives and distributes streams.
    pub const RELAY: FunctionFlags = FunctionFlags(0x0002);
    /// Consumes video (display, archiver, ...).
    pub const SINK: FunctionFlags = FunctionFlags(0x0004);
    /// Holds the controller role.
    pub const CONTROLLER: FunctionFlags = FunctionFlags(0x0008);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: FunctionFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both sets.
    #[must_use]
    pub const fn union(self, other: FunctionFlags) -> FunctionFlags {
        FunctionFlags(self.0 | other.0)
    }
}

impl core::ops::BitOr for FunctionFlags {
    type Output = FunctionFlags;
    fn bitor(self, rhs: FunctionFlags) -> FunctionFlags {
        self.union(rhs)
    }
}

impl core::fmt::Display for FunctionFlags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names = [
            (Self::SOURCE, "source"),
            (Self::RELAY, "relay"),
            (Self::SINK, "sink"),
            (Self::CONTROLLER, "controller"),
        ];
        let mut first = true;
        for (flag, name) in names {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        let rest = self.0 & !0x000f;
        if rest != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "0x{rest:x}")?;
            first = false;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Bits of the `flags` field of a video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameFlags(pub u32);

impl FrameFlags {
    /// The frame can be decoded without earlier frames.
    pub const KEYFRAME: FrameFlags = FrameFlags(0x1);
    /// Frames were lost or the source restarted before this one.
    pub const DISCONTINUITY: FrameFlags = FrameFlags(0x2);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: FrameFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the keyframe bit is set.
    pub const fn is_keyframe(self) -> bool {
        self.contains(Self::KEYFRAME)
    }

    /// Whether the discontinuity bit is set.
    pub const fn is_discontinuity(self) -> bool {
        self.contains(Self::DISCONTINUITY)
    }

    /// These flags with `other`'s bits also set.
    #[must_use]
    pub const fn with(self, other: FrameFlags) -> FrameFlags {
        FrameFlags(self.0 | other.0)
    }
}

/// Bits of the `features` field of HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Features(pub u32);

impl Features {
    /// The node can carry same-host edges over shared memory.
    pub const SHM: Features = Features(0x1);
    /// The node serves opaque (headerless) subscriptions.
    pub const OPAQUE: Features = Features(0x2);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_round_trip() {
        for raw in [0u16, 0x000a, 0x7fff, 0xffff] {
            assert_eq!(Format::from_raw(raw).to_raw(), raw);
            assert_eq!(PixelFormat::from_raw(raw).to_raw(), raw);
            assert_eq!(Origin::from_raw(raw).to_raw(), raw);
            assert_eq!(Command::from_raw(raw).to_raw(), raw);
            assert_eq!(MessageType::from_raw(raw).to_raw(), raw);
        }
        assert_eq!(Format::from_raw(0x00ff), Format::Unknown(0x00ff));
    }

    #[test]
    fn seed_table_values_are_kept() {
        assert_eq!(Format::Mjpeg.to_raw(), 1);
        assert_eq!(Format::RawZstd.to_raw(), 9);
        assert_eq!(PixelFormat::Yuv422Packed.to_raw(), 5);
        assert_eq!(Origin::Software.to_raw(), 7);
        assert_eq!(MessageType::NodeGoodbye.to_raw(), 0x11);
    }

    #[test]
    fn labels_are_unique_and_parse_back() {
        for f in Format::ALL {
            assert_eq!(Format::from_label(f.label()), Some(*f));
        }
        for c in Command::ALL {
            assert_eq!(Command::from_label(c.label()), Some(*c));
        }
        assert_eq!(Format::Unknown(77).to_string(), "unknown(0x4d)");
    }

    #[test]
    fn inter_coding() {
        assert!(Format::H264.is_inter_coded());
        assert!(Format::Av1.is_inter_coded());
        assert!(Format::Unknown(0x99).is_inter_coded());
        assert!(!Format::Mjpeg.is_inter_coded());
        assert!(!Format::Raw.is_inter_coded());
    }

    #[test]
    fn function_flags_display() {
        assert_eq!((FunctionFlags::SOURCE | FunctionFlags::SINK).to_string(), "source|sink");
        assert_eq!(FunctionFlags(0).to_string(), "none");
        assert_eq!(FunctionFlags(0x18).to_string(), "controller|0x10");
    }
}
