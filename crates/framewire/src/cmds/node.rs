//! `framewire node`: run a node until Ctrl-C, SIGTERM or a SHUTDOWN command.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use framewire_net::Node;

use crate::config::{self, NodeFile};

/// Run a node. Everything can come from a TOML file (docs/config.md), from
/// flags, or both; flags override the file's name and address and add to
/// its lists.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire node --name lab:cam --source test-pattern:bars,size=1280x720,fps=30,format=mjpeg\n  \
framewire node --name lab:relay --listen 127.0.0.1:7401 --upstream 127.0.0.1:7400/bars\n  \
framewire node --config node.toml\n\n\
Specs:\n  \
--source test-pattern:NAME[,size=WxH][,fps=N][,format=mjpeg|qoi|raw|raw-zstd][,pixel-format=bgra|yuv420p|...][,quality=1-100]\n  \
--source file:NAME,path=FILE.mjpeg[,fps=N (0 = as fast as possible)][,loop=false]\n  \
--source v4l2:NAME[,device=/dev/video0][,pixel-format=MJPG|YUYV|...][,size=WxH][,fps=N][,format=native|raw|raw-zstd|mjpeg][,on-demand=false][,linger=S][,controls.NAME=V]\n  \
--upstream HOST:PORT/STREAM[,as=LOCAL][,mode=low-latency|completeness][,max-frames=N][,max-bytes=N][,drop-policy=..][,priority=N]\n  \
--sink null|file|stdout:STREAM[,path=FILE][,mode=..]\n  \
--opaque STREAM=HOST:PORT[,mode=..][,allow-unauthenticated=true]   (headerless port: ffplay -f mjpeg tcp://HOST:PORT)\n\n\
Security (docs/security.md): --key-file PATH (or FRAMEWIRE_KEY_FILE) makes every connection, in and out,\n\
authenticate with that deployment key; tools talking to the node need the same key.\n\
Metrics: --metrics [ADDR] serves Prometheus text at http://ADDR/metrics (127.0.0.1:9400 when no ADDR).\n\n\
Discovery (docs/discovery.md): on by default, on the --listen address's interface (loopback by default).\n  \
framewire node --name gw:ab --listen 0.0.0.0:7400 \\\n    \
--gateway-leg interface=10.1.0.254,site=1 --gateway-leg interface=10.2.0.254,site=2\n  \
Another site's stream through a gateway: --upstream GATEWAY:PORT/STREAM@SITE:NAMESPACE:INSTANCE")]
pub struct Args {
    /// Node configuration file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Node name, `namespace:instance` [default: node:HOSTNAME].
    #[arg(long)]
    name: Option<String>,
    /// Address to listen on [default: 127.0.0.1:7400].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A stream produced here (repeatable).
    #[arg(long = "source", value_name = "SPEC")]
    sources: Vec<String>,
    /// A stream pulled from another node and served here (repeatable).
    #[arg(long = "upstream", value_name = "SPEC")]
    upstreams: Vec<String>,
    /// A local sink (repeatable).
    #[arg(long = "sink", value_name = "SPEC")]
    sinks: Vec<String>,
    /// A headerless TCP port serving one stream (repeatable).
    #[arg(long = "opaque", value_name = "SPEC")]
    opaque: Vec<String>,
    /// Site id announced (0 = local, the default; a gateway translates it).
    #[arg(long)]
    site_id: Option<u16>,
    /// Serve Prometheus metrics at http://ADDR/metrics [default when given
    /// without a value: 127.0.0.1:9400; off unless given].
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = DEFAULT_METRICS_ADDR)]
    metrics: Option<SocketAddr>,
    /// Unix socket for shared-memory subscriptions from this host
    /// [default: $XDG_RUNTIME_DIR or the temp dir, framewire-PID-NAME.sock].
    #[arg(long, value_name = "PATH", conflicts_with = "no_shm")]
    shm_socket: Option<PathBuf>,
    /// Serve subscriptions over TCP only (no shared memory for local subscribers).
    #[arg(long)]
    no_shm: bool,
    #[command(flatten)]
    discovery: crate::discovery::DiscoveryArgs,
}

/// Where `--metrics` without a value serves.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9400";

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut file = match &args.config {
        Some(p) => NodeFile::load(p)?,
        None => NodeFile::default(),
    };
    if args.name.is_some() {
        file.name = args.name;
    }
    if args.listen.is_some() {
        file.listen = args.listen;
    }
    for s in &args.sources {
        file.sources.push(config::parse_source(s)?);
    }
    for s in &args.upstreams {
        file.upstreams.push(config::parse_upstream(s)?);
    }
    for s in &args.sinks {
        file.sinks.push(config::parse_sink(s)?);
    }
    for s in &args.opaque {
        file.opaque.push(config::parse_opaque(s)?);
    }
    if args.site_id.is_some() {
        file.site_id = args.site_id;
    }
    if let Some(p) = crate::util::key_file() {
        file.key_file = Some(p.to_owned());
    }
    if args.metrics.is_some() {
        file.metrics = args.metrics;
    }
    if args.no_shm {
        file.shm = Some(false);
        file.shm_socket = None;
    } else if args.shm_socket.is_some() {
        file.shm = Some(true);
        file.shm_socket = args.shm_socket;
    }
    args.discovery.apply(&mut file.discovery)?;
    let cfg = file.into_config()?;
    let node = Node::start(cfg).await.context("cannot start the node")?;
    eprintln!("framewire: node {} listening on {}", node.name(), node.local_addr());
    if let Some(m) = node.metrics_addr() {
        eprintln!("framewire: metrics at http://{m}/metrics");
    }
    let mut shutdown = node.shutdown_signal();
    wait_for_stop(&mut shutdown).await;
    node.shutdown().await;
    Ok(())
}

/// Returns on Ctrl-C, SIGTERM, or when the node begins shutting down.
pub async fn wait_for_stop(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = sigterm => {}
        _ = shutdown.changed() => {}
    }
}
