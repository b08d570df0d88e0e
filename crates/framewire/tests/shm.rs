//! Shared-memory edges between `framewire node` processes on one host:
//! chosen by default, visible in `framewire stats`, and safe when either
//! process is killed mid-stream.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use framewire_proto::control::StreamState;
use framewire_proto::{Message, StreamEvent, SubscribeParams, TransportMode};

fn framewire_stats(addr: std::net::SocketAddr) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["stats", &addr.to_string()])
        .output()
        .expect("framewire stats runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn wait_until(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> bool) {
    let done = eventually_async(timeout, async || f().await.then_some(())).await;
    assert!(done.is_some(), "timed out waiting for {what}");
}

/// Two local processes: the relay's edge goes over shared memory without
/// being asked, `stats` says so, frames flow; SIGKILL of the consumer frees
/// its output at the producer, which keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_processes_use_shm_and_a_killed_consumer_is_released() {
    let source = spawn_node(&[
        "--name",
        "test:source",
        "--source",
        "test-pattern:bars,size=640x360,fps=60,format=raw",
    ]);
    let up = format!("{}/bars", source.addr);
    let mut relay = spawn_node(&["--name", "test:relay", "--upstream", &up]);
    let _tcp_only = spawn_node(&["--name", "test:tcp-only", "--no-shm", "--upstream", &up]);

    let via = |peer: &'static str| async move {
        stats(source.addr)
            .await
            .outputs
            .into_iter()
            .find(|o| o.peer.ends_with(peer))
            .map(|o| (o.transport, o.frames_sent))
    };
    wait_until("both edges to carry frames", Duration::from_secs(15), async || {
        matches!(via("test:relay").await, Some((_, n)) if n > 10)
            && matches!(via("test:tcp-only").await, Some((_, n)) if n > 10)
    })
    .await;
    assert_eq!(via("test:relay").await.unwrap().0, TransportMode::Shm);
    assert_eq!(
        via("test:tcp-only").await.unwrap().0,
        TransportMode::Encapsulated,
        "a node with --no-shm offers no shm, so its edge stays on TCP"
    );
    let table = framewire_stats(source.addr);
    let row = table.lines().find(|l| l.contains("test:relay")).expect("relay row");
    assert!(row.contains(" shm "), "stats shows the transport: {row}");

    // The relay serves the frames it got from shared memory.
    let mut c = client(relay.addr, "test:viewer").await;
    let ch = subscribe(&mut c, "bars", SubscribeParams::default()).await;
    let mut frames = 0;
    while frames < 10 {
        match next(&mut c, Duration::from_secs(5))
            .await
            .expect("frames from the relay")
        {
            Message::VideoFrame(f) if f.channel == ch => {
                assert_eq!(f.data.len(), 640 * 360 * 4);
                frames += 1;
            }
            _ => {}
        }
    }

    // SIGKILL the consumer: the producer drops its output and goes on.
    relay.kill();
    wait_until(
        "the killed consumer's output to go",
        Duration::from_secs(10),
        async || via("test:relay").await.is_none(),
    )
    .await;
    let before = via("test:tcp-only").await.unwrap().1;
    wait_until("the source to keep serving", Duration::from_secs(10), async || {
        via("test:tcp-only").await.unwrap().1 > before
    })
    .await;
}

/// SIGKILL of the producer: the consumer's subscribers get *interrupted*
/// (no crash, no read of freed memory), and the edge is reported so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_producer_interrupts_the_shm_edge() {
    let mut source = spawn_node(&[
        "--name",
        "test:source",
        "--source",
        "test-pattern:bars,size=320x240,fps=60,format=raw",
    ]);
    let up = format!("{}/bars", source.addr);
    let relay = spawn_node(&["--name", "test:relay", "--upstream", &up]);
    let mut c = client(relay.addr, "test:viewer").await;
    let ch = subscribe(&mut c, "bars", SubscribeParams::default()).await;
    let mut frames = 0;
    while frames < 10 {
        if let Some(Message::VideoFrame(f)) = next(&mut c, Duration::from_secs(5)).await
            && f.channel == ch
        {
            frames += 1;
        }
    }
    let relay_out = stats(source.addr)
        .await
        .outputs
        .into_iter()
        .find(|o| o.peer.ends_with("test:relay"));
    assert_eq!(relay_out.map(|o| o.transport), Some(TransportMode::Shm));

    source.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut interrupted = false;
    while Instant::now() < deadline && !interrupted {
        if let Some(Message::StreamEvent { channel, event }) = next(&mut c, Duration::from_secs(1)).await {
            interrupted = channel == ch && matches!(event, StreamEvent::Interrupted(_));
        }
    }
    assert!(interrupted, "the viewer is told the stream is interrupted");
    let edge = stats(relay.addr)
        .await
        .inputs
        .into_iter()
        .find(|i| i.stream == "bars")
        .unwrap();
    assert_ne!(edge.state, StreamState::Live);
    // The line is written before the event is sent, but read from the
    // relay's stderr by another thread: wait for it rather than race it.
    assert!(
        relay.wait_log("upstream lost", Duration::from_secs(5)),
        "log:\n{}",
        relay.log()
    );
}

/// The sockets in `dir` (file names, sorted).
fn sockets_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sock"))
        .collect();
    v.sort();
    v
}

fn node_in(dir: &std::path::Path, args: &[&str]) -> NodeProc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_framewire"));
    cmd.arg("node").args(args).args(["--listen", "127.0.0.1:0"]);
    cmd.env("XDG_RUNTIME_DIR", dir);
    spawn_command(cmd, Duration::from_secs(20))
}

/// SIGTERM and SIGINT: a node removes its socket on the way out, also a
/// relay whose edge (over shared memory) lost its upstream first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_by_a_signal_removes_its_socket() {
    for sig in ["TERM", "INT"] {
        let dir = temp_dir(&format!("shm-sock-{sig}"));
        let mut source = node_in(
            &dir,
            &[
                "--name",
                "test:src",
                "--source",
                "test-pattern:bars,size=320x240,fps=30,format=raw",
            ],
        );
        let up = format!("{}/bars", source.addr);
        let mut relay = node_in(&dir, &["--name", "test:relay", "--upstream", &up]);
        wait_until(
            "the relay's edge over shared memory",
            Duration::from_secs(15),
            async || {
                stats(source.addr)
                    .await
                    .outputs
                    .iter()
                    .any(|o| o.transport == TransportMode::Shm && o.frames_sent > 5)
            },
        )
        .await;
        let mut want = vec![
            format!("framewire-{}-test_relay.sock", relay.child.id()),
            format!("framewire-{}-test_src.sock", source.child.id()),
        ];
        want.sort();
        assert_eq!(sockets_in(&dir), want, "each node made its socket");
        source.signal(sig);
        assert_eq!(source.wait_exit(Duration::from_secs(10)), Some(0), "{}", source.log());
        relay.signal(sig);
        assert_eq!(relay.wait_exit(Duration::from_secs(10)), Some(0), "{}", relay.log());
        assert!(sockets_in(&dir).is_empty(), "SIG{sig} left {:?}", sockets_in(&dir));
    }
}

/// At start a node removes the sockets of its own name whose process is
/// gone; a live process's socket, another name's and a plain file stay.
#[test]
fn a_node_removes_the_stale_sockets_of_its_name_at_start() {
    let dir = temp_dir("shm-stale");
    let make = |name: &str| {
        // A real socket file, left behind as a killed node leaves it.
        drop(std::os::unix::net::UnixListener::bind(dir.join(name)).unwrap());
    };
    // Pids past the kernel's limit (pid_max is at most 2^22) belong to no process.
    let dead = ["framewire-4999999-test_clean.sock", "framewire-4999998-test_clean.sock"];
    for d in dead {
        make(d);
    }
    let live = format!("framewire-{}-test_clean.sock", std::process::id());
    make(&live);
    make("framewire-4999997-test_other.sock");
    std::fs::write(dir.join("framewire-4999996-test_clean.sock"), b"not a socket").unwrap();

    let mut node = node_in(&dir, &["--name", "test:clean"]);
    let ours = format!("framewire-{}-test_clean.sock", node.child.id());
    let mut want = vec![
        "framewire-4999996-test_clean.sock".to_owned(),
        "framewire-4999997-test_other.sock".to_owned(),
        live,
        ours,
    ];
    want.sort();
    assert_eq!(sockets_in(&dir), want);
    assert!(
        node.log()
            .contains("removed the shared-memory socket of a node that is gone")
    );
    node.signal("TERM");
    assert_eq!(node.wait_exit(Duration::from_secs(10)), Some(0), "{}", node.log());
}

/// A stream's shared memory serves 16 consumers; a 17th local subscriber
/// is served over TCP instead of being refused, and a relay's edge that
/// asked for shared memory goes live over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_17th_local_subscriber_falls_back_to_tcp() {
    let source = spawn_node(&[
        "--name",
        "test:source",
        "--source",
        "test-pattern:bars,size=160x120,fps=30,format=raw",
    ]);
    let params = SubscribeParams {
        transport: TransportMode::Shm,
        ..SubscribeParams::default()
    };
    // Sixteen shared-memory subscriptions (their offers not taken up: the
    // places count from the subscription).
    let mut held = Vec::new();
    for i in 0..16 {
        let mut c = client(source.addr, &format!("test:shm-{i}")).await;
        let r = c.subscribe_full("bars", params).await.unwrap();
        assert!(r.shm.is_some(), "subscriber {i} got no shared memory");
        held.push(c);
    }
    let mut c = client(source.addr, "test:seventeenth").await;
    let r = c.subscribe_full("bars", params).await.unwrap();
    assert!(r.shm.is_none(), "a 17th shared-memory place was offered");
    let mut frames = 0;
    while frames < 5 {
        match next(&mut c, Duration::from_secs(5)).await.expect("frames over TCP") {
            Message::VideoFrame(f) if f.channel == r.channel => {
                assert_eq!(f.data.len(), 160 * 120 * 4);
                frames += 1;
            }
            _ => {}
        }
    }
    // A relay asking for shared memory (auto, on this host) goes live too.
    let relay = spawn_node(&["--name", "test:relay", "--upstream", &format!("{}/bars", source.addr)]);
    wait_until(
        "the relay's edge to carry frames over TCP",
        Duration::from_secs(15),
        async || {
            stats(source.addr).await.outputs.into_iter().any(|o| {
                o.peer.ends_with("test:relay") && o.transport == TransportMode::Encapsulated && o.frames_sent > 5
            })
        },
    )
    .await;
    assert!(relay.wait_log("over TCP", Duration::from_secs(5)), "{}", relay.log());
    drop(held);
}

/// `--sink ring:STREAM` writes the stream into a ring that `framewire ring
/// read` (a reader with no protocol) follows: the stream's rate, no skips
/// for a reader that keeps up, every frame the raw frame's size; when the
/// node stops the reader sees the ring closed and the file is gone.
#[test]
fn a_ring_sink_is_read_without_the_protocol() {
    let dir = temp_dir("ring-sink");
    let path = dir.join("bars.ring");
    let spec = format!("ring:bars,path={},slots=32", path.display());
    let node = spawn_node(&[
        "--name",
        "test:ring",
        "--source",
        "test-pattern:bars,size=160x120,fps=30,format=raw",
        "--sink",
        &spec,
    ]);
    let ring = eventually(Duration::from_secs(10), || path.exists().then_some(()));
    assert!(ring.is_some(), "no ring at {}: {}", path.display(), node.log());
    let out = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args([
            "ring",
            "read",
            path.to_str().unwrap(),
            "--frames",
            "45",
            "--seconds",
            "10",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("32 slots of up to 76800 bytes"), "{text}");
    let total = text
        .lines()
        .find(|l| l.trim_start().starts_with("total"))
        .expect("a total line");
    let fps: f64 = total.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!((20.0..=40.0).contains(&fps), "{fps} fps from a 30 fps source: {total}");
    assert!(total.contains(" 0 skipped"), "{total}");
    assert!(
        total.contains("76800/76800/76800 bytes") && total.contains("45 frames"),
        "{total}"
    );

    // A reader attached while the node stops sees the ring closed.
    let mut reader = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["ring", "read", path.to_str().unwrap(), "--seconds", "20"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Attached once it says the ring's size (it ends within 20 s anyway).
    let first = first_line(reader.stdout.as_mut().unwrap());
    assert!(first.contains("32 slots"), "{first}");
    node.signal("TERM");
    let out = reader.wait_with_output_timeout(Duration::from_secs(10));
    assert!(out.contains("the writer closed the ring"), "{out}");
    let gone = eventually(Duration::from_secs(5), || (!path.exists()).then_some(()));
    assert!(gone.is_some(), "the ring file outlived the node");
    // The header it is read by in C comes with the command.
    let out = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["ring", "header"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("struct fw_ring_header"));
}

trait WaitOutput {
    fn wait_with_output_timeout(&mut self, t: Duration) -> String;
}

impl WaitOutput for std::process::Child {
    fn wait_with_output_timeout(&mut self, t: Duration) -> String {
        if eventually(t, || self.try_wait().unwrap()).is_none() {
            let _ = self.kill();
            panic!("the ring reader did not end within {t:?}");
        }
        let mut s = String::new();
        std::io::Read::read_to_string(self.stdout.as_mut().unwrap(), &mut s).unwrap();
        s
    }
}

/// The first line `r` gives (read a byte at a time: nothing more is taken).
fn first_line(r: &mut impl std::io::Read) -> String {
    let mut line = Vec::new();
    let mut b = [0u8];
    while r.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}
