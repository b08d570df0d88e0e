//! Discovery on UDP multicast: the sockets and one thin driver task around
//! the sans-IO engines of `framewire-discovery`.
//!
//! One socket per network leg (an ordinary node has one; a site gateway has
//! two or more). Each socket is bound to the group and port with
//! `SO_REUSEADDR`/`SO_REUSEPORT` (several nodes on one host share them),
//! joins the group on the leg's interface address, is bound to that
//! interface's device (it hears and sends nothing elsewhere), and sends with
//! `IP_MULTICAST_IF` set to that address, the configured TTL (default 1:
//! never routed) and multicast loop on (processes on one host hear each
//! other). A reader task per socket forwards datagrams to the driver; the
//! driver feeds the engine, sends what it returns, and sleeps until its
//! next deadline. Manual peers are probed by one task each (HELLO, then
//! DESCRIBE) and reported to the driver.
//!
//! A node serves the streams of other sites' nodes when it is a gateway:
//! a SUBSCRIBE for `STREAM@SITE:NAMESPACE:INSTANCE` that names no local
//! stream is routed through the peer table and pulled on demand with a
//! pulled edge (see [`parse_remote_stream`] for the name).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use framewire_discovery::{Event, Gateway, LegConfig, Peer, ProbeReply, Route, parse_qualified};
use framewire_proto::control::Description;
use framewire_proto::{NodeAnnouncement, Request, Response};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

pub use crate::config::{
    DEFAULT_DISCOVERY_PORT, DEFAULT_GROUP, DEFAULT_TTL, DiscoveryConfig, LegSpec, MulticastConfig,
};
use crate::error::NetError;
use crate::transport::client::{Client, ClientIdentity};

/// How long a SUBSCRIBE to another site's stream waits for the gateway's
/// pulled edge to come up.
pub const REMOTE_STREAM_WAIT: Duration = Duration::from_secs(5);
/// Largest datagram read (anything longer is cut and counted oversize).
const READ_BUF: usize = 2048;

/// A bound, joined multicast socket for `cfg`.
pub fn multicast_socket(cfg: &MulticastConfig) -> std::io::Result<UdpSocket> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    // Bound to the group, the socket receives that group's datagrams only
    // (not those of every group another socket of this host joined).
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(cfg.group, cfg.port)).into())?;
    sock.join_multicast_v4(&cfg.group, &cfg.interface)?;
    // Only what arrives on the leg's own interface. Membership alone does
    // not ensure it: Linux hands a socket bound to the group the datagrams
    // of every interface on which any socket joined it (and with
    // IP_MULTICAST_ALL off, sockets sharing the port were seen to get each
    // other's), so a gateway's legs would hear each other's networks. Bound
    // to the device, a socket sends and receives on that interface only.
    #[cfg(target_os = "linux")]
    {
        sock.set_multicast_all_v4(false)?;
        if !cfg.interface.is_unspecified() {
            match interface_name(cfg.interface)? {
                Some(name) => sock.bind_device(Some(&name))?,
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AddrNotAvailable,
                        format!("no interface has the address {}", cfg.interface),
                    ));
                }
            }
        }
    }
    if !cfg.interface.is_unspecified() {
        sock.set_multicast_if_v4(&cfg.interface)?;
    }
    sock.set_multicast_ttl_v4(cfg.ttl)?;
    sock.set_multicast_loop_v4(cfg.loopback)?;
    sock.set_nonblocking(true)?;
    UdpSocket::from_std(sock.into())
}

/// The name of the interface holding `addr` (for `SO_BINDTODEVICE`).
#[cfg(target_os = "linux")]
fn interface_name(addr: Ipv4Addr) -> std::io::Result<Option<Vec<u8>>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs stores a list head in `head` and returns 0, or
    // returns -1 and stores nothing.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not freed yet.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: a non-null ifa_addr points to a sockaddr.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
                if Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)) == addr {
                    // SAFETY: ifa_name is a NUL-terminated string owned by the list.
                    let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
                    found = Some(name.to_bytes().to_vec());
                    break;
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once; nothing of the
    // list is used after this.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}

enum Cmd {
    Peers(oneshot::Sender<Vec<(usize, Peer)>>),
    Route(u16, String, oneshot::Sender<Option<Route>>),
    Probe(String, Result<ProbeReply, String>),
    Close(oneshot::Sender<()>),
}

/// A running discovery driver.
#[derive(Debug)]
pub struct DiscoveryHandle {
    counters: Arc<std::sync::Mutex<DiscoveryCounters>>,
    cmd: mpsc::Sender<Cmd>,
    events: broadcast::Sender<(usize, Event)>,
    tasks: Vec<JoinHandle<()>>,
    gateway: bool,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cmd::Peers(_) => "Peers",
            Cmd::Route(..) => "Route",
            Cmd::Probe(..) => "Probe",
            Cmd::Close(_) => "Close",
        })
    }
}

impl DiscoveryHandle {
    /// Opens the sockets and starts the driver, announcing `local` (none:
    /// listen only, as `framewire discover` does).
    pub fn start(cfg: &DiscoveryConfig, local: Option<NodeAnnouncement>) -> Result<DiscoveryHandle, NetError> {
        let now = Instant::now();
        let legs: Vec<LegConfig> = cfg
            .legs
            .iter()
            .map(|l| LegConfig {
                label: l.label.clone(),
                kind: l.kind,
            })
            .collect();
        let mut engine = Gateway::new(cfg.engine.clone(), local, legs, now).map_err(|e| NetError::Discovery {
            leg: None,
            reason: e.to_string(),
        })?;
        let mut sockets = Vec::new();
        for l in &cfg.legs {
            let s = multicast_socket(&l.net).map_err(|e| NetError::Discovery {
                leg: Some(l.label.clone()),
                reason: format!(
                    "cannot listen on {}:{} via {} (leg `{}`): {e}",
                    l.net.group, l.net.port, l.net.interface, l.label
                ),
            })?;
            info!(
                leg = %l.label, group = %l.net.group, port = l.net.port, interface = %l.net.interface,
                ttl = l.net.ttl, "discovery on"
            );
            sockets.push(Arc::new(s));
        }
        for target in &cfg.manual_peers {
            let addr = target.parse().unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
            if let Some(e) = engine.engine_mut(0) {
                e.add_manual(target, addr, now);
            }
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (ev_tx, _) = broadcast::channel(1024);
        let (in_tx, in_rx) = mpsc::channel(1024);
        let mut tasks = Vec::new();
        for (leg, s) in sockets.iter().enumerate() {
            tasks.push(tokio::spawn(read_loop(leg, s.clone(), in_tx.clone())));
        }
        for target in &cfg.manual_peers {
            tasks.push(tokio::spawn(probe_loop(
                target.clone(),
                cfg.probe_interval,
                ClientIdentity::tool("discovery:probe")
                    .with_key(cfg.key.clone())
                    .with_tls(cfg.tls.clone()),
                cmd_tx.clone(),
            )));
        }
        let groups: Vec<SocketAddr> = cfg
            .legs
            .iter()
            .map(|l| SocketAddr::from((l.net.group, l.net.port)))
            .collect();
        let labels: Vec<String> = cfg.legs.iter().map(|l| l.label.clone()).collect();
        let counters = Arc::new(std::sync::Mutex::new(DiscoveryCounters::default()));
        let driver = Driver {
            counters: counters.clone(),
            engine,
            sockets,
            groups,
            labels,
            events: ev_tx.clone(),
            last_warn: None,
        };
        tasks.push(tokio::spawn(driver.run(in_rx, cmd_rx)));
        Ok(DiscoveryHandle {
            counters,
            cmd: cmd_tx,
            events: ev_tx,
            tasks,
            gateway: cfg.is_gateway(),
        })
    }

    /// Every event from now on, with its leg.
    pub fn subscribe(&self) -> broadcast::Receiver<(usize, Event)> {
        self.events.subscribe()
    }

    /// The peer table (every leg), with each row's leg.
    pub async fn peers(&self) -> Vec<(usize, Peer)> {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Peers(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// How a gateway reaches `site:name`.
    pub async fn route(&self, site_id: u16, name: &str) -> Option<Route> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Cmd::Route(site_id, name.to_owned(), tx)).await.ok()?;
        rx.await.ok().flatten()
    }

    /// What discovery refused or reported so far, summed over the legs.
    pub fn counters(&self) -> DiscoveryCounters {
        *self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the node is a site gateway.
    pub fn is_gateway(&self) -> bool {
        self.gateway
    }

    /// Sends goodbyes (for the node and what it forwards) and stops.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Close(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_millis(500), rx).await;
        }
        self.abort();
    }

    fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for DiscoveryHandle {
    fn drop(&mut self) {
        self.abort();
    }
}

async fn read_loop(leg: usize, sock: Arc<UdpSocket>, tx: mpsc::Sender<(usize, Vec<u8>, SocketAddr)>) {
    let mut buf = vec![0u8; READ_BUF];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                if tx.send((leg, buf[..n].to_vec(), from)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                debug!(leg, error = %e, "discovery read failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// HELLO then DESCRIBE: the manual peer's identity and TCP port.
async fn probe(target: &str, who: &ClientIdentity) -> Result<ProbeReply, NetError> {
    let addr = tokio::net::lookup_host(target)
        .await
        .map_err(|e| NetError::Address(target.to_owned(), format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| NetError::Address(target.to_owned(), "resolves to nothing".to_owned()))?;
    let mut c = Client::connect(&addr.to_string(), who, Duration::from_secs(2)).await?;
    let hello = c.peer().clone();
    let port = match c.request(Request::Describe).await {
        Ok(Response::Describe(Description { tcp_port, .. })) if tcp_port != 0 => tcp_port,
        _ => addr.port(),
    };
    Ok(ProbeReply {
        name: hello.name,
        site_id: hello.site_id,
        function_flags: hello.function_flags,
        protocol_version: hello.protocol_version,
        addr: SocketAddr::new(addr.ip(), port),
    })
}

async fn probe_loop(target: String, every: Duration, who: ClientIdentity, cmd: mpsc::Sender<Cmd>) {
    let mut warned = false;
    loop {
        let r = probe(&target, &who).await;
        let refused = matches!(
            &r,
            Err(NetError::Auth(_)
                | NetError::Remote {
                    status: framewire_proto::Status::PermissionDenied,
                    ..
                })
        );
        if let (true, false, Err(e)) = (refused, warned, &r) {
            warn!(peer = %target, error = %e, "manual peer refused: authentication failed (not repeated)");
            warned = true;
        }
        let r = r.map_err(|e| e.to_string());
        if cmd.send(Cmd::Probe(target.clone(), r)).await.is_err() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

/// What discovery refused or reported, summed over the legs (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscoveryCounters {
    /// Peers in the table now (every leg).
    pub peers: u64,
    /// Names claimed by a second address (the first claimant keeps them).
    pub conflicts: u64,
    /// New peers refused because the table was full.
    pub table_full: u64,
    /// New peers refused because their address holds its share of the table.
    pub address_full: u64,
    /// New peers a gateway never forwarded because too many waited.
    pub forward_dropped: u64,
}

struct Driver {
    counters: Arc<std::sync::Mutex<DiscoveryCounters>>,
    engine: Gateway,
    sockets: Vec<Arc<UdpSocket>>,
    groups: Vec<SocketAddr>,
    labels: Vec<String>,
    events: broadcast::Sender<(usize, Event)>,
    last_warn: Option<Instant>,
}

impl Driver {
    fn count(&self) {
        let mut c = DiscoveryCounters {
            forward_dropped: self.engine.forward_dropped(),
            ..DiscoveryCounters::default()
        };
        for leg in 0..self.engine.legs() {
            if let Some(e) = self.engine.engine(leg) {
                let n = e.counters();
                c.conflicts += n.conflicts;
                c.table_full += n.table_full;
                c.address_full += n.address_full;
                c.peers += e.peer_count() as u64;
            }
        }
        *self.counters.lock().unwrap_or_else(|p| p.into_inner()) = c;
    }

    async fn run(mut self, mut input: mpsc::Receiver<(usize, Vec<u8>, SocketAddr)>, mut cmds: mpsc::Receiver<Cmd>) {
        loop {
            self.drain().await;
            self.count();
            let deadline = self.engine.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some((leg, bytes, from)) = input.recv() => {
                    let before = self.bad_counts();
                    self.engine.handle_input(leg, &bytes, from, Instant::now());
                    if self.bad_counts() != before {
                        self.warn_bad(leg, from);
                    }
                }
                cmd = cmds.recv() => match cmd {
                    None => return,
                    Some(Cmd::Peers(reply)) => {
                        let rows = (0..self.engine.legs())
                            .flat_map(|l| {
                                let e = self.engine.engine(l);
                                e.into_iter().flat_map(move |e| e.peers().cloned().map(move |p| (l, p)))
                            })
                            .collect();
                        let _ = reply.send(rows);
                    }
                    Some(Cmd::Route(site, name, reply)) => {
                        let _ = reply.send(self.engine.route(site, &name));
                    }
                    Some(Cmd::Probe(target, result)) => {
                        if let Err(e) = &result {
                            debug!(peer = %target, error = %e, "manual peer probe failed");
                        }
                        if let Some(e) = self.engine.engine_mut(0) {
                            e.handle_probe(&target, result, Instant::now());
                        }
                        self.engine.after_direct_input(Instant::now());
                    }
                    Some(Cmd::Close(reply)) => {
                        self.engine.close();
                        self.drain().await;
                        let _ = reply.send(());
                        return;
                    }
                },
                () = sleep => self.engine.handle_timeout(Instant::now()),
            }
        }
    }

    fn bad_counts(&self) -> u64 {
        (0..self.engine.legs())
            .filter_map(|l| self.engine.engine(l))
            .map(|e| {
                let c = e.counters();
                c.malformed + c.truncated + c.oversize
            })
            .sum()
    }

    /// One warning per 10 s at most, with the totals.
    fn warn_bad(&mut self, leg: usize, from: SocketAddr) {
        let now = Instant::now();
        if self.last_warn.is_some_and(|t| now - t < Duration::from_secs(10)) {
            debug!(leg, %from, "bad discovery datagram dropped");
            return;
        }
        self.last_warn = Some(now);
        if let Some(e) = self.engine.engine(leg) {
            let c = e.counters();
            warn!(
                leg = %self.labels[leg], %from, malformed = c.malformed, truncated = c.truncated, oversize = c.oversize,
                "bad discovery datagram dropped (counted; further ones logged at debug for 10 s)"
            );
        }
    }

    async fn drain(&mut self) {
        while let Some((leg, t)) = self.engine.poll_transmit() {
            if let Err(e) = self.sockets[leg].send_to(&t.payload, self.groups[leg]).await {
                debug!(leg = %self.labels[leg], error = %e, "discovery send failed");
            }
        }
        while let Some((leg, ev)) = self.engine.poll_event() {
            let label = &self.labels[leg];
            match &ev {
                Event::Appeared(p) => info!(
                    leg = %label, peer = %p.qualified(), addr = %p.addr, flags = %p.function_flags,
                    origin = p.origin.label(), "peer appeared"
                ),
                Event::Changed(p) => {
                    info!(leg = %label, peer = %p.qualified(), flags = %p.function_flags, "peer changed")
                }
                Event::Gone { peer, reason } => {
                    info!(leg = %label, peer = %peer.qualified(), addr = %peer.addr, %reason, "peer gone")
                }
                Event::Conflict { site_id, name, addrs } => warn!(
                    leg = %label, peer = %framewire_discovery::qualified(*site_id, name), ?addrs,
                    "name conflict: several nodes claim this name (all kept)"
                ),
                Event::TableFull { limit } => {
                    warn!(leg = %label, limit, "peer table full: new peers are refused (counted)")
                }
                Event::ProtocolError { from, reason } => {
                    warn!(leg = %label, %from, %reason, "discovery protocol error: datagram dropped")
                }
                _ => {}
            }
            let _ = self.events.send((leg, ev));
        }
    }
}

/// Splits `STREAM@SITE:NAMESPACE:INSTANCE`.
pub fn parse_remote_stream(s: &str) -> Option<(&str, u16, &str)> {
    let (stream, node) = s.rsplit_once('@')?;
    let (site, name) = parse_qualified(node)?;
    (!stream.is_empty()).then_some((stream, site, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_stream_names() {
        assert_eq!(parse_remote_stream("bars@1:lab:cam"), Some(("bars", 1, "lab:cam")));
        assert_eq!(parse_remote_stream("a@b@2:x:y"), Some(("a@b", 2, "x:y")));
        assert_eq!(parse_remote_stream("bars"), None);
        assert_eq!(parse_remote_stream("@1:lab:cam"), None);
        assert_eq!(parse_remote_stream("bars@x:lab:cam"), None);
        assert_eq!(parse_remote_stream("bars@1:"), None);
    }
}
