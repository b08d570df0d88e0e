//! Live pushes: the graph over a WebSocket, previews as framewire wire
//! messages over a WebSocket, and MJPEG over HTTP.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use framewire_controller::{Preview, PreviewFrame};
use framewire_proto::control::{Request, StreamOpen};
use framewire_proto::{FrameFlags, Message, VideoFrame};

use crate::auth::Role;
use crate::{ApiError, App};

/// The channel previews use on their WebSocket (one stream per socket).
pub(crate) const PREVIEW_CHANNEL: u16 = 1;

/// GET /ws/state (viewer): the current graph as JSON text messages
/// `{"type":"graph","graph":{...}}`, the whole graph once on connect and
/// again on every change.
pub(crate) async fn state_ws(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    app.allow(&method, &headers, Role::Viewer)?;
    app.same_origin(&headers)?;
    // Access is checked first, so a refused caller learns nothing more.
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return Ok(e.into_response()),
    };
    let rx = app.backend.graph();
    Ok(ws.on_upgrade(move |socket| push_graph(app, socket, rx)))
}

/// The graph message for `g`, serialised once per graph however many
/// browsers watch (the cache holds the last one).
fn graph_message(app: &App, g: &Arc<framewire_controller::CurrentGraph>) -> Utf8Bytes {
    let mut cache = app.graph_cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((cached, text)) = &*cache
        && Arc::ptr_eq(cached, g)
    {
        return text.clone();
    }
    let text: Utf8Bytes = serde_json::json!({"type": "graph", "graph": &**g}).to_string().into();
    *cache = Some((g.clone(), text.clone()));
    text
}

async fn push_graph(
    app: Arc<App>,
    mut socket: WebSocket,
    mut rx: tokio::sync::watch::Receiver<Arc<framewire_controller::CurrentGraph>>,
) {
    loop {
        let g = rx.borrow_and_update().clone();
        let text = graph_message(&app, &g);
        if socket.send(WsMessage::Text(text)).await.is_err() {
            return;
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            msg = socket.recv() => match msg {
                // Clients say nothing on this socket; anything but a close is ignored.
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

fn wire_open(open: &StreamOpen) -> Result<Bytes, ApiError> {
    let req = Request::StreamOpen(open.clone())
        .to_message(PREVIEW_CHANNEL, 1)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let enc = Message::ControlRequest(req)
        .encode()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Bytes::from(enc.to_vec()))
}

fn wire_frame(f: &PreviewFrame) -> Option<Bytes> {
    let msg = Message::VideoFrame(VideoFrame {
        channel: PREVIEW_CHANNEL,
        sequence: f.sequence,
        timestamp_ns: f.timestamp_ns,
        flags: FrameFlags(f.flags),
        data: f.jpeg.clone(),
    });
    // Only a frame over 4 GiB fails to encode; skip such a frame.
    msg.encode().ok().map(|e| Bytes::from(e.to_vec()))
}

async fn open_preview(app: &App, node: &str, stream: &str) -> Result<Preview, ApiError> {
    Ok(app.backend.preview(node, stream).await?)
}

/// GET /ws/preview/{node}/{stream} (viewer): binary WebSocket messages,
/// each one whole framewire wire message: a STREAM_OPEN control request
/// (format MJPEG) on channel 1, then video frames on channel 1.
pub(crate) async fn preview_ws(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((node, stream)): Path<(String, String)>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    app.allow(&method, &headers, Role::Viewer)?;
    app.same_origin(&headers)?;
    // Access is checked first, so a refused caller learns nothing more.
    let preview = open_preview(&app, &node, &stream).await?;
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return Ok(e.into_response()),
    };
    let open = wire_open(&preview.open)?;
    Ok(ws.on_upgrade(move |socket| push_preview(socket, open, preview)))
}

async fn push_preview(mut socket: WebSocket, open: Bytes, mut preview: Preview) {
    if socket.send(WsMessage::Binary(open)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            f = preview.frames.recv() => {
                let Some(f) = f else {
                    let _ = socket.send(WsMessage::Close(None)).await;
                    return;
                };
                if let Some(bytes) = wire_frame(&f)
                    && socket.send(WsMessage::Binary(bytes)).await.is_err()
                {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

const BOUNDARY: &str = "framewire-frame";

/// GET /stream/{node}/{stream}.mjpeg (viewer): `multipart/x-mixed-replace`
/// of JPEG parts, for `<img>` and `ffplay`.
pub(crate) async fn mjpeg(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((node, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    app.allow(&method, &headers, Role::Viewer)?;
    let stream = file
        .strip_suffix(".mjpeg")
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "MJPEG streams end in .mjpeg"))?;
    let preview = open_preview(&app, &node, stream).await?;
    let body = futures_util::stream::unfold(preview, |mut p| async move {
        let f = p.frames.recv().await?;
        let mut part = Vec::with_capacity(f.jpeg.len() + 96);
        part.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                f.jpeg.len()
            )
            .as_bytes(),
        );
        part.extend_from_slice(&f.jpeg);
        part.extend_from_slice(b"\r\n");
        Some((Ok::<_, std::io::Error>(Bytes::from(part)), p))
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
