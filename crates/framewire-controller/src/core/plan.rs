//! The reconciler: the wanted graph replaced, and the next CONNECTs and
//! DISCONNECTs that bring the nodes to it.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use framewire_proto::control::{Connect, EdgeOrigin};

use super::*;
use crate::model::{WantedEdge, WantedGraph};

impl Core {
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
        self.set_wanted_sources(&wanted.sources);
        self.keep_adjustments(&wanted);
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
        // As the reconciler makes them: with what `on_alert` policies changed.
        let effective: Vec<WantedEdge> = self
            .wanted
            .edges
            .iter()
            .map(|w| self.effective(w).into_owned())
            .collect();
        for w in &effective {
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
                Some(e) if e.origin == EdgeOrigin::Connect && self.budgets_only(w, e) => {
                    // Only its budgets differ: changed in place by CONNECT.
                    if due(&self.pending, &id) {
                        let (upstream, stream) = upstream_of(&up.addr, &w.stream);
                        actions.push(Action::Connect {
                            node: w.to.clone(),
                            connect: Connect {
                                upstream,
                                stream,
                                local_name: local.to_owned(),
                                params: p,
                                weight: w.weight.max(1),
                                max_rate: w.max_rate,
                            },
                        });
                    }
                }
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
                        let (upstream, stream) = upstream_of(&up.addr, &w.stream);
                        actions.push(Action::Connect {
                            node: w.to.clone(),
                            connect: Connect {
                                upstream,
                                stream,
                                local_name: local.to_owned(),
                                params: p,
                                weight: w.weight.max(1),
                                max_rate: w.max_rate,
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
                Action::Source { .. } | Action::RemoveSource { .. } => None,
            };
        }
        // Sources first: an edge may pull a stream a wanted source makes.
        let mut all = self.plan_sources(now);
        all.extend(actions);
        all
    }
}
