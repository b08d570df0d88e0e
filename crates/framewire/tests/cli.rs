//! The command line and interop with plain tools (ffmpeg, ffprobe), with
//! real processes on loopback.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use framewire_proto::control::{Name, Shutdown};
use framewire_proto::{Message, Request, Response, StreamEvent, SubscribeParams};

fn framewire(args: &[&str]) -> std::process::Output {
    run_cli(args)
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// `ffmpeg -f mjpeg -i tcp://…` reads a node's opaque port.
#[test]
fn ffmpeg_reads_the_opaque_port() {
    if !have("ffmpeg") {
        eprintln!("skipped: ffmpeg not found");
        return;
    }
    let port = free_port();
    let opaque = format!("bars=127.0.0.1:{port}");
    let _node = spawn_node(&[
        "--name",
        "test:src",
        "--source",
        "test-pattern:bars,size=320x240,fps=30",
        "--opaque",
        &opaque,
    ]);
    let out = Command::new("timeout")
        .args(["20", "ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "mjpeg"])
        .arg("-i")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .args(["-frames:v", "20", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md5 = String::from_utf8_lossy(&out.stdout);
    let frames: Vec<&str> = md5.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(frames.len(), 20, "{md5}");
    // 320x240 decoded as yuvj420p: 115200 bytes per frame; frames differ.
    assert!(frames.iter().all(|l| l.contains("115200")), "{md5}");
    assert_ne!(frames[0].rsplit(',').next(), frames[1].rsplit(',').next());
}

/// `framewire recv --out FILE` of an MJPEG stream makes a file ffprobe counts;
/// `framewire recv --out -` of a raw stream pipes into `ffmpeg -f rawvideo`.
#[test]
fn recv_output_opens_in_ffmpeg() {
    if !have("ffprobe") || !have("ffmpeg") {
        eprintln!("skipped: ffmpeg/ffprobe not found");
        return;
    }
    let node = spawn_node(&[
        "--name",
        "test:src",
        "--source",
        "test-pattern:bars,size=320x240,fps=60",
        "--source",
        "test-pattern:raw,size=160x120,fps=60,format=raw",
    ]);
    let dir = temp_dir("cli-recv");
    let file = dir.join("bars.mjpeg");
    let addr = node.addr.to_string();
    let out = framewire(&[
        "recv",
        &addr,
        "bars",
        "--frames",
        "30",
        "--mode",
        "completeness",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("30 frames"), "{summary}");
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-f", "mjpeg", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames,width,height", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let probed = String::from_utf8_lossy(&probe.stdout);
    assert_eq!(probed.trim(), "320,240,30", "ffprobe says {probed}");

    // Raw frames to stdout, into ffmpeg.
    let mut recv = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args([
            "recv",
            &addr,
            "raw",
            "--frames",
            "25",
            "--mode",
            "completeness",
            "--out",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ff = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgra",
            "-s",
            "160x120",
        ])
        .args(["-i", "-", "-f", "framemd5", "-"])
        .stdin(recv.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(recv.wait().unwrap().success());
    assert!(ff.status.success(), "{}", String::from_utf8_lossy(&ff.stderr));
    let n = String::from_utf8_lossy(&ff.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    assert_eq!(n, 25);
}

/// A node's file sink writes a playable `.mjpeg`.
#[test]
fn file_sink_writes_a_playable_file() {
    if !have("ffprobe") {
        eprintln!("skipped: ffprobe not found");
        return;
    }
    let dir = temp_dir("cli-sink");
    let file = dir.join("sink.mjpeg");
    let sink = format!("file:bars,path={}", file.display());
    let mut node = spawn_node(&[
        "--name",
        "test:src",
        "--source",
        "test-pattern:bars,size=320x240,fps=50",
        "--sink",
        &sink,
    ]);
    // Stopped once the sink has taken enough frames for the file to show them.
    let addr = node.addr.to_string();
    let taken = eventually_every(Duration::from_secs(10), Duration::from_millis(100), || {
        let v: serde_json::Value = serde_json::from_slice(&framewire(&["stats", &addr, "--json"]).stdout).ok()?;
        let sink = v["outputs"]
            .as_array()?
            .iter()
            .find(|o| o["peer"] == format!("sink:file:{}", file.display()))?;
        (sink["frames_sent"].as_u64()? >= 25).then_some(())
    });
    assert!(taken.is_some(), "the file sink took no frames:\n{}", node.log());
    node.signal("TERM");
    assert_eq!(node.wait_exit(Duration::from_secs(5)), Some(0));
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-f",
            "mjpeg",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let frames: u32 = String::from_utf8_lossy(&probe.stdout).trim().parse().unwrap_or(0);
    assert!(frames >= 20, "the sink file holds {frames} frames");
}

/// `ls`, `stats`, `connect` and `disconnect`, with JSON, and the exit codes.
#[test]
fn cli_commands_and_exit_codes() {
    let src = spawn_node(&[
        "--name",
        "test:src",
        "--source",
        "test-pattern:bars,size=160x120,fps=30",
    ]);
    let relay = spawn_node(&["--name", "test:relay"]);
    let (s, r) = (src.addr.to_string(), relay.addr.to_string());

    let out = framewire(&["ls", &s, "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "bars");
    assert_eq!(v[0]["format"], "mjpeg");
    assert_eq!(v[0]["width"], 160);

    let out = framewire(&[
        "connect",
        &r,
        &format!("{s}/bars"),
        "--as",
        "bars2",
        "--mode",
        "completeness",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("as `bars2`"));
    // The relay serves it once its upstream answered.
    let served = eventually_every(Duration::from_secs(10), Duration::from_millis(50), || {
        let out = framewire(&["ls", &r, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (v[0]["name"] == "bars2").then_some(())
    });
    assert!(served.is_some(), "the relay never served bars2");
    let out = framewire(&["stats", &s, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outputs"][0]["stream"], "bars");
    assert_eq!(v["outputs"][0]["mode"], "completeness");
    assert!(v["outputs"][0]["peer"].as_str().unwrap().contains("test:relay"));

    // Table output works too.
    let out = framewire(&["stats", &r]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("bars2"));
    // Once, without --watch: rates over a window, not dashes (30 fps source).
    let out = framewire(&["stats", &s, "--window", "0.5"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = text
        .lines()
        .find(|l| l.starts_with("bars ") && l.contains("test:relay"))
        .unwrap_or_else(|| panic!("no output row for the relay:\n{text}"));
    // Columns: stream 20, peer 30, mode 12, via 4, then FPS (9).
    let fps: f64 = row
        .chars()
        .skip(20 + 1 + 30 + 1 + 12 + 1 + 4 + 1)
        .take(9)
        .collect::<String>()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("FPS is not a number:\n{text}"));
    assert!((15.0..=45.0).contains(&fps), "{fps} fps for a 30 fps source:\n{text}");
    // --wide shows a peer in full; without it a long one is shortened.
    let long = "test:a-relay-with-a-name-longer-than-thirty-characters";
    let _far = spawn_node(&["--name", long, "--upstream", &format!("{s}/bars")]);
    let mut wide = String::new();
    eventually_every(Duration::from_secs(10), Duration::from_millis(50), || {
        wide = String::from_utf8_lossy(&framewire(&["stats", &s, "--window", "0", "--wide"]).stdout).into_owned();
        wide.contains(long).then_some(())
    });
    assert!(wide.contains(long), "--wide shows the peer in full:\n{wide}");
    let narrow = String::from_utf8_lossy(&framewire(&["stats", &s, "--window", "0"]).stdout).into_owned();
    assert!(!narrow.contains(long) && narrow.contains("…"), "{narrow}");

    let out = framewire(&["disconnect", &r, "bars2"]);
    assert!(out.status.success());

    // Exit codes: refused by the node (3), unreachable (4), bad command line (2).
    let out = framewire(&["recv", &s, "no-such-stream", "--frames", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no stream named `no-such-stream`"));
    let dead = format!("127.0.0.1:{}", free_port());
    let out = framewire(&["ls", &dead]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the node"));
    assert_eq!(framewire(&["ls"]).status.code(), Some(2));
    assert_eq!(
        framewire(&["node", "--source", "test-pattern:x,colour=red"])
            .status
            .code(),
        Some(1)
    );
}

/// SNAPSHOT, UNSUBSCRIBE and SHUTDOWN over the protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_unsubscribe_and_shutdown_commands() {
    let mut node = spawn_node(&[
        "--name",
        "test:src",
        "--source",
        "test-pattern:bars,size=160x120,fps=30",
    ]);
    let mut c = client(node.addr, "test:cmd").await;
    let ch = subscribe(&mut c, "bars", SubscribeParams::default()).await;
    assert!(matches!(
        next(&mut c, Duration::from_secs(5)).await,
        Some(Message::VideoFrame(_))
    ));

    let Response::Snapshot(s) = c
        .request(Request::Snapshot(Name { name: "bars".into() }))
        .await
        .unwrap()
    else {
        panic!("snapshot")
    };
    assert_eq!(&s.data[..2], &[0xff, 0xd8], "a JPEG");
    assert_eq!((s.open.width, s.open.height), (160, 120));

    let r = c.request_on(ch, Request::Unsubscribe).await.unwrap();
    assert_eq!(r, Response::Unsubscribe);
    // After *closed*, nothing more arrives on that channel.
    let mut closed = false;
    while let Some(m) = next(&mut c, Duration::from_millis(500)).await {
        match m {
            Message::StreamEvent {
                event: StreamEvent::Closed(_),
                channel,
            } if channel == ch => closed = true,
            Message::VideoFrame(f) => assert!(!closed, "frame {} after closed", f.sequence),
            _ => {}
        }
    }
    assert!(closed);

    let e = c
        .request(Request::Snapshot(Name { name: "nope".into() }))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");

    c.request(Request::Shutdown(Shutdown { grace_ms: 500 })).await.unwrap();
    assert_eq!(
        node.wait_exit(Duration::from_secs(5)),
        Some(0),
        "SHUTDOWN ends the node"
    );
}

/// `framewire snapshot` writes a JPEG picture whatever the stream carries
/// (raw pixels here are encoded; MJPEG is saved as it came), refuses an
/// unknown stream with exit code 3 and writes nothing then; `framewire
/// shutdown` returns once the node has stopped, and the node exits 0.
#[test]
fn snapshot_and_shutdown_from_the_command_line() {
    let mut node = spawn_node(&[
        "--name",
        "test:snap",
        "--source",
        "test-pattern:raw,size=96x64,fps=30,format=raw,pixel-format=bgr",
        "--source",
        "test-pattern:bars,size=160x120,fps=30",
    ]);
    let addr = node.addr.to_string();
    let dir = temp_dir("snapshot-cli");
    let decode = |path: &std::path::Path, w: u32, h: u32| {
        let jpeg = bytes::Bytes::from(std::fs::read(path).unwrap());
        let open = framewire_proto::StreamOpen {
            format: framewire_proto::Format::Mjpeg,
            pixel_format: framewire_proto::PixelFormat::None,
            origin: framewire_proto::Origin::LibjpegTurbo,
            width: w,
            height: h,
            fps_num: 0,
            fps_den: 1,
            name: "x".into(),
            codec_config: Default::default(),
        };
        let p = framewire_codec::Registry::builtin()
            .negotiate(&open)
            .unwrap()
            .decode(&jpeg)
            .expect("a JPEG picture");
        (p.width(), p.height())
    };
    let raw = dir.join("raw.jpg");
    // The first frame may not be there yet.
    let mut out = None;
    eventually_every(Duration::from_secs(5), Duration::from_millis(100), || {
        let o = out.insert(framewire(&["snapshot", &addr, "raw", raw.to_str().unwrap()]));
        o.status.success().then_some(())
    });
    let out = out.expect("tried");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("encoded frame #") && said.contains("raw 96x64"), "{said}");
    assert_eq!(decode(&raw, 96, 64), (96, 64));
    let bars = dir.join("bars.jpg");
    let out = framewire(&["snapshot", &addr, "bars", bars.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("saved frame #"));
    assert_eq!(decode(&bars, 160, 120), (160, 120));
    let out = framewire(&["snapshot", &addr, "bars", "-"]);
    assert!(out.status.success());
    assert_eq!(&out.stdout[..2], &[0xff, 0xd8], "`-` writes the picture to stdout");

    let none = dir.join("none.jpg");
    let out = framewire(&["snapshot", &addr, "nope", none.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`nope`"));
    assert!(!none.exists(), "a refused snapshot wrote a file");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2, "a temporary file was left");

    let out = framewire(&["shutdown", &addr, "--grace-ms", "500"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("test:snap stopped"));
    assert_eq!(node.wait_exit(Duration::from_secs(5)), Some(0), "the node exits 0");
    assert_eq!(
        framewire(&["shutdown", &addr]).status.code(),
        Some(4),
        "nothing left to stop"
    );
}

/// The demo runs, every edge carries frames, and it stops by itself.
#[test]
fn demo_runs_and_shows_live_figures() {
    let archive = temp_dir("demo-cli").join("archive");
    let out = Command::new("timeout")
        .args([
            "60",
            env!("CARGO_BIN_EXE_framewire"),
            "demo",
            "--archive-dir",
            archive.to_str().unwrap(),
            "--duration",
            "3",
            "--size",
            "320x240",
            "--view-port",
            "0",
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.rsplit("-- t=").next().unwrap();
    for edge in [
        "demo:source    → demo:relay",
        "demo:relay     → demo:viewer",
        "demo:relay     → demo:archive",
    ] {
        let row = last
            .lines()
            .find(|l| l.starts_with(edge))
            .unwrap_or_else(|| panic!("no row {edge}:\n{text}"));
        let fps: f64 = row.split_whitespace().nth(4).unwrap().parse().unwrap();
        assert!(fps > 20.0, "{row}");
    }
    assert!(text.contains("ffplay -f mjpeg tcp://127.0.0.1:"));
}

/// Logs written to a pipe or a file are plain text: no colour codes
/// (they are for terminals only).
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["node", "--name", "plain-log", "--listen", "127.0.0.1:0", "--no-shm"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("framewire runs");
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("INFO") && line.contains("listening") {
                break;
            }
        }
        let _ = tx.send(seen);
    });
    let seen = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let seen = seen.expect("the node logged that it listens");
    assert!(seen.contains("INFO"), "{seen}");
    assert!(!seen.contains('\u{1b}'), "colour codes in a piped log:\n{seen:?}");
}

/// `framewire node --help` shows a spec line for every source and sink
/// kind the node knows.
#[test]
fn node_help_names_every_source_and_sink_kind() {
    let out = framewire(&["node", "--help"]);
    assert!(out.status.success());
    // Words only: the help is wrapped to the terminal's width.
    let help = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for k in framewire_net::sources::KINDS {
        assert!(
            help.contains(&format!("--source {}:NAME", k.name)),
            "no `--source {}:` in\n{help}",
            k.name
        );
    }
    let sinks: Vec<&str> = help
        .split("--sink ")
        .skip(1)
        .map(|rest| rest.split([':', ' ']).next().unwrap_or(""))
        .collect();
    for k in framewire_net::sinks::KINDS.iter().map(|k| k.name).chain(["view"]) {
        assert!(
            sinks.iter().any(|spec| spec.split('|').any(|n| n == k)),
            "no `--sink {k}` in {sinks:?}"
        );
    }
}

/// `framewire describe`: the node in words, and as JSON.
#[test]
fn describe_names_functions_and_features() {
    let node = spawn_node(&["--name", "test:desc", "--source", "test-pattern:bars,size=64x48,fps=5"]);
    let addr = node.addr.to_string();
    let out = framewire(&["describe", &addr]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("name") && l.ends_with("test:desc")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("functions") && l.contains("source")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("streams") && l.ends_with(" 1")),
        "{text}"
    );
    let out = framewire(&["describe", &addr, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "test:desc");
    assert!(v["functions"].as_array().unwrap().iter().any(|f| f == "source"), "{v}");
    assert!(v["features"].is_array(), "{v}");
    assert_eq!(v["tcp_port"], node.addr.port());
    assert_eq!(v["pid"], node.child.id());
}

/// docs/cli.md's table of JSON outputs: each row marked *tested* is run
/// against real nodes, and its fields are exactly the documented ones.
#[test]
fn json_outputs_have_the_documented_fields() {
    let src = spawn_node(&[
        "--name",
        "test:json",
        "--source",
        "test-pattern:bars,size=320x180,fps=15",
        "--source",
        "compose:wall,size=320x180,fps=5,inputs=bars",
    ]);
    let s = src.addr.to_string();
    let relay = spawn_node(&["--name", "test:jsonrelay", "--upstream", &format!("{s}/bars")]);
    let r = relay.addr.to_string();
    // A host under `framewire up`, for its status.
    let dir = common::temp_dir("cli-json");
    let host = dir.join("host.toml");
    std::fs::write(
        &host,
        "[[node]]\nname = \"n\"\nargs = [\"--discovery\", \"off\", \"--listen\", \"127.0.0.1:0\"]\n",
    )
    .unwrap();
    let mut up = std::process::Command::new(env!("CARGO_BIN_EXE_framewire"))
        .arg("up")
        .arg(&host)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let json = |args: &[&str]| -> serde_json::Value {
        let out = framewire(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    // The relay has its input once its upstream answered.
    let every = Duration::from_millis(100);
    let mut v = serde_json::Value::Null;
    let stats = eventually_every(Duration::from_secs(20), every, || {
        v = json(&["stats", &r, "--json"]);
        v["inputs"].as_array().is_some_and(|a| !a.is_empty()).then(|| v.clone())
    })
    .unwrap_or_else(|| panic!("no input on the relay: {v}"));
    let up_status = eventually_every(Duration::from_secs(10), every, || {
        let out = framewire(&[
            "up",
            host.to_str().unwrap(),
            "--state-dir",
            dir.join("state").to_str().unwrap(),
            "--status",
            "--json",
        ]);
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (v["nodes"][0]["state"] == "running").then_some(v)
    })
    .expect("no status from framewire up");
    let _ = up.kill();
    let _ = up.wait();
    let compose = json(&["compose", "show", &s, "wall", "--json"]);
    let outputs = json(&["stats", &s, "--json"]);
    let got = |row: &str| -> serde_json::Value {
        match row {
            "framewire ls ADDR --json" => json(&["ls", &s, "--json"]),
            "framewire describe ADDR --json" => json(&["describe", &s, "--json"]),
            "framewire stats ADDR --json" => stats.clone(),
            "framewire stats ADDR --json: inputs[]" => stats["inputs"].clone(),
            "framewire stats ADDR --json: outputs[]" => outputs["outputs"].clone(),
            "framewire latency ADDR STREAM --json" => {
                json(&["latency", &s, "bars", "--frames", "5", "--warmup", "0", "--json"])
            }
            "framewire compose show ADDR NAME --json" => compose.clone(),
            "framewire compose show ADDR NAME --json: inputs[]" => compose["inputs"].clone(),
            "framewire up HOST --status --json" => up_status.clone(),
            "framewire up HOST --status --json: nodes[]" => up_status["nodes"].clone(),
            other => panic!("docs/cli.md marks `{other}` tested, and this test does not run it"),
        }
    };
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md")).unwrap();
    let mut checked = 0;
    for line in doc.lines().filter(|l| l.starts_with("| `framewire")) {
        let cells: Vec<&str> = line.split(" | ").map(|c| c.trim_matches(['|', ' '])).collect();
        if cells.get(3) != Some(&"tested") {
            continue;
        }
        let row = cells[0].replace('`', "");
        let want: std::collections::BTreeSet<&str> = cells[2].split(", ").collect();
        let v = got(&row);
        let obj = if cells[1] == "array" { &v[0] } else { &v };
        let have: std::collections::BTreeSet<&str> = obj
            .as_object()
            .unwrap_or_else(|| panic!("{row}: not an object: {v}"))
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(have, want, "{row}");
        checked += 1;
    }
    assert_eq!(checked, 10, "rows checked");
}
