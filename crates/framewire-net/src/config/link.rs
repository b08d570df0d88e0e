//! Links: how the frames a node sends to a peer take turns, and how fast
//! they may go (docs/relay.md, "Links").

use std::net::IpAddr;

use framewire_relay::{DEFAULT_DRR_QUANTUM, LinkConfig, SchedulerKind, SuppressionConfig};
use serde::Deserialize;

use super::ConfigError;

/// Which connections a link rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPeer {
    /// Every connection no other rule names.
    Any,
    /// The connections from this address.
    Addr(IpAddr),
}

impl LinkPeer {
    /// Whether a connection from `ip` is covered.
    pub fn covers(&self, ip: IpAddr) -> bool {
        match self {
            LinkPeer::Any => true,
            LinkPeer::Addr(a) => *a == ip || a.to_canonical() == ip.to_canonical(),
        }
    }
}

/// A link rule: the peers it covers and how their subscriptions share the
/// path. With a `max_rate`, every connection the rule covers shares one
/// capped link; without, each connection is a link of its own, scheduled
/// as the rule says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkRule {
    /// Whom it covers.
    pub peer: LinkPeer,
    /// Scheduler, rate and burst.
    pub link: LinkConfig,
}

/// A link rule as a file or a `--link` spec writes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// `*` (every peer no other rule names) or an IP address.
    pub peer: String,
    /// `strict`, `rr` (default), `wrr`, `drr` or `suppress`.
    pub scheduler: Option<String>,
    /// Bytes per second (`2500000`), or with a unit: `20Mbit`, `500kbit`,
    /// `2.5MB`, `800kB`. Default: none, no cap.
    pub max_rate: Option<RateValue>,
    /// Bucket size in bytes. Default: 50 ms at the rate, at least 16 KiB.
    pub burst: Option<u64>,
    /// DRR: bytes per round per unit of weight. Default 1500.
    pub quantum: Option<u32>,
}

/// A rate as a number (bytes per second) or a string with a unit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RateValue {
    /// Bytes per second.
    Bytes(u64),
    /// `20Mbit`, `2.5MB`, ...
    Text(String),
}

impl RateValue {
    /// In bytes per second.
    pub fn bytes_per_second(&self) -> Result<u64, ConfigError> {
        match self {
            RateValue::Bytes(b) => Ok(*b),
            RateValue::Text(t) => parse_rate(t),
        }
    }
}

impl LinkSpec {
    /// The rule this spec describes, or what is wrong with it.
    pub fn rule(&self) -> Result<LinkRule, ConfigError> {
        let peer = match self.peer.trim() {
            "*" => LinkPeer::Any,
            p => LinkPeer::Addr(
                p.parse()
                    .map_err(|_| ConfigError::new(format!("link peer `{p}` is neither `*` nor an IP address")))?,
            ),
        };
        let quantum = self.quantum.unwrap_or(DEFAULT_DRR_QUANTUM);
        if quantum == 0 {
            return Err(ConfigError::new("link quantum must be at least 1 byte"));
        }
        let scheduler = match self.scheduler.as_deref() {
            None => SchedulerKind::RoundRobin,
            Some(s) => parse_scheduler(s, quantum)?,
        };
        let max_rate = self.max_rate.as_ref().map(RateValue::bytes_per_second).transpose()?;
        if max_rate == Some(0) {
            return Err(ConfigError::new("link max_rate must be more than 0"));
        }
        Ok(LinkRule {
            peer,
            link: LinkConfig {
                scheduler,
                max_rate,
                burst: self.burst.unwrap_or(0),
            },
        })
    }
}

/// `strict`, `rr`, `wrr`, `drr`, `suppress` (or the schedulers' long names).
pub fn parse_scheduler(s: &str, quantum: u32) -> Result<SchedulerKind, ConfigError> {
    Ok(match s {
        "strict" | "strict-priority" => SchedulerKind::StrictPriority,
        "rr" | "round-robin" => SchedulerKind::RoundRobin,
        "wrr" | "weighted-round-robin" => SchedulerKind::WeightedRoundRobin,
        "drr" | "deficit-round-robin" => SchedulerKind::DeficitRoundRobin { quantum },
        "suppress" | "source-suppression" => SchedulerKind::SourceSuppression(SuppressionConfig::default()),
        other => {
            return Err(ConfigError::new(format!(
                "unknown scheduler `{other}` (strict, rr, wrr, drr, suppress)"
            )));
        }
    })
}

/// A rate in bytes per second: a plain number is bytes; `kbit`, `Mbit`,
/// `Gbit` are bits (÷ 8), `kB`, `MB`, `GB` decimal bytes, `KiB`, `MiB`,
/// `GiB` binary bytes.
pub fn parse_rate(s: &str) -> Result<u64, ConfigError> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad = || {
        ConfigError::new(format!(
            "`{s}` is not a rate: give bytes per second, or a number with kbit, Mbit, Gbit, kB, MB, GB, KiB, MiB or GiB"
        ))
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "B" => 1.0,
        "kbit" => 1e3 / 8.0,
        "Mbit" => 1e6 / 8.0,
        "Gbit" => 1e9 / 8.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = (n * scale).round();
    if !(1.0..=1e15).contains(&bytes) {
        return Err(ConfigError::new(format!(
            "rate `{s}` is out of range (1 B/s to 1 PB/s)"
        )));
    }
    Ok(bytes as u64)
}

/// The rule that covers a connection from `ip`: the first naming its
/// address, else the first `*`.
pub fn rule_for(rules: &[LinkRule], ip: IpAddr) -> Option<(usize, &LinkRule)> {
    rules
        .iter()
        .enumerate()
        .find(|(_, r)| matches!(r.peer, LinkPeer::Addr(_)) && r.peer.covers(ip))
        .or_else(|| rules.iter().enumerate().find(|(_, r)| r.peer == LinkPeer::Any))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_with_their_units() {
        assert_eq!(parse_rate("2500000").unwrap(), 2_500_000);
        assert_eq!(parse_rate("20Mbit").unwrap(), 2_500_000);
        assert_eq!(parse_rate("500kbit").unwrap(), 62_500);
        assert_eq!(parse_rate("2.5MB").unwrap(), 2_500_000);
        assert_eq!(parse_rate("1MiB").unwrap(), 1_048_576);
        for bad in ["", "fast", "10 parsecs", "0", "-5MB", "1e3"] {
            assert!(parse_rate(bad).is_err(), "`{bad}` was read as a rate");
        }
    }

    #[test]
    fn specs_become_rules_or_say_what_is_wrong() {
        let spec = LinkSpec {
            peer: "10.0.0.7".into(),
            scheduler: Some("drr".into()),
            max_rate: Some(RateValue::Text("8Mbit".into())),
            quantum: Some(3000),
            ..LinkSpec::default()
        };
        let rule = spec.rule().unwrap();
        assert_eq!(rule.peer, LinkPeer::Addr("10.0.0.7".parse().unwrap()));
        assert_eq!(rule.link.scheduler, SchedulerKind::DeficitRoundRobin { quantum: 3000 });
        assert_eq!(rule.link.max_rate, Some(1_000_000));
        let any = LinkSpec {
            peer: "*".into(),
            ..LinkSpec::default()
        };
        assert_eq!(any.rule().unwrap().link.scheduler, SchedulerKind::RoundRobin);
        let e = LinkSpec {
            peer: "*".into(),
            scheduler: Some("fifo".into()),
            ..LinkSpec::default()
        };
        assert!(
            e.rule()
                .unwrap_err()
                .to_string()
                .contains("strict, rr, wrr, drr, suppress")
        );
        let e = LinkSpec {
            peer: "example.com".into(),
            ..LinkSpec::default()
        };
        assert!(e.rule().unwrap_err().to_string().contains("IP address"));
    }

    #[test]
    fn an_address_rule_wins_over_the_catch_all() {
        let rules = [
            LinkSpec {
                peer: "*".into(),
                ..LinkSpec::default()
            }
            .rule()
            .unwrap(),
            LinkSpec {
                peer: "127.0.0.2".into(),
                scheduler: Some("strict".into()),
                ..LinkSpec::default()
            }
            .rule()
            .unwrap(),
        ];
        assert_eq!(rule_for(&rules, "127.0.0.2".parse().unwrap()).unwrap().0, 1);
        assert_eq!(rule_for(&rules, "127.0.0.1".parse().unwrap()).unwrap().0, 0);
        assert!(rule_for(&rules[1..], "127.0.0.1".parse().unwrap()).is_none());
    }
}
