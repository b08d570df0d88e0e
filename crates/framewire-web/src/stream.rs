//! Live pushes: the graph over a WebSocket, previews as framewire wire
//! messages over a WebSocket, and MJPEG over HTTP.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use framewire_controller::{Preview, PreviewFrame};
use framewire_proto::control::{Request, StreamOpen};
use framewire_proto::{Format, FrameFlags, Message, VideoFrame};

use crate::access::too_many;
use crate::auth::Role;
use crate::limits::{Full, Slot};
use crate::{ApiError, App};

/// A live stream's place under the per-user and total caps, or 429.
pub(crate) fn stream_slot(app: &App, user: &str) -> Result<Slot<String>, ApiError> {
    app.streams.take(user.to_owned()).map_err(|full| {
        let why = match full {
            Full::Total(n) => format!("the server serves {n} live streams, its limit"),
            Full::Key(n) => format!("{user} has {n} live streams open, the limit per user"),
        };
        too_many(
            format!("{why}: close a preview first"),
            std::time::Duration::from_secs(5),
        )
    })
}

/// Sends one WebSocket message, giving up on a client that stopped reading.
async fn send(app: &App, socket: &mut WebSocket, msg: WsMessage) -> bool {
    matches!(
        tokio::time::timeout(app.limits.write_stall_timeout, socket.send(msg)).await,
        Ok(Ok(()))
    )
}

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
    let ws = ws
        .max_message_size(app.limits.max_ws_message)
        .max_frame_size(app.limits.max_ws_message);
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
    // Straight to text: through a `serde_json::Value` a graph of hundreds
    // of nodes costs a tree of maps first.
    #[derive(serde::Serialize)]
    struct GraphMessage<'a> {
        r#type: &'static str,
        graph: &'a framewire_controller::CurrentGraph,
    }
    let msg = GraphMessage {
        r#type: "graph",
        graph: g,
    };
    let text: Utf8Bytes = serde_json::to_string(&msg)
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the graph did not serialise");
            String::new()
        })
        .into();
    *cache = Some((g.clone(), text.clone()));
    text
}

async fn push_graph(
    app: Arc<App>,
    mut socket: WebSocket,
    mut rx: tokio::sync::watch::Receiver<Arc<framewire_controller::CurrentGraph>>,
) {
    let mut alerts = app.alerts.subscribe();
    let mut graph_due = true;
    let mut alerts_due = true;
    loop {
        if graph_due {
            let g = rx.borrow_and_update().clone();
            let text = graph_message(&app, &g);
            if !send(&app, &mut socket, WsMessage::Text(text)).await {
                return;
            }
        }
        if alerts_due {
            let text = alerts.borrow_and_update().clone();
            if !send(&app, &mut socket, WsMessage::Text(text)).await {
                return;
            }
        }
        (graph_due, alerts_due) = (false, false);
        tokio::select! {
            _ = app.stopped() => {
                let _ = send(&app, &mut socket, WsMessage::Close(None)).await;
                return;
            }
            changed = rx.changed() => if changed.is_err() { return } else { graph_due = true },
            changed = alerts.changed() => if changed.is_err() { return } else { alerts_due = true },
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
        data: f.data.clone(),
    });
    // Only a frame over 4 GiB fails to encode; skip such a frame.
    msg.encode().ok().map(|e| Bytes::from(e.to_vec()))
}

async fn open_preview(app: &App, node: &str, stream: &str, passthrough: &[Format]) -> Result<Preview, ApiError> {
    Ok(app.backend.preview(node, stream, passthrough).await?)
}

/// `?codec=h264`: the browser decodes H.264 itself (WebCodecs), so an
/// H.264 stream comes as it is rather than as JPEG.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct PreviewQuery {
    codec: Option<String>,
}

/// GET /ws/preview/{node}/{stream}[?codec=h264] (viewer): binary
/// WebSocket messages, each one whole framewire wire message: a
/// STREAM_OPEN control request on channel 1 (format MJPEG; or H.264 with
/// its parameter sets when the client asked for `codec=h264` and the
/// stream is H.264), then video frames on channel 1 (JPEG pictures, or
/// every H.264 access unit in order).
pub(crate) async fn preview_ws(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((node, stream)): Path<(String, String)>,
    Query(q): Query<PreviewQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let who = app.allow(&method, &headers, Role::Viewer)?;
    app.same_origin(&headers)?;
    // Access is checked first, so a refused caller learns nothing more.
    let slot = stream_slot(&app, &who.user)?;
    let passthrough: &[Format] = match q.codec.as_deref() {
        Some("h264") => &[Format::H264],
        None | Some("jpeg") => &[],
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("codec `{other}` is not one of h264, jpeg"),
            ));
        }
    };
    let preview = open_preview(&app, &node, &stream, passthrough).await?;
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return Ok(e.into_response()),
    };
    let open = wire_open(&preview.open)?;
    let ws = ws
        .max_message_size(app.limits.max_ws_message)
        .max_frame_size(app.limits.max_ws_message);
    Ok(ws.on_upgrade(move |socket| push_preview(app, socket, open, preview, slot)))
}

async fn push_preview(app: Arc<App>, mut socket: WebSocket, open: Bytes, mut preview: Preview, _slot: Slot<String>) {
    if !send(&app, &mut socket, WsMessage::Binary(open)).await {
        return;
    }
    loop {
        tokio::select! {
            _ = app.stopped() => {
                let _ = send(&app, &mut socket, WsMessage::Close(None)).await;
                return;
            }
            f = preview.frames.recv() => {
                let Some(f) = f else {
                    let _ = send(&app, &mut socket, WsMessage::Close(None)).await;
                    return;
                };
                if let Some(bytes) = wire_frame(&f)
                    && !send(&app, &mut socket, WsMessage::Binary(bytes)).await
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
    let who = app.allow(&method, &headers, Role::Viewer)?;
    let stream = file
        .strip_suffix(".mjpeg")
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "MJPEG streams end in .mjpeg"))?;
    let slot = stream_slot(&app, &who.user)?;
    let preview = open_preview(&app, &node, stream, &[]).await?;
    // The slot lives as long as the body; the body ends when the server stops.
    let state = (preview, slot, app.clone(), true);
    let body = futures_util::stream::unfold(state, |(mut p, slot, app, first)| async move {
        let f = tokio::select! {
            f = p.frames.recv() => f?,
            _ = app.stopped() => return None,
        };
        // Each part ends with the next part's boundary: a browser shows a
        // part when it sees the boundary after it, so sending that boundary
        // only with the next picture would hold every picture back a frame.
        let mut part = Vec::with_capacity(f.data.len() + 128);
        if first {
            part.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        }
        part.extend_from_slice(
            format!("Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", f.data.len()).as_bytes(),
        );
        part.extend_from_slice(&f.data);
        part.extend_from_slice(format!("\r\n--{BOUNDARY}\r\n").as_bytes());
        Some((Ok::<_, std::io::Error>(Bytes::from(part)), (p, slot, app, false)))
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
