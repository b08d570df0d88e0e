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
use tokio::sync::Semaphore;

use crate::auth::Role;
use crate::stream::stream_slot;
use crate::{ApiError, App};

/// How long in-flight frames may take on a node stopped from the web UI.
const SHUTDOWN_GRACE_MS: u32 = 2000;

/// Pictures (snapshots and thumbnails) made at once. Making one from an
/// H.264 or H.265 stream holds a decoder (about 6 MiB at 640x360) and a
/// core while it runs, so requests that come together are made one after
/// another: a burst of them costs one decoder's memory, not one each.
pub(crate) const PICTURES_AT_ONCE: usize = 1;

/// Where pictures are made: off the async workers, [`PICTURES_AT_ONCE`] at
/// a time.
#[derive(Debug, Clone)]
pub(crate) struct Pictures(Arc<Semaphore>);

impl Default for Pictures {
    fn default() -> Self {
        Pictures(Arc::new(Semaphore::new(PICTURES_AT_ONCE)))
    }
}

impl Pictures {
    /// Runs `make` on the blocking pool when its turn comes. The turn is
    /// held until `make` returns, even when the request is dropped first.
    pub(crate) async fn make<T: Send + 'static>(
        &self,
        make: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let turn = self
            .0
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "pictures are no longer made"))?;
        tokio::task::spawn_blocking(move || {
            let made = make();
            drop(turn);
            made
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the encoder stopped: {e}")))
    }
}

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
    let jpeg = app
        .pictures
        .make(move || frame_to_jpeg(&Registry::builtin(), &snap.open, &snap.data, DEFAULT_JPEG_QUALITY))
        .await?
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Counts the pictures being made and the most at once.
    #[derive(Default)]
    struct Busy {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    impl Busy {
        fn work(&self, for_: Duration) {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(for_);
            self.now.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pictures_asked_together_are_made_one_at_a_time() {
        let pictures = Pictures::default();
        let busy = Arc::new(Busy::default());
        let asks = (0..6).map(|_| {
            let (p, b) = (pictures.clone(), busy.clone());
            tokio::spawn(async move { p.make(move || b.work(Duration::from_millis(30))).await })
        });
        for a in asks.collect::<Vec<_>>() {
            tokio::time::timeout(Duration::from_secs(10), a)
                .await
                .expect("in time")
                .unwrap()
                .unwrap();
        }
        assert_eq!(busy.most.load(Ordering::SeqCst), PICTURES_AT_ONCE);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_picture_whose_request_went_keeps_its_turn_until_made() {
        let pictures = Pictures::default();
        let busy = Arc::new(Busy::default());
        let (p, b) = (pictures.clone(), busy.clone());
        let first = tokio::spawn(async move { p.make(move || b.work(Duration::from_millis(300))).await });
        // The first is being made; its request goes away.
        tokio::time::timeout(Duration::from_secs(10), async {
            while busy.now.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the first picture starts");
        first.abort();
        let b = busy.clone();
        tokio::time::timeout(
            Duration::from_secs(10),
            pictures.make(move || b.work(Duration::from_millis(10))),
        )
        .await
        .expect("in time")
        .unwrap();
        assert_eq!(
            busy.most.load(Ordering::SeqCst),
            1,
            "the second was made beside the first"
        );
    }
}
