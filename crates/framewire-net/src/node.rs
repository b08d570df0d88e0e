//! A node: one relay engine, the streams it serves, and the tasks around it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use framewire_proto::control::{
    Description, EdgeOrigin, EdgeStatus, Snapshot, Stats, StatusReport, StreamInfo, StreamState,
};
use framewire_proto::{
    EventInfo, EventReason, Features, Message, PROTOCOL_VERSION, StreamEvent, StreamOpen, SubscribeParams,
};
use framewire_relay::{
    Frame, InputConfig, InputId, InputLabels, LaneConfig, OutputConfig, OutputId, OutputLabels, Relay,
};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tracing::{Instrument, info, info_span, warn};

use crate::auth::DeploymentKey;
use crate::config::{EdgeConfig, NodeConfig};
use crate::error::NetError;
use crate::sink;
use crate::source;
use crate::transport::conn::{self, WriterCmd};
use crate::transport::discovery::DiscoveryHandle;
use crate::transport::edge;
use crate::transport::opaque;

/// Peer addresses remembered for logging authentication refusals once.
const MAX_REFUSED_PEERS: usize = 1024;

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
}

/// Who consumes an output, for stats and events.
#[derive(Debug)]
pub(crate) struct OutputEntry {
    pub(crate) stream: String,
    pub(crate) channel: u16,
    pub(crate) peer: String,
    /// Woken when the output has something to send.
    pub(crate) waker: Arc<Notify>,
    /// The connection's writer, for stream events (none for local sinks
    /// and opaque outputs).
    pub(crate) events: Option<mpsc::Sender<WriterCmd>>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) relay: Relay,
    pub(crate) streams: BTreeMap<String, StreamEntry>,
    pub(crate) outputs: HashMap<OutputId, OutputEntry>,
}

/// A pulled edge, as the node tracks it.
#[derive(Debug)]
pub(crate) struct EdgeHandle {
    pub(crate) stop: watch::Sender<bool>,
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
}

/// State shared by every task of a node.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: NodeConfig,
    pub(crate) state: Mutex<State>,
    pub(crate) started: Instant,
    pub(crate) local_addr: SocketAddr,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) connections: AtomicUsize,
    pub(crate) edges: Mutex<HashMap<String, EdgeHandle>>,
    pub(crate) stopping: AtomicBool,
    /// The discovery driver, once started.
    pub(crate) discovery: std::sync::OnceLock<DiscoveryHandle>,
    /// V4L2 devices captured here (controls set remotely are re-applied).
    pub(crate) v4l2: crate::v4l2::V4l2Registry,
    /// Input events from viewers, and where they go (docs/x11.md).
    pub(crate) input: crate::x11::InputRegistry,
    /// Peer addresses whose authentication was refused (logged once each).
    pub(crate) refused: Mutex<HashSet<IpAddr>>,
    /// Connections refused by authentication, for /metrics.
    pub(crate) auth_refusals: AtomicU64,
    /// Shared-memory subscriptions, when on.
    pub(crate) shm: std::sync::OnceLock<Arc<crate::transport::shm_edge::ShmServer>>,
    /// Bumped on every change a status watcher should report at once
    /// (streams, edges, outputs, states).
    pub(crate) changes: watch::Sender<u64>,
}

/// Wall-clock time in nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Shared {
    /// Logs an authentication refusal: at warn level the first time for a
    /// peer address, at debug level after that. Never logs the key.
    pub(crate) fn log_refusal(&self, peer: SocketAddr, reason: &str) {
        self.auth_refusals.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut seen = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            // Bounded: a flood of addresses only makes the warnings repeat.
            if seen.len() >= MAX_REFUSED_PEERS {
                seen.clear();
            }
            seen.insert(peer.ip())
        };
        if first {
            warn!(%peer, %reason, "connection refused by authentication (further refusals of this address are logged at debug level)");
        } else {
            tracing::debug!(%peer, %reason, "connection refused by authentication");
        }
    }

    /// The features this node offers in HELLO and DESCRIBE.
    pub(crate) fn features(&self) -> Features {
        let mut f = Features::OPAQUE.0;
        if self.shm.get().is_some() {
            f |= Features::SHM.0;
        }
        Features(f)
    }

    /// Tells status watchers that something they report changed.
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A status report for a watching controller (WATCH_STATUS).
    pub(crate) fn status_report(&self, sequence: u32) -> StatusReport {
        let mut edges: Vec<EdgeStatus> = self
            .edges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
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
            .collect();
        edges.sort_by(|a, b| a.local_name.cmp(&b.local_name));
        StatusReport {
            sequence,
            description: self.describe(),
            streams: self.stream_infos(),
            stats: self.stats(""),
            edges,
            accept_formats: self.config.accept_formats.clone(),
        }
    }

    /// The state, even if a task panicked while holding it (the state is
    /// plain data whose invariants the relay engine maintains per call).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a stream; fails if the name is taken.
    pub(crate) fn add_stream(
        &self,
        open: StreamOpen,
        upstream: String,
        state: StreamState,
    ) -> Result<InputId, NetError> {
        let mut st = self.lock();
        if st.streams.contains_key(&open.name) {
            return Err(NetError::Refused(format!(
                "a stream named `{}` already exists",
                open.name
            )));
        }
        let input = st.relay.add_input(InputConfig::for_format(open.format));
        st.streams.insert(
            open.name.clone(),
            StreamEntry {
                input,
                open,
                state,
                upstream,
                reconnects: 0,
                latest: None,
                arrival_age_ns: None,
            },
        );
        drop(st);
        self.changed();
        Ok(input)
    }

    /// Removes a stream: its subscribers get *closed* and lose the output.
    pub(crate) fn remove_stream(&self, name: &str, reason: EventReason, message: &str) {
        self.input.forget(name);
        let mut st = self.lock();
        let Some(entry) = st.streams.remove(name) else { return };
        let now = Instant::now();
        let ids: Vec<OutputId> = st
            .outputs
            .iter()
            .filter(|(_, o)| o.stream == name)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(o) = st.outputs.remove(&id) {
                send_event(&o, closed(reason, message));
                if let Some(ev) = &o.events {
                    let _ = ev.try_send(WriterCmd::RemoveOutput(id));
                }
                o.waker.notify_one();
            }
            let _ = st.relay.remove_output(id, now);
        }
        let _ = st.relay.remove_input(entry.input, now);
        drop(st);
        self.changed();
    }

    /// Pushes a frame into a stream and wakes the outputs that now have
    /// something to send. Never blocks on any output.
    pub(crate) fn push(&self, stream: &str, frame: Frame) {
        let now = Instant::now();
        let mut wake: Vec<Arc<Notify>> = Vec::new();
        {
            let mut guard = self.lock();
            let st = &mut *guard;
            let Some(entry) = st.streams.get_mut(stream) else {
                return;
            };
            if !entry.upstream.is_empty() {
                entry.arrival_age_ns = Some(now_ns().saturating_sub(frame.timestamp_ns));
            }
            entry.latest = Some(frame.clone());
            match st.relay.push(entry.input, frame, now) {
                Ok(ready) => {
                    for id in ready {
                        if let Some(o) = st.outputs.get(id) {
                            wake.push(o.waker.clone());
                        }
                    }
                }
                Err(e) => warn!(stream, error = %e, "frame refused by the relay"),
            }
        }
        for w in wake {
            w.notify_one();
        }
    }

    /// Sets a stream's state and tells its subscribers.
    pub(crate) fn stream_event(&self, stream: &str, event: StreamEvent) {
        let mut st = self.lock();
        let Some(entry) = st.streams.get_mut(stream) else {
            return;
        };
        match &event {
            StreamEvent::Interrupted(_) => entry.state = StreamState::Interrupted,
            StreamEvent::Resumed(_) => entry.state = StreamState::Live,
            StreamEvent::FormatChanged(open) => entry.open = open.clone(),
            _ => {}
        }
        for o in st.outputs.values().filter(|o| o.stream == stream) {
            send_event(o, event.clone());
        }
        drop(st);
        self.changed();
    }

    /// Records a pulled edge's state (and its stream's, if it exists yet).
    pub(crate) fn set_edge_state(&self, local: &str, state: StreamState, failed_attempt: bool) {
        if let Some(e) = self.edges.lock().unwrap_or_else(|p| p.into_inner()).get_mut(local) {
            if e.state != state {
                self.changed();
            }
            e.state = state;
            if failed_attempt {
                e.failed_attempts = e.failed_attempts.saturating_add(1);
            } else if state == StreamState::Live {
                e.failed_attempts = 0;
            }
        }
        if let Some(e) = self.lock().streams.get_mut(local)
            && state == StreamState::Failed
        {
            e.state = state;
        }
    }

    /// Adds an output for `stream`. Returns its id and the stream's open.
    pub(crate) fn add_output(
        &self,
        stream: &str,
        params: &SubscribeParams,
        entry: OutputEntry,
    ) -> Result<(OutputId, StreamOpen), (framewire_proto::Status, String)> {
        let mut st = self.lock();
        let Some(s) = st.streams.get(stream) else {
            let names: Vec<&str> = st.streams.keys().map(String::as_str).collect();
            return Err((
                framewire_proto::Status::NotFound,
                format!("no stream named `{stream}` (streams here: {})", list_or_none(&names)),
            ));
        };
        let (input, open) = (s.input, s.open.clone());
        let config = OutputConfig::from_subscribe(params);
        let lane = LaneConfig::new(input).with_priority(params.priority);
        let id = st
            .relay
            .add_output(config, &[lane])
            .map_err(|e| (framewire_proto::Status::BadRequest, e.to_string()))?;
        st.outputs.insert(id, entry);
        drop(st);
        self.changed();
        Ok((id, open))
    }

    /// Removes an output and what it holds.
    pub(crate) fn remove_output(&self, id: OutputId) {
        let mut st = self.lock();
        st.outputs.remove(&id);
        let _ = st.relay.remove_output(id, Instant::now());
        drop(st);
        self.changed();
    }

    /// Counters of every input and output (or those of one stream).
    pub(crate) fn stats(&self, only: &str) -> Stats {
        let st = self.lock();
        let now = Instant::now();
        let mut stats = Stats::default();
        for (name, s) in &st.streams {
            if !only.is_empty() && name != only {
                continue;
            }
            if let Some(snap) = st.relay.input_snapshot(s.input) {
                stats.inputs.push(snap.to_proto(InputLabels {
                    stream: name,
                    state: s.state,
                    upstream: &s.upstream,
                    reconnects: s.reconnects,
                }));
            }
        }
        // Edges whose upstream never answered have no stream yet: show them.
        for (local, e) in self.edges.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if !st.streams.contains_key(local) && (only.is_empty() || local == only) {
                stats.inputs.push(framewire_proto::control::InputStats {
                    stream: local.clone(),
                    state: e.state,
                    upstream: e.upstream.clone(),
                    frames_in: 0,
                    bytes_in: 0,
                    reconnects: e.failed_attempts,
                });
            }
        }
        let mut outs: Vec<(&OutputId, &OutputEntry)> = st.outputs.iter().collect();
        outs.sort_by_key(|(_, o)| (o.stream.clone(), o.peer.clone(), o.channel));
        for (id, o) in outs {
            if !only.is_empty() && o.stream != only {
                continue;
            }
            if let Some(snap) = st.relay.output_snapshot(*id, now) {
                let mut row = snap.to_proto(OutputLabels {
                    channel: o.channel,
                    stream: &o.stream,
                    peer: &o.peer,
                });
                // A shm consumer holding its buffer budget is skipped by the
                // producer: those frames count as frame-budget drops here.
                if let Some(c) = self.shm.get().and_then(|s| s.consumer_stats(&o.stream, *id))
                    && c.skipped > 0
                {
                    row.drops.push(framewire_proto::control::DropCount {
                        reason: framewire_proto::control::DropReason::FrameBudget,
                        count: c.skipped,
                    });
                }
                stats.outputs.push(row);
            }
        }
        stats.input_events = self.input.stats(only);
        stats
    }

    /// Everything `/metrics` shows, read now.
    pub(crate) fn metrics_snapshot(&self) -> crate::metrics::MetricsSnapshot {
        let stats = self.stats("");
        let ages: HashMap<String, u64> = self
            .lock()
            .streams
            .iter()
            .filter_map(|(n, s)| s.arrival_age_ns.map(|a| (n.clone(), a)))
            .collect();
        let mut edges: Vec<crate::metrics::EdgeMetrics> = self
            .edges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(local, e)| crate::metrics::EdgeMetrics {
                stream: local.clone(),
                upstream: e.upstream.clone(),
                state: e.state,
                latency_seconds: ages.get(local).map(|a| *a as f64 / 1e9),
            })
            .collect();
        edges.sort_by(|a, b| a.stream.cmp(&b.stream));
        crate::metrics::MetricsSnapshot {
            node: self.config.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            site_id: self.config.site_id,
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            connections: self.connections.load(Ordering::SeqCst) as u64,
            auth_refusals: self.auth_refusals.load(Ordering::Relaxed),
            auth_required: self.config.key.is_some(),
            stats,
            edges,
            process: crate::metrics::ProcessStats::read(),
        }
    }

    /// LIST_STREAMS entries.
    pub(crate) fn stream_infos(&self) -> Vec<StreamInfo> {
        let st = self.lock();
        st.streams
            .iter()
            .map(|(name, s)| {
                let subscribers = st.outputs.values().filter(|o| &o.stream == name).count();
                StreamInfo {
                    open: s.open.clone(),
                    state: s.state,
                    subscribers: u16::try_from(subscribers).unwrap_or(u16::MAX),
                    frames: st.relay.input_snapshot(s.input).map_or(0, |i| i.frames_in),
                }
            })
            .collect()
    }

    /// The latest frame of a stream.
    pub(crate) fn snapshot(&self, stream: &str) -> Option<Snapshot> {
        let st = self.lock();
        let s = st.streams.get(stream)?;
        let f = s.latest.as_ref()?;
        Some(Snapshot {
            open: s.open.clone(),
            sequence: f.sequence,
            timestamp_ns: f.timestamp_ns,
            flags: f.flags,
            data: f.data.clone(),
        })
    }

    /// DESCRIBE.
    pub(crate) fn describe(&self) -> Description {
        let streams = self.lock().streams.len();
        Description {
            name: self.config.name.clone(),
            software: format!("framewire {}", env!("CARGO_PKG_VERSION")),
            protocol_version: PROTOCOL_VERSION,
            site_id: self.config.site_id,
            function_flags: self.config.function_flags(),
            features: self.features(),
            pid: std::process::id(),
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            hostname: hostname(),
            streams: u16::try_from(streams).unwrap_or(u16::MAX),
            tcp_port: self.local_addr.port(),
        }
    }

    /// Starts a pulled edge (CONNECT). Returns the local stream name.
    pub(crate) fn start_edge(self: &Arc<Self>, cfg: EdgeConfig, origin: EdgeOrigin) -> Result<String, NetError> {
        let local = cfg.local_name();
        use framewire_proto::names::{NameKind, check};
        check(NameKind::Stream, &cfg.stream)
            .and_then(|()| check(NameKind::LocalName, &local))
            .map_err(|e| NetError::Refused(e.to_string()))?;
        let mut edges = self.edges.lock().unwrap_or_else(|p| p.into_inner());
        if edges.contains_key(&local) || self.lock().streams.contains_key(&local) {
            return Err(NetError::Refused(format!(
                "a stream or edge named `{local}` already exists"
            )));
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        edges.insert(
            local.clone(),
            EdgeHandle {
                stop: stop_tx,
                upstream: format!("{}/{}", cfg.upstream, cfg.stream),
                config: cfg.clone(),
                origin,
                state: StreamState::Interrupted,
                failed_attempts: 0,
            },
        );
        drop(edges);
        self.changed();
        let shared = self.clone();
        let span = info_span!("edge", local = %local, upstream = %cfg.upstream);
        tokio::spawn(edge::run(shared, cfg, stop_rx).instrument(span));
        Ok(local)
    }

    /// Stops a pulled edge (DISCONNECT).
    pub(crate) fn stop_edge(&self, local: &str) -> Result<(), NetError> {
        let stop = self
            .edges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(local)
            .ok_or_else(|| NetError::Refused(format!("no edge named `{local}`")))?;
        let _ = stop.stop.send(true);
        self.changed();
        Ok(())
    }

    /// Asks every task to wind down.
    pub(crate) fn begin_shutdown(&self) {
        if !self.stopping.swap(true, Ordering::SeqCst) {
            info!("shutting down");
            let _ = self.shutdown.send(true);
            if let Some(s) = self.shm.get() {
                s.shutdown();
            }
        }
    }
}

pub(crate) fn send_event(o: &OutputEntry, event: StreamEvent) {
    if let Some(ev) = &o.events {
        let msg = Message::StreamEvent {
            channel: o.channel,
            event,
        };
        if ev.try_send(WriterCmd::Msg(msg)).is_err() {
            warn!(peer = %o.peer, stream = %o.stream, "stream event dropped: connection's queue is full");
        }
    }
}

pub(crate) fn closed(reason: EventReason, message: &str) -> StreamEvent {
    StreamEvent::Closed(EventInfo {
        timestamp_ns: now_ns(),
        reason,
        message: message.to_owned(),
    })
}

pub(crate) fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Local sinks: awaited on shutdown (an archive closes its segment).
    sinks: Vec<tokio::task::JoinHandle<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop_sources: Arc<AtomicBool>,
    metrics_addr: Option<SocketAddr>,
}

impl Node {
    /// Binds the listener, starts sources, edges, sinks and opaque ports.
    /// Must be called inside a tokio runtime.
    pub async fn start(config: NodeConfig) -> Result<Node, NetError> {
        if config.key.is_some()
            && let Some(p) = config.opaque_ports.iter().find(|p| !p.allow_unauthenticated)
        {
            return Err(NetError::Refused(format!(
                "opaque port {} (stream `{}`) cannot authenticate, and this node has a deployment key: \
                 set allow_unauthenticated = true on it (or `,allow-unauthenticated=true` on --opaque) to serve it anyway",
                p.listen, p.stream
            )));
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| NetError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr()?;
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                relay: Relay::new(config.relay),
                streams: BTreeMap::new(),
                outputs: HashMap::new(),
            }),
            started: Instant::now(),
            local_addr,
            shutdown,
            connections: AtomicUsize::new(0),
            edges: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            discovery: std::sync::OnceLock::new(),
            v4l2: crate::v4l2::V4l2Registry::default(),
            input: crate::x11::InputRegistry::default(),
            refused: Mutex::new(HashSet::new()),
            auth_refusals: AtomicU64::new(0),
            shm: std::sync::OnceLock::new(),
            changes: watch::channel(0).0,
            config,
        });
        if let Some(path) = shared.config.shm_socket.clone() {
            match crate::transport::shm_edge::ShmServer::start(&shared, &path) {
                Ok(s) => {
                    let _ = shared.shm.set(s);
                }
                Err(e) => warn!(path = %path.display(), error = %e, "shared-memory subscriptions off: cannot bind"),
            }
        }
        info!(name = %shared.config.name, addr = %local_addr, "node listening");
        let stop_sources = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for src in shared.config.sources.clone() {
            threads.push(source::spawn(shared.clone(), src, stop_sources.clone())?);
        }
        for e in shared.config.edges.clone() {
            shared.start_edge(e, EdgeOrigin::Config)?;
        }
        let mut tasks = Vec::new();
        let mut sinks = Vec::new();
        for s in shared.config.sinks.clone() {
            sinks.push(tokio::spawn(sink::run(shared.clone(), s)));
        }
        for p in shared.config.opaque_ports.clone() {
            tasks.push(opaque::start(shared.clone(), p).await?);
        }
        tasks.push(tokio::spawn(conn::accept_loop(shared.clone(), listener)));
        let mut metrics_addr = None;
        if let Some(addr) = shared.config.metrics {
            let (local, task) = crate::metrics::start(shared.clone(), addr).await?;
            metrics_addr = Some(local);
            tasks.push(task);
        }
        if let Some(d) = &shared.config.discovery {
            let c = &shared.config;
            let (flags, port) = (c.function_flags(), local_addr.port());
            let local = framewire_discovery::announcement(&c.name, c.site_id, port, flags, d.engine.interval);
            let mut d = d.clone();
            d.key = c.key.clone();
            let d = &d;
            match DiscoveryHandle::start(d, Some(local)) {
                Ok(h) => {
                    let _ = shared.discovery.set(h);
                }
                // A gateway without its legs is useless: refuse to start.
                Err(e) if d.is_gateway() => {
                    // Stop what already started (sources, listener, metrics, edges).
                    stop_sources.store(true, Ordering::SeqCst);
                    shared.begin_shutdown();
                    for t in &tasks {
                        t.abort();
                    }
                    return Err(e);
                }
                // An ordinary node still serves streams without discovery.
                Err(e) => warn!(error = %e, "discovery is off: cannot open its socket"),
            }
        }
        Ok(Node {
            shared,
            tasks,
            sinks,
            threads,
            stop_sources,
            metrics_addr,
        })
    }

    /// The deployment key this node authenticates with (none: no auth).
    pub fn key(&self) -> Option<&DeploymentKey> {
        self.shared.config.key.as_ref()
    }

    /// Where `/metrics` is served (none: off).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The node's metrics in the Prometheus text format, for a web server
    /// that mounts `/metrics` itself (see [`crate::metrics`]).
    pub fn metrics_text(&self) -> String {
        crate::metrics::render(&self.shared.metrics_snapshot())
    }

    /// Where the node accepts connections.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats("")
    }

    /// Starts a pulled edge, as CONNECT does.
    pub fn connect(&self, edge: EdgeConfig) -> Result<String, NetError> {
        self.shared.start_edge(edge, EdgeOrigin::Connect)
    }

    /// Stops a pulled edge, as DISCONNECT does.
    pub fn disconnect(&self, local_name: &str) -> Result<(), NetError> {
        self.shared.stop_edge(local_name)
    }

    /// The report a status watcher would get now.
    pub fn status_report(&self) -> StatusReport {
        self.shared.status_report(0)
    }

    /// The discovery peer table with each row's leg (empty when discovery is off).
    pub async fn peers(&self) -> Vec<(usize, framewire_discovery::Peer)> {
        match self.shared.discovery.get() {
            Some(d) => d.peers().await,
            None => Vec::new(),
        }
    }

    /// Discovery events from now on (none when discovery is off).
    pub fn discovery_events(&self) -> Option<tokio::sync::broadcast::Receiver<(usize, framewire_discovery::Event)>> {
        self.shared.discovery.get().map(DiscoveryHandle::subscribe)
    }

    /// A receiver that turns true when shutdown begins (SHUTDOWN command or
    /// [`Node::shutdown`]).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shared.shutdown.subscribe()
    }

    /// Shuts down gracefully: subscribers get *closed*, frames being
    /// written are finished (for at most the configured grace), sockets close.
    pub async fn shutdown(mut self) {
        self.stop_sources.store(true, Ordering::SeqCst);
        // Queue *closed* for every subscriber before the connections learn
        // of the shutdown: a connection that sees the signal first removes
        // its outputs, and its subscriber would never be told why.
        let names: Vec<String> = self.shared.lock().streams.keys().cloned().collect();
        for n in names {
            self.shared
                .stream_event(&n, closed(EventReason::Shutdown, "node shutting down"));
        }
        self.shared.begin_shutdown();
        if let Some(d) = self.shared.discovery.get() {
            d.close().await; // goodbye: peers drop the node at once
        }
        let grace = self.shared.config.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        while self.shared.connections.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sink::wait_all(std::mem::take(&mut self.sinks)).await;
        // Aborted, then awaited: when shutdown returns, every listener is closed.
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_sources.store(true, Ordering::SeqCst);
        let _ = self.shared.shutdown.send(true);
        if let Some(s) = self.shared.shm.get() {
            s.shutdown();
        }
        for t in self.tasks.iter().chain(&self.sinks) {
            t.abort();
        }
    }
}
