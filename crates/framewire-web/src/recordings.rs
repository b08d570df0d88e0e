//! Recordings in the browser: what a node's archive sinks hold
//! (ARCHIVE_LIST, as JSON with times in ms) and ranges of them played back
//! as streams (an `archive` source on that node, which any player of the
//! page shows). Each user has at most [`MAX_PLAYBACKS`] playbacks: a new
//! one past that stops that user's oldest.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use framewire_proto::control::{ArchiveQuery, Name, Request, Response as NodeResponse, SourceTable};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Role;
use crate::{ApiError, App};

/// Playbacks one user may have running at once.
pub(crate) const MAX_PLAYBACKS: usize = 4;

/// Every running playback: (user, node, stream name), oldest first.
#[derive(Debug, Default)]
pub(crate) struct Playbacks {
    running: Mutex<VecDeque<(String, String, String)>>,
    next: std::sync::atomic::AtomicU64,
}

impl Playbacks {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, String, String)>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

const MS: u64 = 1_000_000;

#[derive(Deserialize)]
pub(crate) struct Window {
    stream: Option<String>,
    /// ms since the epoch; default: the last 24 hours.
    from_ms: Option<u64>,
    to_ms: Option<u64>,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / MS as f64
}

/// GET /api/nodes/{node}/archives (viewer): `{node, archives: [{stream,
/// dir, state, codec, truncated, segments: [{start_ms, end_ms, frames,
/// bytes, state}], gaps: [{start_ms, end_ms (null: still open), frames,
/// reason, detail}]}]}` in `[from_ms, to_ms)` (default: the last 24 h).
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(node): Path<String>,
    Query(w): Query<Window>,
) -> Result<Json<Value>, ApiError> {
    app.allow(&method, &headers, Role::Viewer)?;
    let now = crate::alerts::now_ms();
    let to_ms = w.to_ms.unwrap_or(now + 60_000);
    let from_ms = w.from_ms.unwrap_or(to_ms.saturating_sub(24 * 3_600_000));
    if to_ms <= from_ms {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "to_ms must be after from_ms"));
    }
    let q = ArchiveQuery {
        stream: w.stream.unwrap_or_default(),
        from_ns: from_ms.saturating_mul(MS),
        to_ns: to_ms.saturating_mul(MS),
    };
    let listing = match app.backend.request(&node, Request::ArchiveList(q)).await? {
        NodeResponse::ArchiveList(l) => l,
        r => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("{node} answered ARCHIVE_LIST with {}", r.command()),
            ));
        }
    };
    let archives: Vec<Value> = listing
        .archives
        .iter()
        .map(|a| {
            json!({
                "stream": a.stream, "dir": a.dir, "state": a.state, "codec": a.codec, "truncated": a.truncated,
                "segments": a.segments.iter().map(|s| json!({
                    "start_ms": ms(s.start_ns), "end_ms": ms(s.end_ns), "frames": s.frames, "bytes": s.bytes, "state": s.state,
                })).collect::<Vec<_>>(),
                "gaps": a.gaps.iter().map(|g| json!({
                    "start_ms": ms(g.start_ns), "end_ms": (g.end_ns != 0).then(|| ms(g.end_ns)),
                    "frames": g.frames, "reason": g.reason, "detail": g.detail,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(
        json!({ "node": node, "from_ms": from_ms, "to_ms": to_ms, "archives": archives }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Play {
    from_ms: u64,
    to_ms: u64,
}

/// POST /api/nodes/{node}/archives/{stream}/play (viewer): `{from_ms,
/// to_ms}` → 201 `{node, name}`: the range plays on the node as the stream
/// `name` (an `archive` source), for any player of the page.
pub(crate) async fn play(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((node, stream)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = app.allow(&method, &headers, Role::Viewer)?;
    let p: Play = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("a playback is {{from_ms, to_ms}}: {e}"),
        )
    })?;
    if p.to_ms <= p.from_ms {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "to_ms must be after from_ms"));
    }
    let n = app.playbacks.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("play-{n}");
    let secs = |t: u64| format!("{}.{:03}", t / 1000, t % 1000);
    let table = format!(
        "kind = \"archive\"\nname = \"{name}\"\nstream = {}\nfrom = \"{}\"\nto = \"{}\"\n",
        toml::Value::String(stream.clone()),
        secs(p.from_ms),
        secs(p.to_ms)
    );
    match app
        .backend
        .request(&node, Request::SourceAdd(SourceTable { table }))
        .await?
    {
        NodeResponse::SourceAdd(_) => {}
        r => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("{node} answered SOURCE_ADD with {}", r.command()),
            ));
        }
    }
    tracing::info!(user = %who.user, %node, %stream, name, "recording played back");
    // Past the user's share, their oldest playback stops.
    let oldest = {
        let mut running = app.playbacks.lock();
        running.push_back((who.user.clone(), node.clone(), name.clone()));
        let mine = running.iter().filter(|(u, _, _)| *u == who.user).count();
        if mine > MAX_PLAYBACKS {
            let i = running.iter().position(|(u, _, _)| *u == who.user);
            i.and_then(|i| running.remove(i))
        } else {
            None
        }
    };
    if let Some((_, n, old)) = oldest {
        let _ = app.backend.request(&n, Request::SourceRemove(Name { name: old })).await;
    }
    Ok((StatusCode::CREATED, Json(json!({ "node": node, "name": name }))))
}

/// DELETE /api/nodes/{node}/playbacks/{name} (viewer): stops one of the
/// caller's playbacks (an admin's: anyone's).
pub(crate) async fn stop(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((node, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let who = app.allow(&method, &headers, Role::Viewer)?;
    {
        let mut running = app.playbacks.lock();
        let Some(i) = running
            .iter()
            .position(|(u, n, s)| *n == node && *s == name && (*u == who.user || who.role == Role::Admin))
        else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no playback {name} of yours on {node}"),
            ));
        };
        running.remove(i);
    }
    match app
        .backend
        .request(&node, Request::SourceRemove(Name { name: name.clone() }))
        .await
    {
        Ok(_) => Ok(Json(json!({ "ok": true, "node": node, "name": name }))),
        // Gone already (the node restarted): nothing left to stop.
        Err(framewire_controller::ControllerError::Node { .. }) => {
            Ok(Json(json!({ "ok": true, "node": node, "name": name })))
        }
        Err(e) => Err(e.into()),
    }
}

/// Bytes asked of the node per read.
const CHUNK: u32 = 1 << 20;

async fn read_chunk(
    app: &App,
    node: &str,
    stream: &str,
    (from_ns, to_ns): (u64, u64),
    offset: u64,
) -> Result<framewire_proto::control::ArchiveChunk, ApiError> {
    let r = framewire_proto::control::ArchiveRead {
        stream: stream.to_owned(),
        from_ns,
        to_ns,
        offset,
        max_len: CHUNK,
    };
    match app.backend.request(node, Request::ArchiveRead(r)).await? {
        NodeResponse::ArchiveRead(c) => Ok(c),
        r => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("{node} answered ARCHIVE_READ with {}", r.command()),
        )),
    }
}

/// GET /api/nodes/{node}/archives/{stream}/export?from_ms=&to_ms= (viewer):
/// the range as one Matroska file (its segments joined, nothing
/// re-encoded), read from the node in 1 MiB chunks as it downloads. It
/// holds one of the user's live-stream places meanwhile.
pub(crate) async fn export(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((node, stream)): Path<(String, String)>,
    Query(w): Query<Window>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let who = app.allow(&method, &headers, Role::Viewer)?;
    let (Some(from_ms), Some(to_ms)) = (w.from_ms, w.to_ms) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "an export needs from_ms and to_ms",
        ));
    };
    if to_ms <= from_ms {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "to_ms must be after from_ms"));
    }
    let slot = crate::stream::stream_slot(&app, &who.user)?;
    let range = (from_ms.saturating_mul(MS), to_ms.saturating_mul(MS));
    let first = read_chunk(&app, &node, &stream, range, 0).await?;
    let total = first.total;
    tracing::info!(user = %who.user, %node, %stream, bytes = total, "recording exported");
    let state = (
        app.clone(),
        node,
        stream.clone(),
        first.data.len() as u64,
        Some(first.data),
        slot,
    );
    let body = futures_util::stream::unfold(state, move |(app, node, stream, offset, pending, slot)| async move {
        if let Some(data) = pending {
            return Some((Ok(data), (app, node, stream, offset, None, slot)));
        }
        if offset >= total {
            return None;
        }
        match read_chunk(&app, &node, &stream, range, offset).await {
            Ok(c) if !c.data.is_empty() => {
                let next = offset + c.data.len() as u64;
                Some((Ok(c.data), (app, node, stream, next, None, slot)))
            }
            Ok(_) => Some((
                Err(std::io::Error::other("the export ended early")),
                (app, node, stream, total, None, slot),
            )),
            Err(e) => Some((
                Err(std::io::Error::other(e.message)),
                (app, node, stream, total, None, slot),
            )),
        }
    });
    let name: String = format!(
        "{stream}-{}.mkv",
        framewire_archive::time::compact(from_ms.saturating_mul(MS))
    )
    .chars()
    .map(|c| {
        if c.is_ascii_alphanumeric() || "-_.".contains(c) {
            c
        } else {
            '_'
        }
    })
    .collect();
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "video/x-matroska".to_owned()),
            (axum::http::header::CONTENT_LENGTH, total.to_string()),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Recording {
    recording: bool,
}

/// POST /api/nodes/{node}/archives/{stream}/recording (operator):
/// `{recording}`: false pauses the node's archive sink of the stream,
/// true starts it again (ARCHIVE_SET; the pause is a `paused` gap).
pub(crate) async fn set_recording(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((node, stream)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let who = app.allow(&method, &headers, Role::Operator)?;
    let r: Recording = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("this takes {{\"recording\": true|false}}: {e}"),
        )
    })?;
    let set = framewire_proto::control::ArchiveSet {
        stream: stream.clone(),
        recording: r.recording,
    };
    match app.backend.request(&node, Request::ArchiveSet(set)).await? {
        NodeResponse::ArchiveSet => {}
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("{node} answered ARCHIVE_SET with {}", other.command()),
            ));
        }
    }
    tracing::info!(user = %who.user, %node, %stream, recording = r.recording, "recording switched");
    Ok(Json(
        json!({ "ok": true, "node": node, "stream": stream, "recording": r.recording }),
    ))
}
