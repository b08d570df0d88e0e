//! One controller, many nodes, edges and web clients. A fifth of the nodes
//! are cameras (a 64x36 MJPEG test pattern at 1 fps); the controller
//! watches every node (`--controller-node`) and is given a wanted graph in
//! which the other nodes pull the cameras' streams, as many edges as asked
//! (no cycles). Web clients hold the state WebSocket; every second this
//! process adds a wanted edge and removes it again. Measured: how long the
//! controller takes to see every node and to make every edge live; push
//! latency (a graph message's `updated_ms` to its arrival at each client,
//! and an edge added to its appearance at each client); the controller's
//! CPU and memory. Then the web clients are doubled until the web server
//! refuses one (it answers 503 with a reason) or push latency passes 1 s.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use framewire_net::now_ns;
use tokio::task::JoinSet;

use super::http::{request, request_with, websocket};
use super::{Args, Found, Node, Usage, fds_threads, mib, quantile, start_node};
use crate::procs;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The current graph's nodes online and edges live.
async fn graph_counts(web: &str) -> anyhow::Result<(usize, usize)> {
    let (status, body) = request(web, "GET", "/api/graph", None).await?;
    anyhow::ensure!(status == 200, "/api/graph answered {status}: {body}");
    let g: serde_json::Value = serde_json::from_str(&body).context("/api/graph is not JSON")?;
    let count = |key: &str, f: &dyn Fn(&serde_json::Value) -> bool| {
        g[key].as_array().map_or(0, |a| a.iter().filter(|v| f(v)).count())
    };
    Ok((
        count("nodes", &|n| n["online"].as_bool() == Some(true)),
        count("edges", &|e| e["state"].as_str() == Some("live")),
    ))
}

/// The CSRF token state-changing requests carry (open mode: the server's).
async fn csrf(web: &str) -> anyhow::Result<String> {
    let (status, body) = request(web, "GET", "/api/session", None).await?;
    anyhow::ensure!(status == 200, "/api/session answered {status}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).context("/api/session is not JSON")?;
    Ok(v["csrf"].as_str().unwrap_or_default().to_owned())
}

/// Waits until `f(nodes online, edges live)`; the time it took.
async fn until(
    web: &str,
    within: Duration,
    f: impl Fn(usize, usize) -> bool,
) -> anyhow::Result<Result<Duration, (usize, usize)>> {
    let t = Instant::now();
    let mut last = (0, 0);
    while t.elapsed() < within {
        last = graph_counts(web).await?;
        if f(last.0, last.1) {
            return Ok(Ok(t.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(Err(last))
}

/// Edges added by the prober and when, for the clients to look for.
type Probes = Arc<Mutex<Vec<(String, u64)>>>;

/// What the clients of one round saw.
#[derive(Debug, Default)]
struct Seen {
    /// `updated_ms` to arrival, per graph message, ms.
    push_ms: Vec<u64>,
    /// A probe edge added to its arrival, ms.
    change_ms: Vec<u64>,
    /// Graph messages received.
    graphs: u64,
    bytes: u64,
    refused: Vec<String>,
    failed: Vec<String>,
    /// The controller's descriptors and threads halfway through.
    fds_threads: (u64, u64),
}

/// A loopback source address for client `i`: 50 per address (the web
/// server takes at most 128 connections from one).
fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1 + (i / 50 % 250) as u8))
}

/// `"updated_ms":N` of a graph message.
fn updated_ms(text: &str) -> Option<u64> {
    let at = text.find("\"updated_ms\":")? + "\"updated_ms\":".len();
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

async fn client(web: String, i: usize, end: Instant, probes: Probes, seen: Arc<Mutex<Seen>>) {
    let mut ws = match websocket(&web, "/ws/state", Some(source(i))).await {
        Ok(ws) => ws,
        Err(e) => {
            lock(&seen).refused.push(format!("{e:#}"));
            return;
        }
    };
    let mut found = HashSet::new();
    let (mut push, mut change, mut graphs, mut bytes) = (Vec::new(), Vec::new(), 0, 0);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let msg = match tokio::time::timeout(left, ws.next()).await {
            Err(_) => break,
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => {
                lock(&seen).failed.push("the server closed the WebSocket".to_owned());
                break;
            }
            Ok(Err(e)) => {
                lock(&seen).failed.push(format!("{e:#}"));
                break;
            }
        };
        let now_ms = now_ns() / 1_000_000;
        bytes += msg.len() as u64;
        let text = String::from_utf8_lossy(&msg);
        // `{"graph":{…},"type":"graph"}` (keys in order) or the other way.
        let graph = text.starts_with("{\"type\":\"graph\"") || text.ends_with("\"type\":\"graph\"}");
        if !graph {
            continue;
        }
        graphs += 1;
        if let Some(u) = updated_ms(&text) {
            push.push(now_ms.saturating_sub(u));
        }
        for (id, t0) in lock(&probes).iter() {
            if !found.contains(id) && text.contains(&format!("\"id\":\"{id}\"")) {
                found.insert(id.clone());
                change.push(now_ms.saturating_sub(t0 / 1_000_000));
            }
        }
    }
    let mut s = lock(&seen);
    s.push_ms.extend(push);
    s.change_ms.extend(change);
    s.graphs += graphs;
    s.bytes += bytes;
}

/// Every second until `end`: a wanted edge added, and removed half a
/// second later.
async fn prober(web: String, from: String, to: String, end: Instant, probes: Probes) -> Vec<String> {
    let mut errors = Vec::new();
    let token = match csrf(&web).await {
        Ok(t) => t,
        Err(e) => return vec![format!("{e:#}")],
    };
    let h = [("x-csrf-token", token.as_str())];
    let mut k = 0;
    while Instant::now() + Duration::from_secs(1) < end {
        k += 1;
        let local = format!("probe{k}");
        let body = serde_json::json!({"from": from, "stream": "c", "to": to, "local_name": local}).to_string();
        let t0 = now_ns();
        match request_with(&web, "POST", "/api/edges", Some(&body), &h).await {
            Ok((201, _)) => lock(&probes).push((format!("{to}/{local}"), t0)),
            Ok((s, b)) => errors.push(format!("POST /api/edges: {s} {b}")),
            Err(e) => errors.push(format!("POST /api/edges: {e:#}")),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let path = format!("/api/edges/{to}/{local}");
        if let Err(e) = request_with(&web, "DELETE", &path, None, &h).await {
            errors.push(format!("DELETE {path}: {e:#}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    errors
}

/// One round of `n` web clients for `hold`, with the prober when asked.
async fn round(web: &str, pid: u32, n: usize, hold: Duration, probe: Option<(&str, &str)>) -> (Seen, Vec<String>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let probes: Probes = Arc::default();
    // Clients connect over the first second; the window is after it.
    let end = Instant::now() + Duration::from_secs(1) + hold;
    let mut set = JoinSet::new();
    for i in 0..n {
        set.spawn(client(web.to_owned(), i, end, probes.clone(), seen.clone()));
    }
    // The controller's descriptors and threads halfway, with every client on.
    let sampler = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1) + hold / 2).await;
        fds_threads(pid)
    });
    let errors = match probe {
        Some((from, to)) => prober(web.to_owned(), from.to_owned(), to.to_owned(), end, probes.clone()).await,
        None => Vec::new(),
    };
    while set.join_next().await.is_some() {}
    let mut s = std::mem::take(&mut *lock(&seen));
    s.fds_threads = sampler.await.unwrap_or_default();
    (s, errors)
}

fn start_nodes(a: &Args, out: &Path) -> anyhow::Result<(Vec<Node>, Vec<Node>)> {
    let cams = (a.nodes / 5).max(1);
    let mut cam = Vec::new();
    let mut other = Vec::new();
    for i in 0..cams {
        let src = "test-pattern:c,size=64x36,fps=1,format=mjpeg".to_owned();
        cam.push(start_node(
            out,
            &format!("scale:cam{i}"),
            &["--source".to_owned(), src],
        )?);
    }
    for i in 0..a.nodes.saturating_sub(cams).max(1) {
        other.push(start_node(out, &format!("scale:n{i}"), &[])?);
    }
    Ok((cam, other))
}

pub(crate) async fn run(a: &Args, out: &Path) -> anyhow::Result<Found> {
    let mut f = Found::default();
    let t = Instant::now();
    let (cams, others) = start_nodes(a, out)?;
    let all = cams.len() + others.len();
    f.row(
        "nodes started",
        format!("{all} ({} cameras) in {:.1} s", cams.len(), t.elapsed().as_secs_f64()),
    );
    let web = format!("127.0.0.1:{}", procs::free_port()?);
    let mut args = vec![
        "--controller".to_owned(),
        "--web".to_owned(),
        web.clone(),
        "--state-dir".to_owned(),
        out.join("state").display().to_string(),
    ];
    for n in cams.iter().chain(&others) {
        args.extend(["--controller-node".to_owned(), n.addr.clone()]);
    }
    let ctl = start_node(out, "scale:ctl", &args)?;
    let web_port = web.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
    procs::wait_listening(web_port, Duration::from_secs(20), &ctl.proc)?;
    let seen_all = until(&web, Duration::from_secs(120), |n, _| n > all).await?;
    f.row(
        format!("controller sees all {all} nodes online"),
        match seen_all {
            Ok(d) => format!("after {:.2} s", d.as_secs_f64()),
            Err((n, _)) => format!("not within 120 s ({n} online)"),
        },
    );
    f.check(seen_all.is_ok(), || "the controller did not see every node".to_owned());
    // The wanted graph: edge e goes to other e % O, pulling camera
    // (3 * (e % O) + e / O) % C as `cK`.
    let (c, o) = (cams.len(), others.len());
    let edges: Vec<serde_json::Value> = (0..a.edges)
        .map(|e| {
            let (to, k) = (e % o, e / o);
            serde_json::json!({
                "from": cams[(3 * to + k) % c].name,
                "stream": "c",
                "to": others[to].name,
                "local_name": format!("c{k}"),
            })
        })
        .collect();
    let t = Instant::now();
    let token = csrf(&web).await?;
    let (status, body) = request_with(
        &web,
        "PUT",
        "/api/wanted",
        Some(&serde_json::json!({ "edge": edges }).to_string()),
        &[("x-csrf-token", &token)],
    )
    .await?;
    f.check(status == 200, || format!("PUT /api/wanted answered {status}: {body}"));
    let live = until(&web, Duration::from_secs(180), |_, e| e >= a.edges).await?;
    f.row(
        format!("{} wanted edges applied → all live", a.edges),
        match live {
            Ok(_) => format!("after {:.2} s", t.elapsed().as_secs_f64()),
            Err((_, e)) => format!("not within 180 s ({e} live)"),
        },
    );
    f.check(live.is_ok(), || "not every wanted edge became live".to_owned());
    // The measured round, then more web clients until it breaks.
    let mut n = a.web_clients;
    for step in 0..=a.web_steps {
        let u0 = Usage::of(ctl.proc.pid);
        let probe = (step == 0).then(|| (cams[0].name.as_str(), others[o - 1].name.as_str()));
        let (mut s, errors) = round(&web, ctl.proc.pid, n, a.hold, probe).await;
        let u1 = Usage::of(ctl.proc.pid);
        let (fds, threads) = s.fds_threads;
        let secs = a.hold.as_secs_f64() + 1.0;
        f.row(
            format!("{n} web clients: controller"),
            format!(
                "CPU {:.1} % of a core, RSS {}, {fds} descriptors, {threads} threads",
                u0.cpu_percent(&u1),
                mib(u1.rss)
            ),
        );
        let (p50, p99) = (quantile(&mut s.push_ms, 0.5), quantile(&mut s.push_ms, 0.99));
        f.row(
            format!("{n} web clients: pushed"),
            format!(
                "{:.1} graph messages/s per client, {:.1} MB/s in all; updated_ms to client ({} messages) p50 {p50} ms, p99 {p99} ms",
                s.graphs as f64 / secs / n.max(1) as f64,
                s.bytes as f64 / secs / 1e6,
                s.push_ms.len()
            ),
        );
        if step == 0 {
            let (c50, c99) = (quantile(&mut s.change_ms, 0.5), quantile(&mut s.change_ms, 0.99));
            f.row(
                "an edge added (POST /api/edges) to every client seeing it",
                format!("{} sightings: p50 {c50} ms, p99 {c99} ms", s.change_ms.len()),
            );
            f.check(!s.change_ms.is_empty(), || "no client saw an added edge".to_owned());
            f.check(!s.push_ms.is_empty(), || "no client got a graph message".to_owned());
            // Reports are published at most every 200 ms, commands (the
            // prober's, twice a second) at once: about 7 a second at most.
            let rate = s.graphs as f64 / secs / n.max(1) as f64;
            f.check(rate <= 8.0, || format!("{rate:.1} graph messages a second per client"));
            f.check(errors.is_empty(), || {
                format!("the prober failed: {}", errors.join("; "))
            });
            f.check(s.refused.is_empty() && s.failed.is_empty(), || {
                format!(
                    "{} web clients refused, {} failed: {}",
                    s.refused.len(),
                    s.failed.len(),
                    s.refused.iter().chain(&s.failed).next().cloned().unwrap_or_default()
                )
            });
        }
        if let Some(why) = s.refused.first() {
            f.limit = format!(
                "{} of {n} web clients taken; the others refused: {why}",
                n - s.refused.len()
            );
            break;
        }
        if p99 > 1000 || !s.failed.is_empty() {
            f.limit = format!(
                "{n} web clients: push p99 {p99} ms, {} failed{}",
                s.failed.len(),
                s.failed.first().map_or(String::new(), |e| format!(" ({e})"))
            );
            break;
        }
        if step == a.web_steps {
            f.limit = format!("none found up to {n} web clients");
        }
        n *= 2;
    }
    f.check(ctl.proc.alive(), || "the controller died".to_owned());
    let dead = cams.iter().chain(&others).filter(|n| !n.proc.alive()).count();
    f.check(dead == 0, || format!("{dead} nodes died"));
    Ok(f)
}
