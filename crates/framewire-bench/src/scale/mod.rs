//! `framewire bench scale`: how far one node and one controller go on this
//! machine, and how they refuse what is past that.
//!
//! Four parts, each on real processes of this binary, on loopback only:
//!
//! - `idle`: thousands of connections that said HELLO and then nothing,
//!   held open to one node: its memory per connection, its CPU while they
//!   wait, how fast a new client is still served, and past its
//!   `max_connections` the BUSY answer a new one gets.
//! - `fanout`: one low-rate stream to hundreds of subscribers: CPU,
//!   frames delivered, latency, every missed frame counted; then doubled
//!   until it breaks.
//! - `discovery`: a discovery table of a thousand peers announcing once a
//!   second (from many loopback addresses): CPU and memory, and past the
//!   table's size the refusals counted.
//! - `controller`: one controller watching hundreds of nodes and wiring
//!   hundreds of edges, with web clients on the state WebSocket: push
//!   latency, controller CPU and memory; then more web clients until it
//!   refuses them.
//!
//! docs/reliability.md has the method and the figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use framewire_net::{Client, ClientIdentity};
use framewire_proto::control::{Name, Stats};
use framewire_proto::{Request, Response};

mod controller;
mod discovery;
mod fanout;
mod http;
mod idle;

use crate::procs::{self, Capture, KillGuard, Proc};
use crate::soak::parse_duration;

/// The parts of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Idle connections to one node.
    Idle,
    /// One stream to many subscribers.
    Fanout,
    /// A large discovery table.
    Discovery,
    /// One controller, many nodes, edges and web clients.
    Controller,
}

/// Measure how far one node and one controller go on this machine: idle
/// connections to a node, one stream fanned out to many subscribers, a
/// large discovery table, and a controller with many nodes, edges and web
/// clients. Each part then goes past its size to find where it stops, and
/// checks that it stops by refusing with a reason, not by collapsing.
/// Writes report.md and the nodes' logs to --out; exits non-zero when a
/// check fails.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire bench scale                       every part at the sizes of docs/reliability.md\n  \
framewire bench scale --parts controller --nodes 50 --edges 200\n  \
framewire bench scale --idle 200 --fanout 50 --peers 100 --nodes 12 --edges 24 --web-clients 5 --hold 3s\n                                            the variant CI runs")]
pub struct Args {
    /// Parts to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "idle,fanout,discovery,controller"
    )]
    parts: Vec<Part>,
    /// Idle connections held to one node.
    #[arg(long, default_value_t = 2000)]
    idle: usize,
    /// The node's `limits.max_connections` in the idle part [default: the
    /// node's own default].
    #[arg(long)]
    idle_cap: Option<usize>,
    /// Subscribers of one stream in the fan-out part.
    #[arg(long, default_value_t = 500)]
    fanout: usize,
    /// Frames per second of the fanned-out stream (320x180 MJPEG).
    #[arg(long, default_value_t = 5.0)]
    fanout_fps: f64,
    /// Times the fan-out is doubled past --fanout to find where it breaks.
    #[arg(long, default_value_t = 3)]
    fanout_steps: usize,
    /// The node's `limits.max_outputs` in the fan-out part [default: the
    /// node's own default, 1024]; raise it to find where delivery breaks
    /// rather than where the node refuses.
    #[arg(long)]
    fanout_cap: Option<usize>,
    /// Peers announced to one node's discovery.
    #[arg(long, default_value_t = 1000)]
    peers: usize,
    /// Nodes under the controller (a fifth of them cameras).
    #[arg(long, default_value_t = 200)]
    nodes: usize,
    /// Edges the controller wires among them.
    #[arg(long, default_value_t = 800)]
    edges: usize,
    /// Web clients on the state WebSocket.
    #[arg(long, default_value_t = 50)]
    web_clients: usize,
    /// Times the web clients are doubled past --web-clients to find where
    /// the web server stops taking them.
    #[arg(long, default_value_t = 5)]
    web_steps: usize,
    /// How long each measurement holds: 10s, 1m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    hold: Duration,
    /// Where report.md and the nodes' logs go [default: ./scale-UNIXTIME].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One figure of the report.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub what: String,
    pub figure: String,
}

/// What a part found: its figures, the limit, and the checks that failed.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub rows: Vec<Row>,
    pub limit: String,
    pub failures: Vec<String>,
}

impl Found {
    pub(crate) fn row(&mut self, what: impl Into<String>, figure: impl Into<String>) {
        let (what, figure) = (what.into(), figure.into());
        println!("  {what}: {figure}");
        self.rows.push(Row { what, figure });
    }

    pub(crate) fn check(&mut self, ok: bool, failure: impl FnOnce() -> String) {
        if !ok {
            let f = failure();
            println!("  CHECK FAILED: {f}");
            self.failures.push(f);
        }
    }
}

/// A node of the run.
#[derive(Debug)]
pub(crate) struct Node {
    pub name: String,
    pub addr: String,
    pub proc: Proc,
}

/// Starts a node called `name` on a free port with `args`, its log in
/// `out/logs`; returns once it listens.
pub(crate) fn start_node(out: &Path, name: &str, args: &[String]) -> anyhow::Result<Node> {
    let port = procs::free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let exe = std::env::current_exe().context("cannot find this program")?;
    let log = out.join("logs").join(format!("{}.log", name.replace(':', "-")));
    let mut cmd = Command::new(exe);
    cmd.args(["--log", "info", "node", "--name", name, "--listen", &addr]);
    if !args.iter().any(|a| a == "--discovery") {
        cmd.args(["--discovery", "off"]);
    }
    cmd.args(args);
    let proc = procs::spawn(name, &mut cmd, Capture::Nothing, Some(&log))?;
    procs::wait_listening(port, Duration::from_secs(30), &proc)?;
    Ok(Node {
        name: name.to_owned(),
        addr,
        proc,
    })
}

/// A process's CPU seconds and RSS, to measure a window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    at: Instant,
    cpu_s: f64,
    pub rss: u64,
}

impl Usage {
    pub(crate) fn of(pid: u32) -> Usage {
        Usage {
            at: Instant::now(),
            cpu_s: procs::cpu_seconds(pid).unwrap_or(0.0),
            rss: procs::rss(pid).map_or(0, |r| r.0),
        }
    }

    /// Percent of one core used between `self` and `later`.
    pub(crate) fn cpu_percent(&self, later: &Usage) -> f64 {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        (later.cpu_s - self.cpu_s) / wall * 100.0
    }
}

/// Descriptors and threads of `pid`.
pub(crate) fn fds_threads(pid: u32) -> (u64, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0);
    (fds, threads)
}

/// A node's GET_STATS.
pub(crate) async fn stats(addr: &str) -> anyhow::Result<Stats> {
    let mut c = Client::connect(addr, &ClientIdentity::tool("scale:sampler"), Duration::from_secs(10)).await?;
    match c.request(Request::GetStats(Name { name: String::new() })).await? {
        Response::GetStats(s) => Ok(s),
        other => anyhow::bail!("GET_STATS answered {other:?}"),
    }
}

/// `q` (0..1) of `v`, sorted in place.
pub(crate) fn quantile(v: &mut [u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// Runs the parts asked for; an error when one could not run or a check failed.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let _guard = KillGuard;
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        procs::stop_all();
        std::process::exit(130);
    });
    let out = a.out.clone().unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("scale-{t}"))
    });
    std::fs::create_dir_all(out.join("logs")).with_context(|| format!("cannot create {}", out.display()))?;
    println!(
        "scale: parts {:?}, hold {:?}, {} cores, load {}; writing {}",
        a.parts,
        a.hold,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        procs::loadavg(),
        out.display()
    );
    let mut report = String::from("# framewire bench scale\n");
    let mut failures = Vec::new();
    for part in &a.parts {
        let started = Instant::now();
        println!("\n== {part:?}");
        let (title, found) = match part {
            Part::Idle => ("Idle connections to one node", idle::run(&a, &out).await),
            Part::Fanout => ("One stream to many subscribers", fanout::run(&a, &out).await),
            Part::Discovery => ("A large discovery table", discovery::run(&a, &out).await),
            Part::Controller => (
                "One controller, many nodes, edges and web clients",
                controller::run(&a, &out).await,
            ),
        };
        procs::kill_all();
        let found = found.with_context(|| format!("the {part:?} part could not run"))?;
        let _ = writeln!(report, "\n## {title}\n\n| what | figure |\n|---|---|");
        for r in &found.rows {
            let _ = writeln!(report, "| {} | {} |", r.what, r.figure);
        }
        let _ = writeln!(report, "\n**Limit:** {}", found.limit);
        println!("  limit: {}\n  ({:.0} s)", found.limit, started.elapsed().as_secs_f64());
        failures.extend(found.failures.iter().map(|f| format!("{part:?}: {f}")));
    }
    if !failures.is_empty() {
        let _ = writeln!(report, "\n## Checks failed\n");
        for f in &failures {
            let _ = writeln!(report, "- {f}");
        }
    }
    std::fs::write(out.join("report.md"), &report)?;
    println!("\nscale: report in {}", out.join("report.md").display());
    if !failures.is_empty() {
        anyhow::bail!("{} check(s) failed:\n  {}", failures.len(), failures.join("\n  "));
    }
    Ok(())
}
