//! `GET /hls/NAME/FILE`: the playlists and segments `hls` sinks write
//! under the directory the server was given (`WebConfig::hls_dir`), for
//! viewers and above. A playlist changes with every segment and is never
//! cached; a segment never changes once listed and is cached for a day
//! (privately when users log in, by any cache in open mode).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;

use crate::auth::Role;
use crate::{ApiError, App};

/// A name or file as `hls` sinks write them: no path, no hidden file.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

pub(crate) async fn file(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((name, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let who = app.allow(&method, &headers, Role::Viewer)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, format!("no HLS file {name}/{file}"));
    let Some(root) = &app.hls_dir else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this server serves no HLS directory (framewire node --web-hls DIR)",
        ));
    };
    if !plain(&name) || !plain(&file) {
        return Err(not_found());
    }
    let (kind, cache) = if file.ends_with(".m3u8") {
        ("application/vnd.apple.mpegurl", "no-cache".to_owned())
    } else if file.ends_with(".ts") {
        let scope = if who.open { "public" } else { "private" };
        ("video/mp2t", format!("{scope}, max-age=86400, immutable"))
    } else {
        return Err(not_found());
    };
    let f = tokio::fs::File::open(root.join(&name).join(&file))
        .await
        .map_err(|_| not_found())?;
    let len = f.metadata().await.map_err(|_| not_found())?.len();
    // Read as sent, 64 KiB at a time: a long segment is never held whole.
    let body = futures_util::stream::unfold(Some(f), |f| async move {
        use tokio::io::AsyncReadExt;
        let mut f = f?;
        let mut buf = vec![0u8; 64 << 10];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, kind)
        .header(header::CACHE_CONTROL, cache)
        .header(header::CONTENT_LENGTH, len)
        .body(Body::from_stream(body))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_names_are_served() {
        for ok in ["cam", "index.m3u8", "segment-000001.ts", "a~h264"] {
            assert!(super::plain(ok), "{ok}");
        }
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "%2e%2e", "a b", &"x".repeat(129)] {
            assert!(!super::plain(bad), "{bad}");
        }
    }
}
