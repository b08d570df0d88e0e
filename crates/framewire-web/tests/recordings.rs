//! Recordings over HTTP against a fake controller: the listing in ms, and
//! playbacks capped per user, stopped only by their user (or an admin).

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use framewire_proto::control::Request as NodeRequest;
use framewire_web::auth::Users;
use framewire_web::router;
use tower::ServiceExt;

async fn call(app: &axum::Router, token: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:7480")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(req))
        .await
        .expect("an answer in time")
        .unwrap();
    let status = resp.status().as_u16();
    let b = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&b).unwrap_or_default())
}

#[tokio::test]
async fn recordings_are_listed_in_ms_and_playbacks_are_capped_per_user() {
    let (users, tokens) = common::users();
    let fake = common::Fake::new();
    let app = router(fake.clone(), Users::from_file(users), false);
    let (vera, otto, ada) = (&tokens[0], &tokens[1], &tokens[2]);

    let (s, v) = call(&app, vera, "GET", "/api/nodes/cam/archives?from_ms=0&to_ms=3000000", "").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["archives"][0]["stream"], "bars");
    assert_eq!(v["archives"][0]["segments"][0]["start_ms"], 1_000_000.0);
    assert_eq!(v["archives"][0]["segments"][0]["end_ms"], 2_000_000.0);
    let asked = fake
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|(_, r)| matches!(r, NodeRequest::ArchiveList(q) if q.from_ns == 0 && q.to_ns == 3_000_000_000_000));
    assert!(asked, "the window went to the node in ns");
    let (s, _) = call(&app, vera, "GET", "/api/nodes/cam/archives?from_ms=5&to_ms=5", "").await;
    assert_eq!(s, 400);

    // Five playbacks: the fifth stops vera's first.
    let mut names = Vec::new();
    for _ in 0..5 {
        let (s, v) = call(
            &app,
            vera,
            "POST",
            "/api/nodes/cam/archives/bars/play",
            r#"{"from_ms":1000000,"to_ms":1001000}"#,
        )
        .await;
        assert_eq!(s, 201, "{v}");
        names.push(v["name"].as_str().unwrap().to_owned());
    }
    let table = fake.requests.lock().unwrap().iter().find_map(|(_, r)| match r {
        NodeRequest::SourceAdd(t) => Some(t.table.clone()),
        _ => None,
    });
    let table = table.unwrap();
    assert!(
        table.contains("kind = \"archive\"") && table.contains("stream = \"bars\""),
        "{table}"
    );
    assert!(
        table.contains("from = \"1000.000\"") && table.contains("to = \"1001.000\""),
        "{table}"
    );
    let removed: Vec<String> = fake
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, r)| match r {
            NodeRequest::SourceRemove(n) => Some(n.name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(removed, [names[0].clone()], "past 4, the oldest stops");
    let (s, _) = call(
        &app,
        vera,
        "DELETE",
        &format!("/api/nodes/cam/playbacks/{}", names[0]),
        "",
    )
    .await;
    assert_eq!(s, 404, "stopped already");
    // Not otto's to stop; vera's own and an admin's stop work.
    let (s, _) = call(
        &app,
        otto,
        "DELETE",
        &format!("/api/nodes/cam/playbacks/{}", names[1]),
        "",
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &app,
        vera,
        "DELETE",
        &format!("/api/nodes/cam/playbacks/{}", names[1]),
        "",
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &app,
        ada,
        "DELETE",
        &format!("/api/nodes/cam/playbacks/{}", names[2]),
        "",
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = call(
        &app,
        vera,
        "POST",
        "/api/nodes/cam/archives/bars/play",
        r#"{"from_ms":5,"to_ms":5}"#,
    )
    .await;
    assert_eq!(s, 400, "{v}");
}

/// An export comes as one attachment of the node's chunks, in order.
#[tokio::test]
async fn an_export_downloads_in_chunks_as_one_file() {
    let (users, tokens) = common::users();
    let fake = common::Fake::new();
    let app = router(fake.clone(), Users::from_file(users), false);
    let req = Request::builder()
        .uri("/api/nodes/cam/archives/bars/export?from_ms=1764878400000&to_ms=1764878410000")
        .header("host", "127.0.0.1:7480")
        .header("authorization", format!("Bearer {}", tokens[0]))
        .body(Body::empty())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "video/x-matroska");
    assert_eq!(resp.headers()["content-length"], (5u64 << 19).to_string().as_str());
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"bars-20251204T200000.000Z.mkv\""
    );
    let body = axum::body::to_bytes(resp.into_body(), 8 << 20).await.unwrap();
    assert_eq!(body.len(), 5 << 19);
    assert!(
        body.iter().enumerate().all(|(i, b)| *b == i as u8),
        "the chunks in order"
    );
    let offsets: Vec<u64> = fake
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, r)| match r {
            NodeRequest::ArchiveRead(r) => Some(r.offset),
            _ => None,
        })
        .collect();
    assert_eq!(offsets, [0, 1 << 20, 2 << 20], "1 MiB per read");
    let req = Request::builder()
        .uri("/api/nodes/cam/archives/bars/export?from_ms=5")
        .header("host", "127.0.0.1:7480")
        .header("authorization", format!("Bearer {}", tokens[0]))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.oneshot(req).await.unwrap().status(), 400);
}
