//! `framewire view ADDR STREAM`: a window showing the newest frame of a
//! stream, with mouse and keyboard forwarded upstream (docs/x11.md); and
//! the `view:` sink, the same window inside a node ([`sink`]).
//!
//! The window (winit + glutin + glow) runs on the main thread; a task on
//! the runtime subscribes in low-latency mode, decodes each frame and
//! leaves the newest picture in a slot, then wakes the window, which
//! uploads it and draws. Input in the window is mapped to source pixels
//! (through the same letterbox placement the renderer uses) and sent as
//! INPUT_EVENT messages on the subscription's channel. When the node or
//! the stream goes, the window shows a NO SIGNAL slate with the reason and
//! the task reconnects as an edge does (100 ms, backing off).

pub mod feed;
pub mod render;
pub mod sink;
pub mod window;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use framewire_codec::Registry;
use framewire_net::config::ReconnectPolicy;
use framewire_proto::{Command, DeliveryMode, InputEvent, Message, Request, StreamEvent, SubscribeParams};
use tokio::sync::mpsc;
use tracing::{info, warn};
use winit::event_loop::EventLoop;

use self::feed::{ScreenHandle, Shown, Wake, decoder_for, reason_text};
use self::render::Scale;
use self::window::{App, ScreenSpec};
use crate::util;

/// Show a stream in a window (keyboard and mouse go back upstream).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node, HOST[:PORT] (default port 7400).
    addr: String,
    /// The stream.
    stream: String,
    /// Fullscreen on this monitor of the viewer's display: a RandR output
    /// (e.g. `HDMI-1`) or a RandR monitor (`xrandr --listmonitors`, also
    /// those made with `xrandr --setmonitor`). Overrides --size and --position.
    #[arg(long, value_name = "MONITOR")]
    fullscreen: Option<String>,
    /// Window size WxH (default: the stream's size, followed when it changes).
    #[arg(long, value_name = "WxH")]
    size: Option<String>,
    /// Window position X,Y.
    #[arg(long, value_name = "X,Y")]
    position: Option<String>,
    /// How the picture fills the window.
    #[arg(long, value_enum, default_value = "letterbox")]
    scale: Scale,
    /// Do not send keyboard and mouse events upstream.
    #[arg(long)]
    no_input: bool,
    /// Print the grab-to-upload latency every second.
    #[arg(long)]
    stats: bool,
    /// Quit after this many seconds (tests, benchmarks).
    #[arg(long, value_name = "SECONDS")]
    exit_after: Option<f64>,
}

/// Runs the viewer; the window needs the main thread, so this is called
/// outside the runtime's `block_on`.
pub fn run(args: Args, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let event_loop = EventLoop::<Wake>::with_user_event()
        .build()
        .context("cannot open the display for a window")?;
    let proxy = event_loop.create_proxy();
    let shown: Arc<Mutex<Shown>> = Arc::new(Mutex::new(Shown {
        slate: Some("connecting".into()),
        ..Shown::default()
    }));
    let screen = ScreenHandle {
        id: 0,
        stream: args.stream.clone(),
        shown: shown.clone(),
        proxy: proxy.clone(),
    };
    let (input_tx, input_rx) = mpsc::unbounded_channel();
    let (size_tx, size_rx) = std::sync::mpsc::channel();
    runtime.spawn(remote(
        args.addr.clone(),
        args.stream.clone(),
        screen,
        input_rx,
        size_tx,
    ));
    // The stream's size is the window's first size: wait a little for it.
    let initial = size_rx.recv_timeout(Duration::from_secs(5)).unwrap_or(DEFAULT_SIZE);
    let size = args.size.as_deref().map(crate::config::parse_size).transpose()?;
    let position = match &args.position {
        Some(p) => {
            let (x, y) = p.split_once(',').context("--position X,Y")?;
            Some((x.trim().parse::<i32>()?, y.trim().parse::<i32>()?))
        }
        None => None,
    };
    let spec = ScreenSpec {
        id: 0,
        stream: args.stream.clone(),
        fullscreen: args.fullscreen.clone(),
        size,
        initial,
        position,
        scale: args.scale,
        input: (!args.no_input).then_some(input_tx),
        stats: args.stats,
        shown,
    };
    if let Some(s) = args.exit_after {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(s));
            let _ = proxy.send_event(Wake::Quit(None));
        });
    }
    let mut app = App::new(vec![spec], true);
    // Raw button events tell a wheel button's release from its press
    // (see `App::wheel_released`), also while the window has no focus.
    event_loop.listen_device_events(winit::event_loop::DeviceEvents::Always);
    event_loop.run_app(&mut app)?;
    match app.error {
        Some(e) => Err(anyhow::anyhow!(e)),
        None => Ok(()),
    }
}

/// The window's size before the stream's is known.
const DEFAULT_SIZE: (u32, u32) = (640, 360);

/// Subscribes to the stream and feeds the window, reconnecting as an edge
/// does: 100 ms after a loss, backing off to 250 ms, and every 2 s once it
/// failed for 30 s. The window shows why while there is no picture.
async fn remote(
    addr: String,
    stream: String,
    screen: ScreenHandle,
    mut input: mpsc::UnboundedReceiver<InputEvent>,
    size: std::sync::mpsc::Sender<(u32, u32)>,
) {
    let policy = ReconnectPolicy::default();
    let mut delay = policy.first;
    let mut since = Instant::now();
    let mut size = Some(size);
    loop {
        let (why, had_frames) = session(&addr, &stream, &screen, &mut input, &mut size).await;
        let Some(why) = why else { return };
        warn!(%addr, %stream, reason = %why, "no picture; reconnecting");
        // The window opens now (at its default size), with the slate.
        size.take();
        if !screen.no_signal(&why) {
            return;
        }
        if had_frames {
            delay = policy.first;
            since = Instant::now();
        }
        let wait = if since.elapsed() > policy.window {
            policy.slow
        } else {
            delay
        };
        let end = tokio::time::Instant::now() + wait;
        // Input while there is no upstream goes nowhere.
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(end) => break,
                ev = input.recv() => if ev.is_none() { return },
            }
        }
        delay = (delay * 2).min(policy.max);
    }
}

/// One connection: its end's reason (`None`: the window is gone) and
/// whether it showed a picture.
async fn session(
    addr: &str,
    stream: &str,
    screen: &ScreenHandle,
    input: &mut mpsc::UnboundedReceiver<InputEvent>,
    size: &mut Option<std::sync::mpsc::Sender<(u32, u32)>>,
) -> (Option<String>, bool) {
    let mut had_frames = false;
    let (mut client, channel, open) = match subscribe(addr, stream).await {
        Ok(c) => c,
        Err(e) => return (Some(format!("{e:#}")), false),
    };
    info!(stream = %open.name, format = %open.format, width = open.width, height = open.height, "viewing");
    if let Some(tx) = size.take() {
        let _ = tx.send((open.width.max(16), open.height.max(16)));
    }
    let registry = Registry::builtin();
    let mut decoder = match decoder_for(&registry, &open) {
        Ok(d) => Some(d),
        Err(why) if screen.no_signal(&why) => None,
        Err(_) => return (None, false),
    };
    let why = loop {
        tokio::select! {
            m = client.next_message() => {
                let m = match m {
                    Ok(Some(m)) => m,
                    Ok(None) => break "the node closed the connection".to_owned(),
                    Err(e) => break e.to_string(),
                };
                let shown = match m {
                    Message::ControlRequest(req) if req.command == Command::StreamOpen => {
                        let _ = client.ack(&req).await;
                        match Request::decode(&req) {
                            Ok(Request::StreamOpen(o)) => renegotiate(&registry, &o, &mut decoder, screen),
                            _ => true,
                        }
                    }
                    Message::StreamEvent { event: StreamEvent::FormatChanged(o), .. } => {
                        renegotiate(&registry, &o, &mut decoder, screen)
                    }
                    Message::StreamEvent { event: StreamEvent::Interrupted(i), .. } => screen.no_signal(&reason_text(&i)),
                    Message::StreamEvent { event: StreamEvent::Closed(i), .. } => break reason_text(&i),
                    Message::VideoFrame(f) => {
                        let Some(dec) = decoder.as_mut() else { continue };
                        match dec.decode(&f.data) {
                            Ok(pic) => {
                                had_frames = true;
                                screen.picture(pic, f.timestamp_ns)
                            }
                            Err(e) => {
                                warn!(error = %e, "frame not decoded");
                                true
                            }
                        }
                    }
                    _ => true,
                };
                if !shown {
                    return (None, had_frames);
                }
            }
            ev = input.recv() => {
                let Some(event) = ev else { return (None, had_frames) };
                if let Err(e) = client.send(&Message::InputEvent { channel, event }).await {
                    break e.to_string();
                }
            }
        }
    };
    (Some(why), had_frames)
}

/// A new decoder for a changed format; false when the window is gone.
fn renegotiate(
    registry: &Registry,
    open: &framewire_proto::StreamOpen,
    decoder: &mut Option<Box<dyn framewire_codec::Decoder>>,
    screen: &ScreenHandle,
) -> bool {
    match decoder_for(registry, open) {
        Ok(d) => {
            *decoder = Some(d);
            true
        }
        Err(why) => {
            *decoder = None;
            screen.no_signal(&why)
        }
    }
}

/// Connects, subscribes in low-latency mode with one frame, and waits for
/// the stream's STREAM_OPEN.
async fn subscribe(
    addr: &str,
    stream: &str,
) -> anyhow::Result<(framewire_net::Client, u16, framewire_proto::StreamOpen)> {
    let mut client = util::connect(addr, Duration::from_secs(5)).await?;
    let params = SubscribeParams {
        mode: DeliveryMode::LowLatency,
        max_frames: 1,
        ..SubscribeParams::default()
    };
    let channel = client.subscribe(stream, params).await?;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), client.next_message())
            .await
            .context("no STREAM_OPEN within 10 s")??
            .context("the node closed the connection")?;
        if let Message::ControlRequest(req) = &m
            && req.command == Command::StreamOpen
        {
            client.ack(req).await?;
            if let Ok(Request::StreamOpen(o)) = Request::decode(req) {
                return Ok((client, channel, o));
            }
        }
    }
}
