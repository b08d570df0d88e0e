//! Thumbnails: a small JPEG of each stream for the graph, made at most
//! once per [`MAX_AGE`] per stream however many pages show it (one
//! SNAPSHOT to the node, the picture decoded at a reduced size).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use framewire_codec::{Registry, frame_to_thumbnail};

use crate::auth::Role;
use crate::{ApiError, App};

/// A thumbnail younger than this is served as it is.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(2);
/// Thumbnails are at least this wide (the smallest DCT scale that is).
pub(crate) const WIDTH: u32 = 160;
/// Their JPEG quality.
const QUALITY: u8 = 70;
/// Streams remembered before old ones are forgotten.
const MAX_ENTRIES: usize = 512;

type Entry = Arc<tokio::sync::Mutex<Option<(Instant, Bytes)>>>;

/// The newest thumbnail of each stream asked for.
#[derive(Debug, Default)]
pub(crate) struct Thumbs {
    entries: Mutex<HashMap<(String, String), Entry>>,
}

impl Thumbs {
    fn entry(&self, node: &str, stream: &str) -> Entry {
        let mut map = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_ENTRIES {
            // Forget what nobody is making or holding now.
            map.retain(|_, e| {
                Arc::strong_count(e) > 1
                    || e.try_lock()
                        .is_ok_and(|t| t.as_ref().is_some_and(|(at, _)| at.elapsed() < MAX_AGE))
            });
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.entry((node.to_owned(), stream.to_owned())).or_default().clone()
    }
}

/// GET /thumb/{node}/{stream}.jpg (viewer): a small JPEG of the stream's
/// latest frame, at most [`MAX_AGE`] old.
pub(crate) async fn thumbnail(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((node, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    app.allow(&method, &headers, Role::Viewer)?;
    let stream = file
        .strip_suffix(".jpg")
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "thumbnails end in .jpg"))?;
    let entry = app.thumbs.entry(&node, stream);
    // One page makes it; the others wait for it and take it.
    let mut slot = entry.lock().await;
    let jpeg = match &*slot {
        Some((at, jpeg)) if at.elapsed() < MAX_AGE => jpeg.clone(),
        _ => {
            let jpeg = make(&app, &node, stream).await?;
            *slot = Some((Instant::now(), jpeg.clone()));
            jpeg
        }
    };
    drop(slot);
    let mut resp = (StatusCode::OK, jpeg).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=2"));
    Ok(resp)
}

async fn make(app: &App, node: &str, stream: &str) -> Result<Bytes, ApiError> {
    let snap = crate::snapshot::latest_frame(app, node, stream).await?;
    app.pictures
        .make(move || frame_to_thumbnail(&Registry::builtin(), &snap.open, &snap.data, WIDTH, QUALITY))
        .await?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
}
