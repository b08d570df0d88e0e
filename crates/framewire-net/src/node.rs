//! A node, composed: the root that builds the core, the services its
//! connections reach, and every task, and hands each what it needs. Its
//! parts are in layers, each depending only on those below it:
//!
//! - [`crate::config`] and [`crate::api`] (the extension points),
//! - [`crate::state`] (the node as plain data, sans IO),
//! - `runtime::core` (the state behind its lock, the wakers, the signals),
//! - `transport` (sockets: connections, writers, edges, opaque ports,
//!   shared memory, discovery) and `runtime` (commands, edges, gateway,
//!   status),
//! - this module.
//!
//! docs/architecture.md draws them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use framewire_proto::control::{EdgeOrigin, Stats, StatusReport};
use framewire_proto::{EventReason, Features};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::api::{Extensions, SinkHost};
use crate::auth::DeploymentKey;
use crate::config::{EdgeConfig, NodeConfig};
use crate::error::NetError;
use crate::runtime::commands::Services;
use crate::runtime::core::{NodeCore, closed};
use crate::runtime::devices::Devices;
use crate::runtime::edges::{EdgePort, Edges};
use crate::runtime::gateway::Gateway;
use crate::runtime::input::InputRegistry;
use crate::runtime::sources::Sources;
use crate::sources::v4l2::{V4l2Family, V4l2Registry};
use crate::sources::x11::MonitorsFamily;
use crate::state::{Identity, NodeState};
use crate::transport::conn::{self, Admission};
use crate::transport::discovery::DiscoveryHandle;
use crate::transport::opaque;
use crate::transport::shm_edge::ShmServer;

/// A running node.
#[derive(Debug)]
pub struct Node {
    core: Arc<NodeCore>,
    services: Arc<Services>,
    admission: Arc<Admission>,
    discovery: Option<Arc<DiscoveryHandle>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Local sinks: awaited on shutdown (an archive closes its segment).
    sinks: Vec<tokio::task::JoinHandle<()>>,
    metrics_addr: Option<SocketAddr>,
    rtsp_addr: Option<SocketAddr>,
    /// What roles beside the node add to `/metrics`.
    metrics_extras: crate::metrics::Extras,
}

impl Node {
    /// Binds the listener, starts sources, edges, sinks and opaque ports.
    /// Must be called inside a tokio runtime. On an error, what started
    /// is stopped again.
    pub async fn start(config: NodeConfig) -> Result<Node, NetError> {
        if config.key.is_some()
            && let Some(p) = config.opaque_ports.iter().find(|p| !p.allow_unauthenticated)
        {
            return Err(NetError::Config(crate::config::ConfigError::new(format!(
                "opaque port {} (stream `{}`) cannot authenticate, and this node has a deployment key: \
                 set allow_unauthenticated = true on it (or `,allow-unauthenticated=true` on --opaque) to serve it anyway",
                p.listen, p.stream
            ))));
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| NetError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr()?;
        let (core, v4l2) = core(config, local_addr);
        let core = Arc::new(core);
        let config = &core.config;
        let shm = config
            .shm_socket
            .as_ref()
            .and_then(|path| match ShmServer::start(&core, path) {
                Ok(s) => {
                    core.offer(Features::SHM);
                    core.count_skipped(s.clone());
                    Some(s)
                }
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "shared-memory subscriptions off: cannot bind");
                    None
                }
            });
        let discovery = match &config.discovery {
            None => None,
            Some(d) => {
                let (flags, port) = (config.function_flags(), local_addr.port());
                let local =
                    framewire_discovery::announcement(&config.name, config.site_id, port, flags, d.engine.interval);
                let mut d = d.clone();
                d.key = config.key.clone();
                d.tls = config.tls.as_ref().and_then(|t| t.for_dial(false));
                match DiscoveryHandle::start(&d, Some(local)) {
                    Ok(h) => Some(Arc::new(h)),
                    // A gateway without its legs is useless: refuse to start.
                    Err(e) if d.is_gateway() => return Err(e),
                    // An ordinary node still serves streams without discovery.
                    Err(e) => {
                        warn!(error = %e, "discovery is off: cannot open its socket");
                        None
                    }
                }
            }
        };
        let edges = Arc::new(Edges::new(core.clone()));
        if let Some(port) = crate::api::NodePort::extension(&*core, std::any::TypeId::of::<EdgePort>())
            .and_then(|p| p.downcast::<EdgePort>().ok())
        {
            port.bind(&edges);
        }
        // The archive sinks' switches, shared by the sinks and ARCHIVE_SET.
        let archives =
            crate::api::NodePort::extension(&*core, std::any::TypeId::of::<crate::sinks::archive_list::Archives>())
                .and_then(|a| a.downcast::<crate::sinks::archive_list::Archives>().ok())
                .unwrap_or_default();
        let gateway = discovery.as_ref().filter(|d| d.is_gateway()).map(|d| Gateway {
            core: core.clone(),
            edges: edges.clone(),
            discovery: d.clone(),
        });
        let services = Arc::new(Services {
            core: core.clone(),
            edges,
            devices: devices(config, v4l2, archives),
            shm,
            gateway,
            sources: Arc::new(Sources::new(core.clone())),
            links: crate::runtime::links::Links::new(&config.links)?,
        });
        let caps = crate::config::connection_caps(&config.limits, config.opaque_ports.len(), descriptor_limit());
        info!(name = %config.name, addr = %local_addr, "node listening");
        // From here the node owns what starts: an error drops it, which stops it all.
        let mut node = Node {
            core: core.clone(),
            services: services.clone(),
            admission: Admission::new(caps.0),
            discovery,
            tasks: Vec::new(),
            sinks: Vec::new(),
            metrics_addr: None,
            rtsp_addr: None,
            metrics_extras: crate::metrics::Extras::default(),
        };
        for src in &config.sources {
            services.sources.start_configured(src)?;
        }
        for e in &config.edges {
            services.edges.start(e.clone(), EdgeOrigin::Config)?;
        }
        for s in &config.sinks {
            let host = SinkHost {
                node: core.clone(),
                stream: s.stream.clone(),
                params: s.params,
                label: s.kind.label(),
            };
            node.sinks.push(tokio::spawn(s.kind.0.run(host)));
        }
        for p in &config.opaque_ports {
            node.tasks.push(opaque::start(core.clone(), p.clone(), caps.1).await?);
        }
        let accept = conn::accept_loop(services.clone(), node.admission.clone(), listener);
        node.tasks.push(tokio::spawn(accept));
        if let Some(addr) = config.metrics {
            let sample = node.sampler();
            let extras = node.metrics_extras.clone();
            let (local, task) = crate::metrics::start(addr, sample, extras, core.shutdown_signal()).await?;
            node.metrics_addr = Some(local);
            node.tasks.push(task);
        }
        if let Some(addr) = config.rtsp {
            let (local, task) = crate::servers::rtsp::start(core.clone(), addr).await?;
            node.rtsp_addr = Some(local);
            node.tasks.push(task);
        }
        if let Some(s) = services.shm.clone() {
            let mut stop = core.shutdown_signal();
            node.tasks.push(tokio::spawn(async move {
                let _ = stop.wait_for(|s| *s).await;
                s.shutdown();
            }));
        }
        if services.gateway.is_some() {
            let services = services.clone();
            node.tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    if let Some(g) = &services.gateway {
                        g.reap_idle();
                    }
                }
            }));
        }
        Ok(node)
    }

    /// What commands on this node reach (the fuzz harness drives a session on them).
    #[cfg(feature = "fuzz-api")]
    pub(crate) fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Reads the metrics from the node's parts.
    fn sampler(&self) -> crate::metrics::Sampler {
        let (core, admission, discovery) = (self.core.clone(), self.admission.clone(), self.discovery.clone());
        Arc::new(move || metrics_snapshot(&core, &admission, discovery.as_deref()))
    }

    fn sample(&self) -> crate::metrics::MetricsSnapshot {
        metrics_snapshot(&self.core, &self.admission, self.discovery.as_deref())
    }

    /// The deployment key this node authenticates with (none: no auth).
    pub fn key(&self) -> Option<&DeploymentKey> {
        self.core.config.key.as_ref()
    }

    /// The TLS the node dials its site's peers with (none: plain TCP).
    pub fn tls_client(&self) -> Option<std::sync::Arc<framewire_tls::rustls::ClientConfig>> {
        self.core.config.tls.as_ref().and_then(|t| t.for_dial(false))
    }

    /// Where `/metrics` is served (none: off).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where the RTSP server listens, if it runs (`--rtsp`).
    pub fn rtsp_addr(&self) -> Option<SocketAddr> {
        self.rtsp_addr
    }

    /// The node's metrics in the Prometheus text format, for a web server
    /// that mounts `/metrics` itself (see [`crate::metrics`]).
    pub fn metrics_text(&self) -> String {
        self.metrics_extras.render(&self.sample())
    }

    /// Adds a section to `/metrics`: Prometheus text a role beside the
    /// node renders when scraped (the controller's edges and alerts).
    pub fn add_metrics(&self, extra: crate::metrics::MetricsExtra) {
        self.metrics_extras.add(extra);
    }

    /// The node's core (tests drive a stream through it).
    #[cfg(test)]
    pub(crate) fn core(&self) -> &Arc<NodeCore> {
        &self.core
    }

    /// Where the node accepts connections.
    pub fn local_addr(&self) -> SocketAddr {
        self.core.local_addr
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.core.config.name
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        self.core.stats("")
    }

    /// Starts a pulled edge, as CONNECT does.
    pub fn connect(&self, edge: EdgeConfig) -> Result<String, NetError> {
        self.services
            .edges
            .start(edge, EdgeOrigin::Connect)
            .map_err(NetError::from)
    }

    /// Stops a pulled edge, as DISCONNECT does.
    pub fn disconnect(&self, local_name: &str) -> Result<(), NetError> {
        self.services.edges.stop(local_name).map_err(NetError::from)
    }

    /// The report a status watcher would get now.
    pub fn status_report(&self) -> StatusReport {
        self.core.status_report(0)
    }

    /// The discovery peer table with each row's leg (empty when discovery is off).
    pub async fn peers(&self) -> Vec<(usize, framewire_discovery::Peer)> {
        match &self.discovery {
            Some(d) => d.peers().await,
            None => Vec::new(),
        }
    }

    /// Discovery events from now on (none when discovery is off).
    pub fn discovery_events(&self) -> Option<tokio::sync::broadcast::Receiver<(usize, framewire_discovery::Event)>> {
        self.discovery.as_deref().map(DiscoveryHandle::subscribe)
    }

    /// A receiver that turns true when shutdown begins (SHUTDOWN command or
    /// [`Node::shutdown`]).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.core.shutdown_signal()
    }

    /// Shuts down gracefully: subscribers get *closed*, frames being
    /// written are finished (for at most the configured grace), sockets close.
    pub async fn shutdown(mut self) {
        self.services.sources.stop_all();
        // Queue *closed* for every subscriber before the connections learn
        // of the shutdown: a connection that sees the signal first removes
        // its outputs, and its subscriber would never be told why.
        for n in self.core.stream_names() {
            self.core
                .stream_event(&n, closed(EventReason::Shutdown, "node shutting down"));
        }
        self.core.begin_shutdown();
        if let Some(d) = &self.discovery {
            d.close().await; // goodbye: peers drop the node at once
        }
        let deadline = tokio::time::Instant::now() + self.core.config.shutdown_grace;
        self.admission.drained(deadline).await;
        crate::sinks::wait_all(std::mem::take(&mut self.sinks)).await;
        // Aborted, then awaited: when shutdown returns, every listener is closed.
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        let sources = self.services.sources.clone();
        let _ = tokio::task::spawn_blocking(move || sources.join_all()).await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.services.sources.stop_all();
        self.core.begin_shutdown();
        if let Some(s) = &self.services.shm {
            s.shutdown();
        }
        for t in self.tasks.iter().chain(&self.sinks) {
            t.abort();
        }
    }
}

/// The core of a node about to start: its state, and what its sources
/// and sinks may ask for (among it, the V4L2 devices they capture from).
pub(crate) fn core(config: NodeConfig, local_addr: SocketAddr) -> (NodeCore, Arc<V4l2Registry>) {
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
    let state = NodeState::new(config.relay, config.limits.clone(), identity);
    let input = Arc::new(InputRegistry::default());
    let mut extensions = Extensions::default();
    let v4l2 = Arc::new(V4l2Registry::new(config.state_dir.clone()));
    extensions.insert(v4l2.clone());
    extensions.insert(input.clone());
    extensions.insert(Arc::new(EdgePort::default()));
    extensions.insert(Arc::new(crate::sinks::archive_list::Archives::from_sinks(
        &config.sinks,
    )));
    (NodeCore::new(config, state, local_addr, input, extensions), v4l2)
}

/// The device families this node answers commands about.
fn devices(
    config: &NodeConfig,
    v4l2: Arc<V4l2Registry>,
    archives: Arc<crate::sinks::archive_list::Archives>,
) -> Devices {
    let display = config
        .sources
        .iter()
        .find_map(|s| s.downcast_ref::<crate::X11SourceConfig>())
        .and_then(|x| x.display.clone());
    Devices::new(vec![
        Arc::new(V4l2Family::new(v4l2)),
        Arc::new(MonitorsFamily::new(display)),
        Arc::new(crate::sinks::archive_list::ArchivesFamily::new(archives)),
    ])
}

/// Everything `/metrics` shows, read now.
fn metrics_snapshot(
    core: &NodeCore,
    admission: &Admission,
    discovery: Option<&DiscoveryHandle>,
) -> crate::metrics::MetricsSnapshot {
    let stats = core.stats("");
    let edges = core
        .with_state(|st| st.edge_rows())
        .into_iter()
        .map(|e| crate::metrics::EdgeMetrics {
            stream: e.local,
            upstream: e.upstream,
            state: e.state,
            latency_seconds: e.latency_seconds,
            replayed: e.replayed,
        })
        .collect();
    crate::metrics::MetricsSnapshot {
        node: core.config.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        site_id: core.config.site_id,
        uptime_seconds: core.started.elapsed().as_secs_f64(),
        connections: admission.open() as u64,
        auth_refusals: admission.auth_refusals(),
        busy_refusals: admission.busy_refusals(),
        auth_required: core.config.key.is_some(),
        stats,
        edges,
        process: crate::metrics::ProcessStats::read(),
        discovery: discovery.map(DiscoveryHandle::counters),
    }
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
