//! The `view` sink: a viewer window inside a node, so a stream wired to
//! the node (by hand, by the controller, by the web UI) shows on that
//! node's screen. `--sink view:STREAM[,fullscreen=MONITOR][,position=X,Y]
//! [,size=WxH][,scale=letterbox|stretch]`.
//!
//! Its output is low-latency with one frame by default (the newest
//! picture wins). While the stream is interrupted, gone or not there yet,
//! the window shows the NO SIGNAL slate with the stream's name and the
//! reason. Every window of a node shares one event loop on a thread of
//! its own (winit allows one per process).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use framewire_codec::Registry;
use framewire_net::api::{SinkHost, SinkInput, SinkSpec};
use framewire_net::config::{ConfigError, SinkKind};
use framewire_net::sinks::SinkKindEntry;
use framewire_proto::{DeliveryMode, StreamEvent};
use tracing::{info, warn};
use winit::event_loop::{EventLoop, EventLoopProxy};

use super::feed::{ScreenHandle, Shown, Wake, decoder_for, reason_text};
use super::render::Scale;
use super::window::{App, ScreenSpec};

/// The kinds of sink this program adds to the node's own.
pub const KINDS: &[SinkKindEntry] = &[SinkKindEntry {
    name: "view",
    from_table,
    default_mode: DeliveryMode::LowLatency,
}];

/// A window showing one stream of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSink {
    stream: String,
    fullscreen: Option<String>,
    position: Option<(i32, i32)>,
    size: Option<(u32, u32)>,
    scale: Scale,
}

fn from_table(stream: &str, mut table: toml::Table) -> Result<SinkKind, ConfigError> {
    let err = |m: String| ConfigError::new(format!("sink view of `{stream}`: {m}"));
    let mut text = |key: &str| match table.remove(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(err(format!("`{key}` must be text, not {v}"))),
    };
    let fullscreen = text("fullscreen")?;
    let position = match text("position")? {
        None => None,
        Some(p) => {
            let parsed = p
                .split_once(',')
                .and_then(|(x, y)| Some((x.trim().parse().ok()?, y.trim().parse().ok()?)));
            Some(parsed.ok_or_else(|| err(format!("position `{p}` is not X,Y")))?)
        }
    };
    let size = match text("size")? {
        None => None,
        Some(s) => Some(framewire_net::sources::parse_size(&s).map_err(|e| err(e.to_string()))?),
    };
    let scale = match text("scale")?.as_deref() {
        None | Some("letterbox") => Scale::Letterbox,
        Some("stretch") => Scale::Stretch,
        Some(s) => return Err(err(format!("scale `{s}` is not letterbox or stretch"))),
    };
    if let Some(k) = table.keys().next() {
        return Err(err(format!(
            "no key `{k}` (fullscreen, position, size, scale and the delivery keys)"
        )));
    }
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        return Err(err("no display for a window (DISPLAY is not set)".into()));
    }
    Ok(SinkKind::new(ViewSink {
        stream: stream.to_owned(),
        fullscreen,
        position,
        size,
        scale,
    }))
}

impl SinkSpec for ViewSink {
    fn kind(&self) -> &'static str {
        "view"
    }

    fn label(&self) -> String {
        match &self.fullscreen {
            Some(m) => format!("sink:view:{m}"),
            None => "sink:view".into(),
        }
    }

    fn run(&self, host: SinkHost) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(run(self.clone(), host))
    }
}

/// The event loop of this process's `view` windows, started by the first.
fn event_loop() -> Result<EventLoopProxy<Wake>, String> {
    static LOOP: OnceLock<Result<EventLoopProxy<Wake>, String>> = OnceLock::new();
    LOOP.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("view-windows".into()).spawn(move || {
            use winit::platform::x11::EventLoopBuilderExtX11 as _;
            let built = EventLoop::<Wake>::with_user_event().with_any_thread(true).build();
            let el = match built {
                Ok(el) => el,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot open the display for a window: {e}")));
                    return;
                }
            };
            let _ = tx.send(Ok(el.create_proxy()));
            let mut app = App::new(Vec::new(), false);
            if let Err(e) = el.run_app(&mut app) {
                warn!(error = %e, "the viewer windows' event loop ended");
            }
        });
        match spawned {
            Ok(_) => rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| Err("the window thread did not start".into())),
            Err(e) => Err(format!("no thread for the windows: {e}")),
        }
    })
    .clone()
}

async fn run(spec: ViewSink, host: SinkHost) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let proxy = match tokio::task::spawn_blocking(event_loop).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return warn!(stream = %spec.stream, error = %e, "view sink stopped"),
        Err(e) => return warn!(stream = %spec.stream, error = %e, "view sink stopped"),
    };
    let shown = Arc::new(Mutex::new(Shown {
        slate: Some("waiting for the stream".into()),
        ..Shown::default()
    }));
    let screen = ScreenHandle {
        id: NEXT.fetch_add(1, Ordering::Relaxed),
        stream: spec.stream.clone(),
        shown: shown.clone(),
        proxy: proxy.clone(),
    };
    let open = ScreenSpec {
        id: screen.id,
        stream: spec.stream.clone(),
        fullscreen: spec.fullscreen.clone(),
        size: spec.size,
        initial: (640, 360),
        position: spec.position,
        scale: spec.scale,
        input: None,
        stats: false,
        shown,
    };
    if proxy.send_event(Wake::Open(Box::new(open))).is_err() {
        return warn!(stream = %spec.stream, "view sink stopped: the window thread is gone");
    }
    let mut stop = host.stopping();
    loop {
        let input = tokio::select! {
            i = host.attach() => i,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(input) = input else { break };
        info!(stream = %host.stream(), "view sink attached");
        match show(&input, &screen, &mut stop).await {
            Ended::Stopped => break,
            Ended::WindowGone => {
                info!(stream = %host.stream(), "view window closed; the sink stops");
                return;
            }
            Ended::StreamGone(why) => {
                if !screen.no_signal(&why) {
                    return;
                }
            }
        }
    }
    let _ = proxy.send_event(Wake::Close(screen.id));
}

enum Ended {
    Stopped,
    WindowGone,
    StreamGone(String),
}

/// Shows the output's frames (decoded off the runtime's threads) and its
/// events until the stream goes, the node stops or the window closes.
async fn show(input: &SinkInput, screen: &ScreenHandle, stop: &mut tokio::sync::watch::Receiver<bool>) -> Ended {
    let registry = Registry::builtin();
    let mut decoder = match decoder_for(&registry, input.open()) {
        Ok(d) => Some(d),
        Err(why) if screen.no_signal(&why) => None,
        Err(_) => return Ended::WindowGone,
    };
    let mut gone_why = String::from("the stream is gone");
    loop {
        for ev in input.events() {
            let live = match ev {
                StreamEvent::Interrupted(i) => screen.no_signal(&reason_text(&i)),
                StreamEvent::Closed(i) => {
                    gone_why = reason_text(&i);
                    screen.no_signal(&gone_why)
                }
                StreamEvent::FormatChanged(o) => match decoder_for(&registry, &o) {
                    Ok(d) => {
                        decoder = Some(d);
                        true
                    }
                    Err(why) => {
                        decoder = None;
                        screen.no_signal(&why)
                    }
                },
                _ => true,
            };
            if !live {
                return Ended::WindowGone;
            }
        }
        // Only the newest frame is worth decoding.
        let mut newest = None;
        while let Some(tx) = input.poll() {
            newest = Some(tx.frame);
            input.sent();
        }
        // (`take` the decoder only when there is a frame for it.)
        if let Some(frame) = newest
            && let Some(mut dec) = decoder.take()
        {
            let data = frame.data.clone();
            let Ok((dec, pic)) = tokio::task::spawn_blocking(move || {
                let r = dec.decode(&data);
                (dec, r)
            })
            .await
            else {
                return Ended::StreamGone("the decoder failed".into());
            };
            decoder = Some(dec);
            match pic {
                Ok(pic) => {
                    if !screen.picture(pic, frame.timestamp_ns) {
                        return Ended::WindowGone;
                    }
                }
                Err(e) => warn!(error = %e, "frame not decoded"),
            }
        }
        if screen.gone() {
            return Ended::WindowGone;
        }
        if !input.attached() {
            return Ended::StreamGone(gone_why);
        }
        tokio::select! {
            () = input.ready(Duration::from_millis(200)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return Ended::Stopped;
        }
    }
}
