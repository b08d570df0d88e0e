//! A node: one relay engine, the streams it serves, and the tasks around it.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use framewire_proto::control::{Description, EdgeOrigin, Snapshot, Stats, StatusReport, StreamInfo, StreamState};
use framewire_proto::{EventInfo, EventReason, Features, Message, StreamEvent, StreamOpen, SubscribeParams};
use framewire_relay::{Frame, InputId, OutputId, Transmit};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::auth::DeploymentKey;
use crate::config::{EdgeConfig, NodeConfig};
use crate::error::NetError;
use crate::runtime::devices::Devices;
use crate::state::StateError;
use crate::state::{Identity, NodeState, OutputInfo};
use crate::transport::conn;
use crate::transport::discovery::DiscoveryHandle;
use crate::transport::edge;
use crate::transport::opaque;
use crate::transport::writer::{Item, QueueError, WriterQueue};

/// Peer addresses remembered for logging authentication refusals once.
const MAX_REFUSED_PEERS: usize = 1024;

/// Who consumes an output, as a task hands it to [`Shared::add_output`].
#[derive(Debug)]
pub(crate) struct OutputEntry {
    pub(crate) stream: String,
    pub(crate) channel: u16,
    pub(crate) peer: String,
    /// Woken when the output has something to send.
    pub(crate) waker: Arc<Notify>,
    /// The connection's writer, for stream events (none for local sinks
    /// and opaque outputs).
    pub(crate) events: Option<Arc<WriterQueue>>,
}

/// The runtime's side of an output: whom to wake, where its events go.
#[derive(Debug)]
struct Owner {
    waker: Arc<Notify>,
    events: Option<Arc<WriterQueue>>,
    channel: u16,
    peer: String,
    stream: String,
}

/// The node's state and, beside it under the same lock, what the runtime
/// keeps per output and per edge.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) state: NodeState,
    owners: HashMap<OutputId, Owner>,
    /// Stops each pulled edge's task.
    edge_stops: HashMap<String, watch::Sender<bool>>,
}

/// State shared by every task of a node.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: NodeConfig,
    inner: Mutex<Inner>,
    pub(crate) started: Instant,
    pub(crate) local_addr: SocketAddr,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) connections: AtomicUsize,
    /// Connections the main port serves at once, and each opaque port
    /// (the limits, held within the process's descriptors).
    caps: (usize, usize),
    /// Bumped when an output sends, comes or goes; sources at rate 0 wait
    /// on it for room ([`Shared::wait_room`]).
    room: (Mutex<u64>, std::sync::Condvar),
    room_waiters: AtomicUsize,
    /// When (seconds since start) a refused connection was last logged.
    pub(crate) last_refusal_log: AtomicU64,
    pub(crate) stopping: AtomicBool,
    /// The discovery driver, once started.
    pub(crate) discovery: std::sync::OnceLock<DiscoveryHandle>,
    /// V4L2 devices captured here (controls set remotely are re-applied).
    pub(crate) v4l2: Arc<crate::sources::v4l2::V4l2Registry>,
    /// The device families that answer commands (V4L2 controls, monitors).
    pub(crate) devices: Devices,
    /// Input events from viewers, and where they go (docs/x11.md).
    pub(crate) input: Arc<crate::runtime::input::InputRegistry>,
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

    /// Connections the main port serves at once.
    pub(crate) fn connection_cap(&self) -> usize {
        self.caps.0
    }

    /// Connections each opaque port serves at once.
    pub(crate) fn opaque_cap(&self) -> usize {
        self.caps.1
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

    /// The state, even if a task panicked while holding it (the state is
    /// plain data whose invariants the relay engine maintains per call).
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state under its lock (for a task that takes several
    /// outputs' frames at once).
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut NodeState) -> R) -> R {
        f(&mut self.lock().state)
    }

    /// A status report for a watching controller (WATCH_STATUS).
    pub(crate) fn status_report(&self, sequence: u32) -> StatusReport {
        let stats = self.stats("");
        self.lock().state.status_report(sequence, self.started.elapsed(), stats)
    }

    /// Adds a stream; fails if the name is taken.
    pub(crate) fn add_stream(
        &self,
        open: StreamOpen,
        upstream: String,
        state: StreamState,
    ) -> Result<InputId, NetError> {
        let input = self
            .lock()
            .state
            .add_stream(open, upstream, state)
            .map_err(|e| NetError::Refused(e.to_string()))?;
        self.changed();
        Ok(input)
    }

    /// Removes a stream: its subscribers get *closed* and lose the output.
    pub(crate) fn remove_stream(&self, name: &str, reason: EventReason, message: &str) {
        self.input.forget(name);
        let mut inner = self.lock();
        let Some(gone) = inner.state.remove_stream(name, Instant::now()) else {
            return;
        };
        for (id, _) in gone {
            if let Some(o) = inner.owners.remove(&id) {
                send_event(&o.events, o.channel, &o.peer, &o.stream, closed(reason, message));
                if let Some(ev) = &o.events {
                    let _ = ev.try_push(Item::RemoveOutput(id));
                }
                o.waker.notify_one();
            }
        }
        drop(inner);
        self.changed();
    }

    /// Pushes a frame into a stream and wakes the outputs that now have
    /// something to send. Never blocks on any output.
    pub(crate) fn push(&self, stream: &str, frame: Frame) {
        let now = Instant::now();
        let mut wake: Vec<Arc<Notify>> = Vec::new();
        {
            let mut guard = self.lock();
            let inner = &mut *guard;
            match inner.state.push(stream, frame, now, now_ns()) {
                Ok(ready) => {
                    for id in ready {
                        if let Some(o) = inner.owners.get(id) {
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
        let mut guard = self.lock();
        let inner = &mut *guard;
        for (id, channel) in inner.state.stream_event(stream, &event) {
            if let Some(o) = inner.owners.get(&id) {
                send_event(&o.events, channel, &o.peer, &o.stream, event.clone());
            }
        }
        drop(guard);
        self.changed();
    }

    /// A pulled stream (re)connected: counts a reconnection if it was not
    /// live; its state and open before, if it exists.
    pub(crate) fn reconnected(&self, local: &str) -> Option<(StreamState, StreamOpen)> {
        self.lock().state.reconnected(local)
    }

    /// Records a pulled edge's state (and its stream's, if it exists yet).
    pub(crate) fn set_edge_state(&self, local: &str, state: StreamState, failed_attempt: bool) {
        if self.lock().state.set_edge_state(local, state, failed_attempt) {
            self.changed();
        }
    }

    /// Adds an output for `stream`. Returns its id and the stream's open.
    pub(crate) fn add_output(
        &self,
        stream: &str,
        params: &SubscribeParams,
        entry: OutputEntry,
    ) -> Result<(OutputId, StreamOpen), StateError> {
        let info = OutputInfo {
            stream: entry.stream.clone(),
            channel: entry.channel,
            peer: entry.peer.clone(),
            events: entry.events.is_some(),
        };
        let mut inner = self.lock();
        let (id, open) = inner.state.add_output(stream, params, info)?;
        inner.owners.insert(
            id,
            Owner {
                waker: entry.waker,
                events: entry.events,
                channel: entry.channel,
                peer: entry.peer,
                stream: entry.stream,
            },
        );
        drop(inner);
        self.changed();
        self.room_changed();
        Ok((id, open))
    }

    /// Removes an output and what it holds.
    pub(crate) fn remove_output(&self, id: OutputId) {
        let mut inner = self.lock();
        inner.state.remove_output(id, Instant::now());
        inner.owners.remove(&id);
        drop(inner);
        self.changed();
        self.room_changed();
    }

    /// Whether the output still exists.
    pub(crate) fn has_output(&self, id: OutputId) -> bool {
        self.lock().state.output(id).is_some()
    }

    /// The stream an output takes.
    pub(crate) fn output_stream(&self, id: OutputId) -> Option<String> {
        self.lock().state.output(id).map(|o| o.stream.clone())
    }

    /// Renames an output's consumer in stats (an archive shows its state there).
    pub(crate) fn set_output_peer(&self, id: OutputId, peer: String) {
        self.lock().state.set_output_peer(id, peer);
    }

    /// The next frame an output should send.
    pub(crate) fn poll_transmit(&self, id: OutputId) -> Option<Transmit> {
        self.lock().state.poll_transmit(id, Instant::now())
    }

    /// An output finished sending its frame.
    pub(crate) fn sent(&self, id: OutputId) {
        self.lock().state.sent(id, Instant::now());
        self.room_changed();
    }

    /// Reports `prev` sent (if any) and takes `next`'s frame, in one lock.
    pub(crate) fn sent_then_poll(&self, prev: Option<OutputId>, next: OutputId) -> Option<Transmit> {
        let mut inner = self.lock();
        let now = Instant::now();
        if let Some(p) = prev {
            inner.state.sent(p, now);
        }
        let tx = inner.state.poll_transmit(next, now);
        drop(inner);
        if prev.is_some() {
            self.room_changed();
        }
        tx
    }

    /// Whether a stream of that name is served.
    pub(crate) fn has_stream(&self, name: &str) -> bool {
        self.lock().state.stream(name).is_some()
    }

    /// How many outputs take `stream`.
    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    pub(crate) fn subscribers(&self, stream: &str) -> usize {
        self.lock().state.subscribers(stream)
    }

    /// Wakes the sources waiting for room (only when some wait).
    fn room_changed(&self) {
        if self.room_waiters.load(Ordering::Relaxed) > 0 {
            *self.room.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            self.room.1.notify_all();
        }
    }

    /// Waits until an output of `stream` can take a frame of `len` bytes;
    /// false if `stop` is set first.
    pub(crate) fn wait_room(&self, stream: &str, len: usize, stop: &AtomicBool) -> bool {
        self.room_waiters.fetch_add(1, Ordering::SeqCst);
        let ready = loop {
            if stop.load(Ordering::Relaxed) {
                break false;
            }
            let seen = *self.room.0.lock().unwrap_or_else(|p| p.into_inner());
            if self.has_room(stream, len) {
                break true;
            }
            let g = self.room.0.lock().unwrap_or_else(|p| p.into_inner());
            if *g == seen {
                // A bounded wait: `stop` is a flag, not a notification.
                let _ = self.room.1.wait_timeout(g, Duration::from_millis(100));
            }
        };
        self.room_waiters.fetch_sub(1, Ordering::SeqCst);
        ready
    }

    /// Whether an output of `stream` can take a frame of `len` bytes now.
    pub(crate) fn has_room(&self, stream: &str, len: usize) -> bool {
        self.lock().state.has_room(stream, len, Instant::now())
    }

    /// Sets a stream's state without telling anyone (a source's own view).
    #[cfg_attr(not(all(feature = "v4l2", target_os = "linux")), allow(dead_code))]
    pub(crate) fn set_stream_state(&self, stream: &str, state: StreamState) {
        self.lock().state.set_stream_state(stream, state);
    }

    /// Counters of every input and output (or those of one stream).
    pub(crate) fn stats(&self, only: &str) -> Stats {
        let shm = self.shm.get();
        let skipped = |stream: &str, id: OutputId| {
            // A shm consumer holding its buffer budget is skipped by the
            // producer: those frames count as frame-budget drops.
            shm.and_then(|s| s.consumer_stats(stream, id)).map_or(0, |c| c.skipped)
        };
        let mut stats = self.lock().state.stats(only, Instant::now(), &skipped);
        stats.input_events = self.input.stats(only);
        stats
    }

    /// Everything `/metrics` shows, read now.
    pub(crate) fn metrics_snapshot(&self) -> crate::metrics::MetricsSnapshot {
        let stats = self.stats("");
        let edges = self
            .lock()
            .state
            .edge_rows()
            .into_iter()
            .map(|e| crate::metrics::EdgeMetrics {
                stream: e.local,
                upstream: e.upstream,
                state: e.state,
                latency_seconds: e.latency_seconds,
            })
            .collect();
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
            discovery: self.discovery.get().map(DiscoveryHandle::counters),
        }
    }

    /// LIST_STREAMS entries.
    pub(crate) fn stream_infos(&self) -> Vec<StreamInfo> {
        self.lock().state.stream_infos()
    }

    /// The latest frame of a stream.
    pub(crate) fn snapshot(&self, stream: &str) -> Option<Snapshot> {
        self.lock().state.snapshot(stream)
    }

    /// The names of the streams served.
    pub(crate) fn stream_names(&self) -> Vec<String> {
        self.lock().state.stream_names()
    }

    /// DESCRIBE.
    pub(crate) fn describe(&self) -> Description {
        let mut d = self.lock().state.describe(self.started.elapsed());
        d.features = self.features();
        d
    }

    /// Starts a pulled edge (CONNECT). Returns the local stream name.
    pub(crate) fn start_edge(self: &Arc<Self>, cfg: EdgeConfig, origin: EdgeOrigin) -> Result<String, StateError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let local = {
            let mut inner = self.lock();
            let local = inner.state.add_edge(cfg.clone(), origin)?;
            inner.edge_stops.insert(local.clone(), stop_tx);
            local
        };
        self.changed();
        let shared = self.clone();
        let span = info_span!("edge", local = %local, upstream = %cfg.upstream);
        tokio::spawn(edge::run(shared, cfg, stop_rx).instrument(span));
        Ok(local)
    }

    /// Stops a pulled edge (DISCONNECT).
    pub(crate) fn stop_edge(&self, local: &str) -> Result<(), StateError> {
        let stop = {
            let mut inner = self.lock();
            inner.state.remove_edge(local)?;
            inner.edge_stops.remove(local)
        };
        if let Some(s) = stop {
            let _ = s.send(true);
        }
        self.changed();
        Ok(())
    }

    /// Stops the edges a gateway pulls for other sites that nothing here
    /// has taken for `limits.gateway_edge_idle`.
    pub(crate) fn reap_gateway_edges(&self) {
        let idle = self.config.limits.gateway_edge_idle;
        let gone = self.lock().state.idle_gateway_edges(Instant::now(), idle);
        for local in gone {
            info!(stream = %local, after = ?idle, "gateway: nobody takes this stream any more; edge stopped");
            let _ = self.stop_edge(&local);
        }
    }

    /// Whether a pulled edge of that local name exists (its task keeps
    /// running while it does).
    pub(crate) fn has_edge(&self, local: &str) -> bool {
        self.lock().state.edge(local).is_some()
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

fn send_event(events: &Option<Arc<WriterQueue>>, channel: u16, peer: &str, stream: &str, event: StreamEvent) {
    if let Some(q) = events {
        let msg = Message::StreamEvent { channel, event };
        match Item::msg(&msg).map(|i| q.try_push(i)) {
            Ok(Ok(())) | Ok(Err(QueueError::Closed)) => {}
            Ok(Err(QueueError::Full)) => {
                debug!(peer, stream, "stream event dropped: the connection's queue is full")
            }
            Err(e) => warn!(peer, stream, error = %e, "stream event does not encode"),
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

/// The process's soft limit on open descriptors, if it can be read.
fn descriptor_limit() -> Option<usize> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given and reads nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) };
    (rc == 0 && l.rlim_cur != libc::RLIM_INFINITY).then(|| usize::try_from(l.rlim_cur).unwrap_or(usize::MAX))
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
        let identity = Identity {
            name: config.name.clone(),
            site_id: config.site_id,
            function_flags: config.function_flags(),
            features: Features(Features::OPAQUE.0),
            tcp_port: local_addr.port(),
            pid: std::process::id(),
            hostname: hostname(),
            accept_formats: config.accept_formats.clone(),
        };
        // The device families this node answers commands about.
        let v4l2 = Arc::new(crate::sources::v4l2::V4l2Registry::default());
        let display = config
            .sources
            .iter()
            .find_map(|s| s.downcast_ref::<crate::X11SourceConfig>())
            .and_then(|x| x.display.clone());
        let devices = Devices::new(vec![
            Arc::new(crate::sources::v4l2::V4l2Family::new(v4l2.clone())),
            Arc::new(crate::sources::x11::MonitorsFamily::new(display)),
        ]);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                state: NodeState::new(config.relay, config.limits.clone(), identity),
                owners: HashMap::new(),
                edge_stops: HashMap::new(),
            }),
            started: Instant::now(),
            local_addr,
            shutdown,
            connections: AtomicUsize::new(0),
            caps: crate::config::connection_caps(&config.limits, config.opaque_ports.len(), descriptor_limit()),
            last_refusal_log: AtomicU64::new(0),
            room: (Mutex::new(0), std::sync::Condvar::new()),
            room_waiters: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            discovery: std::sync::OnceLock::new(),
            v4l2,
            devices,
            input: Arc::default(),
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
            let host = crate::api::SourceHost {
                shared: shared.clone(),
                stop: stop_sources.clone(),
            };
            threads.push(src.spec().start(host)?);
        }
        for e in shared.config.edges.clone() {
            shared
                .start_edge(e, EdgeOrigin::Config)
                .map_err(|e| NetError::Refused(e.to_string()))?;
        }
        let mut tasks = Vec::new();
        let mut sinks = Vec::new();
        for s in shared.config.sinks.clone() {
            let host = crate::api::SinkHost {
                shared: shared.clone(),
                stream: s.stream.clone(),
                params: s.params,
                label: s.kind.label(),
            };
            sinks.push(tokio::spawn(s.kind.0.run(host)));
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
        if shared.discovery.get().is_some_and(DiscoveryHandle::is_gateway) {
            let s = shared.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    s.reap_gateway_edges();
                }
            }));
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

    /// The node's shared state (the fuzz harness drives a session on it).
    #[cfg(feature = "fuzz-api")]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
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
        self.shared
            .start_edge(edge, EdgeOrigin::Connect)
            .map_err(|e| NetError::Refused(e.to_string()))
    }

    /// Stops a pulled edge, as DISCONNECT does.
    pub fn disconnect(&self, local_name: &str) -> Result<(), NetError> {
        self.shared
            .stop_edge(local_name)
            .map_err(|e| NetError::Refused(e.to_string()))
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
        let names = self.shared.stream_names();
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
        crate::sinks::wait_all(std::mem::take(&mut self.sinks)).await;
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
