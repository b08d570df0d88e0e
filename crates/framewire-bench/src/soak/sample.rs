//! What a soak samples: each process from /proc, each node's statistics,
//! the subscribers' latency of the window; and what it reads at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use framewire_net::{Client, ClientIdentity};
use framewire_proto::control::{Name, Request, Response, Stats};

use super::Deployment;
use super::load::Counters;
use crate::procs;
use crate::report::pct;

/// One process at one sample.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcSample {
    pub rss: u64,
    pub fds: u64,
    pub threads: u64,
    /// Percent of one core over the interval.
    pub cpu_pct: f64,
}

/// One sample of the whole run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    /// Seconds since the start.
    pub t: f64,
    /// By node name.
    pub procs: BTreeMap<&'static str, ProcSample>,
    /// Subscribers' capture-to-arrival latency in the window, ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Frames the latencies were taken from.
    pub frames: usize,
    /// The largest send latency p99 of a node's outputs (its own window), ms.
    pub send_p99_ms: f64,
    /// Drops counted by every node's outputs since the start, by reason.
    pub drops: BTreeMap<String, u64>,
    /// Outputs whose counters did not add up (frames in against sent,
    /// dropped and queued).
    pub unbalanced: Vec<String>,
}

fn count_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) async fn node_stats(addr: &str) -> anyhow::Result<Stats> {
    let mut c = Client::connect(addr, &ClientIdentity::tool("soak:sampler"), Duration::from_secs(5)).await?;
    match c.request(Request::GetStats(Name { name: String::new() })).await? {
        Response::GetStats(s) => Ok(s),
        other => anyhow::bail!("GET_STATS answered {other:?}"),
    }
}

/// Samples every `every` from `start` until `end`; prints a line each time.
pub(crate) async fn run(dep: &Deployment, c: &Counters, start: Instant, end: Instant, every: Duration) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut cpu_before: BTreeMap<u32, (f64, Instant)> = BTreeMap::new();
    for n in &dep.nodes {
        cpu_before.insert(
            n.proc.pid,
            (procs::cpu_seconds(n.proc.pid).unwrap_or(0.0), Instant::now()),
        );
    }
    let mut next = start + every;
    while next <= end {
        tokio::time::sleep_until(next.into()).await;
        next += every;
        let mut s = Sample {
            t: start.elapsed().as_secs_f64(),
            ..Sample::default()
        };
        for n in &dep.nodes {
            let pid = n.proc.pid;
            let cpu = procs::cpu_seconds(pid).unwrap_or(0.0);
            let (before, at) = cpu_before
                .insert(pid, (cpu, Instant::now()))
                .unwrap_or((cpu, Instant::now()));
            let secs = at.elapsed().as_secs_f64().max(1e-3);
            s.procs.insert(
                n.name,
                ProcSample {
                    rss: procs::rss(pid).map_or(0, |r| r.0),
                    fds: count_fds(pid),
                    threads: threads(pid),
                    cpu_pct: (cpu - before).max(0.0) / secs * 100.0,
                },
            );
            match node_stats(&n.addr).await {
                Ok(st) => {
                    for o in &st.outputs {
                        for d in &o.drops {
                            *s.drops.entry(format!("{:?}", d.reason)).or_default() += d.count;
                        }
                        s.send_p99_ms = s.send_p99_ms.max(f64::from(o.latency_p99_us) / 1000.0);
                        let dropped: u64 = o.drops.iter().map(|d| d.count).sum();
                        let accounted = o.frames_sent + dropped + u64::from(o.queue_frames);
                        // One frame may be in flight, outside the queue.
                        if o.frames_in != accounted && o.frames_in != accounted + 1 {
                            s.unbalanced.push(format!(
                                "{} {} to {}: {} in, {} sent, {} dropped, {} queued",
                                n.name, o.stream, o.peer, o.frames_in, o.frames_sent, dropped, o.queue_frames
                            ));
                        }
                    }
                }
                Err(e) => s.unbalanced.push(format!("{}: statistics not read: {e:#}", n.name)),
            }
        }
        let mut lat = std::mem::take(&mut *c.latency_us.lock().unwrap_or_else(|p| p.into_inner()));
        lat.sort_unstable();
        s.frames = lat.len();
        s.p50_ms = pct(&lat, 0.50) as f64 / 1000.0;
        s.p99_ms = pct(&lat, 0.99) as f64 / 1000.0;
        let row = s
            .procs
            .iter()
            .map(|(name, p)| {
                format!(
                    "{} {:.1}M/{}fd/{}thr/{:.0}%",
                    name.trim_start_matches("soak:"),
                    p.rss as f64 / (1 << 20) as f64,
                    p.fds,
                    p.threads,
                    p.cpu_pct
                )
            })
            .collect::<Vec<_>>()
            .join("  ");
        eprintln!(
            "soak: t={:>5.0}s  {row}  latency p50 {:.1} ms p99 {:.1} ms ({} frames)",
            s.t, s.p50_ms, s.p99_ms, s.frames
        );
        out.push(s);
    }
    out
}

/// What is read once the clients stopped.
#[derive(Debug, Default)]
pub(crate) struct Finals {
    /// Archive: segments in the index whose file is missing or of another
    /// size, and files on disk the index does not name.
    pub archive_missing: Vec<String>,
    pub archive_orphans: Vec<String>,
    pub archive_segments: usize,
    /// Lines of the nodes' logs that say a thread panicked.
    pub panics: Vec<String>,
    /// Nodes that are not running any more.
    pub dead: Vec<String>,
    /// Inputs of the nodes that are not live at the end.
    pub not_live: Vec<String>,
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if p.extension().is_some_and(|x| x == "mkv") {
            out.push(p);
        }
    }
}

/// Segments of the index (`archive ls --json`): (path, bytes, state).
fn index_segments(dir: &std::path::Path) -> anyhow::Result<Vec<(String, u64, String)>> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args(["archive", "ls", "--json", "--dir"])
        .arg(dir)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "archive ls: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut segs = Vec::new();
    let mut walk = vec![&v];
    while let Some(x) = walk.pop() {
        match x {
            serde_json::Value::Array(a) => walk.extend(a),
            serde_json::Value::Object(o) => {
                if let (Some(p), Some(b)) = (o.get("path").and_then(|p| p.as_str()), o.get("bytes")) {
                    let state = o.get("state").and_then(|s| s.as_str()).unwrap_or("").to_owned();
                    segs.push((p.to_owned(), b.as_u64().unwrap_or(0), state));
                } else {
                    walk.extend(o.values());
                }
            }
            _ => {}
        }
    }
    Ok(segs)
}

pub(crate) async fn finals(dep: &Deployment, _c: &Counters) -> Finals {
    let mut f = Finals::default();
    for n in &dep.nodes {
        if !n.proc.alive() {
            f.dead.push(n.name.to_owned());
        }
        let log = std::fs::read_to_string(&n.log).unwrap_or_default();
        f.panics.extend(
            log.lines()
                .filter(|l| l.contains("panicked"))
                .map(|l| format!("{}: {l}", n.name)),
        );
        if let Ok(st) = node_stats(&n.addr).await {
            for i in &st.inputs {
                if format!("{:?}", i.state) != "Live" {
                    f.not_live.push(format!("{} {}: {:?}", n.name, i.stream, i.state));
                }
            }
        }
    }
    match index_segments(&dep.archive_dir) {
        Ok(segs) => {
            f.archive_segments = segs.len();
            let mut on_disk = Vec::new();
            files_under(&dep.archive_dir, &mut on_disk);
            for (path, bytes, state) in &segs {
                let p = if std::path::Path::new(path).is_absolute() {
                    std::path::PathBuf::from(path)
                } else {
                    dep.archive_dir.join(path)
                };
                match std::fs::metadata(&p) {
                    // The segment being written grows past what the index
                    // says until it is closed.
                    Ok(m) if m.len() == *bytes || state == "open" || state == "recording" => {}
                    Ok(m) => f.archive_missing.push(format!(
                        "{path}: {} bytes on disk, {bytes} in the index ({state})",
                        m.len()
                    )),
                    // ffmpeg creates the segment it was just given with
                    // its first bytes.
                    Err(_) if state == "open" || state == "recording" => {}
                    Err(_) => f
                        .archive_missing
                        .push(format!("{path}: in the index ({state}), not on disk")),
                }
                on_disk.retain(|d| *d != p && !d.ends_with(path));
            }
            f.archive_orphans = on_disk.iter().map(|p| p.display().to_string()).collect();
        }
        Err(e) => f.archive_missing.push(format!("the index could not be read: {e:#}")),
    }
    f
}
