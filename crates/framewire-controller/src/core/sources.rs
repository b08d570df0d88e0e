//! The wanted sources: started on their nodes with SOURCE_ADD (again after
//! a node restarts), changed with SOURCE_SET when their table changes (or
//! when a newly wanted one names a stream the node already serves),
//! removed with SOURCE_REMOVE when the wanted graph drops one this
//! controller started. A source a node refuses is not asked for again
//! until the wanted graph changes; the refusal shows on the node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use super::*;
use crate::model::WantedSource;

/// What the reconciler keeps about wanted sources, by `node/name`.
#[derive(Debug, Default)]
pub(crate) struct SourceBook {
    /// SOURCE_ADD/SET/REMOVE in flight, and when sent.
    pending: HashMap<String, Instant>,
    /// Sources this controller started (it may remove them).
    made: BTreeSet<String>,
    /// Wanted sources whose table changed: a SOURCE_SET is due.
    changed: BTreeSet<String>,
    /// Sources no longer wanted that this controller started.
    removing: BTreeMap<String, (String, String)>,
    /// Refusals, until the wanted graph changes.
    refused: HashMap<String, String>,
}

fn key(node: &str, name: &str) -> String {
    format!("{node}/{name}")
}

impl Core {
    /// The wanted graph's sources are replaced (called by `set_wanted`).
    pub(crate) fn set_wanted_sources(&mut self, new: &[WantedSource]) {
        let book = &mut self.sources;
        for old in &self.wanted.sources {
            let k = key(&old.node, old.name());
            match new.iter().find(|n| n.node == old.node && n.name() == old.name()) {
                None => {
                    book.changed.remove(&k);
                    if book.made.contains(&k) {
                        book.removing
                            .insert(k.clone(), (old.node.clone(), old.name().to_owned()));
                    }
                }
                Some(n) if n.table != old.table => {
                    book.changed.insert(k.clone());
                }
                Some(_) => {}
            }
            book.pending.remove(&k);
        }
        for n in new {
            let k = key(&n.node, n.name());
            book.removing.remove(&k);
            book.refused.remove(&k);
            // Newly wanted: a stream of that name the node already serves
            // (of its own configuration, say) is set to this table. A node
            // answers a SOURCE_SET of the table it runs without a change.
            if !self
                .wanted
                .sources
                .iter()
                .any(|o| o.node == n.node && o.name() == n.name())
            {
                book.changed.insert(k);
            }
        }
    }

    /// The source actions due now.
    pub(crate) fn plan_sources(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let book = &mut self.sources;
        let due = |pending: &HashMap<String, Instant>, k: &str| {
            pending
                .get(k)
                .is_none_or(|t| now.saturating_duration_since(*t) >= RETRY_AFTER)
        };
        let serves = |nodes: &BTreeMap<String, NodeRecord>, node: &str, name: &str| -> Option<bool> {
            let rec = nodes.get(node).filter(|r| r.online)?;
            let r = rec.report.as_ref()?;
            Some(r.streams.iter().any(|s| s.open.name == name))
        };
        book.removing.retain(|k, (node, name)| {
            match serves(&self.nodes, node, name) {
                Some(false) => {
                    book.made.remove(k);
                    false // gone
                }
                Some(true) if due(&book.pending, k) => {
                    actions.push(Action::RemoveSource {
                        node: node.clone(),
                        name: name.clone(),
                    });
                    true
                }
                _ => true,
            }
        });
        for w in &self.wanted.sources {
            let k = key(&w.node, w.name());
            if book.refused.contains_key(&k) || !due(&book.pending, &k) {
                continue;
            }
            let set = match serves(&self.nodes, &w.node, w.name()) {
                None => continue,
                Some(false) => false,
                Some(true) if book.changed.contains(&k) => true,
                Some(true) => continue,
            };
            actions.push(Action::Source {
                node: w.node.clone(),
                table: w.table.clone(),
                set,
            });
        }
        for a in &actions {
            let k = match a {
                Action::Source { node, table, .. } => key(
                    node,
                    table.get("name").and_then(toml::Value::as_str).unwrap_or_default(),
                ),
                Action::RemoveSource { node, name } => key(node, name),
                _ => continue,
            };
            book.pending.insert(k, now);
        }
        actions
    }

    /// The answer to a source action.
    pub(crate) fn on_source_result(&mut self, action: &Action, result: Result<(), String>) {
        let book = &mut self.sources;
        let (k, what) = match action {
            Action::Source { node, table, set } => (
                key(
                    node,
                    table.get("name").and_then(toml::Value::as_str).unwrap_or_default(),
                ),
                if *set { "SOURCE_SET" } else { "SOURCE_ADD" },
            ),
            Action::RemoveSource { node, name } => (key(node, name), "SOURCE_REMOVE"),
            _ => return,
        };
        match (action, result) {
            (Action::Source { set, .. }, Ok(())) => {
                // Only what it started is its own to remove later.
                if !set {
                    book.made.insert(k.clone());
                }
                book.changed.remove(&k);
            }
            (_, Ok(())) => {
                book.made.remove(&k);
                book.removing.remove(&k);
            }
            // A stream of that name is there already (the node's own
            // configuration, or an answer that crossed a report): satisfied.
            (Action::Source { set: false, .. }, Err(e)) if e.contains("exists") => {}
            (_, Err(e)) => {
                if let Some(n) = self.nodes.get_mut(action.node()) {
                    n.error = Some(format!("{what} {k}: {e}"));
                }
                if matches!(action, Action::Source { .. }) {
                    book.refused.insert(k.clone(), e);
                }
                book.pending.remove(&k);
            }
        }
        // After a success the entry stays until RETRY_AFTER: the node's
        // report showing the change may come after this answer.
    }

    /// Source actions in flight to a node that went away are lost.
    pub(crate) fn sources_down(&mut self, names: &[String]) {
        self.sources
            .pending
            .retain(|k, _| !names.iter().any(|n| k.starts_with(&format!("{n}/"))));
    }
}
