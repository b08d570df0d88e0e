//! The alert list, sans-IO: the current graph and the supervisor's status
//! in, with the time; alerts raised, updated and cleared out. An alert is
//! one condition on one subject (a node offline, a stream interrupted, an
//! edge congested, an archive's storage full, a supervised node failed)
//! from the moment it appears until it goes; an operator acknowledges it.

use std::collections::{BTreeMap, VecDeque};

use framewire_controller::CurrentGraph;
use serde::Serialize;

/// Most alerts kept: every active one, and the newest cleared ones up to
/// this many in all.
pub const MAX_ALERTS: usize = 200;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The controller lost its connection to a node it had reached.
    NodeOffline,
    /// A stream a node makes itself (a camera, a grab, a feed) is
    /// interrupted or failed.
    DeviceLost,
    /// An edge drops more than the alert share of its frames.
    EdgeCongested,
    /// An archive cannot write: its storage is full or failed.
    StorageFull,
    /// A node `framewire up` supervises failed (ended too often).
    ChildFailed,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Grows by one per alert raised.
    pub id: u64,
    /// What it is about.
    pub kind: Kind,
    /// The node, stream, edge or archive (`node/stream`, an edge id, …).
    pub subject: String,
    /// What is wrong, in words.
    pub message: String,
    /// When it was raised, ms since the Unix epoch.
    pub raised_ms: u64,
    /// Whether the condition still holds.
    pub active: bool,
    /// When the condition went, ms since the Unix epoch.
    pub cleared_ms: Option<u64>,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
    /// When, ms since the Unix epoch.
    pub acked_ms: Option<u64>,
}

/// A supervised node as `framewire up`'s status file has it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostNode {
    /// Its name in the host file.
    pub name: String,
    /// `running`, `restarting`, `failed`, …
    pub state: String,
    /// Why it failed.
    pub reason: String,
}

/// The alerts, newest last.
#[derive(Debug, Default)]
pub struct Alerts {
    list: VecDeque<Alert>,
    next_id: u64,
    version: u64,
    /// Nodes seen online at least once: an offline node is only an alert
    /// after the controller reached it.
    seen_online: std::collections::BTreeSet<String>,
}

/// The conditions that hold now, by kind and subject, with their message.
type Conditions = BTreeMap<(Kind, String), String>;

impl Alerts {
    /// Grows on every change of the list.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every alert kept, oldest first.
    pub fn list(&self) -> impl Iterator<Item = &Alert> {
        self.list.iter()
    }

    /// Takes in the state now: raises what appeared, updates what changed,
    /// clears what went. `host` is `None` when no supervisor is known (its
    /// alerts then stay as they are). Returns whether the list changed.
    pub fn observe(&mut self, graph: &CurrentGraph, host: Option<&[HostNode]>, now_ms: u64) -> bool {
        let mut now = self.graph_conditions(graph);
        match host {
            Some(nodes) => {
                for n in nodes.iter().filter(|n| n.state == "failed") {
                    let why = if n.reason.is_empty() {
                        "no reason given"
                    } else {
                        &n.reason
                    };
                    now.insert(
                        (Kind::ChildFailed, n.name.clone()),
                        format!("supervised node {} failed: {why}", n.name),
                    );
                }
            }
            None => {
                // Unknown: keep what is raised as it is.
                for a in self.list.iter().filter(|a| a.active && a.kind == Kind::ChildFailed) {
                    now.insert((a.kind, a.subject.clone()), a.message.clone());
                }
            }
        }
        self.apply(now, now_ms)
    }

    fn graph_conditions(&mut self, graph: &CurrentGraph) -> Conditions {
        let mut c = Conditions::new();
        for n in &graph.nodes {
            if n.online {
                self.seen_online.insert(n.name.clone());
            } else if self.seen_online.contains(&n.name) {
                let why = n.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
                c.insert(
                    (Kind::NodeOffline, n.name.clone()),
                    format!("node {} is offline{why}", n.name),
                );
            }
            if !n.online {
                continue;
            }
            for s in &n.streams {
                let relayed = graph
                    .edges
                    .iter()
                    .any(|e| e.downstream == n.name && e.local_name == s.name);
                if !relayed && (s.state == "interrupted" || s.state == "failed") {
                    c.insert(
                        (Kind::DeviceLost, format!("{}/{}", n.name, s.name)),
                        format!(
                            "stream {}/{} is {}: its source stopped delivering",
                            n.name, s.name, s.state
                        ),
                    );
                }
                for o in &s.outputs {
                    if let Some(why) = storage_fault(&o.peer) {
                        let dir = o.peer.split(" [").next().unwrap_or(&o.peer);
                        c.insert(
                            (Kind::StorageFull, format!("{}/{} {dir}", n.name, s.name)),
                            format!("archive of {}/{} cannot record: {why}", n.name, s.name),
                        );
                    }
                }
            }
        }
        for e in &graph.edges {
            if let Some(why) = &e.alert {
                c.insert(
                    (Kind::EdgeCongested, e.id.clone()),
                    format!("edge {} is congested: {why}", e.id),
                );
            }
        }
        c
    }

    fn apply(&mut self, mut now: Conditions, now_ms: u64) -> bool {
        let mut changed = false;
        for a in self.list.iter_mut().filter(|a| a.active) {
            match now.remove(&(a.kind, a.subject.clone())) {
                Some(msg) => {
                    if msg != a.message {
                        a.message = msg;
                        changed = true;
                    }
                }
                None => {
                    a.active = false;
                    a.cleared_ms = Some(now_ms);
                    changed = true;
                }
            }
        }
        for ((kind, subject), message) in now {
            self.next_id += 1;
            self.list.push_back(Alert {
                id: self.next_id,
                kind,
                subject,
                message,
                raised_ms: now_ms,
                active: true,
                cleared_ms: None,
                acked_by: None,
                acked_ms: None,
            });
            changed = true;
        }
        self.trim();
        if changed {
            self.version += 1;
        }
        changed
    }

    /// Drops the oldest cleared alerts (acknowledged ones first) past the cap.
    fn trim(&mut self) {
        for acked_only in [true, false] {
            while self.list.len() > MAX_ALERTS {
                let Some(i) = self
                    .list
                    .iter()
                    .position(|a| !a.active && (!acked_only || a.acked_by.is_some()))
                else {
                    break;
                };
                self.list.remove(i);
            }
        }
    }

    /// An operator acknowledges alert `id`; `None` when there is no such
    /// alert. Acknowledging again keeps the first acknowledgement.
    pub fn ack(&mut self, id: u64, by: &str, now_ms: u64) -> Option<Alert> {
        let a = self.list.iter_mut().find(|a| a.id == id)?;
        if a.acked_by.is_none() {
            a.acked_by = Some(by.to_owned());
            a.acked_ms = Some(now_ms);
            self.version += 1;
        }
        Some(a.clone())
    }
}

/// The archive's fault from a sink's label (`sink:archive:DIR [FULL (why),
/// …]` or `[STORAGE FAILED (why), …]`), if it has one.
fn storage_fault(peer: &str) -> Option<&str> {
    if !peer.starts_with("sink:archive") {
        return None;
    }
    let state = peer.split_once(" [")?.1;
    for tag in ["STORAGE FAILED (", "FULL ("] {
        if let Some(rest) = state.strip_prefix(tag) {
            return Some(
                rest.split_once("), ")
                    .map_or(rest.trim_end_matches([')', ']']), |(w, _)| w),
            );
        }
    }
    None
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
