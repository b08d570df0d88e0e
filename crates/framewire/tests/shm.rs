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
    let end = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        via("test:tcp-only").await.unwrap().1 > before,
        "the source keeps serving"
    );
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
    assert!(relay.log().contains("upstream lost"), "log:\n{}", relay.log());
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
