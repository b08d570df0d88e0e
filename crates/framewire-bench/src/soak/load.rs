//! The clients of a soak: subscribers, web clients and RTSP players, each
//! joining, doing a little, and leaving, until the end of the run.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use framewire_net::{Client, ClientIdentity};
use framewire_proto::control::{Stats, SubscribeParams};
use framewire_proto::{DeliveryMode, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Deployment;
use super::sample::node_stats;
use crate::now_ns;

/// Web clients and players start this long after the nodes.
const FIRST_PICTURES: Duration = Duration::from_secs(3);

/// A small deterministic generator (xorshift64*): a run's choices come
/// from its seed.
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// In `lo..hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
    pub(crate) fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

/// One subscriber's visit, as judged at its end.
#[derive(Debug, Clone)]
pub(crate) struct Visit {
    pub node: &'static str,
    pub stream: &'static str,
    pub mode: DeliveryMode,
    pub frames: u64,
    /// Frames missing between the frames it received.
    pub missed: u64,
    /// Frames missing after a frame of the relay's cache, not judged.
    pub unjudged: u64,
    /// Drops its output counted (with the relay's upstream edge's drops
    /// in the same time, for a subscriber of the relay).
    pub counted: u64,
    /// For the report when it does not add up: its name, the gaps it saw
    /// (after which sequence, how many), and the drops by reason.
    pub detail: String,
}

/// What the clients did, shared with the sampler.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// End-to-end latencies (capture to arrival) of the current window, µs.
    pub latency_us: Mutex<Vec<u64>>,
    pub visits: Mutex<Vec<Visit>>,
    /// Subscriber visits that failed (connect, subscribe, stats), with why.
    pub sub_errors: Mutex<Vec<String>>,
    pub web_ok: AtomicU64,
    pub web_failed: Mutex<Vec<String>>,
    pub rtsp_ok: AtomicU64,
    pub rtsp_failed: Mutex<Vec<String>>,
    /// Frames out of order or repeated at a subscriber.
    pub disorder: AtomicU64,
}

fn push<T>(m: &Mutex<Vec<T>>, v: T) {
    m.lock().unwrap_or_else(|p| p.into_inner()).push(v);
}

/// Drops counted by the output of `stream` whose peer is `peer`.
fn drops_of(s: &Stats, stream: &str, peer: &str) -> Option<u64> {
    s.outputs
        .iter()
        .find(|o| o.stream == stream && o.peer.ends_with(peer))
        .map(|o| o.drops.iter().map(|d| d.count).sum())
}

/// A subscriber that joins a node's stream, reads for a few seconds and
/// leaves, again and again until `end`.
pub(crate) async fn subscriber(dep: Arc<Deployment>, c: Arc<Counters>, slot: usize, seed: u64, end: Instant) {
    let mut rng = Rng::new(seed);
    let mut n = 0u64;
    while Instant::now() + Duration::from_secs(3) < end {
        n += 1;
        let node = if rng.range(0, 2) == 0 { "soak:cam" } else { "soak:relay" };
        let stream = if rng.range(0, 2) == 0 { "bars" } else { "h264" };
        let mode = if rng.range(0, 2) == 0 {
            DeliveryMode::LowLatency
        } else {
            DeliveryMode::Completeness
        };
        let stay = rng
            .millis(2000, 12_000)
            .min(end.saturating_duration_since(Instant::now()));
        let name = format!("soak:sub{slot}-{n}");
        match visit(&dep, &c, node, stream, mode, &name, stay, rng.range(2, 65) as u32).await {
            Ok(v) => push(&c.visits, v),
            Err(e) => push(&c.sub_errors, format!("{name} on {node}/{stream}: {e:#}")),
        }
        tokio::time::sleep(rng.millis(50, 1000)).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn visit(
    dep: &Deployment,
    c: &Counters,
    node: &'static str,
    stream: &'static str,
    mode: DeliveryMode,
    name: &str,
    stay: Duration,
    max_frames: u32,
) -> anyhow::Result<Visit> {
    let addr = dep.addr(node);
    // For a subscriber of the relay, the relay's own edge from the camera
    // may drop frames too: counted by the camera node.
    let upstream = |s: &Stats| drops_of(s, stream, "soak:relay").unwrap_or(0);
    let edge_before = if node == "soak:relay" {
        upstream(&node_stats(dep.addr("soak:cam")).await?)
    } else {
        0
    };
    let mut client = Client::connect(addr, &ClientIdentity::tool(name), Duration::from_secs(5)).await?;
    let params = SubscribeParams {
        mode,
        max_frames,
        ..SubscribeParams::default()
    };
    client.subscribe(stream, params).await?;
    // Frames captured before it joined come from the group-of-pictures
    // cache by design: their age is not the path's latency.
    let joined_ns = now_ns();
    let until = Instant::now() + stay;
    let (mut frames, mut missed, mut last) = (0u64, 0u64, None::<u64>);
    let (mut gaps, mut first) = (Vec::new(), None::<u64>);
    // Whether the last frame came from the relay's group-of-pictures cache
    // (captured before this visit): the camera may have counted the frames
    // after it as drops before the visit began, out of the visit's sight.
    let (mut last_cached, mut unjudged, mut last_ts) = (false, 0u64, 0u64);
    let mut lat = Vec::new();
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        let msg = match tokio::time::timeout(left, client.next_message()).await {
            Err(_) => break,
            Ok(m) => m?,
        };
        let Some(Message::VideoFrame(f)) = msg else {
            if msg.is_none() {
                anyhow::bail!("the node closed the connection");
            }
            continue;
        };
        frames += 1;
        if f.timestamp_ns >= joined_ns {
            lat.push(now_ns().saturating_sub(f.timestamp_ns) / 1000);
        }
        match last {
            Some(l) if f.sequence <= l => {
                c.disorder.fetch_add(1, Ordering::Relaxed);
            }
            // Of a gap after a cached frame, the frames captured before the
            // visit began (by the gap's own pace) are not judged.
            Some(l) if last_cached && node == "soak:relay" && f.sequence > l + 1 => {
                let gap = f.sequence - l - 1;
                let pace = f.timestamp_ns.saturating_sub(last_ts) / (gap + 1);
                let before = joined_ns.saturating_sub(last_ts).div_ceil(pace.max(1)).min(gap);
                unjudged += before;
                if gap > before {
                    gaps.push(format!("after {l}: {} ({before} before the visit)", gap - before));
                }
                missed += gap - before;
            }
            Some(l) => {
                if f.sequence > l + 1 {
                    gaps.push(format!(
                        "after {l}: {} (key {})",
                        f.sequence - l - 1,
                        f.flags.is_keyframe()
                    ));
                }
                missed += f.sequence - l - 1;
            }
            None => first = Some(f.sequence),
        }
        last_cached = f.timestamp_ns < joined_ns;
        last_ts = f.timestamp_ns;
        last = Some(f.sequence.max(last.unwrap_or(0)));
    }
    // Every gap between frames received so far was dropped before this
    // moment: the counters asked for now include it.
    let s = node_stats(addr).await?;
    let own =
        drops_of(&s, stream, name).ok_or_else(|| anyhow::anyhow!("its output is not in the node's statistics"))?;
    let reasons: Vec<String> = s
        .outputs
        .iter()
        .filter(|o| o.stream == stream && o.peer.ends_with(name))
        .flat_map(|o| {
            o.drops
                .iter()
                .filter(|d| d.count > 0)
                .map(|d| format!("{:?} {}", d.reason, d.count))
        })
        .collect();
    let edge = if node == "soak:relay" {
        upstream(&node_stats(dep.addr("soak:cam")).await?).saturating_sub(edge_before)
    } else {
        0
    };
    c.latency_us.lock().unwrap_or_else(|p| p.into_inner()).extend(lat);
    Ok(Visit {
        node,
        stream,
        mode,
        frames,
        missed,
        unjudged,
        counted: own + edge,
        detail: format!(
            "{name}: first {first:?}, last {last:?}; gaps {}; own drops {}; upstream edge's {edge}",
            gaps.join(", "),
            reasons.join(", ")
        ),
    })
}

/// One HTTP/1.1 request on its own connection; the status, and the bytes
/// read (at most for `read_for`, for streams).
async fn http(web: &str, path: &str, ws: bool, read_for: Duration) -> anyhow::Result<(u16, usize)> {
    let mut s = tokio::net::TcpStream::connect(web).await?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {web}\r\n");
    if ws {
        req += &format!(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c29hay1zb2FrLXNvYWstIQ==\r\n\
             Sec-WebSocket-Version: 13\r\nOrigin: http://{web}\r\n\r\n"
        );
    } else {
        req += "Connection: close\r\n\r\n";
    }
    s.write_all(req.as_bytes()).await?;
    let mut buf = vec![0u8; 64 << 10];
    let mut head = Vec::new();
    let mut total = 0;
    let until = Instant::now() + read_for;
    let streaming = !read_for.is_zero();
    loop {
        let wait = if streaming {
            match until.checked_duration_since(Instant::now()) {
                Some(left) => left,
                None => break,
            }
        } else {
            Duration::from_secs(10)
        };
        let n = match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Err(_) if streaming => break,
            Err(_) => anyhow::bail!("{path}: no whole answer within 10 s"),
            Ok(r) => r?,
        };
        if n == 0 {
            break;
        }
        if head.len() < 64 {
            head.extend_from_slice(&buf[..n.min(64)]);
        }
        total += n;
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{path}: not an HTTP answer: {line:?}"))?;
    Ok((status, total))
}

/// A web client: the graph, alerts, thumbnails, a while of an MJPEG
/// preview or of the state WebSocket, one after another until `end`.
pub(crate) async fn web_client(dep: Arc<Deployment>, c: Arc<Counters>, seed: u64, end: Instant) {
    let mut rng = Rng::new(seed);
    // The streams have pictures for thumbnails by then.
    tokio::time::sleep(FIRST_PICTURES).await;
    while Instant::now() + Duration::from_secs(5) < end {
        let stream = if rng.range(0, 2) == 0 { "bars" } else { "h264" };
        let node = if rng.range(0, 2) == 0 { "soak:cam" } else { "soak:relay" };
        let (path, ws, read_for, want) = match rng.range(0, 6) {
            0 => ("/api/graph".to_owned(), false, Duration::ZERO, 200),
            1 => ("/api/alerts".to_owned(), false, Duration::ZERO, 200),
            2 => (format!("/thumb/{node}/{stream}.jpg"), false, Duration::ZERO, 200),
            3 => (format!("/snapshot/{node}/{stream}.jpg"), false, Duration::ZERO, 200),
            4 => (format!("/stream/{node}/bars.mjpeg"), false, rng.millis(1000, 4000), 200),
            _ => ("/ws/state".to_owned(), true, rng.millis(1000, 4000), 101),
        };
        match http(&dep.web, &path, ws, read_for).await {
            Ok((s, _)) if s == want => {
                c.web_ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok((s, _)) => push(&c.web_failed, format!("{path}: {s}")),
            Err(e) => push(&c.web_failed, format!("{e:#}")),
        }
        tokio::time::sleep(rng.millis(100, 800)).await;
    }
}

/// An RTSP player: ffmpeg plays the camera's H.264 for a few seconds over
/// TCP or UDP, again and again until `end`.
pub(crate) async fn rtsp_client(dep: Arc<Deployment>, c: Arc<Counters>, seed: u64, end: Instant) {
    let mut rng = Rng::new(seed);
    tokio::time::sleep(FIRST_PICTURES).await;
    while Instant::now() + Duration::from_secs(12) < end {
        let transport = if rng.range(0, 2) == 0 { "tcp" } else { "udp" };
        let secs = rng.range(2, 8);
        let url = format!("rtsp://{}/h264", dep.rtsp);
        let mut cmd = tokio::process::Command::new("ffmpeg");
        cmd.args(["-nostdin", "-v", "error", "-rtsp_transport", transport, "-i", &url])
            .args(["-t", &secs.to_string(), "-f", "null", "-"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let r = match cmd.spawn() {
            Ok(child) => tokio::time::timeout(Duration::from_secs(secs + 20), child.wait_with_output()).await,
            Err(e) => {
                push(&c.rtsp_failed, format!("cannot start ffmpeg: {e}"));
                return;
            }
        };
        match r {
            Ok(Ok(o)) if o.status.success() => {
                c.rtsp_ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(o)) => push(
                &c.rtsp_failed,
                format!(
                    "ffmpeg over {transport}: {}: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            ),
            Ok(Err(e)) => push(&c.rtsp_failed, format!("ffmpeg over {transport}: {e}")),
            Err(_) => push(
                &c.rtsp_failed,
                format!("ffmpeg over {transport}: no end within {secs} s + 20 s"),
            ),
        }
        tokio::time::sleep(rng.millis(200, 1500)).await;
    }
}
