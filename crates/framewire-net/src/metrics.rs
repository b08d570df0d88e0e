//! Prometheus metrics: `GET /metrics` in the text exposition format 0.0.4.
//!
//! [`render`] is a pure function from a [`MetricsSnapshot`] (the node's
//! counters, its edges and the process's figures) to the text, so any HTTP
//! server can mount it: a node serves it itself on
//! [`NodeConfig::metrics`](crate::NodeConfig::metrics), and a web server in
//! the same process calls [`Node::metrics_text`](crate::Node::metrics_text).
//! Every metric is named `framewire_*` and has HELP and TYPE lines; label
//! values are escaped (backslash, double quote, newline).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use framewire_proto::control::{Stats, StreamState};
use tracing::{info, warn};

use crate::error::NetError;

/// Where `--metrics` serves when given without an address.
pub const DEFAULT_METRICS_PORT: u16 = 9400;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Figures about the process, read from `/proc/self`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Virtual memory, bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
}

impl ProcessStats {
    /// Reads `/proc/self/stat`, `/proc/self/statm` and `/proc/self/fd`.
    /// A figure that cannot be read stays 0.
    pub fn read() -> ProcessStats {
        let mut p = ProcessStats::default();
        // SAFETY: sysconf has no preconditions; it only reads a constant.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some((utime, stime)) = parse_stat_times(&stat)
            && ticks > 0
        {
            p.cpu_seconds = (utime + stime) as f64 / ticks as f64;
        }
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            let mut f = statm.split_ascii_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
            let page = u64::try_from(page).unwrap_or(4096);
            p.virtual_bytes = f.next().unwrap_or(0) * page;
            p.resident_bytes = f.next().unwrap_or(0) * page;
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory's own descriptor is counted too: remove it.
            p.open_fds = (dir.count() as u64).saturating_sub(1);
        }
        p
    }
}

/// `utime` and `stime` (fields 14 and 15) of `/proc/PID/stat`. The command
/// name (field 2) is in parentheses and may hold spaces: count from the
/// last `)`.
fn parse_stat_times(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_ascii_whitespace();
    // Fields 3.. follow; utime is field 14, i.e. the 12th after the name.
    let utime = f.nth(11)?.parse().ok()?;
    let stime = f.next()?.parse().ok()?;
    Some((utime, stime))
}

/// A pulled edge as the metrics see it.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeMetrics {
    /// The local stream name.
    pub stream: String,
    /// `host:port/stream` upstream.
    pub upstream: String,
    /// Live, interrupted, failed.
    pub state: StreamState,
    /// Age of the last frame when it arrived here (capture time to
    /// arrival, seconds; includes the clock offset between the hosts).
    pub latency_seconds: Option<f64>,
}

/// Everything [`render`] shows.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    /// The node's name.
    pub node: String,
    /// Software version.
    pub version: String,
    /// Site id.
    pub site_id: u16,
    /// Seconds since the node started.
    pub uptime_seconds: f64,
    /// TCP connections open now.
    pub connections: u64,
    /// Connections refused by authentication.
    pub auth_refusals: u64,
    /// Whether a deployment key is configured.
    pub auth_required: bool,
    /// Inputs and outputs.
    pub stats: Stats,
    /// Pulled edges.
    pub edges: Vec<EdgeMetrics>,
    /// The process.
    pub process: ProcessStats,
    /// Discovery's refusals and conflicts (none: discovery is off).
    pub discovery: Option<crate::transport::discovery::DiscoveryCounters>,
}

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

fn fmt_value(v: f64) -> String {
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
    if let Some(d) = &m.discovery {
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
    Family::new(
        o,
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time of the process, seconds.",
    )
    .sample(&[], m.process.cpu_seconds);
    Family::new(
        o,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of the process.",
    )
    .sample(&[], m.process.resident_bytes as f64);
    Family::new(
        o,
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory of the process.",
    )
    .sample(&[], m.process.virtual_bytes as f64);
    Family::new(o, "process_open_fds", "gauge", "Open file descriptors of the process.")
        .sample(&[], m.process.open_fds as f64);

    // Inputs: local sources and pulled edges.
    let kind = |up: &str| if up.is_empty() { "source" } else { "edge" };
    let mut f = Family::new(
        o,
        "framewire_input_frames_total",
        "counter",
        "Frames received or produced, per stream.",
    );
    for i in &m.stats.inputs {
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
    for i in &m.stats.inputs {
        f.sample(&[("stream", &i.stream), ("kind", kind(&i.upstream))], i.bytes_in as f64);
    }
    let mut f = Family::new(
        o,
        "framewire_input_state",
        "gauge",
        "State of each stream: 1 for the current state, 0 for the others.",
    );
    for i in &m.stats.inputs {
        for s in STATES {
            let v = if s == i.state { 1.0 } else { 0.0 };
            f.sample(&[("stream", &i.stream), ("state", s.label())], v);
        }
    }

    // Pulled edges.
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

    // Outputs.
    // Two local sinks of one kind on one stream share every label: number
    // the later ones so that each series stays unique.
    let mut seen: HashMap<(&str, &str, &str, u16), u32> = HashMap::new();
    let outs: Vec<([(&str, String); 4], &framewire_proto::control::OutputStats)> = m
        .stats
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
    out
}

/// Reads everything `/metrics` shows, now.
pub(crate) type Sampler = Arc<dyn Fn() -> MetricsSnapshot + Send + Sync>;

/// Serves `GET /metrics` on `addr` until `stop` turns true.
pub(crate) async fn start(
    addr: SocketAddr,
    sample: Sampler,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), NetError> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NetError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    info!(addr = %local, "metrics at http://{local}/metrics");
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let body = sample();
            async move { ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], render(&body)) }
        }),
    );
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        if let Err(e) = serve.await {
            warn!(error = %e, "metrics server stopped");
        }
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use framewire_proto::control::{DropCount, DropReason, InputStats, OutputStats};
    use framewire_proto::{DeliveryMode, TransportMode};

    use super::*;

    fn snapshot() -> MetricsSnapshot {
        MetricsSnapshot {
            node: "lab:relay".into(),
            version: "0.1.0".into(),
            site_id: 0,
            uptime_seconds: 12.5,
            connections: 3,
            auth_refusals: 2,
            auth_required: true,
            stats: Stats {
                inputs: vec![
                    InputStats {
                        stream: "cam".into(),
                        state: StreamState::Live,
                        upstream: String::new(),
                        frames_in: 100,
                        bytes_in: 5000,
                        reconnects: 0,
                    },
                    InputStats {
                        stream: "far".into(),
                        state: StreamState::Failed,
                        upstream: "10.0.0.1:7400/x".into(),
                        frames_in: 7,
                        bytes_in: 70,
                        reconnects: 4,
                    },
                ],
                outputs: vec![OutputStats {
                    channel: 1,
                    stream: "cam".into(),
                    peer: "127.0.0.1:5555 a \"quoted\\ name\"\nx".into(),
                    mode: DeliveryMode::LowLatency,
                    transport: TransportMode::Encapsulated,
                    priority: 128,
                    frames_in: 100,
                    frames_sent: 90,
                    bytes_sent: 4500,
                    drops: vec![DropCount {
                        reason: DropReason::Replaced,
                        count: 10,
                    }],
                    queue_frames: 1,
                    queue_bytes: 50,
                    max_frames: 1,
                    max_bytes: 1 << 20,
                    oldest_age_us: 1500,
                    latency_p50_us: 250,
                    latency_p99_us: 1200,
                    latency_max_us: 3000,
                    waiting_keyframe: false,
                }],
                input_events: Vec::new(),
            },
            edges: vec![EdgeMetrics {
                stream: "far".into(),
                upstream: "10.0.0.1:7400/x".into(),
                state: StreamState::Failed,
                latency_seconds: Some(0.004),
            }],
            process: ProcessStats {
                cpu_seconds: 1.25,
                resident_bytes: 4096,
                virtual_bytes: 8192,
                open_fds: 9,
            },
            discovery: Some(crate::transport::discovery::DiscoveryCounters {
                conflicts: 4,
                table_full: 0,
                address_full: 7,
                forward_dropped: 0,
            }),
        }
    }

    #[test]
    fn renders_families_with_help_type_and_escaped_labels() {
        let text = render(&snapshot());
        assert!(text.contains("# TYPE framewire_output_frames_sent_total counter\n"));
        assert!(text.contains("# HELP framewire_output_frames_sent_total "));
        assert!(text.contains(
            "framewire_output_frames_sent_total{stream=\"cam\",peer=\"127.0.0.1:5555 a \\\"quoted\\\\ name\\\"\\nx\",mode=\"low-latency\",channel=\"1\"} 90\n"
        ), "{text}");
        assert!(text.contains("reason=\"replaced\"} 10\n"));
        assert!(text.contains("reason=\"frame-budget\"} 0\n") || text.contains("reason=\"frame_budget\"} 0\n"));
        assert!(text.contains(",quantile=\"0.99\"} 0.0012\n"), "{text}");
        assert!(text.contains("framewire_output_send_latency_max_seconds{"));
        assert!(text.contains("framewire_edge_reconnects_total{stream=\"far\",upstream=\"10.0.0.1:7400/x\"} 4\n"));
        assert!(text.contains("framewire_edge_failed{stream=\"far\",upstream=\"10.0.0.1:7400/x\"} 1\n"));
        assert!(text.contains("framewire_edge_latency_seconds{stream=\"far\",upstream=\"10.0.0.1:7400/x\"} 0.004\n"));
        assert!(text.contains("framewire_input_state{stream=\"far\",state=\"failed\"} 1\n"));
        assert!(text.contains("framewire_input_state{stream=\"far\",state=\"live\"} 0\n"));
        assert!(text.contains("process_cpu_seconds_total 1.25\n"));
        assert!(text.contains("process_resident_memory_bytes 4096\n"));
        assert!(text.contains("framewire_auth_refusals_total 2\n"));
        assert!(text.contains("framewire_discovery_conflicts_total 4\n"), "{text}");
        assert!(
            text.contains("framewire_discovery_refused_peers_total{reason=\"address-share\"} 7\n"),
            "{text}"
        );
        assert!(text.contains("auth=\"hmac-sha256\""));
        // Every family has HELP and TYPE before its samples, once.
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(typed.insert(name.to_owned()), "TYPE twice for {name}");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name), "sample before TYPE: {line}");
                assert!(name.starts_with("framewire_") || name.starts_with("process_"), "{name}");
            }
        }
    }

    #[test]
    fn identical_outputs_get_distinct_series() {
        let mut m = snapshot();
        let mut second = m.stats.outputs[0].clone();
        second.peer = "null".into();
        second.channel = 0;
        m.stats.outputs = vec![second.clone(), second];
        let text = render(&m);
        assert!(text.contains(
            "framewire_output_frames_sent_total{stream=\"cam\",peer=\"null\",mode=\"low-latency\",channel=\"0\"} 90\n"
        ));
        assert!(text.contains("framewire_output_frames_sent_total{stream=\"cam\",peer=\"null #2\",mode=\"low-latency\",channel=\"0\"} 90\n"));
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_label("plain"), "plain");
    }

    #[test]
    fn formats_values() {
        assert_eq!(fmt_value(3.0), "3");
        assert_eq!(fmt_value(0.25), "0.25");
        assert_eq!(fmt_value(f64::NAN), "NaN");
        assert_eq!(fmt_value(f64::INFINITY), "+Inf");
        assert_eq!(fmt_value(1e20), "100000000000000000000");
    }

    #[test]
    fn parses_proc_stat_with_spaces_in_the_name() {
        let stat = "1234 (a b) c) S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 15";
        assert_eq!(parse_stat_times(stat), Some((111, 222)));
        assert_eq!(parse_stat_times("garbage"), None);
        assert_eq!(parse_stat_times("1 (x) S 1"), None);
    }

    #[test]
    fn reads_this_process() {
        let p = ProcessStats::read();
        assert!(p.resident_bytes > 0);
        assert!(p.open_fds >= 3, "{p:?}");
        // Burn some CPU and see the counter move.
        let before = p.cpu_seconds;
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(150) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(ProcessStats::read().cpu_seconds > before);
    }
}
