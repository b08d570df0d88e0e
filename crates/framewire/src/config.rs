//! The node configuration file (TOML) and the CLI's compact specs, both
//! turned into one [`NodeConfig`]. Every default is documented in
//! docs/config.md; CLI flags override the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use framewire_codec::{ChromaSubsampling, EncodeSpec};
use framewire_media::jpeg_split;
use framewire_media::testpattern::TestPatternConfig;
use framewire_net::{
    DEFAULT_PORT, EdgeConfig, EdgeTransport, NodeConfig, OpaquePortConfig, ReplayConfig, SinkConfig, SinkKind,
    SourceConfig,
};
use framewire_proto::{DeliveryMode, DropPolicy, Format, Origin, PixelFormat, StreamOpen, SubscribeParams};
use framewire_relay::RelayConfig;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// `namespace:instance`. Default: `node:<hostname>`.
    pub name: Option<String>,
    /// Listen address. Default `127.0.0.1:7400`.
    pub listen: Option<SocketAddr>,
    /// Site id. Default 0.
    pub site_id: Option<u16>,
    /// Largest payload accepted from a peer, bytes. Default 64 MiB.
    pub max_payload: Option<u32>,
    /// Connections served at once. Default 4096.
    pub max_connections: Option<usize>,
    /// Serve shared-memory subscriptions to nodes on this host. Default true.
    pub shm: Option<bool>,
    /// Unix socket for them. Default `$XDG_RUNTIME_DIR` (else the temp dir)
    /// `/framewire-<pid>-<name>.sock`.
    pub shm_socket: Option<PathBuf>,
    /// Budgets for subscriptions that leave them at zero.
    #[serde(default)]
    pub defaults: Defaults,
    /// Streams produced here.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceSpec>,
    /// Streams pulled from other nodes.
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamSpec>,
    /// Local sinks.
    #[serde(default, rename = "sink")]
    pub sinks: Vec<SinkSpec>,
    /// Opaque (headerless) ports.
    #[serde(default, rename = "opaque")]
    pub opaque: Vec<OpaqueSpec>,
    /// Multicast discovery, manual peers, gateway legs (docs/discovery.md).
    pub discovery: Option<crate::discovery::DiscoverySpec>,
    /// Deployment key file (docs/security.md). Default: none, no authentication.
    pub key_file: Option<PathBuf>,
    /// Address of the Prometheus `/metrics` endpoint. Default: none (off).
    pub metrics: Option<SocketAddr>,
    /// Stream formats accepted on pulled edges (`mjpeg`, `qoi`, `raw`,
    /// `raw-zstd`, ...). Default: every format.
    #[serde(default)]
    pub accept_formats: Vec<String>,
    /// What peers may hold of the node (docs/security.md, "Limits of a node").
    #[serde(default)]
    pub limits: LimitsSpec,
}

/// The `[limits]` table: each key overrides one default of
/// `framewire_net::Limits`. Durations are in milliseconds (`_ms`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub max_connections: Option<usize>,
    pub max_opaque_connections: Option<usize>,
    pub hello_timeout_ms: Option<u64>,
    pub max_handshake_payload: Option<u32>,
    pub max_payload: Option<u32>,
    pub max_output_frames: Option<u32>,
    pub max_output_bytes: Option<u64>,
    pub writer_queue_bytes: Option<usize>,
    pub max_subscriptions_per_connection: Option<usize>,
    pub max_outputs: Option<usize>,
    pub max_edges: Option<usize>,
    pub idle_timeout_ms: Option<u64>,
    pub write_timeout_ms: Option<u64>,
    pub client_pending_bytes: Option<usize>,
    pub gateway_edge_idle_ms: Option<u64>,
}

impl LimitsSpec {
    /// Applies the keys given to `l`; a zero where zero makes no sense is an error.
    pub fn apply(&self, l: &mut framewire_net::Limits) -> anyhow::Result<()> {
        fn set<T: Copy + PartialEq + Default>(to: &mut T, v: Option<T>, key: &str) -> anyhow::Result<()> {
            if let Some(v) = v {
                anyhow::ensure!(v != T::default(), "limits.{key} must be more than 0");
                *to = v;
            }
            Ok(())
        }
        let ms = |v: Option<u64>| v.map(std::time::Duration::from_millis);
        set(&mut l.max_connections, self.max_connections, "max_connections")?;
        set(
            &mut l.max_opaque_connections,
            self.max_opaque_connections,
            "max_opaque_connections",
        )?;
        set(&mut l.hello_timeout, ms(self.hello_timeout_ms), "hello_timeout_ms")?;
        set(
            &mut l.max_handshake_payload,
            self.max_handshake_payload,
            "max_handshake_payload",
        )?;
        set(&mut l.max_payload, self.max_payload, "max_payload")?;
        set(&mut l.max_output_frames, self.max_output_frames, "max_output_frames")?;
        set(&mut l.max_output_bytes, self.max_output_bytes, "max_output_bytes")?;
        set(&mut l.writer_queue_bytes, self.writer_queue_bytes, "writer_queue_bytes")?;
        set(
            &mut l.max_subscriptions_per_connection,
            self.max_subscriptions_per_connection,
            "max_subscriptions_per_connection",
        )?;
        set(&mut l.max_outputs, self.max_outputs, "max_outputs")?;
        set(&mut l.max_edges, self.max_edges, "max_edges")?;
        set(&mut l.idle_timeout, ms(self.idle_timeout_ms), "idle_timeout_ms")?;
        set(&mut l.write_timeout, ms(self.write_timeout_ms), "write_timeout_ms")?;
        set(
            &mut l.client_pending_bytes,
            self.client_pending_bytes,
            "client_pending_bytes",
        )?;
        set(
            &mut l.gateway_edge_idle,
            ms(self.gateway_edge_idle_ms),
            "gateway_edge_idle_ms",
        )?;
        Ok(())
    }
}

/// Default budgets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Default 64 frames.
    pub max_frames: Option<u32>,
    /// Default 64 MiB.
    pub max_bytes: Option<u64>,
}

/// A source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "kebab-case")]
pub enum SourceSpec {
    /// Moving colour bars.
    TestPattern {
        /// Stream name.
        name: String,
        /// `WxH`, default `1280x720`.
        #[serde(default = "default_size")]
        size: String,
        /// Frames per second, default 30.
        #[serde(default = "default_fps")]
        fps: f64,
        /// `mjpeg` (default), `qoi`, `raw`, `raw-zstd`.
        #[serde(default = "default_format")]
        format: String,
        /// Raw pixel layout: `bgra` (default), `rgba`, `bgr`, `yuv420p`, `yuyv422`.
        #[serde(default = "default_pixel_format")]
        pixel_format: String,
        /// JPEG quality 1-100, default 85.
        #[serde(default = "default_quality")]
        quality: u8,
        /// zstd level, default 1.
        #[serde(default = "default_zstd_level")]
        zstd_level: i32,
    },
    /// A file of concatenated JPEG images, replayed.
    File {
        /// Stream name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Frames per second, default 30; 0 = as fast as possible.
        #[serde(default = "default_fps")]
        fps: f64,
        /// Start again at the end, default true.
        #[serde(default = "default_true", rename = "loop")]
        looped: bool,
    },
    /// A V4L2 capture device (docs/v4l2.md).
    V4l2(Box<V4l2Spec>),
    /// An X11 screen grab (docs/x11.md).
    X11(Box<X11Spec>),
}

/// The keys of an `x11` source (docs/x11.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X11Spec {
    /// Stream name.
    pub name: String,
    /// X display, e.g. `:1`; default `$DISPLAY`.
    pub display: Option<String>,
    /// Monitor to grab, by name (`framewire monitors`); default the primary one.
    pub monitor: Option<String>,
    /// A rectangle instead of a monitor, X geometry `WxH+X+Y`.
    pub rect: Option<String>,
    /// Screen of `rect`, default the display's default screen.
    pub screen: Option<usize>,
    /// Frames per second, default 30.
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// `qoi` (default), `raw`, `raw-zstd`, `mjpeg`.
    #[serde(default = "default_qoi")]
    pub format: String,
    /// JPEG quality for `mjpeg`, default 85.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// zstd level for `raw-zstd`, default 1.
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// Replay viewers' input into this display through XTEST, default false.
    #[serde(default)]
    pub inject_input: bool,
}

fn default_qoi() -> String {
    "qoi".into()
}

impl X11Spec {
    fn into_config(self) -> anyhow::Result<framewire_net::X11SourceConfig> {
        use framewire_codec::{ChromaSubsampling, EncodeSpec};
        use framewire_proto::PixelFormat;
        let mut c = framewire_net::X11SourceConfig::new(&self.name);
        c.display = self.display;
        c.monitor = self.monitor;
        c.screen = self.screen;
        c.rect = match self.rect.as_deref() {
            None => None,
            Some(g) => Some(parse_geometry(g).with_context(|| format!("x11 source `{}`", self.name))?),
        };
        if !(self.fps > 0.0 && self.fps <= 1000.0) {
            bail!("x11 source `{}`: fps {} is out of range", self.name, self.fps);
        }
        c.fps = self.fps;
        c.encode = match self.format.as_str() {
            "qoi" => EncodeSpec::qoi(),
            "raw" => EncodeSpec::raw(PixelFormat::Bgra),
            "raw-zstd" => EncodeSpec::raw_zstd(PixelFormat::Bgra, self.zstd_level),
            "mjpeg" => {
                if !(1..=100).contains(&self.quality) {
                    bail!("JPEG quality {} is out of range (1-100)", self.quality);
                }
                EncodeSpec::mjpeg(self.quality).with_subsampling(ChromaSubsampling::S420)
            }
            other => bail!(
                "x11 source `{}`: unknown format `{other}` (qoi, raw, raw-zstd, mjpeg)",
                self.name
            ),
        };
        c.inject = self.inject_input;
        Ok(c)
    }
}

/// X geometry `WxH+X+Y` (or `WxH`, at 0,0).
fn parse_geometry(g: &str) -> anyhow::Result<(i32, i32, u32, u32)> {
    let (size, pos) = match g.find('+') {
        Some(i) => (&g[..i], &g[i + 1..]),
        None => (g, "0+0"),
    };
    let (w, h) = parse_size(size)?;
    let (x, y) = pos
        .split_once('+')
        .with_context(|| format!("`{g}`: expected WxH+X+Y"))?;
    Ok((x.parse()?, y.parse()?, w, h))
}

/// The keys of a `v4l2` source (defaults in docs/config.md and docs/v4l2.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V4l2Spec {
    /// Stream name.
    pub name: String,
    /// Device node, default `/dev/video0`.
    #[serde(default = "default_v4l2_device")]
    pub device: PathBuf,
    /// Device pixel format, a fourcc (`MJPG`, `YUYV`, `NV12`, ...); default `auto`.
    pub pixel_format: Option<String>,
    /// `WxH`; default 640x480 if offered.
    pub size: Option<String>,
    /// Frames per second; default: the driver's current rate.
    pub fps: Option<f64>,
    /// `native` (default), `raw`, `raw-zstd`, `mjpeg`.
    #[serde(default = "default_native")]
    pub format: String,
    /// JPEG quality for `mjpeg` from a raw device, default 85.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// zstd level for `raw-zstd`, default 1.
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// Driver buffers, default 4.
    pub buffers: Option<u32>,
    /// Open the device only while someone subscribes, default true.
    pub on_demand: Option<bool>,
    /// Seconds an on-demand device stays open after the last subscriber, default 5.
    pub linger: Option<f64>,
    /// Longest wait between reopen attempts after a loss, seconds, default 2.
    pub retry_max: Option<f64>,
    /// Seconds without the device before the stream is reported failed, default 30.
    pub fail_after: Option<f64>,
    /// Recover JPEG frames from a byte stream (misbehaving devices), default false.
    #[serde(default)]
    pub mjpeg_scan: bool,
    /// Controls applied at every open: `name = value`.
    #[serde(default)]
    pub controls: std::collections::BTreeMap<String, i64>,
}

fn default_v4l2_device() -> PathBuf {
    PathBuf::from("/dev/video0")
}
fn default_native() -> String {
    "native".into()
}

fn seconds(what: &str, v: Option<f64>, default: std::time::Duration) -> anyhow::Result<std::time::Duration> {
    match v {
        None => Ok(default),
        Some(s) if (0.0..=86_400.0).contains(&s) => Ok(std::time::Duration::from_secs_f64(s)),
        Some(s) => bail!("{what} = {s} is out of range (0 to 86400 seconds)"),
    }
}

impl V4l2Spec {
    fn into_config(self) -> anyhow::Result<framewire_net::V4l2SourceConfig> {
        use framewire_net::{V4l2Output, V4l2SourceConfig};
        let mut c = V4l2SourceConfig::new(&self.name, self.device);
        c.pixel_format = match self.pixel_format.as_deref() {
            None | Some("auto") => None,
            Some(f) if (1..=4).contains(&f.len()) && f.is_ascii() => {
                let mut b = [b' '; 4];
                b[..f.len()].copy_from_slice(f.as_bytes());
                Some(u32::from_le_bytes(b))
            }
            Some(f) => bail!(
                "v4l2 source `{}`: pixel_format `{f}` is not a fourcc (MJPG, YUYV, ...)",
                self.name
            ),
        };
        c.size = self.size.as_deref().map(parse_size).transpose()?;
        if let Some(fps) = self.fps
            && !(fps > 0.0 && fps <= 100_000.0)
        {
            bail!("v4l2 source `{}`: fps {fps} is out of range", self.name);
        }
        c.fps = self.fps;
        c.output = match self.format.as_str() {
            "native" => V4l2Output::Native,
            "raw" => V4l2Output::Raw,
            "raw-zstd" => V4l2Output::RawZstd(self.zstd_level),
            "mjpeg" => {
                if !(1..=100).contains(&self.quality) {
                    bail!("JPEG quality {} is out of range (1-100)", self.quality);
                }
                V4l2Output::Mjpeg(self.quality)
            }
            other => bail!(
                "v4l2 source `{}`: unknown format `{other}` (native, raw, raw-zstd, mjpeg)",
                self.name
            ),
        };
        c.buffers = self.buffers.unwrap_or(c.buffers).clamp(2, 32);
        c.on_demand = self.on_demand.unwrap_or(true);
        c.linger = seconds("linger", self.linger, c.linger)?;
        c.retry_max = seconds("retry_max", self.retry_max, c.retry_max)?.max(std::time::Duration::from_millis(50));
        c.fail_after = seconds("fail_after", self.fail_after, c.fail_after)?;
        c.mjpeg_scan = self.mjpeg_scan;
        c.controls = self.controls.into_iter().collect();
        Ok(c)
    }
}

/// How to subscribe (an upstream edge, a sink, an opaque port).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// `low-latency` (default) or `completeness`.
    pub mode: Option<String>,
    /// Frame budget; 0 or absent = node default.
    pub max_frames: Option<u32>,
    /// Byte budget; 0 or absent = node default.
    pub max_bytes: Option<u64>,
    /// `drop-oldest` (default) or `drop-newest`.
    pub drop_policy: Option<String>,
    /// 0-255, default 128.
    pub priority: Option<u8>,
}

/// A stream pulled from another node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    /// `host:port` of the upstream node.
    pub addr: String,
    /// Its stream.
    pub stream: String,
    /// Name to serve it under here (default: the same).
    #[serde(default, rename = "as")]
    pub local_name: String,
    /// `auto` (shared memory when the upstream is on this host and both
    /// nodes offer it, else TCP), `tcp` or `shm`. Default `auto`.
    #[serde(default)]
    pub transport: Option<String>,
    /// How to subscribe.
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// A local sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    /// The stream consumed.
    pub stream: String,
    /// `null`, `file`, `stdout` or `archive`.
    pub kind: String,
    /// For `file`.
    pub path: Option<PathBuf>,
    /// For `archive`: its settings (docs/archive.md).
    #[serde(flatten)]
    pub archive: ArchiveSpec,
    /// How to subscribe (completeness is the default for sinks).
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// The keys of an `archive` sink.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSpec {
    /// The archive directory (required).
    pub dir: Option<PathBuf>,
    /// `h264`, `h265`, `av1`, `ffv1`, `prores` or `passthrough` (required).
    pub format: Option<String>,
    /// Segment length in seconds, default 600.
    pub segment: Option<u64>,
    /// Largest archive size in bytes, default 0 (no limit).
    pub max_total_bytes: Option<u64>,
    /// Free space to keep on the disk in bytes, default 0 (none).
    pub min_free_bytes: Option<u64>,
    /// `delete-oldest` (default) or `stop`.
    pub on_full: Option<String>,
    /// Seconds ffmpeg may refuse input before it is restarted, default 10.
    pub stall_timeout: Option<u64>,
    /// The ffmpeg program, default `ffmpeg`.
    pub ffmpeg: Option<PathBuf>,
}

impl ArchiveSpec {
    fn is_empty(&self) -> bool {
        self.dir.is_none()
            && self.format.is_none()
            && self.segment.is_none()
            && self.max_total_bytes.is_none()
            && self.min_free_bytes.is_none()
            && self.on_full.is_none()
            && self.stall_timeout.is_none()
            && self.ffmpeg.is_none()
    }

    fn into_config(self, stream: &str) -> anyhow::Result<framewire_archive::ArchiveConfig> {
        use framewire_archive::{ArchiveConfig, ArchiveFormat, OnFull};
        let dir = self
            .dir
            .with_context(|| format!("archive sink of `{stream}` needs a dir"))?;
        let f = self
            .format
            .with_context(|| format!("archive sink of `{stream}` needs a format"))?;
        let format = ArchiveFormat::from_label(&f)
            .with_context(|| format!("unknown archive format `{f}` (h264, h265, av1, ffv1, prores, passthrough)"))?;
        let mut c = ArchiveConfig::new(dir, format);
        if let Some(s) = self.segment {
            anyhow::ensure!(s > 0, "archive sink of `{stream}`: segment must be at least 1 second");
            c.segment = std::time::Duration::from_secs(s);
        }
        c.max_total_bytes = self.max_total_bytes.unwrap_or(0);
        c.min_free_bytes = self.min_free_bytes.unwrap_or(0);
        if let Some(o) = self.on_full {
            c.on_full =
                OnFull::from_label(&o).with_context(|| format!("unknown on_full `{o}` (delete-oldest, stop)"))?;
        }
        if let Some(s) = self.stall_timeout {
            c.stall_timeout = std::time::Duration::from_secs(s.max(1));
        }
        if let Some(p) = self.ffmpeg {
            c.ffmpeg = p;
        }
        Ok(c)
    }
}

/// An opaque port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpaqueSpec {
    /// The stream served.
    pub stream: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Serve it on a node with a deployment key although it cannot
    /// authenticate. Default false.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// How each client is served.
    #[serde(flatten)]
    pub delivery: Delivery,
}

fn default_size() -> String {
    "1280x720".into()
}
fn default_fps() -> f64 {
    30.0
}
fn default_format() -> String {
    "mjpeg".into()
}
fn default_pixel_format() -> String {
    "bgra".into()
}
fn default_quality() -> u8 {
    framewire_codec::DEFAULT_JPEG_QUALITY
}
fn default_zstd_level() -> i32 {
    framewire_codec::DEFAULT_ZSTD_LEVEL
}
fn default_true() -> bool {
    true
}

impl NodeFile {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> anyhow::Result<NodeFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is not a valid node configuration", path.display()))
    }

    /// The node configuration this file describes.
    pub fn into_config(self) -> anyhow::Result<NodeConfig> {
        let name = self.name.unwrap_or_else(default_name);
        check_name(&name)?;
        let listen = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)));
        let mut cfg = NodeConfig::new(&name, listen);
        cfg.site_id = self.site_id.unwrap_or(0);
        for f in &self.accept_formats {
            let format = framewire_proto::Format::from_label(f)
                .with_context(|| format!("accept_formats: unknown format `{f}` (mjpeg, qoi, raw, raw-zstd, ...)"))?;
            cfg.accept_formats.push(format);
        }
        cfg.discovery = crate::discovery::into_config(self.discovery, listen)?;
        if let Some(m) = self.max_payload {
            cfg.limits.max_payload = m;
        }
        if let Some(m) = self.max_connections {
            cfg.limits.max_connections = m;
        }
        anyhow::ensure!(
            (self.max_payload.is_none() || self.limits.max_payload.is_none())
                && (self.max_connections.is_none() || self.limits.max_connections.is_none()),
            "give max_payload and max_connections once: at the top or in [limits]"
        );
        self.limits.apply(&mut cfg.limits)?;
        if self.shm.unwrap_or(true) {
            cfg.shm_socket = Some(
                self.shm_socket
                    .unwrap_or_else(|| framewire_net::default_shm_socket(&name)),
            );
        } else if self.shm_socket.is_some() {
            bail!("`shm_socket` is set but `shm = false`: remove one of them");
        }
        cfg.relay = RelayConfig::new()
            .with_default_max_frames(self.defaults.max_frames.unwrap_or(0))
            .with_default_max_bytes(self.defaults.max_bytes.unwrap_or(0));
        for s in self.sources {
            cfg.sources.push(s.into_config()?);
        }
        for u in self.upstreams {
            let transport = match u.transport.as_deref() {
                None => EdgeTransport::Auto,
                Some(t) => EdgeTransport::parse(t).with_context(|| {
                    format!("upstream `{}`: transport `{t}` is not one of auto, tcp, shm", u.stream)
                })?,
            };
            cfg.edges.push(EdgeConfig {
                upstream: u.addr,
                stream: u.stream,
                local_name: u.local_name,
                params: u.delivery.params(DeliveryMode::LowLatency)?,
                transport,
            });
        }
        for s in self.sinks {
            if s.kind != "archive" && !s.archive.is_empty() {
                bail!(
                    "sink of `{}`: archive keys (dir, format, ...) need kind `archive`",
                    s.stream
                );
            }
            let kind = match s.kind.as_str() {
                "archive" => SinkKind::Archive(s.archive.clone().into_config(&s.stream)?),
                "null" => SinkKind::Null,
                "stdout" => SinkKind::Stdout,
                "file" => SinkKind::File(
                    s.path
                        .clone()
                        .with_context(|| format!("sink of `{}`: kind `file` needs a path", s.stream))?,
                ),
                other => bail!(
                    "sink of `{}`: unknown kind `{other}` (null, file, stdout, archive)",
                    s.stream
                ),
            };
            cfg.sinks.push(SinkConfig {
                stream: s.stream,
                kind,
                params: s.delivery.params(DeliveryMode::Completeness)?,
            });
        }
        for o in self.opaque {
            cfg.opaque_ports.push(OpaquePortConfig {
                stream: o.stream,
                listen: o.listen,
                params: o.delivery.params(DeliveryMode::LowLatency)?,
                allow_unauthenticated: o.allow_unauthenticated,
            });
        }
        if let Some(path) = &self.key_file {
            cfg.key = Some(framewire_net::DeploymentKey::load(path)?);
        }
        cfg.metrics = self.metrics;
        Ok(cfg)
    }
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    format!("node:{}", if host.is_empty() { "local" } else { host })
}

/// Names are `namespace:instance`, printable, no spaces, no `/` or `..`,
/// at most 255 bytes (`framewire_proto::names`).
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let why = match framewire_proto::names::check(framewire_proto::names::NameKind::Node, name) {
        Err(e) => e.to_string(),
        Ok(()) if name.chars().any(char::is_whitespace) => format!("node name {name:?} must not contain spaces"),
        Ok(()) => return Ok(()),
    };
    bail!("{why}: use `namespace:instance`, e.g. lab:cam")
}

impl Delivery {
    /// The subscription parameters, `default_mode` when none is given.
    pub fn params(&self, default_mode: DeliveryMode) -> anyhow::Result<SubscribeParams> {
        let mode = match &self.mode {
            None => default_mode,
            Some(m) => DeliveryMode::from_label(m)
                .with_context(|| format!("unknown delivery mode `{m}` (low-latency, completeness)"))?,
        };
        let drop_policy = match &self.drop_policy {
            None => DropPolicy::DropOldest,
            Some(p) => DropPolicy::from_label(p)
                .with_context(|| format!("unknown drop policy `{p}` (drop-oldest, drop-newest)"))?,
        };
        Ok(SubscribeParams {
            mode,
            max_frames: self.max_frames.unwrap_or(0),
            max_bytes: self.max_bytes.unwrap_or(0),
            drop_policy,
            priority: self.priority.unwrap_or(framewire_relay::DEFAULT_PRIORITY),
            ..SubscribeParams::default()
        })
    }
}

/// `WxH` as two numbers.
pub fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("size `{s}` is not WIDTHxHEIGHT"))?;
    Ok((
        w.parse().with_context(|| format!("size `{s}`: bad width"))?,
        h.parse().with_context(|| format!("size `{s}`: bad height"))?,
    ))
}

/// A rate as a fraction with millihertz precision.
fn fps_fraction(fps: f64) -> anyhow::Result<(u32, u32)> {
    if !(0.0..=100_000.0).contains(&fps) || fps.is_nan() {
        bail!("frame rate {fps} is out of range (0 to 100000)");
    }
    // Cannot truncate: fps <= 100000, so fps * 1000 < 2^32.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let num = (fps * 1000.0).round() as u32;
    Ok((num, 1000))
}

impl SourceSpec {
    /// The source's configuration.
    pub fn into_config(self) -> anyhow::Result<SourceConfig> {
        match self {
            SourceSpec::TestPattern {
                name,
                size,
                fps,
                format,
                pixel_format,
                quality,
                zstd_level,
            } => {
                let (width, height) = parse_size(&size)?;
                let (fps_num, fps_den) = fps_fraction(fps)?;
                let pf = PixelFormat::from_label(&pixel_format).with_context(|| {
                    format!("unknown pixel format `{pixel_format}` (bgra, rgba, bgr, yuv420p, yuyv422)")
                })?;
                let encode = match format.as_str() {
                    "mjpeg" => {
                        if !(1..=100).contains(&quality) {
                            bail!("JPEG quality {quality} is out of range (1-100)");
                        }
                        EncodeSpec::mjpeg(quality).with_subsampling(ChromaSubsampling::S420)
                    }
                    "qoi" => EncodeSpec::qoi(),
                    "raw" => EncodeSpec::raw(pf),
                    "raw-zstd" => EncodeSpec::raw_zstd(pf, zstd_level),
                    other => bail!("test pattern `{name}`: unknown format `{other}` (mjpeg, qoi, raw, raw-zstd)"),
                };
                Ok(SourceConfig::TestPattern(TestPatternConfig {
                    name,
                    width,
                    height,
                    fps_num,
                    fps_den,
                    encode,
                }))
            }
            SourceSpec::V4l2(v) => Ok(SourceConfig::V4l2(v.into_config()?)),
            SourceSpec::X11(x) => Ok(SourceConfig::X11(x.into_config()?)),
            SourceSpec::File {
                name,
                path,
                fps,
                looped,
            } => {
                let data = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                let (frames, stats) = jpeg_split::split_all(&data, jpeg_split::DEFAULT_MAX_IMAGE);
                if frames.is_empty() {
                    bail!("{} holds no complete JPEG image", path.display());
                }
                let (width, height) = jpeg_size(&frames[0]).unwrap_or((0, 0));
                tracing::info!(
                    path = %path.display(),
                    frames = frames.len(),
                    skipped_bytes = stats.skipped_bytes,
                    discarded = stats.discarded_images,
                    "file source loaded"
                );
                let (fps_num, fps_den) = fps_fraction(fps)?;
                Ok(SourceConfig::Replay(ReplayConfig {
                    open: StreamOpen {
                        format: Format::Mjpeg,
                        pixel_format: PixelFormat::None,
                        origin: Origin::Unspecified,
                        width,
                        height,
                        fps_num,
                        fps_den,
                        name,
                    },
                    frames,
                    fps,
                    looped,
                }))
            }
        }
    }
}

/// Width and height from a JPEG's SOF marker.
pub fn jpeg_size(jpeg: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xff {
            return None;
        }
        let code = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if matches!(code, 0xc0..=0xc3 | 0xc5..=0xc7 | 0xc9..=0xcb | 0xcd..=0xcf) {
            let s = jpeg.get(i + 5..i + 9)?;
            let h = u16::from_be_bytes([s[0], s[1]]);
            let w = u16::from_be_bytes([s[2], s[3]]);
            return Some((u32::from(w), u32::from(h)));
        }
        i += 2 + len;
    }
    None
}

/// `key=value` pairs of a compact spec.
type Pairs = Vec<(String, String)>;

/// Parses a compact spec `KIND:NAME[,key=value...]` into its parts.
fn spec_parts(spec: &str) -> anyhow::Result<(String, String, Pairs)> {
    let mut items = spec.split(',');
    let head = items.next().unwrap_or_default();
    let (kind, name) = head
        .split_once(':')
        .with_context(|| format!("`{spec}`: expected KIND:NAME[,key=value...]"))?;
    let mut kv = Vec::new();
    for item in items {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("`{spec}`: `{item}` is not key=value"))?;
        kv.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok((kind.to_owned(), name.to_owned(), kv))
}

/// Builds a TOML table from a compact spec, so the CLI and the file share
/// one parser and one set of checks.
fn spec_to_toml(fields: &[(&str, String)], kv: Pairs) -> String {
    let mut out = String::new();
    for (k, v) in fields {
        out.push_str(&format!("{k} = {}\n", toml_value(v)));
    }
    for (k, v) in kv {
        out.push_str(&format!("{} = {}\n", k.replace('-', "_"), toml_value(&v)));
    }
    out
}

fn toml_value(v: &str) -> String {
    if v.parse::<i64>().is_ok() || v.parse::<f64>().is_ok() || v == "true" || v == "false" {
        v.to_owned()
    } else {
        format!("{v:?}")
    }
}

/// `--source test-pattern:NAME[,size=WxH,fps=N,format=F,...]`, `--source file:NAME,path=P[,fps=N]`
/// or `--source v4l2:NAME[,device=D,size=WxH,...]`.
pub fn parse_source(spec: &str) -> anyhow::Result<SourceSpec> {
    let (kind, name, kv) = spec_parts(spec)?;
    let text = spec_to_toml(&[("kind", kind), ("name", name)], kv);
    toml::from_str(&text).with_context(|| format!("--source `{spec}`"))
}

/// `--upstream HOST:PORT/STREAM[,as=NAME,mode=M,max-frames=N,...]`.
pub fn parse_upstream(spec: &str) -> anyhow::Result<UpstreamSpec> {
    let mut items = spec.splitn(2, ',');
    let head = items.next().unwrap_or_default();
    let (addr, stream) = head
        .rsplit_once('/')
        .with_context(|| format!("--upstream `{spec}`: expected HOST:PORT/STREAM[,key=value...]"))?;
    let kv = match items.next() {
        Some(rest) => spec_parts(&format!("x:x,{rest}"))?.2,
        None => Vec::new(),
    };
    let text = spec_to_toml(&[("addr", addr.to_owned()), ("stream", stream.to_owned())], kv);
    toml::from_str(&text).with_context(|| format!("--upstream `{spec}`"))
}

/// `--sink KIND:STREAM[,path=P,mode=M,...]`.
pub fn parse_sink(spec: &str) -> anyhow::Result<SinkSpec> {
    let (kind, stream, kv) = spec_parts(spec)?;
    let text = spec_to_toml(&[("kind", kind), ("stream", stream)], kv);
    toml::from_str(&text).with_context(|| format!("--sink `{spec}`"))
}

/// `--opaque STREAM=HOST:PORT[,mode=M,...]`.
pub fn parse_opaque(spec: &str) -> anyhow::Result<OpaqueSpec> {
    let mut items = spec.splitn(2, ',');
    let head = items.next().unwrap_or_default();
    let (stream, listen) = head
        .split_once('=')
        .with_context(|| format!("--opaque `{spec}`: expected STREAM=HOST:PORT[,key=value...]"))?;
    let kv = match items.next() {
        Some(rest) => spec_parts(&format!("x:x,{rest}"))?.2,
        None => Vec::new(),
    };
    let text = spec_to_toml(&[("stream", stream.to_owned()), ("listen", listen.to_owned())], kv);
    toml::from_str(&text).with_context(|| format!("--opaque `{spec}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let f: NodeFile = toml::from_str(
            r#"
            name = "lab:relay"
            listen = "127.0.0.1:7401"
            [defaults]
            max_frames = 32
            [[source]]
            kind = "test-pattern"
            name = "bars"
            size = "640x480"
            fps = 25
            format = "qoi"
            [[upstream]]
            addr = "127.0.0.1:7400"
            stream = "cam"
            as = "cam-relay"
            mode = "completeness"
            max_frames = 10
            [[sink]]
            stream = "cam-relay"
            kind = "file"
            path = "/tmp/x.mjpeg"
            [[opaque]]
            stream = "cam-relay"
            listen = "127.0.0.1:7500"
            "#,
        )
        .unwrap();
        let cfg = f.into_config().unwrap();
        assert_eq!(cfg.name, "lab:relay");
        assert_eq!(cfg.relay.default_max_frames, 32);
        assert_eq!(cfg.edges[0].local_name(), "cam-relay");
        assert_eq!(cfg.edges[0].params.mode, DeliveryMode::Completeness);
        assert_eq!(cfg.sinks[0].kind, SinkKind::File("/tmp/x.mjpeg".into()));
        assert_eq!(cfg.opaque_ports[0].params.mode, DeliveryMode::LowLatency);
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../../docs/config.md");
        let start = doc.find("```toml\n").expect("a toml block") + 8;
        let end = start + doc[start..].find("```").expect("closed");
        let f: NodeFile = toml::from_str(&doc[start..end]).expect("docs/config.md example parses");
        assert_eq!(f.sources.len(), 4);
        let SourceConfig::V4l2(v) = f.sources[2].clone().into_config().expect("v4l2 source") else {
            panic!("a v4l2 source")
        };
        let SourceConfig::X11(x) = f.sources[3].clone().into_config().expect("x11 source") else {
            panic!("an x11 source")
        };
        assert_eq!((x.monitor.as_deref(), x.inject), (Some("HDMI-1"), false));
        assert_eq!((v.size, v.fps, v.on_demand), (Some((640, 480)), Some(25.0), true));
        assert_eq!(v.controls, vec![("brightness".to_owned(), 128)]);
        assert_eq!(f.upstreams[0].local_name, "cam");
        assert_eq!(f.sinks[0].kind, "file");
        assert_eq!(f.opaque[0].listen.port(), 7500);
    }

    #[test]
    fn key_file_metrics_and_unauthenticated_opaque_ports() {
        let dir = std::env::temp_dir().join(format!("fw-config-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key");
        let _ = std::fs::remove_file(&key);
        framewire_net::DeploymentKey::generate()
            .unwrap()
            .write_new(&key, false)
            .unwrap();
        let text = format!(
            "name = \"a:b\"\nkey_file = {:?}\nmetrics = \"127.0.0.1:9400\"\n\
             [[opaque]]\nstream = \"s\"\nlisten = \"127.0.0.1:7500\"\nallow_unauthenticated = true\n",
            key.display().to_string()
        );
        let cfg = toml::from_str::<NodeFile>(&text).unwrap().into_config().unwrap();
        assert!(cfg.key.is_some());
        assert_eq!(cfg.metrics, Some("127.0.0.1:9400".parse().unwrap()));
        assert!(cfg.opaque_ports[0].allow_unauthenticated);
        let o = parse_opaque("cam=127.0.0.1:7500,allow-unauthenticated=true").unwrap();
        assert!(o.allow_unauthenticated);
        assert!(!parse_opaque("cam=127.0.0.1:7500").unwrap().allow_unauthenticated);
        // A missing key file is an error that names it.
        let missing = toml::from_str::<NodeFile>("key_file = \"/nonexistent/fw-key\"").unwrap();
        let e = missing.into_config().unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/fw-key"), "{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = toml::from_str::<NodeFile>("name = \"a:b\"\nlisten_addr = \"x\"").unwrap_err();
        assert!(e.to_string().contains("listen_addr"), "{e}");
        let e = parse_source("test-pattern:bars,colour=red").unwrap_err();
        assert!(format!("{e:#}").contains("colour"), "{e:#}");
    }

    #[test]
    fn compact_specs() {
        let s = parse_source("test-pattern:bars,size=320x240,fps=10,format=raw,pixel-format=yuv420p").unwrap();
        let SourceConfig::TestPattern(tp) = s.into_config().unwrap() else {
            panic!()
        };
        assert_eq!((tp.width, tp.height, tp.fps_num, tp.fps_den), (320, 240, 10_000, 1000));
        assert_eq!(tp.encode.pixel_format, PixelFormat::Yuv420p);
        let u = parse_upstream("127.0.0.1:7400/cam,as=c2,mode=completeness,max-frames=5").unwrap();
        assert_eq!(
            (u.addr.as_str(), u.stream.as_str(), u.local_name.as_str()),
            ("127.0.0.1:7400", "cam", "c2")
        );
        assert_eq!(u.delivery.max_frames, Some(5));
        let k = parse_sink("file:cam,path=out.mjpeg").unwrap();
        assert_eq!(k.path, Some(PathBuf::from("out.mjpeg")));
        let o = parse_opaque("cam=127.0.0.1:7500").unwrap();
        assert_eq!(o.listen.port(), 7500);
        assert!(parse_upstream("no-stream-here").is_err());
        assert!(parse_sink("bogus:cam").unwrap().kind == "bogus");
        let a = parse_sink("archive:cam,dir=/a,format=ffv1,segment=2,on-full=stop,max-total-bytes=1000").unwrap();
        let cfg = NodeFile {
            sinks: vec![a],
            ..NodeFile::default()
        }
        .into_config()
        .unwrap();
        let SinkKind::Archive(ac) = &cfg.sinks[0].kind else {
            panic!()
        };
        assert_eq!(ac.segment, std::time::Duration::from_secs(2));
        assert_eq!(
            (ac.on_full, ac.max_total_bytes),
            (framewire_archive::OnFull::Stop, 1000)
        );
        assert_eq!(cfg.sinks[0].params.mode, DeliveryMode::Completeness);
    }

    #[test]
    fn x11_sources() {
        let s = parse_source("x11:desk,display=:3,rect=640x480+10+20,format=raw-zstd,fps=5,inject-input=true").unwrap();
        let SourceConfig::X11(x) = s.into_config().unwrap() else {
            panic!("an x11 source")
        };
        assert_eq!(x.display.as_deref(), Some(":3"));
        assert_eq!(x.rect, Some((10, 20, 640, 480)));
        assert!(x.inject && x.fps == 5.0);
        let s = parse_source("x11:desk,monitor=LEFT").unwrap();
        let SourceConfig::X11(x) = s.into_config().unwrap() else {
            panic!("an x11 source")
        };
        assert_eq!((x.monitor.as_deref(), x.inject), (Some("LEFT"), false));
        assert!(parse_source("x11:desk,format=h264").unwrap().into_config().is_err());
    }

    #[test]
    fn v4l2_sources() {
        let s = parse_source("v4l2:cam,device=/dev/video2,pixel-format=YUYV,size=1280x720,fps=12.5,format=mjpeg,quality=70,linger=0.5,controls.brightness=200").unwrap();
        let SourceConfig::V4l2(v) = s.into_config().unwrap() else {
            panic!()
        };
        assert_eq!(v.device, PathBuf::from("/dev/video2"));
        assert_eq!(v.pixel_format, Some(u32::from_le_bytes(*b"YUYV")));
        assert_eq!(v.output, framewire_net::V4l2Output::Mjpeg(70));
        assert_eq!(v.linger, std::time::Duration::from_millis(500));
        assert_eq!(v.controls, vec![("brightness".to_owned(), 200)]);
        let s = parse_source("v4l2:cam,pixel-format=Y10").unwrap();
        let SourceConfig::V4l2(v) = s.into_config().unwrap() else {
            panic!()
        };
        assert_eq!(v.pixel_format, Some(u32::from_le_bytes(*b"Y10 ")));
        assert_eq!((v.on_demand, v.output), (true, framewire_net::V4l2Output::Native));
        let e = parse_source("v4l2:cam,format=h264").unwrap().into_config().unwrap_err();
        assert!(e.to_string().contains("native, raw, raw-zstd, mjpeg"), "{e}");
        assert!(parse_source("v4l2:cam,exposure=3").is_err());
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let f: NodeFile = toml::from_str("[[sink]]\nstream = \"a\"\nkind = \"tape\"").unwrap();
        let e = f.into_config().unwrap_err().to_string();
        assert!(e.contains("unknown kind `tape`"), "{e}");
        let e = Delivery {
            mode: Some("fast".into()),
            ..Delivery::default()
        }
        .params(DeliveryMode::LowLatency)
        .unwrap_err()
        .to_string();
        assert!(e.contains("low-latency, completeness"), "{e}");
    }
}
