//! The text format: every family with HELP and TYPE lines, label values
//! escaped (backslash, double quote, newline).

use std::collections::HashMap;
use std::fmt::Write as _;

use framewire_proto::control::{Stats, StreamState};

use super::{MetricsSnapshot, ProcessStats};
use crate::transport::discovery::DiscoveryCounters;

/// Escapes a label value: `\` `"` and newline.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

const STATES: [StreamState; 4] = [
    StreamState::Live,
    StreamState::Interrupted,
    StreamState::Failed,
    StreamState::Idle,
];

/// One metric family being written: HELP and TYPE once, then samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", fmt_value(value));
    }
}

pub(super) fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn us(v: impl Into<u64>) -> f64 {
    v.into() as f64 / 1e6
}

/// Renders a snapshot in the Prometheus text format 0.0.4.
pub fn render(m: &MetricsSnapshot) -> String {
    let mut out = String::with_capacity(4096);
    let o = &mut out;
    node(o, m);
    if let Some(d) = &m.discovery {
        discovery(o, d);
    }
    process(o, &m.process);
    inputs(o, &m.stats);
    edges(o, m);
    outputs(o, &m.stats);
    out
}

/// The node itself: who it is, since when, its connections and refusals.
fn node(o: &mut String, m: &MetricsSnapshot) {
    Family::new(
        o,
        "framewire_node_info",
        "gauge",
        "The node: name, version and site (value 1).",
    )
    .sample(
        &[
            ("node", &m.node),
            ("version", &m.version),
            ("site", &m.site_id.to_string()),
            ("auth", if m.auth_required { "hmac-sha256" } else { "none" }),
        ],
        1.0,
    );
    Family::new(
        o,
        "framewire_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
    )
    .sample(&[], m.uptime_seconds);
    Family::new(o, "framewire_connections", "gauge", "TCP connections open now.").sample(&[], m.connections as f64);
    Family::new(
        o,
        "framewire_auth_refusals_total",
        "counter",
        "Connections refused by authentication (wrong, missing or unexpected key).",
    )
    .sample(&[], m.auth_refusals as f64);
    Family::new(
        o,
        "framewire_busy_refusals_total",
        "counter",
        "Connections refused because the node served limits.max_connections at once.",
    )
    .sample(&[], m.busy_refusals as f64);
}

/// What discovery refused.
fn discovery(o: &mut String, d: &DiscoveryCounters) {
    Family::new(
        o,
        "framewire_discovery_peers",
        "gauge",
        "Peers in the discovery table now.",
    )
    .sample(&[], d.peers as f64);
    Family::new(
        o,
        "framewire_discovery_conflicts_total",
        "counter",
        "Node names claimed by a second address (the first claimant keeps them).",
    )
    .sample(&[], d.conflicts as f64);
    let mut refused = Family::new(
        o,
        "framewire_discovery_refused_peers_total",
        "counter",
        "Announced peers not taken into the table, by reason.",
    );
    refused.sample(&[("reason", "table-full")], d.table_full as f64);
    refused.sample(&[("reason", "address-share")], d.address_full as f64);
    Family::new(
        o,
        "framewire_discovery_forward_dropped_total",
        "counter",
        "New peers a gateway never forwarded because too many waited.",
    )
    .sample(&[], d.forward_dropped as f64);
}

/// The process: CPU, memory, descriptors.
fn process(o: &mut String, p: &ProcessStats) {
    Family::new(
        o,
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time of the process, seconds.",
    )
    .sample(&[], p.cpu_seconds);
    Family::new(
        o,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of the process.",
    )
    .sample(&[], p.resident_bytes as f64);
    Family::new(
        o,
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory of the process.",
    )
    .sample(&[], p.virtual_bytes as f64);
    Family::new(o, "process_open_fds", "gauge", "Open file descriptors of the process.").sample(&[], p.open_fds as f64);
}

/// Inputs: local sources and pulled edges.
fn inputs(o: &mut String, stats: &Stats) {
    let kind = |up: &str| if up.is_empty() { "source" } else { "edge" };
    let mut f = Family::new(
        o,
        "framewire_input_frames_total",
        "counter",
        "Frames received or produced, per stream.",
    );
    for i in &stats.inputs {
        f.sample(
            &[("stream", &i.stream), ("kind", kind(&i.upstream))],
            i.frames_in as f64,
        );
    }
    let mut f = Family::new(
        o,
        "framewire_input_bytes_total",
        "counter",
        "Payload bytes received or produced, per stream.",
    );
    for i in &stats.inputs {
        f.sample(&[("stream", &i.stream), ("kind", kind(&i.upstream))], i.bytes_in as f64);
    }
    let mut f = Family::new(
        o,
        "framewire_input_state",
        "gauge",
        "State of each stream: 1 for the current state, 0 for the others.",
    );
    for i in &stats.inputs {
        for s in STATES {
            let v = if s == i.state { 1.0 } else { 0.0 };
            f.sample(&[("stream", &i.stream), ("state", s.label())], v);
        }
    }
}

/// Pulled edges: counters from the inputs, states and latency from the edges.
fn edges(o: &mut String, m: &MetricsSnapshot) {
    let mut f = Family::new(
        o,
        "framewire_edge_frames_total",
        "counter",
        "Frames received on a pulled edge.",
    );
    for i in m.stats.inputs.iter().filter(|i| !i.upstream.is_empty()) {
        f.sample(&[("stream", &i.stream), ("upstream", &i.upstream)], i.frames_in as f64);
    }
    let mut f = Family::new(
        o,
        "framewire_edge_bytes_total",
        "counter",
        "Payload bytes received on a pulled edge.",
    );
    for i in m.stats.inputs.iter().filter(|i| !i.upstream.is_empty()) {
        f.sample(&[("stream", &i.stream), ("upstream", &i.upstream)], i.bytes_in as f64);
    }
    let mut f = Family::new(
        o,
        "framewire_edge_reconnects_total",
        "counter",
        "Times a pulled edge came back (or failed to connect, before it was ever live).",
    );
    for i in m.stats.inputs.iter().filter(|i| !i.upstream.is_empty()) {
        f.sample(
            &[("stream", &i.stream), ("upstream", &i.upstream)],
            f64::from(i.reconnects),
        );
    }
    let mut f = Family::new(
        o,
        "framewire_edge_replayed_frames_total",
        "counter",
        "Frames a pulled edge received again after it subscribed anew (the upstream's cached group of pictures) and did not pass on a second time.",
    );
    for e in &m.edges {
        f.sample(&[("stream", &e.stream), ("upstream", &e.upstream)], e.replayed as f64);
    }
    let mut f = Family::new(
        o,
        "framewire_edge_up",
        "gauge",
        "1 while a pulled edge is live, 0 while it is interrupted or failed.",
    );
    for e in &m.edges {
        let up = if e.state == StreamState::Live { 1.0 } else { 0.0 };
        f.sample(&[("stream", &e.stream), ("upstream", &e.upstream)], up);
    }
    let mut f = Family::new(
        o,
        "framewire_edge_failed",
        "gauge",
        "1 when a pulled edge is failed (no upstream for the reconnect window, or authentication refused).",
    );
    for e in &m.edges {
        let failed = if e.state == StreamState::Failed { 1.0 } else { 0.0 };
        f.sample(&[("stream", &e.stream), ("upstream", &e.upstream)], failed);
    }
    let mut f = Family::new(
        o,
        "framewire_edge_latency_seconds",
        "gauge",
        "Age of the last frame of a pulled edge when it arrived (capture to arrival; includes clock offset between hosts).",
    );
    for e in &m.edges {
        if let Some(l) = e.latency_seconds {
            f.sample(&[("stream", &e.stream), ("upstream", &e.upstream)], l);
        }
    }
}

/// Outputs: counters, queues, budgets, latency and drops of each.
fn outputs(o: &mut String, stats: &Stats) {
    // Two local sinks of one kind on one stream share every label: number
    // the later ones so that each series stays unique.
    let mut seen: HashMap<(&str, &str, &str, u16), u32> = HashMap::new();
    let outs: Vec<([(&str, String); 4], &framewire_proto::control::OutputStats)> = stats
        .outputs
        .iter()
        .map(|s| {
            let n = seen.entry((&s.stream, &s.peer, s.mode.label(), s.channel)).or_insert(0);
            *n += 1;
            let peer = if *n == 1 {
                s.peer.clone()
            } else {
                format!("{} #{n}", s.peer)
            };
            (
                [
                    ("stream", s.stream.clone()),
                    ("peer", peer),
                    ("mode", s.mode.label().to_owned()),
                    ("channel", s.channel.to_string()),
                ],
                s,
            )
        })
        .collect();
    let labels = |l: &[(&'static str, String); 4]| -> Vec<(&'static str, String)> { l.to_vec() };
    type Get = fn(&framewire_proto::control::OutputStats) -> f64;
    let simple: [(&'static str, &str, &str, Get); 9] = [
        (
            "framewire_output_frames_in_total",
            "counter",
            "Frames offered to an output.",
            |s| s.frames_in as f64,
        ),
        (
            "framewire_output_frames_sent_total",
            "counter",
            "Frames an output handed to its transport.",
            |s| s.frames_sent as f64,
        ),
        (
            "framewire_output_bytes_sent_total",
            "counter",
            "Bytes an output handed to its transport.",
            |s| s.bytes_sent as f64,
        ),
        (
            "framewire_output_queue_frames",
            "gauge",
            "Frames queued in an output now.",
            |s| f64::from(s.queue_frames),
        ),
        (
            "framewire_output_queue_bytes",
            "gauge",
            "Bytes queued in an output now.",
            |s| s.queue_bytes as f64,
        ),
        (
            "framewire_output_max_frames",
            "gauge",
            "An output's frame budget.",
            |s| f64::from(s.max_frames),
        ),
        ("framewire_output_max_bytes", "gauge", "An output's byte budget.", |s| {
            s.max_bytes as f64
        }),
        (
            "framewire_output_oldest_age_seconds",
            "gauge",
            "Age of the oldest frame queued in an output.",
            |s| us(s.oldest_age_us),
        ),
        (
            "framewire_output_send_latency_max_seconds",
            "gauge",
            "Longest send latency (arrival to written) of an output.",
            |s| us(s.latency_max_us),
        ),
    ];
    for (name, kind, help, get) in simple {
        let mut f = Family::new(o, name, kind, help);
        for (l, s) in &outs {
            let l = labels(l);
            let refs: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            f.sample(&refs, get(s));
        }
    }
    let mut f = Family::new(
        o,
        "framewire_output_send_latency_seconds",
        "gauge",
        "Send latency (arrival to written) of an output, by quantile over its recent frames.",
    );
    for (l, s) in &outs {
        for (q, v) in [("0.5", s.latency_p50_us), ("0.99", s.latency_p99_us)] {
            let mut refs: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            refs.push(("quantile", q));
            f.sample(&refs, us(v));
        }
    }
    let mut f = Family::new(
        o,
        "framewire_output_dropped_frames_total",
        "counter",
        "Frames an output dropped, by reason.",
    );
    for (l, s) in &outs {
        for reason in framewire_proto::control::DropReason::ALL {
            let n = s
                .drops
                .iter()
                .filter(|d| d.reason == reason)
                .map(|d| d.count)
                .sum::<u64>();
            let mut refs: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            refs.push(("reason", reason.label()));
            f.sample(&refs, n as f64);
        }
    }
}
