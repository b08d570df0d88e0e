//! The archive sink: a relay output (completeness by default) whose frames
//! go to a [`framewire_archive::Archiver`].
//!
//! The archiver takes frames without blocking while it has room; when it
//! has none (ffmpeg slower than the stream) the frame waits here and the
//! output's queue absorbs the rest within its budget. What the budget
//! cannot hold the relay drops and counts by reason; those counts travel
//! with the next frame into the archive's index as a *budget-drops* gap.
//! The archiver's state shows in the output's peer label (`framewire
//! stats`), refreshed every second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use framewire_archive::{ArchiveConfig, ArchiveFrame, Archiver, PushError};
use framewire_proto::control::DropReason;
use framewire_relay::{DropCounts, OutputId};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::node::{OutputEntry, Shared};
use crate::sink::SinkConfig;

/// How long a stopping node lets the sink hand over what its output holds.
const DRAIN: Duration = Duration::from_secs(3);

pub(crate) async fn run(shared: Arc<Shared>, cfg: SinkConfig, acfg: ArchiveConfig) {
    let notify = Arc::new(Notify::new());
    let mut stop = shared.shutdown.subscribe();
    let base = cfg.kind.label();
    loop {
        let entry = || OutputEntry {
            stream: cfg.stream.clone(),
            channel: 0,
            peer: base.clone(),
            waker: notify.clone(),
            events: None,
        };
        let (id, open) = loop {
            match shared.add_output(&cfg.stream, &cfg.params, entry()) {
                Ok(x) => break x,
                Err(_) => tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stop.changed() => return,
                },
            }
        };
        let (a, o) = (acfg.clone(), open.clone());
        let archiver = match tokio::task::spawn_blocking(move || Archiver::start(a, &o)).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                warn!(stream = %cfg.stream, dir = %acfg.dir.display(), error = %e, "archive sink not started");
                shared.remove_output(id);
                return;
            }
            Err(e) => {
                warn!(stream = %cfg.stream, error = %e, "archive sink failed to start");
                shared.remove_output(id);
                return;
            }
        };
        info!(stream = %cfg.stream, dir = %acfg.dir.display(), format = acfg.format.label(), "archive sink attached");
        let gone = feed(&shared, id, &archiver, &notify, &mut stop, &base).await;
        shared.remove_output(id);
        let stream = cfg.stream.clone();
        if tokio::task::spawn_blocking(move || archiver.finish()).await.is_err() {
            warn!(stream = %stream, "archiver did not finish cleanly");
        }
        if !gone {
            return;
        }
    }
}

/// Feeds the archiver until the node stops (false) or the stream goes
/// away (true).
async fn feed(
    shared: &Shared,
    id: OutputId,
    archiver: &Archiver,
    notify: &Notify,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    base: &str,
) -> bool {
    let mut drops = DropCounts::default();
    let mut labelled: Option<Instant> = None;
    let mut drain_until: Option<Instant> = None;
    loop {
        if drain_until.is_none() && *stop.borrow() {
            drain_until = Some(Instant::now() + DRAIN);
        }
        if drain_until.is_some_and(|t| Instant::now() > t) {
            return false;
        }
        if labelled.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            let label = format!("{base} [{}]", archiver.status().summary());
            shared.set_output_peer(id, label);
            labelled = Some(Instant::now());
        }
        let tx = shared.poll_transmit(id);
        let Some(tx) = tx else {
            if drain_until.is_some() {
                return false;
            }
            if !shared.has_output(id) {
                return true;
            }
            tokio::select! {
                () = notify.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        let lost_detail = if tx.lost > 0 {
            drop_detail(shared, id, &mut drops)
        } else {
            String::new()
        };
        let mut frame = ArchiveFrame {
            data: tx.frame.data,
            sequence: tx.frame.sequence,
            timestamp_ns: tx.frame.timestamp_ns,
            lost: tx.lost,
            lost_detail,
        };
        loop {
            match archiver.try_push(frame) {
                Ok(()) => break,
                Err(PushError::Full(f)) => {
                    frame = f;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(PushError::Stopped(_)) => {
                    warn!("archiver stopped; frame not archived");
                    break;
                }
            }
        }
        shared.sent(id);
    }
}

/// The output's drops since the last call, by reason: `frame-budget=3`.
fn drop_detail(shared: &Shared, id: OutputId, prev: &mut DropCounts) -> String {
    let Some(snap) = shared.with_state(|st| st.output_snapshot(id, Instant::now())) else {
        return String::new();
    };
    let parts: Vec<String> = DropReason::ALL
        .iter()
        .filter_map(|r| {
            let n = snap.drops.get(*r).saturating_sub(prev.get(*r));
            (n > 0).then(|| format!("{}={n}", r.label()))
        })
        .collect();
    *prev = snap.drops;
    parts.join(", ")
}
