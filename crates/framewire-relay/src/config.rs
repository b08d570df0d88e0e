//! Configuration of the relay, its inputs and its outputs.
//!
//! Every default is a named constant. A budget of zero means "the relay's
//! default", as in SUBSCRIBE.

use std::time::Duration;

use framewire_proto::{DeliveryMode, DropPolicy, Format, SubscribeParams, TransportMode};

use crate::error::RelayError;
use crate::id::InputId;

/// Frame budget of an output that asked for the default.
pub const DEFAULT_MAX_FRAMES: u32 = 64;
/// Byte budget of an output that asked for the default (64 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Largest frame an input accepts, matching the wire decoder's default limit.
pub const DEFAULT_MAX_FRAME_BYTES: usize = framewire_proto::DEFAULT_MAX_PAYLOAD as usize;
/// Path priority when none is given (the middle of 0..=255).
pub const DEFAULT_PRIORITY: u8 = 128;
/// Bytes of the current group of pictures an inter-coded input keeps for
/// new outputs (8 MiB: a 2 s group at 30 Mbit/s).
pub const DEFAULT_GOP_CACHE_BYTES: usize = 8 * 1024 * 1024;
/// Deficit round-robin quantum when none is given: one typical MTU's worth.
pub const DEFAULT_DRR_QUANTUM: u32 = 1500;

/// Relay-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// Frame budget for outputs that leave it at zero.
    pub default_max_frames: u32,
    /// Byte budget for outputs that leave it at zero.
    pub default_max_bytes: u64,
    /// Longest frame `push` or `begin_frame` accepts.
    pub max_frame_bytes: usize,
    /// Bytes of its current group of pictures an inter-coded input keeps,
    /// so that a new output starts at once (0: none kept). A group that
    /// grows past it is dropped until the next keyframe.
    pub gop_cache_bytes: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            default_max_frames: DEFAULT_MAX_FRAMES,
            default_max_bytes: DEFAULT_MAX_BYTES,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            gop_cache_bytes: DEFAULT_GOP_CACHE_BYTES,
        }
    }
}

impl RelayConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the default frame budget (zero keeps [`DEFAULT_MAX_FRAMES`]).
    pub fn with_default_max_frames(mut self, n: u32) -> Self {
        self.default_max_frames = if n == 0 { DEFAULT_MAX_FRAMES } else { n };
        self
    }

    /// Sets the default byte budget (zero keeps [`DEFAULT_MAX_BYTES`]).
    pub fn with_default_max_bytes(mut self, n: u64) -> Self {
        self.default_max_bytes = if n == 0 { DEFAULT_MAX_BYTES } else { n };
        self
    }

    /// Sets the longest accepted frame.
    pub fn with_max_frame_bytes(mut self, n: usize) -> Self {
        self.max_frame_bytes = n;
        self
    }

    /// Sets the group-of-pictures cache of inter-coded inputs (0: none).
    pub fn with_gop_cache_bytes(mut self, n: usize) -> Self {
        self.gop_cache_bytes = n;
        self
    }
}

/// How an input's frames depend on each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InputConfig {
    /// Frames may depend on earlier ones (H.264, H.265, AV1): after an
    /// output drops one, it skips to the next keyframe. When `false` every
    /// frame counts as a keyframe, whatever its flags say.
    pub inter_coded: bool,
}

impl InputConfig {
    /// For a stream of the given format.
    pub fn for_format(format: Format) -> Self {
        InputConfig {
            inter_coded: format.is_inter_coded(),
        }
    }
}

/// An output's hard limits. Both bound everything the output holds: the
/// queued frames *and* the one in flight. Zero means the relay default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    /// Most frames held (completeness mode; low-latency is structurally
    /// bounded to one pending frame per input plus the one in flight, but
    /// for the group of pictures a new output catches up on).
    pub max_frames: u32,
    /// Most payload bytes held.
    pub max_bytes: u64,
}

impl Budget {
    /// A budget of `max_frames` frames and `max_bytes` bytes.
    pub const fn new(max_frames: u32, max_bytes: u64) -> Self {
        Budget { max_frames, max_bytes }
    }
}

/// Source suppression settings; see [`SchedulerKind::SourceSuppression`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuppressionConfig {
    /// The span the drop rate is measured over (kept as 8 equal buckets).
    pub window: Duration,
    /// An input whose drop rate exceeds this fraction is suppressed.
    pub suppress_above: f64,
    /// A suppressed input is resumed once its rate falls below this fraction.
    pub resume_below: f64,
    /// No decision is made on fewer frames offered in the window.
    pub min_frames: u32,
}

impl Default for SuppressionConfig {
    fn default() -> Self {
        SuppressionConfig {
            window: Duration::from_secs(2),
            suppress_above: 0.5,
            resume_below: 0.1,
            min_frames: 10,
        }
    }
}

/// Which scheduler picks between the inputs of one output.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum SchedulerKind {
    /// Highest priority first; equal priorities in arrival order.
    #[default]
    StrictPriority,
    /// One frame from each non-empty input in turn.
    RoundRobin,
    /// `weight` frames from each input in turn.
    WeightedRoundRobin,
    /// Byte-fair: each input earns `quantum × weight` bytes per round.
    DeficitRoundRobin {
        /// Bytes earned per round per unit of weight; must be non-zero.
        quantum: u32,
    },
    /// Round-robin, except an input whose congestion drop rate crosses a
    /// threshold is not forwarded until it recovers.
    SourceSuppression(SuppressionConfig),
}

impl SchedulerKind {
    /// A short lower-case name for stats and logs.
    pub fn label(&self) -> &'static str {
        match self {
            SchedulerKind::StrictPriority => "strict-priority",
            SchedulerKind::RoundRobin => "round-robin",
            SchedulerKind::WeightedRoundRobin => "weighted-round-robin",
            SchedulerKind::DeficitRoundRobin { .. } => "deficit-round-robin",
            SchedulerKind::SourceSuppression(_) => "source-suppression",
        }
    }

    pub(crate) fn validate(&self) -> Result<(), RelayError> {
        match *self {
            SchedulerKind::DeficitRoundRobin { quantum: 0 } => Err(RelayError::InvalidConfig("DRR quantum is zero")),
            SchedulerKind::SourceSuppression(c) => {
                if c.window.is_zero() {
                    Err(RelayError::InvalidConfig("suppression window is zero"))
                } else if !(0.0..=1.0).contains(&c.suppress_above)
                    || !(0.0..=1.0).contains(&c.resume_below)
                    || c.resume_below >= c.suppress_above
                {
                    Err(RelayError::InvalidConfig(
                        "suppression thresholds must satisfy 0 <= resume_below < suppress_above <= 1",
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}

/// One subscription's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputConfig {
    /// Low-latency (one slot per input, newest wins) or completeness (a queue).
    pub mode: DeliveryMode,
    /// Encapsulated, or opaque (payload bytes only; one input at most).
    pub transport: TransportMode,
    /// Hard limits; zero fields take the relay defaults.
    pub budget: Budget,
    /// Which frame gives way when a budget is reached.
    pub drop_policy: DropPolicy,
    /// How the output chooses between its inputs.
    pub scheduler: SchedulerKind,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            mode: DeliveryMode::LowLatency,
            transport: TransportMode::Encapsulated,
            budget: Budget::default(),
            drop_policy: DropPolicy::DropOldest,
            scheduler: SchedulerKind::default(),
        }
    }
}

impl OutputConfig {
    /// A low-latency output with default budgets.
    pub fn low_latency() -> Self {
        Self::default()
    }

    /// A completeness output with the given limits (zero = default).
    pub fn completeness(max_frames: u32, max_bytes: u64) -> Self {
        OutputConfig {
            mode: DeliveryMode::Completeness,
            budget: Budget::new(max_frames, max_bytes),
            ..Self::default()
        }
    }

    /// What a SUBSCRIBE asked for (its priority goes on the [`LaneConfig`]).
    pub fn from_subscribe(p: &SubscribeParams) -> Self {
        OutputConfig {
            mode: p.mode,
            transport: p.transport,
            budget: Budget::new(p.max_frames, p.max_bytes),
            drop_policy: p.drop_policy,
            scheduler: SchedulerKind::default(),
        }
    }

    /// Sets the drop policy.
    pub fn with_drop_policy(mut self, p: DropPolicy) -> Self {
        self.drop_policy = p;
        self
    }

    /// Sets the scheduler.
    pub fn with_scheduler(mut self, s: SchedulerKind) -> Self {
        self.scheduler = s;
        self
    }

    /// Sets the transport mode.
    pub fn with_transport(mut self, t: TransportMode) -> Self {
        self.transport = t;
        self
    }

    /// Sets the budget.
    pub fn with_budget(mut self, b: Budget) -> Self {
        self.budget = b;
        self
    }
}

/// One input feeding an output, with its scheduling parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneConfig {
    /// The input.
    pub input: InputId,
    /// Path priority, 0 (lowest) to 255 (highest).
    pub priority: u8,
    /// Share for weighted schedulers; zero counts as one.
    pub weight: u32,
}

impl LaneConfig {
    /// The input at default priority and weight 1.
    pub fn new(input: InputId) -> Self {
        LaneConfig {
            input,
            priority: DEFAULT_PRIORITY,
            weight: 1,
        }
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the weight.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }
}

impl From<InputId> for LaneConfig {
    fn from(input: InputId) -> Self {
        LaneConfig::new(input)
    }
}
