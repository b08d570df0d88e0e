//! What a measuring subscriber (`framewire bench sub`) prints: one JSON
//! report of what it saw inside its window.

use serde::{Deserialize, Serialize};

/// What a subscriber saw inside its window.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// Frames counted.
    pub frames: u64,
    /// Payload bytes counted.
    pub bytes: u64,
    /// Sequence gaps (frames dropped upstream of this subscriber).
    pub gaps: u64,
    /// Frames missing in those gaps.
    pub lost: u64,
    /// Capture-to-arrival latency, µs: p50, p99, max.
    pub lat_us: [f64; 3],
    /// Frames and bytes per bucket, from the window start.
    pub buckets: Vec<(u64, u64)>,
    /// Bucket width, ms.
    pub bucket_ms: u64,
    /// (sequence, capture ns, arrival ns) of each counted frame, when asked for.
    pub records: Vec<(u64, u64, u64)>,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// The `q` quantile of sorted values (nearest rank), 0 when empty.
pub fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
