//! `framewire discover`: listen to the announcements of a group and show
//! the peer table (or, with `--watch`, every change as it happens).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use framewire_discovery::{Config as EngineConfig, Event, Origin, Peer};
use framewire_net::discovery::{DEFAULT_DISCOVERY_PORT, DEFAULT_GROUP, DEFAULT_TTL};
use framewire_net::{DiscoveryConfig, DiscoveryHandle, MulticastConfig};

/// Listen on a discovery group and print the nodes heard: a table after a
/// few seconds, or with --watch every appearance, change and departure
/// until Ctrl-C. Listens only: announces nothing.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire discover                          nodes announcing on loopback (default nodes)\n  \
framewire discover --interface 10.0.0.5     nodes on that interface's network\n  \
framewire discover --watch --json           one JSON object per event\n  \
framewire discover --peer 10.0.0.9:7400     also probe a node over TCP (no multicast needed)")]
pub struct Args {
    /// Print JSON (a table: one array; --watch: one object per line).
    #[arg(long)]
    json: bool,
    /// Print changes as they happen, until Ctrl-C (or --seconds).
    #[arg(long)]
    watch: bool,
    /// How long to listen [default: 2 s; with --watch: until Ctrl-C].
    #[arg(long, value_name = "SECONDS")]
    seconds: Option<f64>,
    /// Multicast group [default: 224.0.0.251].
    #[arg(long, value_name = "IPV4", default_value_t = DEFAULT_GROUP)]
    group: Ipv4Addr,
    /// UDP port [default: 5353].
    #[arg(long, default_value_t = DEFAULT_DISCOVERY_PORT)]
    port: u16,
    /// Interface to listen on, by address [default: 127.0.0.1, where
    /// nodes with the default --listen announce].
    #[arg(long, value_name = "IPV4", default_value_t = Ipv4Addr::LOCALHOST)]
    interface: Ipv4Addr,
    /// A node to probe over TCP as well (repeatable).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = DiscoveryConfig::single(MulticastConfig {
        group: args.group,
        port: args.port,
        interface: args.interface,
        ttl: DEFAULT_TTL,
        loopback: true,
    });
    cfg.engine = EngineConfig::new();
    cfg.manual_peers = args.peers.clone();
    cfg.key = crate::util::key()?;
    let handle = DiscoveryHandle::start(&cfg, None)?;
    let mut events = handle.subscribe();
    let limit = match (args.seconds, args.watch) {
        (Some(s), _) => Some(Duration::from_secs_f64(s.clamp(0.0, 1e6))),
        (None, false) => Some(Duration::from_secs(2)),
        (None, true) => None,
    };
    let start = Instant::now();
    let stop = async {
        match limit {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    if args.watch && !args.json {
        eprintln!(
            "framewire: watching {}:{} on {} (Ctrl-C to stop)",
            args.group, args.port, args.interface
        );
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            () = &mut stop => break,
            ev = events.recv() => match ev {
                Ok((_, ev)) if args.watch => print_event(&ev, start, args.json),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => eprintln!("framewire: {n} events missed"),
                Err(_) => break,
            },
        }
    }
    if !args.watch {
        let peers: Vec<Peer> = handle.peers().await.into_iter().map(|(_, p)| p).collect();
        print_table(&peers, args.json)?;
    }
    Ok(())
}

fn peer_json(p: &Peer) -> serde_json::Value {
    let (reachable, error) = match &p.origin {
        Origin::Manual { reachable, error, .. } => (*reachable, error.clone()),
        Origin::Multicast => (true, None),
    };
    serde_json::json!({
        "address": p.qualified(),
        "site_id": p.site_id,
        "name": p.name,
        "addr": p.addr.to_string(),
        "function_flags": p.function_flags.0,
        "functions": p.function_flags.to_string(),
        "protocol_version": p.protocol_version,
        "origin": p.origin.label(),
        "reachable": reachable,
        "error": error,
        "conflict": p.conflict,
        "interval_ms": u64::try_from(p.interval.as_millis()).unwrap_or(u64::MAX),
        "last_seen_ms_ago": u64::try_from(p.last_seen.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

fn print_event(ev: &Event, start: Instant, json: bool) {
    let t = start.elapsed().as_secs_f64();
    let (kind, body) = match ev {
        Event::Appeared(p) => ("appeared", peer_json(p)),
        Event::Changed(p) => ("changed", peer_json(p)),
        Event::Gone { peer, reason } => {
            let mut v = peer_json(peer);
            v["reason"] = reason.to_string().into();
            ("gone", v)
        }
        Event::Conflict { site_id, name, addrs } => (
            "conflict",
            serde_json::json!({
                "address": framewire_discovery::qualified(*site_id, name),
                "addrs": addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        ),
        Event::TableFull { limit } => ("table-full", serde_json::json!({ "limit": limit })),
        Event::ProtocolError { from, reason } => (
            "protocol-error",
            serde_json::json!({ "from": from.to_string(), "reason": reason }),
        ),
        _ => return,
    };
    if json {
        let mut v = serde_json::json!({ "event": kind, "t_s": t });
        if let (Some(o), Some(b)) = (v.as_object_mut(), body.as_object()) {
            o.extend(b.clone());
        }
        println!("{v}");
    } else {
        let who = body["address"].as_str().unwrap_or_default();
        let addr = body["addr"].as_str().unwrap_or_default();
        let extra = body["reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default();
        println!("{t:>8.3}s {kind:<14} {who} {addr}{extra}");
    }
}

fn print_table(peers: &[Peer], json: bool) -> anyhow::Result<()> {
    if json {
        let v: Vec<serde_json::Value> = peers.iter().map(peer_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if peers.is_empty() {
        println!("no nodes heard");
        return Ok(());
    }
    println!(
        "{:<32} {:<22} {:<24} {:<9} {:>9}  NOTE",
        "SITE:NAME", "ADDRESS", "FUNCTIONS", "ORIGIN", "SEEN"
    );
    for p in peers {
        let note = match &p.origin {
            Origin::Manual {
                reachable: false,
                error,
                ..
            } => format!("unreachable: {}", error.as_deref().unwrap_or("not probed yet")),
            _ if p.conflict => "CONFLICT: another node claims this name".to_owned(),
            _ => String::new(),
        };
        println!(
            "{:<32} {:<22} {:<24} {:<9} {:>8.1}s  {}",
            p.qualified(),
            p.addr.to_string(),
            p.function_flags.to_string(),
            p.origin.label(),
            p.last_seen.elapsed().as_secs_f64(),
            note
        );
    }
    Ok(())
}
