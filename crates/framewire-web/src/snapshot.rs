//! One picture of a stream, and stopping a node: the SNAPSHOT and SHUTDOWN
//! requests of the wire protocol, over HTTP.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use framewire_codec::{DEFAULT_JPEG_QUALITY, Registry, frame_to_jpeg};
use framewire_proto::control::{Name, Request, Response as NodeResponse, Shutdown};
use serde_json::{Value, json};

use crate::auth::Role;
use crate::stream::stream_slot;
use crate::{ApiError, App};

/// How long in-flight frames may take on a node stopped from the web UI.
const SHUTDOWN_GRACE_MS: u32 = 2000;

/// GET /snapshot/{node}/{stream}.jpg (viewer): the stream's latest frame
/// as a JPEG picture, whatever the stream's format. It holds one of the
/// user's live-stream places while it is fetched and encoded.
pub(crate) async fn snapshot(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((node, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let who = app.allow(&method, &headers, Role::Viewer)?;
    let stream = file
        .strip_suffix(".jpg")
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "snapshots end in .jpg"))?;
    let _slot = stream_slot(&app, &who.user)?;
    let snap = latest_frame(&app, &node, stream).await?;
    let sequence = snap.sequence;
    let jpeg = tokio::task::spawn_blocking(move || {
        frame_to_jpeg(&Registry::builtin(), &snap.open, &snap.data, DEFAULT_JPEG_QUALITY)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the encoder stopped: {e}")))?
    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let mut resp = (StatusCode::OK, jpeg).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-framewire-sequence", HeaderValue::from(sequence));
    Ok(resp)
}

/// The stream's latest frame, asked of its node (SNAPSHOT).
pub(crate) async fn latest_frame(
    app: &App,
    node: &str,
    stream: &str,
) -> Result<framewire_proto::control::Snapshot, ApiError> {
    match app
        .backend
        .request(
            node,
            Request::Snapshot(Name {
                name: stream.to_owned(),
            }),
        )
        .await?
    {
        NodeResponse::Snapshot(s) => Ok(s),
        r => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("{node} answered SNAPSHOT with {}", r.command()),
        )),
    }
}

/// POST /api/nodes/{node}/shutdown (admin): the node stops gracefully
/// (its sinks finish, archives close) and leaves the graph.
pub(crate) async fn shutdown(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(node): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = app.allow(&method, &headers, Role::Admin)?;
    match app
        .backend
        .request(
            &node,
            Request::Shutdown(Shutdown {
                grace_ms: SHUTDOWN_GRACE_MS,
            }),
        )
        .await?
    {
        NodeResponse::Shutdown => {
            tracing::info!(node = %node, by = %who.user, "node shut down from the web UI");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "node": node, "shutting_down": true })),
            ))
        }
        r => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("{node} answered SHUTDOWN with {}", r.command()),
        )),
    }
}
