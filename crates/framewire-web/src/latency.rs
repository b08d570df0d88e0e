//! What the browsers see: each page measures how old every picture is when
//! it draws it (the time code in the picture, or the RTP time of a WebRTC
//! frame) and reports the ages here; the controller keeps the last minute
//! per path and serves p50/p95/p99 and a histogram (docs/latency.md).
//!
//! The store is sans-IO: reports and queries carry their `now`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::Role;
use crate::{ApiError, App};

/// How long a picture's age counts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Ages kept per path at most (the newest).
const MAX_SAMPLES: usize = 6000;
/// Paths kept at most; the one reported least recently goes first.
const MAX_PATHS: usize = 256;
/// Ages in one report at most.
pub const MAX_REPORT: usize = 600;
/// Longest node or stream name in a report.
const MAX_NAME: usize = 200;

/// How a browser was shown a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The preview: JPEG pictures over a WebSocket, drawn on a canvas.
    Preview,
    /// The preview of an H.264 stream decoded by WebCodecs.
    PreviewH264,
    /// The live view: WebRTC (WHEP) in a `<video>`.
    Whep,
}

impl Kind {
    fn words(self) -> &'static str {
        match self {
            Kind::Preview => "preview (JPEG over a WebSocket)",
            Kind::PreviewH264 => "preview (H.264, WebCodecs)",
            Kind::Whep => "live (WebRTC)",
        }
    }
}

/// One report: ages in ms of the pictures a page drew since its last.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub node: String,
    pub stream: String,
    pub path: Kind,
    pub ages_ms: Vec<f64>,
}

/// Why a report was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    #[error("a node and a stream name of 1 to {MAX_NAME} bytes are needed")]
    Name,
    #[error("at most {MAX_REPORT} ages a report, got {0}")]
    TooMany(usize),
    #[error("an age must be a number of ms from 0 to 60000, got {0}")]
    Age(f64),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    node: String,
    stream: String,
    kind: Kind,
}

#[derive(Debug, Default)]
struct Path {
    ages: VecDeque<(Instant, f32)>,
    /// Every age reported, the window's and before.
    total: u64,
    last: Option<Instant>,
}

/// The browsers' figures, per node, stream and kind of view.
#[derive(Debug, Default)]
pub struct Paths {
    paths: Mutex<HashMap<Key, Path>>,
}

/// One path's figures over the window.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub node: String,
    pub stream: String,
    pub path: Kind,
    /// What the path is, in words.
    pub view: &'static str,
    /// Pictures in the window.
    pub frames: usize,
    /// Pictures ever reported.
    pub total: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Seconds since the last report.
    pub last_s: f64,
    /// Counts per bucket of `bucket_ms`, from 0 to the largest age.
    pub bucket_ms: f64,
    pub histogram: Vec<u64>,
}

impl Paths {
    /// Adds a report's ages at `now`; refused whole when any part is wrong.
    pub fn report(&self, r: &Report, now: Instant) -> Result<(), ReportError> {
        for name in [&r.node, &r.stream] {
            if name.is_empty() || name.len() > MAX_NAME {
                return Err(ReportError::Name);
            }
        }
        if r.ages_ms.len() > MAX_REPORT {
            return Err(ReportError::TooMany(r.ages_ms.len()));
        }
        if let Some(&bad) = r.ages_ms.iter().find(|a| !(0.0..=60_000.0).contains(*a)) {
            return Err(ReportError::Age(bad));
        }
        let mut paths = self.paths.lock().unwrap_or_else(PoisonError::into_inner);
        let key = Key {
            node: r.node.clone(),
            stream: r.stream.clone(),
            kind: r.path,
        };
        if !paths.contains_key(&key) && paths.len() >= MAX_PATHS {
            let oldest = paths.iter().min_by_key(|(_, p)| p.last).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                paths.remove(&k);
            }
        }
        let p = paths.entry(key).or_default();
        for &a in &r.ages_ms {
            // Ages are checked to 0..=60000: f32 holds them to a microsecond.
            #[allow(clippy::cast_possible_truncation)]
            p.ages.push_back((now, a as f32));
        }
        while p.ages.len() > MAX_SAMPLES {
            p.ages.pop_front();
        }
        p.total += r.ages_ms.len() as u64;
        p.last = Some(now);
        Ok(())
    }

    /// Every path with ages in the window before `now`, by node, stream
    /// and kind; older ages and paths are dropped.
    pub fn figures(&self, now: Instant) -> Vec<Figures> {
        let mut paths = self.paths.lock().unwrap_or_else(PoisonError::into_inner);
        paths.retain(|_, p| {
            while p
                .ages
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > WINDOW)
            {
                p.ages.pop_front();
            }
            !p.ages.is_empty()
        });
        let mut out: Vec<Figures> = paths.iter().map(|(k, p)| figures(k, p, now)).collect();
        out.sort_by(|a, b| (&a.node, &a.stream, a.view).cmp(&(&b.node, &b.stream, b.view)));
        out
    }
}

fn figures(k: &Key, p: &Path, now: Instant) -> Figures {
    // Kept as f32: back to hundredths of a ms, as reported.
    let mut v: Vec<f64> = p
        .ages
        .iter()
        .map(|(_, a)| (f64::from(*a) * 100.0).round() / 100.0)
        .collect();
    v.sort_by(f64::total_cmp);
    let q = |q: f64| {
        // Nearest rank of a share of the length: in range.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v[i]
    };
    let max = q(1.0);
    // About 40 buckets at most, of 1, 2 or 5 times a power of ten ms.
    let mut bucket = 1.0;
    for step in [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0] {
        bucket = step;
        if max / step < 40.0 {
            break;
        }
    }
    // Buckets of finite, non-negative ages.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let mut histogram = vec![0u64; (max / bucket) as usize + 1];
    for a in &v {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = ((a / bucket) as usize).min(histogram.len() - 1);
        histogram[i] += 1;
    }
    Figures {
        node: k.node.clone(),
        stream: k.stream.clone(),
        path: k.kind,
        view: k.kind.words(),
        frames: v.len(),
        total: p.total,
        p50_ms: q(0.5),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        max_ms: max,
        last_s: p.last.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64()),
        bucket_ms: bucket,
        histogram,
    }
}

/// POST /api/latency (viewer): `{node, stream, path, ages_ms}` → 204.
pub(crate) async fn report(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    app.allow(&method, &headers, Role::Viewer)?;
    let r: Report =
        serde_json::from_slice(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")))?;
    app.latency
        .report(&r, Instant::now())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// GET /api/latency (viewer): every path's figures over the last minute.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.allow(&method, &headers, Role::Viewer)?;
    let paths = app.latency.figures(Instant::now());
    Ok(Json(json!({ "window_s": WINDOW.as_secs(), "paths": paths })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, kind: Kind, ages: Vec<f64>) -> Report {
        Report {
            node: node.into(),
            stream: "cam".into(),
            path: kind,
            ages_ms: ages,
        }
    }

    #[test]
    fn quantiles_histogram_and_window() {
        let paths = Paths::default();
        let t0 = Instant::now();
        let ages: Vec<f64> = (1..=100).map(f64::from).collect();
        paths.report(&report("a", Kind::Preview, ages), t0).unwrap();
        paths.report(&report("a", Kind::Whep, vec![30.0; 10]), t0).unwrap();
        let f = paths.figures(t0 + Duration::from_secs(1));
        assert_eq!(f.len(), 2);
        let p = f.iter().find(|f| f.path == Kind::Preview).unwrap();
        assert_eq!((p.frames, p.total), (100, 100));
        assert_eq!((p.p50_ms, p.p99_ms, p.max_ms), (51.0, 99.0, 100.0));
        assert_eq!(p.bucket_ms, 5.0);
        assert_eq!(p.histogram.iter().sum::<u64>(), 100);
        assert_eq!(p.histogram[0], 4, "1..=4 in the first bucket");
        assert!((p.last_s - 1.0).abs() < 1e-6);
        // A minute on, the old ages are gone; a path with none left too.
        paths
            .report(&report("a", Kind::Preview, vec![7.0]), t0 + Duration::from_secs(30))
            .unwrap();
        let f = paths.figures(t0 + Duration::from_secs(61));
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].frames, f[0].total, f[0].p50_ms), (1, 101, 7.0));
    }

    #[test]
    fn bad_reports_are_refused_whole() {
        let paths = Paths::default();
        let now = Instant::now();
        assert_eq!(
            paths.report(&report("a", Kind::Preview, vec![1.0, -1.0]), now),
            Err(ReportError::Age(-1.0))
        );
        assert!(matches!(
            paths.report(&report("a", Kind::Preview, vec![f64::NAN]), now),
            Err(ReportError::Age(_))
        ));
        assert_eq!(
            paths.report(&report("", Kind::Preview, vec![1.0]), now),
            Err(ReportError::Name)
        );
        assert_eq!(
            paths.report(&report("a", Kind::Preview, vec![1.0; MAX_REPORT + 1]), now),
            Err(ReportError::TooMany(MAX_REPORT + 1))
        );
        assert!(paths.figures(now).is_empty());
    }

    #[test]
    fn paths_and_ages_are_bounded() {
        let paths = Paths::default();
        let t0 = Instant::now();
        for i in 0..MAX_PATHS + 10 {
            let t = t0 + Duration::from_millis(i as u64);
            paths
                .report(&report(&format!("n{i}"), Kind::Preview, vec![1.0]), t)
                .unwrap();
        }
        let f = paths.figures(t0 + Duration::from_secs(1));
        assert_eq!(f.len(), MAX_PATHS);
        assert!(!f.iter().any(|f| f.node == "n0"), "the least recent went first");
        for _ in 0..(MAX_SAMPLES / MAX_REPORT + 2) {
            paths
                .report(&report("x", Kind::Whep, vec![2.0; MAX_REPORT]), t0)
                .unwrap();
        }
        let f = paths.figures(t0);
        let x = f.iter().find(|f| f.node == "x").unwrap();
        assert_eq!(x.frames, MAX_SAMPLES);
    }
}
