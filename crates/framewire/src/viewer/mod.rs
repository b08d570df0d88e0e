//! `framewire view ADDR STREAM`: a window showing the newest frame of a
//! stream, with mouse and keyboard forwarded upstream (docs/x11.md).
//!
//! The window (winit + glutin + glow) runs on the main thread; a task on
//! the runtime subscribes in low-latency mode, decodes each frame and
//! leaves the newest picture in a slot, then wakes the window, which
//! uploads it and draws. Input in the window is mapped to source pixels
//! (through the same letterbox placement the renderer uses) and sent as
//! INPUT_EVENT messages on the subscription's channel.

pub mod render;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use framewire_codec::{PixelBuffer, Registry};
use framewire_proto::{
    Command, DeliveryMode, InputEvent, InputKind, Message, Modifiers, Request, StreamEvent, SubscribeParams,
};
use glutin::config::ConfigTemplateBuilder;
use glutin::context::{ContextApi, ContextAttributesBuilder, NotCurrentGlContext, PossiblyCurrentContext, Version};
use glutin::display::{GetGlDisplay, GlDisplay};
use glutin::surface::{GlSurface, Surface, SwapInterval, WindowSurface};
use glutin_winit::{DisplayBuilder, GlWindow};
use tokio::sync::mpsc;
use tracing::{info, warn};
use winit::application::ApplicationHandler;
use winit::dpi::{PhysicalPosition, PhysicalSize};
use winit::event::{ElementState, MouseButton, MouseScrollDelta, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop, EventLoopProxy};
use winit::keyboard::{Key, ModifiersState, NamedKey};
use winit::raw_window_handle::HasWindowHandle;
use winit::window::{Fullscreen, Window, WindowId};

use self::render::{GlRenderer, Renderer, Scale, window_to_source};
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

/// The newest decoded picture.
#[derive(Debug)]
struct Latest {
    pic: PixelBuffer,
    timestamp_ns: u64,
}

#[derive(Debug)]
enum Wake {
    Frame,
    Closed(String),
}

/// Runs the viewer; the window needs the main thread, so this is called
/// outside the runtime's `block_on`.
pub fn run(args: Args, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let event_loop = EventLoop::<Wake>::with_user_event()
        .build()
        .context("cannot open the display for a window")?;
    let proxy = event_loop.create_proxy();
    let slot: Arc<Mutex<Option<Latest>>> = Arc::default();
    let (input_tx, input_rx) = mpsc::unbounded_channel();
    // Subscribe first: the stream's size is the default window size.
    let (client, channel, open) = runtime.block_on(async {
        let mut client = util::connect(&args.addr, Duration::from_secs(5)).await?;
        let params = SubscribeParams {
            mode: DeliveryMode::LowLatency,
            max_frames: 1,
            ..SubscribeParams::default()
        };
        let channel = client.subscribe(&args.stream, params).await?;
        let open = loop {
            let m = tokio::time::timeout(Duration::from_secs(10), client.next_message())
                .await
                .context("no STREAM_OPEN")??
                .context("closed")?;
            if let Message::ControlRequest(req) = &m
                && req.command == Command::StreamOpen
            {
                client.ack(req).await?;
                if let Ok(Request::StreamOpen(o)) = Request::decode(req) {
                    break o;
                }
            }
        };
        anyhow::Ok((client, channel, open))
    })?;
    info!(stream = %open.name, format = %open.format, width = open.width, height = open.height, "viewing");
    runtime.spawn(receive(
        client,
        channel,
        open.clone(),
        slot.clone(),
        proxy.clone(),
        input_rx,
    ));
    let size = match &args.size {
        Some(s) => crate::config::parse_size(s)?,
        None => (open.width.max(16), open.height.max(16)),
    };
    let position = match &args.position {
        Some(p) => {
            let (x, y) = p.split_once(',').context("--position X,Y")?;
            Some((x.trim().parse::<i32>()?, y.trim().parse::<i32>()?))
        }
        None => None,
    };
    let mut app = App {
        args,
        size,
        position,
        slot,
        input: input_tx,
        source: (open.width, open.height),
        gl: None,
        error: None,
        started: Instant::now(),
        modifiers: ModifiersState::empty(),
        cursor: (0.0, 0.0),
        wheel_released: false,
        latencies: Vec::new(),
        last_report: Instant::now(),
        frames: 0,
    };
    if let Some(s) = app.args.exit_after {
        let proxy: EventLoopProxy<Wake> = proxy;
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(s));
            let _ = proxy.send_event(Wake::Closed(String::new()));
        });
    }
    // Raw button events tell a wheel button's release from its press
    // (see `wheel_released`), also while the window has no focus.
    event_loop.listen_device_events(winit::event_loop::DeviceEvents::Always);
    event_loop.run_app(&mut app)?;
    match app.error {
        Some(e) => Err(anyhow::anyhow!(e)),
        None => Ok(()),
    }
}

/// Receives frames, decodes them into the slot, sends input upstream.
async fn receive(
    mut client: framewire_net::Client,
    channel: u16,
    mut open: framewire_proto::StreamOpen,
    slot: Arc<Mutex<Option<Latest>>>,
    proxy: EventLoopProxy<Wake>,
    mut input: mpsc::UnboundedReceiver<InputEvent>,
) {
    let registry = Registry::builtin();
    let mut decoder = registry.negotiate(&open).ok();
    let why = loop {
        tokio::select! {
            m = client.next_message() => {
                let m = match m {
                    Ok(Some(m)) => m,
                    Ok(None) => break "the node closed the connection".to_owned(),
                    Err(e) => break e.to_string(),
                };
                match m {
                    Message::ControlRequest(req) if req.command == Command::StreamOpen => {
                        if let Ok(Request::StreamOpen(o)) = Request::decode(&req) {
                            open = o;
                            decoder = registry.negotiate(&open).ok();
                        }
                        let _ = client.ack(&req).await;
                    }
                    Message::StreamEvent { event: StreamEvent::FormatChanged(o), .. } => {
                        open = o;
                        decoder = registry.negotiate(&open).ok();
                    }
                    Message::StreamEvent { event: StreamEvent::Closed(e), .. } => break format!("stream closed: {}", e.message),
                    Message::VideoFrame(f) => {
                        let Some(dec) = decoder.as_mut() else { continue };
                        match dec.decode(&f.data) {
                            Ok(pic) => {
                                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Latest {
                                    pic,
                                    timestamp_ns: f.timestamp_ns,
                                });
                                if proxy.send_event(Wake::Frame).is_err() {
                                    return;
                                }
                            }
                            Err(e) => warn!(error = %e, "frame not decoded"),
                        }
                    }
                    _ => {}
                }
            }
            ev = input.recv() => {
                let Some(event) = ev else { return };
                if let Err(e) = client.send(&Message::InputEvent { channel, event }).await {
                    break e.to_string();
                }
            }
        }
    };
    let _ = proxy.send_event(Wake::Closed(why));
}

struct GlState {
    window: Window,
    surface: Surface<WindowSurface>,
    context: PossiblyCurrentContext,
    renderer: GlRenderer,
}

struct App {
    args: Args,
    size: (u32, u32),
    position: Option<(i32, i32)>,
    slot: Arc<Mutex<Option<Latest>>>,
    input: mpsc::UnboundedSender<InputEvent>,
    source: (u32, u32),
    gl: Option<GlState>,
    error: Option<String>,
    started: Instant,
    modifiers: ModifiersState,
    cursor: (f64, f64),
    /// The last raw event of a wheel button (X buttons 4-7 not emulated
    /// from smooth scrolling, as XTEST and some devices send them) was its
    /// release: winit reports a wheel turn for the release as well as for
    /// the press, and that second one is not a turn.
    wheel_released: bool,
    latencies: Vec<f64>,
    last_report: Instant,
    frames: u64,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("size", &self.size).finish()
    }
}

impl App {
    fn create(&mut self, el: &ActiveEventLoop) -> Result<GlState, String> {
        let mut attrs = Window::default_attributes()
            .with_title(format!("framewire: {}", self.args.stream))
            .with_inner_size(PhysicalSize::new(self.size.0, self.size.1));
        if let Some((x, y)) = self.position {
            attrs = attrs.with_position(PhysicalPosition::new(x, y));
        }
        if let Some(name) = &self.args.fullscreen {
            attrs = fullscreen_on(el, name, attrs)?;
        }
        let template = ConfigTemplateBuilder::new();
        let (window, config) = DisplayBuilder::new()
            .with_window_attributes(Some(attrs))
            .build(el, template, |mut configs| configs.next().expect("a GL config"))
            .map_err(|e| format!("no OpenGL configuration: {e}"))?;
        let window = window.ok_or("no window")?;
        let display = config.display();
        let handle = window.window_handle().map_err(|e| e.to_string())?.as_raw();
        let ctx_attrs = ContextAttributesBuilder::new()
            .with_context_api(ContextApi::OpenGl(Some(Version::new(3, 3))))
            .build(Some(handle));
        // SAFETY: the window handle is valid: the window lives in GlState
        // next to the context, which is dropped first (field order).
        let not_current = unsafe { display.create_context(&config, &ctx_attrs) }
            .map_err(|e| format!("no OpenGL 3.3 context: {e}"))?;
        let surf_attrs = window
            .build_surface_attributes(Default::default())
            .map_err(|e| e.to_string())?;
        // SAFETY: as above, the window outlives the surface.
        let surface = unsafe { display.create_window_surface(&config, &surf_attrs) }.map_err(|e| e.to_string())?;
        let context = not_current.make_current(&surface).map_err(|e| e.to_string())?;
        let _ = surface.set_swap_interval(&context, SwapInterval::DontWait);
        // SAFETY: the context is current on this thread; glutin's loader
        // gives its function pointers.
        let gl = unsafe { glow::Context::from_loader_function_cstr(|s| display.get_proc_address(s).cast()) };
        let size = window.inner_size();
        let renderer = GlRenderer::new(gl, self.args.scale, (size.width.max(1), size.height.max(1)))?;
        Ok(GlState {
            window,
            surface,
            context,
            renderer,
        })
    }

    fn present(&mut self) {
        let Some(st) = self.gl.as_mut() else { return };
        let latest = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(l) = latest {
            let pic = l.pic.to_tight();
            let size = (pic.width(), pic.height());
            if size != self.source && self.args.size.is_none() && self.args.fullscreen.is_none() {
                // The stream changed size and the window was sized by it:
                // follow (a window manager may refuse).
                info!(
                    width = size.0,
                    height = size.1,
                    "stream size changed; resizing the window"
                );
                let _ = st
                    .window
                    .request_inner_size(PhysicalSize::new(size.0.max(16), size.1.max(16)));
            }
            self.source = size;
            if let Err(e) = st
                .renderer
                .render_frame(pic.data(), pic.width(), pic.height(), pic.layout())
            {
                warn!(error = %e, "frame not shown");
                return;
            }
            // Grab (or capture) to texture upload, on the same clock.
            let now = framewire_net::now_ns();
            #[allow(clippy::cast_precision_loss)]
            self.latencies.push(now.saturating_sub(l.timestamp_ns) as f64 / 1e6);
            self.frames += 1;
        } else {
            st.renderer.redraw();
        }
        if let Err(e) = st.surface.swap_buffers(&st.context) {
            warn!(error = %e, "swap failed");
        }
        if self.args.stats && self.last_report.elapsed() >= Duration::from_secs(1) && !self.latencies.is_empty() {
            self.latencies.sort_by(f64::total_cmp);
            let p50 = self.latencies[self.latencies.len() / 2];
            let max = self.latencies[self.latencies.len() - 1];
            println!(
                "view: {} frames, grab->upload latency p50 {p50:.2} ms, max {max:.2} ms",
                self.latencies.len()
            );
            self.latencies.clear();
            self.last_report = Instant::now();
        }
    }

    fn send(&self, kind: InputKind, f: impl FnOnce(&mut InputEvent)) {
        if self.args.no_input {
            return;
        }
        let Some(st) = self.gl.as_ref() else { return };
        let win = st.window.inner_size();
        let (x, y) = window_to_source(self.args.scale, self.source, (win.width, win.height), self.cursor);
        let mut m = 0u16;
        for (on, bit) in [
            (self.modifiers.shift_key(), Modifiers::SHIFT),
            (self.modifiers.control_key(), Modifiers::CTRL),
            (self.modifiers.alt_key(), Modifiers::ALT),
            (self.modifiers.super_key(), Modifiers::SUPER),
        ] {
            if on {
                m |= bit;
            }
        }
        let mut ev = InputEvent {
            kind,
            timestamp_ns: framewire_net::now_ns(),
            modifiers: Modifiers(m),
            keysym: 0,
            scancode: 0,
            button: 0,
            x,
            y,
            wheel_x: 0,
            wheel_y: 0,
        };
        f(&mut ev);
        let _ = self.input.send(ev);
    }
}

/// Window attributes for fullscreen on the monitor called `name`: a
/// monitor winit knows (a RandR output, e.g. `HDMI-1`) whose rectangle is
/// the RandR monitor of that name gets real borderless fullscreen; a RandR
/// 1.5 monitor that is only part of an output (`xrandr --setmonitor`) gets
/// an undecorated window covering exactly its rectangle.
fn fullscreen_on(
    el: &ActiveEventLoop,
    name: &str,
    attrs: winit::window::WindowAttributes,
) -> Result<winit::window::WindowAttributes, String> {
    let randr = framewire_net::local_monitors(None).unwrap_or_default();
    let region = randr.iter().find(|m| m.name == name);
    let output = el.available_monitors().find(|m| m.name().as_deref() == Some(name));
    let same = |m: &winit::monitor::MonitorHandle, r: &framewire_proto::control::Monitor| {
        let (p, s) = (m.position(), m.size());
        (p.x, p.y, s.width, s.height) == (r.x, r.y, r.width, r.height)
    };
    match (output, region) {
        (Some(m), r) if r.is_none_or(|r| same(&m, r)) => Ok(attrs
            .with_position(m.position())
            .with_inner_size(m.size())
            .with_decorations(false)
            .with_fullscreen(Some(Fullscreen::Borderless(Some(m))))),
        (_, Some(r)) => Ok(attrs
            .with_position(PhysicalPosition::new(r.x, r.y))
            .with_inner_size(PhysicalSize::new(r.width.max(1), r.height.max(1)))
            .with_decorations(false)),
        (_, None) => {
            let mut names: Vec<String> = el.available_monitors().filter_map(|m| m.name()).collect();
            names.extend(randr.iter().map(|m| m.name.clone()));
            names.sort();
            names.dedup();
            Err(format!("no monitor named `{name}` (have: {})", names.join(", ")))
        }
    }
}

/// An X11 keysym for a winit key (Latin-1 and Unicode characters, and the
/// common named keys); 0 if unknown.
fn keysym(key: &Key) -> u32 {
    match key {
        Key::Character(s) => match s.chars().next() {
            Some(c @ ' '..='~' | c @ '\u{a0}'..='\u{ff}') => u32::from(c),
            Some(c) => 0x0100_0000 + u32::from(c),
            None => 0,
        },
        Key::Named(n) => match n {
            NamedKey::Space => 0x20,
            NamedKey::Enter => 0xff0d,
            NamedKey::Escape => 0xff1b,
            NamedKey::Backspace => 0xff08,
            NamedKey::Tab => 0xff09,
            NamedKey::Delete => 0xffff,
            NamedKey::Home => 0xff50,
            NamedKey::ArrowLeft => 0xff51,
            NamedKey::ArrowUp => 0xff52,
            NamedKey::ArrowRight => 0xff53,
            NamedKey::ArrowDown => 0xff54,
            NamedKey::PageUp => 0xff55,
            NamedKey::PageDown => 0xff56,
            NamedKey::End => 0xff57,
            NamedKey::Shift => 0xffe1,
            NamedKey::Control => 0xffe3,
            NamedKey::Alt => 0xffe9,
            NamedKey::Super => 0xffeb,
            _ => 0,
        },
        _ => 0,
    }
}

impl ApplicationHandler<Wake> for App {
    fn resumed(&mut self, el: &ActiveEventLoop) {
        if self.gl.is_some() {
            return;
        }
        match self.create(el) {
            Ok(st) => {
                info!(
                    size = ?st.window.inner_size(),
                    startup_ms = self.started.elapsed().as_millis(),
                    "viewer window open"
                );
                self.gl = Some(st);
            }
            Err(e) => {
                self.error = Some(e);
                el.exit();
            }
        }
    }

    fn user_event(&mut self, el: &ActiveEventLoop, ev: Wake) {
        match ev {
            Wake::Frame => self.present(),
            Wake::Closed(why) => {
                if !why.is_empty() {
                    self.error = Some(why);
                }
                el.exit();
            }
        }
    }

    fn device_event(&mut self, _el: &ActiveEventLoop, _id: winit::event::DeviceId, event: winit::event::DeviceEvent) {
        if let winit::event::DeviceEvent::Button { button: 4..=7, state } = event {
            self.wheel_released = state == ElementState::Released;
        }
    }

    fn window_event(&mut self, el: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => el.exit(),
            WindowEvent::Resized(size) => {
                if let Some(st) = self.gl.as_mut()
                    && let (Some(w), Some(h)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height))
                {
                    st.surface.resize(&st.context, w, h);
                    st.renderer.resize(size.width, size.height);
                    st.window.request_redraw();
                }
            }
            WindowEvent::RedrawRequested => self.present(),
            WindowEvent::ModifiersChanged(m) => self.modifiers = m.state(),
            WindowEvent::CursorMoved { position, .. } => {
                self.cursor = (position.x, position.y);
                self.send(InputKind::MouseMove, |_| {});
            }
            WindowEvent::MouseInput { state, button, .. } => {
                let b = match button {
                    MouseButton::Left => 1,
                    MouseButton::Middle => 2,
                    MouseButton::Right => 3,
                    MouseButton::Back => 8,
                    MouseButton::Forward => 9,
                    MouseButton::Other(n) => u8::try_from(n).unwrap_or(0),
                };
                let kind = if state == ElementState::Pressed {
                    InputKind::ButtonDown
                } else {
                    InputKind::ButtonUp
                };
                self.send(kind, |e| e.button = b);
            }
            WindowEvent::MouseWheel { delta, .. } => {
                if matches!(delta, MouseScrollDelta::LineDelta(..)) && std::mem::take(&mut self.wheel_released) {
                    return;
                }
                // winit's positive x scrolls left; the wire's scrolls right.
                // Cannot overflow in practice: wheel deltas are small.
                #[allow(clippy::cast_possible_truncation)]
                let (dx, dy) = match delta {
                    MouseScrollDelta::LineDelta(x, y) => ((-x * 120.0) as i32, (y * 120.0) as i32),
                    MouseScrollDelta::PixelDelta(p) => ((-p.x * 2.0) as i32, (p.y * 2.0) as i32),
                };
                self.send(InputKind::Wheel, |e| {
                    e.wheel_x = dx;
                    e.wheel_y = dy;
                });
            }
            WindowEvent::KeyboardInput { event, .. } => {
                use winit::platform::scancode::PhysicalKeyExtScancode;
                let kind = if event.state == ElementState::Pressed {
                    InputKind::KeyDown
                } else {
                    InputKind::KeyUp
                };
                let sym = keysym(&event.logical_key);
                let code = event.physical_key.to_scancode().unwrap_or(0);
                self.send(kind, |e| {
                    e.keysym = sym;
                    e.scancode = code;
                });
            }
            _ => {}
        }
    }
}
