//! What the core is told: node reports, connections up and down, and
//! the results of the requests the driver sent.

use std::collections::HashMap;
use std::time::Instant;

use framewire_proto::control::StatusReport;

use super::*;

impl Core {
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
            samples: HashMap::new(),
        });
        rec.addr = addr.to_owned();
        rec.online = true;
        rec.error = None;
        let mut rates = HashMap::new();
        let mut samples = HashMap::new();
        let alerts = self.alerts;
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
            // Drops over the alert window: the oldest sample in it against now.
            let offered = o.frames_in;
            let dropped: u64 = o.drops.iter().map(|d| d.count).sum();
            let hist = samples
                .entry(key.clone())
                .or_insert_with(|| rec.samples.remove(&key).unwrap_or_default());
            hist.push_back((now, offered, dropped));
            while hist.len() > 2
                && hist
                    .front()
                    .is_some_and(|(t, ..)| now.saturating_duration_since(*t) > alerts.window)
            {
                hist.pop_front();
            }
            while hist.len() > 256 {
                hist.pop_front();
            }
            r.drop_share = hist.front().and_then(|&(_, f0, d0)| {
                let (df, dd) = (offered.saturating_sub(f0), dropped.saturating_sub(d0));
                (df >= alerts.min_frames).then(|| dd as f64 / df as f64)
            });
            rates.insert(key, r);
        }
        rec.rates = rates;
        rec.samples = samples;
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
                self.wanted_by_id(&id)
                    .is_some_and(|w| self.matches(&self.effective(w), e))
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

    /// Forgets the node `name` if it is offline: it leaves the graph.
    pub(crate) fn forget(&mut self, name: &str) -> Forget {
        match self.nodes.get(name) {
            None => Forget::Unknown,
            Some(n) if n.online => Forget::Online,
            Some(_) => {
                let Some(n) = self.nodes.remove(name) else {
                    return Forget::Unknown;
                };
                let mine = |id: &String| id.starts_with(&format!("{name}/"));
                self.pending.retain(|id, _| !mine(id));
                self.unpending.retain(|id, _| !mine(id));
                self.edge_errors.retain(|id, _| !mine(id));
                self.removing.retain(|_, (node, _)| node != name);
                self.v4l2_at.remove(&n.addr);
                Forget::Forgotten(n.addr)
            }
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
        self.sources_down(&names);
    }

    /// The result of a CONNECT or DISCONNECT the reconciler sent.
    pub(crate) fn on_action_result(&mut self, action: &Action, result: Result<(), String>) {
        if matches!(action, Action::Source { .. } | Action::RemoveSource { .. }) {
            return self.on_source_result(action, result);
        }
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
            (Action::Source { .. } | Action::RemoveSource { .. }, Err(_)) => {}
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
}
