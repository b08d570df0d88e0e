//! The crate's one error type.

use crate::id::{InputId, OutputId};

/// Why the relay refused a call. Every variant names the input or output
/// concerned. None of these is caused by a slow output: the data path never
/// fails for congestion, it drops and counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The input does not exist (never added, or removed).
    #[error("unknown input {0}")]
    UnknownInput(InputId),
    /// The output does not exist (never added, or removed).
    #[error("unknown output {0}")]
    UnknownOutput(OutputId),
    /// `sent` was called but no frame of this output is in flight.
    #[error("output {0} has no frame in flight")]
    NothingInFlight(OutputId),
    /// A whole frame was pushed, or a new one begun, while a partial frame
    /// of this input was still being assembled.
    #[error("input {0} is assembling a partial frame")]
    AssemblyInProgress(InputId),
    /// `append`/`finish` was called with no partial frame begun.
    #[error("input {0} has no partial frame")]
    NoAssembly(InputId),
    /// More bytes were appended than the partial frame declared.
    #[error("input {input}: partial frame declared {declared} bytes, got {got}")]
    AssemblyOverrun {
        /// The input.
        input: InputId,
        /// The length given to `begin_frame`.
        declared: usize,
        /// What the appends would have made it.
        got: usize,
    },
    /// `finish` was called before all declared bytes arrived.
    #[error("input {input}: partial frame declared {declared} bytes, has {got}")]
    AssemblyIncomplete {
        /// The input.
        input: InputId,
        /// The length given to `begin_frame`.
        declared: usize,
        /// Bytes appended so far.
        got: usize,
    },
    /// A frame longer than [`RelayConfig::max_frame_bytes`](crate::RelayConfig).
    #[error("input {input}: frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The input.
        input: InputId,
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A configuration value the relay cannot serve.
    #[error("invalid output configuration: {0}")]
    InvalidConfig(&'static str),
    /// The input already feeds this output.
    #[error("input {input} already feeds output {output}")]
    AlreadyAttached {
        /// The input.
        input: InputId,
        /// The output.
        output: OutputId,
    },
    /// The input does not feed this output.
    #[error("input {input} does not feed output {output}")]
    NotAttached {
        /// The input.
        input: InputId,
        /// The output.
        output: OutputId,
    },
}
