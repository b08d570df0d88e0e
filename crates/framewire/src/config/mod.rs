//! The node configuration file (TOML) and the CLI's compact specs, both
//! turned into one [`NodeConfig`]. Every default is documented in
//! docs/config.md; CLI flags override the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use framewire_net::{DEFAULT_PORT, EdgeConfig, EdgeTransport, NodeConfig, OpaquePortConfig};
use framewire_proto::DeliveryMode;
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
    /// Streams produced here: each a table of its kind's keys
    /// (`framewire_net::sources::from_table`).
    #[serde(default, rename = "source")]
    pub sources: Vec<toml::Table>,
    /// Streams pulled from other nodes.
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamSpec>,
    /// Local sinks: each a table (`framewire_net::sinks::from_table_with`).
    #[serde(default, rename = "sink")]
    pub sinks: Vec<toml::Table>,
    /// Opaque (headerless) ports.
    #[serde(default, rename = "opaque")]
    pub opaque: Vec<OpaqueSpec>,
    /// Multicast discovery, manual peers, gateway legs (docs/discovery.md).
    pub discovery: Option<crate::discovery::DiscoverySpec>,
    /// Deployment key file (docs/security.md). Default: none, no authentication.
    pub key_file: Option<PathBuf>,
    /// TLS on the node's port and to its peers (docs/security.md, "TLS
    /// between nodes"). Default: none, plain TCP.
    pub tls: Option<TlsSpec>,
    /// Address of the Prometheus `/metrics` endpoint. Default: none (off).
    pub metrics: Option<SocketAddr>,
    /// Address of the RTSP server (`rtsp://ADDR/STREAM`, docs/outputs.md).
    /// Default: none (off).
    pub rtsp: Option<SocketAddr>,
    /// The web UI's users file whose users may play over RTSP (Digest).
    pub rtsp_users: Option<PathBuf>,
    /// Players on other hosts need no RTSP credentials. Default: false.
    #[serde(default)]
    pub rtsp_open: bool,
    /// Players on this host need RTSP credentials too. Default: false.
    #[serde(default)]
    pub rtsp_auth_local: bool,
    /// Stream formats accepted on pulled edges (`mjpeg`, `qoi`, `raw`,
    /// `raw-zstd`, ...). Default: every format.
    #[serde(default)]
    pub accept_formats: Vec<String>,
    /// What peers may hold of the node (docs/security.md, "Limits of a node").
    #[serde(default)]
    pub limits: LimitsSpec,
    /// How subscriptions to peers share their paths (docs/relay.md, "Links").
    #[serde(default, rename = "link")]
    pub links: Vec<framewire_net::LinkSpec>,
}

/// Default budgets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Default 64 frames.
    pub max_frames: Option<u32>,
    /// Default 64 MiB.
    pub max_bytes: Option<u64>,
    /// Bytes of the current group of pictures kept per H.264/H.265 stream
    /// so a new subscriber starts at once. Default 8 MiB; 0 keeps none.
    pub gop_cache_bytes: Option<usize>,
}

/// How to subscribe (an upstream edge, an opaque port): `framewire_net::Delivery`.
pub use framewire_net::Delivery;

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
    /// Share of the upstream's link under a weighted scheduler. Default 1.
    #[serde(default)]
    pub weight: Option<u16>,
    /// Most the upstream may send of it per second: bytes, or `20Mbit`,
    /// `2.5MB`, ... Default: no cap.
    #[serde(default)]
    pub max_rate: Option<framewire_net::RateValue>,
    /// Over TLS (true) or plain TCP (false). Default: as `tls.dial` says.
    #[serde(default)]
    pub tls: Option<bool>,
    /// How to subscribe.
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// The `[tls]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// The node's certificate (PEM): with `key`, the node accepts TLS.
    pub cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// The deployment CA (PEM): the node dials its peers over TLS and
    /// checks their certificates against it; a peer that shows one it
    /// issued needs no deployment key.
    pub ca: Option<PathBuf>,
    /// Refuse plain TCP. Default false.
    #[serde(default)]
    pub require: bool,
    /// `all` (default): dial every peer over TLS; `links`: only the next
    /// gateway across a site link.
    pub dial: Option<String>,
}

impl TlsSpec {
    /// Reads the files into the node's TLS configuration.
    pub fn build(&self) -> anyhow::Result<framewire_net::TlsConfig> {
        let dial = match self.dial.as_deref() {
            None => framewire_net::TlsDial::All,
            Some(d) => framewire_net::TlsDial::parse(d)
                .with_context(|| format!("tls.dial `{d}`: expected `all` or `links`"))?,
        };
        Ok(framewire_net::TlsConfig::from_files(
            self.cert.as_deref(),
            self.key.as_deref(),
            self.ca.as_deref(),
            self.require,
            dial,
        )?)
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
            .with_default_max_bytes(self.defaults.max_bytes.unwrap_or(0))
            .with_gop_cache_bytes(
                self.defaults
                    .gop_cache_bytes
                    .unwrap_or(framewire_relay::DEFAULT_GOP_CACHE_BYTES),
            );
        for (i, s) in self.sources.into_iter().enumerate() {
            cfg.sources
                .push(framewire_net::sources::from_table(s).with_context(|| format!("source {}", i + 1))?);
        }
        for u in self.upstreams {
            let transport = match u.transport.as_deref() {
                None => EdgeTransport::Auto,
                Some(t) => EdgeTransport::parse(t).with_context(|| {
                    format!("upstream `{}`: transport `{t}` is not one of auto, tcp, shm", u.stream)
                })?,
            };
            let weight = match u.weight {
                None => 1,
                Some(0) => bail!("upstream `{}`: weight must be at least 1", u.stream),
                Some(w) => w,
            };
            let max_rate = match &u.max_rate {
                None => 0,
                Some(r) => {
                    let rate = r
                        .bytes_per_second()
                        .with_context(|| format!("upstream `{}`: max_rate", u.stream))?;
                    anyhow::ensure!(rate > 0, "upstream `{}`: max_rate must be more than 0", u.stream);
                    rate
                }
            };
            cfg.edges.push(EdgeConfig {
                upstream: u.addr,
                stream: u.stream,
                local_name: u.local_name,
                params: u.delivery.params(DeliveryMode::LowLatency)?,
                transport,
                weight,
                max_rate,
                tls: u.tls,
            });
        }
        for (i, s) in self.sinks.into_iter().enumerate() {
            cfg.sinks.push(
                framewire_net::sinks::from_table_with(s, EXTRA_SINKS).with_context(|| format!("sink {}", i + 1))?,
            );
        }
        for o in self.opaque {
            cfg.opaque_ports.push(OpaquePortConfig {
                stream: o.stream,
                listen: o.listen,
                params: o.delivery.params(DeliveryMode::LowLatency)?,
                allow_unauthenticated: o.allow_unauthenticated,
            });
        }
        for (i, l) in self.links.iter().enumerate() {
            cfg.links.push(
                l.rule()
                    .with_context(|| format!("link {} (peer `{}`)", i + 1, l.peer))?,
            );
        }
        if let Some(path) = &self.key_file {
            cfg.key = Some(framewire_net::DeploymentKey::load(path)?);
        }
        if let Some(t) = &self.tls {
            cfg.tls = Some(t.build()?);
        }
        cfg.metrics = self.metrics;
        cfg.rtsp = self.rtsp;
        cfg.rtsp_auth.open = self.rtsp_open;
        cfg.rtsp_auth.local_too = self.rtsp_auth_local;
        if let Some(path) = &self.rtsp_users {
            let users = framewire_web::Users::open(Some(path.clone()))
                .with_context(|| format!("rtsp_users {}", path.display()))?;
            let users = std::sync::Arc::new(users);
            cfg.rtsp_auth.users = Some(std::sync::Arc::new(move |name: &str| users.rtsp_ha1(name)));
        }
        Ok(cfg)
    }
}

/// The kinds of sink this program adds to the node's own: the viewer
/// window (`view:`), when built with it.
#[cfg(feature = "viewer")]
const EXTRA_SINKS: &[framewire_net::sinks::SinkKindEntry] = crate::viewer::sink::KINDS;
#[cfg(not(feature = "viewer"))]
const EXTRA_SINKS: &[framewire_net::sinks::SinkKindEntry] = &[];

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

/// `WxH` as two numbers.
pub fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    Ok(framewire_net::sources::parse_size(s)?)
}

mod limits;
pub mod spec;
#[cfg(test)]
mod tests;

pub use limits::LimitsSpec;
pub use spec::{parse_link, parse_opaque, parse_sink, parse_source, parse_upstream};
