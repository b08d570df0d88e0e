//! What the state says of itself: counters (GET_STATS), the stream list,
//! the latest frame (SNAPSHOT), DESCRIBE and the status report a
//! controller watches.

use std::time::{Duration, Instant};

use framewire_proto::PROTOCOL_VERSION;
use framewire_proto::control::{
    Description, DropCount, DropReason, EdgeStatus, InputStats, Snapshot, Stats, StatusReport, StreamInfo, StreamState,
};
use framewire_relay::{InputLabels, OutputId, OutputLabels};

use super::NodeState;

/// A pulled edge as `/metrics` shows it.
#[derive(Debug, Clone)]
pub(crate) struct EdgeRow {
    pub(crate) local: String,
    pub(crate) upstream: String,
    pub(crate) state: StreamState,
    /// Age of the last frame on arrival, seconds.
    pub(crate) latency_seconds: Option<f64>,
    /// Frames the upstream sent again after a resubscription (its cached
    /// group of pictures), not passed on a second time.
    pub(crate) replayed: u64,
}

impl NodeState {
    /// Counters of every input and output (or those of one stream).
    /// `skipped` gives the frames a shared-memory producer skipped for an
    /// output (they count as frame-budget drops).
    pub(crate) fn stats(&self, only: &str, now: Instant, skipped: &dyn Fn(&str, OutputId) -> u64) -> Stats {
        let mut stats = Stats::default();
        for (name, s) in &self.streams {
            if !only.is_empty() && name != only {
                continue;
            }
            if let Some(snap) = self.relay.input_snapshot(s.input) {
                stats.inputs.push(snap.to_proto(InputLabels {
                    stream: name,
                    state: s.state,
                    upstream: &s.upstream,
                    reconnects: s.reconnects,
                }));
            }
        }
        // Edges whose upstream never answered have no stream yet: show them.
        for (local, e) in &self.edges {
            if !self.streams.contains_key(local) && (only.is_empty() || local == only) {
                stats.inputs.push(InputStats {
                    stream: local.clone(),
                    state: e.state,
                    upstream: e.upstream.clone(),
                    frames_in: 0,
                    bytes_in: 0,
                    reconnects: e.failed_attempts,
                });
            }
        }
        let mut outs: Vec<(&OutputId, &super::OutputInfo)> = self.outputs.iter().collect();
        outs.sort_by(|a, b| (&a.1.stream, &a.1.peer, a.1.channel).cmp(&(&b.1.stream, &b.1.peer, b.1.channel)));
        for (id, o) in outs {
            if !only.is_empty() && o.stream != only {
                continue;
            }
            if let Some(snap) = self.relay.output_snapshot(*id, now) {
                let mut row = snap.to_proto(OutputLabels {
                    channel: o.channel,
                    stream: &o.stream,
                    peer: &o.peer,
                });
                let n = skipped(&o.stream, *id);
                if n > 0 {
                    row.drops.push(DropCount {
                        reason: DropReason::FrameBudget,
                        count: n,
                    });
                }
                stats.outputs.push(row);
            }
        }
        stats
    }

    /// LIST_STREAMS entries.
    pub(crate) fn stream_infos(&self) -> Vec<StreamInfo> {
        self.streams
            .iter()
            .map(|(name, s)| StreamInfo {
                open: s.open.clone(),
                state: s.state,
                subscribers: u16::try_from(self.subscribers(name)).unwrap_or(u16::MAX),
                frames: self.relay.input_snapshot(s.input).map_or(0, |i| i.frames_in),
            })
            .collect()
    }

    /// The latest frame of a stream (its bytes shared, not copied).
    pub(crate) fn snapshot(&self, stream: &str) -> Option<Snapshot> {
        let s = self.streams.get(stream)?;
        // A frame of an inter-coded stream can be shown only from its
        // keyframe on: its latest keyframe, which carries its parameter sets.
        let f = if s.open.format.is_inter_coded() {
            self.relay.last_keyframe(s.input)?
        } else {
            s.latest.as_ref()?
        };
        Some(Snapshot {
            open: s.open.clone(),
            sequence: f.sequence,
            timestamp_ns: f.timestamp_ns,
            flags: f.flags,
            data: f.data.clone(),
        })
    }

    /// DESCRIBE, for a node up for `uptime`.
    pub(crate) fn describe(&self, uptime: Duration) -> Description {
        let id = &self.identity;
        Description {
            name: id.name.clone(),
            software: format!("framewire {}", env!("CARGO_PKG_VERSION")),
            protocol_version: PROTOCOL_VERSION,
            site_id: id.site_id,
            function_flags: id.function_flags,
            features: id.features,
            pid: id.pid,
            uptime_ms: u64::try_from(uptime.as_millis()).unwrap_or(u64::MAX),
            hostname: id.hostname.clone(),
            streams: u16::try_from(self.streams.len()).unwrap_or(u16::MAX),
            tcp_port: id.tcp_port,
        }
    }

    /// The edges of a status report, by local name.
    pub(crate) fn edge_statuses(&self) -> Vec<EdgeStatus> {
        self.edges
            .iter()
            .map(|(local, e)| EdgeStatus {
                local_name: local.clone(),
                upstream: e.config.upstream.clone(),
                stream: e.config.stream.clone(),
                origin: e.origin,
                state: e.state,
                failed_attempts: e.failed_attempts,
                params: e.config.params,
            })
            .collect()
    }

    /// A status report (WATCH_STATUS); `stats` as [`NodeState::stats`] gave them.
    pub(crate) fn status_report(&self, sequence: u32, uptime: Duration, stats: Stats) -> StatusReport {
        StatusReport {
            sequence,
            description: self.describe(uptime),
            streams: self.stream_infos(),
            stats,
            edges: self.edge_statuses(),
            accept_formats: self.identity.accept_formats.clone(),
        }
    }

    /// The pulled edges with their latency, for `/metrics`.
    pub(crate) fn edge_rows(&self) -> Vec<EdgeRow> {
        self.edges
            .iter()
            .map(|(local, e)| EdgeRow {
                local: local.clone(),
                upstream: e.upstream.clone(),
                state: e.state,
                latency_seconds: self
                    .streams
                    .get(local)
                    .and_then(|s| s.arrival_age_ns)
                    .map(|a| a as f64 / 1e9),
                replayed: self.streams.get(local).map_or(0, |s| s.replayed),
            })
            .collect()
    }
}
