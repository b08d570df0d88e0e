//! Prometheus metrics: `GET /metrics` in the text exposition format 0.0.4.
//!
//! [`render`] is a pure function from a [`MetricsSnapshot`] (the node's
//! counters, its edges and the process's figures) to the text, so any HTTP
//! server can mount it: a node serves it itself on
//! [`NodeConfig::metrics`](crate::NodeConfig::metrics), and a web server in
//! the same process calls [`Node::metrics_text`](crate::Node::metrics_text).
//! Every metric is named `framewire_*` and has HELP and TYPE lines; label
//! values are escaped (backslash, double quote, newline).

use std::net::SocketAddr;
use std::sync::Arc;

use framewire_proto::control::{Stats, StreamState};
use tracing::{info, warn};

use crate::error::NetError;

mod render;
#[cfg(test)]
mod tests;

pub use render::{escape_label, render};

/// Where `--metrics` serves when given without an address.
pub const DEFAULT_METRICS_PORT: u16 = 9400;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Figures about the process, read from `/proc/self`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Virtual memory, bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
}

impl ProcessStats {
    /// Reads `/proc/self/stat`, `/proc/self/statm` and `/proc/self/fd`.
    /// A figure that cannot be read stays 0.
    pub fn read() -> ProcessStats {
        let mut p = ProcessStats::default();
        // SAFETY: sysconf has no preconditions; it only reads a constant.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some((utime, stime)) = parse_stat_times(&stat)
            && ticks > 0
        {
            p.cpu_seconds = (utime + stime) as f64 / ticks as f64;
        }
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            let mut f = statm.split_ascii_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
            let page = u64::try_from(page).unwrap_or(4096);
            p.virtual_bytes = f.next().unwrap_or(0) * page;
            p.resident_bytes = f.next().unwrap_or(0) * page;
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory's own descriptor is counted too: remove it.
            p.open_fds = (dir.count() as u64).saturating_sub(1);
        }
        p
    }
}

/// `utime` and `stime` (fields 14 and 15) of `/proc/PID/stat`. The command
/// name (field 2) is in parentheses and may hold spaces: count from the
/// last `)`.
fn parse_stat_times(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_ascii_whitespace();
    // Fields 3.. follow; utime is field 14, i.e. the 12th after the name.
    let utime = f.nth(11)?.parse().ok()?;
    let stime = f.next()?.parse().ok()?;
    Some((utime, stime))
}

/// A pulled edge as the metrics see it.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeMetrics {
    /// The local stream name.
    pub stream: String,
    /// `host:port/stream` upstream.
    pub upstream: String,
    /// Live, interrupted, failed.
    pub state: StreamState,
    /// Age of the last frame when it arrived here (capture time to
    /// arrival, seconds; includes the clock offset between the hosts).
    pub latency_seconds: Option<f64>,
    /// Frames the upstream sent again after a resubscription, not passed on.
    pub replayed: u64,
}

/// Everything [`render`] shows.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    /// The node's name.
    pub node: String,
    /// Software version.
    pub version: String,
    /// Site id.
    pub site_id: u16,
    /// Seconds since the node started.
    pub uptime_seconds: f64,
    /// TCP connections open now.
    pub connections: u64,
    /// Connections refused by authentication.
    pub auth_refusals: u64,
    /// Connections refused because the node served its most at once.
    pub busy_refusals: u64,
    /// Whether a deployment key is configured.
    pub auth_required: bool,
    /// Inputs and outputs.
    pub stats: Stats,
    /// Pulled edges.
    pub edges: Vec<EdgeMetrics>,
    /// The process.
    pub process: ProcessStats,
    /// Discovery's refusals and conflicts (none: discovery is off).
    pub discovery: Option<crate::transport::discovery::DiscoveryCounters>,
}

/// Reads everything `/metrics` shows, now.
pub(crate) type Sampler = Arc<dyn Fn() -> MetricsSnapshot + Send + Sync>;

/// More of `/metrics`, from a role running beside the node (the
/// controller's edges and alerts): Prometheus text appended to the node's.
pub type MetricsExtra = Arc<dyn Fn() -> String + Send + Sync>;

/// The extra sections a running node's `/metrics` appends.
#[derive(Clone, Default)]
pub(crate) struct Extras(Arc<std::sync::Mutex<Vec<MetricsExtra>>>);

impl std::fmt::Debug for Extras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Extras({})", self.0.lock().map(|v| v.len()).unwrap_or(0))
    }
}

impl Extras {
    pub(crate) fn add(&self, extra: MetricsExtra) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(extra);
    }

    /// The node's text and every extra section after it.
    pub(crate) fn render(&self, snapshot: &MetricsSnapshot) -> String {
        let mut text = render(snapshot);
        let extras: Vec<MetricsExtra> = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for extra in extras {
            text.push_str(&extra());
        }
        text
    }
}

/// Serves `GET /metrics` on `addr` until `stop` turns true.
pub(crate) async fn start(
    addr: SocketAddr,
    sample: Sampler,
    extras: Extras,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), NetError> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NetError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    info!(addr = %local, "metrics at http://{local}/metrics");
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let text = extras.render(&sample());
            async move { ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], text) }
        }),
    );
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        if let Err(e) = serve.await {
            warn!(error = %e, "metrics server stopped");
        }
    });
    Ok((local, task))
}
