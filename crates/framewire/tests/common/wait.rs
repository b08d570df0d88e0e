//! Waiting for a condition to hold, not for a fixed time: a test says what
//! it waits for, and goes on as soon as it is there.

use std::time::{Duration, Instant};

/// How often a condition is looked at again.
pub const POLL: Duration = Duration::from_millis(20);

/// Looks at `f` until it gives `Some` (that value), for at most `timeout`
/// (then `None`).
pub fn eventually<T>(timeout: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    eventually_every(timeout, POLL, f)
}

/// [`eventually`], looking every `every` (for a look that costs: a
/// process run, a screenshot).
pub fn eventually_every<T>(timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// [`eventually`] for a look that is itself async (a request to a node),
/// without holding up the runtime in between.
pub async fn eventually_async<T>(timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}
