//! Peer records and the events the engine emits about them.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use framewire_proto::FunctionFlags;

/// How a peer came to be in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Heard on multicast.
    Multicast,
    /// Configured by hand (`--peer HOST:PORT`) and probed over TCP.
    Manual {
        /// The `HOST:PORT` as configured.
        target: String,
        /// Whether the last probe answered.
        reachable: bool,
        /// Why the last probe failed, if it did.
        error: Option<String>,
    },
}

impl Origin {
    /// `multicast` or `manual`.
    pub fn label(&self) -> &'static str {
        match self {
            Origin::Multicast => "multicast",
            Origin::Manual { .. } => "manual",
        }
    }
}

/// One row of the peer table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The site the peer belongs to, as seen from here (0 = this site).
    pub site_id: u16,
    /// `namespace:instance`.
    pub name: String,
    /// Where the peer accepts TCP connections: the datagram's source
    /// address with the announced port.
    pub addr: SocketAddr,
    /// What the peer does.
    pub function_flags: FunctionFlags,
    /// The peer's wire format version.
    pub protocol_version: u8,
    /// Multicast or manual.
    pub origin: Origin,
    /// The peer's announce interval (its extension, or ours if it sent none).
    pub interval: Duration,
    /// When it was first heard.
    pub first_seen: Instant,
    /// When it was last heard.
    pub last_seen: Instant,
    /// Another peer claims the same site and name from another address.
    pub conflict: bool,
}

impl Peer {
    /// The fully qualified address, `site:namespace:instance`.
    pub fn qualified(&self) -> String {
        qualified(self.site_id, &self.name)
    }

    /// When the peer is considered gone if it stays silent (multicast peers).
    pub fn expires_at(&self, intervals: u32) -> Instant {
        self.last_seen + self.interval.saturating_mul(intervals)
    }
}

/// `site:namespace:instance`.
pub fn qualified(site_id: u16, name: &str) -> String {
    format!("{site_id}:{name}")
}

/// Splits `site:namespace:instance` into the site and the name. The site
/// must be a number; the name keeps its own colons.
pub fn parse_qualified(s: &str) -> Option<(u16, &str)> {
    let (site, name) = s.split_once(':')?;
    let site = site.parse().ok()?;
    if name.is_empty() {
        return None;
    }
    Some((site, name))
}

/// Why a peer left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    /// Silent for the configured number of intervals.
    Expired,
    /// It said goodbye.
    Goodbye,
    /// A manual peer's probe failed.
    Unreachable,
}

impl fmt::Display for GoneReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GoneReason::Expired => "expired",
            GoneReason::Goodbye => "goodbye",
            GoneReason::Unreachable => "unreachable",
        })
    }
}

/// What the engine tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A peer entered the table (or a manual peer answered again).
    Appeared(Peer),
    /// A peer's flags, version or interval changed.
    Changed(Peer),
    /// A peer left the table (a manual peer stays, marked unreachable).
    Gone {
        /// The peer as last seen.
        peer: Peer,
        /// Why.
        reason: GoneReason,
    },
    /// Several addresses claim one site and name. All are kept and marked.
    Conflict {
        /// The site claimed.
        site_id: u16,
        /// The name claimed.
        name: String,
        /// Every address claiming it.
        addrs: Vec<SocketAddr>,
    },
    /// A new peer was refused because the table is full (emitted once per
    /// episode; the counter counts every refusal).
    TableFull {
        /// The limit.
        limit: usize,
    },
    /// A datagram broke a rule of the protocol (site 0 on a cross-site link).
    ProtocolError {
        /// Who sent it.
        from: SocketAddr,
        /// What was wrong.
        reason: String,
    },
}

/// What the engine counted. Every datagram lands in exactly one of
/// `announcements`, `goodbyes`, `own`, `oversize`, `truncated`, `malformed`,
/// `other_types`, `site_zero_on_link`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handed to the engine.
    pub received: u64,
    /// Announcements accepted (new or refreshing a peer, or refused for a full table).
    pub announcements: u64,
    /// Goodbyes accepted.
    pub goodbyes: u64,
    /// Our own announcements (or a gateway's forwarded ones) heard back.
    pub own: u64,
    /// Datagrams longer than the limit.
    pub oversize: u64,
    /// Datagrams shorter than their header says.
    pub truncated: u64,
    /// Datagrams that do not parse (bad fields, bytes after the message).
    pub malformed: u64,
    /// Well-formed messages of another type (ignored).
    pub other_types: u64,
    /// Announcements with site 0 on a cross-site link (a protocol error).
    pub site_zero_on_link: u64,
    /// New peers refused because the table was full.
    pub table_full: u64,
    /// New peers refused because their source address holds its share.
    pub address_full: u64,
    /// Names claimed by a second address (the first claimant keeps them).
    pub conflicts: u64,
    /// Events dropped because the owner did not drain them.
    pub events_dropped: u64,
    /// Datagrams queued for sending.
    pub sent: u64,
}
