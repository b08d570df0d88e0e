//! The viewer's windows: one event loop (on the main thread for
//! `framewire view`, on a thread of its own in a node with `view:` sinks)
//! and one window per screen, each with its own OpenGL context. A window
//! shows its screen's newest picture, or the NO SIGNAL slate; input in a
//! window that forwards it is mapped to source pixels and sent to its feed.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use framewire_proto::{InputEvent, InputKind, Modifiers};
use glutin::config::ConfigTemplateBuilder;
use glutin::context::{
    ContextApi, ContextAttributesBuilder, NotCurrentGlContext, PossiblyCurrentContext, PossiblyCurrentGlContext,
    Version,
};
use glutin::display::{GetGlDisplay, GlDisplay};
use glutin::surface::{GlSurface, Surface, SwapInterval, WindowSurface};
use glutin_winit::{DisplayBuilder, GlWindow};
use tokio::sync::mpsc;
use tracing::{info, warn};
use winit::application::ApplicationHandler;
use winit::dpi::{PhysicalPosition, PhysicalSize};
use winit::event::{ElementState, MouseButton, MouseScrollDelta, WindowEvent};
use winit::event_loop::ActiveEventLoop;
use winit::keyboard::{Key, ModifiersState, NamedKey};
use winit::raw_window_handle::HasWindowHandle;
use winit::window::{Fullscreen, Window, WindowId};

use super::feed::{Shown, Wake, slate};
use super::render::{GlRenderer, Renderer, Scale, window_to_source};

/// A window to open: where, how, and what it shows.
#[derive(Debug)]
pub struct ScreenSpec {
    pub id: u64,
    /// The stream's name (title, slate).
    pub stream: String,
    /// Fullscreen on this monitor (RandR output or monitor).
    pub fullscreen: Option<String>,
    /// A size the user chose; `None` follows the stream's size.
    pub size: Option<(u32, u32)>,
    /// The size before the first picture, when `size` is `None`.
    pub initial: (u32, u32),
    pub position: Option<(i32, i32)>,
    pub scale: Scale,
    /// Where keyboard and mouse events go; `None` keeps them.
    pub input: Option<mpsc::UnboundedSender<InputEvent>>,
    /// Print the grab-to-upload latency every second.
    pub stats: bool,
    pub shown: Arc<Mutex<Shown>>,
}

/// A window and its drawing state; fields drop in order, the window last
/// (its surface and context refer to it).
struct GlState {
    renderer: GlRenderer,
    surface: Surface<WindowSurface>,
    context: PossiblyCurrentContext,
    window: Window,
}

/// One open window.
struct Screen {
    spec: ScreenSpec,
    gl: GlState,
    /// Size of what is shown (a picture or the slate).
    source: (u32, u32),
    /// The stream's size, once a picture came.
    stream_size: Option<(u32, u32)>,
    latencies: Vec<f64>,
    last_report: Instant,
}

/// The event loop's state: every screen, and the input state they share.
pub struct App {
    screens: HashMap<u64, Screen>,
    windows: HashMap<WindowId, u64>,
    /// Screens to open when the loop can (after `resumed`).
    pending: Vec<ScreenSpec>,
    resumed: bool,
    /// Leave the loop when the last window closes (`framewire view`).
    exit_when_empty: bool,
    /// The context current on this thread.
    current: Option<u64>,
    started: Instant,
    /// The error to report when the loop ends.
    pub error: Option<String>,
    modifiers: ModifiersState,
    cursor: (f64, f64),
    /// The last raw event of a wheel button (X buttons 4-7 not emulated
    /// from smooth scrolling, as XTEST and some devices send them) was its
    /// release: winit reports a wheel turn for the release as well as for
    /// the press, and that second one is not a turn.
    wheel_released: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("screens", &self.screens.len()).finish()
    }
}

impl App {
    /// An event loop's state with `screens` to open.
    pub fn new(screens: Vec<ScreenSpec>, exit_when_empty: bool) -> App {
        App {
            screens: HashMap::new(),
            windows: HashMap::new(),
            pending: screens,
            resumed: false,
            exit_when_empty,
            current: None,
            started: Instant::now(),
            error: None,
            modifiers: ModifiersState::empty(),
            cursor: (0.0, 0.0),
            wheel_released: false,
        }
    }

    fn open(&mut self, el: &ActiveEventLoop, spec: ScreenSpec) {
        let id = spec.id;
        match create(el, &spec) {
            Ok(gl) => {
                info!(
                    stream = %spec.stream,
                    size = ?gl.window.inner_size(),
                    startup_ms = self.started.elapsed().as_millis(),
                    "viewer window open"
                );
                self.current = Some(id);
                self.windows.insert(gl.window.id(), id);
                self.screens.insert(
                    id,
                    Screen {
                        spec,
                        gl,
                        source: (0, 0),
                        stream_size: None,
                        latencies: Vec::new(),
                        last_report: Instant::now(),
                    },
                );
                self.present(id);
            }
            Err(e) => {
                warn!(stream = %spec.stream, error = %e, "no viewer window");
                spec.shown.lock().unwrap_or_else(PoisonError::into_inner).gone = true;
                if self.exit_when_empty {
                    self.error = Some(e);
                    el.exit();
                }
            }
        }
    }

    fn close(&mut self, el: &ActiveEventLoop, id: u64) {
        if let Some(s) = self.screens.remove(&id) {
            self.windows.remove(&s.gl.window.id());
            // Its GL objects are deleted with its own context current.
            let _ = s.gl.context.make_current(&s.gl.surface);
            s.spec.shown.lock().unwrap_or_else(PoisonError::into_inner).gone = true;
            if self.current == Some(id) {
                self.current = None;
            }
        }
        if self.exit_when_empty && self.screens.is_empty() {
            el.exit();
        }
    }

    /// Draws a screen's newest picture, or its slate, or again what it shows.
    fn present(&mut self, id: u64) {
        let Some(screen) = self.screens.get_mut(&id) else {
            return;
        };
        if self.current != Some(id) {
            if let Err(e) = screen.gl.context.make_current(&screen.gl.surface) {
                warn!(error = %e, "cannot draw in the window");
                return;
            }
            self.current = Some(id);
        }
        screen.present();
    }

    fn send(&self, id: WindowId, kind: InputKind, f: impl FnOnce(&mut InputEvent)) {
        let Some(screen) = self.windows.get(&id).and_then(|s| self.screens.get(s)) else {
            return;
        };
        let Some(input) = &screen.spec.input else { return };
        let win = screen.gl.window.inner_size();
        let src = screen.stream_size.unwrap_or(screen.source);
        let (x, y) = window_to_source(screen.spec.scale, src, (win.width, win.height), self.cursor);
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
        let _ = input.send(ev);
    }
}

impl Screen {
    fn present(&mut self) {
        let st = &mut self.gl;
        let (latest, slate_text) = {
            let mut shown = self.spec.shown.lock().unwrap_or_else(PoisonError::into_inner);
            (shown.latest.take(), shown.slate.clone())
        };
        if let Some(l) = latest {
            let pic = l.pic.to_tight();
            let size = (pic.width(), pic.height());
            if self.stream_size != Some(size) && self.spec.size.is_none() && self.spec.fullscreen.is_none() {
                // The window is sized by the stream: follow (a window
                // manager may refuse).
                if self.stream_size.is_some() || size != self.spec.initial {
                    info!(
                        width = size.0,
                        height = size.1,
                        "stream size changed; resizing the window"
                    );
                    let _ = st
                        .window
                        .request_inner_size(PhysicalSize::new(size.0.max(16), size.1.max(16)));
                }
            }
            self.stream_size = Some(size);
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
        } else if let Some(reason) = slate_text {
            let pic = slate(&self.spec.stream, &reason);
            self.source = (pic.width(), pic.height());
            if let Err(e) = st
                .renderer
                .render_frame(pic.data(), pic.width(), pic.height(), pic.layout())
            {
                warn!(error = %e, "slate not shown");
                return;
            }
        } else {
            st.renderer.redraw();
        }
        if let Err(e) = st.surface.swap_buffers(&st.context) {
            warn!(error = %e, "swap failed");
        }
        if self.spec.stats && self.last_report.elapsed() >= Duration::from_secs(1) && !self.latencies.is_empty() {
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
}

/// Opens a screen's window with an OpenGL 3.3 context of its own.
fn create(el: &ActiveEventLoop, spec: &ScreenSpec) -> Result<GlState, String> {
    let size = spec.size.unwrap_or(spec.initial);
    let mut attrs = Window::default_attributes()
        .with_title(format!("framewire: {}", spec.stream))
        .with_inner_size(PhysicalSize::new(size.0.max(16), size.1.max(16)));
    if let Some((x, y)) = spec.position {
        attrs = attrs.with_position(PhysicalPosition::new(x, y));
    }
    if let Some(name) = &spec.fullscreen {
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
    // next to the context, which is dropped before it (field order).
    let not_current =
        unsafe { display.create_context(&config, &ctx_attrs) }.map_err(|e| format!("no OpenGL 3.3 context: {e}"))?;
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
    let renderer = GlRenderer::new(gl, spec.scale, (size.width.max(1), size.height.max(1)))?;
    Ok(GlState {
        window,
        surface,
        context,
        renderer,
    })
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
        if self.resumed {
            return;
        }
        self.resumed = true;
        for spec in std::mem::take(&mut self.pending) {
            self.open(el, spec);
        }
    }

    fn user_event(&mut self, el: &ActiveEventLoop, ev: Wake) {
        match ev {
            Wake::Update(id) => self.present(id),
            Wake::Open(spec) if self.resumed => self.open(el, *spec),
            Wake::Open(spec) => self.pending.push(*spec),
            Wake::Close(id) => self.close(el, id),
            Wake::Quit(why) => {
                if why.is_some() {
                    self.error = why;
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

    fn window_event(&mut self, el: &ActiveEventLoop, wid: WindowId, event: WindowEvent) {
        let Some(&id) = self.windows.get(&wid) else {
            return;
        };
        match event {
            WindowEvent::CloseRequested => {
                info!("viewer window closed");
                self.close(el, id);
            }
            WindowEvent::Resized(size) => {
                if let Some(s) = self.screens.get_mut(&id)
                    && let (Some(w), Some(h)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height))
                {
                    s.gl.surface.resize(&s.gl.context, w, h);
                    s.gl.renderer.resize(size.width, size.height);
                    s.gl.window.request_redraw();
                }
            }
            WindowEvent::RedrawRequested => self.present(id),
            WindowEvent::ModifiersChanged(m) => self.modifiers = m.state(),
            WindowEvent::CursorMoved { position, .. } => {
                self.cursor = (position.x, position.y);
                self.send(wid, InputKind::MouseMove, |_| {});
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
                self.send(wid, kind, |e| e.button = b);
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
                self.send(wid, InputKind::Wheel, |e| {
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
                self.send(wid, kind, |e| {
                    e.keysym = sym;
                    e.scancode = code;
                });
            }
            _ => {}
        }
    }
}
