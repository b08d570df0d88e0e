//! A lane: the frames of one input queued on one output.

use std::collections::VecDeque;
use std::time::Instant;

use crate::frame::Frame;
use crate::id::InputId;
use crate::stats::DropCounts;

/// A queued frame.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) frame: Frame,
    /// When the frame entered the relay.
    pub(crate) arrival: Instant,
    /// Output-wide arrival order.
    pub(crate) order: u64,
    /// A keyframe, or any frame of an input that is not inter-coded.
    pub(crate) key: bool,
    /// Frames of this lane dropped between the previous queued or sent
    /// frame and this one.
    pub(crate) lost: u64,
}

/// The frames of one input waiting on one output, as a scheduler sees them.
///
/// Schedulers read lanes through the accessors; only the relay changes them.
#[derive(Debug)]
pub struct Lane {
    pub(crate) input: InputId,
    pub(crate) priority: u8,
    pub(crate) weight: u32,
    pub(crate) inter_coded: bool,
    pub(crate) queue: VecDeque<Entry>,
    pub(crate) queued_bytes: u64,
    pub(crate) waiting_keyframe: bool,
    /// A low-latency lane sending a cached group of pictures and the frames
    /// that followed it: frames queue behind each other instead of
    /// replacing the unsent one while, at each arrival, the lane holds
    /// fewer frames than this (what it held at the arrival before), until
    /// it runs empty or drops one.
    pub(crate) catch_up: Option<usize>,
    /// Drops since the last frame queued on this lane, for the next one.
    pub(crate) lost: u64,
    /// The input was removed; the lane goes once it is empty.
    pub(crate) detached: bool,
    pub(crate) frames_in: u64,
    pub(crate) frames_sent: u64,
    pub(crate) drops: DropCounts,
}

impl Lane {
    pub(crate) fn new(input: InputId, priority: u8, weight: u32, inter_coded: bool) -> Self {
        Lane {
            input,
            priority,
            weight: weight.max(1),
            inter_coded,
            queue: VecDeque::new(),
            queued_bytes: 0,
            // A decoder cannot start at a frame that depends on others: a
            // new output of an inter-coded input waits for a keyframe.
            waiting_keyframe: inter_coded,
            catch_up: None,
            lost: 0,
            detached: false,
            frames_in: 0,
            frames_sent: 0,
            drops: DropCounts::default(),
        }
    }

    /// The input this lane carries.
    pub fn input(&self) -> InputId {
        self.input
    }

    /// Path priority, 0 (lowest) to 255 (highest).
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Scheduler weight, at least 1.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes queued.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }

    /// Length of the frame that would go next from this lane.
    pub fn head_len(&self) -> Option<usize> {
        self.queue.front().map(|e| e.frame.data.len())
    }

    /// Output-wide arrival order of the head frame (smaller arrived earlier).
    pub fn head_order(&self) -> Option<u64> {
        self.queue.front().map(|e| e.order)
    }
}
