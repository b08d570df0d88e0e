//! Idle connections to one node: each says HELLO and then nothing (within
//! the node's idle timeout, 60 s by default). Measured: the node's memory
//! per connection, its CPU while they wait, and how long a new client
//! takes to be answered among them. Then more are opened until the node
//! refuses one: past `max_connections` it must answer BUSY with the cap,
//! and still serve those it holds.

use std::path::Path;
use std::time::{Duration, Instant};

use framewire_net::{Client, ClientIdentity, NetError};
use framewire_proto::{Request, Response, Status};
use tokio::task::JoinSet;

use super::{Args, Found, Usage, fds_threads, mib, start_node};

/// Connections opened at once.
const BATCH: usize = 128;

async fn open(addr: &str, n: usize, first: usize) -> Vec<Result<Client, NetError>> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let mut set = JoinSet::new();
        for k in i..(i + BATCH).min(n) {
            let addr = addr.to_owned();
            set.spawn(async move {
                let who = ClientIdentity::tool(&format!("scale:idle{}", first + k));
                Client::connect(&addr, &who, Duration::from_secs(10)).await
            });
        }
        while let Some(r) = set.join_next().await {
            out.push(r.unwrap_or_else(|e| {
                Err(NetError::Protocol {
                    peer: String::new(),
                    message: format!("the connecting task failed: {e}"),
                })
            }));
        }
        i += BATCH;
    }
    out
}

/// How long DESCRIBE takes on `c`.
async fn describe_ms(c: &mut Client) -> Result<f64, NetError> {
    let t = Instant::now();
    match c.request(Request::Describe).await? {
        Response::Describe(_) => Ok(t.elapsed().as_secs_f64() * 1000.0),
        other => Err(NetError::Protocol {
            peer: String::new(),
            message: format!("DESCRIBE answered {}", other.command()),
        }),
    }
}

pub(crate) async fn run(a: &Args, out: &Path) -> anyhow::Result<Found> {
    let mut f = Found::default();
    let mut args = vec!["--source".to_owned(), "test-pattern:bars,size=160x120,fps=5".to_owned()];
    if let Some(cap) = a.idle_cap {
        let cfg = out.join("idle.toml");
        std::fs::write(&cfg, format!("[limits]\nmax_connections = {cap}\n"))?;
        args.extend(["--config".to_owned(), cfg.display().to_string()]);
    }
    let node = start_node(out, "scale:idle", &args)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = Usage::of(node.proc.pid);
    let t = Instant::now();
    let opened = open(&node.addr, a.idle, 0).await;
    let took = t.elapsed();
    let mut held = Vec::new();
    let mut errors = Vec::new();
    for r in opened {
        match r {
            Ok(c) => held.push(c),
            Err(e) => errors.push(e.to_string()),
        }
    }
    f.row(
        format!("{} connections opened (HELLO answered)", a.idle),
        format!("{} in {:.2} s", held.len(), took.as_secs_f64()),
    );
    f.check(errors.is_empty(), || {
        format!(
            "{} of {} connections failed, first: {}",
            errors.len(),
            a.idle,
            errors.first().cloned().unwrap_or_default()
        )
    });
    // They wait; the node should not notice.
    let settled = Usage::of(node.proc.pid);
    tokio::time::sleep(a.hold).await;
    let after = Usage::of(node.proc.pid);
    let (fds, threads) = fds_threads(node.proc.pid);
    let per = after.rss.saturating_sub(before.rss) as f64 / held.len().max(1) as f64 / 1024.0;
    f.row(
        "node RSS before, with them",
        format!("{} → {}", mib(before.rss), mib(after.rss)),
    );
    f.row("node memory per idle connection", format!("{per:.1} KiB"));
    f.row(
        format!("node CPU while they wait ({:?})", a.hold),
        format!("{:.2} % of a core", settled.cpu_percent(&after)),
    );
    f.row("node descriptors, threads", format!("{fds}, {threads}"));
    // A new client among them.
    let mut fresh = Client::connect(
        &node.addr,
        &ClientIdentity::tool("scale:fresh"),
        Duration::from_secs(10),
    )
    .await?;
    let ms = describe_ms(&mut fresh).await?;
    f.row("a new client's DESCRIBE among them", format!("{ms:.2} ms"));
    drop(fresh);
    // Past the cap: open until one is refused.
    let ceiling = a.idle_cap.unwrap_or(framewire_net::config::DEFAULT_MAX_CONNECTIONS) + 64;
    let mut refused = None;
    let t = Instant::now();
    while held.len() < ceiling && refused.is_none() {
        let n = BATCH.min(ceiling - held.len());
        for r in open(&node.addr, n, held.len() + 1).await {
            match r {
                Ok(c) => held.push(c),
                // A BUSY answer says the most; closed ones are past the
                // answers the node gives at once.
                Err(e @ NetError::Remote { .. }) => refused = Some(e),
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
    }
    match refused {
        Some(NetError::Remote { status, message, .. }) => {
            f.row(
                "refused after",
                format!("{} connections held, in {:.1} s", held.len(), t.elapsed().as_secs_f64()),
            );
            f.row("the refusal", format!("{status:?}: {message}"));
            f.check(status == Status::Busy, || {
                format!("refused with {status:?}, not BUSY: {message}")
            });
            f.limit = format!(
                "`limits.max_connections`: connection number {} is answered BUSY ({message}); those held are still served",
                held.len() + 1
            );
        }
        Some(other) => {
            f.check(false, || {
                format!("refused without a reason after {}: {other}", held.len())
            });
            f.limit = format!("connections failed after {}: {other}", held.len());
        }
        None => {
            f.check(false, || format!("{} connections and none refused", held.len()));
            f.limit = format!("none found up to {} connections", held.len());
        }
    }
    // At the cap, those held are served.
    let mut slowest = 0.0f64;
    let step = (held.len() / 16).max(1);
    for c in held.iter_mut().step_by(step) {
        match describe_ms(c).await {
            Ok(ms) => slowest = slowest.max(ms),
            Err(e) => {
                f.check(false, || format!("a connection held at the cap was not served: {e}"));
                break;
            }
        }
    }
    f.row(
        "DESCRIBE on held connections at the cap (slowest of 16)",
        format!("{slowest:.2} ms"),
    );
    let (fds, threads) = fds_threads(node.proc.pid);
    let at_cap = Usage::of(node.proc.pid);
    f.row(
        "node RSS, descriptors, threads at the cap",
        format!("{}, {fds}, {threads}", mib(at_cap.rss)),
    );
    f.check(node.proc.alive(), || "the node died".to_owned());
    drop(held);
    Ok(f)
}
