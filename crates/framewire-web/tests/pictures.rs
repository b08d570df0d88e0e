//! Pictures of a stream over HTTP: a snapshot (one JPEG of the latest
//! frame, whatever the stream carries) and a thumbnail (a small one, made
//! at most once per two seconds however many ask).

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use framewire_web::auth::Users;
use framewire_web::router;
use tower::ServiceExt;

/// A GET as the first user (a bearer token) → (parts, body).
fn getter(
    app: axum::Router,
    token: &str,
) -> impl Fn(&str) -> std::pin::Pin<Box<dyn std::future::Future<Output = (axum::http::response::Parts, bytes::Bytes)>>>
{
    let bearer = format!("Bearer {token}");
    move |path: &str| {
        let req = Request::builder()
            .uri(path)
            .header("host", "127.0.0.1:7480")
            .header("authorization", bearer.as_str())
            .body(Body::empty())
            .unwrap();
        let app = app.clone();
        Box::pin(async move {
            let resp = tokio::time::timeout(Duration::from_secs(10), app.oneshot(req))
                .await
                .expect("answer in time")
                .unwrap();
            let (parts, body) = resp.into_parts();
            (parts, axum::body::to_bytes(body, 1 << 20).await.unwrap())
        })
    }
}

fn decode(jpeg: &bytes::Bytes) -> (u32, u32) {
    let open = framewire_proto::StreamOpen {
        format: framewire_proto::Format::Mjpeg,
        pixel_format: framewire_proto::PixelFormat::None,
        origin: framewire_proto::Origin::LibjpegTurbo,
        width: 0,
        height: 0,
        fps_num: 0,
        fps_den: 1,
        name: "bars".into(),
        codec_config: Default::default(),
    };
    let p = framewire_codec::Registry::builtin()
        .negotiate(&open)
        .unwrap()
        .decode(jpeg)
        .expect("decodes as JPEG");
    (p.width(), p.height())
}

fn snapshots(fake: &common::Fake, stream: &str) -> usize {
    fake.requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, r)| n == "cam" && matches!(r, framewire_proto::control::Request::Snapshot(s) if s.name == stream))
        .count()
}

/// A snapshot is a JPEG picture of the node's latest frame even when the
/// stream is raw; an unknown stream and another extension are refused.
#[tokio::test]
async fn a_snapshot_is_a_jpeg_whatever_the_stream_carries() {
    let (users, tokens) = common::users();
    let fake = common::Fake::new();
    let app = router(fake.clone(), Users::from_file(users), false);
    let get = getter(app, &tokens[0]);
    let (parts, body) = get("/snapshot/cam/bars.jpg").await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-type"], "image/jpeg");
    assert_eq!(parts.headers["cache-control"], "no-store");
    assert_eq!(parts.headers["x-framewire-sequence"], "42");
    assert_eq!(decode(&body), (8, 8));
    assert_eq!(snapshots(&fake, "bars"), 1);

    let (parts, body) = get("/snapshot/cam/nothing.jpg").await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
    assert!(String::from_utf8_lossy(&body).contains("no frame of a stream named `nothing`"));
    let (parts, _) = get("/snapshot/cam/bars.png").await;
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
}

/// A thumbnail is a JPEG of the latest frame, asked of the node once
/// however many pages want it within two seconds; an unknown stream is the
/// node's refusal.
#[tokio::test]
async fn a_thumbnail_is_made_once_for_every_page_that_shows_it() {
    let (users, tokens) = common::users();
    let fake = common::Fake::new();
    let app = router(fake.clone(), Users::from_file(users), false);
    let get = getter(app, &tokens[0]);
    let answers = futures_util::future::join_all((0..20).map(|_| get("/thumb/cam/bars.jpg"))).await;
    for (parts, body) in &answers {
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers["content-type"], "image/jpeg");
        assert_eq!(decode(body), (8, 8), "a picture too small to scale comes as it is");
    }
    assert_eq!(snapshots(&fake, "bars"), 1, "20 pages, one SNAPSHOT");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (parts, _) = get("/thumb/cam/bars.jpg").await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(snapshots(&fake, "bars"), 2, "older than 2 s: made again");
    let (parts, body) = get("/thumb/cam/nothing.jpg").await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
    assert!(String::from_utf8_lossy(&body).contains("no frame of a stream named `nothing`"));
}
