//! One discovery engine: one multicast group on one network.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use framewire_proto::{FunctionFlags, HEADER_LEN, Header, Message, NodeAnnouncement};

use crate::peer::{Counters, Event, GoneReason, Origin, Peer};

/// Time between announcements unless configured: 1 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// A peer silent for this many of its intervals is gone: 3.
pub const DEFAULT_EXPIRY_INTERVALS: u32 = 3;
/// Peers the table holds at most: 1024.
pub const DEFAULT_MAX_PEERS: usize = 1024;
/// Longest datagram accepted: 1400 bytes (an announcement with a 255-byte
/// name is 271 bytes; the rest is room for extensions).
pub const DEFAULT_MAX_DATAGRAM: usize = 1400;
/// Events held for the owner before the oldest are dropped.
pub const MAX_QUEUED_EVENTS: usize = 4096;
/// Shortest interval accepted from a peer's extension (a peer cannot make
/// us expire it faster than this).
pub const MIN_PEER_INTERVAL: Duration = Duration::from_millis(10);
/// Longest interval accepted from a peer's extension: minutes, not hours,
/// so a spoofed peer that stops announcing leaves the table soon.
pub const MAX_PEER_INTERVAL: Duration = Duration::from_secs(300);
/// Peers one source address may hold in the table unless configured: 64
/// (a host runs a few nodes; a spoofer on it cannot fill the table).
pub const DEFAULT_MAX_PEERS_PER_ADDRESS: usize = 64;

/// Extension tag carrying the sender's announce interval: `tag u8 = 0x02,
/// len u8 = 4, interval_ms u32`.
pub const EXT_INTERVAL: u8 = 0x02;

/// An engine's settings. Build with [`Config::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Time between announcements.
    pub interval: Duration,
    /// Intervals of silence after which a peer is gone.
    pub expiry_intervals: u32,
    /// Peers held at most.
    pub max_peers: usize,
    /// Peers one source address may hold at most.
    pub max_peers_per_address: usize,
    /// Longest datagram accepted.
    pub max_datagram: usize,
    /// This network is a cross-site link: every announcement must carry a
    /// non-zero site id.
    pub cross_site_link: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: DEFAULT_INTERVAL,
            expiry_intervals: DEFAULT_EXPIRY_INTERVALS,
            max_peers: DEFAULT_MAX_PEERS,
            max_peers_per_address: DEFAULT_MAX_PEERS_PER_ADDRESS,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            cross_site_link: false,
        }
    }
}

impl Config {
    /// The defaults.
    pub fn new() -> Config {
        Config::default()
    }
    /// Time between announcements (at least 1 ms).
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Config {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }
    /// Intervals of silence after which a peer is gone (at least 1).
    #[must_use]
    pub fn with_expiry_intervals(mut self, n: u32) -> Config {
        self.expiry_intervals = n.max(1);
        self
    }
    /// Peers held at most.
    #[must_use]
    pub fn with_max_peers(mut self, n: usize) -> Config {
        self.max_peers = n;
        self
    }
    /// Peers one source address may hold at most.
    #[must_use]
    pub fn with_max_peers_per_address(mut self, n: usize) -> Config {
        self.max_peers_per_address = n;
        self
    }
    /// Longest datagram accepted.
    #[must_use]
    pub fn with_max_datagram(mut self, n: usize) -> Config {
        self.max_datagram = n;
        self
    }
    /// Marks the network as a cross-site link.
    #[must_use]
    pub fn with_cross_site_link(mut self, link: bool) -> Config {
        self.cross_site_link = link;
        self
    }
}

/// A datagram to send to the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The whole datagram.
    pub payload: Vec<u8>,
}

/// What a manual peer said when probed (HELLO, then DESCRIBE for the port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReply {
    /// Its name.
    pub name: String,
    /// Its site id.
    pub site_id: u16,
    /// What it does.
    pub function_flags: FunctionFlags,
    /// Its wire format version.
    pub protocol_version: u8,
    /// Where it was reached.
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PeerKey {
    site_id: u16,
    name: String,
    addr: SocketAddr,
}

/// The discovery engine. See the crate documentation for the run loop.
#[derive(Debug)]
pub struct Discovery {
    config: Config,
    local: Option<NodeAnnouncement>,
    /// Announcements made on behalf of others (a gateway's forwarded peers),
    /// by (site, name).
    proxied: BTreeMap<(u16, String), NodeAnnouncement>,
    next_announce: Option<Instant>,
    peers: BTreeMap<PeerKey, Peer>,
    manual: BTreeMap<String, Peer>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    counters: Counters,
    full: bool,
    closed: bool,
}

/// The interval extension for an announcement.
pub fn interval_extension(interval: Duration) -> Bytes {
    let ms = u32::try_from(interval.as_millis()).unwrap_or(u32::MAX);
    let mut b = BytesMut::with_capacity(6);
    b.extend_from_slice(&[EXT_INTERVAL, 4]);
    b.extend_from_slice(&ms.to_le_bytes());
    b.freeze()
}

/// The interval a peer advertises in its extensions (`tag u8, len u8,
/// value` items; unknown tags are skipped, a cut item ends the walk).
pub fn advertised_interval(ext: &[u8]) -> Option<Duration> {
    let mut rest = ext;
    while let [tag, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let value = tail.get(..len)?;
        if *tag == EXT_INTERVAL
            && let Ok(raw) = <[u8; 4]>::try_from(value)
        {
            let d = Duration::from_millis(u64::from(u32::from_le_bytes(raw)));
            return Some(d.clamp(MIN_PEER_INTERVAL, MAX_PEER_INTERVAL));
        }
        rest = tail.get(len..)?;
    }
    None
}

impl Discovery {
    /// An engine that announces `local` (none: listen only) from `now` on.
    /// The first announcement is due at `now`: call [`Discovery::handle_timeout`].
    pub fn new(config: Config, local: Option<NodeAnnouncement>, now: Instant) -> Discovery {
        Discovery {
            config,
            local,
            proxied: BTreeMap::new(),
            next_announce: Some(now),
            peers: BTreeMap::new(),
            manual: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            full: false,
            closed: false,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What was counted so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The announcement this engine makes for its own node.
    pub fn local(&self) -> Option<&NodeAnnouncement> {
        self.local.as_ref()
    }

    /// Every peer, multicast ones sorted by site, name and address, then
    /// manual ones by target.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values().chain(self.manual.values())
    }

    /// How many peers the table holds (multicast and manual).
    pub fn peer_count(&self) -> usize {
        self.peers.len() + self.manual.len()
    }

    /// Multicast peers called `name` in site `site_id`, the first claimant
    /// first (a name several addresses claim is a conflict: the first one
    /// heard keeps it, whatever the others' addresses).
    pub fn find(&self, site_id: u16, name: &str) -> impl Iterator<Item = &Peer> {
        let mut found: Vec<&Peer> = self
            .peers
            .values()
            .filter(move |p| p.site_id == site_id && p.name == name)
            .collect();
        found.sort_by_key(|p| (p.first_seen, p.addr));
        found.into_iter()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Discovery::handle_timeout`] must be called next (none: only on input).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self
            .peers
            .values()
            .map(|p| p.expires_at(self.config.expiry_intervals))
            .min();
        match (self.next_announce, expiry) {
            (Some(a), Some(e)) => Some(a.min(e)),
            (a, e) => a.or(e),
        }
    }

    /// Announces when due and expires silent peers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(due) = self.next_announce
            && now >= due
        {
            self.announce_all();
            let next = due + self.config.interval;
            // Far behind (the owner slept): realign rather than burst.
            self.next_announce = Some(if next <= now { now + self.config.interval } else { next });
        }
        let n = self.config.expiry_intervals;
        let expired: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.expires_at(n) <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            self.remove(&k, GoneReason::Expired);
        }
    }

    /// Announces now, out of turn (e.g. after a change of flags), and
    /// restarts the interval.
    pub fn announce_now(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.announce_all();
        self.next_announce = Some(now + self.config.interval);
    }

    /// Replaces the node's own announcement (sent at once).
    pub fn set_local(&mut self, local: Option<NodeAnnouncement>, now: Instant) {
        self.local = local;
        self.announce_now(now);
    }

    /// Sends goodbyes for the node and everything it announces for others;
    /// announces nothing more.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.next_announce = None;
        let mut all: Vec<NodeAnnouncement> = self.local.iter().cloned().collect();
        all.extend(self.proxied.values().cloned());
        for a in all {
            self.queue(Message::NodeGoodbye(a));
        }
    }

    /// Announces `ann` on behalf of another node (a gateway's forwarded
    /// peer) every interval until [`Discovery::remove_proxy`]. A new or
    /// changed one is sent at once.
    pub fn set_proxy(&mut self, ann: NodeAnnouncement) {
        let key = (ann.site_id, ann.name.clone());
        if self.proxied.get(&key) == Some(&ann) {
            return;
        }
        self.proxied.insert(key, ann.clone());
        if !self.closed {
            self.queue(Message::NodeAnnouncement(ann));
        }
    }

    /// Stops announcing for another node, with a goodbye.
    pub fn remove_proxy(&mut self, site_id: u16, name: &str) {
        if let Some(ann) = self.proxied.remove(&(site_id, name.to_owned()))
            && !self.closed
        {
            self.queue(Message::NodeGoodbye(ann));
        }
    }

    /// Whether the engine announces `(site, name)` for another node.
    pub fn is_proxied(&self, site_id: u16, name: &str) -> bool {
        self.proxied.contains_key(&(site_id, name.to_owned()))
    }

    /// Feeds one datagram received from `from` (its source address).
    /// Never panics, whatever the bytes.
    pub fn handle_input(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) {
        self.counters.received += 1;
        if datagram.len() > self.config.max_datagram {
            self.counters.oversize += 1;
            return;
        }
        let Some(raw) = datagram.first_chunk::<HEADER_LEN>() else {
            self.counters.truncated += 1;
            return;
        };
        let header = Header::from_bytes(*raw);
        let body = &datagram[HEADER_LEN..];
        let declared = usize::try_from(header.payload_len).unwrap_or(usize::MAX);
        if declared > body.len() {
            self.counters.truncated += 1;
            return;
        }
        if declared < body.len() {
            self.counters.malformed += 1;
            return;
        }
        let msg = match Message::parse(header, Bytes::copy_from_slice(body)) {
            Ok(m) => m,
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        match msg {
            Message::NodeAnnouncement(a) => self.on_announcement(a, from, now, false),
            Message::NodeGoodbye(a) => self.on_announcement(a, from, now, true),
            _ => self.counters.other_types += 1,
        }
    }

    fn is_own(&self, a: &NodeAnnouncement) -> bool {
        let same = |o: &NodeAnnouncement| o.site_id == a.site_id && o.name == a.name && o.tcp_port == a.tcp_port;
        self.local.as_ref().is_some_and(same) || self.proxied.values().any(same)
    }

    fn on_announcement(&mut self, a: NodeAnnouncement, from: SocketAddr, now: Instant, goodbye: bool) {
        if self.config.cross_site_link && a.site_id == 0 {
            self.counters.site_zero_on_link += 1;
            self.push_event(Event::ProtocolError {
                from,
                reason: format!(
                    "{} `{}` with site 0 on a cross-site link (a gateway must translate it)",
                    if goodbye { "goodbye" } else { "announcement" },
                    a.name
                ),
            });
            return;
        }
        if self.is_own(&a) {
            self.counters.own += 1;
            return;
        }
        let key = PeerKey {
            site_id: a.site_id,
            name: a.name.clone(),
            addr: SocketAddr::new(from.ip(), a.tcp_port),
        };
        if goodbye {
            self.counters.goodbyes += 1;
            self.remove(&key, GoneReason::Goodbye);
            return;
        }
        self.counters.announcements += 1;
        let interval = advertised_interval(&a.extensions).unwrap_or(self.config.interval);
        if let Some(p) = self.peers.get_mut(&key) {
            p.last_seen = now;
            if p.function_flags != a.function_flags
                || p.protocol_version != a.protocol_version
                || p.interval != interval
            {
                p.function_flags = a.function_flags;
                p.protocol_version = a.protocol_version;
                p.interval = interval;
                let p = p.clone();
                self.push_event(Event::Changed(p));
            }
            return;
        }
        let from_here = self.peers.keys().filter(|k| k.addr.ip() == from.ip()).count();
        if from_here >= self.config.max_peers_per_address {
            self.counters.address_full += 1;
            return;
        }
        if self.peers.len() >= self.config.max_peers {
            self.counters.table_full += 1;
            if !self.full {
                self.full = true;
                self.push_event(Event::TableFull {
                    limit: self.config.max_peers,
                });
            }
            return;
        }
        let peer = Peer {
            site_id: a.site_id,
            name: a.name,
            addr: key.addr,
            function_flags: a.function_flags,
            protocol_version: a.protocol_version,
            origin: Origin::Multicast,
            interval,
            first_seen: now,
            last_seen: now,
            conflict: false,
        };
        self.peers.insert(key.clone(), peer.clone());
        self.push_event(Event::Appeared(peer));
        self.update_conflict(key.site_id, &key.name, true);
    }

    /// Marks (or clears) the conflict flag of every claimant of a name.
    fn update_conflict(&mut self, site_id: u16, name: &str, report: bool) {
        let claimants: Vec<SocketAddr> = self.find(site_id, name).map(|p| p.addr).collect();
        let conflict = claimants.len() > 1;
        for p in self
            .peers
            .values_mut()
            .filter(|p| p.site_id == site_id && p.name == name)
        {
            p.conflict = conflict;
        }
        if conflict && report {
            self.counters.conflicts += 1;
            self.push_event(Event::Conflict {
                site_id,
                name: name.to_owned(),
                addrs: claimants,
            });
        }
    }

    fn remove(&mut self, key: &PeerKey, reason: GoneReason) {
        if let Some(peer) = self.peers.remove(key) {
            if self.peers.len() < self.config.max_peers {
                self.full = false;
            }
            self.push_event(Event::Gone { peer, reason });
            self.update_conflict(key.site_id, &key.name, false);
        }
    }

    /// Adds a manual peer (`HOST:PORT`), shown unreachable until a probe answers.
    pub fn add_manual(&mut self, target: &str, addr: SocketAddr, now: Instant) {
        if self.manual.contains_key(target) {
            return;
        }
        self.manual.insert(
            target.to_owned(),
            Peer {
                site_id: 0,
                name: String::new(),
                addr,
                function_flags: FunctionFlags(0),
                protocol_version: 0,
                origin: Origin::Manual {
                    target: target.to_owned(),
                    reachable: false,
                    error: None,
                },
                interval: self.config.interval,
                first_seen: now,
                last_seen: now,
                conflict: false,
            },
        );
    }

    /// Records the result of probing a manual peer.
    pub fn handle_probe(&mut self, target: &str, result: Result<ProbeReply, String>, now: Instant) {
        let Some(p) = self.manual.get_mut(target) else {
            return;
        };
        let was = matches!(p.origin, Origin::Manual { reachable: true, .. });
        match result {
            Ok(r) => {
                let changed = p.name != r.name
                    || p.site_id != r.site_id
                    || p.function_flags != r.function_flags
                    || p.addr != r.addr;
                p.name = r.name;
                p.site_id = r.site_id;
                p.function_flags = r.function_flags;
                p.protocol_version = r.protocol_version;
                p.addr = r.addr;
                p.last_seen = now;
                p.origin = Origin::Manual {
                    target: target.to_owned(),
                    reachable: true,
                    error: None,
                };
                let p = p.clone();
                if !was {
                    self.push_event(Event::Appeared(p));
                } else if changed {
                    self.push_event(Event::Changed(p));
                }
            }
            Err(error) => {
                p.origin = Origin::Manual {
                    target: target.to_owned(),
                    reachable: false,
                    error: Some(error),
                };
                let peer = p.clone();
                if was {
                    self.push_event(Event::Gone {
                        peer,
                        reason: GoneReason::Unreachable,
                    });
                }
            }
        }
    }

    fn announce_all(&mut self) {
        if self.closed {
            return;
        }
        let mut all: Vec<NodeAnnouncement> = self.local.iter().cloned().collect();
        all.extend(self.proxied.values().cloned());
        for a in all {
            self.queue(Message::NodeAnnouncement(a));
        }
    }

    fn queue(&mut self, msg: Message) {
        // Cannot fail: an announcement's name is at most 255 bytes (checked
        // when built: `NodeAnnouncement` names come from validated configs
        // and from parsed datagrams, both at most 255 bytes) and its
        // payload is far below u32::MAX. A failure is dropped, not sent.
        if let Ok(payload) = msg.to_vec() {
            self.counters.sent += 1;
            self.transmits.push_back(Transmit { payload });
        }
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
            self.counters.events_dropped += 1;
        }
        self.events.push_back(e);
    }
}
