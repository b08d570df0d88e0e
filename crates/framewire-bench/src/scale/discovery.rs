//! A large discovery table: one node with discovery on (its own group and
//! port, through 127.0.0.1), and this process announcing N peers once a
//! second, 50 from each of many loopback addresses (127.0.1.x; a node
//! takes at most 64 peers from one address). Measured from the node's
//! `/metrics`: how long the table takes to fill, the node's CPU and memory
//! with it full, and past the table's size (1024) the refusals counted;
//! then the peers fall silent and must leave the table.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use framewire_proto::{FunctionFlags, Message, NodeAnnouncement, PROTOCOL_VERSION};

use super::http::{metric, request};
use super::{Args, Found, Usage, fds_threads, mib, start_node};
use crate::procs;

/// Peers announced from one address.
const PER_ADDRESS: usize = 50;

/// Announces `n` peers (named `scale:pFIRST+i`) every second until `stop`,
/// spread over the second in ten sends.
fn announce(
    group: SocketAddr,
    first: usize,
    n: usize,
    per_address: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let mut socks = Vec::new();
    for k in 0..n.div_ceil(per_address) {
        let host = first / per_address + k;
        let from = Ipv4Addr::new(127, 0, 1 + (host / 250) as u8, 1 + (host % 250) as u8);
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
        s.bind(&SocketAddr::from((from, 0)).into())
            .with_context(|| format!("cannot bind {from}"))?;
        s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST)?;
        s.set_multicast_ttl_v4(1)?;
        s.set_multicast_loop_v4(true)?;
        socks.push(UdpSocket::from(s));
    }
    let datagrams: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            Message::NodeAnnouncement(NodeAnnouncement {
                protocol_version: PROTOCOL_VERSION,
                site_id: 0,
                tcp_port: 7400,
                function_flags: FunctionFlags::SOURCE,
                name: format!("scale:p{}", first + i),
                extensions: Default::default(),
            })
            .to_vec()
            .map(|b| b.to_vec())
        })
        .collect::<Result<_, _>>()?;
    Ok(std::thread::spawn(move || {
        let tick = Duration::from_millis(100);
        let mut next = Instant::now();
        let mut slice = 0;
        while !stop.load(Ordering::Relaxed) {
            for (i, d) in datagrams.iter().enumerate().skip(slice).step_by(10) {
                let _ = socks[i / per_address].send_to(d, group);
            }
            slice = (slice + 1) % 10;
            next += tick;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }))
}

async fn metrics(addr: &str) -> anyhow::Result<String> {
    let (status, body) = request(addr, "GET", "/metrics", None).await?;
    anyhow::ensure!(status == 200, "/metrics answered {status}");
    Ok(body)
}

/// Waits until `/metrics` shows `want(peers)`; the time it took.
async fn until_peers(addr: &str, within: Duration, want: impl Fn(f64) -> bool) -> anyhow::Result<Option<Duration>> {
    let t = Instant::now();
    while t.elapsed() < within {
        if want(metric(&metrics(addr).await?, "framewire_discovery_peers").unwrap_or(-1.0)) {
            return Ok(Some(t.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}

pub(crate) async fn run(a: &Args, out: &Path) -> anyhow::Result<Found> {
    let mut f = Found::default();
    let group = Ipv4Addr::new(239, 255, 77, 1 + (std::process::id() % 250) as u8);
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let metrics_addr = format!("127.0.0.1:{}", procs::free_port()?);
    let s = |v: &str| v.to_owned();
    let node = start_node(
        out,
        "scale:disc",
        &[
            s("--discovery"),
            s("on"),
            s("--discovery-group"),
            group.to_string(),
            s("--discovery-port"),
            port.to_string(),
            s("--discovery-interface"),
            s("127.0.0.1"),
            s("--metrics"),
            metrics_addr.clone(),
        ],
    )?;
    let to = SocketAddr::new(IpAddr::V4(group), port);
    let pid = node.proc.pid;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let u0 = Usage::of(pid);
    tokio::time::sleep(a.hold).await;
    let u1 = Usage::of(pid);
    f.row(
        "node alone: CPU, RSS",
        format!("{:.2} % of a core, {}", u0.cpu_percent(&u1), mib(u1.rss)),
    );
    // N peers.
    let stop = Arc::new(AtomicBool::new(false));
    let t = announce(to, 0, a.peers, PER_ADDRESS, stop.clone())?;
    let want = a.peers.min(1024) as f64;
    let filled = until_peers(&metrics_addr, Duration::from_secs(20), |p| p >= want).await?;
    f.check(filled.is_some(), || format!("the table never held {want} peers"));
    f.row(
        format!("{} peers announcing once a second: table full after", a.peers),
        filled.map_or("never (20 s)".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
    );
    let u2 = Usage::of(pid);
    tokio::time::sleep(a.hold).await;
    let u3 = Usage::of(pid);
    let (fds, threads) = fds_threads(pid);
    f.row(
        format!("node with {} peers: CPU, RSS", a.peers),
        format!(
            "{:.2} % of a core, {} ({:.2} KiB per peer), {fds} descriptors, {threads} threads",
            u2.cpu_percent(&u3),
            mib(u3.rss),
            u3.rss.saturating_sub(u1.rss) as f64 / a.peers.max(1) as f64 / 1024.0
        ),
    );
    // Past the table: 100 more than it holds.
    let extra = (1024 + 100usize).saturating_sub(a.peers).max(100);
    let t2 = announce(to, a.peers + 10_000, extra, PER_ADDRESS, stop.clone())?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = metrics(&metrics_addr).await?;
    let peers = metric(&m, "framewire_discovery_peers").unwrap_or(0.0);
    let full = metric(&m, "framewire_discovery_refused_peers_total{reason=\"table-full\"}").unwrap_or(0.0);
    f.row(
        format!("{} peers announcing", a.peers + extra),
        format!("table holds {peers}; {full} announcements refused (table-full)"),
    );
    f.check(peers <= 1024.0, || format!("the table holds {peers}, more than 1024"));
    f.check(full > 0.0, || "no table-full refusal counted".to_owned());
    stop.store(true, Ordering::Relaxed);
    for h in [t, t2] {
        let _ = h.join();
    }
    let gone = until_peers(&metrics_addr, Duration::from_secs(10), |p| p == 0.0).await?;
    f.row(
        "all silent: table empty after",
        gone.map_or("not within 10 s".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
    );
    f.check(gone.is_some(), || "silent peers stayed in the table".to_owned());
    // 70 peers from one address.
    let stop = Arc::new(AtomicBool::new(false));
    let t = announce(to, 900_000, 70, 70, stop.clone())?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = metrics(&metrics_addr).await?;
    stop.store(true, Ordering::Relaxed);
    let _ = t.join();
    let peers = metric(&m, "framewire_discovery_peers").unwrap_or(0.0);
    let share = metric(&m, "framewire_discovery_refused_peers_total{reason=\"address-share\"}").unwrap_or(0.0);
    f.row(
        "70 peers from one address",
        format!("table holds {peers}; {share} announcements refused (address-share)"),
    );
    f.check(peers == 64.0 && share > 0.0, || {
        format!("70 peers from one address: {peers} held, {share} refused")
    });
    f.limit = "the table's size (`max_peers`, 1024) and 64 peers per address: more are refused, \
               counted in `framewire_discovery_refused_peers_total` by reason, and logged"
        .to_owned();
    f.check(node.proc.alive(), || "the node died".to_owned());
    Ok(f)
}
