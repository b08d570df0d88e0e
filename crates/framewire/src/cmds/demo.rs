//! `framewire demo`: a whole graph on this machine, on loopback only.
//!
//! ```text
//! demo:source (test pattern, and bars-h264) ──► demo:relay ──┬─► demo:viewer   (low-latency, a window)
//!                                             ├─► demo:archive  (completeness, recording)
//!                                             └─► opaque port   (ffplay -f mjpeg tcp://127.0.0.1:7500)
//! ```
//!
//! Every node is a real node with its own TCP listener on 127.0.0.1; the
//! edges are real TCP connections, pulled by the downstream nodes. A fifth
//! node, `demo:controller`, runs the controller and its web UI on
//! 127.0.0.1:7480 (open, no users, unless `--state-dir` holds some): the
//! graph with live figures, wiring, previews. The viewer shows the stream
//! in a window when there is a display; the archive records it into a
//! directory that stays after the demo (`framewire archive ls --dir DIR`).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use framewire_net::{EdgeConfig, Node, NodeConfig, OpaquePortConfig, SinkConfig, SinkKind};
use framewire_proto::control::{OutputStats, Stats};
use framewire_proto::{DeliveryMode, SubscribeParams};

use crate::config;

/// Run a demo graph on loopback and show live per-edge figures until Ctrl-C:
/// a test-pattern source, a relay, a low-latency viewer and a completeness
/// archive, plus a headerless MJPEG port any player can open.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stop after this many seconds [default: run until Ctrl-C].
    #[arg(long)]
    duration: Option<f64>,
    /// Test pattern size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    size: String,
    /// Test pattern frames per second.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Port of the headerless MJPEG view port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 7500)]
    view_port: u16,
    /// Where the web UI listens (loopback; another free port if it is taken).
    #[arg(long, default_value = "127.0.0.1:7480")]
    web: SocketAddr,
    /// No controller, no web UI.
    #[arg(long)]
    no_web: bool,
    /// The controller's state directory (wanted graph, users.json) [default: a new temporary one,
    /// so the UI runs open on loopback with no users].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<std::path::PathBuf>,
    /// Where the archive node records [default: a new directory under the
    /// system's temporary directory, kept after the demo].
    #[arg(long, value_name = "DIR")]
    archive_dir: Option<std::path::PathBuf>,
    /// No viewer window even when there is a display.
    #[arg(long)]
    no_window: bool,
}

/// The viewer node's sink: a window when there is a display (and
/// `--no-window` is not given), else frames only counted; and what to say
/// about it.
fn viewer_sink(args: &Args) -> (SinkConfig, String) {
    let null = |why: String| {
        let cfg = SinkConfig {
            stream: "bars".into(),
            kind: SinkKind::null(),
            params: SubscribeParams {
                mode: DeliveryMode::LowLatency,
                ..SubscribeParams::default()
            },
        };
        (cfg, why)
    };
    if args.no_window {
        return null("no window (--no-window): frames only counted".into());
    }
    #[cfg(feature = "viewer")]
    {
        let mut t = toml::Table::new();
        t.insert("kind".into(), "view".into());
        t.insert("stream".into(), "bars".into());
        t.insert("position".into(), "0,0".into());
        t.insert("size".into(), "640x360".into());
        match framewire_net::sinks::from_table_with(t, crate::viewer::sink::KINDS) {
            Ok(cfg) => {
                let display = std::env::var("DISPLAY")
                    .or_else(|_| std::env::var("WAYLAND_DISPLAY"))
                    .unwrap_or_default();
                (cfg, format!("a window on display {display}"))
            }
            Err(e) => null(format!("no window ({e}): frames only counted")),
        }
    }
    #[cfg(not(feature = "viewer"))]
    null("no window (built without the viewer): frames only counted".into())
}

/// The archive node's sink: MJPEG kept as it comes, in 10 s segments.
fn archive_sink(dir: &std::path::Path) -> anyhow::Result<SinkConfig> {
    let mut t = toml::Table::new();
    t.insert("kind".into(), "archive".into());
    t.insert("stream".into(), "bars".into());
    t.insert("dir".into(), dir.display().to_string().into());
    t.insert("format".into(), "passthrough".into());
    t.insert("segment".into(), 10.into());
    t.insert("mode".into(), "completeness".into());
    Ok(framewire_net::sinks::from_table(t)?)
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `port` if it is free on loopback, else a free one.
fn free_port(port: u16) -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind(loopback(port))
        .or_else(|_| std::net::TcpListener::bind(loopback(0)))
        .context("no free port on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

fn edge(upstream: &Node, stream: &str, mode: DeliveryMode, max_frames: u32) -> EdgeConfig {
    EdgeConfig::new(upstream.local_addr().to_string(), stream).with_params(SubscribeParams {
        mode,
        max_frames,
        ..SubscribeParams::default()
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut source_spec = toml::Table::new();
    source_spec.insert("kind".into(), "test-pattern".into());
    source_spec.insert("name".into(), "bars".into());
    source_spec.insert("size".into(), args.size.clone().into());
    source_spec.insert("fps".into(), args.fps.into());
    source_spec.insert("quality".into(), 80.into());
    let mut src = NodeConfig::new("demo:source", loopback(0));
    src.sources.push(framewire_net::sources::from_table(source_spec)?);
    // The same pattern in H.264, smaller: what the browser decodes itself
    // (WebCodecs) in a preview.
    let mut h264_spec = toml::Table::new();
    h264_spec.insert("kind".into(), "test-pattern".into());
    h264_spec.insert("name".into(), "bars-h264".into());
    h264_spec.insert("size".into(), "640x360".into());
    h264_spec.insert("fps".into(), args.fps.into());
    h264_spec.insert("format".into(), "h264".into());
    src.sources.push(framewire_net::sources::from_table(h264_spec)?);
    config::check_name(&src.name)?;
    let source = Node::start(src).await?;

    let view_port = free_port(args.view_port)?;
    let mut rel = NodeConfig::new("demo:relay", loopback(0));
    rel.edges.push(edge(&source, "bars", DeliveryMode::Completeness, 8));
    rel.opaque_ports.push(OpaquePortConfig {
        stream: "bars".into(),
        listen: loopback(view_port),
        params: SubscribeParams::default(),
        allow_unauthenticated: false,
    });
    let relay = Node::start(rel).await?;

    let (view, viewer_says) = viewer_sink(&args);
    let archive_dir = match &args.archive_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("framewire-demo-archive-{}", std::process::id())),
    };
    let (record, archive_says) = if which("ffmpeg") {
        (
            archive_sink(&archive_dir)?,
            format!("recording into {}", archive_dir.display()),
        )
    } else {
        let null = SinkConfig {
            stream: "bars".into(),
            kind: SinkKind::null(),
            params: SubscribeParams {
                mode: DeliveryMode::Completeness,
                ..SubscribeParams::default()
            },
        };
        (
            null,
            "not recording: the archive needs ffmpeg (apt install ffmpeg)".into(),
        )
    };
    let mut sinks = Vec::new();
    for (name, mode, sink) in [
        ("demo:viewer", DeliveryMode::LowLatency, view),
        ("demo:archive", DeliveryMode::Completeness, record),
    ] {
        let mut cfg = NodeConfig::new(name, loopback(0));
        cfg.edges.push(edge(&relay, "bars", mode, 32));
        cfg.sinks.push(sink);
        sinks.push(Node::start(cfg).await?);
    }

    let mut web = None;
    let mut controller_node = None;
    let mut temp_state = None;
    if !args.no_web {
        let state_dir = match &args.state_dir {
            Some(d) => d.clone(),
            None => {
                let d = std::env::temp_dir().join(format!("framewire-demo-{}", std::process::id()));
                temp_state = Some(d.clone());
                d
            }
        };
        let mut cfg = NodeConfig::new("demo:controller", loopback(0));
        cfg.controller = true;
        let node = Node::start(cfg).await?;
        let mut ccfg = framewire_controller::ControllerConfig::new(node.name(), state_dir.clone());
        ccfg.nodes = [&source, &relay, &node]
            .into_iter()
            .chain(sinks.iter())
            .map(|n| n.local_addr().to_string())
            .collect();
        let handle = framewire_controller::start(ccfg)
            .await
            .context("cannot start the controller")?;
        let listen = if std::net::TcpListener::bind(args.web).is_ok() {
            args.web
        } else {
            loopback(0)
        };
        let mut wcfg = framewire_web::WebConfig::new(listen);
        wcfg.state_dir = Some(state_dir);
        web = Some(
            framewire_web::WebServer::bind(wcfg, std::sync::Arc::new(handle))
                .await
                .context("cannot start the web UI")?,
        );
        controller_node = Some(node);
    }
    let url = web.as_ref().map(|w| w.url());

    let nodes: Vec<&Node> = [&source, &relay].into_iter().chain(sinks.iter()).collect();
    let tty = std::io::stdout().is_terminal();
    // The address to open comes first.
    if let Some(url) = &url {
        println!("web UI: {url}");
    }
    println!(
        "framewire demo: 4 nodes on 127.0.0.1, test pattern {} at {} fps, MJPEG",
        args.size, args.fps
    );
    for n in nodes.iter().copied().chain(controller_node.as_ref()) {
        println!("  {:<16} {}", n.name(), n.local_addr());
    }
    println!("  viewer:          {viewer_says}");
    println!("  archive:         {archive_says}");
    println!("  watch it:        ffplay -f mjpeg tcp://127.0.0.1:{view_port}");
    println!(
        "  inspect it:    framewire ls {}   |   framewire stats {} --watch",
        relay.local_addr(),
        relay.local_addr()
    );
    println!("Ctrl-C to stop.\n");

    let started = Instant::now();
    let mut prev: HashMap<(String, String), (u64, u64, u64)> = HashMap::new();
    let mut last = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let dt = last.elapsed().as_secs_f64();
        last = Instant::now();
        let mut rows = Vec::new();
        for n in &nodes {
            let stats: Stats = n.stats();
            for o in &stats.outputs {
                let key = (n.name().to_owned(), o.peer.clone());
                let drops = total_drops(o);
                let (f0, b0, d0) = prev.get(&key).copied().unwrap_or((o.frames_sent, o.bytes_sent, drops));
                prev.insert(key, (o.frames_sent, o.bytes_sent, drops));
                rows.push(format!(
                    "{:<14} → {:<26} {:<12} {:>7.1} {:>9.2} {:>6} {:>7} {:>8.2} {:>8.2}",
                    n.name(),
                    peer_name(&o.peer),
                    o.mode.to_string(),
                    o.frames_sent.saturating_sub(f0) as f64 / dt,
                    o.bytes_sent.saturating_sub(b0) as f64 * 8.0 / dt / 1e6,
                    drops.saturating_sub(d0),
                    format!("{}/{}", o.queue_frames, o.max_frames),
                    f64::from(o.latency_p50_us) / 1e3,
                    f64::from(o.latency_p99_us) / 1e3,
                ));
            }
        }
        if tty {
            print!("\x1b[H\x1b[2J");
            println!(
                "framewire demo ({:.0} s) · web UI: {} · watch: ffplay -f mjpeg tcp://127.0.0.1:{view_port} · Ctrl-C to stop\n",
                started.elapsed().as_secs_f64(),
                url.as_deref().unwrap_or("off")
            );
        } else {
            println!("-- t={:.0}s", started.elapsed().as_secs_f64());
        }
        println!(
            "{:<14}   {:<26} {:<12} {:>7} {:>9} {:>6} {:>7} {:>8} {:>8}",
            "EDGE FROM", "TO", "MODE", "FPS", "Mbit/s", "DROPS", "QUEUE", "p50 ms", "p99 ms"
        );
        for r in rows {
            println!("{r}");
        }
        if args.duration.is_some_and(|d| started.elapsed().as_secs_f64() >= d) {
            break;
        }
    }
    println!("\nstopping");
    if let Some(w) = web {
        w.shutdown().await;
    }
    if let Some(n) = controller_node {
        n.shutdown().await;
    }
    if let Some(d) = temp_state {
        let _ = std::fs::remove_dir_all(d);
    }
    for n in sinks.into_iter().rev() {
        n.shutdown().await;
    }
    relay.shutdown().await;
    source.shutdown().await;
    if archive_dir.exists() {
        println!(
            "the archive stays in {}: framewire archive ls --dir {}",
            archive_dir.display(),
            archive_dir.display()
        );
    }
    Ok(())
}

/// Whether `program` is on the PATH.
fn which(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn total_drops(o: &OutputStats) -> u64 {
    o.drops.iter().map(|d| d.count).sum()
}

/// "127.0.0.1:5000 demo:viewer" → "demo:viewer"; local sinks keep their label.
fn peer_name(peer: &str) -> String {
    match peer.split_once(' ') {
        Some((addr, "opaque")) => format!("{addr} (opaque)"),
        Some((_, name)) => name.to_owned(),
        None => peer.to_owned(),
    }
}
