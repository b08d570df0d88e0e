//! Running real `framewire` processes on loopback for end-to-end tests.
#![allow(dead_code, unreachable_pub)]

pub mod archive;
pub mod delay;
pub mod demo;
pub mod fake;
pub mod media;
pub mod netns;
pub mod tmpfs;
pub mod wait;
pub mod xvfb;

pub use wait::{eventually, eventually_async, eventually_every};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framewire_net::{Client, ClientIdentity};
use framewire_proto::{Command as Cmd, Message, StreamEvent, SubscribeParams, VideoFrame};

/// Runs the `framewire` binary with `args` (no colours, stdin closed)
/// and waits for it.
pub fn run_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("framewire runs")
}

/// A `framewire node` process; killed when dropped.
pub struct NodeProc {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

/// Starts `framewire node ARGS` (with `--listen 127.0.0.1:0` unless ARGS
/// has `--listen`) and waits until it listens.
pub fn spawn_node(args: &[&str]) -> NodeProc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_framewire"));
    cmd.arg("node").args(args);
    if !args.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    spawn_command(cmd, Duration::from_secs(20))
}

/// Starts a prepared command that runs a node (plain, or wrapped in
/// `ip netns exec` and the like), collects its log (colour codes removed),
/// and waits up to `timeout` until it says where it listens.
pub fn spawn_command(mut cmd: Command, timeout: Duration) -> NodeProc {
    cmd.env("RUST_LOG", "info").env("NO_COLOR", "1");
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("framewire runs");
    let stderr = child.stderr.take().expect("piped");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        // A C library writing to stderr at the same time (OpenH264 says
        // hello as it starts) can cut the node's line in two.
        let mut cut = false;
        let mut logged: Option<String> = None;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let line = plain(&line);
            let ours = line.starts_with("framewire: node") || cut;
            cut = line.starts_with("framewire: node") && !line.contains(" listening on ");
            // The log's own line (`node listening name=N addr=A`) says it
            // too, whole: used when the printed line (which comes once the
            // node is ready, web UI included) was cut past repair.
            if line.contains("node listening name=")
                && let Some(a) = line.split(" addr=").nth(1).and_then(|a| a.split_whitespace().next())
            {
                logged = Some(a.to_owned());
            }
            if let Some(rest) = line.split(" listening on ").nth(1).filter(|_| ours) {
                let printed = rest.trim();
                let addr = if printed.parse::<SocketAddr>().is_ok() {
                    Some(printed.to_owned())
                } else {
                    logged.clone()
                };
                if let Some(a) = addr
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(a);
                }
            }
            let mut l = log2.lock().unwrap_or_else(|p| p.into_inner());
            l.push_str(&line);
            l.push('\n');
        }
    });
    let addr = rx.recv_timeout(timeout).unwrap_or_else(|_| {
        panic!(
            "node did not start; log:\n{}",
            log.lock().unwrap_or_else(|p| p.into_inner())
        )
    });
    NodeProc {
        child,
        addr: addr.parse().expect("an address"),
        log,
    }
}

/// The HTTP response (status line, headers, body) of `GET /metrics` on
/// the address `node` logged (`metrics at http://ADDR/metrics`).
pub fn scrape_metrics(node: &NodeProc) -> String {
    use std::io::{Read, Write};
    let addr = eventually(Duration::from_secs(10), || {
        let log = node.log();
        let rest = log.split("metrics at http://").nth(1)?;
        Some(rest.split('/').next().unwrap_or_default().to_owned())
    })
    .unwrap_or_else(|| panic!("no metrics line:\n{}", node.log()));
    let mut s = std::net::TcpStream::connect(&addr).expect("the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// `s` without ANSI escape sequences.
pub fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, c) if c.is_ascii_alphabetic() => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

impl NodeProc {
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        eventually(timeout, || self.log().contains(needle).then_some(())).is_some()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status();
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        eventually(timeout, || self.child.try_wait().ok().flatten())?.code()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free port on loopback (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn client(addr: SocketAddr, name: &str) -> Client {
    Client::connect(&addr.to_string(), &ClientIdentity::tool(name), Duration::from_secs(5))
        .await
        .expect("connects")
}

/// A node's counters (GET_STATS for every stream).
pub async fn stats(addr: SocketAddr) -> framewire_proto::control::Stats {
    let mut c = client(addr, "test:stats").await;
    let req = framewire_proto::Request::GetStats(framewire_proto::control::Name { name: String::new() });
    match c.request(req).await.expect("GET_STATS answered") {
        framewire_proto::Response::GetStats(s) => s,
        other => panic!("GET_STATS answered with {other:?}"),
    }
}

/// A node's status report now (WATCH_STATUS, the first report).
pub async fn status_report(addr: SocketAddr) -> framewire_proto::control::StatusReport {
    use framewire_proto::Request;
    let mut c = client(addr, "test:status").await;
    let req = Request::WatchStatus(framewire_proto::control::WatchStatus { interval_ms: 1000 });
    c.request(req).await.expect("WATCH_STATUS answered");
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), c.next_message())
            .await
            .expect("a report within 5 s")
            .expect("no error")
            .expect("open");
        if let Message::ControlRequest(req) = m
            && req.command == Cmd::StatusReport
            && let Ok(Request::StatusReport(r)) = Request::decode(&req)
        {
            return *r;
        }
    }
}

/// Subscribes, retrying while the stream does not exist yet.
pub async fn subscribe(c: &mut Client, stream: &str, params: SubscribeParams) -> u16 {
    let mut last = None;
    let subscribed = eventually_async(Duration::from_secs(10), async || {
        c.subscribe(stream, params).await.map_err(|e| last = Some(e)).ok()
    })
    .await;
    subscribed.unwrap_or_else(|| panic!("subscribe {stream}: {}", last.expect("tried")))
}

/// What a test subscriber saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub frames: Vec<VideoFrame>,
    pub events: Vec<StreamEvent>,
}

/// The next frame or event (answers STREAM_OPEN), within `timeout`.
pub async fn next(c: &mut Client, timeout: Duration) -> Option<Message> {
    loop {
        let m = tokio::time::timeout(timeout, c.next_message()).await.ok()?.ok()??;
        match m {
            Message::ControlRequest(req) if req.command == Cmd::StreamOpen => c.ack(&req).await.ok()?,
            Message::VideoFrame(_) | Message::StreamEvent { .. } => return Some(m),
            _ => {}
        }
    }
}

/// A file of `n` JPEG images (ten distinct pictures in turn).
pub fn jpeg_file(dir: &std::path::Path, n: u64, width: u32, height: u32) -> std::path::PathBuf {
    use framewire_codec::{EncodeSpec, Registry, testkit};
    let mut enc = Registry::builtin().encoder(&EncodeSpec::mjpeg(80)).unwrap();
    // Ten distinct pictures, repeated: enough to tell frames apart, cheap to make.
    let pictures: Vec<_> = (0..n.min(10))
        .map(|i| enc.encode(&testkit::camera_like(width, height, i)).unwrap())
        .collect();
    let mut all = Vec::new();
    for i in 0..n {
        all.extend_from_slice(&pictures[(i % 10) as usize]);
    }
    let p = dir.join("clip.mjpeg");
    std::fs::write(&p, all).unwrap();
    p
}

/// A fresh directory under the target dir.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A process's resident memory, in MiB (VmRSS).
pub fn rss_mb(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The highest resident memory of `pid` seen while `f` runs, in MiB.
pub async fn peak_rss_during<T>(pid: u32, f: impl std::future::Future<Output = T>) -> (T, f64) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = Arc::new(Mutex::new(rss_mb(pid)));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let now = rss_mb(pid);
                let mut p = peak.lock().unwrap();
                *p = p.max(now);
                drop(p);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let out = f.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let p = *peak.lock().unwrap();
    (out, p)
}

/// What a well-behaved low-latency viewer saw in a window.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    pub frames: usize,
    /// 99th percentile of the time between frames.
    pub p99_gap: Duration,
}

impl Watched {
    /// Whether this run kept up with `base` (an attack-free run of the same
    /// length): at least 95 % of its frames, and a p99 gap within 20 % of
    /// it (or 10 ms, for the scheduler's noise on a busy 2-core machine).
    pub fn kept_up_with(&self, base: &Watched) -> Result<(), String> {
        let frames_ok = self.frames as f64 >= 0.95 * base.frames as f64;
        let slack = base.p99_gap.mul_f64(0.2).max(Duration::from_millis(10));
        let gap_ok = self.p99_gap <= base.p99_gap + slack;
        if frames_ok && gap_ok {
            Ok(())
        } else {
            Err(format!("viewer saw {self:?} under attack, {base:?} without"))
        }
    }
}

/// Watches `stream` on `addr` as a low-latency viewer for `window`.
pub async fn watch(addr: SocketAddr, stream: &str, window: Duration) -> Watched {
    let mut c = client(addr, "test:viewer").await;
    subscribe(&mut c, stream, SubscribeParams::default()).await;
    // The first frame starts the window.
    loop {
        if let Some(Message::VideoFrame(_)) = next(&mut c, Duration::from_secs(5)).await {
            break;
        }
    }
    let end = Instant::now() + window;
    let mut last = Instant::now();
    let mut gaps = Vec::new();
    while Instant::now() < end {
        match next(&mut c, Duration::from_secs(5)).await {
            Some(Message::VideoFrame(_)) => {
                let now = Instant::now();
                gaps.push(now - last);
                last = now;
            }
            Some(_) => {}
            None => break,
        }
    }
    gaps.sort();
    let p99_gap = gaps
        .get(gaps.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(window);
    Watched {
        frames: gaps.len(),
        p99_gap,
    }
}

/// Raw protocol bytes for tests that play a hostile or broken peer.
pub mod raw {
    use framewire_proto::control::Hello;
    use framewire_proto::{AuthScheme, Features, FunctionFlags, Message, PROTOCOL_VERSION, Request};

    /// A HELLO from `name`, request id 1.
    pub fn hello(name: &str) -> Vec<u8> {
        let req = Request::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            name: name.into(),
            site_id: 0,
            function_flags: FunctionFlags::SINK,
            features: Features(0),
            auth_scheme: AuthScheme::None,
            nonce: bytes::Bytes::new(),
        });
        Message::ControlRequest(req.to_message(0, 1).unwrap()).to_vec().unwrap()
    }

    /// A request as bytes, on `channel` with `id`.
    pub fn request(req: Request, channel: u16, id: u16) -> Vec<u8> {
        Message::ControlRequest(req.to_message(channel, id).unwrap())
            .to_vec()
            .unwrap()
    }

    /// A frame header claiming `len` payload bytes (nothing follows).
    pub fn frame_header(len: u32) -> [u8; 8] {
        let mut h = [0u8; 8];
        h[0..2].copy_from_slice(&1u16.to_le_bytes());
        h[2..4].copy_from_slice(&1u16.to_le_bytes());
        h[4..8].copy_from_slice(&len.to_le_bytes());
        h
    }
}

/// Writes a node configuration file and returns its path.
pub fn config_file(dir: &std::path::Path, toml: &str) -> String {
    let p = dir.join("node.toml");
    std::fs::write(&p, toml).unwrap();
    p.to_str().unwrap().to_owned()
}

/// A multicast group and port no other test uses (announcements go
/// through 127.0.0.1 only, so tests never hear each other).
pub fn private_group() -> (std::net::Ipv4Addr, u16) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    let group = std::net::Ipv4Addr::new(239, 255, (pid % 250) as u8 + 1, (n % 250) as u8 + 1);
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (group, port)
}

/// `--discovery-group G --discovery-port P`.
pub fn group_args(group: std::net::Ipv4Addr, port: u16) -> Vec<String> {
    vec![
        "--discovery-group".into(),
        group.to_string(),
        "--discovery-port".into(),
        port.to_string(),
    ]
}
