//! The viewer window as a sink inside a node (`--sink view:STREAM`) and as
//! `framewire view`, under Xvfb with software OpenGL: each shows the
//! stream, shows the NO SIGNAL slate with the reason while its upstream is
//! gone, and shows the stream again when it comes back (the standalone
//! viewer reconnecting as an edge does). Screens are read back with
//! GetImage and compared with the source's colours.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::xvfb::{QUADRANTS, Xvfb, close, draw_quadrants, screenshot};
use common::{NodeProc, eventually_every, free_port, run_cli, spawn_command, spawn_node};

/// The slate's background, #202850.
const SLATE: u32 = 0x0020_2850;

/// What a 640x480 screen shows at a few points.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The source's quadrants, letterboxed from 320x240 (same aspect).
    Picture,
    /// The slate (960x540, letterboxed into 640x360 at y 60..420).
    Slate,
    Other(String),
}

fn seen(display: &str) -> Seen {
    let shot = screenshot(display);
    let picture = [(160, 120, 0), (480, 120, 1), (160, 360, 2), (480, 360, 3)]
        .iter()
        .all(|&(x, y, q)| close(shot(x, y), QUADRANTS[q], 6));
    if picture {
        return Seen::Picture;
    }
    let slate = [(10, 70), (630, 410), (320, 80)]
        .iter()
        .all(|&(x, y)| close(shot(x, y), SLATE, 2))
        && close(shot(320, 20), 0, 2);
    if slate {
        return Seen::Slate;
    }
    Seen::Other(format!(
        "(160,120) {:06x} (10,70) {:06x} (320,20) {:06x}",
        shot(160, 120),
        shot(10, 70),
        shot(320, 20)
    ))
}

fn wait_seen(display: &str, want: &Seen, what: &str) {
    wait_seen_or(display, want, what, String::new);
}

/// As `wait_seen`, with `log` in the failure's message.
fn wait_seen_or(display: &str, want: &Seen, what: &str, log: impl Fn() -> String) {
    let mut s = None;
    let shown = eventually_every(Duration::from_secs(30), Duration::from_millis(100), || {
        (*s.insert(seen(display)) == *want).then_some(())
    });
    assert!(
        shown.is_some(),
        "{what}: the screen shows {s:?}, not {want:?}\n{}",
        log()
    );
}

/// A node grabbing the quadrants of `display` as `desk`, on `port`.
fn source(display: &str, port: u16) -> NodeProc {
    let spec = format!("x11:desk,display={display},fps=10,format=qoi");
    let listen = format!("127.0.0.1:{port}");
    spawn_node(&[
        "--name",
        "test:desk",
        "--listen",
        &listen,
        "--source",
        &spec,
        "--discovery",
        "off",
    ])
}

#[test]
fn a_view_sink_shows_its_stream_and_no_signal_while_the_upstream_is_gone() {
    let Some(src_x) = Xvfb::start(&["320x240x24"]) else {
        return;
    };
    let Some(view_x) = Xvfb::start(&["640x480x24"]) else {
        return;
    };
    draw_quadrants(&src_x.display, 320, 240);
    let port = free_port();
    let mut src = source(&src_x.display, port);
    let upstream = format!("127.0.0.1:{port}/desk");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_framewire"));
    cmd.args([
        "node",
        "--name",
        "test:wall",
        "--listen",
        "127.0.0.1:0",
        "--discovery",
        "off",
        "--upstream",
        &upstream,
        "--sink",
        "view:desk,position=0,0,size=640x480",
    ])
    .env("DISPLAY", &view_x.display)
    .env("LIBGL_ALWAYS_SOFTWARE", "1");
    let wall = spawn_command(cmd, Duration::from_secs(20));
    wait_seen_or(&view_x.display, &Seen::Picture, "the sink's window", || wall.log());

    src.kill();
    wait_seen_or(&view_x.display, &Seen::Slate, "the upstream killed", || wall.log());
    assert!(
        wall.wait_log("NO SIGNAL", Duration::from_secs(5)),
        "no slate logged:\n{}",
        wall.log()
    );
    let log = wall.log();
    let line = log.lines().find(|l| l.contains("NO SIGNAL")).unwrap_or_default();
    assert!(line.contains("upstream-lost"), "the slate's reason: {line}");

    let _src = source(&src_x.display, port);
    wait_seen_or(&view_x.display, &Seen::Picture, "the upstream back", || wall.log());
}

#[test]
fn framewire_view_reconnects_and_shows_no_signal_meanwhile() {
    let Some(src_x) = Xvfb::start(&["320x240x24"]) else {
        return;
    };
    let Some(view_x) = Xvfb::start(&["640x480x24"]) else {
        return;
    };
    draw_quadrants(&src_x.display, 320, 240);
    let port = free_port();
    let mut src = source(&src_x.display, port);
    let addr = format!("127.0.0.1:{port}");
    let mut viewer = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["view", &addr, "desk", "--size", "640x480", "--position", "0,0"])
        .args(["--exit-after", "90"])
        .env("DISPLAY", &view_x.display)
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("framewire view runs");
    wait_seen(&view_x.display, &Seen::Picture, "the viewer");

    src.kill();
    wait_seen(&view_x.display, &Seen::Slate, "the node killed");
    // Still there, retrying, a few seconds later.
    std::thread::sleep(Duration::from_secs(2));
    assert!(viewer.try_wait().unwrap().is_none(), "the viewer quit");
    assert_eq!(seen(&view_x.display), Seen::Slate);

    let back = Instant::now();
    let _src = source(&src_x.display, port);
    wait_seen(&view_x.display, &Seen::Picture, "the node back");
    eprintln!("picture again {:?} after the node restarted", back.elapsed());
    let _ = viewer.kill();
    let _ = viewer.wait();
}

#[test]
fn a_bad_view_sink_is_refused_with_the_reason() {
    for (spec, want) in [
        ("view:desk,position=a,b", "position `a,b` is not X,Y"),
        ("view:desk,scale=zoom", "scale `zoom` is not letterbox or stretch"),
        ("view:desk,colour=red", "no key `colour`"),
    ] {
        let out = run_cli(&["node", "--discovery", "off", "--sink", spec, "--listen", "127.0.0.1:0"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{spec}: {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args([
            "node",
            "--discovery",
            "off",
            "--sink",
            "view:desk",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("DISPLAY is not set"), "{err}");
}

#[test]
fn the_controller_routes_a_stream_to_a_screen() {
    let Some(src_x) = Xvfb::start(&["320x240x24"]) else {
        return;
    };
    let Some(view_x) = Xvfb::start(&["640x480x24"]) else {
        return;
    };
    draw_quadrants(&src_x.display, 320, 240);
    let src = source(&src_x.display, free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_framewire"));
    cmd.args(["node", "--name", "test:wall", "--listen", "127.0.0.1:0"])
        .args(["--discovery", "off", "--sink", "view:screen,position=0,0,size=640x480"])
        .env("DISPLAY", &view_x.display)
        .env("LIBGL_ALWAYS_SOFTWARE", "1");
    let wall = spawn_command(cmd, Duration::from_secs(20));
    // Nothing is wired to the screen yet: the slate.
    wait_seen_or(&view_x.display, &Seen::Slate, "before wiring", || wall.log());

    let dir = common::temp_dir("view-routed");
    let wanted = "[[edge]]\nfrom = \"test:desk\"\nstream = \"desk\"\nto = \"test:wall\"\nlocal_name = \"screen\"\n";
    std::fs::write(dir.join("wanted.toml"), wanted).unwrap();
    let (s, w) = (src.addr.to_string(), wall.addr.to_string());
    let ctl = spawn_node(&[
        "--name",
        "test:ctl",
        "--discovery",
        "off",
        "--controller",
        "--no-web",
        "--controller-node",
        &s,
        "--controller-node",
        &w,
        "--state-dir",
        dir.to_str().unwrap(),
    ]);
    wait_seen_or(&view_x.display, &Seen::Picture, "wired by the controller", || {
        format!("{}\n{}", wall.log(), ctl.log())
    });
}

/// `framewire view` of an H.264 stream (the grab encoded by the node's
/// output, `desk~h264`): decoded in the viewer (OpenH264) and shown.
#[test]
fn framewire_view_shows_an_h264_stream() {
    let Some(src_x) = Xvfb::start(&["320x240x24"]) else {
        return;
    };
    let Some(view_x) = Xvfb::start(&["640x480x24"]) else {
        return;
    };
    draw_quadrants(&src_x.display, 320, 240);
    let port = free_port();
    let src = source(&src_x.display, port);
    let addr = format!("127.0.0.1:{port}");
    let mut viewer = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args([
            "view",
            &addr,
            "desk~h264-2Mbit-g10",
            "--size",
            "640x480",
            "--position",
            "0,0",
        ])
        .args(["--exit-after", "60"])
        .env("DISPLAY", &view_x.display)
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("framewire view runs");
    wait_seen_or(&view_x.display, &Seen::Picture, "the H.264 stream", || src.log());
    let _ = viewer.kill();
    let _ = viewer.wait();
}
