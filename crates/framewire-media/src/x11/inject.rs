//! Replaying viewers' input into an X display through XTEST: pointer,
//! buttons, the wheel as buttons 4-7, keys by the display's keymap (a
//! keysym the layout lacks is given a free keycode first, as `xdotool
//! type` does).

use std::sync::mpsc::Sender;

use framewire_proto::{InputEvent, InputKind};
use tracing::{debug, warn};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::ConnectionExt as _;
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

use super::{connect, err};

/// One event to replay into a display.
#[derive(Debug, Clone)]
pub struct Injection {
    /// The stream it came in on (handed back to `on_injected`).
    pub stream: String,
    /// X display (`None`: `$DISPLAY`).
    pub display: Option<String>,
    /// The screen the grabbed rectangle is on.
    pub screen: usize,
    /// Top-left of the grabbed rectangle on its screen: event coordinates
    /// are relative to it.
    pub origin: (i32, i32),
    /// The event.
    pub event: InputEvent,
}

/// A display the injector talks to, with its keyboard mapping.
struct InjectConn {
    conn: RustConnection,
    /// Keysyms of each keycode from `min_keycode`, `per` per keycode.
    keysyms: Vec<u32>,
    per: usize,
    min_keycode: u8,
    /// Keycodes this injector gave a keysym, oldest first.
    remapped: Vec<u8>,
}

impl InjectConn {
    fn open(display: Option<&str>) -> Result<InjectConn, String> {
        let (conn, _) = connect(display)?;
        if conn
            .extension_information(x11rb::protocol::xtest::X11_EXTENSION_NAME)
            .map_err(err)?
            .is_none()
        {
            return Err("the X server has no XTEST extension".into());
        }
        let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
        let map = conn
            .get_keyboard_mapping(min, max - min + 1)
            .map_err(err)?
            .reply()
            .map_err(err)?;
        Ok(InjectConn {
            per: usize::from(map.keysyms_per_keycode),
            keysyms: map.keysyms,
            min_keycode: min,
            remapped: Vec::new(),
            conn,
        })
    }

    /// The keycode that types `keysym` on this display: one whose
    /// first group has it, unshifted preferred.
    fn keycode(&self, keysym: u32) -> Option<u8> {
        if keysym == 0 || self.per == 0 {
            return None;
        }
        for col in 0..self.per.min(2) {
            for (i, syms) in self.keysyms.chunks(self.per).enumerate() {
                if syms[col] == keysym {
                    return u8::try_from(usize::from(self.min_keycode) + i).ok();
                }
            }
        }
        None
    }

    /// The keycode of an evdev scancode (+8, the evdev rules' offset).
    fn scancode_keycode(&self, scancode: u32) -> Option<u8> {
        if scancode == 0 {
            return None;
        }
        u8::try_from(scancode + 8).ok().filter(|k| *k >= self.min_keycode)
    }

    /// Gives `keysym` to a keycode that has none (the highest free
    /// one; once none is free, the one given away longest ago), as
    /// `xdotool type` does, so characters this display's layout lacks
    /// can still be typed. The keycode, or `None` if the keymap has no
    /// room.
    fn remap(&mut self, keysym: u32) -> Result<Option<u8>, String> {
        if self.per == 0 {
            return Ok(None);
        }
        let free = self
            .keysyms
            .chunks(self.per)
            .enumerate()
            .rev()
            .find(|(_, syms)| syms.iter().all(|s| *s == 0))
            .map(|(i, _)| i);
        let index = match free {
            Some(i) => i,
            None if !self.remapped.is_empty() => {
                let code = self.remapped.remove(0);
                usize::from(code - self.min_keycode)
            }
            None => return Ok(None),
        };
        let code = u8::try_from(usize::from(self.min_keycode) + index).map_err(err)?;
        // Unshifted and shifted alike, so a held Shift changes nothing.
        let mut syms = vec![0u32; self.per];
        syms[0] = keysym;
        if self.per > 1 {
            syms[1] = keysym;
        }
        let per = u8::try_from(self.per).map_err(err)?;
        self.conn
            .change_keyboard_mapping(1, code, per, &syms)
            .map_err(err)?
            .check()
            .map_err(err)?;
        self.keysyms[index * self.per..(index + 1) * self.per].copy_from_slice(&syms);
        self.remapped.push(code);
        debug!(keysym, keycode = code, "XTEST: keysym given to a free keycode");
        Ok(Some(code))
    }
}

/// Starts the injector thread (one per process, a connection per display);
/// `on_injected(stream)` is called for every event replayed.
pub fn start(on_injected: impl Fn(&str) + Send + 'static) -> std::io::Result<Sender<Injection>> {
    let (tx, rx) = std::sync::mpsc::channel::<Injection>();
    std::thread::Builder::new().name("x11-inject".into()).spawn(move || {
        let mut conns: std::collections::HashMap<Option<String>, InjectConn> = Default::default();
        for job in rx {
            let t = &job;
            if !conns.contains_key(&t.display) {
                match InjectConn::open(t.display.as_deref()) {
                    Ok(c) => {
                        conns.insert(t.display.clone(), c);
                    }
                    Err(e) => {
                        warn!(error = %e, "XTEST injection: no display");
                        continue;
                    }
                }
            }
            let Some(c) = conns.get_mut(&t.display) else { continue };
            match inject(c, t, &job.event) {
                Ok(true) => on_injected(&job.stream),
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, "XTEST injection failed");
                    conns.remove(&t.display);
                }
            }
        }
    })?;
    Ok(tx)
}

/// Most wheel clicks replayed for one event.
const MAX_WHEEL_CLICKS: i32 = 10;

/// Wheel clicks (X buttons 4/5 vertical, 6/7 horizontal) for a wheel
/// event in 1/120 notches; a partial notch still clicks once.
pub fn wheel_clicks(ev: &InputEvent) -> Vec<(u8, i32)> {
    let clicks = |v: i32| {
        ((v.unsigned_abs() + 60) / 120)
            .max(1)
            .min(MAX_WHEEL_CLICKS.unsigned_abs())
    };
    let mut out = Vec::new();
    if ev.wheel_y != 0 {
        // Positive: away from the user, which X calls up (button 4).
        out.push((
            if ev.wheel_y > 0 { 4 } else { 5 },
            i32::try_from(clicks(ev.wheel_y)).unwrap_or(1),
        ));
    }
    if ev.wheel_x != 0 {
        out.push((
            if ev.wheel_x > 0 { 7 } else { 6 },
            i32::try_from(clicks(ev.wheel_x)).unwrap_or(1),
        ));
    }
    out
}

/// Replays one event; `Ok(false)` if there is nothing to replay (a key
/// this display cannot type, an unknown kind).
fn inject(c: &mut InjectConn, t: &Injection, ev: &InputEvent) -> Result<bool, String> {
    use x11rb::protocol::xproto::{
        BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT, KEY_RELEASE_EVENT, MOTION_NOTIFY_EVENT,
    };
    // A key this layout cannot type gets a free keycode first (its
    // press; its release then finds that keycode).
    let mut key = None;
    if matches!(ev.kind, InputKind::KeyDown | InputKind::KeyUp) {
        // The key's meaning first (the keysym on this display's
        // layout, else on a free keycode), its position (scancode)
        // only for keys without a keysym or when the keymap is full.
        key = c.keycode(ev.keysym);
        if key.is_none() && ev.kind == InputKind::KeyDown && ev.keysym != 0 {
            key = c.remap(ev.keysym)?;
        }
        if key.is_none() {
            key = c.scancode_keycode(ev.scancode);
        }
    }
    let conn = &c.conn;
    let root = conn.setup().roots.get(t.screen).ok_or("no such screen")?.root;
    let x = i16::try_from(t.origin.0.saturating_add(ev.x)).unwrap_or(0);
    let y = i16::try_from(t.origin.1.saturating_add(ev.y)).unwrap_or(0);
    let fake = |kind: u8, detail: u8| -> Result<(), String> {
        conn.xtest_fake_input(kind, detail, 0, root, x, y, 0).map_err(err)?;
        Ok(())
    };
    match ev.kind {
        InputKind::MouseMove => fake(MOTION_NOTIFY_EVENT, 0)?,
        InputKind::ButtonDown | InputKind::ButtonUp if ev.button == 0 => return Ok(false),
        InputKind::ButtonDown => {
            fake(MOTION_NOTIFY_EVENT, 0)?;
            fake(BUTTON_PRESS_EVENT, ev.button)?;
        }
        InputKind::ButtonUp => {
            fake(MOTION_NOTIFY_EVENT, 0)?;
            fake(BUTTON_RELEASE_EVENT, ev.button)?;
        }
        InputKind::Wheel => {
            let clicks = wheel_clicks(ev);
            if clicks.is_empty() {
                return Ok(false);
            }
            fake(MOTION_NOTIFY_EVENT, 0)?;
            for (button, n) in clicks {
                for _ in 0..n {
                    fake(BUTTON_PRESS_EVENT, button)?;
                    fake(BUTTON_RELEASE_EVENT, button)?;
                }
            }
        }
        InputKind::KeyDown | InputKind::KeyUp => {
            let Some(code) = key else {
                debug!(
                    keysym = ev.keysym,
                    scancode = ev.scancode,
                    "XTEST: no keycode for this key here"
                );
                return Ok(false);
            };
            let kind = if ev.kind == InputKind::KeyDown {
                KEY_PRESS_EVENT
            } else {
                KEY_RELEASE_EVENT
            };
            // Keys go where the display's focus is; the pointer stays.
            conn.xtest_fake_input(kind, code, 0, root, 0, 0, 0).map_err(err)?;
        }
        _ => return Ok(false),
    }
    conn.flush().map_err(err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use framewire_proto::{InputEvent, InputKind, Modifiers};

    use super::wheel_clicks;

    #[test]
    fn wheel_notches_become_button_clicks() {
        let w = |x: i32, y: i32| InputEvent {
            kind: InputKind::Wheel,
            timestamp_ns: 1,
            modifiers: Modifiers(0),
            keysym: 0,
            scancode: 0,
            button: 0,
            x: 0,
            y: 0,
            wheel_x: x,
            wheel_y: y,
        };
        assert_eq!(wheel_clicks(&w(0, 120)), vec![(4, 1)]);
        assert_eq!(wheel_clicks(&w(0, -240)), vec![(5, 2)]);
        assert_eq!(wheel_clicks(&w(30, 0)), vec![(7, 1)]);
        assert_eq!(wheel_clicks(&w(-120, 120)), vec![(4, 1), (6, 1)]);
        assert_eq!(wheel_clicks(&w(0, i32::MIN)), vec![(5, 10)]);
        assert!(wheel_clicks(&w(0, 0)).is_empty());
    }
}
