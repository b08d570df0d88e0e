//! Discovery settings: the `[discovery]` table of a node file, the flags of
//! `framewire node` that override it, and the defaults (docs/discovery.md).
//!
//! The safe default: discovery is on, on the interface of the listen
//! address. A node left at its default `--listen 127.0.0.1:7400` announces
//! on loopback only, to the processes of this host; only a node told to
//! listen on a real interface (or given `--discovery-interface`) announces
//! there.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use framewire_discovery::{Config as EngineConfig, LegKind};
use framewire_net::discovery::{DEFAULT_DISCOVERY_PORT, DEFAULT_GROUP, DEFAULT_TTL};
use framewire_net::{DiscoveryConfig, LegSpec, MulticastConfig};
use serde::Deserialize;

/// `[discovery]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverySpec {
    /// `on` (default) or `off`.
    pub mode: Option<String>,
    /// Multicast group, default 224.0.0.251.
    pub group: Option<Ipv4Addr>,
    /// UDP port, default 5353.
    pub port: Option<u16>,
    /// Interface address; default: the listen address's (0.0.0.0 → the kernel's choice).
    pub interface: Option<Ipv4Addr>,
    /// Multicast TTL, default 1.
    pub ttl: Option<u32>,
    /// Announce interval in milliseconds, default 1000.
    pub interval_ms: Option<u64>,
    /// Silent intervals before a peer is gone, default 3.
    pub expiry_intervals: Option<u32>,
    /// Peer table size, default 1024.
    pub max_peers: Option<usize>,
    /// Manual peers, `HOST:PORT`, probed over TCP.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Gateway legs (two or more make the node a site gateway).
    #[serde(default, rename = "gateway")]
    pub legs: Vec<LegFile>,
    /// What a gateway's tunnels carry from its other sites to the nodes it
    /// routes to: `read` (default), `full` or `off`.
    pub tunnel: Option<String>,
}

/// `[[discovery.gateway]]`: one leg of a site gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegFile {
    /// The leg's interface address.
    pub interface: Ipv4Addr,
    /// The site id this gateway gives the leg's network (non-zero).
    pub site: Option<u16>,
    /// The leg is a cross-site link (between gateways) instead of a site.
    #[serde(default)]
    pub link: bool,
    /// Group, default: the `[discovery]` group.
    pub group: Option<Ipv4Addr>,
    /// Port, default: the `[discovery]` port.
    pub port: Option<u16>,
    /// Label for logs, default `site-N` or `link`.
    pub label: Option<String>,
}

/// Discovery flags of `framewire node` (override `[discovery]`).
#[derive(Debug, Default, clap::Args)]
pub struct DiscoveryArgs {
    /// Multicast discovery: on (default) or off.
    #[arg(long, value_name = "on|off")]
    discovery: Option<String>,
    /// Multicast group [default: 224.0.0.251].
    #[arg(long, value_name = "IPV4")]
    discovery_group: Option<Ipv4Addr>,
    /// UDP port [default: 5353].
    #[arg(long, value_name = "PORT")]
    discovery_port: Option<u16>,
    /// Interface to announce and listen on, by address [default: the
    /// --listen address's; 127.0.0.1 by default, i.e. this host only].
    #[arg(long, value_name = "IPV4")]
    discovery_interface: Option<Ipv4Addr>,
    /// Multicast TTL [default: 1, the local segment].
    #[arg(long, value_name = "N")]
    discovery_ttl: Option<u32>,
    /// Time between announcements, e.g. 1s, 250ms [default: 1s]; a peer
    /// silent for 3 intervals is gone.
    #[arg(long, value_name = "DURATION")]
    announce_interval: Option<String>,
    /// A peer to probe over TCP where multicast does not pass (repeatable).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,
    /// One leg of a site gateway (repeat: two or more):
    /// interface=IPV4,site=N[,label=L][,group=IPV4][,port=N] or interface=IPV4,link=true.
    #[arg(long = "gateway-leg", value_name = "SPEC")]
    gateway_legs: Vec<String>,
    /// On a gateway, what control connections from its other sites may do
    /// to the nodes it routes to: read (look and watch), full (change
    /// too) or off [default: read].
    #[arg(long, value_name = "RULE", value_parser = ["read", "full", "off"])]
    gateway_tunnel: Option<String>,
}

impl DiscoveryArgs {
    /// Folds the flags into the file's table.
    pub fn apply(&self, spec: &mut Option<DiscoverySpec>) -> anyhow::Result<()> {
        let s = spec.get_or_insert_with(DiscoverySpec::default);
        if let Some(m) = &self.discovery {
            s.mode = Some(m.clone());
        }
        if self.discovery_group.is_some() {
            s.group = self.discovery_group;
        }
        if self.discovery_port.is_some() {
            s.port = self.discovery_port;
        }
        if self.discovery_interface.is_some() {
            s.interface = self.discovery_interface;
        }
        if self.discovery_ttl.is_some() {
            s.ttl = self.discovery_ttl;
        }
        if let Some(i) = &self.announce_interval {
            let d = parse_duration(i)?;
            s.interval_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        }
        s.peers.extend(self.peers.iter().cloned());
        for l in &self.gateway_legs {
            s.legs.push(parse_leg(l)?);
        }
        if self.gateway_tunnel.is_some() {
            s.tunnel = self.gateway_tunnel.clone();
        }
        Ok(())
    }
}

/// `250ms`, `1s`, `1.5s`, or a bare number of milliseconds.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 0.001)
    };
    let v: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("`{s}` is not a duration (e.g. 1s, 250ms)"))?;
    let secs = v * scale;
    if !(0.001..=3600.0).contains(&secs) {
        bail!("duration `{s}` is out of range (1ms to 1h)");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `interface=IPV4,site=N[,label=L][,group=G][,port=P][,link=true]`.
pub fn parse_leg(spec: &str) -> anyhow::Result<LegFile> {
    let mut text = String::new();
    for item in spec.split(',').filter(|i| !i.trim().is_empty()) {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("--gateway-leg `{spec}`: `{item}` is not key=value"))?;
        let v = v.trim();
        let value = if v.parse::<i64>().is_ok() || v == "true" || v == "false" {
            v.to_owned()
        } else {
            format!("{v:?}")
        };
        text.push_str(&format!("{} = {value}\n", k.trim().replace('-', "_")));
    }
    toml::from_str(&text).with_context(|| format!("--gateway-leg `{spec}`"))
}

/// The interface a node announces on by default: its listen address's.
fn default_interface(listen: SocketAddr) -> anyhow::Result<Ipv4Addr> {
    match listen.ip() {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(a) if a.is_loopback() => Ok(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => Ok(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(a) => bail!("discovery is IPv4: listening on {a}, give --discovery-interface or --discovery off"),
    }
}

/// The node's discovery, or none when off.
pub fn into_config(spec: Option<DiscoverySpec>, listen: SocketAddr) -> anyhow::Result<Option<DiscoveryConfig>> {
    let s = spec.unwrap_or_default();
    match s.mode.as_deref() {
        None | Some("on") => {}
        Some("off") => return Ok(None),
        Some(other) => bail!("discovery mode `{other}` is not on or off"),
    }
    let base = MulticastConfig {
        group: s.group.unwrap_or(DEFAULT_GROUP),
        port: s.port.unwrap_or(DEFAULT_DISCOVERY_PORT),
        interface: match s.interface {
            Some(i) => i,
            None => default_interface(listen)?,
        },
        ttl: s.ttl.unwrap_or(DEFAULT_TTL),
        loopback: true,
    };
    if !base.group.is_multicast() {
        bail!("discovery group {} is not a multicast address", base.group);
    }
    let mut engine = EngineConfig::new();
    if let Some(ms) = s.interval_ms {
        engine = engine.with_interval(Duration::from_millis(ms.max(1)));
    }
    if let Some(n) = s.expiry_intervals {
        engine = engine.with_expiry_intervals(n);
    }
    if let Some(n) = s.max_peers {
        engine = engine.with_max_peers(n);
    }
    let mut cfg = DiscoveryConfig::single(base);
    cfg.probe_interval = engine.interval;
    cfg.engine = engine;
    cfg.manual_peers = s.peers;
    if let Some(t) = &s.tunnel {
        cfg.tunnel = framewire_net::TunnelRule::parse(t)
            .with_context(|| format!("discovery.tunnel `{t}`: expected read, full or off"))?;
    }
    if !s.legs.is_empty() {
        if s.legs.len() < 2 {
            bail!("a site gateway needs two or more --gateway-leg (one per network)");
        }
        cfg.legs = s
            .legs
            .into_iter()
            .map(|l| {
                let kind = match (l.link, l.site) {
                    (true, None) => LegKind::Link,
                    (true, Some(_)) => bail!("gateway leg on {}: a link has no site id of its own", l.interface),
                    (false, Some(site_id)) if site_id != 0 => LegKind::Site { site_id },
                    (false, _) => bail!(
                        "gateway leg on {}: give site=N (non-zero: the id this gateway gives that network) or link=true",
                        l.interface
                    ),
                };
                let label = l.label.unwrap_or_else(|| match kind {
                    LegKind::Site { site_id } => format!("site-{site_id}"),
                    LegKind::Link => "link".to_owned(),
                });
                Ok(LegSpec {
                    label,
                    net: MulticastConfig {
                        group: l.group.unwrap_or(base.group),
                        port: l.port.unwrap_or(base.port),
                        interface: l.interface,
                        ..base
                    },
                    kind,
                })
            })
            .collect::<anyhow::Result<_>>()?;
    }
    Ok(Some(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_is_on_and_on_the_listen_interface() {
        let c = into_config(None, listen("127.0.0.1:7400")).unwrap().unwrap();
        assert_eq!(c.legs.len(), 1);
        let n = c.legs[0].net;
        assert_eq!(
            (n.group, n.port, n.interface, n.ttl),
            (DEFAULT_GROUP, 5353, Ipv4Addr::LOCALHOST, 1)
        );
        let c = into_config(None, listen("10.1.2.3:7400")).unwrap().unwrap();
        assert_eq!(c.legs[0].net.interface, Ipv4Addr::new(10, 1, 2, 3));
        let c = into_config(None, listen("[::1]:7400")).unwrap().unwrap();
        assert_eq!(c.legs[0].net.interface, Ipv4Addr::LOCALHOST);
        let off = DiscoverySpec {
            mode: Some("off".into()),
            ..DiscoverySpec::default()
        };
        assert!(into_config(Some(off), listen("127.0.0.1:7400")).unwrap().is_none());
    }

    #[test]
    fn flags_and_legs() {
        let mut spec = None;
        DiscoveryArgs {
            discovery_group: Some(Ipv4Addr::new(239, 1, 2, 3)),
            announce_interval: Some("250ms".into()),
            peers: vec!["10.0.0.9:7400".into()],
            gateway_legs: vec![
                "interface=10.1.0.254,site=1,label=a".into(),
                "interface=10.2.0.254,site=2,port=6000".into(),
            ],
            gateway_tunnel: Some("full".into()),
            ..DiscoveryArgs::default()
        }
        .apply(&mut spec)
        .unwrap();
        let c = into_config(spec, listen("0.0.0.0:7400")).unwrap().unwrap();
        assert!(c.is_gateway());
        assert_eq!(c.tunnel, framewire_net::TunnelRule::Full);
        assert_eq!(c.engine.interval, Duration::from_millis(250));
        assert_eq!(c.manual_peers, vec!["10.0.0.9:7400".to_owned()]);
        assert_eq!(c.legs[0].label, "a");
        assert_eq!(c.legs[0].kind, LegKind::Site { site_id: 1 });
        assert_eq!(c.legs[1].net.port, 6000);
        assert_eq!(c.legs[1].net.group, Ipv4Addr::new(239, 1, 2, 3));
        assert!(parse_leg("interface=10.0.0.1,link=true").unwrap().link);
        let one = DiscoverySpec {
            legs: vec![parse_leg("interface=10.0.0.1,site=1").unwrap()],
            ..DiscoverySpec::default()
        };
        assert!(into_config(Some(one), listen("0.0.0.0:1")).is_err());
        let zero = DiscoverySpec {
            legs: vec![
                parse_leg("interface=10.0.0.1,site=0").unwrap(),
                parse_leg("interface=10.0.0.2,site=2").unwrap(),
            ],
            ..DiscoverySpec::default()
        };
        assert!(format!("{:#}", into_config(Some(zero), listen("0.0.0.0:1")).unwrap_err()).contains("non-zero"));
        assert!(parse_leg("interface=10.0.0.1,colour=red").is_err());
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("fast").is_err());
    }

    fn toml_blocks(doc: &str) -> Vec<&str> {
        doc.split("```toml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .collect()
    }

    #[test]
    fn the_documented_examples_parse() {
        let cfg = toml_blocks(include_str!("../../../docs/config.md"))[0];
        let f: crate::config::NodeFile = toml::from_str(cfg).expect("docs/config.md example");
        let c = into_config(f.discovery, listen("127.0.0.1:7400")).unwrap().unwrap();
        assert_eq!(c.manual_peers, vec!["10.0.0.9:7400".to_owned()]);
        assert_eq!(c.legs[0].net.interface, Ipv4Addr::LOCALHOST);
        let gw = toml_blocks(include_str!("../../../docs/discovery.md"))[0];
        let f: crate::config::NodeFile = toml::from_str(gw).expect("docs/discovery.md gateway example");
        let c = into_config(f.discovery, f.listen.unwrap()).unwrap().unwrap();
        assert!(c.is_gateway());
        assert_eq!(c.legs[1].kind, LegKind::Site { site_id: 2 });
    }
}
