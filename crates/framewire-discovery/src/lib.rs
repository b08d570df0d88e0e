//! framewire's discovery engine, with no I/O: no sockets, no tasks, no clock.
//!
//! Nodes find each other by sending node announcements (`0x0010`, the
//! wire format of `framewire-proto`) to a UDP multicast group, one message
//! per datagram. This crate decides *when* to announce, keeps the table of
//! peers heard, expires the silent ones, and says what changed. The caller
//! owns the socket and the clock: every handler takes `now`, and the engine
//! answers with datagrams to send and the instant it next needs attention.
//!
//! # The run loop
//!
//! ```text
//! engine = Discovery::new(config, Some(our_announcement), now)
//! loop {
//!     while let Some(t) = engine.poll_transmit() { socket.send_to(t.payload, group) }
//!     while let Some(e) = engine.poll_event()    { act on e (log, update a UI) }
//!     deadline = engine.poll_timeout()
//!     select {
//!         datagram (bytes, from) => engine.handle_input(bytes, from, now())
//!         sleep until deadline   => engine.handle_timeout(now())
//!     }
//! }
//! engine.close(); send what poll_transmit returns    // goodbye on clean exit
//! ```
//!
//! The invariant: after any `handle_*` call the caller drains
//! `poll_transmit` and `poll_event`, and calls `handle_timeout` no later
//! than `poll_timeout` says. Nothing else makes time pass, so a test can
//! drive several engines through hours of simulated time in microseconds.
//!
//! # Behaviour
//!
//! - The first announcement is due at the `now` given to
//!   [`Discovery::new`]: a node is visible as soon as its first datagram
//!   lands. Then one every [`Config::interval`] (default
//!   [`DEFAULT_INTERVAL`], 1 s). Each announcement carries the interval in
//!   an extension (tag `0x02`, [`interval_extension`]) so a listener expires
//!   each peer by the peer's own pace.
//! - A peer silent for [`Config::expiry_intervals`] of its intervals
//!   (default 3) is [`Event::Gone`] with [`GoneReason::Expired`]; a goodbye
//!   removes it at once.
//! - A peer is keyed by site, name and address (source IP of the datagram,
//!   announced TCP port). Two addresses claiming one site and name are both
//!   kept, both flagged, and reported as [`Event::Conflict`]: never merged.
//! - The table holds at most [`Config::max_peers`]; a new peer beyond that is
//!   refused, counted, and reported once per episode as [`Event::TableFull`].
//! - Oversize, truncated and malformed datagrams are counted in
//!   [`Counters`] and dropped; they never touch the table.
//! - Manual peers (networks without multicast) are added with
//!   [`Discovery::add_manual`]; the caller probes them over TCP and reports
//!   with [`Discovery::handle_probe`]. They share the table, marked
//!   [`Origin::Manual`].
//! - A [`Gateway`] runs one engine per network leg and forwards each leg's
//!   local peers to the others under the leg's site id ([`translate`]). On a
//!   leg marked as a cross-site link, site 0 is a protocol error: counted,
//!   reported as [`Event::ProtocolError`], dropped.
//!
//! # Example
//!
//! Two nodes on one simulated segment: `cam` starts, `viewer` sees it at
//! once, `cam` dies silently, and three intervals later `viewer` drops it.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use framewire_discovery::{Config, Discovery, Event, GoneReason, announcement};
//! use framewire_proto::FunctionFlags;
//!
//! let t0 = Instant::now();
//! let config = Config::new().with_interval(Duration::from_secs(1));
//! let cam_addr: SocketAddr = "10.0.0.2:5353".parse().unwrap();
//! let mut cam = Discovery::new(config.clone(), Some(announcement("lab:cam", 0, 7400, FunctionFlags::SOURCE, config.interval)), t0);
//! let mut viewer = Discovery::new(config.clone(), None, t0);
//!
//! // Start: the first announcement is due now.
//! cam.handle_timeout(t0);
//! while let Some(t) = cam.poll_transmit() {
//!     viewer.handle_input(&t.payload, cam_addr, t0);
//! }
//! let Some(Event::Appeared(peer)) = viewer.poll_event() else { panic!() };
//! assert_eq!(peer.qualified(), "0:lab:cam");
//! assert_eq!(peer.addr, "10.0.0.2:7400".parse().unwrap());
//!
//! // cam is killed: nothing more arrives. The viewer wakes when told to.
//! let mut now = t0;
//! loop {
//!     now = viewer.poll_timeout().unwrap();
//!     viewer.handle_timeout(now);
//!     if let Some(Event::Gone { peer, reason }) = viewer.poll_event() {
//!         assert_eq!((peer.name.as_str(), reason), ("lab:cam", GoneReason::Expired));
//!         break;
//!     }
//! }
//! assert_eq!(now - t0, Duration::from_secs(3));
//! ```
//!
//! # Panics, errors and limits
//!
//! No input from the network panics: every datagram is length-checked
//! against its header before it is parsed, and parse errors are counted.
//! The event queue is bounded ([`MAX_QUEUED_EVENTS`]); the peer table is
//! bounded by [`Config::max_peers`].

#![forbid(unsafe_code)]

mod engine;
mod gateway;
mod peer;

use std::time::Duration;

pub use engine::{
    Config, DEFAULT_EXPIRY_INTERVALS, DEFAULT_INTERVAL, DEFAULT_MAX_DATAGRAM, DEFAULT_MAX_PEERS,
    DEFAULT_MAX_PEERS_PER_ADDRESS, Discovery, EXT_INTERVAL, MAX_PEER_INTERVAL, MAX_QUEUED_EVENTS, MIN_PEER_INTERVAL,
    ProbeReply, Transmit, advertised_interval, interval_extension,
};
pub use gateway::{FORWARD_BURST, FORWARD_RATE, Gateway, GatewayError, LegConfig, LegKind, Route, translate};
pub use peer::{Counters, Event, GoneReason, Origin, Peer, parse_qualified, qualified};

use framewire_proto::{FunctionFlags, NodeAnnouncement, PROTOCOL_VERSION};

/// A node's announcement, with the interval extension.
pub fn announcement(
    name: &str,
    site_id: u16,
    tcp_port: u16,
    function_flags: FunctionFlags,
    interval: Duration,
) -> NodeAnnouncement {
    NodeAnnouncement {
        protocol_version: PROTOCOL_VERSION,
        site_id,
        tcp_port,
        function_flags,
        name: name.to_owned(),
        extensions: interval_extension(interval),
    }
}
