//! The compose source: inputs from other nodes and from its own, each in
//! its tile, a lost input on its slate while the others go on, and back in
//! place when it returns (docs/compose.md).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{client, spawn_node, subscribe};
use framewire_codec::{Decoder, PixelBuffer, PixelLayout, Registry};
use framewire_proto::{DeliveryMode, Message, StreamEvent, SubscribeParams};

const RED: [u8; 3] = [0, 0, 255];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [255, 0, 0];
const YELLOW: [u8; 3] = [0, 255, 255];
/// The slate's dark blue (B, G, R).
const SLATE: [u8; 3] = [96, 32, 16];

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 24)
}

/// The output's pictures as BGRA, with the time each arrived.
struct Watch {
    c: framewire_net::Client,
    decoder: Option<Box<dyn Decoder>>,
}

impl Watch {
    async fn new(addr: SocketAddr, stream: &str) -> Watch {
        let mut c = client(addr, "test:compose").await;
        let params = SubscribeParams {
            mode: DeliveryMode::LowLatency,
            max_frames: 1,
            ..SubscribeParams::default()
        };
        subscribe(&mut c, stream, params).await;
        Watch { c, decoder: None }
    }

    /// The next picture, as BGRA.
    async fn next(&mut self) -> PixelBuffer {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.c.next_message())
                .await
                .expect("a frame within 10 s")
                .unwrap()
                .expect("connection open");
            match m {
                Message::ControlRequest(req) if req.command == framewire_proto::Command::StreamOpen => {
                    self.c.ack(&req).await.unwrap();
                    if let Ok(framewire_proto::Request::StreamOpen(o)) = framewire_proto::Request::decode(&req) {
                        self.decoder = Some(Registry::builtin().negotiate(&o).unwrap());
                    }
                }
                Message::StreamEvent {
                    event: StreamEvent::FormatChanged(o),
                    ..
                } => self.decoder = Some(Registry::builtin().negotiate(&o).unwrap()),
                Message::VideoFrame(f) => {
                    let pic = self
                        .decoder
                        .as_mut()
                        .expect("STREAM_OPEN first")
                        .decode(&f.data)
                        .unwrap();
                    return pic.convert(PixelLayout::Bgra).unwrap();
                }
                _ => {}
            }
        }
    }

    /// Waits (at most `limit`) for a picture `ok` accepts; how long it took.
    async fn until(&mut self, limit: Duration, what: &str, ok: impl Fn(&PixelBuffer) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            let pic = self.next().await;
            if ok(&pic) {
                return start.elapsed();
            }
            assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        }
    }
}

/// (B, G, R) at (x, y).
fn at(pic: &PixelBuffer, x: u32, y: u32) -> [u8; 3] {
    let p = pic.plane(0);
    let o = p.offset + y as usize * p.stride + x as usize * 4;
    let d = pic.data();
    [d[o], d[o + 1], d[o + 2]]
}

/// The colour in the middle of the upper part of tile `i` of a 2x2 grid
/// on 640x360 (clear of the label in its lower left).
fn tile(pic: &PixelBuffer, i: u32) -> [u8; 3] {
    at(pic, (i % 2) * 320 + 160, (i / 2) * 180 + 50)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn solid(name: &str, hex: &str) -> String {
    format!("solid:{name},size=320x180,fps=15,color={hex}")
}

#[test]
fn a_grid_of_remote_inputs_a_lost_one_on_its_slate_and_back() {
    let a = spawn_node(&[
        "--name",
        "t:a",
        "--discovery",
        "off",
        "--source",
        &solid("red", "FF0000"),
        "--source",
        &solid("green", "00FF00"),
    ]);
    let port = common::free_port();
    let b_args = |port: u16| {
        vec![
            "--name".to_owned(),
            "t:b".to_owned(),
            "--discovery".to_owned(),
            "off".to_owned(),
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
            "--source".to_owned(),
            solid("blue", "0000FF"),
            "--source".to_owned(),
            solid("yellow", "FFFF00"),
        ]
    };
    let args = b_args(port);
    let mut b = spawn_node(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let spec = format!(
        "compose:wall,size=640x360,fps=15,inputs={a}/red;{a}/green;{b}/blue;{b}/yellow",
        a = a.addr,
        b = b.addr
    );
    let c = spawn_node(&["--name", "t:c", "--discovery", "off", "--source", &spec]);
    rt().block_on(async {
        let mut w = Watch::new(c.addr, "wall").await;
        let all = |p: &PixelBuffer| {
            [RED, GREEN, BLUE, YELLOW]
                .iter()
                .enumerate()
                .all(|(i, &c)| near(tile(p, i as u32), c))
        };
        w.until(Duration::from_secs(10), "every input in its tile", all).await;

        // Node b goes: its two tiles show the slate; the others stay.
        b.kill();
        let killed = Instant::now();
        let slated = |p: &PixelBuffer| near(at(p, 330, 190), SLATE) && near(at(p, 10, 190), SLATE);
        let took = w.until(Duration::from_secs(3), "the lost inputs' slates", slated).await;
        println!("slate {:?} after the kill", killed.elapsed());
        assert!(
            took <= Duration::from_secs(1),
            "the slate came {took:?} after the kill (at most 1 s)"
        );
        let pic = w.next().await;
        assert!(
            near(tile(&pic, 0), RED) && near(tile(&pic, 1), GREEN),
            "the live tiles changed"
        );

        // Back on the same port: in place again.
        let args = b_args(port);
        let _b2 = spawn_node(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let back = w
            .until(Duration::from_secs(15), "the inputs back in their tiles", all)
            .await;
        println!("back {back:?} after the restart");
    });
}

#[test]
fn sixteen_inputs_of_this_node_in_a_grid() {
    let colours: Vec<[u8; 3]> = (0..16u8).map(|i| [i * 16, 255 - i * 16, 128]).collect();
    let mut args = vec![
        "--name".to_owned(),
        "t:wall".to_owned(),
        "--discovery".to_owned(),
        "off".to_owned(),
    ];
    for (i, c) in colours.iter().enumerate() {
        args.push("--source".into());
        args.push(format!(
            "solid:s{i},size=160x90,fps=10,color={:02X}{:02X}{:02X}",
            c[2], c[1], c[0]
        ));
    }
    let inputs: Vec<String> = (0..16).map(|i| format!("s{i}")).collect();
    args.push("--source".into());
    args.push(format!(
        "compose:wall,size=1280x720,fps=10,labels=false,inputs={}",
        inputs.join(";")
    ));
    let node = spawn_node(&args.iter().map(String::as_str).collect::<Vec<_>>());
    rt().block_on(async {
        let mut w = Watch::new(node.addr, "wall").await;
        w.until(Duration::from_secs(10), "16 tiles", |p| {
            colours
                .iter()
                .enumerate()
                .all(|(i, &c)| near(at(p, (i as u32 % 4) * 320 + 160, (i as u32 / 4) * 180 + 90), c))
        })
        .await;
    });
}

#[test]
fn a_bad_layout_is_refused_with_the_reason() {
    for (spec, reason) in [
        ("compose:w,inputs=a,layout=mosaic", "unknown layout `mosaic`"),
        ("compose:w,inputs=a;a", "two inputs are named `a`"),
        ("compose:w,size=641x360,inputs=a", "even sides"),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_framewire"));
        cmd.args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--discovery",
            "off",
            "--source",
            spec,
        ]);
        let out = common::media::run(cmd, Duration::from_secs(20));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{spec} was taken");
        assert!(err.contains(reason), "{spec}: {err}");
    }
}

#[test]
fn a_custom_layout_from_a_config_file() {
    let dir = common::temp_dir("compose-custom");
    let path = common::config_file(
        &dir,
        r#"
name = "t:custom"
[[source]]
kind = "solid"
name = "red"
size = "160x90"
color = "FF0000"
[[source]]
kind = "solid"
name = "blue"
size = "160x90"
color = "0000FF"
[[source]]
kind = "compose"
name = "pip"
size = "640x360"
fps = 10
inputs = ["red", "inset=blue"]
layout = "custom"
[[source.tile]]
input = "red"
rect = { x = 0, y = 0, w = 640, h = 360 }
fit = "fill"
[[source.tile]]
input = "inset"
rect = { x = 400, y = 200, w = 200, h = 120 }
z = 1
border = 4
fit = "fill"
"#,
    );
    let node = spawn_node(&["--config", &path, "--discovery", "off"]);
    rt().block_on(async {
        let mut w = Watch::new(node.addr, "pip").await;
        w.until(Duration::from_secs(10), "the inset over the main picture", |p| {
            near(at(p, 100, 50), RED) && near(at(p, 500, 240), BLUE) && near(at(p, 401, 260), [255, 255, 255])
        })
        .await;
    });
}

/// SOURCE_SET of a compose source with the same size, rate and format is
/// taken in place: the tiles change at the next frames, the stream never
/// pauses or says interrupted; a bad layout is refused and nothing changes.
#[test]
fn the_layout_changes_while_it_runs_without_a_gap() {
    let other = spawn_node(&[
        "--name",
        "t:o",
        "--discovery",
        "off",
        "--source",
        &solid("blue", "0000FF"),
    ]);
    let node = spawn_node(&[
        "--name",
        "t:wall",
        "--discovery",
        "off",
        "--source",
        &solid("red", "FF0000"),
        "--source",
        &solid("green", "00FF00"),
        "--source",
        "compose:wall,size=640x360,fps=15,layout=side-by-side,labels=false,inputs=red;green",
    ]);
    let set = |spec: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_framewire"));
        cmd.args(["source", "set", &node.addr.to_string(), spec]);
        common::media::run(cmd, Duration::from_secs(20))
    };
    rt().block_on(async {
        let mut w = Watch::new(node.addr, "wall").await;
        let left_right =
            |l: [u8; 3], r: [u8; 3]| move |p: &PixelBuffer| near(at(p, 160, 180), l) && near(at(p, 480, 180), r);
        w.until(Duration::from_secs(10), "red | green", left_right(RED, GREEN))
            .await;

        // Swapped, from the command line, while it runs.
        let out = set("compose:wall,size=640x360,fps=15,layout=side-by-side,labels=false,inputs=green;red");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let start = Instant::now();
        let mut last = Instant::now();
        let mut longest = Duration::ZERO;
        let mut swapped = None;
        // Every frame for a second after the command: the swap, and no gap.
        while start.elapsed() < Duration::from_secs(1) || swapped.is_none() {
            let m = tokio::time::timeout(Duration::from_secs(5), w.c.next_message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            match m {
                Message::StreamEvent { event, .. } => panic!("the stream said {event:?}"),
                Message::VideoFrame(f) => {
                    longest = longest.max(last.elapsed());
                    last = Instant::now();
                    let pic = w
                        .decoder
                        .as_mut()
                        .unwrap()
                        .decode(&f.data)
                        .unwrap()
                        .convert(PixelLayout::Bgra)
                        .unwrap();
                    if swapped.is_none() && left_right(GREEN, RED)(&pic) {
                        swapped = Some(start.elapsed());
                    }
                }
                _ => {}
            }
            assert!(start.elapsed() < Duration::from_secs(5), "not swapped within 5 s");
        }
        println!("swapped {swapped:?} after the command; longest gap between frames {longest:?}");
        assert!(
            longest < Duration::from_millis(300),
            "a gap of {longest:?} in a 15 fps stream"
        );

        // A remote input added, in a grid.
        let out = set(&format!(
            "compose:wall,size=640x360,fps=15,labels=false,inputs=red;green;{}/blue",
            other.addr
        ));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        w.until(Duration::from_secs(10), "red, green, blue in a grid", |p| {
            near(tile(p, 0), RED) && near(tile(p, 1), GREEN) && near(tile(p, 2), BLUE)
        })
        .await;

        // Refused with the reason; the grid stays.
        let out = set("compose:wall,size=640x360,fps=15,labels=false,inputs=red;red");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("two inputs are named `red`"), "{err}");
        let pic = w.next().await;
        assert!(near(tile(&pic, 2), BLUE), "the layout changed after a refusal");
    });
}

/// An MJPEG input in a tile a quarter of its size (decoded at 1/4 by
/// libjpeg-turbo): its colour bars are there, in order.
#[test]
fn an_mjpeg_input_in_a_small_tile_shows_its_picture() {
    let node = spawn_node(&[
        "--name",
        "t:wall",
        "--discovery",
        "off",
        "--source",
        "test-pattern:bars,size=1280x720,fps=15,format=mjpeg",
        "--source",
        &solid("red", "FF0000"),
        "--source",
        "compose:wall,size=640x360,fps=15,labels=false,inputs=bars;red;red2=red;red3=red",
    ]);
    rt().block_on(async {
        let mut w = Watch::new(node.addr, "wall").await;
        w.until(Duration::from_secs(10), "the bars in the first tile", |p| {
            // Eight bars across 320 pixels; the bars scroll, so count
            // distinct colours along a row rather than where each is.
            let mut seen: Vec<[u8; 3]> = Vec::new();
            for x in (4..316).step_by(8) {
                let c = at(p, x, 40);
                if !seen.iter().any(|s| near(*s, c)) {
                    seen.push(c);
                }
            }
            seen.len() >= 6 && near(tile(p, 1), RED)
        })
        .await;
    });
}

/// An input moved to another node keeps its name and tile: its old edge
/// goes first, so the new one takes the same local name.
#[test]
fn an_input_moved_to_another_node_in_place() {
    let a = spawn_node(&[
        "--name",
        "t:a",
        "--discovery",
        "off",
        "--source",
        &solid("cam", "FF0000"),
    ]);
    let b = spawn_node(&[
        "--name",
        "t:b",
        "--discovery",
        "off",
        "--source",
        &solid("cam", "0000FF"),
    ]);
    let spec = |from: SocketAddr| format!("compose:wall,size=640x360,fps=15,labels=false,inputs={from}/cam");
    let node = spawn_node(&["--name", "t:wall", "--discovery", "off", "--source", &spec(a.addr)]);
    rt().block_on(async {
        let mut w = Watch::new(node.addr, "wall").await;
        w.until(Duration::from_secs(10), "red from a", |p| near(at(p, 320, 180), RED))
            .await;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_framewire"));
        cmd.args(["source", "set", &node.addr.to_string(), &spec(b.addr)]);
        let out = common::media::run(cmd, Duration::from_secs(20));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        w.until(Duration::from_secs(10), "blue from b", |p| near(at(p, 320, 180), BLUE))
            .await;
    });
}

/// `format=h264`: the canvas encoded by OpenH264, its parameter sets
/// announced once known, a keyframe every `gop` frames flagged as such,
/// and every frame decoding to the layout's colours.
#[test]
fn an_h264_canvas_with_keyframes_on_schedule() {
    use framewire_media::h26x::{AccessUnit, Codec};
    let node = spawn_node(&[
        "--name",
        "t:wall",
        "--discovery",
        "off",
        "--source",
        &solid("red", "FF0000"),
        "--source",
        &solid("green", "00FF00"),
        "--source",
        "compose:wall,size=640x360,fps=15,layout=side-by-side,labels=false,format=h264,gop=15,inputs=red;green",
    ]);
    rt().block_on(async {
        let got = common::media::collect(node.addr, "wall", Duration::from_secs(20), |g| g.frames.len() >= 45).await;
        assert!(got.frames.len() >= 45, "{} frames", got.frames.len());
        let open = got.opens.last().unwrap();
        assert_eq!(open.format, framewire_proto::Format::H264);
        assert!(
            !open.codec_config.is_empty(),
            "parameter sets announced: {:?}",
            got.opens
        );
        let first = &got.frames[0];
        let au = AccessUnit::of(Codec::H264, &first.data);
        assert!(first.flags.is_keyframe() && au.keyframe && au.has_sps, "{au:?}");
        let keys: Vec<u64> = got
            .frames
            .iter()
            .filter(|f| f.flags.is_keyframe())
            .map(|f| f.sequence)
            .collect();
        assert!(keys.len() >= 3, "keyframes at {keys:?}");
        assert!(keys.windows(2).all(|w| w[1] - w[0] <= 15), "keyframes at {keys:?}");
        let mut dec = Registry::builtin().negotiate(open).unwrap();
        let mut last = None;
        for f in &got.frames {
            assert_eq!(f.flags.is_keyframe(), AccessUnit::of(Codec::H264, &f.data).keyframe);
            last = Some(dec.decode(&f.data).expect("every frame decodes"));
        }
        let pic = last.unwrap().convert(PixelLayout::Bgra).unwrap();
        assert!(near(at(&pic, 160, 180), RED) && near(at(&pic, 480, 180), GREEN));
    });
}

/// `framewire compose …`: an input added, moved into the first tile, one
/// tile changed (the grid turned custom), a change outside the canvas
/// refused with nothing changed, an input removed; `show` and
/// `source get` read it back.
#[test]
fn one_change_at_a_time_from_the_command_line() {
    let node = spawn_node(&[
        "--name",
        "t:wall",
        "--discovery",
        "off",
        "--source",
        &solid("red", "FF0000"),
        "--source",
        &solid("green", "00FF00"),
        "--source",
        &solid("blue", "0000FF"),
        "--source",
        "compose:wall,size=640x360,fps=15,labels=false,inputs=red;green",
    ]);
    let addr = node.addr.to_string();
    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_framewire"));
        cmd.arg("compose")
            .args(&args[..1])
            .arg(&addr)
            .arg("wall")
            .args(&args[1..]);
        common::media::run(cmd, Duration::from_secs(20))
    };
    let ok = |args: &[&str]| {
        let out = cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    rt().block_on(async {
        let mut w = Watch::new(node.addr, "wall").await;
        // Two inputs: a row of two tiles, the pictures letterboxed.
        w.until(Duration::from_secs(10), "red | green", |p| {
            near(at(p, 160, 180), RED) && near(at(p, 480, 180), GREEN)
        })
        .await;
        ok(&["add", "blue"]);
        w.until(Duration::from_secs(5), "blue added", |p| near(tile(p, 2), BLUE))
            .await;
        ok(&["move", "blue", "1"]);
        w.until(Duration::from_secs(5), "blue first, red third", |p| {
            near(tile(p, 0), BLUE) && near(tile(p, 1), GREEN) && near(tile(p, 2), RED)
        })
        .await;
        ok(&["tile", "green", "rect=0,0,640,360", "z=-1"]);
        w.until(Duration::from_secs(5), "green under the others", |p| {
            near(tile(p, 3), GREEN) && near(tile(p, 0), BLUE) && near(tile(p, 2), RED)
        })
        .await;
        let shown: serde_json::Value = serde_json::from_str(&ok(&["show", "--json"])).unwrap();
        assert_eq!(shown["layout"], "custom");
        assert_eq!(shown["tiles"][1]["input"], "green");
        assert_eq!(shown["tiles"][1]["z"], -1);

        let out = cli(&["tile", "green", "rect=600,0,640,360"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("outside the 640x360 canvas"), "{err}");
        let again: serde_json::Value = serde_json::from_str(&ok(&["show", "--json"])).unwrap();
        assert_eq!(again, shown, "a refused change changes nothing");

        ok(&["rm", "red"]);
        w.until(Duration::from_secs(5), "red gone", |p| near(tile(p, 2), GREEN))
            .await;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_framewire"));
        cmd.args(["source", "get", &addr, "wall"]);
        let out = common::media::run(cmd, Duration::from_secs(20));
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(
            table.contains("kind = \"compose\"") && table.contains("\"blue\"") && !table.contains("\"red\""),
            "{table}"
        );
    });
}
