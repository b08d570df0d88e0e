//! What a source that takes video in from outside (ffmpeg, RTSP) tells the
//! node, the same for every such kind: the format when it is learned,
//! *resumed* before the first frame of a run, *interrupted* with the
//! reason when a run ends, sequence numbers across runs, and the
//! discontinuity flag on the first frame after a gap.

use framewire_proto::{EventInfo, EventReason, FrameFlags, StreamEvent};
use framewire_relay::Frame;
use tracing::info;

use crate::api::StreamOut;
use crate::clock::now_ns;
use crate::sources::ingest::Ingested;

/// A source's stream, across the runs of its input.
#[derive(Debug)]
pub(crate) struct Handoff {
    out: StreamOut,
    /// How the log names the kind (`ffmpeg source`).
    label: &'static str,
    seq: u64,
    /// Frames flow (the stream is live).
    live: bool,
    /// The next frame follows a gap.
    gap: bool,
}

impl Handoff {
    pub(crate) fn new(out: StreamOut, label: &'static str) -> Handoff {
        Handoff {
            out,
            label,
            seq: 0,
            live: false,
            gap: false,
        }
    }

    /// Frames were lost: the next one carries the discontinuity flag.
    #[cfg_attr(not(feature = "rtsp"), allow(dead_code))]
    pub(crate) fn gap(&mut self) {
        self.gap = true;
    }

    /// A run ended: *interrupted* (if frames flowed) with the reason, and
    /// the next frame follows a gap.
    pub(crate) fn interrupted(&mut self, reason: EventReason, message: String) {
        if std::mem::take(&mut self.live) {
            self.out.event(StreamEvent::Interrupted(EventInfo {
                timestamp_ns: now_ns(),
                reason,
                message,
            }));
        }
        self.gap = true;
    }

    /// Hands a format and frames to the node, each frame stamped by
    /// `timestamp_ns`; returns the frames.
    pub(crate) fn hand_on(&mut self, items: Vec<Ingested>, mut timestamp_ns: impl FnMut() -> u64) -> u64 {
        let mut n = 0;
        for item in items {
            match item {
                Ingested::Open(open) => {
                    info!(stream = %self.out.name(), width = open.width, height = open.height, format = %open.format, "{}: format", self.label);
                    self.out.event(StreamEvent::FormatChanged(open));
                }
                Ingested::Frame { data, keyframe } => {
                    if !self.live {
                        self.live = true;
                        self.out.event(StreamEvent::Resumed(EventInfo {
                            timestamp_ns: now_ns(),
                            reason: EventReason::Unspecified,
                            message: String::new(),
                        }));
                    }
                    let mut flags = if keyframe {
                        FrameFlags::KEYFRAME
                    } else {
                        FrameFlags::default()
                    };
                    if std::mem::take(&mut self.gap) {
                        flags = flags.with(FrameFlags::DISCONTINUITY);
                    }
                    self.seq += 1;
                    self.out.push(Frame {
                        data,
                        sequence: self.seq,
                        timestamp_ns: timestamp_ns(),
                        flags,
                    });
                    n += 1;
                }
            }
        }
        n
    }
}
