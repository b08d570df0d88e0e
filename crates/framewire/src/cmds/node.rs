//! `framewire node`: run a node until Ctrl-C, SIGTERM or a SHUTDOWN command.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use framewire_controller::{ControllerConfig, ControllerHandle};
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
--source test-pattern:NAME[,size=WxH][,fps=N][,format=mjpeg|qoi|raw|raw-zstd|h264][,pixel-format=bgra|yuv420p|...][,quality=1-100][,bitrate=BPS][,gop=N]\n  \
--source file:NAME,path=FILE.mjpeg[,fps=N (0 = as fast as possible)][,loop=false]\n  \
--source ffmpeg:NAME,input=URL|FILE[,codec=h264|h265|mjpeg][,format=copy|mjpeg][,listen=true][,realtime=true][,loop=true]\n    \
(SRT, RTMP, HLS, MPEG-TS, files: video passed through untouched; docs/codecs.md)\n  \
--source rtsp:NAME,url=rtsp://[USER:PASS@]HOST[:PORT]/PATH[,codec=h264|h265|mjpeg][,transport=tcp|udp][,credentials=FILE][,stall=S]\n    \
(an IP camera read by the built-in RTSP client: H.264, H.265 or MJPEG passed through untouched; docs/codecs.md)\n  \
--source v4l2:NAME[,device=/dev/video0][,pixel-format=MJPG|YUYV|...][,size=WxH][,fps=N][,format=native|raw|raw-zstd|mjpeg][,on-demand=false][,linger=S][,controls.NAME=V]\n  \
--source compose:NAME,inputs=[IN=][HOST:PORT/]STREAM;...[,size=WxH][,fps=N][,layout=grid|pip|side-by-side][,format=mjpeg|h264|qoi|raw|raw-zstd][,bitrate=BPS][,gop=N][,labels=false]\n    \
(several streams on one canvas, NO SIGNAL on a lost one's tile; custom tiles in a config file: docs/compose.md)\n  \
--source x11:NAME[,display=:0][,monitor=NAME|rect=WxH+X+Y][,fps=N][,format=qoi|raw|raw-zstd|mjpeg][,inject-input=true][,timecode=true]\n    \
(a screen grab through MIT-SHM; docs/x11.md)\n  \
--source solid:NAME[,size=WxH][,fps=N][,color=RRGGBB]\n  \
--source archive:NAME,stream=STREAM,from=TIME,to=TIME (a range of this node's own recording played at its rate; TIME is RFC 3339 or unix seconds; docs/archive.md)\n  \
--upstream HOST:PORT/STREAM[,as=LOCAL][,mode=low-latency|completeness][,max-frames=N][,max-bytes=N][,drop-policy=..][,priority=N][,weight=N][,max-rate=RATE]\n  \
--sink null|file|stdout:STREAM[,path=FILE][,mode=..]\n  \
--sink archive:STREAM,dir=DIR,format=passthrough|h264|h265|av1|ffv1|prores[,segment=S][,...]   (docs/archive.md)\n  \
--sink ring:STREAM[,path=/dev/shm/framewire-ring-STREAM][,slots=120][,max-frame=BYTES]   (framewire ring read PATH)\n  \
--sink view:STREAM[,fullscreen=MONITOR][,position=X,Y][,size=WxH][,scale=letterbox|stretch]   (a window on this node's display)\n  \
--sink srt:STREAM,url=srt://HOST:PORT[,listen=true|false][,latency=MS][,passphrase=P]   (MPEG-TS over SRT: ffplay srt://HOST:PORT)\n  \
--sink hls:STREAM,dir=DIR[,segment=S][,list-size=N]   (DIR/index.m3u8 and its segments, for a web server or CDN)\n  \
--sink push:STREAM,url=rtmp://HOST/APP/KEY|srt://HOST:PORT[,latency=MS][,passphrase=P]   (to a media server, reconnecting)\n    \
(these three copy H.264/H.265 as they are, other formats go as STREAM~h264; docs/outputs.md)\n  \
--opaque STREAM=HOST:PORT[,mode=..][,allow-unauthenticated=true]   (headerless port: ffplay -f mjpeg tcp://HOST:PORT)\n  \
--link PEER|*[,scheduler=strict|rr|wrr|drr|suppress][,max-rate=20Mbit|2.5MB|BYTES][,burst=BYTES][,quantum=BYTES]\n    \
(how subscriptions to that peer take turns; with max-rate, all its connections share the cap: docs/relay.md)\n\n\
Security (docs/security.md): --key-file PATH (or FRAMEWIRE_KEY_FILE) makes every connection, in and out,\n\
authenticate with that deployment key; tools talking to the node need the same key.\n\
Metrics: --metrics [ADDR] serves Prometheus text at http://ADDR/metrics (127.0.0.1:9400 when no ADDR).\n\
RTSP: --rtsp [ADDR] serves every stream at rtsp://ADDR/STREAM (127.0.0.1:8554 when no ADDR; H.264 and\n\
H.265 as they are, MJPEG too when RFC 2435 can carry it, other formats as STREAM~h264): ffplay rtsp://127.0.0.1:8554/cam. Players on other hosts\n\
log in (Digest) as a user of --rtsp-users FILE given RTSP access (framewire user add NAME --role viewer --rtsp),\n\
or as `framewire` with the password `framewire key rtsp-password` prints.\n\n\
Discovery (docs/discovery.md): on by default, on the --listen address's interface (loopback by default).\n  \
framewire node --name gw:ab --listen 0.0.0.0:7400 \\\n    \
--gateway-leg interface=10.1.0.254,site=1 --gateway-leg interface=10.2.0.254,site=2\n  \
Another site's stream through a gateway: --upstream GATEWAY:PORT/STREAM@SITE:NAMESPACE:INSTANCE\n\n\
Controller (docs/controller.md): --controller makes this node keep a control connection to every\n\
node discovery finds (and every --controller-node), assemble the live graph from their status\n\
reports, and reconcile the wanted graph kept in STATE_DIR/wanted.toml.\n  \
framewire node --name lab:ctl --listen 127.0.0.1:7410 --controller --state-dir /var/lib/framewire \\\n    \
--controller-node 10.0.0.5:7400\n\n\
Web UI (docs/web.md): a controller serves it on 127.0.0.1:7480 (--web ADDR to change, --no-web for none).\n\
A node without --controller serves it with --web ADDR, for its own streams only (previews, WebRTC, HLS).\n\
Users live in STATE_DIR/users.json: framewire user add NAME --role admin --state-dir DIR")]
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
    /// Pushes STREAM to a media server: `STREAM=rtmp://HOST/APP/KEY` or
    /// `STREAM=srt://HOST:PORT` (repeatable; the `push` sink).
    #[arg(long = "push", value_name = "STREAM=URL")]
    push: Vec<String>,
    /// A headerless TCP port serving one stream (repeatable).
    #[arg(long = "opaque", value_name = "SPEC")]
    opaque: Vec<String>,
    /// How subscriptions to a peer share the path and how fast they may go
    /// (repeatable; the first rule naming a peer's address, else `*`).
    #[arg(long = "link", value_name = "SPEC")]
    links: Vec<String>,
    /// Site id announced (0 = local, the default; a gateway translates it).
    #[arg(long)]
    site_id: Option<u16>,
    /// Serve Prometheus metrics at http://ADDR/metrics [default when given
    /// without a value: 127.0.0.1:9400; off unless given].
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = DEFAULT_METRICS_ADDR)]
    metrics: Option<SocketAddr>,
    /// Serve every stream over RTSP at rtsp://ADDR/STREAM [default when
    /// given without a value: 127.0.0.1:8554; off unless given]. Players
    /// on this host need no credentials; others need a user of
    /// --rtsp-users or the deployment key's (docs/outputs.md).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = DEFAULT_RTSP_ADDR)]
    rtsp: Option<SocketAddr>,
    /// The web UI's users file whose users may play over RTSP (Digest)
    /// [default with --controller: STATE_DIR/users.json].
    #[arg(long, value_name = "FILE")]
    rtsp_users: Option<PathBuf>,
    /// Players on other hosts need no credentials.
    #[arg(long, conflicts_with = "rtsp_auth_local")]
    rtsp_open: bool,
    /// Players on this host need credentials too.
    #[arg(long)]
    rtsp_auth_local: bool,
    /// Unix socket for shared-memory subscriptions from this host
    /// [default: $XDG_RUNTIME_DIR or the temp dir, framewire-PID-NAME.sock].
    #[arg(long, value_name = "PATH", conflicts_with = "no_shm")]
    shm_socket: Option<PathBuf>,
    /// Serve subscriptions over TCP only (no shared memory for local subscribers).
    #[arg(long)]
    no_shm: bool,
    /// Stream formats accepted on pulled edges (repeatable; mjpeg, qoi,
    /// raw, raw-zstd, ...) [default: every format].
    #[arg(long = "accept-format", value_name = "FORMAT")]
    accept_formats: Vec<String>,
    /// Run the controller role (function flag 0x8): watch every node,
    /// assemble the current graph, reconcile the wanted graph.
    #[arg(long)]
    controller: bool,
    /// A node the controller connects to even without discovery,
    /// `host:port` (repeatable; needs --controller).
    #[arg(long = "controller-node", value_name = "HOST:PORT", requires = "controller")]
    controller_nodes: Vec<String>,
    /// The controller raises an alert on an edge that drops more than this
    /// share of the frames offered to it over --alert-window (0-1)
    /// [default: 0.05; needs --controller].
    #[arg(long, value_name = "SHARE", requires = "controller", value_parser = parse_share)]
    alert_drop_share: Option<f64>,
    /// The window of --alert-drop-share, in seconds [default: 10; needs --controller].
    #[arg(long, value_name = "SECONDS", requires = "controller", value_parser = clap::value_parser!(u64).range(1..=3600))]
    alert_window: Option<u64>,
    /// The node's state directory: camera control values set remotely are
    /// kept there and set again when the node starts (`v4l2-controls.toml`);
    /// with --controller or --web, the wanted graph (`wanted.toml`) and the
    /// web UI's users (`users.json`) [default for those: ./framewire-state;
    /// without it, no control values are kept].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Where the web UI and HTTP API serve (docs/web.md): a controller's,
    /// for the whole graph [default: 127.0.0.1:7480]; without --controller,
    /// this node's own streams only (previews, WebRTC, HLS). Any address
    /// other than loopback needs a user first (framewire user add NAME
    /// --role admin). If the address cannot be bound the node does not
    /// start.
    #[arg(long, value_name = "ADDR")]
    web: Option<SocketAddr>,
    /// A host name browsers use to reach the web UI (repeatable). Requests
    /// naming any other host than localhost or an address are refused (a
    /// guard against DNS rebinding).
    #[arg(long = "web-host", value_name = "NAME")]
    web_hosts: Vec<String>,
    /// Serve the HLS outputs under DIR (an `hls` sink with dir=DIR/NAME) at
    /// http://WEB/hls/NAME/index.m3u8, to viewers and above.
    #[arg(long = "web-hls", value_name = "DIR")]
    web_hls: Option<PathBuf>,
    /// Run the controller without its web UI.
    #[arg(long, requires = "controller", conflicts_with = "web")]
    no_web: bool,
    /// Check the configuration (file and flags: every source, sink and
    /// edge parses) and exit without starting; what only a start finds (a
    /// busy port, a missing device) is not checked.
    #[arg(long)]
    check: bool,
    /// Mark the web session cookie Secure (when a TLS proxy serves the UI).
    #[arg(long)]
    web_secure_cookies: bool,
    /// Serve the web UI over HTTPS with this certificate (PEM; its chain
    /// after it). `framewire cert issue` makes one (docs/security.md, "TLS").
    #[arg(long, value_name = "FILE", requires = "web_tls_key")]
    web_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --web-tls-cert.
    #[arg(long, value_name = "FILE", requires = "web_tls_cert")]
    web_tls_key: Option<PathBuf>,
    /// Refuse plain TCP on the node's port: peers must come over TLS
    /// (needs --tls-cert and --tls-key; docs/security.md, "TLS between nodes").
    #[arg(long)]
    tls_require: bool,
    /// Whom the node dials over TLS (with --tls-ca): all its peers, or only
    /// the next gateway across a site link [default: all].
    #[arg(long, value_name = "WHOM", value_parser = ["all", "links"])]
    tls_dial: Option<String>,
    #[command(flatten)]
    discovery: crate::discovery::DiscoveryArgs,
}

/// Where `--metrics` without a value serves.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9400";

/// Where `--rtsp` without a value serves.
pub const DEFAULT_RTSP_ADDR: &str = "127.0.0.1:8554";

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut file = match &args.config {
        Some(p) => NodeFile::load(p)?,
        None => NodeFile::default(),
    };
    if args.name.is_some() {
        file.name = args.name.clone();
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
    for s in &args.push {
        let (stream, url) = s
            .split_once('=')
            .with_context(|| format!("--push `{s}`: expected STREAM=URL"))?;
        let mut t = toml::Table::new();
        t.insert("kind".into(), "push".into());
        t.insert("stream".into(), stream.into());
        t.insert("url".into(), url.into());
        file.sinks.push(t);
    }
    for s in &args.opaque {
        file.opaque.push(config::parse_opaque(s)?);
    }
    for s in &args.links {
        file.links.push(config::parse_link(s)?);
    }
    if args.site_id.is_some() {
        file.site_id = args.site_id;
    }
    if let Some(p) = crate::util::key_file() {
        file.key_file = Some(p.to_owned());
    }
    let tls = crate::util::tls_files();
    if tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some() || args.tls_require || args.tls_dial.is_some() {
        let t = file.tls.get_or_insert_with(Default::default);
        t.ca = tls.ca.or(t.ca.take());
        t.cert = tls.cert.or(t.cert.take());
        t.key = tls.key.or(t.key.take());
        t.require |= args.tls_require;
        if args.tls_dial.is_some() {
            t.dial = args.tls_dial.clone();
        }
    }
    if args.metrics.is_some() {
        file.metrics = args.metrics;
    }
    if args.rtsp.is_some() {
        file.rtsp = args.rtsp;
    }
    if args.rtsp_users.is_some() {
        file.rtsp_users = args.rtsp_users.clone();
    } else if args.controller && file.rtsp_users.is_none() {
        let users = state_dir(&args).join("users.json");
        file.rtsp_users = users.exists().then_some(users);
    }
    file.rtsp_open |= args.rtsp_open;
    file.rtsp_auth_local |= args.rtsp_auth_local;
    if args.no_shm {
        file.shm = Some(false);
        file.shm_socket = None;
    } else if args.shm_socket.is_some() {
        file.shm = Some(true);
        file.shm_socket = args.shm_socket.clone();
    }
    args.discovery.apply(&mut file.discovery)?;
    file.accept_formats.extend(args.accept_formats.iter().cloned());
    let mut cfg = file.into_config()?;
    // A certificate that does not load stops the start, with its reason.
    let web_tls = match (&args.web_tls_cert, &args.web_tls_key) {
        (Some(cert), Some(key)) => Some(framewire_tls::server_config(cert, key, None).context("--web-tls-cert")?),
        _ => None,
    };
    if args.check {
        println!(
            "{}: configuration ok ({} sources, {} upstreams, {} sinks)",
            cfg.name,
            cfg.sources.len(),
            cfg.edges.len(),
            cfg.sinks.len()
        );
        return Ok(());
    }
    cfg.controller = args.controller;
    // Given: what the node keeps (camera controls set remotely) goes there.
    cfg.state_dir.clone_from(&args.state_dir);
    let mut signals = StopSignals::install();
    let node = Node::start(cfg).await.context("cannot start the node")?;
    let controller = if args.controller {
        Some(start_controller(&node, &args, false).await?)
    } else if args.web.is_some() {
        // The web UI of this node alone: a controller that watches only it.
        Some(start_controller(&node, &args, true).await?)
    } else {
        None
    };
    let web = match &controller {
        Some(handle) if !args.no_web => {
            let mut cfg = framewire_web::WebConfig::new(args.web.unwrap_or(framewire_web::WebConfig::default().listen));
            cfg.state_dir = Some(state_dir(&args));
            cfg.secure_cookies = args.web_secure_cookies;
            cfg.hosts = args.web_hosts.clone();
            cfg.hls_dir = args.web_hls.clone();
            cfg.tls = web_tls.clone();
            // Under `framewire up`: its status, for the page's host view.
            cfg.up_status = std::env::var_os("FRAMEWIRE_UP_STATUS").map(PathBuf::from);
            match framewire_web::WebServer::bind(cfg, std::sync::Arc::new(handle.clone())).await {
                Ok(web) => {
                    eprintln!("framewire: web UI on {}", web.url());
                    Some(web)
                }
                // Never run on without the UI a user expects: another
                // process on the port would get the browsers' passwords.
                Err(e) => {
                    node.shutdown().await;
                    let hint = match &e {
                        framewire_web::WebError::Bind { .. } => {
                            " (another process holds the port? give --web ADDR, or --no-web)"
                        }
                        _ => "",
                    };
                    return Err(anyhow::Error::new(e).context(format!("cannot start the web UI{hint}")));
                }
            }
        }
        _ => None,
    };
    eprintln!("framewire: node {} listening on {}", node.name(), node.local_addr());
    if let Some(m) = node.metrics_addr() {
        eprintln!("framewire: metrics at http://{m}/metrics");
    }
    if let Some(r) = node.rtsp_addr() {
        eprintln!("framewire: rtsp at rtsp://{r}/STREAM");
    }
    let mut shutdown = node.shutdown_signal();
    signals.wait(&mut shutdown).await;
    if let Some(web) = web {
        web.shutdown().await;
    }
    node.shutdown().await;
    Ok(())
}

/// `--state-dir`, or the default.
fn state_dir(args: &Args) -> PathBuf {
    args.state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(framewire_controller::DEFAULT_STATE_DIR))
}

/// Starts the controller role beside `node`: it watches the node itself,
/// the `--controller-node` list, and every peer discovery reports; with
/// `itself_only` (a node's own web UI), the node alone.
async fn start_controller(node: &Node, args: &Args, itself_only: bool) -> anyhow::Result<ControllerHandle> {
    let state_dir = state_dir(args);
    let mut cfg = ControllerConfig::new(node.name(), state_dir.clone());
    cfg.nodes.push(node.local_addr().to_string());
    cfg.key = node.key().cloned();
    cfg.tls = node.tls_client();
    if itself_only {
        return framewire_controller::start(cfg).await.with_context(|| {
            format!(
                "cannot start the web UI's view of the node (state dir {})",
                state_dir.display()
            )
        });
    }
    cfg.nodes.extend(args.controller_nodes.iter().cloned());
    cfg.discovery = node.discovery_events();
    if let Some(share) = args.alert_drop_share {
        cfg.alerts.share = share;
    }
    if let Some(w) = args.alert_window {
        cfg.alerts.window = std::time::Duration::from_secs(w);
    }
    for (_, p) in node.peers().await {
        cfg.nodes.push(p.addr.to_string());
    }
    let handle = framewire_controller::start(cfg)
        .await
        .with_context(|| format!("cannot start the controller (state dir {})", state_dir.display()))?;
    // `/metrics` (with --metrics) shows the controller's nodes, edges and alerts too.
    let graph = handle.graph();
    node.add_metrics(std::sync::Arc::new(move || {
        framewire_controller::metrics::metrics_text(&graph.borrow())
    }));
    eprintln!(
        "framewire: controller on, wanted graph in {}",
        state_dir.join(framewire_controller::store::WANTED_FILE).display()
    );
    Ok(handle)
}

/// SIGINT and SIGTERM handlers, installed before the node says it listens
/// so that a signal sent as soon as it does is never lost to the default
/// action (which would kill the process without a graceful shutdown).
pub struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Installs the handlers.
    pub fn install() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Returns on SIGINT, SIGTERM, or when the node begins shutting down.
    pub async fn wait(&mut self, shutdown: &mut tokio::sync::watch::Receiver<bool>) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = recv(&mut self.int) => {}
            () = recv(&mut self.term) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Returns on Ctrl-C, SIGTERM, or when the node begins shutting down.
pub async fn wait_for_stop(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    StopSignals::install().wait(shutdown).await;
}

/// A share between 0 and 1.
pub fn parse_share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}
