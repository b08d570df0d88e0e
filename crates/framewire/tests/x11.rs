//! X11 under Xvfb, through real `framewire` processes: monitor geometry
//! (LIST_MONITORS, `framewire monitors`), a screen grab sent through a
//! relay and compared pixel for pixel, and display loss as a stream event.
//!
//! Each test starts its own Xvfb (`-displayfd`: the server picks a free
//! display number) and kills it. Without Xvfb on PATH the tests print why
//! and pass (`scripts/setup.sh` installs it).

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::xvfb::{QUADRANTS, Xvfb, close, draw_quadrants, screenshot};
use common::{client, eventually, eventually_every, spawn_node, subscribe};
use framewire_codec::{PixelLayout, Registry};
use framewire_net::Client;
use framewire_proto::{
    Command as Cmd, DeliveryMode, EventReason, Message, Request, Response, StreamEvent, StreamOpen, SubscribeParams,
};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ChangeGCAux, ConnectionExt as _, CreateGCAux, Rectangle};

/// Runs a command with a deadline; its exit status and stdout.
fn run(cmd: &mut Command, timeout: Duration) -> (bool, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("runs");
    let st = eventually(timeout, || child.try_wait().unwrap()).unwrap_or_else(|| panic!("{cmd:?} timed out"));
    let mut s = String::new();
    child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    (st.success(), s)
}

#[test]
fn x11_monitors_of_two_screens() {
    let Some(x) = Xvfb::start(&["1280x720x24", "800x600x24"]) else {
        return;
    };
    // Two RandR monitors side by side on screen 0 (what `xrandr --setmonitor` does).
    {
        use x11rb::protocol::randr::{ConnectionExt as _, MonitorInfo};
        let (conn, _) = x11rb::connect(Some(&x.display)).expect("X connection");
        conn.randr_query_version(1, 5).unwrap().reply().unwrap();
        let root = conn.setup().roots[0].root;
        for (name, x0, primary) in [("LEFT", 0, true), ("RIGHT", 640, false)] {
            let atom = conn.intern_atom(false, name.as_bytes()).unwrap().reply().unwrap().atom;
            let m = MonitorInfo {
                name: atom,
                primary,
                automatic: false,
                x: x0,
                y: 0,
                width: 640,
                height: 720,
                width_in_millimeters: 169,
                height_in_millimeters: 190,
                outputs: vec![],
            };
            conn.randr_set_monitor(root, m).unwrap().check().expect("RRSetMonitor");
        }
    }
    let src = format!("x11:desk,display={},fps=2", x.display);
    let right = format!("x11:right,display={},monitor=RIGHT,fps=2", x.display);
    let node = spawn_node(&[
        "--name",
        "test:x11",
        "--source",
        &src,
        "--source",
        &right,
        "--discovery",
        "off",
    ]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (monitors, streams) = rt.block_on(async {
        let mut c = client(node.addr, "monitors").await;
        let Response::ListMonitors(m) = c.request(Request::ListMonitors).await.expect("LIST_MONITORS") else {
            panic!("not a monitor list")
        };
        (m, c.request(Request::ListStreams).await.expect("LIST_STREAMS"))
    });
    let got: Vec<(&str, i32, i32, u32, u32)> = monitors
        .iter()
        .map(|m| (m.name.as_str(), m.x, m.y, m.width, m.height))
        .collect();
    assert_eq!(
        got,
        vec![
            ("LEFT", 0, 0, 640, 720),
            ("RIGHT", 640, 0, 640, 720),
            ("screen", 0, 0, 1280, 720),
            ("screen@1", 0, 0, 800, 600)
        ]
    );
    assert!(monitors[0].primary && !monitors[1].primary);
    assert_eq!((monitors[0].width_mm, monitors[0].height_mm), (169, 190));
    assert!(monitors[3].width_mm > 0);
    // A source grabbing a monitor by name has its size.
    let Response::ListStreams(streams) = streams else {
        panic!("not a stream list")
    };
    let right = streams
        .iter()
        .find(|s| s.open.name == "right")
        .expect("the `right` stream");
    assert_eq!((right.open.width, right.open.height), (640, 720));
    // The CLI prints the same.
    let (ok, out) = run(
        Command::new(env!("CARGO_BIN_EXE_framewire")).args(["monitors", &node.addr.to_string(), "--json"]),
        Duration::from_secs(20),
    );
    assert!(ok, "framewire monitors failed");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v[3]["name"], "screen@1");
    assert_eq!(
        (v[3]["width"].as_u64(), v[3]["height"].as_u64()),
        (Some(800), Some(600))
    );
    let (ok, table) = run(
        Command::new(env!("CARGO_BIN_EXE_framewire")).args(["monitors", &node.addr.to_string()]),
        Duration::from_secs(20),
    );
    assert!(
        ok && table.contains("1280x720") && table.contains("screen@1"),
        "{table}"
    );
    // The RIGHT monitor changes geometry (set again): its stream
    // says format-changed with the new size within the periodic check.
    rt.block_on(async {
        let mut c = client(node.addr, "monitor-change").await;
        let params = SubscribeParams {
            mode: DeliveryMode::LowLatency,
            ..SubscribeParams::default()
        };
        subscribe(&mut c, "right", params).await;
        let mut open = None;
        let (w, h, _) = next_picture(&mut c, &mut open, Duration::from_secs(20)).await;
        assert_eq!((w, h), (640, 720));
        {
            use x11rb::protocol::randr::{ConnectionExt as _, MonitorInfo};
            let (conn, _) = x11rb::connect(Some(&x.display)).expect("X connection");
            let root = conn.setup().roots[0].root;
            let atom = conn.intern_atom(false, b"RIGHT").unwrap().reply().unwrap().atom;
            // This server refuses a second monitor of a name: delete, then set.
            conn.randr_delete_monitor(root, atom)
                .unwrap()
                .check()
                .expect("RRDeleteMonitor");
            let m = MonitorInfo {
                name: atom,
                primary: false,
                automatic: false,
                x: 960,
                y: 0,
                width: 320,
                height: 360,
                width_in_millimeters: 85,
                height_in_millimeters: 95,
                outputs: vec![],
            };
            conn.randr_set_monitor(root, m).unwrap().check().expect("RRSetMonitor");
        }
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let m = tokio::time::timeout(left, c.next_message())
                .await
                .expect("format-changed in time")
                .expect("read")
                .expect("open");
            if let Message::StreamEvent {
                event: StreamEvent::FormatChanged(o),
                ..
            } = m
            {
                assert_eq!((o.width, o.height), (320, 360));
                open = Some(o);
                break;
            }
        }
        // Then frames of that size (one of the old size already queued may
        // come first: it does not decode as the new size and is skipped).
        let o = open.expect("format-changed");
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let m = tokio::time::timeout(left, c.next_message())
                .await
                .expect("a frame of the new size in time")
                .expect("read")
                .expect("open");
            if let Message::VideoFrame(f) = m
                && let Ok(pic) = Registry::builtin().negotiate(&o).unwrap().decode(&f.data)
            {
                assert_eq!((pic.width(), pic.height()), (320, 360));
                break;
            }
        }
    });
    // A rectangle outside the screen is refused with the reason.
    let bad = format!("x11:bad,display={},rect=400x300+1000+0", x.display);
    let (ok, err) = run_stderr(
        Command::new(env!("CARGO_BIN_EXE_framewire")).args(["node", "--source", &bad, "--listen", "127.0.0.1:0"]),
        Duration::from_secs(20),
    );
    assert!(!ok && err.contains("not inside screen 0 (1280x720)"), "{err}");
}

/// Runs a command with a deadline; its exit status and stderr.
fn run_stderr(cmd: &mut Command, timeout: Duration) -> (bool, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .spawn()
        .expect("runs");
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let Some(st) = eventually(timeout, || child.try_wait().unwrap()) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} timed out; stderr:\n{}", reader.join().unwrap());
    };
    (st.success(), reader.join().unwrap())
}

/// A 96x64 test picture as 0xRRGGBB pixels: colour blocks, a one-pixel
/// checkerboard stripe, and a gradient row, so any shift or channel swap
/// shows.
fn pattern(x: u32, y: u32) -> u32 {
    if y == 40 {
        return (x * 2) << 16 | (255 - x * 2) << 8 | 0x40;
    }
    if (44..48).contains(&y) {
        return if (x + y).is_multiple_of(2) {
            0x00ff_ffff
        } else {
            0x0000_0000
        };
    }
    const COLOURS: [u32; 6] = [
        0x00ff_0000,
        0x0000_ff00,
        0x0000_00ff,
        0x00ff_ff00,
        0x0012_3456,
        0x00fe_dcba,
    ];
    COLOURS[((x / 16) as usize + (y / 20) as usize * 2) % 6]
}

/// How often a screen (or a counter) is looked at again while waiting.
const SHOT: Duration = Duration::from_millis(100);

const PW: u32 = 96;
const PH: u32 = 64;
const POS: (i32, i32) = (40, 30);

/// Draws [`pattern`] on the root window of `display` at [`POS`].
fn draw_pattern(display: &str) {
    let (conn, screen) = x11rb::connect(Some(display)).expect("X connection");
    let root = conn.setup().roots[screen].root;
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, root, &CreateGCAux::new()).unwrap();
    for y in 0..PH {
        let mut x = 0;
        while x < PW {
            let c = pattern(x, y);
            let mut w = 1;
            while x + w < PW && pattern(x + w, y) == c {
                w += 1;
            }
            conn.change_gc(gc, &ChangeGCAux::new().foreground(c)).unwrap();
            let r = Rectangle {
                x: (POS.0 + x as i32) as i16,
                y: (POS.1 + y as i32) as i16,
                width: w as u16,
                height: 1,
            };
            conn.poly_fill_rectangle(root, gc, &[r]).unwrap();
            x += w;
        }
    }
    conn.get_input_focus().unwrap().reply().unwrap();
}

/// The next frame's pixels as RGB, decoding with the stream's open.
async fn next_picture(c: &mut Client, open: &mut Option<StreamOpen>, timeout: Duration) -> (u32, u32, Vec<u8>) {
    let end = Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let m = tokio::time::timeout(left, c.next_message())
            .await
            .expect("a frame in time")
            .expect("read")
            .expect("open");
        match m {
            Message::ControlRequest(req) if req.command == Cmd::StreamOpen => {
                if let Ok(Request::StreamOpen(o)) = Request::decode(&req) {
                    *open = Some(o);
                }
                c.ack(&req).await.unwrap();
            }
            Message::VideoFrame(f) => {
                let o = open.as_ref().expect("STREAM_OPEN before frames");
                let mut dec = Registry::builtin().negotiate(o).expect("decodable");
                let pic = dec.decode(&f.data).expect("decodes");
                let rgb = pic.convert(PixelLayout::Rgb).unwrap().to_tight();
                return (pic.width(), pic.height(), rgb.data().to_vec());
            }
            _ => {}
        }
    }
}

#[test]
fn x11_grab_through_relay_is_bit_exact() {
    let Some(mut x) = Xvfb::start(&["320x240x24"]) else {
        return;
    };
    draw_pattern(&x.display);
    let rect = format!("{PW}x{PH}+{}+{}", POS.0, POS.1);
    let qoi = format!("x11:grab-qoi,display={},rect={rect},fps=10,format=qoi", x.display);
    let zstd = format!("x11:grab-zstd,display={},rect={rect},fps=10,format=raw-zstd", x.display);
    let whole = format!("x11:whole,display={},fps=10", x.display);
    let source = spawn_node(&[
        "--name",
        "test:grab",
        "--source",
        &qoi,
        "--source",
        &zstd,
        "--source",
        &whole,
        "--discovery",
        "off",
    ]);
    let up_qoi = format!("{}/grab-qoi", source.addr);
    let up_zstd = format!("{}/grab-zstd", source.addr);
    let relay = spawn_node(&[
        "--name",
        "test:relay",
        "--upstream",
        &up_qoi,
        "--upstream",
        &up_zstd,
        "--discovery",
        "off",
    ]);
    let expected: Vec<u8> = (0..PH)
        .flat_map(|y| (0..PW).map(move |x| pattern(x, y)))
        .flat_map(|p| [(p >> 16) as u8, (p >> 8) as u8, p as u8])
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let params = SubscribeParams {
            mode: DeliveryMode::LowLatency,
            ..SubscribeParams::default()
        };
        for stream in ["grab-qoi", "grab-zstd"] {
            let mut c = client(relay.addr, "grab-test").await;
            subscribe(&mut c, stream, params).await;
            let mut open = None;
            let (w, h, rgb) = next_picture(&mut c, &mut open, Duration::from_secs(20)).await;
            assert_eq!((w, h), (PW, PH), "{stream}");
            let bad = rgb.iter().zip(&expected).filter(|(a, b)| a != b).count();
            assert_eq!(bad, 0, "{stream}: {bad} bytes differ from the drawn pattern");
        }
        // The whole screen, by default monitor: the pattern sits at POS.
        let mut c = client(source.addr, "grab-test").await;
        subscribe(&mut c, "whole", params).await;
        let mut open = None;
        let (w, h, rgb) = next_picture(&mut c, &mut open, Duration::from_secs(20)).await;
        assert_eq!((w, h), (320, 240));
        let at = |px: u32, py: u32| {
            let i = ((py * w + px) * 3) as usize;
            u32::from(rgb[i]) << 16 | u32::from(rgb[i + 1]) << 8 | u32::from(rgb[i + 2])
        };
        assert_eq!(at(POS.0 as u32 + 5, POS.1 as u32 + 41), pattern(5, 41));
        // The display goes away: an interrupted event, not a crash.
        x.kill();
        let end = Instant::now() + Duration::from_secs(20);
        let mut interrupted = false;
        while Instant::now() < end && !interrupted {
            let Ok(Ok(Some(m))) = tokio::time::timeout(Duration::from_secs(5), c.next_message()).await else {
                break;
            };
            if let Message::StreamEvent {
                event: StreamEvent::Interrupted(info),
                ..
            } = m
            {
                assert_eq!(info.reason, EventReason::DeviceLost);
                interrupted = true;
            }
        }
        assert!(interrupted, "no interrupted event after the display went away");
    });
    let mut source = source;
    assert!(
        source.child.try_wait().unwrap().is_none(),
        "the source node died with its display"
    );
    source.kill();
}

/// `framewire view` on display `display` (software GL), killed when dropped.
struct Viewer(Child);

impl Viewer {
    fn start(display: &str, args: &[&str]) -> Viewer {
        let child = Command::new(env!("CARGO_BIN_EXE_framewire"))
            .arg("view")
            .args(args)
            .args(["--exit-after", "60"])
            .env("DISPLAY", display)
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("framewire view runs");
        Viewer(child)
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the viewer's display shows the quadrants scaled to 640x480.
fn wait_for_picture(display: &str) {
    let points = [
        (160, 120, 0),
        (480, 120, 1),
        (160, 360, 2),
        (480, 360, 3),
        (20, 20, 0),
        (620, 460, 3),
    ];
    let mut wrong = Vec::new();
    let shown = eventually_every(Duration::from_secs(30), SHOT, || {
        let shot = screenshot(display);
        wrong = points
            .iter()
            .filter(|(x, y, q)| !close(shot(*x, *y), QUADRANTS[*q], 6))
            .map(|(x, y, q)| format!("({x},{y}) {:06x} != {:06x}", shot(*x, *y), QUADRANTS[*q]))
            .collect();
        wrong.is_empty().then_some(())
    });
    assert!(
        shown.is_some(),
        "the viewer window does not show the picture: {wrong:?}"
    );
}

#[test]
fn x11_viewer_shows_frame_and_forwards_input() {
    let Some(src_x) = Xvfb::start(&["320x240x24"]) else {
        return;
    };
    let Some(view_x) = Xvfb::start(&["640x480x24"]) else {
        return;
    };
    draw_quadrants(&src_x.display, 320, 240);
    let spec = format!("x11:desk,display={},fps=10,format=qoi,inject-input=true", src_x.display);
    let source = spawn_node(&["--name", "test:desk", "--source", &spec, "--discovery", "off"]);
    let addr = source.addr.to_string();
    let _viewer = Viewer::start(
        &view_x.display,
        &[
            &addr,
            "desk",
            "--size",
            "640x480",
            "--position",
            "0,0",
            "--scale",
            "letterbox",
        ],
    );
    wait_for_picture(&view_x.display);

    // A click in the viewer window at (200, 100) is source pixel (100, 50).
    {
        use x11rb::protocol::xproto::{BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, MOTION_NOTIFY_EVENT};
        use x11rb::protocol::xtest::ConnectionExt as _;
        let (conn, screen) = x11rb::connect(Some(&view_x.display)).expect("X connection");
        let root = conn.setup().roots[screen].root;
        conn.xtest_fake_input(MOTION_NOTIFY_EVENT, 0, 0, root, 200, 100, 0)
            .unwrap();
        conn.xtest_fake_input(BUTTON_PRESS_EVENT, 1, 0, root, 0, 0, 0).unwrap();
        conn.xtest_fake_input(BUTTON_RELEASE_EVENT, 1, 0, root, 0, 0, 0)
            .unwrap();
        conn.get_input_focus().unwrap().reply().unwrap();
    }
    assert!(
        source.wait_log("button=1", Duration::from_secs(15)),
        "the source saw no button event; log:\n{}",
        source.log()
    );
    let log = source.log();
    let press = log
        .lines()
        .find(|l| l.contains("input event") && l.contains("button=1"))
        .expect("a button line");
    assert!(press.contains("x=100") && press.contains("y=50"), "{press}");
    // Injection is on for this source: the source display's pointer went there.
    let mut at = (0, 0);
    let moved = eventually_every(Duration::from_secs(10), SHOT, || {
        let (conn, screen) = x11rb::connect(Some(&src_x.display)).expect("X connection");
        let root = conn.setup().roots[screen].root;
        let p = conn.query_pointer(root).unwrap().reply().unwrap();
        at = (p.root_x, p.root_y);
        (at == (100, 50)).then_some(())
    });
    assert!(moved.is_some(), "XTEST injection did not move the pointer: {at:?}");
}

/// The keycode that types `keysym` on `conn`'s display (first group).
fn keycode_of(conn: &impl Connection, keysym: u32) -> u8 {
    let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
    let map = conn.get_keyboard_mapping(min, max - min + 1).unwrap().reply().unwrap();
    let per = usize::from(map.keysyms_per_keycode);
    let i = map
        .keysyms
        .chunks(per)
        .position(|s| s[0] == keysym)
        .expect("the keysym is on the keyboard");
    min + i as u8
}

/// Gives `keysym` to the highest keycode of `display` that has none, as
/// a user with another keyboard layout would have it; that keycode.
fn give_free_keycode(display: &str, keysym: u32) -> u8 {
    let (conn, _) = x11rb::connect(Some(display)).expect("X connection");
    let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
    let map = conn.get_keyboard_mapping(min, max - min + 1).unwrap().reply().unwrap();
    let per = usize::from(map.keysyms_per_keycode);
    let i = map
        .keysyms
        .chunks(per)
        .rposition(|s| s.iter().all(|k| *k == 0))
        .expect("a free keycode");
    let code = min + i as u8;
    let mut syms = vec![0u32; per];
    syms[0] = keysym;
    conn.change_keyboard_mapping(1, code, per as u8, &syms)
        .unwrap()
        .check()
        .expect("ChangeKeyboardMapping");
    code
}

/// The keysyms of `keycode` on `display` (first group).
fn keysyms_of(display: &str, keycode: u8) -> Vec<u32> {
    let (conn, _) = x11rb::connect(Some(display)).expect("X connection");
    let map = conn.get_keyboard_mapping(keycode, 1).unwrap().reply().unwrap();
    map.keysyms
}

/// The mapped top-level window of the viewer on `display`: its rectangle
/// on the root (x, y, width, height), once it exists.
fn viewer_window(display: &str, timeout: Duration) -> (u32, (i32, i32, u32, u32)) {
    use x11rb::protocol::xproto::{AtomEnum, MapState};
    let (conn, screen) = x11rb::connect(Some(display)).expect("X connection");
    let root = conn.setup().roots[screen].root;
    let found = eventually_every(timeout, SHOT, || {
        conn.query_tree(root)
            .unwrap()
            .reply()
            .unwrap()
            .children
            .into_iter()
            .find_map(|w| {
                let name = conn
                    .get_property(false, w, AtomEnum::WM_NAME, AtomEnum::STRING, 0, 256)
                    .unwrap()
                    .reply()
                    .map(|p| p.value)
                    .unwrap_or_default();
                let mapped = conn
                    .get_window_attributes(w)
                    .unwrap()
                    .reply()
                    .is_ok_and(|a| a.map_state == MapState::VIEWABLE);
                if !(mapped && name.starts_with(b"framewire:")) {
                    return None;
                }
                let g = conn.get_geometry(w).unwrap().reply().unwrap();
                let t = conn.translate_coordinates(w, root, 0, 0).unwrap().reply().unwrap();
                Some((
                    w,
                    (
                        i32::from(t.dst_x),
                        i32::from(t.dst_y),
                        u32::from(g.width),
                        u32::from(g.height),
                    ),
                ))
            })
    });
    found.unwrap_or_else(|| panic!("no viewer window on {display}"))
}

/// Events an input-only window covering the whole screen of `display`
/// receives (it has the keyboard focus): (event type, detail) pairs.
struct InputSpy {
    seen: std::sync::Arc<std::sync::Mutex<Vec<(u8, u8)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl InputSpy {
    fn start(display: &str) -> InputSpy {
        use x11rb::protocol::Event;
        use x11rb::protocol::xproto::{
            CreateWindowAux, EventMask, InputFocus, KEY_PRESS_EVENT, KEY_RELEASE_EVENT, WindowClass,
        };
        let (conn, screen) = x11rb::connect(Some(display)).expect("X connection");
        let s = conn.setup().roots[screen].clone();
        let win = conn.generate_id().unwrap();
        let mask = EventMask::KEY_PRESS | EventMask::KEY_RELEASE | EventMask::BUTTON_PRESS | EventMask::BUTTON_RELEASE;
        conn.create_window(
            0,
            win,
            s.root,
            0,
            0,
            s.width_in_pixels,
            s.height_in_pixels,
            0,
            WindowClass::INPUT_ONLY,
            0,
            &CreateWindowAux::new().event_mask(mask).override_redirect(1),
        )
        .unwrap()
        .check()
        .expect("an input-only window");
        conn.map_window(win).unwrap();
        conn.set_input_focus(InputFocus::PARENT, win, x11rb::CURRENT_TIME)
            .unwrap();
        conn.get_input_focus().unwrap().reply().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                match conn.poll_for_event() {
                    Ok(Some(ev)) => {
                        let e = match ev {
                            Event::KeyPress(k) => (KEY_PRESS_EVENT, k.detail),
                            Event::KeyRelease(k) => (KEY_RELEASE_EVENT, k.detail),
                            Event::ButtonPress(b) => (x11rb::protocol::xproto::BUTTON_PRESS_EVENT, b.detail),
                            Event::ButtonRelease(b) => (x11rb::protocol::xproto::BUTTON_RELEASE_EVENT, b.detail),
                            _ => continue,
                        };
                        seen2.lock().unwrap().push(e);
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    Err(_) => return,
                }
            }
        });
        InputSpy { seen, stop }
    }

    /// Waits until every one of `want` was seen.
    fn wait_for(&self, want: &[(u8, u8)], timeout: Duration) -> Result<(), Vec<(u8, u8)>> {
        let all = || want.iter().all(|w| self.seen.lock().unwrap().contains(w)).then_some(());
        eventually(timeout, all).ok_or_else(|| self.seen.lock().unwrap().clone())
    }
}

impl Drop for InputSpy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The input events a node counted for `stream`.
fn input_counts(addr: std::net::SocketAddr, stream: &str) -> Option<framewire_proto::control::InputEventStats> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), common::stats(addr))
            .await
            .expect("stats in time")
    });
    s.input_events.into_iter().find(|e| e.stream == stream)
}

fn kind_count(e: &framewire_proto::control::InputEventStats, kind: framewire_proto::InputKind) -> u64 {
    e.kinds.iter().find(|k| k.kind == kind).map_or(0, |k| k.count)
}

#[test]
fn x11_keys_wheel_and_clicks_through_a_relay_reach_the_source() {
    use framewire_proto::InputKind;
    use x11rb::protocol::xproto::{
        BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT, KEY_RELEASE_EVENT, MOTION_NOTIFY_EVENT,
    };
    use x11rb::protocol::xtest::ConnectionExt as _;
    let Some(src_x) = Xvfb::start(&["320x240x24"]) else {
        return;
    };
    let Some(view_x) = Xvfb::start(&["640x480x24"]) else {
        return;
    };
    draw_quadrants(&src_x.display, 320, 240);
    // A small X client on the source display: it has the focus and covers
    // the screen, so it gets the keys and buttons XTEST replays there.
    let spy = InputSpy::start(&src_x.display);
    let spec = format!("x11:desk,display={},fps=10,format=qoi,inject-input=true", src_x.display);
    let source = spawn_node(&["--name", "test:desk", "--source", &spec, "--discovery", "off"]);
    let up = format!("{}/desk", source.addr);
    let relay = spawn_node(&["--name", "test:relay", "--upstream", &up, "--discovery", "off"]);
    let relay_addr = relay.addr.to_string();
    // The viewer's keyboard has `é`, which the source's US layout lacks.
    let view_eacute = give_free_keycode(&view_x.display, 0xe9);
    let _viewer = Viewer::start(
        &view_x.display,
        &[&relay_addr, "desk", "--size", "640x480", "--position", "0,0"],
    );
    wait_for_picture(&view_x.display);
    let (win, _) = viewer_window(&view_x.display, Duration::from_secs(10));

    // On the viewer's display: click at (200, 100), type `a` and `é`, turn
    // the wheel one notch up.
    let (src_a, view_a) = {
        let (c, _) = x11rb::connect(Some(&src_x.display)).unwrap();
        let (v, _) = x11rb::connect(Some(&view_x.display)).unwrap();
        (keycode_of(&c, 0x61), keycode_of(&v, 0x61))
    };
    {
        let (conn, screen) = x11rb::connect(Some(&view_x.display)).expect("X connection");
        let root = conn.setup().roots[screen].root;
        conn.set_input_focus(x11rb::protocol::xproto::InputFocus::PARENT, win, x11rb::CURRENT_TIME)
            .unwrap();
        conn.xtest_fake_input(MOTION_NOTIFY_EVENT, 0, 0, root, 200, 100, 0)
            .unwrap();
        for (kind, detail) in [
            (BUTTON_PRESS_EVENT, 1),
            (BUTTON_RELEASE_EVENT, 1),
            (KEY_PRESS_EVENT, view_a),
            (KEY_RELEASE_EVENT, view_a),
            (KEY_PRESS_EVENT, view_eacute),
            (KEY_RELEASE_EVENT, view_eacute),
            (BUTTON_PRESS_EVENT, 4),
            (BUTTON_RELEASE_EVENT, 4),
        ] {
            conn.xtest_fake_input(kind, detail, x11rb::CURRENT_TIME, root, 0, 0, 0)
                .unwrap();
            conn.get_input_focus().unwrap().reply().unwrap();
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    // The client on the source display received them, mapped through the
    // source display's keyboard; the wheel is button 4.
    let want = [
        (BUTTON_PRESS_EVENT, 1),
        (BUTTON_RELEASE_EVENT, 1),
        (KEY_PRESS_EVENT, src_a),
        (KEY_RELEASE_EVENT, src_a),
        (BUTTON_PRESS_EVENT, 4),
        (BUTTON_RELEASE_EVENT, 4),
    ];
    if let Err(seen) = spy.wait_for(&want, Duration::from_secs(15)) {
        panic!(
            "the source display's client saw {seen:?}, wanted {want:?}\nsource log:\n{}\nrelay log:\n{}",
            source.log(),
            relay.log()
        );
    }
    // `é` was typed on a keycode the source gave it: press and release.
    let eacute = eventually(Duration::from_secs(15), || {
        let seen = spy.seen.lock().unwrap();
        let k = seen
            .iter()
            .find(|(t, k)| *t == KEY_PRESS_EVENT && *k != src_a)
            .map(|(_, k)| *k)?;
        seen.contains(&(KEY_RELEASE_EVENT, k)).then_some(k)
    })
    .unwrap_or_else(|| panic!("no second key at the source: {:?}", spy.seen.lock().unwrap()));
    assert_eq!(keysyms_of(&src_x.display, eacute)[0], 0xe9);
    // The source logged the click at source pixels (the relay passed it on).
    let log = source.log();
    let press = log
        .lines()
        .find(|l| l.contains("input event") && l.contains("kind=button-down"))
        .expect("a button line");
    assert!(press.contains("x=100") && press.contains("y=50"), "{press}");
    assert!(log.contains("keysym=97"), "{log}");
    // How long events took from the viewer to the source (same clock).
    let ages: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("input event"))
        .filter_map(|l| l.split("age_ms=").nth(1)?.split_whitespace().next())
        .collect();
    eprintln!("input event age at the source (viewer -> relay -> source), ms: {ages:?}");

    // Counters: the relay forwarded, the source received and injected.
    let mut last = (None, None);
    let counted = eventually_every(Duration::from_secs(10), SHOT, || {
        last = (input_counts(source.addr, "desk"), input_counts(relay.addr, "desk"));
        let (Some(s), Some(r)) = &last else { return None };
        (kind_count(s, InputKind::Wheel) == 1 && s.injected >= 7 && r.forwarded == r.received)
            .then(|| (s.clone(), r.clone()))
    });
    let (src, rel) = counted.unwrap_or_else(|| {
        panic!(
            "counters: source {:?}, relay {:?}; events logged:\n{}",
            last.0,
            last.1,
            source
                .log()
                .lines()
                .filter(|l| l.contains("input event"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    for (kind, n) in [
        (InputKind::ButtonDown, 1),
        (InputKind::ButtonUp, 1),
        (InputKind::KeyDown, 2),
        (InputKind::KeyUp, 2),
        (InputKind::Wheel, 1),
    ] {
        assert_eq!(kind_count(&src, kind), n, "{kind} at the source: {src:?}");
        assert_eq!(kind_count(&rel, kind), n, "{kind} at the relay: {rel:?}");
    }
    assert!(kind_count(&src, InputKind::MouseMove) >= 1, "{src:?}");
    assert_eq!(src.received, rel.forwarded, "source {src:?}, relay {rel:?}");
    assert_eq!((src.forwarded, rel.injected), (0, 0));
    // `framewire stats` shows them, as a table and as JSON.
    let addr = source.addr.to_string();
    let (ok, out) = run(
        Command::new(env!("CARGO_BIN_EXE_framewire")).args(["stats", &addr, "--json"]),
        Duration::from_secs(20),
    );
    assert!(ok, "framewire stats failed");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let e = &v["input_events"][0];
    assert_eq!(e["stream"], "desk");
    assert_eq!(e["kinds"]["key-down"], 2);
    assert_eq!(e["kinds"]["wheel"], 1);
    assert_eq!(e["received"].as_u64(), Some(src.received));
    let (ok, table) = run(
        Command::new(env!("CARGO_BIN_EXE_framewire")).args(["stats", &relay_addr]),
        Duration::from_secs(20),
    );
    assert!(ok, "framewire stats failed");
    let row = table
        .lines()
        .skip_while(|l| !l.starts_with("INPUT EVENTS"))
        .nth(1)
        .unwrap_or_else(|| panic!("no input event rows:\n{table}"));
    assert!(
        row.starts_with("desk") && row.contains("key-down=2") && row.contains("wheel=1"),
        "{table}"
    );
}

/// Shrinks screen 0 of `display` to `w` x `h` the way `xrandr --fb` does
/// on Xvfb: CRTCs that no longer fit are switched off, then the screen
/// size is set.
fn resize_screen(display: &str, w: u16, h: u16) {
    use x11rb::protocol::randr::{ConnectionExt as _, Rotation};
    let (conn, screen) = x11rb::connect(Some(display)).expect("X connection");
    let root = conn.setup().roots[screen].root;
    conn.randr_query_version(1, 5).unwrap().reply().unwrap();
    let res = conn.randr_get_screen_resources_current(root).unwrap().reply().unwrap();
    for crtc in res.crtcs {
        conn.randr_set_crtc_config(
            crtc,
            x11rb::CURRENT_TIME,
            res.config_timestamp,
            0,
            0,
            0,
            Rotation::ROTATE0,
            &[],
        )
        .unwrap()
        .reply()
        .expect("CRTC off");
    }
    conn.randr_set_screen_size(root, w, h, u32::from(w) / 4, u32::from(h) / 4)
        .unwrap()
        .check()
        .expect("RRSetScreenSize");
    assert_eq!(
        {
            let s = x11rb::connect(Some(display)).unwrap().0;
            (s.setup().roots[0].width_in_pixels, s.setup().roots[0].height_in_pixels)
        },
        (w, h)
    );
}

#[test]
fn x11_resize_gives_format_change_and_the_viewer_follows() {
    use framewire_proto::FrameFlags;
    let Some(src_x) = Xvfb::start(&["320x240x24"]) else {
        return;
    };
    let Some(view_x) = Xvfb::start(&["640x480x24"]) else {
        return;
    };
    draw_quadrants(&src_x.display, 320, 240);
    let spec = format!("x11:desk,display={},fps=10,format=qoi", src_x.display);
    let source = spawn_node(&["--name", "test:desk", "--source", &spec, "--discovery", "off"]);
    let up = format!("{}/desk", source.addr);
    let relay = spawn_node(&["--name", "test:relay", "--upstream", &up, "--discovery", "off"]);
    let addr = source.addr.to_string();
    // No --size: the window takes the stream's size, and follows it.
    let _viewer = Viewer::start(&view_x.display, &[&addr, "desk", "--position", "0,0"]);
    let (_, rect) = viewer_window(&view_x.display, Duration::from_secs(20));
    assert_eq!(rect, (0, 0, 320, 240));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let params = SubscribeParams {
            mode: DeliveryMode::LowLatency,
            ..SubscribeParams::default()
        };
        let mut c = client(relay.addr, "resize-test").await;
        subscribe(&mut c, "desk", params).await;
        let mut open = None;
        let (w, h, _) = next_picture(&mut c, &mut open, Duration::from_secs(20)).await;
        assert_eq!((w, h), (320, 240));

        resize_screen(&src_x.display, 200, 150);
        draw_quadrants(&src_x.display, 200, 150);
        // Through the relay: format-changed with the new size, then a frame
        // of that size flagged as a discontinuity.
        let end = Instant::now() + Duration::from_secs(20);
        let mut changed: Option<StreamOpen> = None;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let m = tokio::time::timeout(left, c.next_message())
                .await
                .expect("a format change in time")
                .expect("read")
                .expect("open");
            match m {
                Message::StreamEvent {
                    event: StreamEvent::FormatChanged(o),
                    ..
                } => {
                    assert_eq!((o.width, o.height, o.name.as_str()), (200, 150, "desk"));
                    changed = Some(o);
                }
                Message::StreamEvent { event, .. } => panic!("unexpected stream event {event:?}"),
                Message::VideoFrame(f) if changed.is_some() => {
                    // A frame of the old size already queued may come first:
                    // it does not decode as the new size; skip it.
                    let o = changed.as_ref().unwrap();
                    let Ok(pic) = Registry::builtin().negotiate(o).unwrap().decode(&f.data) else {
                        continue;
                    };
                    assert_eq!((pic.width(), pic.height()), (200, 150));
                    assert!(f.flags.contains(FrameFlags::DISCONTINUITY), "{:?}", f.flags);
                    break;
                }
                _ => {}
            }
        }
        // The relay's stream has the new size too.
        let Response::ListStreams(streams) = c.request(Request::ListStreams).await.unwrap() else {
            panic!("not a stream list")
        };
        assert_eq!((streams[0].open.width, streams[0].open.height), (200, 150));
    });
    // The viewer window took the new size and shows the new picture 1:1.
    let points = [(50, 37, 0), (150, 37, 1), (50, 112, 2), (150, 112, 3)];
    let (mut rect, mut wrong) = ((0, 0, 0, 0), Vec::new());
    let shown = eventually_every(Duration::from_secs(20), SHOT, || {
        rect = viewer_window(&view_x.display, Duration::from_secs(5)).1;
        let shot = screenshot(&view_x.display);
        wrong = points
            .iter()
            .filter(|(x, y, q)| !close(shot(*x, *y), QUADRANTS[*q], 6))
            .collect();
        (rect == (0, 0, 200, 150) && wrong.is_empty()).then_some(())
    });
    assert!(shown.is_some(), "viewer window {rect:?}, wrong pixels at {wrong:?}");
    assert!(source.log().contains("x11 monitor changed"), "{}", source.log());
}

/// Two RandR monitors side by side on screen 0 of a 1280x720 `display`,
/// LEFT (primary) and RIGHT, 640x720 each (what `xrandr --setmonitor` does).
fn set_two_monitors(display: &str) {
    use x11rb::protocol::randr::{ConnectionExt as _, MonitorInfo};
    let (conn, _) = x11rb::connect(Some(display)).expect("X connection");
    conn.randr_query_version(1, 5).unwrap().reply().unwrap();
    let root = conn.setup().roots[0].root;
    for (name, x0, primary) in [("LEFT", 0, true), ("RIGHT", 640, false)] {
        let atom = conn.intern_atom(false, name.as_bytes()).unwrap().reply().unwrap().atom;
        let m = MonitorInfo {
            name: atom,
            primary,
            automatic: false,
            x: x0,
            y: 0,
            width: 640,
            height: 720,
            width_in_millimeters: 169,
            height_in_millimeters: 190,
            outputs: vec![],
        };
        conn.randr_set_monitor(root, m).unwrap().check().expect("RRSetMonitor");
    }
}

/// Waits until the viewer window on `display` has the rectangle `want`.
fn wait_window_rect(display: &str, want: (i32, i32, u32, u32)) {
    let mut rect = (0, 0, 0, 0);
    let there = eventually_every(Duration::from_secs(20), SHOT, || {
        rect = viewer_window(display, Duration::from_secs(20)).1;
        (rect == want).then_some(())
    });
    assert!(there.is_some(), "viewer window at {rect:?}, wanted {want:?}");
}

#[test]
fn x11_viewer_fullscreen_on_a_named_monitor_and_placement() {
    let Some(view_x) = Xvfb::start(&["1280x720x24"]) else {
        return;
    };
    set_two_monitors(&view_x.display);
    let source = spawn_node(&[
        "--name",
        "test:bars",
        "--source",
        "test-pattern:bars,size=320x240,fps=5",
        "--discovery",
        "off",
    ]);
    let addr = source.addr.to_string();
    // A RandR monitor that is half of the output: exactly its rectangle.
    {
        let _v = Viewer::start(&view_x.display, &[&addr, "bars", "--fullscreen", "RIGHT"]);
        wait_window_rect(&view_x.display, (640, 0, 640, 720));
        // The picture is letterboxed inside it: 640x480 centred.
        let boxed = eventually_every(Duration::from_secs(20), SHOT, || {
            let shot = screenshot(&view_x.display);
            // Bars above and below the picture are black; the left monitor is untouched.
            let bar = shot(960, 60) == 0 && shot(960, 700) == 0;
            let picture = (0..640).step_by(16).any(|x| shot(640 + x, 360) != 0);
            (bar && picture).then_some(())
        });
        assert!(boxed.is_some(), "no letterboxed picture on RIGHT");
    }
    // An output winit knows (Xvfb's is `screen`): fullscreen on it.
    {
        let _v = Viewer::start(&view_x.display, &[&addr, "bars", "--fullscreen", "screen"]);
        wait_window_rect(&view_x.display, (0, 0, 1280, 720));
    }
    // Plain placement from the command line.
    {
        let _v = Viewer::start(
            &view_x.display,
            &[&addr, "bars", "--size", "300x200", "--position", "10,20"],
        );
        wait_window_rect(&view_x.display, (10, 20, 300, 200));
    }
    // An unknown monitor: an error naming the ones there are.
    let (ok, err) = run_stderr(
        Command::new(env!("CARGO_BIN_EXE_framewire"))
            .args(["view", &addr, "bars", "--fullscreen", "NOPE", "--exit-after", "30"])
            .env("DISPLAY", &view_x.display)
            .env("LIBGL_ALWAYS_SOFTWARE", "1"),
        Duration::from_secs(30),
    );
    assert!(!ok, "{err}");
    assert!(
        err.contains("no monitor named `NOPE`") && err.contains("LEFT") && err.contains("RIGHT"),
        "{err}"
    );
}

/// A 320x240 picture of four solid quadrants of `colours` (0xRRGGBB), as
/// `layout`, and the RGB the codec's own conversion gives back for each
/// quadrant (the shader is to match it).
fn yuv_quadrants(colours: [u32; 4], layout: PixelLayout) -> (framewire_codec::PixelBuffer, [u32; 4]) {
    let (w, h) = (320u32, 240u32);
    let rgb: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).map(move |x| colours[usize::from(x >= w / 2) + 2 * usize::from(y >= h / 2)]))
        .flat_map(|c| [(c >> 16) as u8, (c >> 8) as u8, c as u8])
        .collect();
    let pic = framewire_codec::PixelBuffer::new(PixelLayout::Rgb, w, h, rgb)
        .unwrap()
        .convert(layout)
        .unwrap();
    let back = pic.convert(PixelLayout::Rgb).unwrap().to_tight();
    let d = back.data();
    let at = |x: u32, y: u32| {
        let i = ((y * w + x) * 3) as usize;
        u32::from(d[i]) << 16 | u32::from(d[i + 1]) << 8 | u32::from(d[i + 2])
    };
    (pic, [at(80, 60), at(240, 60), at(80, 180), at(240, 180)])
}

#[test]
fn x11_viewer_renders_i420_and_yuyv_in_the_shader() {
    use framewire_codec::EncodeSpec;
    use framewire_net::{Node, NodeConfig, ReplayConfig, SourceConfig};
    use framewire_proto::PixelFormat;
    let Some(view_x) = Xvfb::start(&["640x480x24"]) else {
        return;
    };
    let cases = [
        (
            "i420",
            PixelLayout::I420,
            PixelFormat::Yuv420p,
            [0x00c0_3030, 0x0030_b050, 0x0040_50d0, 0x00e0_e0a0],
        ),
        (
            "yuyv",
            PixelLayout::Yuyv,
            PixelFormat::Yuv422Packed,
            [0x0030_a0c0, 0x00d0_6020, 0x0090_30a0, 0x0050_5050],
        ),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut config = NodeConfig::new("test:yuv", "127.0.0.1:0".parse().unwrap());
    let mut expected = Vec::new();
    for (name, layout, pf, colours) in cases {
        let (pic, want) = yuv_quadrants(colours, layout);
        let mut enc = Registry::builtin().encoder(&EncodeSpec::raw(pf)).unwrap();
        let data = enc.encode(&pic).unwrap();
        let open = enc.stream_open(320, 240, 5, 1, name);
        assert_eq!(open.pixel_format, pf);
        config.sources.push(SourceConfig::from(ReplayConfig {
            open,
            frames: vec![data],
            fps: 5.0,
            looped: true,
        }));
        expected.push((name, want));
    }
    let node = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), Node::start(config))
            .await
            .expect("node starts in time")
            .expect("node starts")
    });
    let addr = node.local_addr().to_string();
    for (name, want) in expected {
        let _v = Viewer::start(
            &view_x.display,
            &[&addr, name, "--size", "640x480", "--position", "0,0"],
        );
        // Each quadrant, scaled 2x, away from the edges where the chroma
        // of neighbours is filtered in.
        let points = [
            (160, 120, 0),
            (480, 120, 1),
            (160, 360, 2),
            (480, 360, 3),
            (40, 40, 0),
            (600, 440, 3),
        ];
        let mut wrong = Vec::new();
        let shown = eventually_every(Duration::from_secs(30), SHOT, || {
            let shot = screenshot(&view_x.display);
            wrong = points
                .iter()
                .filter(|(x, y, q)| !close(shot(*x, *y), want[*q], 4))
                .map(|(x, y, q)| format!("({x},{y}) {:06x} != {:06x}", shot(*x, *y), want[*q]))
                .collect();
            wrong.is_empty().then_some(())
        });
        assert!(shown.is_some(), "{name}: {wrong:?}");
    }
    rt.block_on(node.shutdown());
}
