//! Several engines, one per network leg, and the site-id translation
//! between them. A node with one leg is an ordinary node; with two or more
//! it is a site gateway.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use framewire_proto::NodeAnnouncement;

use crate::engine::{Config, Discovery, Transmit, interval_extension};
use crate::peer::{Event, Origin, Peer};

/// What a leg's network is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegKind {
    /// A site's own network: its nodes announce site 0, and the gateway
    /// forwards them to its other legs as `site_id`.
    Site {
        /// The id the gateway gives this site (non-zero on a gateway).
        site_id: u16,
    },
    /// A cross-site link (a transit network or tunnel between gateways):
    /// every announcement on it carries a non-zero site id; site 0 there is
    /// a protocol error.
    Link,
}

/// One leg of a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegConfig {
    /// A label for logs (`a`, `lab`, `10.1.0.254`, ...).
    pub label: String,
    /// Site or link.
    pub kind: LegKind,
}

/// Why a set of legs cannot make a gateway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// No leg at all.
    #[error("discovery needs at least one network leg")]
    NoLegs,
    /// A site leg of a gateway with site id 0.
    #[error("gateway leg `{0}`: a site leg needs a non-zero site id (0 means local and must be translated)")]
    SiteZero(String),
    /// Two site legs with one id.
    #[error("gateway legs `{0}` and `{1}` both claim site {2}")]
    DuplicateSite(String, String, u16),
    /// A link leg but no site leg (the gateway would have no site of its own).
    #[error("a gateway with a cross-site link needs at least one site leg")]
    LinkOnly,
}

/// How the gateway reaches a node of another leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The leg the node is on.
    pub leg: usize,
    /// Where to dial: the node itself, or the next gateway on a link.
    pub addr: SocketAddr,
    /// The node is behind another gateway: ask that gateway for the same
    /// qualified stream name. Otherwise ask the node for the bare stream.
    pub via_gateway: bool,
}

#[derive(Debug)]
struct Leg {
    config: LegConfig,
    engine: Discovery,
}

/// The engines of every leg and the forwarding between them. Same run loop
/// as [`Discovery`], with a leg index on inputs and outputs.
#[derive(Debug)]
pub struct Gateway {
    legs: Vec<Leg>,
    tcp_port: u16,
    interval_ext: bytes::Bytes,
    /// (target leg, site, name) forwarded → the origin leg.
    forwarded: BTreeMap<(usize, u16, String), usize>,
    events: VecDeque<(usize, Event)>,
    /// New peers waiting to be forwarded (the origin leg and the peer),
    /// and the tokens that let them through.
    waiting: VecDeque<(usize, Peer)>,
    bucket: Bucket,
    /// New peers never forwarded because too many waited.
    forward_dropped: u64,
}

/// New peers forwarded to the other legs per second, and in a burst: a
/// spoofer announcing thousands of names cannot make a gateway re-announce
/// them all at once on every leg.
pub const FORWARD_RATE: f64 = 20.0;
/// See [`FORWARD_RATE`].
pub const FORWARD_BURST: f64 = 64.0;

/// A token bucket with time passed in.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        if let Some(at) = self.at {
            let dt = now.saturating_duration_since(at).as_secs_f64();
            self.tokens = (self.tokens + dt * FORWARD_RATE).min(FORWARD_BURST);
        }
        self.at = Some(now);
    }

    fn take(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token is there.
    fn next(&self) -> Option<Instant> {
        let at = self.at?;
        let missing = (1.0 - self.tokens).max(0.0);
        Some(at + std::time::Duration::from_secs_f64(missing / FORWARD_RATE))
    }
}

/// The site id a leg's peer is forwarded under onto leg `to` (none: not forwarded).
pub fn translate(peer_site: u16, from: LegKind, to: LegKind) -> Option<u16> {
    match from {
        // Local nodes of that site take its id; nodes already carrying a
        // site id were forwarded by another gateway: one hop only.
        LegKind::Site { site_id } => (peer_site == 0).then_some(site_id),
        // From a link: keep the id, except back into the site it names.
        LegKind::Link => match to {
            LegKind::Site { site_id } if site_id == peer_site => None,
            _ if peer_site == 0 => None,
            _ => Some(peer_site),
        },
    }
}

impl Gateway {
    /// Engines for `legs`, announcing `local` (none: listen only; its site
    /// id is kept on site legs, the first site leg's id is used on links).
    /// `local.tcp_port` is also the port forwarded peers are announced with:
    /// the gateway serves their streams itself.
    pub fn new(
        config: Config,
        local: Option<NodeAnnouncement>,
        legs: Vec<LegConfig>,
        now: Instant,
    ) -> Result<Gateway, GatewayError> {
        if legs.is_empty() {
            return Err(GatewayError::NoLegs);
        }
        let gateway = legs.len() > 1;
        let mut own_site = None;
        for (i, l) in legs.iter().enumerate() {
            if let LegKind::Site { site_id } = l.kind {
                if gateway && site_id == 0 {
                    return Err(GatewayError::SiteZero(l.label.clone()));
                }
                if let Some(o) = legs[..i]
                    .iter()
                    .find(|o| gateway && o.kind == LegKind::Site { site_id })
                {
                    return Err(GatewayError::DuplicateSite(o.label.clone(), l.label.clone(), site_id));
                }
                own_site.get_or_insert(site_id);
            }
        }
        let has_link = legs.iter().any(|l| l.kind == LegKind::Link);
        if has_link && own_site.is_none() {
            return Err(GatewayError::LinkOnly);
        }
        let interval_ext = interval_extension(config.interval);
        let legs = legs
            .into_iter()
            .map(|l| {
                let ann = local.clone().map(|mut a| {
                    if l.kind == LegKind::Link {
                        a.site_id = own_site.unwrap_or(0);
                    }
                    a
                });
                let cfg = config.clone().with_cross_site_link(l.kind == LegKind::Link);
                Leg {
                    engine: Discovery::new(cfg, ann, now),
                    config: l,
                }
            })
            .collect();
        Ok(Gateway {
            legs,
            tcp_port: local.as_ref().map_or(0, |a| a.tcp_port),
            interval_ext,
            forwarded: BTreeMap::new(),
            events: VecDeque::new(),
            waiting: VecDeque::new(),
            bucket: Bucket {
                tokens: FORWARD_BURST,
                at: Some(now),
            },
            forward_dropped: 0,
        })
    }

    /// Whether this forwards between legs (two or more).
    pub fn is_gateway(&self) -> bool {
        self.legs.len() > 1
    }

    /// Number of legs.
    pub fn legs(&self) -> usize {
        self.legs.len()
    }

    /// A leg's configuration.
    pub fn leg_config(&self, leg: usize) -> Option<&LegConfig> {
        self.legs.get(leg).map(|l| &l.config)
    }

    /// A leg's engine (its table and counters).
    pub fn engine(&self, leg: usize) -> Option<&Discovery> {
        self.legs.get(leg).map(|l| &l.engine)
    }

    /// A leg's engine, mutably (manual peers live on leg 0).
    pub fn engine_mut(&mut self, leg: usize) -> Option<&mut Discovery> {
        self.legs.get_mut(leg).map(|l| &mut l.engine)
    }

    /// Feeds a datagram received on `leg`.
    pub fn handle_input(&mut self, leg: usize, datagram: &[u8], from: SocketAddr, now: Instant) {
        if let Some(l) = self.legs.get_mut(leg) {
            l.engine.handle_input(datagram, from, now);
        }
        self.pump(now);
    }

    /// Announces and expires on every leg.
    pub fn handle_timeout(&mut self, now: Instant) {
        for l in &mut self.legs {
            if l.engine.poll_timeout().is_some_and(|t| t <= now) {
                l.engine.handle_timeout(now);
            }
        }
        self.pump(now);
    }

    /// Call after feeding a leg's engine directly (e.g. a manual probe).
    pub fn after_direct_input(&mut self, now: Instant) {
        self.pump(now);
    }

    /// The earliest deadline of any leg, or of the next peer waiting to be
    /// forwarded.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let forward = if self.waiting.is_empty() {
            None
        } else {
            self.bucket.next()
        };
        self.legs
            .iter()
            .filter_map(|l| l.engine.poll_timeout())
            .chain(forward)
            .min()
    }

    /// New peers never forwarded because too many waited at once.
    pub fn forward_dropped(&self) -> u64 {
        self.forward_dropped
    }

    /// The next datagram and the leg to send it on.
    pub fn poll_transmit(&mut self) -> Option<(usize, Transmit)> {
        self.legs
            .iter_mut()
            .enumerate()
            .find_map(|(i, l)| l.engine.poll_transmit().map(|t| (i, t)))
    }

    /// The next event and the leg it happened on.
    pub fn poll_event(&mut self) -> Option<(usize, Event)> {
        self.events.pop_front()
    }

    /// Goodbyes on every leg, for the node and every forwarded peer.
    pub fn close(&mut self) {
        for l in &mut self.legs {
            l.engine.close();
        }
    }

    /// How to reach `name` of site `site_id` (a qualified address seen from
    /// the gateway's other legs). None: unknown.
    pub fn route(&self, site_id: u16, name: &str) -> Option<Route> {
        for (i, l) in self.legs.iter().enumerate() {
            let found = match l.config.kind {
                LegKind::Site { site_id: s } if s == site_id => l.engine.find(0, name).next().map(|p| (p, false)),
                LegKind::Link => l.engine.find(site_id, name).next().map(|p| (p, true)),
                LegKind::Site { .. } => None,
            };
            if let Some((p, via_gateway)) = found {
                return Some(Route {
                    leg: i,
                    addr: p.addr,
                    via_gateway,
                });
            }
        }
        None
    }

    fn pump(&mut self, now: Instant) {
        self.bucket.refill(now);
        while !self.waiting.is_empty() && self.bucket.take() {
            if let Some((i, p)) = self.waiting.pop_front() {
                // It may have gone meanwhile.
                if self.legs[i].engine.find(p.site_id, &p.name).any(|q| q.addr == p.addr) {
                    self.forward(i, &p);
                }
            }
        }
        for i in 0..self.legs.len() {
            while let Some(ev) = self.legs[i].engine.poll_event() {
                if self.is_gateway() {
                    match &ev {
                        Event::Appeared(p) | Event::Changed(p) if p.origin == Origin::Multicast => {
                            self.forward_limited(i, p)
                        }
                        Event::Gone { peer, .. } if peer.origin == Origin::Multicast => {
                            self.waiting
                                .retain(|(l, w)| !(*l == i && w.addr == peer.addr && w.name == peer.name));
                            self.unforward(i, peer);
                        }
                        _ => {}
                    }
                }
                self.events.push_back((i, ev));
            }
        }
    }

    /// Forwards a peer already forwarded at once (a change), a new one when
    /// the bucket has a token, else it waits its turn.
    fn forward_limited(&mut self, from: usize, p: &Peer) {
        let known = self
            .forwarded
            .iter()
            .any(|((_, _, name), &f)| f == from && *name == p.name);
        if known || self.bucket.take() {
            self.forward(from, p);
            return;
        }
        if self.waiting.len() >= crate::engine::DEFAULT_MAX_PEERS {
            self.waiting.pop_front();
            self.forward_dropped += 1;
        }
        self.waiting.push_back((from, p.clone()));
    }

    fn forward(&mut self, from: usize, p: &Peer) {
        let from_kind = self.legs[from].config.kind;
        for to in 0..self.legs.len() {
            if to == from {
                continue;
            }
            let Some(site) = translate(p.site_id, from_kind, self.legs[to].config.kind) else {
                continue;
            };
            let ann = NodeAnnouncement {
                protocol_version: p.protocol_version,
                site_id: site,
                tcp_port: self.tcp_port,
                function_flags: p.function_flags,
                name: p.name.clone(),
                extensions: self.interval_ext.clone(),
            };
            self.legs[to].engine.set_proxy(ann);
            self.forwarded.insert((to, site, p.name.clone()), from);
        }
    }

    fn unforward(&mut self, from: usize, p: &Peer) {
        let from_kind = self.legs[from].config.kind;
        for to in 0..self.legs.len() {
            if to == from {
                continue;
            }
            let Some(site) = translate(p.site_id, from_kind, self.legs[to].config.kind) else {
                continue;
            };
            // Another claimant of the name may still be there.
            if self.legs[from].engine.find(p.site_id, &p.name).next().is_some() {
                continue;
            }
            let key = (to, site, p.name.clone());
            if self.forwarded.get(&key) == Some(&from) {
                self.forwarded.remove(&key);
                self.legs[to].engine.remove_proxy(site, &p.name);
            }
        }
    }
}
