//! Validation of a wanted graph before it is stored: names, nodes,
//! streams, formats along chains, cycles.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use framewire_proto::Format;
use framewire_proto::control::EdgeOrigin;

use super::*;
use crate::model::{Refusal, WantedEdge, WantedGraph};

impl Core {
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
            if let Err(reason) = super::policy::check(e) {
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
            if super::is_remote(&e.to) {
                refuse(
                    i,
                    e,
                    format!(
                        "{:?} is a node of another site: an edge goes to a node of this site \
                         (it may come from any site); wire that site's nodes from its own controller",
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
        self.validate_sources(wanted, &mut refusals);
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

    /// The wanted sources: a known node, a kind and a valid name, one
    /// source per stream name on a node, and no wanted edge serving that
    /// name there. Refusals name the source by its index in `source`,
    /// after the edges (`edges.len() + i`).
    fn validate_sources(&self, wanted: &WantedGraph, refusals: &mut Vec<Refusal>) {
        let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, w) in wanted.sources.iter().enumerate() {
            let mut refuse = |reason: String| {
                refusals.push(Refusal {
                    index: wanted.edges.len() + i,
                    edge: format!("source {}/{}", w.node, w.name()),
                    reason,
                });
            };
            if w.kind().is_empty() {
                refuse("a source needs `kind = \"...\"` (test-pattern, v4l2, x11, solid)".into());
                continue;
            }
            if let Err(e) = names::check(NameKind::Stream, w.name()) {
                refuse(format!("name: {e}"));
                continue;
            }
            if let Err(e) = check_node_ref(&w.node) {
                refuse(format!("node: {e}"));
                continue;
            }
            if !self.nodes.contains_key(&w.node) {
                refuse(format!("no node named {:?} (known: {})", w.node, self.known_nodes()));
                continue;
            }
            if let Some(first) = seen.insert((w.node.as_str(), w.name()), i) {
                refuse(format!(
                    "node {:?} already gets a source named {:?} from source {first}",
                    w.node,
                    w.name()
                ));
                continue;
            }
            if wanted.edges.iter().any(|e| e.to == w.node && local_name(e) == w.name()) {
                refuse(format!(
                    "a wanted edge serves {:?} on node {:?}: give the source or the edge another name",
                    w.name(),
                    w.node
                ));
            }
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
        if wanted.sources.iter().any(|s| s.node == node && s.name() == stream) {
            return Some(None); // a wanted source will make it
        }
        // `BASE~FORMAT`: the node transcodes BASE for whoever asks.
        if let Some((base, Ok(spec))) = framewire_net::parse_derived(stream)
            && self.stream_format(wanted, node, base, depth + 1).is_some()
        {
            return Some(Some(spec.format));
        }
        let w = wanted.edges.iter().find(|w| w.to == node && local_name(w) == stream)?;
        Some(self.stream_format(wanted, &w.from, &w.stream, depth + 1).flatten())
    }
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
