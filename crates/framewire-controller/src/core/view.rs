//! The current graph as a viewer sees it: nodes, streams, edges and
//! their figures, joined from the reports and the wanted graph.

use std::collections::{BTreeSet, HashMap};

use framewire_proto::TransportMode;

use super::*;
use crate::model::{CurrentGraph, EdgeView, NodeView, OutputView, StreamView};

impl Core {
    /// The current graph (version and time are the caller's).
    pub(crate) fn graph(&self) -> CurrentGraph {
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        let mut live_ids = BTreeSet::new();
        // Outputs already joined to an edge, so two edges never share one.
        let mut used: BTreeSet<(String, String, u16)> = BTreeSet::new();
        // Looked up once per graph, not once per edge: with hundreds of
        // nodes and edges the graph is built for every report.
        let wanted_by_id: HashMap<String, &WantedEdge> = self
            .wanted
            .edges
            .iter()
            .rev()
            .map(|w| (edge_id(&w.to, local_name(w)), w))
            .collect();
        let mut names_at: HashMap<&str, String> = HashMap::new();
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
            // An upstream's output for this node is named `ADDR NAME`.
            let peer_suffix = format!(" {}", d.name);
            for e in &r.edges {
                let id = edge_id(name, &e.local_name);
                // The node serving the edge (a gateway, for another site's
                // stream), and the node the stream comes from.
                let serving = names_at
                    .entry(e.upstream.as_str())
                    .or_insert_with(|| {
                        self.name_at(&e.upstream)
                            .map_or_else(|| e.upstream.clone(), str::to_owned)
                    })
                    .clone();
                let (upstream, stream) = match framewire_net::discovery::parse_remote_stream(&e.stream) {
                    Some((bare, site, node)) if self.nodes.contains_key(&node_key(site, node)) => {
                        (node_key(site, node), bare.to_owned())
                    }
                    _ => (serving.clone(), e.stream.clone()),
                };
                let wanted = wanted_by_id
                    .get(&id)
                    .is_some_and(|w| self.matches(&self.effective(w), e));
                let mut view = EdgeView {
                    id: id.clone(),
                    upstream,
                    stream,
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
                    policy: self.adjustment_note(&id).map(str::to_owned),
                    ..EdgeView::default()
                };
                // Join the upstream's output for this subscriber.
                if let Some(up) = self.nodes.get(&serving)
                    && let Some(ur) = &up.report
                    && let Some(o) = ur.stats.outputs.iter().find(|o| {
                        o.stream == e.stream
                            && o.peer.ends_with(&peer_suffix)
                            && !used.contains(&(o.stream.clone(), o.peer.clone(), o.channel))
                    })
                {
                    let key = (o.stream.clone(), o.peer.clone(), o.channel);
                    let rate = up.rates.get(&key).copied().unwrap_or_default();
                    used.insert(key);
                    view.fps = round2(rate.fps);
                    view.mbit_s = round2(rate.mbit_s);
                    view.drops = o.drops.iter().map(|d| d.count).sum();
                    if let Some(share) = rate.drop_share {
                        view.drop_share = (share * 1000.0).round() / 1000.0;
                        if share > self.alerts.share {
                            view.alert = Some(format!(
                                "dropped {:.0} % of the frames offered over the last {} s (alert above {:.0} %)",
                                share * 100.0,
                                self.alerts.window.as_secs(),
                                self.alerts.share * 100.0
                            ));
                        }
                    }
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
                policy: self.adjustment_note(&id).map(str::to_owned),
                upstream: w.from.clone(),
                stream: w.stream.clone(),
                downstream: w.to.clone(),
                local_name: local.to_owned(),
                mode: w.mode.clone(),
                priority: w.priority,
                state: state.into(),
                wanted: true,
                id,
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

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
