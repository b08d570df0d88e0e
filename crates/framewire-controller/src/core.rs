//! The controller's state machine, without I/O: what the nodes reported,
//! the wanted graph, the current graph assembled from both, validation of
//! a new wanted graph, and the reconciler's next actions.
//!
//! The driver (`runtime.rs`) feeds it node reports, connection losses and
//! the results of the requests it sent, always with the time as an
//! argument; after each input it asks for the graph ([`Core::graph`]) and
//! the actions to take ([`Core::plan`]). Nothing here reads the clock or
//! touches a socket, so every rule is unit-tested.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use framewire_proto::control::{Connect, EdgeOrigin, EdgeStatus, StatusReport};
use framewire_proto::names::{self, NameError, NameKind};
use framewire_proto::{DeliveryMode, DropPolicy, Format, SubscribeParams, TransportMode};

use crate::model::{CurrentGraph, EdgeView, NodeView, OutputView, Refusal, StreamView, WantedEdge, WantedGraph};

/// How long a CONNECT or DISCONNECT the reconciler sent may go unconfirmed
/// by the node's reports before it is sent again.
pub const RETRY_AFTER: Duration = Duration::from_secs(3);

/// How deep a chain of wanted edges is followed to find a stream's format.
const MAX_CHAIN: usize = 64;

/// One node as the controller knows it.
#[derive(Debug, Clone)]
pub(crate) struct NodeRecord {
    /// `host:port` the controller dials.
    pub(crate) addr: String,
    /// Whether the control connection is up.
    pub(crate) online: bool,
    /// Last error talking to it.
    pub(crate) error: Option<String>,
    /// Its latest report (kept while offline).
    pub(crate) report: Option<StatusReport>,
    /// Whether it listed V4L2 devices when it connected.
    pub(crate) v4l2: bool,
    /// Per-output rates from the last two reports, keyed by
    /// `(stream, peer, channel)`.
    rates: HashMap<(String, String, u16), Rate>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Rate {
    frames_sent: u64,
    bytes_sent: u64,
    at: Option<Instant>,
    fps: f64,
    mbit_s: f64,
}

/// What the reconciler asks the driver to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Send CONNECT to `node` (at `addr`).
    Connect {
        /// Downstream node name.
        node: String,
        /// The request.
        connect: Connect,
    },
    /// Send DISCONNECT for `local_name` to `node`.
    Disconnect {
        /// Downstream node name.
        node: String,
        /// The local edge name.
        local_name: String,
    },
}

/// The controller's whole state.
#[derive(Debug, Default)]
pub(crate) struct Core {
    /// Known nodes by name.
    pub(crate) nodes: BTreeMap<String, NodeRecord>,
    /// The wanted graph as stored.
    pub(crate) wanted: WantedGraph,
    /// Edge ids with a CONNECT or DISCONNECT in flight, and when it was sent.
    pending: HashMap<String, Instant>,
    /// Edge ids with a DISCONNECT in flight, and when it was sent.
    unpending: HashMap<String, Instant>,
    /// Edges the controller made and no longer wants: `(node, local_name)`
    /// by edge id, until the node reports them gone.
    removing: BTreeMap<String, (String, String)>,
    /// Last error per wanted edge id (a refused CONNECT).
    edge_errors: HashMap<String, String>,
    /// V4L2 answers for addresses whose first report has not come yet.
    v4l2_at: HashMap<String, bool>,
}

/// `name`, or `site/name` for another site.
pub(crate) fn node_key(site_id: u16, name: &str) -> String {
    if site_id == 0 {
        name.to_owned()
    } else {
        format!("{site_id}/{name}")
    }
}

/// The id of an edge: `"{downstream}/{local_name}"`.
pub fn edge_id(downstream: &str, local_name: &str) -> String {
    format!("{downstream}/{local_name}")
}

/// The name a wanted edge is served under on its downstream.
pub(crate) fn local_name(e: &WantedEdge) -> &str {
    if e.local_name.is_empty() {
        &e.stream
    } else {
        &e.local_name
    }
}

/// A node as a wanted edge names it: `name`, or `SITE/name` for a node of
/// another site ([`node_key`]).
fn check_node_ref(node: &str) -> Result<(), NameError> {
    let name = match node.split_once('/') {
        Some((site, name)) if !site.is_empty() && site.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => node,
    };
    names::check(NameKind::Node, name)
}

/// The names of a wanted edge: names, never paths (docs/security.md).
pub(crate) fn check_names(e: &WantedEdge) -> Result<(), String> {
    let err = |which: &str, e: NameError| format!("{which}: {e}");
    check_node_ref(&e.from).map_err(|x| err("from", x))?;
    check_node_ref(&e.to).map_err(|x| err("to", x))?;
    names::check(NameKind::Stream, &e.stream).map_err(|x| err("stream", x))?;
    if !e.local_name.is_empty() {
        names::check(NameKind::LocalName, &e.local_name).map_err(|x| err("local_name", x))?;
    }
    Ok(())
}

fn edge_label(e: &WantedEdge) -> String {
    format!("{}/{} -> {}/{}", e.from, e.stream, e.to, local_name(e))
}

/// Parses the mode and drop policy strings of a wanted edge into the
/// parameters of its CONNECT.
pub(crate) fn params(e: &WantedEdge) -> Result<SubscribeParams, String> {
    let mode = DeliveryMode::from_label(&e.mode)
        .filter(|m| matches!(m, DeliveryMode::LowLatency | DeliveryMode::Completeness))
        .ok_or_else(|| format!("mode {:?} is not one of low-latency, completeness", e.mode))?;
    let drop_policy = DropPolicy::from_label(&e.drop_policy)
        .filter(|d| matches!(d, DropPolicy::DropOldest | DropPolicy::DropNewest))
        .ok_or_else(|| format!("drop_policy {:?} is not one of drop-oldest, drop-newest", e.drop_policy))?;
    Ok(SubscribeParams {
        mode,
        max_frames: e.max_frames,
        max_bytes: e.max_bytes,
        drop_policy,
        priority: e.priority,
        transport: TransportMode::Encapsulated,
    })
}

/// Whether two `host:port` strings name the same listener: equal strings,
/// equal socket addresses, or the same port with a loopback or `localhost`
/// host on both sides.
pub(crate) fn same_addr(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let parse = |s: &str| -> Option<(String, u16)> {
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Some((sa.ip().to_string(), sa.port()));
        }
        let (h, p) = s.rsplit_once(':')?;
        Some((h.to_owned(), p.parse().ok()?))
    };
    let (Some((ha, pa)), Some((hb, pb))) = (parse(a), parse(b)) else {
        return false;
    };
    let loopback = |h: &str| h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    pa == pb && (ha == hb || (loopback(&ha) && loopback(&hb)))
}

impl Core {
    /// A core holding `wanted`, knowing no node yet.
    pub(crate) fn new(wanted: WantedGraph) -> Core {
        Core {
            wanted,
            ..Core::default()
        }
    }

    /// The name of the node listening at `addr`, if known.
    pub(crate) fn name_at(&self, addr: &str) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(_, n)| same_addr(&n.addr, addr))
            .map(|(k, _)| k.as_str())
            .or_else(|| {
                // An edge may name the upstream by another address of the
                // same host: match the port a node reports it listens on.
                self.nodes
                    .iter()
                    .find(|(_, n)| {
                        n.report.as_ref().is_some_and(|r| {
                            let host = n.addr.rsplit_once(':').map_or("", |(h, _)| h);
                            same_addr(&format!("{host}:{}", r.description.tcp_port), addr)
                        })
                    })
                    .map(|(k, _)| k.as_str())
            })
    }

    /// A node's report arrived. Returns the node's name.
    pub(crate) fn on_report(&mut self, addr: &str, report: StatusReport, now: Instant) -> String {
        let name = node_key(report.description.site_id, &report.description.name);
        // Two live nodes claiming one name: the first keeps it, the other's
        // reports are ignored (and the clash shown) until the first is gone.
        if let Some(rec) = self.nodes.get_mut(&name)
            && rec.online
            && !same_addr(&rec.addr, addr)
        {
            // The same process reached by another address (two interfaces)
            // is no clash: its reports through this one are redundant.
            let same_process = rec.report.as_ref().is_some_and(|r| {
                let (a, b) = (&r.description, &report.description);
                (a.hostname.as_str(), a.pid, a.tcp_port) == (b.hostname.as_str(), b.pid, b.tcp_port)
            });
            if !same_process {
                rec.error = Some(format!(
                    "another node at {addr} reports the same name; its reports are ignored"
                ));
            }
            return name;
        }
        // The same listener may have been known under another name (a node
        // restarted with a new name): forget the old record's address.
        let stale: Vec<String> = self
            .nodes
            .iter()
            .filter(|(k, n)| **k != name && same_addr(&n.addr, addr) && n.online)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(n) = self.nodes.get_mut(&k) {
                n.online = false;
            }
        }
        let rec = self.nodes.entry(name.clone()).or_insert_with(|| NodeRecord {
            addr: addr.to_owned(),
            online: true,
            error: None,
            report: None,
            v4l2: self.v4l2_at.remove(addr).unwrap_or(false),
            rates: HashMap::new(),
        });
        rec.addr = addr.to_owned();
        rec.online = true;
        rec.error = None;
        let mut rates = HashMap::new();
        for o in &report.stats.outputs {
            let key = (o.stream.clone(), o.peer.clone(), o.channel);
            let mut r = rec.rates.get(&key).copied().unwrap_or_default();
            if let Some(at) = r.at {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                // Reports pushed on a change come a few ms after the last:
                // keep the previous figures rather than divide by ~0.
                if dt >= 0.2 {
                    let df = o.frames_sent.saturating_sub(r.frames_sent) as f64;
                    let db = o.bytes_sent.saturating_sub(r.bytes_sent) as f64;
                    r.fps = df / dt;
                    r.mbit_s = db * 8.0 / dt / 1e6;
                    r.frames_sent = o.frames_sent;
                    r.bytes_sent = o.bytes_sent;
                    r.at = Some(now);
                }
            } else {
                r.frames_sent = o.frames_sent;
                r.bytes_sent = o.bytes_sent;
                r.at = Some(now);
            }
            rates.insert(key, r);
        }
        rec.rates = rates;
        let edges: Vec<String> = report.edges.iter().map(|e| e.local_name.clone()).collect();
        rec.report = Some(report);
        // Confirmations: a pending CONNECT whose edge now shows, a pending
        // DISCONNECT whose edge is gone.
        let confirmed: Vec<String> = self.nodes[&name]
            .report
            .iter()
            .flat_map(|r| r.edges.iter())
            .filter(|e| {
                let id = edge_id(&name, &e.local_name);
                self.wanted_by_id(&id).is_some_and(|w| self.matches(w, e))
            })
            .map(|e| edge_id(&name, &e.local_name))
            .collect();
        for id in confirmed {
            self.pending.remove(&id);
            self.edge_errors.remove(&id);
        }
        self.removing.retain(|id, (node, local)| {
            let gone = *node == name && !edges.contains(local);
            if gone {
                self.pending.remove(id);
            }
            !gone
        });
        let prefix = format!("{name}/");
        self.unpending.retain(|id, _| {
            id.strip_prefix(&prefix)
                .is_none_or(|local| edges.iter().any(|e| e == local))
        });
        name
    }

    /// The control connection to the node at `addr` is up; `v4l2`: it
    /// listed V4L2 devices.
    pub(crate) fn on_up(&mut self, addr: &str, v4l2: bool) {
        let mut found = false;
        for n in self.nodes.values_mut().filter(|n| same_addr(&n.addr, addr)) {
            n.v4l2 = v4l2;
            found = true;
        }
        if !found {
            self.v4l2_at.insert(addr.to_owned(), v4l2);
        }
    }

    /// The control connection to the node at `addr` dropped.
    pub(crate) fn on_down(&mut self, addr: &str, error: &str) {
        for n in self.nodes.values_mut().filter(|n| same_addr(&n.addr, addr)) {
            n.online = false;
            n.error = Some(error.to_owned());
            n.rates.clear();
        }
        // Whatever was in flight to it is lost; resend when it is back.
        let names: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| same_addr(&n.addr, addr))
            .map(|(k, _)| k.clone())
            .collect();
        let theirs = |id: &String| names.iter().any(|n| id.starts_with(&format!("{n}/")));
        self.pending.retain(|id, _| !theirs(id));
        self.unpending.retain(|id, _| !theirs(id));
    }

    /// The result of a CONNECT or DISCONNECT the reconciler sent.
    pub(crate) fn on_action_result(&mut self, action: &Action, result: Result<(), String>) {
        match (action, result) {
            (_, Ok(())) => {}
            (Action::Connect { node, connect }, Err(e)) => {
                let local = if connect.local_name.is_empty() {
                    &connect.stream
                } else {
                    &connect.local_name
                };
                let id = edge_id(node, local);
                self.edge_errors.insert(id, e.clone());
                if let Some(n) = self.nodes.get_mut(node) {
                    n.error = Some(format!("CONNECT {local}: {e}"));
                }
            }
            (Action::Disconnect { node, local_name }, Err(e)) => {
                // "No edge" means it is already gone.
                if e.contains("no edge") {
                    self.removing.retain(|_, (n, l)| !(n == node && l == local_name));
                    self.unpending.remove(&edge_id(node, local_name));
                }
                if let Some(n) = self.nodes.get_mut(node) {
                    n.error = Some(format!("DISCONNECT {local_name}: {e}"));
                }
            }
        }
    }

    fn wanted_by_id(&self, id: &str) -> Option<&WantedEdge> {
        self.wanted.edges.iter().find(|w| edge_id(&w.to, local_name(w)) == id)
    }

    /// Whether a reported edge is what the wanted edge asks for.
    fn matches(&self, w: &WantedEdge, e: &EdgeStatus) -> bool {
        let Some(up) = self.nodes.get(&w.from) else {
            return false;
        };
        e.stream == w.stream
            && params(w).is_ok_and(|p| p == e.params)
            && (same_addr(&e.upstream, &up.addr) || self.name_at(&e.upstream) == Some(w.from.as_str()))
    }

    /// Replaces the wanted graph (already validated). Edges the old one
    /// wanted and the new one does not are disconnected where the node
    /// reports them as made by CONNECT.
    pub(crate) fn set_wanted(&mut self, wanted: WantedGraph) {
        let new_ids: BTreeSet<String> = wanted.edges.iter().map(|w| edge_id(&w.to, local_name(w))).collect();
        for old in &self.wanted.edges {
            let id = edge_id(&old.to, local_name(old));
            if !new_ids.contains(&id) {
                self.removing
                    .insert(id.clone(), (old.to.clone(), local_name(old).to_owned()));
                self.pending.remove(&id);
            }
        }
        for id in &new_ids {
            self.removing.remove(id);
            self.pending.remove(id);
            self.edge_errors.remove(id);
        }
        self.wanted = wanted;
    }

    /// What the reconciler should send now. Marks what it returns as in
    /// flight; call again after [`RETRY_AFTER`] to resend what was not
    /// confirmed.
    pub(crate) fn plan(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut refused: Vec<(String, String)> = Vec::new();
        let due = |pending: &HashMap<String, Instant>, id: &str| {
            pending
                .get(id)
                .is_none_or(|t| now.saturating_duration_since(*t) >= RETRY_AFTER)
        };
        // Removals first: they may free a local name a wanted edge needs.
        for (id, (node, local)) in &self.removing {
            let Some(rec) = self.nodes.get(node) else { continue };
            let Some(report) = rec.report.as_ref().filter(|_| rec.online) else {
                continue;
            };
            let made_by_connect = report
                .edges
                .iter()
                .any(|e| e.local_name == *local && e.origin == EdgeOrigin::Connect);
            if made_by_connect && due(&self.unpending, id) {
                actions.push(Action::Disconnect {
                    node: node.clone(),
                    local_name: local.clone(),
                });
            }
        }
        for w in &self.wanted.edges {
            let local = local_name(w);
            let id = edge_id(&w.to, local);
            let (Some(down), Some(up)) = (self.nodes.get(&w.to), self.nodes.get(&w.from)) else {
                continue;
            };
            let Some(report) = down.report.as_ref().filter(|_| down.online) else {
                continue;
            };
            let Ok(p) = params(w) else { continue };
            match report.edges.iter().find(|e| e.local_name == local) {
                Some(e) if self.matches(w, e) => {}
                Some(e) => {
                    // Another edge holds the name: replace it if a CONNECT made it.
                    if e.origin == EdgeOrigin::Connect && due(&self.unpending, &id) {
                        actions.push(Action::Disconnect {
                            node: w.to.clone(),
                            local_name: local.to_owned(),
                        });
                    }
                }
                None => {
                    // A format the downstream would refuse (a document
                    // loaded from disk is not validated): do not try.
                    let format = up
                        .report
                        .as_ref()
                        .and_then(|r| r.streams.iter().find(|s| s.open.name == w.stream))
                        .map(|s| s.open.format);
                    if let Some(f) = format
                        && !report.accept_formats.is_empty()
                        && !report.accept_formats.contains(&f)
                    {
                        refused.push((
                            id,
                            format!(
                                "{} accepts only {} on pulled edges, not {f}",
                                w.to,
                                list(&report.accept_formats)
                            ),
                        ));
                        continue;
                    }
                    // A stream of the node's own (a source) holds the name:
                    // validation refuses that, so it appeared since; wait.
                    let taken = report.streams.iter().any(|s| s.open.name == local);
                    if !taken
                        && !self.removing.values().any(|(n, l)| *n == w.to && l == local)
                        && due(&self.pending, &id)
                        && !self.unpending.contains_key(&id)
                    {
                        actions.push(Action::Connect {
                            node: w.to.clone(),
                            connect: Connect {
                                upstream: up.addr.clone(),
                                stream: w.stream.clone(),
                                local_name: local.to_owned(),
                                params: p,
                            },
                        });
                    }
                }
            }
        }
        for (id, reason) in refused {
            self.edge_errors.insert(id, reason);
        }
        for a in &actions {
            match a {
                Action::Connect { node, connect } => self.pending.insert(edge_id(node, &connect.local_name), now),
                Action::Disconnect { node, local_name } => self.unpending.insert(edge_id(node, local_name), now),
            };
        }
        actions
    }

    /// Checks a whole wanted graph against what the nodes reported. On
    /// success nothing is returned; otherwise every refused edge with its
    /// reason.
    pub(crate) fn validate(&self, wanted: &WantedGraph) -> Result<(), Vec<Refusal>> {
        let mut refusals = Vec::new();
        let mut refuse = |index: usize, e: &WantedEdge, reason: String| {
            refusals.push(Refusal {
                index,
                edge: edge_label(e),
                reason,
            });
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, e) in wanted.edges.iter().enumerate() {
            if let Err(reason) = params(e) {
                refuse(i, e, reason);
                continue;
            }
            if let Err(reason) = check_names(e) {
                refuse(i, e, reason);
                continue;
            }
            let local = local_name(e);
            if let Some(first) = seen.insert(edge_id(&e.to, local), i) {
                refuse(
                    i,
                    e,
                    format!(
                        "node {:?} already gets a stream named {local:?} from edge {first}; give one a different local_name",
                        e.to
                    ),
                );
                continue;
            }
            let Some(up) = self.nodes.get(&e.from) else {
                refuse(
                    i,
                    e,
                    format!("no node named {:?} (known: {})", e.from, self.known_nodes()),
                );
                continue;
            };
            let Some(down) = self.nodes.get(&e.to) else {
                refuse(
                    i,
                    e,
                    format!("no node named {:?} (known: {})", e.to, self.known_nodes()),
                );
                continue;
            };
            if e.from == e.to {
                refuse(i, e, "an edge from a node to itself is a cycle".into());
                continue;
            }
            // The stream: served by the upstream now, or made there by
            // another wanted edge of this document.
            let format = match self.stream_format(wanted, &e.from, &e.stream, 0) {
                Some(f) => f,
                None => {
                    let names = up
                        .report
                        .as_ref()
                        .map(|r| r.streams.iter().map(|s| s.open.name.clone()).collect::<Vec<_>>())
                        .unwrap_or_default();
                    let list = if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    };
                    refuse(
                        i,
                        e,
                        format!("node {:?} has no stream {:?} (streams: {list})", e.from, e.stream),
                    );
                    continue;
                }
            };
            if let Some(report) = &down.report {
                if let Some(f) = format
                    && !report.accept_formats.is_empty()
                    && !report.accept_formats.contains(&f)
                {
                    refuse(
                        i,
                        e,
                        format!(
                            "node {:?} accepts only {} on pulled edges, and {:?} is {f}",
                            e.to,
                            list(&report.accept_formats),
                            e.stream
                        ),
                    );
                    continue;
                }
                // The local name must not be taken by the node's own
                // stream or by an edge the controller may not replace.
                let edge = report.edges.iter().find(|x| x.local_name == local);
                let own_stream = edge.is_none() && report.streams.iter().any(|s| s.open.name == local);
                if own_stream {
                    refuse(
                        i,
                        e,
                        format!(
                            "node {:?} already serves its own stream {local:?}; choose another local_name",
                            e.to
                        ),
                    );
                    continue;
                }
                if let Some(x) = edge
                    && x.origin != EdgeOrigin::Connect
                    && !self.matches(e, x)
                {
                    refuse(
                        i,
                        e,
                        format!(
                            "node {:?} has an edge {local:?} from its own configuration (from {}/{}); choose another local_name",
                            e.to, x.upstream, x.stream
                        ),
                    );
                    continue;
                }
            }
        }
        // Cycles, over node names: the wanted edges plus the live edges no
        // wanted edge replaces.
        let wanted_ids: BTreeSet<String> = wanted.edges.iter().map(|w| edge_id(&w.to, local_name(w))).collect();
        let mut adj: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, rec) in &self.nodes {
            let Some(r) = &rec.report else { continue };
            for e in &r.edges {
                let id = edge_id(name, &e.local_name);
                let replaced = wanted_ids.contains(&id)
                    || (e.origin == EdgeOrigin::Connect && self.removing.contains_key(&id))
                    || (e.origin == EdgeOrigin::Connect
                        && self.wanted.edges.iter().any(|w| edge_id(&w.to, local_name(w)) == id));
                if replaced {
                    continue;
                }
                if let Some(up) = self.name_at(&e.upstream) {
                    adj.entry(up.to_owned()).or_default().insert(name.clone());
                }
            }
        }
        // Edges are added one by one, those already wanted first, then the
        // new ones in document order; an edge that would close a cycle with
        // those before it is refused (and not added), so the refusal lands
        // on the edge that closes the loop.
        let already: BTreeSet<usize> = refusals.iter().map(|r| r.index).collect();
        let mut order: Vec<usize> = (0..wanted.edges.len()).filter(|i| !already.contains(i)).collect();
        order.sort_by_key(|&i| !self.wanted.edges.contains(&wanted.edges[i]));
        for i in order {
            let e = &wanted.edges[i];
            if let Some(path) = find_path(&adj, &e.to, &e.from) {
                refusals.push(Refusal {
                    index: i,
                    edge: edge_label(e),
                    reason: format!("closes a cycle: {} -> {}", e.from, path.join(" -> ")),
                });
            } else {
                adj.entry(e.from.clone()).or_default().insert(e.to.clone());
            }
        }
        if refusals.is_empty() {
            Ok(())
        } else {
            refusals.sort_by_key(|r| r.index);
            Err(refusals)
        }
    }

    fn known_nodes(&self) -> String {
        if self.nodes.is_empty() {
            "none".into()
        } else {
            self.nodes.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    }

    /// The format of `stream` on `node`: `Some(Some(f))` when known,
    /// `Some(None)` when the stream exists (or will) but its format is not
    /// known yet, `None` when there is no such stream.
    fn stream_format(&self, wanted: &WantedGraph, node: &str, stream: &str, depth: usize) -> Option<Option<Format>> {
        if depth > MAX_CHAIN {
            return Some(None);
        }
        if let Some(r) = self.nodes.get(node).and_then(|n| n.report.as_ref()) {
            if let Some(s) = r.streams.iter().find(|s| s.open.name == stream) {
                return Some(Some(s.open.format));
            }
            if r.edges.iter().any(|e| e.local_name == stream) {
                return Some(None);
            }
        }
        let w = wanted.edges.iter().find(|w| w.to == node && local_name(w) == stream)?;
        Some(self.stream_format(wanted, &w.from, &w.stream, depth + 1).flatten())
    }

    /// The current graph (version and time are the caller's).
    pub(crate) fn graph(&self) -> CurrentGraph {
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        let mut live_ids = BTreeSet::new();
        // Outputs already joined to an edge, so two edges never share one.
        let mut used: BTreeSet<(String, String, u16)> = BTreeSet::new();
        for (name, rec) in &self.nodes {
            let mut view = NodeView {
                name: name.clone(),
                addr: rec.addr.clone(),
                online: rec.online,
                error: rec.error.clone(),
                ..NodeView::default()
            };
            let Some(r) = &rec.report else {
                nodes.push(view);
                continue;
            };
            let d = &r.description;
            view.site_id = d.site_id;
            view.functions = d.function_flags.0;
            view.software = d.software.clone();
            view.hostname = d.hostname.clone();
            view.uptime_ms = d.uptime_ms;
            view.v4l2 = rec.v4l2;
            for s in &r.streams {
                let outputs = r
                    .stats
                    .outputs
                    .iter()
                    .filter(|o| o.stream == s.open.name)
                    .map(|o| {
                        let rate = rec
                            .rates
                            .get(&(o.stream.clone(), o.peer.clone(), o.channel))
                            .copied()
                            .unwrap_or_default();
                        OutputView {
                            peer: o.peer.clone(),
                            mode: o.mode.to_string(),
                            transport: o.transport.to_string(),
                            fps: round2(rate.fps),
                            mbit_s: round2(rate.mbit_s),
                            drops: o.drops.iter().map(|d| d.count).sum(),
                            latency_p50_us: o.latency_p50_us,
                            latency_p99_us: o.latency_p99_us,
                        }
                    })
                    .collect();
                view.streams.push(StreamView {
                    name: s.open.name.clone(),
                    format: s.open.format.to_string(),
                    pixel_format: s.open.pixel_format.to_string(),
                    origin: s.open.origin.to_string(),
                    width: s.open.width,
                    height: s.open.height,
                    fps: if s.open.fps_den == 0 {
                        0.0
                    } else {
                        f64::from(s.open.fps_num) / f64::from(s.open.fps_den)
                    },
                    state: if rec.online {
                        s.state.label().into()
                    } else {
                        "offline".into()
                    },
                    outputs,
                });
            }
            nodes.push(view);
            for e in &r.edges {
                let id = edge_id(name, &e.local_name);
                let upstream = self
                    .name_at(&e.upstream)
                    .map_or_else(|| e.upstream.clone(), str::to_owned);
                let wanted = self.wanted_by_id(&id).is_some_and(|w| self.matches(w, e));
                let mut view = EdgeView {
                    id: id.clone(),
                    upstream: upstream.clone(),
                    stream: e.stream.clone(),
                    downstream: name.clone(),
                    local_name: e.local_name.clone(),
                    mode: e.params.mode.to_string(),
                    priority: e.params.priority,
                    state: if rec.online {
                        e.state.label().into()
                    } else {
                        "offline".into()
                    },
                    wanted,
                    ..EdgeView::default()
                };
                // Join the upstream's output for this subscriber.
                if let Some(up) = self.nodes.get(&upstream)
                    && let Some(ur) = &up.report
                    && let Some(o) = ur.stats.outputs.iter().find(|o| {
                        o.stream == e.stream
                            && o.peer.ends_with(&format!(" {}", d.name))
                            && !used.contains(&(o.stream.clone(), o.peer.clone(), o.channel))
                    })
                {
                    let key = (o.stream.clone(), o.peer.clone(), o.channel);
                    let rate = up.rates.get(&key).copied().unwrap_or_default();
                    used.insert(key);
                    view.fps = round2(rate.fps);
                    view.mbit_s = round2(rate.mbit_s);
                    view.drops = o.drops.iter().map(|d| d.count).sum();
                    view.latency_p50_us = o.latency_p50_us;
                    view.latency_p99_us = o.latency_p99_us;
                    view.transport = match o.transport {
                        TransportMode::Shm => "shm".into(),
                        _ => "tcp".into(),
                    };
                }
                if wanted {
                    live_ids.insert(id);
                }
                edges.push(view);
            }
        }
        for w in &self.wanted.edges {
            let local = local_name(w);
            let id = edge_id(&w.to, local);
            if live_ids.contains(&id) {
                continue;
            }
            let state = if self.pending.contains_key(&id) || self.unpending.contains_key(&id) {
                "connecting"
            } else {
                "missing"
            };
            // Ids stay unique: a different edge the node reports under the
            // wanted edge's name is shown, with why it is not the wanted one.
            if let Some(other) = edges.iter_mut().find(|e| e.id == id) {
                other.error = Some(if self.unpending.contains_key(&id) || self.pending.contains_key(&id) {
                    format!("being replaced by the wanted edge from {}/{}", w.from, w.stream)
                } else {
                    format!(
                        "the wanted edge from {}/{} cannot take this name: the node's own edge holds it",
                        w.from, w.stream
                    )
                });
                continue;
            }
            edges.push(EdgeView {
                error: self.edge_errors.get(&id).cloned(),
                id,
                upstream: w.from.clone(),
                stream: w.stream.clone(),
                downstream: w.to.clone(),
                local_name: local.to_owned(),
                mode: w.mode.clone(),
                priority: w.priority,
                state: state.into(),
                wanted: true,
                ..EdgeView::default()
            });
        }
        edges.sort_by(|a, b| a.id.cmp(&b.id));
        CurrentGraph {
            version: 0,
            updated_ms: 0,
            nodes,
            edges,
        }
    }
}

/// `a, b, c` for people.
fn list(formats: &[Format]) -> String {
    formats.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A path from `from` to `to` in `adj` (node names, both ends included).
fn find_path(adj: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut prev: HashMap<&str, &str> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(n) = queue.pop_front() {
        if n == to {
            let mut path = vec![to.to_owned()];
            let mut cur = to;
            while let Some(p) = prev.get(cur) {
                path.push((*p).to_owned());
                cur = p;
            }
            path.reverse();
            return Some(path);
        }
        for m in adj.get(n).into_iter().flatten() {
            if seen.insert(m.as_str()) {
                prev.insert(m.as_str(), n);
                queue.push_back(m.as_str());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use framewire_proto::control::{Description, DropCount, DropReason, OutputStats, Stats, StreamInfo, StreamState};
    use framewire_proto::{Features, FunctionFlags, Origin, PixelFormat, StreamOpen};

    use super::*;

    fn open(name: &str, format: Format) -> StreamOpen {
        StreamOpen {
            format,
            pixel_format: PixelFormat::None,
            origin: Origin::Software,
            width: 64,
            height: 48,
            fps_num: 30,
            fps_den: 1,
            name: name.into(),
        }
    }

    fn report(name: &str, port: u16, streams: &[(&str, Format)], edges: Vec<EdgeStatus>) -> StatusReport {
        StatusReport {
            sequence: 0,
            description: Description {
                name: name.into(),
                software: "fw".into(),
                protocol_version: 1,
                site_id: 0,
                function_flags: FunctionFlags::RELAY,
                features: Features(0),
                pid: 1,
                uptime_ms: 5,
                hostname: "h".into(),
                streams: 0,
                tcp_port: port,
            },
            streams: streams
                .iter()
                .map(|(n, f)| StreamInfo {
                    open: open(n, *f),
                    state: StreamState::Live,
                    subscribers: 0,
                    frames: 0,
                })
                .collect(),
            stats: Stats::default(),
            edges,
            accept_formats: Vec::new(),
        }
    }

    fn pulled(local: &str, up_port: u16, stream: &str, origin: EdgeOrigin) -> EdgeStatus {
        EdgeStatus {
            local_name: local.into(),
            upstream: format!("127.0.0.1:{up_port}"),
            stream: stream.into(),
            origin,
            state: StreamState::Live,
            failed_attempts: 0,
            params: SubscribeParams::default(),
        }
    }

    fn wanted(from: &str, stream: &str, to: &str) -> WantedEdge {
        WantedEdge::new(from, stream, to)
    }

    fn addr(port: u16) -> String {
        format!("127.0.0.1:{port}")
    }

    /// cam (port 1) serves `bars` (QOI); relay (2) and desk (3) serve nothing.
    fn three(t: Instant) -> Core {
        let mut c = Core::new(WantedGraph::default());
        c.on_report(&addr(1), report("cam", 1, &[("bars", Format::Qoi)], vec![]), t);
        c.on_report(&addr(2), report("relay", 2, &[], vec![]), t);
        let mut desk = report("desk", 3, &[], vec![]);
        desk.accept_formats = vec![Format::Mjpeg, Format::Qoi];
        c.on_report(&addr(3), desk, t);
        c
    }

    #[test]
    fn addresses_compare_by_listener() {
        assert!(same_addr("127.0.0.1:7400", "127.0.0.1:7400"));
        assert!(same_addr("localhost:7400", "127.0.0.1:7400"));
        assert!(same_addr("[::1]:7400", "127.0.0.1:7400"));
        assert!(!same_addr("127.0.0.1:7400", "127.0.0.1:7401"));
        assert!(!same_addr("10.0.0.1:7400", "10.0.0.2:7400"));
        assert!(!same_addr("nonsense", "127.0.0.1:7400"));
    }

    #[test]
    fn chains_validate_in_one_document_and_formats_follow_the_chain() {
        let t = Instant::now();
        let c = three(t);
        let mut w = WantedGraph {
            edges: vec![wanted("cam", "bars", "relay"), wanted("relay", "bars", "desk")],
        };
        assert_eq!(c.validate(&w), Ok(()));
        // The desk accepts MJPEG and QOI only; a raw stream two hops up is refused.
        let mut c2 = three(t);
        c2.on_report(&addr(1), report("cam", 1, &[("bars", Format::Raw)], vec![]), t);
        let r = c2.validate(&w).unwrap_err();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].index, 1);
        assert!(r[0].reason.contains("accepts only mjpeg, qoi"), "{}", r[0].reason);
        // Without the first edge the relay has no stream `bars`.
        w.edges.remove(0);
        let r = c.validate(&w).unwrap_err();
        assert!(
            r[0].reason.contains("has no stream \"bars\" (streams: none)"),
            "{}",
            r[0].reason
        );
    }

    #[test]
    fn cycles_are_refused_on_the_edge_that_closes_them() {
        let t = Instant::now();
        let mut c = three(t);
        // Live: cam -> relay (configured on the relay).
        c.on_report(
            &addr(2),
            report(
                "relay",
                2,
                &[("bars", Format::Qoi)],
                vec![pulled("bars", 1, "bars", EdgeOrigin::Config)],
            ),
            t,
        );
        let w = WantedGraph {
            edges: vec![
                wanted("relay", "bars", "desk"),
                WantedEdge {
                    local_name: "back".into(),
                    ..wanted("desk", "bars", "cam")
                },
            ],
        };
        let r = c.validate(&w).unwrap_err();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].index, 1);
        assert_eq!(r[0].reason, "closes a cycle: desk -> cam -> relay -> desk");
        let selfloop = WantedGraph {
            edges: vec![WantedEdge {
                local_name: "again".into(),
                ..wanted("cam", "bars", "cam")
            }],
        };
        assert!(c.validate(&selfloop).unwrap_err()[0].reason.contains("to itself"));
    }

    #[test]
    fn plan_connects_then_waits_then_retries() {
        let t = Instant::now();
        let mut c = three(t);
        let w = WantedGraph {
            edges: vec![wanted("cam", "bars", "relay")],
        };
        c.validate(&w).unwrap();
        c.set_wanted(w);
        let a = c.plan(t);
        assert_eq!(
            a,
            vec![Action::Connect {
                node: "relay".into(),
                connect: Connect {
                    upstream: addr(1),
                    stream: "bars".into(),
                    local_name: "bars".into(),
                    params: SubscribeParams::default(),
                },
            }]
        );
        assert_eq!(find(&c.graph(), "relay/bars").state, "connecting");
        // In flight: nothing new until RETRY_AFTER.
        assert!(c.plan(t + Duration::from_millis(500)).is_empty());
        assert_eq!(c.plan(t + RETRY_AFTER).len(), 1);
        // The relay reports the edge: confirmed, nothing more to do.
        c.on_report(
            &addr(2),
            report(
                "relay",
                2,
                &[("bars", Format::Qoi)],
                vec![pulled("bars", 1, "bars", EdgeOrigin::Connect)],
            ),
            t,
        );
        assert!(c.plan(t + RETRY_AFTER * 3).is_empty());
        let g = c.graph();
        let e = find(&g, "relay/bars");
        assert!(e.wanted);
        assert_eq!((e.state.as_str(), e.upstream.as_str()), ("live", "cam"));
        // The relay goes offline: its edge shows offline; nothing is sent to it.
        c.on_down(&addr(2), "connection reset");
        assert_eq!(find(&c.graph(), "relay/bars").state, "offline");
        assert!(c.plan(t + RETRY_AFTER * 4).is_empty());
        // It restarts with no edges: CONNECT again at once.
        c.on_report(&addr(2), report("relay", 2, &[], vec![]), t + RETRY_AFTER * 4);
        assert_eq!(c.plan(t + RETRY_AFTER * 4).len(), 1);
    }

    #[test]
    fn removal_disconnects_only_edges_made_by_connect() {
        let t = Instant::now();
        let mut c = three(t);
        let w = WantedGraph {
            edges: vec![wanted("cam", "bars", "relay"), wanted("cam", "bars", "desk")],
        };
        c.set_wanted(w);
        c.on_report(
            &addr(2),
            report("relay", 2, &[], vec![pulled("bars", 1, "bars", EdgeOrigin::Connect)]),
            t,
        );
        // The desk's edge comes from its own config.
        c.on_report(
            &addr(3),
            report("desk", 3, &[], vec![pulled("bars", 1, "bars", EdgeOrigin::Config)]),
            t,
        );
        c.set_wanted(WantedGraph::default());
        let a = c.plan(t);
        assert_eq!(
            a,
            vec![Action::Disconnect {
                node: "relay".into(),
                local_name: "bars".into()
            }]
        );
        // Confirmed gone: nothing more, even after the retry delay.
        c.on_report(&addr(2), report("relay", 2, &[], vec![]), t);
        assert!(c.plan(t + RETRY_AFTER * 2).is_empty());
        // The desk's configured edge is still in the graph, not wanted.
        let g = c.graph();
        assert!(!find(&g, "desk/bars").wanted);
        assert!(g.edges.iter().all(|e| e.id != "relay/bars"));
    }

    #[test]
    fn a_changed_edge_is_replaced() {
        let t = Instant::now();
        let mut c = three(t);
        c.set_wanted(WantedGraph {
            edges: vec![WantedEdge {
                mode: "completeness".into(),
                ..wanted("cam", "bars", "relay")
            }],
        });
        c.on_report(
            &addr(2),
            report("relay", 2, &[], vec![pulled("bars", 1, "bars", EdgeOrigin::Connect)]),
            t,
        );
        assert_eq!(
            c.plan(t),
            vec![Action::Disconnect {
                node: "relay".into(),
                local_name: "bars".into()
            }]
        );
        // One entry per id: the live edge, saying it is being replaced.
        let g = c.graph();
        assert_eq!(g.edges.iter().filter(|e| e.id == "relay/bars").count(), 1);
        let e = find(&g, "relay/bars");
        assert!(!e.wanted);
        assert_eq!(
            e.error.as_deref(),
            Some("being replaced by the wanted edge from cam/bars")
        );
        // Gone: the CONNECT follows at once, not after the retry delay.
        c.on_report(&addr(2), report("relay", 2, &[], vec![]), t);
        assert!(
            matches!(&c.plan(t)[..], [Action::Connect { connect, .. }] if connect.params.mode == DeliveryMode::Completeness)
        );
    }

    #[test]
    fn edge_figures_join_the_upstream_output_and_rates_come_from_deltas() {
        let t = Instant::now();
        let mut c = three(t);
        let out = |frames: u64, bytes: u64| OutputStats {
            channel: 1,
            stream: "bars".into(),
            peer: "127.0.0.1:5555 relay".into(),
            mode: DeliveryMode::LowLatency,
            transport: TransportMode::Encapsulated,
            priority: 128,
            frames_in: frames,
            frames_sent: frames,
            bytes_sent: bytes,
            drops: vec![DropCount {
                reason: DropReason::Replaced,
                count: 3,
            }],
            queue_frames: 0,
            queue_bytes: 0,
            max_frames: 1,
            max_bytes: 0,
            oldest_age_us: 0,
            latency_p50_us: 40,
            latency_p99_us: 90,
            latency_max_us: 100,
            waiting_keyframe: false,
        };
        let mut r = report("cam", 1, &[("bars", Format::Qoi)], vec![]);
        r.stats.outputs = vec![out(100, 1_000_000)];
        c.on_report(&addr(1), r.clone(), t);
        c.on_report(
            &addr(2),
            report("relay", 2, &[], vec![pulled("bars", 1, "bars", EdgeOrigin::Config)]),
            t,
        );
        // 30 frames and 1.25 MB in the next second.
        r.stats.outputs = vec![out(130, 2_250_000)];
        c.on_report(&addr(1), r.clone(), t + Duration::from_secs(1));
        let g = c.graph();
        let e = find(&g, "relay/bars");
        assert_eq!((e.fps, e.mbit_s, e.drops), (30.0, 10.0, 3));
        assert_eq!((e.latency_p50_us, e.latency_p99_us), (40, 90));
        let cam = g.nodes.iter().find(|n| n.name == "cam").unwrap();
        assert_eq!(cam.streams[0].outputs[0].fps, 30.0);
        // A report 10 ms later (a change) keeps the last figures.
        r.stats.outputs = vec![out(131, 2_290_000)];
        c.on_report(&addr(1), r, t + Duration::from_millis(1010));
        assert_eq!(find(&c.graph(), "relay/bars").fps, 30.0);
    }

    #[test]
    fn a_second_node_with_the_same_name_is_ignored_while_the_first_lives() {
        let t = Instant::now();
        let mut c = three(t);
        c.on_report(&addr(9), report("cam", 9, &[("other", Format::Raw)], vec![]), t);
        let g = c.graph();
        let cam = g.nodes.iter().find(|n| n.name == "cam").unwrap();
        assert_eq!(cam.addr, addr(1));
        assert_eq!(cam.streams[0].name, "bars");
        assert!(cam.error.as_deref().unwrap().contains("127.0.0.1:9"), "{cam:?}");
        // Once the first is offline, the other takes the name.
        c.on_down(&addr(1), "gone");
        c.on_report(&addr(9), report("cam", 9, &[("other", Format::Raw)], vec![]), t);
        let g = c.graph();
        let cam = g.nodes.iter().find(|n| n.name == "cam").unwrap();
        assert_eq!(
            (cam.addr.as_str(), cam.online, cam.error.is_none()),
            ("127.0.0.1:9", true, true)
        );
    }

    #[test]
    fn a_stored_edge_with_a_refused_format_is_not_attempted() {
        let t = Instant::now();
        let mut c = three(t);
        let mut desk = report("desk", 3, &[], vec![]);
        desk.accept_formats = vec![Format::Mjpeg];
        c.on_report(&addr(3), desk, t);
        // Loaded from disk: not validated.
        c.set_wanted(WantedGraph {
            edges: vec![wanted("cam", "bars", "desk")],
        });
        assert!(c.plan(t).is_empty());
        let g = c.graph();
        let e = find(&g, "desk/bars");
        assert_eq!(e.state, "missing");
        assert_eq!(
            e.error.as_deref(),
            Some("desk accepts only mjpeg on pulled edges, not qoi")
        );
    }

    #[test]
    fn fifty_nodes_assemble_and_validate_quickly() {
        // A chain of 50 nodes, each serving 4 streams and pulling 4 from
        // the one before it: 196 edges, each joined to an upstream output.
        let t = Instant::now();
        let mut c = Core::new(WantedGraph::default());
        let streams = [
            ("s0", Format::Qoi),
            ("s1", Format::Qoi),
            ("s2", Format::Raw),
            ("s3", Format::Mjpeg),
        ];
        let mut wanted_edges = Vec::new();
        for i in 0..50u16 {
            let edges = if i == 0 {
                vec![]
            } else {
                streams
                    .iter()
                    .map(|(n, _)| EdgeStatus {
                        local_name: format!("{n}-{i}"),
                        ..pulled(n, 1000 + i - 1, n, EdgeOrigin::Connect)
                    })
                    .collect()
            };
            let mut r = report(&format!("n{i}"), 1000 + i, &streams, edges);
            r.stats.outputs = streams
                .iter()
                .map(|(n, _)| framewire_proto::control::OutputStats {
                    channel: 1,
                    stream: (*n).into(),
                    peer: format!("127.0.0.1:1 n{}", i + 1),
                    mode: DeliveryMode::LowLatency,
                    transport: TransportMode::Encapsulated,
                    priority: 128,
                    frames_in: 0,
                    frames_sent: 0,
                    bytes_sent: 0,
                    drops: vec![],
                    queue_frames: 0,
                    queue_bytes: 0,
                    max_frames: 1,
                    max_bytes: 0,
                    oldest_age_us: 0,
                    latency_p50_us: 0,
                    latency_p99_us: 0,
                    latency_max_us: 0,
                    waiting_keyframe: false,
                })
                .collect();
            c.on_report(&addr(1000 + i), r, t);
            if i > 0 {
                for (n, _) in &streams[..2] {
                    wanted_edges.push(WantedEdge {
                        local_name: format!("{n}-{i}"),
                        ..wanted(&format!("n{}", i - 1), n, &format!("n{i}"))
                    });
                }
            }
        }
        let w = WantedGraph { edges: wanted_edges };
        let start = Instant::now();
        let g = c.graph();
        let assemble = start.elapsed();
        let start = Instant::now();
        assert_eq!(c.validate(&w), Ok(()));
        let validate = start.elapsed();
        println!(
            "50 nodes, {} edges: graph assembled in {:.2} ms; {} wanted edges validated in {:.2} ms",
            g.edges.len(),
            assemble.as_secs_f64() * 1e3,
            w.edges.len(),
            validate.as_secs_f64() * 1e3
        );
        assert_eq!(g.edges.len(), 196);
        assert!(g.edges.iter().all(|e| e.upstream.starts_with('n')));
        // Generous bounds for a debug build on a busy machine.
        assert!(assemble < Duration::from_millis(200) && validate < Duration::from_millis(500));
    }

    fn find<'a>(g: &'a CurrentGraph, id: &str) -> &'a EdgeView {
        g.edges
            .iter()
            .find(|e| e.id == id)
            .unwrap_or_else(|| panic!("no edge {id} in {g:#?}"))
    }
}
