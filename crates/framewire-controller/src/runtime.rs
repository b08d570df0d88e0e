//! The driver: one task owns the [`Core`], one task per node keeps its
//! control connection, and previews run on their own tasks.
//!
//! The main task `select!`s over events from the connection tasks (a
//! report, a lost connection, the result of a request), commands from
//! handles, discovery events and a one-second tick; after each it asks the
//! core for the graph (published on a `watch` when it changed) and for the
//! reconciler's actions (sent through the node's connection task).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use framewire_discovery::Event as DiscoveryEvent;
use framewire_net::{Client, ClientIdentity, NetError};
use framewire_proto::control::{Name, StatusReport, WatchStatus};
use framewire_proto::{Command, FunctionFlags, Message, Request, Response};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::core::{Action, Core, Forget, edge_id, local_name};
use crate::handle::{ControllerError, ControllerHandle, Inner};
use crate::model::{CurrentGraph, WantedEdge, WantedGraph};
use crate::store;

/// First delay before redialling a node.
pub const RECONNECT_FIRST: Duration = Duration::from_millis(100);
/// Longest delay between dials.
pub const RECONNECT_MAX: Duration = Duration::from_secs(2);
/// The default state directory (relative to the working directory).
pub const DEFAULT_STATE_DIR: &str = "framewire-state";

/// How a controller starts.
#[derive(Debug)]
pub struct ControllerConfig {
    /// Name presented in HELLO (`namespace:instance`).
    pub name: String,
    /// Nodes to connect to whether or not discovery finds them (`host:port`).
    pub nodes: Vec<String>,
    /// Where the wanted graph is kept (`wanted.toml` inside).
    pub state_dir: PathBuf,
    /// Discovery events (from the node's discovery driver), if any: every
    /// peer that appears is connected to.
    pub discovery: Option<broadcast::Receiver<(usize, DiscoveryEvent)>>,
    /// Status heartbeat period asked of the nodes.
    pub status_interval: Duration,
    /// Timeout for requests to nodes.
    pub request_timeout: Duration,
    /// Deployment key to authenticate to the nodes with (none: no auth).
    pub key: Option<framewire_net::DeploymentKey>,
    /// TLS to dial the nodes with (none: plain TCP).
    pub tls: Option<Arc<framewire_net::rustls::ClientConfig>>,
    /// When an edge's drops raise an alert.
    pub alerts: crate::core::AlertConfig,
}

impl ControllerConfig {
    /// A controller called `name` keeping its state in `state_dir`.
    pub fn new(name: &str, state_dir: PathBuf) -> ControllerConfig {
        ControllerConfig {
            name: name.to_owned(),
            nodes: Vec::new(),
            state_dir,
            discovery: None,
            status_interval: Duration::from_secs(1),
            request_timeout: framewire_net::DEFAULT_TIMEOUT,
            key: None,
            tls: None,
            alerts: crate::core::AlertConfig::default(),
        }
    }

    /// The wanted graph's path.
    pub fn wanted_path(&self) -> PathBuf {
        self.state_dir.join(store::WANTED_FILE)
    }
}

/// Commands from handles to the main task.
pub(crate) enum Cmd {
    Wanted(oneshot::Sender<WantedGraph>),
    /// Apply, if the stored graph is at that version (when given).
    Apply(
        WantedGraph,
        Option<String>,
        oneshot::Sender<Result<(), ControllerError>>,
    ),
    Forget(String, oneshot::Sender<Result<(), ControllerError>>),
    AddEdge(WantedEdge, oneshot::Sender<Result<String, ControllerError>>),
    RemoveEdge(String, oneshot::Sender<Result<(), ControllerError>>),
    Request(String, Request, oneshot::Sender<Result<Response, ControllerError>>),
    /// Where a node is, and the stream's existence, for a preview.
    Locate(String, String, oneshot::Sender<Result<String, ControllerError>>),
}

/// What connection tasks tell the main task.
enum Event {
    /// Connected; whether the node has V4L2 devices.
    Up(String, bool),
    Report(String, Box<StatusReport>),
    Down(String, String),
    ActionDone(Action, Result<(), String>),
}

/// Requests a connection task forwards to its node.
struct ConnReq(Request, oneshot::Sender<Result<Response, ControllerError>>);

/// Starts a controller. Must be called inside a tokio runtime. Fails if
/// the stored wanted graph cannot be read.
pub async fn start(config: ControllerConfig) -> Result<ControllerHandle, ControllerError> {
    let path = config.wanted_path();
    let wanted = store::load(&path).map_err(ControllerError::Other)?;
    info!(path = %path.display(), edges = wanted.edges.len(), "controller: wanted graph loaded");
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (graph_tx, graph_rx) = watch::channel(Arc::new(CurrentGraph::default()));
    let (ev_tx, ev_rx) = mpsc::channel(256);
    let mut core = Core::new(wanted);
    core.alerts = config.alerts;
    let mut driver = Driver {
        core,
        path,
        graph: graph_tx,
        conns: HashMap::new(),
        events: ev_tx,
        identity: ClientIdentity {
            function_flags: FunctionFlags::CONTROLLER,
            ..ClientIdentity::tool(&config.name)
                .with_key(config.key.clone())
                .with_tls(config.tls.clone())
        },
        interval: config.status_interval,
        timeout: config.request_timeout,
        version: 0,
        published_at: None,
        publish_due: false,
    };
    for n in &config.nodes {
        driver.dial(n);
    }
    let discovery = config.discovery;
    tokio::spawn(
        driver
            .run(cmd_rx, ev_rx, discovery)
            .instrument(info_span!("controller")),
    );
    Ok(ControllerHandle {
        inner: Arc::new(Inner {
            cmd: cmd_tx,
            graph: graph_rx,
            identity: ClientIdentity::tool(&format!("{}:preview", config.name))
                .with_key(config.key.clone())
                .with_tls(config.tls.clone()),
            timeout: config.request_timeout,
        }),
    })
}

struct Driver {
    core: Core,
    path: PathBuf,
    graph: watch::Sender<Arc<CurrentGraph>>,
    /// Connection task per dialled address.
    conns: HashMap<String, mpsc::Sender<ConnReq>>,
    events: mpsc::Sender<Event>,
    identity: ClientIdentity,
    interval: Duration,
    timeout: Duration,
    version: u64,
    /// When the graph was last rebuilt to be published.
    published_at: Option<tokio::time::Instant>,
    /// Something happened since, to be published once [`PUBLISH_EVERY`] has passed.
    publish_due: bool,
}

/// The graph is rebuilt and published at most this often: a change after
/// a quiet spell goes out at once, a stream of them (hundreds of nodes
/// each reporting every second) as one graph per period.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_millis(200);

impl Driver {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        mut events: mpsc::Receiver<Event>,
        mut discovery: Option<broadcast::Receiver<(usize, DiscoveryEvent)>>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let publish_at = self.published_at.map(|t| t + PUBLISH_EVERY);
            let publish_later = async {
                match publish_at {
                    Some(t) if self.publish_due => tokio::time::sleep_until(t).await,
                    _ => std::future::pending().await,
                }
            };
            let disc = async {
                match discovery.as_mut() {
                    Some(d) => d.recv().await,
                    None => std::future::pending().await,
                }
            };
            // A person's command shows at once; reports wait their turn.
            let mut asked = false;
            tokio::select! {
                c = cmds.recv() => match c {
                    Some(c) => {
                        self.command(c);
                        asked = true;
                    }
                    None => {
                        debug!("every handle dropped: controller stops");
                        return;
                    }
                },
                Some(e) = events.recv() => self.event(e),
                d = disc => match d {
                    Ok((_, DiscoveryEvent::Appeared(p) | DiscoveryEvent::Changed(p))) => {
                        // Another site's node: through the gateway that lists it.
                        if p.site_id == 0 {
                            self.dial(&p.addr.to_string());
                        } else {
                            self.dial(&crate::core::tunnel_addr(p.site_id, &p.name, &p.addr.to_string()));
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => warn!(n, "controller missed discovery events"),
                    Err(broadcast::error::RecvError::Closed) => discovery = None,
                },
                _ = tick.tick() => {}
                () = publish_later => {}
            }
            self.reconcile();
            self.publish_when_due(asked);
        }
    }

    /// Publishes now (`now_anyway` or when [`PUBLISH_EVERY`] has passed
    /// since the last time), or marks the graph due.
    fn publish_when_due(&mut self, now_anyway: bool) {
        let now = tokio::time::Instant::now();
        if !now_anyway && self.published_at.is_some_and(|t| now < t + PUBLISH_EVERY) {
            self.publish_due = true;
            return;
        }
        self.published_at = Some(now);
        self.publish_due = false;
        self.publish();
    }

    /// Starts the connection task for `addr` unless one runs.
    fn dial(&mut self, addr: &str) {
        if self.conns.keys().any(|a| crate::core::same_addr(a, addr)) {
            return;
        }
        let (tx, rx) = mpsc::channel(64);
        self.conns.insert(addr.to_owned(), tx);
        let task = conn_task(
            addr.to_owned(),
            self.identity.clone(),
            self.interval,
            self.timeout,
            rx,
            self.events.clone(),
        );
        tokio::spawn(task.instrument(info_span!("node", addr = %addr)));
    }

    fn conn_for(&self, node: &str) -> Result<mpsc::Sender<ConnReq>, ControllerError> {
        let rec = self
            .core
            .nodes
            .get(node)
            .ok_or_else(|| ControllerError::UnknownNode(node.to_owned()))?;
        if !rec.online {
            return Err(ControllerError::Offline(node.to_owned()));
        }
        self.conns
            .iter()
            .find(|(a, _)| crate::core::same_addr(a, &rec.addr))
            .map(|(_, tx)| tx.clone())
            .ok_or_else(|| ControllerError::Offline(node.to_owned()))
    }

    fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Wanted(tx) => {
                let _ = tx.send(self.core.wanted.clone());
            }
            Cmd::Apply(w, if_match, tx) => {
                let current = self.core.wanted.version();
                let r = match if_match {
                    Some(expected) if expected != current => Err(ControllerError::Stale { expected, current }),
                    _ => self.apply(w),
                };
                let _ = tx.send(r);
            }
            Cmd::Forget(node, tx) => {
                let r = match self.core.forget(&node) {
                    Forget::Unknown => Err(ControllerError::UnknownNode(node)),
                    Forget::Online => Err(ControllerError::Online(node)),
                    Forget::Forgotten(addr) => {
                        // Dropping its request channel ends its connection task.
                        self.conns.retain(|a, _| !crate::core::same_addr(a, &addr));
                        info!(node = %node, addr = %addr, "offline node forgotten");
                        Ok(())
                    }
                };
                let _ = tx.send(r);
            }
            Cmd::AddEdge(e, tx) => {
                let id = edge_id(&e.to, local_name(&e));
                if self
                    .core
                    .wanted
                    .edges
                    .iter()
                    .any(|w| edge_id(&w.to, local_name(w)) == id)
                {
                    let _ = tx.send(Err(ControllerError::Refused(vec![crate::model::Refusal {
                        index: self.core.wanted.edges.len(),
                        edge: id.clone(),
                        reason: format!("the wanted graph already has an edge {id}; remove it first"),
                    }])));
                    return;
                }
                let mut w = self.core.wanted.clone();
                w.edges.push(e);
                let _ = tx.send(self.apply(w).map(|()| id));
            }
            Cmd::RemoveEdge(id, tx) => {
                let mut w = self.core.wanted.clone();
                let before = w.edges.len();
                w.edges.retain(|e| edge_id(&e.to, local_name(e)) != id);
                let r = if w.edges.len() == before {
                    Err(ControllerError::UnknownEdge(id))
                } else {
                    self.apply(w)
                };
                let _ = tx.send(r);
            }
            Cmd::Request(node, req, tx) => match self.conn_for(&node) {
                Ok(conn) => {
                    tokio::spawn(async move {
                        if let Err(mpsc::error::SendError(ConnReq(_, tx))) = conn.send(ConnReq(req, tx)).await {
                            let _ = tx.send(Err(ControllerError::Offline(node)));
                        }
                    });
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            },
            Cmd::Locate(node, stream, tx) => {
                let r = match self.core.nodes.get(&node) {
                    None => Err(ControllerError::UnknownNode(node)),
                    Some(rec) if !rec.online => Err(ControllerError::Offline(node)),
                    Some(rec) => {
                        // `BASE~FORMAT` is there when BASE is: the node
                        // starts its transcoder on the subscription.
                        let base = framewire_net::parse_derived(&stream).map_or(stream.as_str(), |(b, _)| b);
                        let known = rec
                            .report
                            .as_ref()
                            .is_some_and(|r| r.streams.iter().any(|s| s.open.name == stream || s.open.name == base));
                        if known {
                            Ok(rec.addr.clone())
                        } else {
                            Err(ControllerError::UnknownStream(node, stream))
                        }
                    }
                };
                let _ = tx.send(r);
            }
        }
    }

    /// Staged apply: validate all, then persist, then activate.
    fn apply(&mut self, w: WantedGraph) -> Result<(), ControllerError> {
        self.core.validate(&w).map_err(ControllerError::Refused)?;
        store::save(&self.path, &w).map_err(ControllerError::Other)?;
        info!(edges = w.edges.len(), "wanted graph applied");
        self.core.set_wanted(w);
        Ok(())
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Report(addr, r) => {
                let now = Instant::now();
                let name = self.core.on_report(&addr, *r, now);
                debug!(node = %name, "status report");
                for what in self.core.apply_policies(now) {
                    info!(edge = %what, "alert policy applied");
                }
            }
            Event::Down(addr, err) => self.core.on_down(&addr, &err),
            Event::Up(addr, v4l2) => self.core.on_up(&addr, v4l2),
            Event::ActionDone(a, r) => {
                if let Err(e) = &r {
                    warn!(?a, error = %e, "reconciler request refused");
                }
                self.core.on_action_result(&a, r);
            }
        }
    }

    fn reconcile(&mut self) {
        for action in self.core.plan(Instant::now()) {
            let node = action.node().to_owned();
            let Ok(conn) = self.conn_for(&node) else { continue };
            let req = match &action {
                Action::Connect { connect, .. } => Request::Connect(connect.clone()),
                Action::Disconnect { local_name, .. } => Request::Disconnect(Name {
                    name: local_name.clone(),
                }),
                Action::Source { table, set, .. } => {
                    let t = framewire_proto::control::SourceTable {
                        table: toml::to_string(table).unwrap_or_default(),
                    };
                    if *set {
                        Request::SourceSet(t)
                    } else {
                        Request::SourceAdd(t)
                    }
                }
                Action::RemoveSource { name, .. } => Request::SourceRemove(Name { name: name.clone() }),
            };
            info!(node = %node, request = %req.command(), "reconciler");
            let events = self.events.clone();
            tokio::spawn(async move {
                let (tx, rx) = oneshot::channel();
                let r = match conn.send(ConnReq(req, tx)).await {
                    Ok(()) => match rx.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("connection closed".into()),
                    },
                    Err(_) => Err("connection closed".into()),
                };
                let _ = events.send(Event::ActionDone(action, r)).await;
            });
        }
    }

    fn publish(&mut self) {
        let mut g = self.core.graph();
        let cur = self.graph.borrow().clone();
        g.version = cur.version;
        g.updated_ms = cur.updated_ms;
        if g != *cur {
            self.version += 1;
            g.version = self.version;
            g.updated_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            self.graph.send_replace(Arc::new(g));
        }
    }
}

/// Keeps one node's control connection: dial, HELLO, WATCH_STATUS, then
/// forward reports and serve requests; on loss, report it and redial with
/// backoff. Ends when the controller stops.
async fn conn_task(
    addr: String,
    who: ClientIdentity,
    interval: Duration,
    timeout: Duration,
    mut reqs: mpsc::Receiver<ConnReq>,
    events: mpsc::Sender<Event>,
) {
    let mut delay = RECONNECT_FIRST;
    let mut was_up = false;
    loop {
        let r = session(&addr, &who, interval, timeout, &mut reqs, &events, &mut was_up).await;
        let err = match r {
            Ok(()) => return, // the controller stopped
            Err(e) => e,
        };
        if was_up {
            info!(error = %err, "node connection lost; redialling");
            delay = RECONNECT_FIRST;
            was_up = false;
        } else {
            debug!(error = %err, "node not reachable");
        }
        if events.send(Event::Down(addr.clone(), err)).await.is_err() {
            return;
        }
        // Requests meanwhile fail at once rather than wait for the node.
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                r = reqs.recv() => match r {
                    Some(ConnReq(_, tx)) => {
                        let _ = tx.send(Err(ControllerError::Other(format!("{addr} is not connected"))));
                    }
                    None => return,
                },
            }
        }
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

/// One connection. `Ok(())` only when the controller stops.
async fn session(
    addr: &str,
    who: &ClientIdentity,
    interval: Duration,
    timeout: Duration,
    reqs: &mut mpsc::Receiver<ConnReq>,
    events: &mpsc::Sender<Event>,
    was_up: &mut bool,
) -> Result<(), String> {
    let mut client = Client::connect(addr, who, timeout).await.map_err(|e| e.to_string())?;
    let interval_ms = u32::try_from(interval.as_millis()).unwrap_or(u32::MAX);
    client
        .request(Request::WatchStatus(WatchStatus { interval_ms }))
        .await
        .map_err(|e| e.to_string())?;
    *was_up = true;
    info!(node = %client.peer().name, "node connected");
    // Through a gateway: the node's site as the gateway sees it, not as
    // the node calls its own.
    let tunnel_site = addr.contains('@').then(|| client.peer().site_id);
    // Asked once per connection: devices come and go with the node.
    let v4l2 = matches!(
        client.request(Request::V4l2ListDevices).await,
        Ok(Response::V4l2ListDevices(d)) if !d.is_empty()
    );
    if events.send(Event::Up(addr.to_owned(), v4l2)).await.is_err() {
        return Ok(());
    }
    let silence = interval * 3 + Duration::from_secs(2);
    loop {
        tokio::select! {
            m = tokio::time::timeout(silence, client.next_message()) => {
                let m = m.map_err(|_| format!("no status report for {silence:?}"))?;
                match m.map_err(|e| e.to_string())? {
                    None => return Err("the node closed the connection".into()),
                    Some(Message::ControlRequest(req)) if req.command == Command::StatusReport => {
                        match Request::decode(&req) {
                            Ok(Request::StatusReport(mut r)) => {
                                if let Some(site) = tunnel_site {
                                    r.description.site_id = site;
                                }
                                if events.send(Event::Report(addr.to_owned(), r)).await.is_err() {
                                    return Ok(());
                                }
                            }
                            Ok(_) | Err(_) => warn!("a status report did not parse; ignored"),
                        }
                    }
                    Some(_) => {}
                }
            }
            r = reqs.recv() => match r {
                None => return Ok(()),
                Some(ConnReq(req, tx)) => {
                    let r = client.request(req).await;
                    let closed = matches!(r, Err(NetError::Closed(_) | NetError::Io(_) | NetError::Timeout(..)));
                    let _ = tx.send(r.map_err(|e| match e {
                        NetError::Remote { message, .. } => ControllerError::Node { node: client.peer().name.clone(), message },
                        other => ControllerError::Other(other.to_string()),
                    }));
                    if closed {
                        return Err("the connection failed during a request".into());
                    }
                }
            },
        }
    }
}

/// Used by `ControllerHandle::preview`.
pub(crate) async fn locate(inner: &Inner, node: &str, stream: &str) -> Result<String, ControllerError> {
    let (tx, rx) = oneshot::channel();
    inner
        .cmd
        .send(Cmd::Locate(node.to_owned(), stream.to_owned(), tx))
        .await
        .map_err(|_| ControllerError::Other("the controller stopped".into()))?;
    rx.await
        .map_err(|_| ControllerError::Other("the controller stopped".into()))?
}
