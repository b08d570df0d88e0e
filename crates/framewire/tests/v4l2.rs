//! V4L2 sources on a real device, through real `framewire` processes.
//!
//! The device is named by `FRAMEWIRE_V4L2_DEVICE` (e.g. `/dev/video0`);
//! without it the device tests print why and pass. `scripts/test.sh` runs
//! them inside a VM with the kernel's `vivid` driver
//! (`scripts/v4l2-vm-tests.sh`), with `--test-threads=1`: they share one
//! device. Some checks compare with `v4l2-ctl` (v4l-utils) when it is on
//! PATH. Recovery times are printed (`--nocapture` shows them).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{NodeProc, client, eventually, eventually_async, next, subscribe};
use framewire_net::Client;
use framewire_proto::control::{ControlValue, GetControls, Name, SetControls, StreamState, V4l2Control};
use framewire_proto::{
    DeliveryMode, EventReason, Format, FrameFlags, Message, Origin, Request, Response, Status, StreamEvent,
    SubscribeParams,
};

/// `framewire node ARGS` without discovery (nothing to discover here; less
/// work for an emulated CPU), given a minute to start.
fn spawn_node(args: &[&str]) -> NodeProc {
    spawn_bin(env!("CARGO_BIN_EXE_framewire"), args)
}

/// [`spawn_node`] from `bin` (the release build for the benchmark).
fn spawn_bin(bin: &str, args: &[&str]) -> NodeProc {
    let mut cmd = Command::new(bin);
    cmd.arg("node")
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--discovery", "off"]);
    // Slow to start in the emulated guest.
    common::spawn_command(cmd, Duration::from_secs(60))
}

fn device() -> Option<String> {
    match std::env::var("FRAMEWIRE_V4L2_DEVICE") {
        Ok(d) if !d.is_empty() => Some(d),
        _ => {
            eprintln!("skipped: FRAMEWIRE_V4L2_DEVICE is not set (scripts/test.sh sets it inside the vivid VM)");
            None
        }
    }
}

fn completeness() -> SubscribeParams {
    SubscribeParams {
        mode: DeliveryMode::Completeness,
        max_frames: 64,
        ..SubscribeParams::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Frames only (events are returned in `events`), until `n` frames or `timeout`.
async fn frames(c: &mut Client, n: usize, timeout: Duration) -> (Vec<framewire_proto::VideoFrame>, Vec<StreamEvent>) {
    let end = Instant::now() + timeout;
    let (mut fs, mut evs) = (Vec::new(), Vec::new());
    while fs.len() < n && Instant::now() < end {
        match next(c, end.saturating_duration_since(Instant::now())).await {
            Some(Message::VideoFrame(f)) => fs.push(f),
            Some(Message::StreamEvent { event, .. }) => evs.push(event),
            _ => break,
        }
    }
    (fs, evs)
}

async fn controls(c: &mut Client, dev: &str) -> Vec<V4l2Control> {
    match c.request(Request::V4l2ListControls(Name::from(dev))).await.unwrap() {
        Response::V4l2ListControls(v) => v,
        other => panic!("{other:?}"),
    }
}

fn id_of(cs: &[V4l2Control], name: &str) -> u32 {
    cs.iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("no control {name}"))
        .id
}

async fn set(c: &mut Client, dev: &str, id: u32, value: i64) -> Result<Vec<ControlValue>, framewire_net::NetError> {
    let req = SetControls {
        device: dev.to_owned(),
        values: vec![ControlValue { id, value }],
    };
    match c.request(Request::V4l2SetControls(req)).await? {
        Response::V4l2SetControls(v) => Ok(v),
        other => panic!("{other:?}"),
    }
}

async fn get(c: &mut Client, dev: &str, id: u32) -> i64 {
    let req = GetControls {
        device: dev.to_owned(),
        ids: vec![id],
    };
    match c.request(Request::V4l2GetControls(req)).await.unwrap() {
        Response::V4l2GetControls(v) => v[0].value,
        other => panic!("{other:?}"),
    }
}

async fn stream_state(c: &mut Client, name: &str) -> StreamState {
    match c.request(Request::ListStreams).await.unwrap() {
        Response::ListStreams(v) => v.iter().find(|s| s.open.name == name).expect("stream listed").state,
        other => panic!("{other:?}"),
    }
}

/// Whether process `pid` has `dev` open.
fn has_open(pid: u32, dev: &str) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_str() == Some(dev)))
        })
        .unwrap_or(false)
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    eventually(timeout, || f().then_some(())).is_some()
}

fn v4l2_ctl(args: &[&str]) -> Option<String> {
    let out = Command::new("v4l2-ctl").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first frame captured at least 200 ms after `t_ns` (frames already
/// in flight or in socket buffers are older). Panics on any stream event:
/// setting a control must not restart the stream.
async fn captured_after(c: &mut Client, t_ns: u64) -> framewire_proto::VideoFrame {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        match next(c, Duration::from_secs(10)).await {
            Some(Message::VideoFrame(f)) if f.timestamp_ns > t_ns + 200_000_000 => return f,
            Some(Message::VideoFrame(_)) => {}
            other => panic!("no stream event expected: {other:?}"),
        }
    }
    panic!("no frame captured after the change")
}

fn mean_luma_yuyv(data: &[u8]) -> f64 {
    let sum: u64 = data.iter().step_by(2).map(|&b| u64::from(b)).sum();
    sum as f64 / (data.len() / 2) as f64
}

#[test]
fn devices_and_controls_match_v4l2_ctl() {
    let Some(dev) = device() else { return };
    let node = spawn_node(&["--source", &format!("v4l2:cam,device={dev},size=640x480")]);
    rt().block_on(async {
        let mut c = client(node.addr, "test:v4l2").await;
        let Response::V4l2ListDevices(devs) = c.request(Request::V4l2ListDevices).await.unwrap() else {
            panic!()
        };
        let d = devs.iter().find(|d| d.path == dev).expect("the device is listed");
        assert!(!d.formats.is_empty() && !d.driver.is_empty() && !d.card.is_empty());
        let cs = controls(&mut c, &dev).await;
        assert!(cs.iter().any(|c| c.name == "Brightness"));
        // The same through the stream's name.
        assert_eq!(controls(&mut c, "cam").await.len(), cs.len());
        let e = c
            .request(Request::V4l2ListControls(Name::from("/dev/nope")))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no V4L2 device `/dev/nope`"), "{e}");

        let Some(text) = v4l2_ctl(&["-d", &dev, "--list-formats-ext"]) else {
            eprintln!("v4l2-ctl not found: comparison skipped");
            return;
        };
        // `[0]: 'YUYV' (...)`, `Size: Discrete 640x480`, `Interval: Discrete 0.040s (25.000 fps)`
        let mut expect: Vec<(String, Vec<(String, usize)>)> = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') && line.contains("]: '") {
                let fcc = line.split('\'').nth(1).unwrap().to_owned();
                expect.push((fcc, Vec::new()));
            } else if let Some(s) = line.strip_prefix("Size: Discrete ") {
                expect.last_mut().unwrap().1.push((s.to_owned(), 0));
            } else if line.starts_with("Interval: ") {
                expect.last_mut().unwrap().1.last_mut().unwrap().1 += 1;
            }
        }
        let got: Vec<(String, Vec<(String, usize)>)> = d
            .formats
            .iter()
            .map(|f| {
                // v4l2-ctl prints big-endian variants (bit 31) as `XR15-BE`.
                let mut fcc: String = (f.fourcc & !(1 << 31))
                    .to_le_bytes()
                    .iter()
                    .map(|&b| b as char)
                    .collect();
                if f.fourcc & (1 << 31) != 0 {
                    fcc.push_str("-BE");
                }
                let sizes = f
                    .sizes
                    .iter()
                    .map(|s| (format!("{}x{}", s.width, s.height), s.intervals.len()))
                    .collect();
                (fcc, sizes)
            })
            .collect();
        assert_eq!(got.len(), expect.len(), "format count");
        for (g, e) in got.iter().zip(&expect) {
            assert_eq!(g.0, e.0, "fourcc order");
            assert_eq!(g.1, e.1, "sizes and interval counts of {}", g.0);
        }
        eprintln!(
            "formats: {} formats, sizes and intervals identical to v4l2-ctl",
            got.len()
        );

        // `brightness 0x00980900 (int) : min=0 max=255 step=1 default=128 value=128 flags=slider`
        let text = v4l2_ctl(&["-d", &dev, "--list-ctrls-menus"]).expect("v4l2-ctl --list-ctrls-menus");
        let mut checked = 0;
        let mut menu_of: Option<u32> = None;
        for line in text.lines() {
            let t = line.trim();
            let parts: Vec<&str> = t.split_whitespace().collect();
            if parts.len() >= 3 && parts[1].starts_with("0x") {
                menu_of = None;
                let id = u32::from_str_radix(&parts[1][2..], 16).unwrap();
                let ty = parts[2].trim_matches(|c| c == '(' || c == ')' || c == ':');
                let simple = ["int", "bool", "menu", "button", "int64", "bitmask", "intmenu", "str"];
                let ours = cs.iter().find(|c| c.id == id);
                if !simple.contains(&ty) {
                    assert!(ours.is_none(), "compound control 0x{id:08x} is left out");
                    continue;
                }
                let c = ours.unwrap_or_else(|| panic!("control 0x{id:08x} ({}) missing", parts[0]));
                let field = |k: &str| {
                    t.split_whitespace()
                        .find_map(|w| w.strip_prefix(&format!("{k}=")))
                        .map(|v| v.trim_end_matches(','))
                };
                let num = |v: &str| {
                    v.strip_prefix("0x")
                        .map_or_else(|| v.parse::<i64>().unwrap(), |h| i64::from_str_radix(h, 16).unwrap())
                };
                if let Some(v) = field("min") {
                    assert_eq!(c.min, num(v), "min of {}", parts[0]);
                }
                if let Some(v) = field("max") {
                    assert_eq!(c.max, num(v), "max of {}", parts[0]);
                }
                if let Some(v) = field("step") {
                    assert_eq!(c.step as i64, num(v), "step of {}", parts[0]);
                }
                if let Some(v) = field("default") {
                    assert_eq!(c.default, num(v), "default of {}", parts[0]);
                }
                let key: String = {
                    let mut k = String::new();
                    let mut gap = false;
                    for ch in c.name.chars() {
                        if ch.is_ascii_alphanumeric() {
                            if gap && !k.is_empty() {
                                k.push('_');
                            }
                            gap = false;
                            k.push(ch.to_ascii_lowercase());
                        } else {
                            gap = true;
                        }
                    }
                    k
                };
                assert_eq!(key, parts[0], "name of 0x{id:08x}");
                if ty == "menu" || ty == "intmenu" {
                    menu_of = Some(id);
                }
                checked += 1;
            } else if let (Some(id), Some((idx, label))) = (menu_of, t.split_once(": ")) {
                let c = cs.iter().find(|c| c.id == id).unwrap();
                let idx: u32 = idx.parse().unwrap();
                let item = c
                    .menu
                    .iter()
                    .find(|m| m.index == idx)
                    .unwrap_or_else(|| panic!("menu item {idx}"));
                if c.ctrl_type == framewire_proto::ControlType::Menu {
                    assert_eq!(item.name, label, "menu item {idx} of {}", c.name);
                } else {
                    assert!(label.starts_with(&item.value.to_string()), "{label} vs {}", item.value);
                }
            }
        }
        assert_eq!(checked, cs.len(), "every listed control was in v4l2-ctl's list");
        eprintln!("controls: {checked} controls identical to v4l2-ctl (ranges, defaults, names, menus)");
    });
}

#[test]
fn capture_through_a_relay_count_size_sequence() {
    let Some(dev) = device() else { return };
    let src = spawn_node(&[
        "--source",
        &format!("v4l2:cam,device={dev},size=640x480,fps=25,format=raw,linger=0.2"),
    ]);
    let relay = spawn_node(&[
        "--upstream",
        &format!("{}/cam,mode=completeness,max-frames=64", src.addr),
    ]);
    rt().block_on(async {
        let mut c = client(relay.addr, "test:sink").await;
        subscribe(&mut c, "cam", completeness()).await;
        let (fs, _) = frames(&mut c, 60, Duration::from_secs(60)).await;
        assert_eq!(fs.len(), 60, "60 frames through the relay");
        for f in &fs {
            assert_eq!(f.data.len(), 640 * 480 * 2, "a whole YUYV frame");
            assert!(f.flags.contains(FrameFlags::KEYFRAME));
        }
        let seqs: Vec<u64> = fs.iter().map(|f| f.sequence).collect();
        assert!(seqs.windows(2).all(|w| w[1] > w[0]), "sequence increases: {seqs:?}");
        let lost: u64 = seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
        // Capture timestamps are wall-clock and recent.
        let now = framewire_net::now_ns();
        let last = fs.last().unwrap().timestamp_ns;
        assert!(
            last <= now && now - last < 10_000_000_000,
            "timestamp {last} vs now {now}"
        );
        let ts: Vec<u64> = fs.iter().map(|f| f.timestamp_ns).collect();
        assert!(ts.windows(2).all(|w| w[1] > w[0]), "timestamps increase");
        let span = (ts[ts.len() - 1] - ts[0]) as f64 / 1e9;
        let rate = (seqs[seqs.len() - 1] - seqs[0]) as f64 / span;
        eprintln!(
            "relay: 60 frames, sequence {}..{}, {lost} lost at the source, device rate {rate:.1} fps",
            seqs[0],
            seqs[seqs.len() - 1]
        );
        assert!(
            (15.0..35.0).contains(&rate),
            "the device's 25 fps from its timestamps: {rate}"
        );
    });
}

#[test]
fn raw_to_mjpeg_on_the_device() {
    let Some(dev) = device() else { return };
    let node = spawn_node(&[
        "--source",
        &format!("v4l2:cam,device={dev},size=640x480,fps=25,format=mjpeg,quality=80"),
    ]);
    rt().block_on(async {
        let mut c = client(node.addr, "test:mjpeg").await;
        let Response::ListStreams(s) = c.request(Request::ListStreams).await.unwrap() else {
            panic!()
        };
        let open = &s.iter().find(|s| s.open.name == "cam").unwrap().open;
        assert_eq!(
            (open.format, open.origin, open.width, open.height),
            (Format::Mjpeg, Origin::LibjpegTurbo, 640, 480)
        );
        assert_eq!((open.fps_num, open.fps_den), (25, 1));
        subscribe(&mut c, "cam", completeness()).await;
        let (fs, _) = frames(&mut c, 10, Duration::from_secs(30)).await;
        assert_eq!(fs.len(), 10);
        let reg = framewire_codec::Registry::builtin();
        let mut d = reg.negotiate(open).unwrap();
        for f in &fs {
            assert_eq!(&f.data[..2], &[0xff, 0xd8]);
            let pic = d.decode(&f.data).unwrap();
            assert_eq!((pic.width(), pic.height()), (640, 480));
        }
    });
}

/// `timecode=true`: every frame carries its own capture time and
/// sequence in the picture (docs/latency.md).
#[test]
fn the_time_code_overlay_on_a_camera() {
    let Some(dev) = device() else { return };
    let node = spawn_node(&[
        "--source",
        &format!("v4l2:cam,device={dev},size=640x480,fps=25,format=mjpeg,quality=80,timecode=true"),
    ]);
    rt().block_on(async {
        let mut c = client(node.addr, "test:timecode").await;
        let Response::ListStreams(s) = c.request(Request::ListStreams).await.unwrap() else {
            panic!()
        };
        let open = s.iter().find(|s| s.open.name == "cam").unwrap().open.clone();
        subscribe(&mut c, "cam", completeness()).await;
        let (fs, _) = frames(&mut c, 10, Duration::from_secs(30)).await;
        assert_eq!(fs.len(), 10);
        let mut d = framewire_codec::Registry::builtin().negotiate(&open).unwrap();
        for f in &fs {
            let pic = d.decode(&f.data).unwrap();
            assert_eq!(
                framewire_media::timecode::read(&pic),
                Some(framewire_media::timecode::TimeCode::new(f.sequence, f.timestamp_ns)),
                "frame {}",
                f.sequence
            );
        }
    });
}

#[test]
fn brightness_set_remotely_changes_the_picture() {
    let Some(dev) = device() else { return };
    let node = spawn_node(&[
        "--source",
        &format!("v4l2:cam,device={dev},size=640x480,fps=25,format=raw"),
    ]);
    rt().block_on(async {
        let mut ctl = client(node.addr, "test:ctl").await;
        let cs = controls(&mut ctl, &dev).await;
        let bright = id_of(&cs, "Brightness");
        set(&mut ctl, &dev, bright, 128).await.unwrap();
        let mut c = client(node.addr, "test:view").await;
        subscribe(&mut c, "cam", SubscribeParams::default()).await;
        let before = mean_luma_yuyv(&captured_after(&mut c, framewire_net::now_ns()).await.data);
        // Set while streaming: no restart, the frames captured afterwards change.
        let applied = set(&mut ctl, &dev, bright, 230).await.unwrap();
        let t = framewire_net::now_ns();
        assert_eq!(applied, vec![ControlValue { id: bright, value: 230 }]);
        assert_eq!(get(&mut ctl, &dev, bright).await, 230, "read back");
        let after = mean_luma_yuyv(&captured_after(&mut c, t).await.data);
        assert_eq!(set(&mut ctl, &dev, bright, 20).await.unwrap()[0].value, 20);
        let t = framewire_net::now_ns();
        let dark = mean_luma_yuyv(&captured_after(&mut c, t).await.data);
        eprintln!("mean luma: brightness 128 -> {before:.1}, 230 -> {after:.1}, 20 -> {dark:.1}");
        assert!(after > before + 20.0, "brighter: {before} -> {after}");
        assert!(dark < before - 20.0, "darker: {before} -> {dark}");
        // Refusals carry the reason.
        match set(&mut ctl, &dev, bright, 300).await.unwrap_err() {
            framewire_net::NetError::Remote { status, message, .. } => {
                assert_eq!(status, Status::BadRequest);
                assert!(message.contains("out of range (0..=255)"), "{message}");
            }
            e => panic!("{e}"),
        }
        if let Some(ro) = cs
            .iter()
            .find(|c| c.flags & 0x4 != 0 && c.ctrl_type == framewire_proto::ControlType::Integer)
        {
            match set(&mut ctl, &dev, ro.id, 1).await.unwrap_err() {
                framewire_net::NetError::Remote { status, message, .. } => {
                    assert_eq!(status, Status::BadRequest);
                    assert!(message.contains("read-only"), "{message}");
                }
                e => panic!("{e}"),
            }
        }
        set(&mut ctl, &dev, bright, 128).await.unwrap();
    });
}

/// Presses a button control (vivid's Disconnect, Inject Fatal Streaming
/// Error) during capture: interrupted, then resumed, then frames again,
/// the first one flagged as a discontinuity. Returns (interrupted ->
/// resumed, resumed -> first frame) in milliseconds.
async fn lose_and_recover(c: &mut Client, ctl: &mut Client, dev: &str, button: u32) -> (f64, f64) {
    let (fs, _) = frames(c, 3, Duration::from_secs(20)).await;
    assert_eq!(fs.len(), 3, "frames before");
    let last_seq = fs.last().unwrap().sequence;
    let _ = set(ctl, dev, button, 1).await; // the device may vanish before the answer
    let end = Instant::now() + Duration::from_secs(30);
    let (mut t_int, mut t_res) = (None, None);
    let mut first = None;
    while Instant::now() < end && first.is_none() {
        match next(c, Duration::from_secs(10)).await {
            Some(Message::StreamEvent {
                event: StreamEvent::Interrupted(i),
                ..
            }) => {
                assert_eq!(i.reason, EventReason::DeviceLost, "{i:?}");
                t_int = Some(Instant::now());
            }
            Some(Message::StreamEvent {
                event: StreamEvent::Resumed(_),
                ..
            }) => {
                assert!(t_int.is_some(), "resumed after interrupted");
                t_res = Some(Instant::now());
            }
            Some(Message::StreamEvent { event, .. }) => panic!("unexpected event {event:?}"),
            Some(Message::VideoFrame(f)) if t_res.is_some() => first = Some((Instant::now(), f)),
            Some(Message::VideoFrame(_)) => {} // in flight before the loss
            _ => break,
        }
    }
    let (t_int, t_res) = (t_int.expect("interrupted"), t_res.expect("resumed"));
    let (t_frame, f) = first.expect("frames after resumed");
    assert!(
        f.flags.contains(FrameFlags::DISCONTINUITY),
        "first frame after resume is a discontinuity"
    );
    assert!(f.sequence > last_seq, "sequence continues: {} > {last_seq}", f.sequence);
    let (fs, evs) = frames(c, 5, Duration::from_secs(20)).await;
    assert_eq!(fs.len(), 5, "frames keep coming ({evs:?})");
    assert!(fs.iter().all(|f| !f.flags.contains(FrameFlags::DISCONTINUITY)));
    (
        (t_res - t_int).as_secs_f64() * 1000.0,
        (t_frame - t_res).as_secs_f64() * 1000.0,
    )
}

#[test]
fn device_loss_interrupted_resumed_frames_again() {
    let Some(dev) = device() else { return };
    let node = spawn_node(&[
        "--source",
        &format!("v4l2:cam,device={dev},size=640x480,fps=25,format=raw"),
    ]);
    rt().block_on(async {
        let mut ctl = client(node.addr, "test:ctl").await;
        let cs = controls(&mut ctl, &dev).await;
        let bright = id_of(&cs, "Brightness");
        set(&mut ctl, &dev, bright, 200).await.unwrap();
        let mut c = client(node.addr, "test:view").await;
        subscribe(&mut c, "cam", completeness()).await;
        for name in ["Disconnect", "Inject Fatal Streaming Error"] {
            let Some(button) = cs.iter().find(|c| c.name == name).map(|c| c.id) else {
                eprintln!("{name}: not a control of this device, skipped");
                continue;
            };
            let (down, first) = lose_and_recover(&mut c, &mut ctl, &dev, button).await;
            eprintln!("{name}: interrupted -> resumed {down:.0} ms, resumed -> first frame {first:.0} ms");
            // Controls set remotely were re-applied after the reopen.
            assert_eq!(
                get(&mut ctl, &dev, bright).await,
                200,
                "brightness re-applied after {name}"
            );
            assert_eq!(stream_state(&mut ctl, "cam").await, StreamState::Live);
        }
        assert!(node.log().contains("device back"), "{}", node.log());
        set(&mut ctl, &dev, bright, 128).await.unwrap();
    });
}

#[test]
fn on_demand_opens_only_while_subscribed() {
    let Some(dev) = device() else { return };
    let node = spawn_node(&[
        "--source",
        &format!("v4l2:cam,device={dev},size=640x480,fps=25,linger=0.5"),
    ]);
    let pid = node.child.id();
    rt().block_on(async {
        let mut ctl = client(node.addr, "test:ctl").await;
        assert_eq!(stream_state(&mut ctl, "cam").await, StreamState::Idle);
        assert!(!has_open(pid, &dev), "closed with no subscriber");
        for round in 0..2 {
            let mut c = client(node.addr, "test:view").await;
            subscribe(&mut c, "cam", SubscribeParams::default()).await;
            let (fs, _) = frames(&mut c, 3, Duration::from_secs(20)).await;
            assert_eq!(fs.len(), 3, "round {round}: frames once subscribed");
            assert!(has_open(pid, &dev), "open while subscribed");
            assert_eq!(stream_state(&mut ctl, "cam").await, StreamState::Live);
            drop(c);
            let t = Instant::now();
            assert!(
                wait_until(Duration::from_secs(10), || !has_open(pid, &dev)),
                "closed after linger"
            );
            let closed_after = t.elapsed();
            assert!(closed_after >= Duration::from_millis(300), "lingered: {closed_after:?}");
            eprintln!("round {round}: device closed {closed_after:?} after the last subscriber left (linger 0.5 s)");
            assert_eq!(stream_state(&mut ctl, "cam").await, StreamState::Idle);
        }
    });
    drop(node);
    // Always on: open with no subscriber at all.
    let node = spawn_node(&[
        "--source",
        &format!("v4l2:cam,device={dev},size=640x480,on-demand=false"),
    ]);
    let pid = node.child.id();
    assert!(
        wait_until(Duration::from_secs(10), || has_open(pid, &dev)),
        "always-on opens at start"
    );
    rt().block_on(async {
        let mut ctl = client(node.addr, "test:ctl").await;
        assert_eq!(stream_state(&mut ctl, "cam").await, StreamState::Live);
    });
}

#[test]
fn an_impossible_format_fails_with_the_offer() {
    let Some(dev) = device() else { return };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_framewire"));
    cmd.args(["node", "--listen", "127.0.0.1:0", "--source"]);
    cmd.arg(format!("v4l2:cam,device={dev},size=800x600,pixel-format=YUYV"));
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("800x600 is not offered in YUYV"), "{err}");
    assert!(
        err.contains("YUYV: ") && err.contains("640x480 @ "),
        "lists the offer: {err}"
    );
}

/// Runs without a device: a node whose device never appears reports the
/// stream failed after `fail_after`, and keeps running.
#[test]
fn a_device_that_never_comes_is_reported_failed() {
    let node = spawn_node(&[
        "--source",
        "v4l2:cam,device=/dev/video-framewire-none,on-demand=false,fail-after=1",
    ]);
    rt().block_on(async {
        let mut c = client(node.addr, "test:ctl").await;
        let mut state = stream_state(&mut c, "cam").await;
        // Interrupted at first; failed a second later (a slow machine may be there already).
        assert!(
            matches!(state, StreamState::Interrupted | StreamState::Failed),
            "{state:?}"
        );
        if state != StreamState::Failed {
            eventually_async(Duration::from_secs(10), async || {
                state = stream_state(&mut c, "cam").await;
                (state == StreamState::Failed).then_some(())
            })
            .await;
        }
        assert_eq!(state, StreamState::Failed);
    });
    assert!(
        node.wait_log("did not come back", Duration::from_secs(5)),
        "{}",
        node.log()
    );
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

/// The capture node's CPU per stream from the device, raw pass-through and
/// raw -> MJPEG, at 640x480 and 1280x720, and frames lost at the source.
/// Writes a markdown table to `FRAMEWIRE_V4L2_BENCH_OUT` when set.
#[test]
fn bench_capture_cpu() {
    let Some(dev) = device() else { return };
    let bin = std::env::var("FRAMEWIRE_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_framewire").to_owned());
    let secs: f64 = std::env::var("FRAMEWIRE_V4L2_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6.0);
    let cases = [
        ("640x480", 25.0, "raw"),
        ("640x480", 25.0, "mjpeg"),
        ("1280x720", 12.5, "raw"),
        ("1280x720", 12.5, "mjpeg"),
    ];
    let mut rows = Vec::new();
    for (size, fps, format) in cases {
        let spec = format!("v4l2:cam,device={dev},pixel-format=YUYV,size={size},fps={fps},format={format},quality=80");
        let mut node = spawn_bin(&bin, &["--source", &spec]);
        let (pid, addr) = (node.child.id(), node.addr);
        let (frames_n, lost, cpu, mean_bytes, seen, window) = rt().block_on(async {
            let mut c = client(addr, "bench:v4l2").await;
            subscribe(&mut c, "cam", completeness()).await;
            // Warm up: the device opens on the subscription.
            let _ = frames(&mut c, 5, Duration::from_secs(20)).await;
            let (cpu0, t0, w0) = (cpu_seconds(pid), Instant::now(), framewire_net::now_ns());
            let mut got = Vec::new();
            while t0.elapsed().as_secs_f64() < secs {
                let (fs, _) = frames(&mut c, 1, Duration::from_secs(5)).await;
                got.extend(fs);
            }
            let cpu = (cpu_seconds(pid) - cpu0) / t0.elapsed().as_secs_f64();
            let w1 = framewire_net::now_ns();
            // Frames captured inside the window, wherever they were queued:
            // read on until one captured after it comes (frames come in
            // order), for up to 10 s (the emulated machine can be slow).
            let late_until = Instant::now() + Duration::from_secs(10);
            while got.last().is_none_or(|f| f.timestamp_ns < w1) && Instant::now() < late_until {
                let (late, _) = frames(&mut c, 1, Duration::from_secs(2)).await;
                got.extend(late);
            }
            let received = got.len();
            got.retain(|f| (w0..w1).contains(&f.timestamp_ns));
            let seqs: Vec<u64> = got.iter().map(|f| f.sequence).collect();
            let lost: u64 = seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
            let bytes = got.iter().map(|f| f.data.len()).sum::<usize>() / got.len().max(1);
            let seen = format!("{received} frames received, {} captured in the window", got.len());
            let window = (w1 - w0) as f64 / 1e9;
            (got.len(), lost, cpu, bytes, seen, window)
        });
        node.kill();
        let expected = fps * window;
        let lost_pct = 100.0 * lost as f64 / (frames_n as f64 + lost as f64).max(1.0);
        let row = format!(
            "| {size} @ {fps} | {} | {:.0} | {:.1} | {lost} ({lost_pct:.0} %) | {:.0} % | {} KiB |",
            if format == "raw" {
                "raw YUYV pass-through"
            } else {
                "raw → MJPEG q80"
            },
            expected,
            frames_n as f64 / window,
            cpu * 100.0,
            mean_bytes / 1024
        );
        eprintln!("{row}");
        rows.push(row);
        assert!(
            frames_n as f64 > expected * 0.3,
            "{size} {format}: {frames_n} frames of {expected} ({seen}); the node's log:\n{}",
            node.log()
        );
        assert!(cpu.is_finite() && cpu > 0.0, "CPU measured");
    }
    if let Ok(path) = std::env::var("FRAMEWIRE_V4L2_BENCH_OUT") {
        let mut md = String::from(
            "| stream | path | frames due | delivered fps | lost at the source | node CPU (one core = 100 %) | frame size |\n|---|---|---|---|---|---|---|\n",
        );
        for r in rows {
            md.push_str(&r);
            md.push('\n');
        }
        std::fs::write(path, md).unwrap();
    }
}

/// The controller's web API on a real camera: the node panel's data (a
/// widget per control type, current values) and setting a control through
/// `POST /api/nodes/{node}/v4l2`, checked against the device.
#[test]
fn web_api_lists_and_sets_camera_controls() {
    let Some(dev) = device() else { return };
    let state = common::temp_dir("v4l2-web");
    let web = format!("127.0.0.1:{}", common::free_port());
    let node = spawn_node(&[
        "--name",
        "vm:cam",
        "--source",
        &format!("v4l2:cam,device={dev},size=640x480"),
        "--controller",
        "--web",
        &web,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let base = format!("http://{web}");
    rt().block_on(async {
        let t = Duration::from_secs(20);
        let get = || async {
            let r = framewire_web::client::request(&base, "GET", "/api/nodes/vm:cam/v4l2", &[], b"", t)
                .await
                .unwrap();
            (
                r.status,
                serde_json::from_slice::<serde_json::Value>(&r.body).unwrap_or_default(),
                r.text(),
            )
        };
        // The controller connects to the node shortly after start.
        let mut last = String::new();
        let v = eventually_async(Duration::from_secs(60), async || {
            let (status, v, text) = get().await;
            last = format!("{status} {text}");
            (status == 200).then_some(v)
        })
        .await
        .unwrap_or_else(|| panic!("no controls: {last}\n{}", node.log()));
        let d = v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["path"] == dev.as_str())
            .expect("the device");
        let controls = d["controls"].as_array().unwrap();
        let find = |name: &str| {
            controls
                .iter()
                .find(|c| c["name"] == name)
                .unwrap_or_else(|| panic!("no {name}: {d}"))
        };
        assert_eq!(find("Brightness")["widget"], "slider");
        for (ty, widget) in [("boolean", "toggle"), ("menu", "menu"), ("button", "button")] {
            let c = controls
                .iter()
                .find(|c| c["type"] == ty)
                .unwrap_or_else(|| panic!("vivid has no {ty} control"));
            assert_eq!(c["widget"], widget, "{c}");
        }
        let id = find("Brightness")["id"].as_u64().unwrap();
        let was = find("Brightness")["value"].as_i64().unwrap();
        let want = if was == 200 { 100 } else { 200 };
        let body = format!(r#"{{"device":"{dev}","values":[{{"id":{id},"value":{want}}}]}}"#);
        let h = [("content-type", "application/json"), ("x-csrf-token", "")];
        // Open mode still wants the CSRF token of /api/session.
        let r = framewire_web::client::request(&base, "POST", "/api/nodes/vm:cam/v4l2", &h, body.as_bytes(), t)
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{}", r.text());
        let s = framewire_web::client::request(&base, "GET", "/api/session", &[], b"", t)
            .await
            .unwrap();
        let csrf = serde_json::from_slice::<serde_json::Value>(&s.body).unwrap()["csrf"]
            .as_str()
            .unwrap()
            .to_owned();
        let h = [("content-type", "application/json"), ("x-csrf-token", csrf.as_str())];
        let r = framewire_web::client::request(&base, "POST", "/api/nodes/vm:cam/v4l2", &h, body.as_bytes(), t)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let (_, v, _) = get().await;
        let now = v["devices"][0]["controls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()["value"]
            .clone();
        assert_eq!(now, want, "{v}");
        if let Some(out) = v4l2_ctl(&["-d", &dev, "--get-ctrl", "brightness"]) {
            assert!(out.contains(&want.to_string()), "v4l2-ctl says {out}");
        }
    });
}

/// A control value set remotely is kept in the node's state directory and
/// set on the device again when the node starts anew, even after the
/// device was set otherwise in between.
#[test]
fn controls_set_remotely_survive_a_node_restart() {
    let Some(dev) = device() else { return };
    let dir = common::temp_dir("v4l2-state");
    let source = format!("v4l2:cam,device={dev},size=640x480,fps=25,format=raw");
    let args = ["--source", &source, "--state-dir", dir.to_str().unwrap()];
    let mut node = spawn_node(&args);
    let bright = rt().block_on(async {
        let mut ctl = client(node.addr, "test:ctl").await;
        let bright = id_of(&controls(&mut ctl, &dev).await, "Brightness");
        set(&mut ctl, &dev, bright, 201).await.unwrap();
        bright
    });
    node.kill();
    let kept = std::fs::read_to_string(dir.join("v4l2-controls.toml")).expect("the values are kept");
    assert!(kept.contains(&format!("{bright} = 201")), "{kept}");
    // The device is set otherwise while the node is down.
    v4l2_ctl(&["-d", &dev, "--set-ctrl", "brightness=128"]).expect("v4l2-ctl --set-ctrl");
    let now = v4l2_ctl(&["-d", &dev, "--get-ctrl", "brightness"]).expect("v4l2-ctl --get-ctrl");
    assert!(now.contains("128"), "{now}");
    let node = spawn_node(&args);
    rt().block_on(async {
        // The device opens for a subscriber: the kept value goes back on.
        let mut c = client(node.addr, "test:view").await;
        subscribe(&mut c, "cam", SubscribeParams::default()).await;
        let (got, _) = frames(&mut c, 3, Duration::from_secs(30)).await;
        assert_eq!(got.len(), 3, "frames after the restart");
        let mut ctl = client(node.addr, "test:ctl").await;
        assert_eq!(get(&mut ctl, &dev, bright).await, 201, "the kept value is back");
        set(&mut ctl, &dev, bright, 128).await.unwrap();
    });
    let back = v4l2_ctl(&["-d", &dev, "--get-ctrl", "brightness"]).expect("v4l2-ctl --get-ctrl");
    assert!(back.contains("128"), "{back}");
}
