//! WATCH_STATUS: a report at once, then every interval and soon after
//! every change, for as long as the connection lives. A watcher has at
//! most one report waiting to be written: none is built while one waits,
//! so a watcher that reads nothing costs one report, not one per interval.

use std::sync::Arc;
use std::time::Duration;

use framewire_proto::{Message, Request};
use tracing::{Instrument, warn};

use crate::runtime::core::NodeCore;
use crate::transport::writer::WriterQueue;

/// Push period when WATCH_STATUS asks for 0.
const DEFAULT_INTERVAL_MS: u32 = 1000;
/// Shortest push period honoured.
const MIN_INTERVAL_MS: u32 = 50;
/// How long a push waits after a change for related changes.
const COALESCE: Duration = Duration::from_millis(5);

/// Starts the status push of one connection.
pub(crate) fn start(core: Arc<NodeCore>, queue: Arc<WriterQueue>, interval_ms: u32) -> tokio::task::JoinHandle<()> {
    let interval = Duration::from_millis(u64::from(if interval_ms == 0 {
        DEFAULT_INTERVAL_MS
    } else {
        interval_ms.max(MIN_INTERVAL_MS)
    }));
    let mut changes = core.changes();
    tokio::spawn(
        async move {
            let mut sequence: u32 = 0;
            loop {
                queue.status_room().await;
                changes.mark_unchanged();
                let report = core.status_report(sequence);
                sequence = sequence.wrapping_add(1);
                match Request::StatusReport(Box::new(report))
                    .to_message(0, 0)
                    .map_err(crate::error::NetError::from)
                    .and_then(|m| Ok(Message::ControlRequest(m).encode()?))
                {
                    Ok(e) => queue.set_status(e),
                    // Labels are bounded, so this is a bug, not a peer: say so and go on.
                    Err(e) => warn!(error = %e, "status report does not encode; skipped"),
                }
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    r = changes.changed() => {
                        if r.is_err() {
                            return;
                        }
                        // Let a burst of changes (an edge and its stream) settle into one report.
                        tokio::time::sleep(COALESCE).await;
                    }
                }
            }
        }
        .instrument(tracing::Span::current()),
    )
}
