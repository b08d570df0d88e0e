//! Discovery: multicast legs (one for a node, several for a site
//! gateway), the engine's settings, manual peers.

use std::net::Ipv4Addr;
use std::time::Duration;

use framewire_discovery::{Config as EngineConfig, LegKind};

use crate::auth::DeploymentKey;

/// The multicast group unless configured: mDNS's, 224.0.0.251.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
/// The UDP port unless configured: mDNS's, 5353.
pub const DEFAULT_DISCOVERY_PORT: u16 = 5353;
/// Multicast TTL unless configured: 1 (the local segment only).
pub const DEFAULT_TTL: u32 = 1;

/// Where one leg sends and listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulticastConfig {
    /// The group.
    pub group: Ipv4Addr,
    /// The UDP port.
    pub port: u16,
    /// The interface, by its IPv4 address (`127.0.0.1`: loopback only;
    /// `0.0.0.0`: the kernel's choice, i.e. the default route's interface).
    pub interface: Ipv4Addr,
    /// Hops a datagram may cross (1: never routed).
    pub ttl: u32,
    /// Deliver our datagrams to other sockets of this host.
    pub loopback: bool,
}

impl MulticastConfig {
    /// The default group and port on `interface`.
    pub fn on(interface: Ipv4Addr) -> MulticastConfig {
        MulticastConfig {
            group: DEFAULT_GROUP,
            port: DEFAULT_DISCOVERY_PORT,
            interface,
            ttl: DEFAULT_TTL,
            loopback: true,
        }
    }
}

/// One network leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegSpec {
    /// Label for logs.
    pub label: String,
    /// Its socket.
    pub net: MulticastConfig,
    /// Site (with the id the gateway gives it) or cross-site link.
    pub kind: LegKind,
}

/// What a site gateway lets through its tunnels: control connections
/// from its other sites to the nodes it routes to (`Client::tunnel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TunnelRule {
    /// No tunnels.
    Off,
    /// Looking and watching only: DESCRIBE, stats, status reports,
    /// listings, snapshots, subscriptions. No change to the far node.
    #[default]
    Read,
    /// Every command, changes too (CONNECT, SOURCE_ADD, SHUTDOWN, ...).
    Full,
}

impl TunnelRule {
    /// `off`, `read` or `full`.
    pub fn parse(s: &str) -> Option<TunnelRule> {
        match s {
            "off" => Some(TunnelRule::Off),
            "read" => Some(TunnelRule::Read),
            "full" => Some(TunnelRule::Full),
            _ => None,
        }
    }

    /// The rule's word.
    pub fn label(self) -> &'static str {
        match self {
            TunnelRule::Off => "off",
            TunnelRule::Read => "read",
            TunnelRule::Full => "full",
        }
    }
}

/// A node's discovery.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// One leg: an ordinary node; two or more: a site gateway.
    pub legs: Vec<LegSpec>,
    /// Interval, expiry, table size, datagram limit.
    pub engine: EngineConfig,
    /// `HOST:PORT` of nodes to probe over TCP (networks without multicast).
    pub manual_peers: Vec<String>,
    /// Time between probes of a manual peer.
    pub probe_interval: Duration,
    /// Deployment key for the probes (a node sets its own).
    pub key: Option<DeploymentKey>,
    /// What a gateway's tunnels carry.
    pub tunnel: TunnelRule,
    /// TLS for probes of manual peers (the node's, set when it starts).
    pub tls: Option<std::sync::Arc<framewire_tls::rustls::ClientConfig>>,
}

impl DiscoveryConfig {
    /// One leg on `net`, default engine settings.
    pub fn single(net: MulticastConfig) -> DiscoveryConfig {
        DiscoveryConfig {
            legs: vec![LegSpec {
                label: "lan".into(),
                net,
                kind: LegKind::Site { site_id: 0 },
            }],
            engine: EngineConfig::default(),
            manual_peers: Vec::new(),
            probe_interval: framewire_discovery::DEFAULT_INTERVAL,
            key: None,
            tunnel: TunnelRule::default(),
            tls: None,
        }
    }

    /// Whether this makes the node a site gateway.
    pub fn is_gateway(&self) -> bool {
        self.legs.len() > 1
    }
}
