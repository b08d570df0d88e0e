//! The controller's state machine, without I/O: what the nodes reported,
//! the wanted graph, the current graph assembled from both, validation of
//! a new wanted graph, and the reconciler's next actions.
//!
//! The driver (`runtime.rs`) feeds it node reports, connection losses and
//! the results of the requests it sent, always with the time as an
//! argument; after each input it asks for the graph ([`Core::graph`]) and
//! the actions to take ([`Core::plan`]). Nothing here reads the clock or
//! touches a socket, so every rule is unit-tested.

#[cfg(any(test, feature = "fuzz-api"))]
pub(crate) mod fixtures;
mod inputs;
mod plan;
mod policy;
#[cfg(test)]
mod policy_tests;
mod sources;
#[cfg(test)]
mod tests;
mod validate;
mod view;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use framewire_proto::control::{Connect, EdgeStatus, StatusReport};
use framewire_proto::names::{self, NameError, NameKind};
use framewire_proto::{DeliveryMode, DropPolicy, Format, SubscribeParams, TransportMode};

use crate::model::{WantedEdge, WantedGraph};

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
    /// Per-output `(when, frames_in, drops)` over the alert window.
    samples: HashMap<(String, String, u16), DropSamples>,
}

/// `(when, frames offered, frames dropped)` of one output, oldest first.
type DropSamples = std::collections::VecDeque<(Instant, u64, u64)>;

/// When an edge raises an alert: it dropped more than `share` of the frames
/// offered to it over `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertConfig {
    /// Dropped frames over offered frames, 0..1 [default: 0.05].
    pub share: f64,
    /// The span it is measured over [default: 10 s].
    pub window: Duration,
    /// Fewer frames offered in the window raise no alert [default: 10].
    pub min_frames: u64,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            share: 0.05,
            window: Duration::from_secs(10),
            min_frames: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Rate {
    frames_sent: u64,
    bytes_sent: u64,
    at: Option<Instant>,
    fps: f64,
    mbit_s: f64,
    /// Dropped over offered frames in the alert window, when enough were.
    drop_share: Option<f64>,
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
    /// Send SOURCE_ADD (or SOURCE_SET when `set`) with this table to `node`.
    Source {
        /// The node.
        node: String,
        /// The source's table.
        table: toml::Table,
        /// Change a running source rather than add one.
        set: bool,
    },
    /// Send SOURCE_REMOVE for `name` to `node`.
    RemoveSource {
        /// The node.
        node: String,
        /// The source's stream.
        name: String,
    },
}

impl Action {
    /// The node the action goes to.
    pub(crate) fn node(&self) -> &str {
        match self {
            Action::Connect { node, .. }
            | Action::Disconnect { node, .. }
            | Action::Source { node, .. }
            | Action::RemoveSource { node, .. } => node,
        }
    }
}

/// What [`Core::forget`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Forget {
    /// The node left the graph; it was dialled at this address.
    Forgotten(String),
    /// It is online: nothing changed.
    Online,
    /// No node by that name.
    Unknown,
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
    /// The wanted sources' bookkeeping (`core/sources.rs`).
    sources: sources::SourceBook,
    /// When an edge's drops raise an alert.
    pub(crate) alerts: AlertConfig,
    /// What `on_alert` policies changed, by edge id (`core/policy.rs`).
    adjusted: HashMap<String, policy::Adjustment>,
}

/// `name`, or `site/name` for another site.
pub(crate) fn node_key(site_id: u16, name: &str) -> String {
    if site_id == 0 {
        name.to_owned()
    } else {
        format!("{site_id}/{name}")
    }
}

/// Where the controller dials a node of another site: `SITE:NAME@GATEWAY`
/// (a tunnel through the gateway that lists it, [`framewire_net::Client::tunnel`]).
pub(crate) fn tunnel_addr(site_id: u16, name: &str, gateway: &str) -> String {
    format!("{site_id}:{name}@{gateway}")
}

/// What a downstream node of this site asks for to pull `stream` of the
/// node at `up_addr`: the node's address and the stream; for a node of
/// another site, its gateway and the stream's qualified name
/// (`STREAM@SITE:NAMESPACE:INSTANCE`).
pub(crate) fn upstream_of(up_addr: &str, stream: &str) -> (String, String) {
    match up_addr.rsplit_once('@') {
        Some((node, gateway)) => (gateway.to_owned(), format!("{stream}@{node}")),
        None => (up_addr.to_owned(), stream.to_owned()),
    }
}

/// Whether a node key names a node of another site (`SITE/NAME`).
pub(crate) fn is_remote(node: &str) -> bool {
    node.split_once('/')
        .is_some_and(|(site, _)| !site.is_empty() && site.bytes().all(|b| b.is_ascii_digit()))
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
    // `SITE:NAME@GATEWAY`: the same node through the same gateway.
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((na, ga)), Some((nb, gb))) => return na == nb && same_addr(ga, gb),
        (None, None) => {}
        _ => return false,
    }
    // Host and port, without allocating (this runs for every edge and
    // node each time the graph is built).
    let (Some((ha, pa)), Some((hb, pb))) = (host_port(a), host_port(b)) else {
        return false;
    };
    let loopback = |h: &Host<'_>| match h {
        Host::Ip(ip) => ip.is_loopback(),
        Host::Name(n) => *n == "localhost",
    };
    pa == pb && (ha == hb || (loopback(&ha) && loopback(&hb)))
}

fn host_port(s: &str) -> Option<(Host<'_>, u16)> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((Host::Ip(sa.ip()), sa.port()));
    }
    let (h, p) = s.rsplit_once(':')?;
    let host = match h.parse::<std::net::IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(h),
    };
    Some((host, p.parse().ok()?))
}

/// The host part of an address: an IP address or a name.
#[derive(Debug, PartialEq, Eq)]
enum Host<'a> {
    Ip(std::net::IpAddr),
    Name(&'a str),
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

    /// The wanted edge `id`, as written (see [`Core::effective`] for what
    /// the reconciler makes of it).
    fn wanted_by_id(&self, id: &str) -> Option<&WantedEdge> {
        self.wanted.edges.iter().find(|w| edge_id(&w.to, local_name(w)) == id)
    }

    /// Whether a reported edge differs from the wanted one only in its
    /// budgets: a CONNECT changes those in place (UPDATE_SUBSCRIPTION
    /// upstream), no reconnection.
    fn budgets_only(&self, w: &WantedEdge, e: &EdgeStatus) -> bool {
        let (Ok(p), Some(up)) = (params(w), self.nodes.get(&w.from)) else {
            return false;
        };
        let q = e.params;
        self.same_upstream(w, e, &up.addr)
            && (p.mode, p.drop_policy, p.priority, p.transport) == (q.mode, q.drop_policy, q.priority, q.transport)
            && (p.max_frames, p.max_bytes) != (q.max_frames, q.max_bytes)
    }

    /// Whether a reported edge is what the wanted edge asks for.
    fn matches(&self, w: &WantedEdge, e: &EdgeStatus) -> bool {
        let Some(up) = self.nodes.get(&w.from) else {
            return false;
        };
        self.same_upstream(w, e, &up.addr) && params(w).is_ok_and(|p| p == e.params)
    }

    /// Whether a reported edge pulls the wanted edge's stream from its
    /// upstream node (at `up_addr`; through its gateway for another site's).
    fn same_upstream(&self, w: &WantedEdge, e: &EdgeStatus, up_addr: &str) -> bool {
        let (addr, stream) = upstream_of(up_addr, &w.stream);
        e.stream == stream
            && (same_addr(&e.upstream, &addr)
                || (addr == up_addr && self.name_at(&e.upstream) == Some(w.from.as_str())))
    }
}

/// `a, b, c` for people.
fn list(formats: &[Format]) -> String {
    formats.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
