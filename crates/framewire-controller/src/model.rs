//! The graph as the controller sees it and as a person wants it. These
//! types are serialised as-is by the HTTP API (JSON) and, for the wanted
//! graph, stored as TOML or JSON.

use serde::{Deserialize, Serialize};

/// The live graph, rebuilt from node reports. `version` grows by one on
/// every change a browser should see.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurrentGraph {
    /// Bumped on every change.
    pub version: u64,
    /// Wall-clock time of the last change, ms since the Unix epoch.
    pub updated_ms: u64,
    /// Every node the controller knows, online or not.
    pub nodes: Vec<NodeView>,
    /// Every pulled edge a node reports, and every wanted edge not (yet) live.
    pub edges: Vec<EdgeView>,
}

/// One node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node's name (unique within its site; `site/name` when the site is not 0).
    pub name: String,
    /// `host:port` of its TCP listener.
    pub addr: String,
    /// Its site id (0: local).
    pub site_id: u16,
    /// Function flags: 0x1 source, 0x2 relay, 0x4 sink, 0x8 controller.
    pub functions: u16,
    /// Whether the controller's control connection to it is up.
    pub online: bool,
    /// Software string from DESCRIBE.
    pub software: String,
    /// Hostname from DESCRIBE.
    pub hostname: String,
    /// Uptime from DESCRIBE, ms.
    pub uptime_ms: u64,
    /// Whether it has V4L2 devices (LIST_DEVICES answered with at least one).
    pub v4l2: bool,
    /// Its streams.
    pub streams: Vec<StreamView>,
    /// Last error talking to it, if any (shown in the node panel).
    pub error: Option<String>,
}

/// One stream a node serves, with its STREAM_OPEN info.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamView {
    /// Name on that node.
    pub name: String,
    /// Format label (`mjpeg`, `qoi`, `raw`, `raw+zstd`, …).
    pub format: String,
    /// Pixel format label.
    pub pixel_format: String,
    /// Origin label (`device-native`, `encoded`, …).
    pub origin: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Nominal frame rate (fps_num / fps_den; 0 when unknown).
    pub fps: f64,
    /// State label (`live`, `interrupted`, `failed`, …).
    pub state: String,
    /// Its outputs (one per subscriber).
    pub outputs: Vec<OutputView>,
}

/// One output (subscriber) of a stream, with live figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputView {
    /// Who is subscribed (peer address and name).
    pub peer: String,
    /// `low-latency` or `completeness`.
    pub mode: String,
    /// `tcp`, `shm` or `opaque`.
    pub transport: String,
    /// Frames per second sent, over the last report interval.
    pub fps: f64,
    /// Megabits per second sent, over the last report interval.
    pub mbit_s: f64,
    /// Frames dropped, all reasons, since the output opened.
    pub drops: u64,
    /// Send latency percentiles, µs.
    pub latency_p50_us: u32,
    /// Send latency percentiles, µs.
    pub latency_p99_us: u32,
}

/// One edge: `downstream` pulls `stream` from `upstream` and serves it as
/// `local_name`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeView {
    /// Stable id: `"{downstream}/{local_name}"`.
    pub id: String,
    /// Upstream node name.
    pub upstream: String,
    /// Stream name on the upstream.
    pub stream: String,
    /// Downstream node name.
    pub downstream: String,
    /// Name the downstream serves it under.
    pub local_name: String,
    /// `low-latency` or `completeness`.
    pub mode: String,
    /// Path priority.
    pub priority: u8,
    /// Edge state on the downstream (`live`, `connecting`, `interrupted`, `failed`, `missing`…).
    pub state: String,
    /// Whether the wanted graph holds this edge.
    pub wanted: bool,
    /// Live figures, from the upstream's output for this subscriber.
    pub fps: f64,
    /// Live figures.
    pub mbit_s: f64,
    /// Live figures.
    pub drops: u64,
    /// Live figures, µs.
    pub latency_p50_us: u32,
    /// Live figures, µs.
    pub latency_p99_us: u32,
    /// Why this is not (yet) the wanted edge: the downstream refused the
    /// CONNECT, refuses the format, or holds the name with another edge.
    #[serde(default)]
    pub error: Option<String>,
    /// How the frames travel, from the upstream's output: `tcp` or `shm`
    /// (shared memory, both nodes on one host); empty while not live.
    #[serde(default)]
    pub transport: String,
    /// Dropped over offered frames in the alert window (0..1).
    #[serde(default)]
    pub drop_share: f64,
    /// Set while the edge drops more than the alert share of its frames
    /// over the alert window (`--alert-drop-share`, `--alert-window`).
    #[serde(default)]
    pub alert: Option<String>,
    /// What the wanted edge's `on_alert` policy changed (`on alert: queue
    /// shrunk to 4 frame(s)`), kept until the wanted edge changes.
    #[serde(default)]
    pub policy: Option<String>,
}

/// The edges and sources a person wants. Stored as TOML (`[[edge]]` and
/// `[[source]]` tables) or JSON (`{"edge": [...], "source": [...]}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WantedGraph {
    /// The wanted edges.
    #[serde(default, rename = "edge")]
    pub edges: Vec<WantedEdge>,
    /// The wanted sources: started on their nodes (SOURCE_ADD), again
    /// after a node restarts.
    #[serde(default, rename = "source", skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<WantedSource>,
}

/// A source a person wants on a node: `node`, then the source's own table
/// as a node's `[[source]]` holds it (`kind`, `name` and the kind's keys,
/// docs/config.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WantedSource {
    /// The node that runs it.
    pub node: String,
    /// `kind`, `name` and the kind's keys.
    #[serde(flatten)]
    pub table: toml::Table,
}

impl WantedSource {
    /// A source on `node` from its table.
    pub fn new(node: &str, table: toml::Table) -> WantedSource {
        WantedSource {
            node: node.to_owned(),
            table,
        }
    }

    /// The same source with `key` set to the string `value`.
    pub fn with_key(mut self, key: &str, value: &str) -> WantedSource {
        self.table.insert(key.to_owned(), toml::Value::String(value.to_owned()));
        self
    }

    /// The stream it serves (`name`), or "" when the table has none.
    pub fn name(&self) -> &str {
        self.table.get("name").and_then(toml::Value::as_str).unwrap_or_default()
    }

    /// Its kind, or "" when the table has none.
    pub fn kind(&self) -> &str {
        self.table.get("kind").and_then(toml::Value::as_str).unwrap_or_default()
    }
}

impl WantedGraph {
    /// The version of this content: 16 hex digits that change with any
    /// edit (FNV-1a of its JSON). GET /api/wanted gives it as the ETag and
    /// `framewire graph export` writes it into the file; a write that
    /// carries another one (If-Match) is refused, so two people editing
    /// at once cannot overwrite each other unseen.
    pub fn version(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in json {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// One wanted edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WantedEdge {
    /// Upstream node name.
    pub from: String,
    /// Stream name on the upstream.
    pub stream: String,
    /// Downstream node name (the one told to CONNECT).
    pub to: String,
    /// Name the downstream serves it under [default: the stream's name].
    #[serde(default)]
    pub local_name: String,
    /// `low-latency` (default) or `completeness`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Queue limit in frames; 0 = the upstream's default.
    #[serde(default)]
    pub max_frames: u32,
    /// Queue limit in bytes; 0 = the upstream's default.
    #[serde(default)]
    pub max_bytes: u64,
    /// `drop-oldest` (default) or `drop-newest`.
    #[serde(default = "default_drop")]
    pub drop_policy: String,
    /// 0 (lowest) to 255 (highest) [default: 128].
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Share of the upstream's link under a weighted scheduler, at least 1
    /// [default: 1]. Taken when the edge is made.
    #[serde(default = "default_weight", skip_serializing_if = "is_one")]
    pub weight: u16,
    /// Bytes per second the upstream may send of it; 0 = no cap [default: 0].
    /// Taken when the edge is made.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_rate: u64,
    /// What the controller does while the edge is in alert: `shrink` (its
    /// queue), `low-latency` (switch to it), `lower-quality` (of its
    /// `STREAM~mjpeg-qN` transcode) [default: empty, nothing].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub on_alert: String,
}

fn default_weight() -> u16 {
    1
}

fn is_one(w: &u16) -> bool {
    *w == 1
}

fn is_zero(r: &u64) -> bool {
    *r == 0
}

impl WantedEdge {
    /// `to` pulls `stream` from `from`, with every other field at its
    /// default (as a document that names only these three gets).
    pub fn new(from: &str, stream: &str, to: &str) -> WantedEdge {
        WantedEdge {
            from: from.into(),
            stream: stream.into(),
            to: to.into(),
            local_name: String::new(),
            mode: default_mode(),
            max_frames: 0,
            max_bytes: 0,
            drop_policy: default_drop(),
            priority: default_priority(),
            weight: 1,
            max_rate: 0,
            on_alert: String::new(),
        }
    }
}

fn default_mode() -> String {
    "low-latency".into()
}
fn default_drop() -> String {
    "drop-oldest".into()
}
fn default_priority() -> u8 {
    128
}

/// Why an apply was refused: which edge and the reason. Nothing changes
/// when any edge is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Index of the edge in the submitted document.
    pub index: usize,
    /// `from/stream -> to/local_name`, for people.
    pub edge: String,
    /// What is wrong and what to do.
    pub reason: String,
}
