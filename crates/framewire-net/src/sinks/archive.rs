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

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use framewire_archive::{ArchiveConfig, ArchiveFrame, Archiver, PushError};
use framewire_proto::control::DropReason;
use framewire_relay::DropCounts;
use serde::Deserialize;
use tracing::{info, warn};

use crate::api::{SinkHost, SinkInput, SinkSpec};
use crate::config::{ConfigError, SinkKind};

/// How long a stopping node lets the sink hand over what its output holds.
const DRAIN: Duration = Duration::from_secs(3);

/// Archives a stream (docs/archive.md).
#[derive(Debug, Clone)]
pub struct ArchiveSink(pub ArchiveConfig);

impl SinkKind {
    /// A sink that archives the stream.
    pub fn archive(config: ArchiveConfig) -> SinkKind {
        SinkKind::new(ArchiveSink(config))
    }
}

/// The keys of an `archive` sink (docs/archive.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    /// The archive directory (required).
    dir: Option<PathBuf>,
    /// `h264`, `h265`, `av1`, `ffv1`, `prores` or `passthrough` (required).
    format: Option<String>,
    /// Segment length in seconds, default 600.
    segment: Option<u64>,
    /// Largest archive size in bytes, default 0 (no limit).
    max_total_bytes: Option<u64>,
    /// Free space to keep on the disk in bytes, default 0 (none).
    min_free_bytes: Option<u64>,
    /// `delete-oldest` (default) or `stop`.
    on_full: Option<String>,
    /// Seconds ffmpeg may refuse input before it is restarted, default 10.
    stall_timeout: Option<u64>,
    /// The ffmpeg program, default `ffmpeg`.
    ffmpeg: Option<PathBuf>,
}

pub(super) fn from_table(stream: &str, table: toml::Table) -> Result<SinkKind, ConfigError> {
    use framewire_archive::{ArchiveFormat, OnFull};
    let e = |m: String| ConfigError::new(m);
    let k: Keys = table
        .try_into()
        .map_err(|x: toml::de::Error| e(format!("sink of `{stream}`: {}", x.message())))?;
    let dir = k
        .dir
        .ok_or_else(|| e(format!("archive sink of `{stream}` needs a dir")))?;
    let f = k
        .format
        .ok_or_else(|| e(format!("archive sink of `{stream}` needs a format")))?;
    let format = ArchiveFormat::from_label(&f).ok_or_else(|| {
        e(format!(
            "unknown archive format `{f}` (h264, h265, av1, ffv1, prores, passthrough)"
        ))
    })?;
    let mut c = ArchiveConfig::new(dir, format);
    if let Some(s) = k.segment {
        if s == 0 {
            return Err(e(format!(
                "archive sink of `{stream}`: segment must be at least 1 second"
            )));
        }
        c.segment = Duration::from_secs(s);
    }
    c.max_total_bytes = k.max_total_bytes.unwrap_or(0);
    c.min_free_bytes = k.min_free_bytes.unwrap_or(0);
    if let Some(o) = k.on_full {
        c.on_full = OnFull::from_label(&o).ok_or_else(|| e(format!("unknown on_full `{o}` (delete-oldest, stop)")))?;
    }
    if let Some(s) = k.stall_timeout {
        c.stall_timeout = Duration::from_secs(s.max(1));
    }
    if let Some(p) = k.ffmpeg {
        c.ffmpeg = p;
    }
    Ok(SinkKind::archive(c))
}

impl SinkSpec for ArchiveSink {
    fn kind(&self) -> &'static str {
        "archive"
    }

    fn label(&self) -> String {
        format!("sink:archive:{}", self.0.dir.display())
    }

    fn run(&self, host: SinkHost) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(run(host, self.0.clone()))
    }
}

async fn run(host: SinkHost, acfg: ArchiveConfig) {
    let mut stop = host.stopping();
    let base = host.label.clone();
    // ARCHIVE_SET's switch for this sink (none in a node built without it).
    let paused = host
        .extension::<super::archive_list::Archives>()
        .and_then(|a| a.paused(host.stream(), &acfg.dir))
        .unwrap_or_default();
    while let Some(input) = host.attach().await {
        loop {
            if paused.load(Ordering::SeqCst) {
                match pause(&host, &input, &acfg, &paused, &mut stop, &base).await {
                    // Resumed: recording starts again.
                    Fed::Paused => {}
                    Fed::Stopped => return,
                    Fed::Gone => break,
                }
            }
            let (a, o) = (acfg.clone(), input.open().clone());
            let archiver = match tokio::task::spawn_blocking(move || Archiver::start(a, &o)).await {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => {
                    warn!(stream = %host.stream(), dir = %acfg.dir.display(), error = %e, "archive sink not started");
                    return;
                }
                Err(e) => {
                    warn!(stream = %host.stream(), error = %e, "archive sink failed to start");
                    return;
                }
            };
            info!(stream = %host.stream(), dir = %acfg.dir.display(), format = acfg.format.label(), "archive sink attached");
            let fed = feed(&input, &archiver, &mut stop, &base, &paused).await;
            let stream = host.stream().to_owned();
            if tokio::task::spawn_blocking(move || archiver.finish()).await.is_err() {
                warn!(stream = %stream, "archiver did not finish cleanly");
            }
            match fed {
                Fed::Paused => continue,
                Fed::Stopped => return,
                Fed::Gone => break,
            }
        }
    }
}

/// How feeding (or a pause) ended.
enum Fed {
    /// The node stops.
    Stopped,
    /// The stream went away.
    Gone,
    /// Recording was paused (ARCHIVE_SET).
    Paused,
}

/// A pause: the index says so, the stream's frames are let go (the output
/// stays, so nothing counts as lost), and when it ends the pause is a
/// `paused` gap. Returns `Paused` when it ends and recording is to go on.
async fn pause(
    host: &SinkHost,
    input: &SinkInput,
    acfg: &ArchiveConfig,
    paused: &AtomicBool,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    base: &str,
) -> Fed {
    let since = crate::clock::now_ns();
    let (dir, stream) = (acfg.dir.clone(), host.stream().to_owned());
    index(&dir, move |i| i.pause_began(&stream)).await;
    info!(stream = %host.stream(), "archive sink paused");
    input.announce_label(format!("{base} [PAUSED]"));
    let outcome = loop {
        if *stop.borrow() {
            break Fed::Stopped;
        }
        if !paused.load(Ordering::SeqCst) {
            break Fed::Paused;
        }
        while input.poll().is_some() {
            input.sent();
        }
        if !input.attached() {
            break Fed::Gone;
        }
        tokio::select! {
            () = input.ready(Duration::from_millis(100)) => {}
            _ = stop.changed() => {}
        }
    };
    let (now, stream) = (crate::clock::now_ns(), host.stream().to_owned());
    index(&acfg.dir, move |i| i.pause_ended(&stream, since, now)).await;
    info!(stream = %host.stream(), "archive sink resumed");
    outcome
}

/// One change to the archive's index, on a blocking thread; a failure is
/// logged (the recording goes on without it).
async fn index(
    dir: &std::path::Path,
    f: impl FnOnce(&framewire_archive::Index) -> Result<(), framewire_archive::ArchiveError> + Send + 'static,
) {
    let dir = dir.to_owned();
    let r = tokio::task::spawn_blocking(move || framewire_archive::Index::open(&dir).and_then(|i| f(&i))).await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "archive index not updated for a pause"),
        Err(e) => warn!(error = %e, "archive index not updated for a pause"),
    }
}

/// Feeds the archiver until the node stops, the stream goes away or
/// recording is paused.
async fn feed(
    input: &SinkInput,
    archiver: &Archiver,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    base: &str,
    paused: &AtomicBool,
) -> Fed {
    let mut drops = DropCounts::default();
    let mut labelled: Option<Instant> = None;
    let mut shown: Option<u64> = None;
    let mut drain_until: Option<Instant> = None;
    loop {
        if drain_until.is_none() && *stop.borrow() {
            drain_until = Some(Instant::now() + DRAIN);
        }
        if drain_until.is_some_and(|t| Instant::now() > t) {
            return Fed::Stopped;
        }
        if drain_until.is_none() && paused.load(Ordering::SeqCst) {
            return Fed::Paused;
        }
        // The label's figures once a second; a change of state at once,
        // told to status watchers (a full disk is an alert in moments).
        let changes = archiver.state_changes();
        let moved = shown.is_some_and(|s| s != changes);
        if moved || labelled.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            let label = format!("{base} [{}]", archiver.status().summary());
            if moved {
                input.announce_label(label);
            } else {
                input.set_label(label);
            }
            labelled = Some(Instant::now());
            shown = Some(changes);
        }
        let Some(tx) = input.poll() else {
            if drain_until.is_some() {
                return Fed::Stopped;
            }
            if !input.attached() {
                return Fed::Gone;
            }
            tokio::select! {
                () = input.ready(Duration::from_millis(200)) => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        let lost_detail = if tx.lost > 0 {
            drop_detail(input, &mut drops)
        } else {
            String::new()
        };
        let mut frame = ArchiveFrame {
            data: tx.frame.data,
            sequence: tx.frame.sequence,
            timestamp_ns: tx.frame.timestamp_ns,
            lost: tx.lost,
            lost_detail,
            keyframe: tx.frame.flags.is_keyframe(),
        };
        loop {
            match archiver.try_push(frame) {
                Ok(()) => break,
                Err(PushError::Full(f)) => {
                    frame = f;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(_) => {
                    warn!("archiver stopped; frame not archived");
                    break;
                }
            }
        }
        input.sent();
    }
}

/// The output's drops since the last call, by reason: `frame-budget=3`.
fn drop_detail(input: &SinkInput, prev: &mut DropCounts) -> String {
    let Some(drops) = input.drops() else {
        return String::new();
    };
    let parts: Vec<String> = DropReason::ALL
        .iter()
        .filter_map(|r| {
            let n = drops.get(*r).saturating_sub(prev.get(*r));
            (n > 0).then(|| format!("{}={n}", r.label()))
        })
        .collect();
    *prev = drops;
    parts.join(", ")
}
