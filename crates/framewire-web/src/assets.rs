//! The browser UI, embedded in the binary (no CDN, no build step).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../assets/index.html");

/// (name, content type, bytes) of every asset under /assets/.
const FILES: &[(&str, &str, &str)] = &[
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/admin.js"),
    ),
    (
        "alerts.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/alerts.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "compose.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/compose.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/dom.js"),
    ),
    (
        "graph.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/graph.js"),
    ),
    (
        "graphlayout.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/graphlayout.js"),
    ),
    (
        "host.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/host.js"),
    ),
    (
        "latency.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/latency.js"),
    ),
    (
        "multiview.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/multiview.js"),
    ),
    (
        "players.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/players.js"),
    ),
    (
        "recordings.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/recordings.js"),
    ),
    (
        "sources.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/sources.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/views.js"),
    ),
    (
        "wanted.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/wanted.js"),
    ),
    (
        "wire.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/wire.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    ),
];

/// GET / (public): the page; it asks /api/session and shows a login form when needed.
pub(crate) async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, crate::access::CSP_PAGE),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

/// GET /assets/{file} (public).
pub(crate) async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => (
            [(header::CONTENT_TYPE, *ct), (header::CACHE_CONTROL, "no-cache")],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
