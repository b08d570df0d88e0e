//! The wall clock, as the protocol writes it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time in nanoseconds since the Unix epoch (0 before it,
/// saturating far after it).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
