//! The node's state as plain data: the relay engine and the registry of
//! the streams it serves, the outputs that consume them, and the pulled
//! edges that feed them. No tokio, no sockets, no clock reads: a method
//! that needs the time takes `now` (and the wall clock, where a frame's
//! capture time is compared with it, as `wall_ns`).
//!
//! The runtime keeps one `NodeState` behind a mutex and does the I/O
//! around it: it wakes the writers of the outputs [`NodeState::push`]
//! names, delivers the events [`NodeState::stream_event`] addresses, and
//! tells status watchers when something changed. Everything a peer can
//! ask for is bounded here by the node's [`Limits`]: names, the number of
//! outputs and edges, the budgets of completeness outputs.

pub(crate) mod liveness;
mod report;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use framewire_proto::control::{EdgeOrigin, StreamState};
use framewire_proto::names::{self, NameError, NameKind};
use framewire_proto::{
    DeliveryMode, Features, Format, FrameFlags, FunctionFlags, Status, StreamEvent, StreamOpen, SubscribeParams,
};
use framewire_relay::{
    Frame, InputConfig, InputId, LaneConfig, OutputConfig, OutputId, Relay, RelayConfig, RelayError, Transmit,
};

use crate::config::{EdgeConfig, Limits};

/// One stream served by the node.
#[derive(Debug)]
pub(crate) struct StreamEntry {
    pub(crate) input: InputId,
    pub(crate) open: StreamOpen,
    pub(crate) state: StreamState,
    /// `host:port/stream` for a pulled edge; empty for a local source.
    pub(crate) upstream: String,
    pub(crate) reconnects: u32,
    pub(crate) latest: Option<Frame>,
    /// Age of the last frame on arrival (pulled edges only), nanoseconds.
    pub(crate) arrival_age_ns: Option<u64>,
    /// Frames a pulled edge's upstream sent again and that were not passed
    /// on (a new session's group of pictures, already passed on once).
    pub(crate) replayed: u64,
    /// A frame not passed on was the first after a gap: the next one
    /// passed on, if it does not follow the last, carries the mark.
    replayed_gap: bool,
}

/// Who consumes an output, for stats and events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutputInfo {
    /// The stream it takes.
    pub(crate) stream: String,
    /// Its channel on the subscriber's connection (0 for local consumers).
    pub(crate) channel: u16,
    /// The subscriber's address and name, for stats.
    pub(crate) peer: String,
    /// Whether its owner takes stream events (a subscriber on a framed
    /// connection does; opaque clients and local sinks do not).
    pub(crate) events: bool,
    /// How it subscribed (budgets as clamped by the node).
    pub(crate) params: SubscribeParams,
    /// Format changes of its stream told to its owner since it was added
    /// (a shared-memory edge orders its frames by this count).
    pub(crate) formats_told: u64,
}

/// A pulled edge, as the node tracks it.
#[derive(Debug, Clone)]
pub(crate) struct EdgeRecord {
    /// `host:port/stream`.
    pub(crate) upstream: String,
    /// What it was started with.
    pub(crate) config: EdgeConfig,
    /// Config, CONNECT or discovery.
    pub(crate) origin: EdgeOrigin,
    /// Live, interrupted (retrying), failed (retrying slowly).
    pub(crate) state: StreamState,
    /// Connection attempts that failed since the edge was last live.
    pub(crate) failed_attempts: u32,
    /// Since when nothing here takes the edge's stream.
    pub(crate) unused_since: Option<Instant>,
}

/// What the node says of itself in DESCRIBE and status reports; fixed
/// when it starts.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) name: String,
    pub(crate) site_id: u16,
    pub(crate) function_flags: FunctionFlags,
    pub(crate) features: Features,
    pub(crate) tcp_port: u16,
    pub(crate) pid: u32,
    pub(crate) hostname: String,
    /// Formats accepted on pulled edges (empty: every format).
    pub(crate) accept_formats: Vec<Format>,
}

/// Why the state refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A name that is not one (`framewire_proto::names`).
    #[error(transparent)]
    Name(#[from] NameError),
    /// The stream name is taken.
    #[error("a stream named `{0}` already exists")]
    StreamExists(String),
    /// No stream of that name.
    #[error("no stream named `{stream}` (streams here: {known})")]
    NoStream {
        /// The name asked for.
        stream: String,
        /// The streams there are.
        known: String,
    },
    /// A stream or edge of that name exists.
    #[error("a stream or edge named `{0}` already exists")]
    EdgeExists(String),
    /// No edge of that name.
    #[error("no edge named `{0}`")]
    NoEdge(String),
    /// The node serves as many outputs as it may.
    #[error("this node serves {0} subscriptions, its limit (limits.max_outputs)")]
    TooManyOutputs(usize),
    /// The node pulls as many edges as it may.
    #[error("this node has {0} pulled edges, its limit (limits.max_edges)")]
    TooManyEdges(usize),
    /// The relay refused (a bad budget, an unknown id).
    #[error("{0}")]
    Relay(String),
}

impl StateError {
    /// The status a control response gives this error.
    pub(crate) fn status(&self) -> Status {
        match self {
            StateError::Name(_) => Status::BadRequest,
            StateError::NoStream { .. } | StateError::NoEdge(_) => Status::NotFound,
            StateError::StreamExists(_) | StateError::EdgeExists(_) => Status::Busy,
            StateError::TooManyOutputs(_) | StateError::TooManyEdges(_) => Status::Busy,
            StateError::Relay(_) => Status::BadRequest,
        }
    }
}

impl From<RelayError> for StateError {
    fn from(e: RelayError) -> StateError {
        StateError::Relay(e.to_string())
    }
}

/// The relay engine and the registry of streams, outputs and edges.
#[derive(Debug)]
pub(crate) struct NodeState {
    relay: Relay,
    streams: BTreeMap<String, StreamEntry>,
    outputs: HashMap<OutputId, OutputInfo>,
    edges: BTreeMap<String, EdgeRecord>,
    limits: Limits,
    identity: Identity,
    /// The relay's drop count when [`NodeState::drops_to_tell`] last said yes.
    drops_seen: u64,
    /// When it last said yes.
    drops_told: Option<Instant>,
}

/// How often, at most, outputs that began dropping make the node push a
/// status report at once (a congested edge is an alert in moments, not at
/// the next interval).
pub(crate) const TELL_DROPS_EVERY: std::time::Duration = std::time::Duration::from_millis(300);

impl NodeState {
    pub(crate) fn new(relay: RelayConfig, limits: Limits, identity: Identity) -> NodeState {
        NodeState {
            relay: Relay::new(relay),
            streams: BTreeMap::new(),
            outputs: HashMap::new(),
            edges: BTreeMap::new(),
            limits,
            identity,
            drops_seen: 0,
            drops_told: None,
        }
    }

    /// Whether outputs dropped frames since this last said yes, and that
    /// was [`TELL_DROPS_EVERY`] ago or more: then status watchers should
    /// get a report now.
    pub(crate) fn drops_to_tell(&mut self, now: Instant) -> bool {
        let dropped = self.relay.dropped();
        if dropped == self.drops_seen
            || self
                .drops_told
                .is_some_and(|t| now.saturating_duration_since(t) < TELL_DROPS_EVERY)
        {
            return false;
        }
        self.drops_seen = dropped;
        self.drops_told = Some(now);
        true
    }

    /// The stream of that name.
    pub(crate) fn stream(&self, name: &str) -> Option<&StreamEntry> {
        self.streams.get(name)
    }

    /// The names of the streams served.
    pub(crate) fn stream_names(&self) -> Vec<String> {
        self.streams.keys().cloned().collect()
    }

    /// Adds a stream; fails if the name is taken or is not a name.
    pub(crate) fn add_stream(
        &mut self,
        open: StreamOpen,
        upstream: String,
        state: StreamState,
    ) -> Result<InputId, StateError> {
        names::check(NameKind::Stream, &open.name)?;
        if self.streams.contains_key(&open.name) {
            return Err(StateError::StreamExists(open.name));
        }
        let input = self.relay.add_input(InputConfig::for_format(open.format));
        self.streams.insert(
            open.name.clone(),
            StreamEntry {
                input,
                open,
                state,
                upstream,
                reconnects: 0,
                latest: None,
                arrival_age_ns: None,
                replayed: 0,
                replayed_gap: false,
            },
        );
        Ok(input)
    }

    /// Removes a stream and every output of it; returns those outputs (their
    /// owners are told the stream closed).
    pub(crate) fn remove_stream(&mut self, name: &str, now: Instant) -> Option<Vec<(OutputId, OutputInfo)>> {
        let entry = self.streams.remove(name)?;
        let ids: Vec<OutputId> = self
            .outputs
            .iter()
            .filter(|(_, o)| o.stream == name)
            .map(|(id, _)| *id)
            .collect();
        let mut gone = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(o) = self.outputs.remove(&id) {
                gone.push((id, o));
            }
            let _ = self.relay.remove_output(id, now);
        }
        let _ = self.relay.remove_input(entry.input, now);
        Some(gone)
    }

    /// Pushes a frame into a stream; returns the outputs that now have
    /// something to send (to be woken). A frame for an unknown stream is
    /// dropped (its source is going away), and so is a pulled stream's
    /// frame it has passed on already.
    pub(crate) fn push(
        &mut self,
        stream: &str,
        frame: Frame,
        now: Instant,
        wall_ns: u64,
    ) -> Result<&[OutputId], StateError> {
        let Some(entry) = self.streams.get_mut(stream) else {
            return Ok(&[]);
        };
        let mut frame = frame;
        if !entry.upstream.is_empty() {
            // A pulled edge's new session starts with its upstream's cached
            // group of pictures: what this stream passed on already (no
            // later by number or by capture time) is not passed on again;
            // an upstream that restarted numbers anew, at a later time.
            if let Some(last) = &entry.latest {
                if frame.sequence <= last.sequence && frame.timestamp_ns <= last.timestamp_ns {
                    entry.replayed += 1;
                    entry.replayed_gap |= frame.flags.is_discontinuity();
                    return Ok(&[]);
                }
                if std::mem::take(&mut entry.replayed_gap) && frame.sequence != last.sequence + 1 {
                    frame.flags = frame.flags.with(FrameFlags::DISCONTINUITY);
                }
            }
            entry.arrival_age_ns = Some(wall_ns.saturating_sub(frame.timestamp_ns));
        }
        entry.latest = Some(frame.clone());
        Ok(self.relay.push(entry.input, frame, now)?)
    }

    /// Sets a stream's state from an event; returns the outputs that take
    /// events, with their channels, to be told.
    pub(crate) fn stream_event(&mut self, stream: &str, event: &StreamEvent) -> Vec<(OutputId, u16)> {
        let Some(entry) = self.streams.get_mut(stream) else {
            return Vec::new();
        };
        match event {
            StreamEvent::Interrupted(_) => entry.state = StreamState::Interrupted,
            StreamEvent::Resumed(_) => entry.state = StreamState::Live,
            StreamEvent::FormatChanged(open) => {
                entry.open = open.clone();
                for o in self.outputs.values_mut().filter(|o| o.stream == stream && o.events) {
                    o.formats_told += 1;
                }
            }
            _ => {}
        }
        self.event_outputs(stream)
    }

    /// The outputs of `stream` that take its events and messages (a
    /// connection's, not a local sink's or an opaque one), with their
    /// channels.
    pub(crate) fn event_outputs(&self, stream: &str) -> Vec<(OutputId, u16)> {
        self.outputs
            .iter()
            .filter(|(_, o)| o.stream == stream && o.events)
            .map(|(id, o)| (*id, o.channel))
            .collect()
    }

    /// Counts a reconnection of a pulled stream that was not live; returns
    /// its state and open before.
    pub(crate) fn reconnected(&mut self, stream: &str) -> Option<(StreamState, StreamOpen)> {
        self.streams.get_mut(stream).map(|e| {
            let before = (e.state, e.open.clone());
            if e.state != StreamState::Live {
                e.reconnects += 1;
            }
            before
        })
    }

    /// Adds an output for `stream`: at most [`Limits::max_outputs`] in the
    /// node, and a completeness output's budgets clamped to the node's
    /// maxima whatever it asked for. Returns its id and the stream's open.
    pub(crate) fn add_output(
        &mut self,
        stream: &str,
        params: &SubscribeParams,
        mut info: OutputInfo,
    ) -> Result<(OutputId, StreamOpen), StateError> {
        let Some(s) = self.streams.get(stream) else {
            let known: Vec<&str> = self.streams.keys().map(String::as_str).collect();
            return Err(StateError::NoStream {
                stream: names::display(stream, names::MAX_NAME_LEN),
                known: list_or_none(&known),
            });
        };
        if self.outputs.len() >= self.limits.max_outputs {
            return Err(StateError::TooManyOutputs(self.limits.max_outputs));
        }
        let (input, open) = (s.input, s.open.clone());
        let clamped = self.clamped(params);
        let config = OutputConfig::from_subscribe(&clamped);
        let lane = LaneConfig::new(input).with_priority(params.priority);
        let id = self.relay.add_output(config, &[lane])?;
        info.params = clamped;
        // Labels stay short enough that a stats answer always encodes.
        info.peer = names::display(&info.peer, 2 * names::MAX_NAME_LEN);
        self.outputs.insert(id, info);
        Ok((id, open))
    }

    /// `params` with its budgets resolved (zero: the node's default) and
    /// held under the node's maxima.
    fn clamped(&self, params: &SubscribeParams) -> SubscribeParams {
        let mut p = *params;
        if p.mode == DeliveryMode::Completeness {
            let d = self.relay.config();
            let frames = if p.max_frames == 0 {
                d.default_max_frames
            } else {
                p.max_frames
            };
            let bytes = if p.max_bytes == 0 {
                d.default_max_bytes
            } else {
                p.max_bytes
            };
            p.max_frames = frames.min(self.limits.max_output_frames);
            p.max_bytes = bytes.min(self.limits.max_output_bytes);
        }
        p
    }

    /// Changes a running output's budgets (UPDATE_SUBSCRIPTION): only
    /// `max_frames` and `max_bytes` may differ from how it subscribed.
    /// Returns the budgets as applied (clamped like a subscription's).
    pub(crate) fn update_output(
        &mut self,
        id: OutputId,
        params: &SubscribeParams,
        now: Instant,
    ) -> Result<SubscribeParams, StateError> {
        let p = self.clamped(params);
        let info = self
            .outputs
            .get_mut(&id)
            .ok_or_else(|| StateError::Relay("the subscription is gone".into()))?;
        let c = info.params;
        if (p.mode, p.drop_policy, p.transport, p.priority) != (c.mode, c.drop_policy, c.transport, c.priority) {
            return Err(StateError::Relay(
                "only max_frames and max_bytes change on a running subscription; \
                 mode, drop policy, transport and priority need a new one"
                    .into(),
            ));
        }
        self.relay
            .set_budget(id, framewire_relay::Budget::new(p.max_frames, p.max_bytes), now)?;
        info.params = p;
        Ok(p)
    }

    /// Removes an output and what it holds; its info if it existed.
    pub(crate) fn remove_output(&mut self, id: OutputId, now: Instant) -> Option<OutputInfo> {
        let _ = self.relay.remove_output(id, now);
        self.outputs.remove(&id)
    }

    /// The output's consumer.
    pub(crate) fn output(&self, id: OutputId) -> Option<&OutputInfo> {
        self.outputs.get(&id)
    }

    /// Renames an output's consumer in stats.
    pub(crate) fn set_output_peer(&mut self, id: OutputId, peer: String) {
        if let Some(o) = self.outputs.get_mut(&id) {
            o.peer = names::display(&peer, 2 * names::MAX_NAME_LEN);
        }
    }

    /// What an output holds and has dropped.
    pub(crate) fn output_snapshot(&self, id: OutputId, now: Instant) -> Option<framewire_relay::OutputSnapshot> {
        self.relay.output_snapshot(id, now)
    }

    /// Sets a stream's state (a source's view of itself), without an event.
    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    pub(crate) fn set_stream_state(&mut self, stream: &str, state: StreamState) {
        if let Some(s) = self.streams.get_mut(stream) {
            s.state = state;
        }
    }

    /// The next frame `id` should send (see `Relay::poll_transmit`).
    pub(crate) fn poll_transmit(&mut self, id: OutputId, now: Instant) -> Option<Transmit> {
        self.relay.poll_transmit(id, now)
    }

    /// The length and tag of `id`'s next frame, when it is ready.
    pub(crate) fn next_head(&self, id: OutputId) -> Option<(usize, u64)> {
        self.relay.next_head(id)
    }

    /// Drops `id`'s next frame as suppressed (its link refused it).
    pub(crate) fn suppress_next(&mut self, id: OutputId, now: Instant) -> bool {
        self.relay.suppress_next(id, now)
    }

    /// `id` finished sending the frame it took.
    pub(crate) fn sent(&mut self, id: OutputId, now: Instant) {
        let _ = self.relay.sent(id, now);
    }

    /// Outputs of `stream`.
    pub(crate) fn subscribers(&self, stream: &str) -> usize {
        self.outputs.values().filter(|o| o.stream == stream).count()
    }

    /// Whether at least one output of `stream` can take a frame of `len`
    /// bytes without dropping one: a low-latency output with nothing
    /// pending, a completeness output below its frame budget with `len`
    /// bytes left in its byte budget. False with no outputs.
    pub(crate) fn has_room(&self, stream: &str, len: usize, now: Instant) -> bool {
        self.outputs.iter().filter(|(_, o)| o.stream == stream).any(|(id, _)| {
            self.relay.output_snapshot(*id, now).is_some_and(|s| match s.mode {
                DeliveryMode::Completeness => {
                    s.held_frames < s.max_frames && s.held_bytes.saturating_add(len as u64) <= s.max_bytes
                }
                _ => s.queued_frames == 0,
            })
        })
    }

    /// Registers a pulled edge: its names checked, at most
    /// [`Limits::max_edges`], no stream or edge of its local name. Returns
    /// the local name.
    pub(crate) fn add_edge(&mut self, config: EdgeConfig, origin: EdgeOrigin) -> Result<String, StateError> {
        let local = config.local_name();
        names::check(NameKind::Stream, &config.stream)?;
        names::check(NameKind::LocalName, &local)?;
        if self.edges.contains_key(&local) || self.streams.contains_key(&local) {
            return Err(StateError::EdgeExists(local));
        }
        if self.edges.len() >= self.limits.max_edges {
            return Err(StateError::TooManyEdges(self.limits.max_edges));
        }
        self.edges.insert(
            local.clone(),
            EdgeRecord {
                upstream: format!("{}/{}", config.upstream, config.stream),
                config,
                origin,
                state: StreamState::Interrupted,
                failed_attempts: 0,
                unused_since: None,
            },
        );
        Ok(local)
    }

    /// Records new subscription parameters of a pulled edge.
    pub(crate) fn set_edge_params(&mut self, local: &str, params: SubscribeParams) {
        if let Some(e) = self.edges.get_mut(local) {
            e.config.params = params;
        }
    }

    /// Forgets a pulled edge.
    pub(crate) fn remove_edge(&mut self, local: &str) -> Result<EdgeRecord, StateError> {
        self.edges
            .remove(local)
            .ok_or_else(|| StateError::NoEdge(names::display(local, names::MAX_NAME_LEN)))
    }

    /// The pulled edge of that local name.
    pub(crate) fn edge(&self, local: &str) -> Option<&EdgeRecord> {
        self.edges.get(local)
    }

    /// The edges a gateway pulls for other sites (origin discovery) that
    /// nothing here has taken for `idle` or more: to be stopped.
    pub(crate) fn idle_gateway_edges(&mut self, now: Instant, idle: std::time::Duration) -> Vec<String> {
        let used: std::collections::HashSet<&str> = self.outputs.values().map(|o| o.stream.as_str()).collect();
        let mut out = Vec::new();
        for (local, e) in self.edges.iter_mut().filter(|(_, e)| e.origin == EdgeOrigin::Discovery) {
            if used.contains(local.as_str()) {
                e.unused_since = None;
                continue;
            }
            let since = *e.unused_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= idle {
                out.push(local.clone());
            }
        }
        out
    }

    /// Records a pulled edge's state (and its stream's, when it failed);
    /// whether the edge's state changed.
    pub(crate) fn set_edge_state(&mut self, local: &str, state: StreamState, failed_attempt: bool) -> bool {
        let mut changed = false;
        if let Some(e) = self.edges.get_mut(local) {
            changed = e.state != state;
            e.state = state;
            if failed_attempt {
                e.failed_attempts = e.failed_attempts.saturating_add(1);
            } else if state == StreamState::Live {
                e.failed_attempts = 0;
            }
        }
        if state == StreamState::Failed
            && let Some(s) = self.streams.get_mut(local)
        {
            s.state = state;
        }
        changed
    }
}

pub(crate) fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}
