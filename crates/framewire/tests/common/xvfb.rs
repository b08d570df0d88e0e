//! An Xvfb server for a test, and what tests draw on and read from it.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ChangeGCAux, ConnectionExt as _, CreateGCAux, Rectangle};

/// An Xvfb server; killed when dropped.
#[derive(Debug)]
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    /// Starts `Xvfb -displayfd 1 SCREENS...`; `None` (with a message) if
    /// Xvfb is not installed.
    pub fn start(screens: &[&str]) -> Option<Xvfb> {
        let mut cmd = Command::new("Xvfb");
        cmd.args(["-displayfd", "1", "-nolisten", "tcp", "-noreset"]);
        for (i, s) in screens.iter().enumerate() {
            cmd.args(["-screen", &i.to_string(), s]);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                // CI fails, not skips, when a component a test needs is missing.
                assert!(
                    std::env::var_os("CI").is_none(),
                    "cannot run Xvfb ({e}); scripts/setup.sh installs it (package xvfb)"
                );
                eprintln!("SKIPPED: cannot run Xvfb ({e}); scripts/setup.sh installs it (package xvfb)");
                return None;
            }
        };
        let mut out = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let mut b = [0u8; 1];
            while let Ok(1) = out.read(&mut b) {
                if b[0] == b'\n' {
                    break;
                }
                s.push(char::from(b[0]));
            }
            let _ = tx.send(s);
        });
        let n = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("Xvfb printed its display");
        assert!(!n.is_empty(), "Xvfb did not start");
        Some(Xvfb {
            child,
            display: format!(":{}", n.trim()),
        })
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The four quadrant colours of the viewer test picture (0xRRGGBB).
pub const QUADRANTS: [u32; 4] = [0x00e0_2020, 0x0020_c040, 0x0030_40e0, 0x00f0_f0f0];

/// Fills the four quadrants of screen 0 of `display` (`w` x `h`).
pub fn draw_quadrants(display: &str, w: u16, h: u16) {
    let (conn, screen) = x11rb::connect(Some(display)).expect("X connection");
    let root = conn.setup().roots[screen].root;
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, root, &CreateGCAux::new()).unwrap();
    for (i, c) in QUADRANTS.iter().enumerate() {
        conn.change_gc(gc, &ChangeGCAux::new().foreground(*c)).unwrap();
        let r = Rectangle {
            x: if i % 2 == 1 { (w / 2) as i16 } else { 0 },
            y: if i >= 2 { (h / 2) as i16 } else { 0 },
            width: w / 2,
            height: h / 2,
        };
        conn.poly_fill_rectangle(root, gc, &[r]).unwrap();
    }
    conn.get_input_focus().unwrap().reply().unwrap();
}

/// A screenshot of screen 0 of `display`: a function from (x, y) to 0xRRGGBB.
pub fn screenshot(display: &str) -> impl Fn(u32, u32) -> u32 {
    use x11rb::protocol::xproto::ImageFormat;
    let (conn, screen) = x11rb::connect(Some(display)).expect("X connection");
    let s = &conn.setup().roots[screen];
    let (w, h) = (s.width_in_pixels, s.height_in_pixels);
    let img = conn
        .get_image(ImageFormat::Z_PIXMAP, s.root, 0, 0, w, h, !0)
        .unwrap()
        .reply()
        .unwrap();
    let data = img.data;
    move |x, y| {
        let i = ((y * u32::from(w) + x) * 4) as usize;
        u32::from(data[i + 2]) << 16 | u32::from(data[i + 1]) << 8 | u32::from(data[i])
    }
}

pub fn close(a: u32, b: u32, tol: i32) -> bool {
    (0..3).all(|k| (((a >> (8 * k)) & 0xff) as i32 - ((b >> (8 * k)) & 0xff) as i32).abs() <= tol)
}
