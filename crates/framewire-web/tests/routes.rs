//! Every route against every role: a table of route × caller → status, and
//! the CSRF, session and open-mode rules. docs/web.md's route table must list
//! exactly the routes tested here.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use framewire_web::auth::{Role, Users, UsersFile};
use framewire_web::router;
use tower::ServiceExt;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Need {
    Public,
    Role(Role),
}

struct Route {
    method: &'static str,
    /// The pattern as docs/web.md writes it.
    pattern: &'static str,
    /// A concrete path to call.
    path: &'static str,
    body: &'static str,
    need: Need,
    /// The answer when access is granted.
    ok: u16,
}

const V: Need = Need::Role(Role::Viewer);
const O: Need = Need::Role(Role::Operator);
const A: Need = Need::Role(Role::Admin);
const EDGE: &str = r#"{"from":"cam","stream":"bars","to":"sink","local_name":"b2"}"#;

fn table(token_id: &'static str) -> Vec<Route> {
    let r = |method, pattern, path, body, need, ok| Route {
        method,
        pattern,
        path,
        body,
        need,
        ok,
    };
    vec![
        r("GET", "/", "/", "", Need::Public, 200),
        r("GET", "/assets/{file}", "/assets/wire.js", "", Need::Public, 200),
        r(
            "POST",
            "/api/login",
            "/api/login",
            r#"{"name":"vera","password":"vera-password"}"#,
            Need::Public,
            200,
        ),
        r("POST", "/api/logout", "/api/logout", "", V, 200),
        r("GET", "/api/session", "/api/session", "", V, 200),
        r("GET", "/api/graph", "/api/graph", "", V, 200),
        r("GET", "/api/wanted", "/api/wanted", "", V, 200),
        r("PUT", "/api/wanted", "/api/wanted", r#"{"edge":[]}"#, O, 200),
        r("POST", "/api/edges", "/api/edges", EDGE, O, 201),
        r("DELETE", "/api/edges/{id}", "/api/edges/sink/bars", "", O, 200),
        r("GET", "/api/nodes/{node}", "/api/nodes/cam", "", V, 200),
        r("DELETE", "/api/nodes/{node}", "/api/nodes/gone", "", O, 200),
        r("GET", "/api/nodes/{node}/v4l2", "/api/nodes/cam/v4l2", "", V, 200),
        r("GET", "/api/host", "/api/host", "", V, 200),
        r(
            "GET",
            "/api/nodes/{node}/archives",
            "/api/nodes/cam/archives",
            "",
            V,
            200,
        ),
        r(
            "POST",
            "/api/nodes/{node}/archives/{stream}/recording",
            "/api/nodes/cam/archives/bars/recording",
            r#"{"recording":false}"#,
            O,
            200,
        ),
        r(
            "GET",
            "/api/nodes/{node}/archives/{stream}/export",
            "/api/nodes/cam/archives/bars/export?from_ms=1000&to_ms=2000",
            "",
            V,
            200,
        ),
        r(
            "POST",
            "/api/nodes/{node}/archives/{stream}/play",
            "/api/nodes/cam/archives/bars/play",
            r#"{"from_ms":1000000,"to_ms":1001000}"#,
            V,
            201,
        ),
        // Nobody played anything here: access is checked before the name is looked up.
        r(
            "DELETE",
            "/api/nodes/{node}/playbacks/{name}",
            "/api/nodes/cam/playbacks/play-0",
            "",
            V,
            404,
        ),
        r("GET", "/api/alerts", "/api/alerts", "", V, 200),
        // No alert is raised here: access is checked before the id is looked up.
        r("POST", "/api/alerts/{id}/ack", "/api/alerts/1/ack", "", O, 404),
        r(
            "DELETE",
            "/api/nodes/{node}/sources/{name}",
            "/api/nodes/cam/sources/wall",
            "",
            O,
            200,
        ),
        r(
            "GET",
            "/api/nodes/{node}/sources/{name}",
            "/api/nodes/cam/sources/wall",
            "",
            V,
            200,
        ),
        r(
            "GET",
            "/api/nodes/{node}/monitors",
            "/api/nodes/cam/monitors",
            "",
            V,
            200,
        ),
        r(
            "POST",
            "/api/nodes/{node}/v4l2",
            "/api/nodes/cam/v4l2",
            r#"{"device":"/dev/video0","values":[{"id":1,"value":7}]}"#,
            O,
            200,
        ),
        r(
            "POST",
            "/api/nodes/{node}/shutdown",
            "/api/nodes/cam/shutdown",
            "",
            A,
            202,
        ),
        r("GET", "/api/users", "/api/users", "", A, 200),
        r(
            "POST",
            "/api/users",
            "/api/users",
            r#"{"name":"newbie","role":"viewer","password":"password9"}"#,
            A,
            201,
        ),
        r(
            "PUT",
            "/api/users/{name}",
            "/api/users/otto",
            r#"{"role":"operator"}"#,
            A,
            200,
        ),
        r("DELETE", "/api/users/{name}", "/api/users/vera", "", A, 200),
        r("GET", "/api/tokens", "/api/tokens", "", A, 200),
        r("POST", "/api/tokens", "/api/tokens", r#"{"user":"otto"}"#, A, 201),
        r(
            "DELETE",
            "/api/tokens/{id}",
            leak(format!("/api/tokens/{token_id}")),
            "",
            A,
            200,
        ),
        r("GET", "/api/latency", "/api/latency", "", V, 200),
        r(
            "POST",
            "/api/latency",
            "/api/latency",
            r#"{"node":"cam","stream":"bars","path":"preview","ages_ms":[12.5]}"#,
            V,
            204,
        ),
        // A WebSocket route that grants access answers 400 to a plain (non-upgrade) request.
        r("GET", "/ws/state", "/ws/state", "", V, 400),
        r("GET", "/ws/preview/{node}/{stream}", "/ws/preview/cam/bars", "", V, 400),
        r(
            "GET",
            "/stream/{node}/{stream}.mjpeg",
            "/stream/cam/bars.mjpeg",
            "",
            V,
            200,
        ),
        r(
            "GET",
            "/snapshot/{node}/{stream}.jpg",
            "/snapshot/cam/bars.jpg",
            "",
            V,
            200,
        ),
        r("GET", "/thumb/{node}/{stream}.jpg", "/thumb/cam/bars.jpg", "", V, 200),
        // This router serves no HLS directory: a viewer is told so (404).
        r("GET", "/hls/{name}/{file}", "/hls/cam/index.m3u8", "", V, 404),
        // JSON is not an SDP offer (415); no such session (404).
        r("POST", "/whep/{node}/{stream}", "/whep/cam/bars", "{}", V, 415),
        r(
            "DELETE",
            "/whep/{node}/{stream}/{id}",
            "/whep/cam/bars/none",
            "",
            V,
            404,
        ),
    ]
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

async fn call(users: &UsersFile, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let app = router(common::Fake::new(), Users::from_file(users.clone()), false);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:7480");
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        app.oneshot(req.body(Body::from(body.to_owned())).unwrap()),
    )
    .await
    .expect("answer in time")
    .unwrap();
    let status = resp.status().as_u16();
    let text = if path.starts_with("/stream/") {
        String::new() // an endless body
    } else {
        let b = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        String::from_utf8_lossy(&b).into_owned()
    };
    (status, text)
}

#[tokio::test]
async fn every_route_against_every_role() {
    let (users, tokens) = common::users();
    let token_id: &'static str = leak(users.tokens[0].id.clone());
    let callers: [(&str, Option<Role>, Option<&str>); 4] = [
        ("nobody", None, None),
        ("viewer", Some(Role::Viewer), Some(&tokens[0])),
        ("operator", Some(Role::Operator), Some(&tokens[1])),
        ("admin", Some(Role::Admin), Some(&tokens[2])),
    ];
    let mut failures = Vec::new();
    for route in table(token_id) {
        for (who, role, token) in &callers {
            let auth = token.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
            let (status, body) = call(&users, route.method, route.path, route.body, &headers).await;
            let want = match (route.need, role) {
                (Need::Public, _) => route.ok,
                (Need::Role(_), None) => 401,
                (Need::Role(need), Some(r)) if *r < need => 403,
                _ => route.ok,
            };
            if status != want {
                failures.push(format!(
                    "{} {} as {who}: got {status}, want {want}: {body}",
                    route.method, route.path
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn docs_list_exactly_the_tested_routes() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/web.md")).unwrap();
    let documented: BTreeSet<(String, String, String)> = doc
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            // | METHOD | `path` | role | what |
            if cells.len() < 5 || !matches!(cells[1], "GET" | "POST" | "PUT" | "DELETE") {
                return None;
            }
            Some((
                cells[1].to_owned(),
                cells[2].trim_matches('`').to_owned(),
                cells[3].to_owned(),
            ))
        })
        .collect();
    let tested: BTreeSet<(String, String, String)> = table("x")
        .iter()
        .map(|r| {
            let role = match r.need {
                Need::Public => "public".to_owned(),
                Need::Role(role) => role.to_string(),
            };
            (r.method.to_owned(), r.pattern.to_owned(), role)
        })
        .collect();
    assert_eq!(
        documented, tested,
        "docs/web.md's route table and this test's table differ"
    );
}

/// Logs in as `name` and returns (cookie header, csrf token).
async fn login(users: &UsersFile, app: &axum::Router, name: &str) -> (String, String) {
    let _ = users;
    let req = Request::builder()
        .method("POST")
        .uri("/api/login")
        .header("host", "127.0.0.1:7480")
        .header("content-type", "application/json")
        .body(Body::from(format!(
            r#"{{"name":"{name}","password":"{name}-password"}}"#
        )))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP server must not set Secure by default: {cookie}"
    );
    let b = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    (
        cookie.split(';').next().unwrap().to_owned(),
        v["csrf"].as_str().unwrap().to_owned(),
    )
}

async fn send(app: &axum::Router, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:7480");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    app.clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_to_change_state() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (users, _) = common::users();
        let fake = common::Fake::new();
        let app = router(fake.clone(), Users::from_file(users.clone()), false);
        let (cookie, csrf) = login(&users, &app, "otto").await;
        // Reading needs no token.
        assert_eq!(send(&app, "GET", "/api/graph", &[("cookie", &cookie)], "").await, 200);
        // Changing state without, or with a wrong, token is refused and changes nothing.
        assert_eq!(
            send(&app, "POST", "/api/edges", &[("cookie", &cookie)], EDGE).await,
            403
        );
        assert_eq!(
            send(
                &app,
                "POST",
                "/api/edges",
                &[("cookie", &cookie), ("x-csrf-token", "nope")],
                EDGE
            )
            .await,
            403
        );
        assert!(fake.wanted.lock().unwrap().edges.is_empty());
        assert_eq!(
            send(
                &app,
                "POST",
                "/api/edges",
                &[("cookie", &cookie), ("x-csrf-token", &csrf)],
                EDGE
            )
            .await,
            201
        );
        assert_eq!(fake.wanted.lock().unwrap().edges.len(), 1);
        // A made-up session is not one.
        assert_eq!(
            send(&app, "GET", "/api/graph", &[("cookie", "fw_session=00ff")], "").await,
            401
        );
        // Logout ends it.
        assert_eq!(
            send(
                &app,
                "POST",
                "/api/logout",
                &[("cookie", &cookie), ("x-csrf-token", &csrf)],
                ""
            )
            .await,
            200
        );
        assert_eq!(send(&app, "GET", "/api/graph", &[("cookie", &cookie)], "").await, 401);
        let json = [("content-type", "application/json")];
        // Wrong password.
        assert_eq!(
            send(
                &app,
                "POST",
                "/api/login",
                &json,
                r#"{"name":"otto","password":"otto-passwordX"}"#
            )
            .await,
            401
        );
        assert_eq!(
            send(
                &app,
                "POST",
                "/api/login",
                &json,
                r#"{"name":"nobody","password":"whatever1"}"#
            )
            .await,
            401
        );
        assert_eq!(send(&app, "POST", "/api/login", &json, "{not json").await, 400);
        // A form post from another site (no JSON content type) cannot log anyone in.
        let form = [("content-type", "text/plain")];
        assert_eq!(
            send(
                &app,
                "POST",
                "/api/login",
                &form,
                r#"{"name":"otto","password":"otto-password"}"#
            )
            .await,
            415
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_viewer_session_cannot_wire() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (users, _) = common::users();
        let fake = common::Fake::new();
        let app = router(fake.clone(), Users::from_file(users.clone()), false);
        let (cookie, csrf) = login(&users, &app, "vera").await;
        let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
        assert_eq!(send(&app, "POST", "/api/edges", &h, EDGE).await, 403);
        assert_eq!(send(&app, "DELETE", "/api/edges/sink/bars", &h, "").await, 403);
        assert_eq!(
            send(&app, "POST", "/api/nodes/cam/v4l2", &h, r#"{"device":"d","values":[]}"#).await,
            403
        );
        assert!(fake.wanted.lock().unwrap().edges.is_empty());
        assert!(fake.requests.lock().unwrap().is_empty());
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn open_mode_is_loopback_only_and_still_needs_csrf() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let fake = common::Fake::new();
        let app = router(fake.clone(), Users::from_file(UsersFile::default()), false);
        // Anyone on loopback is admin...
        let req = Request::builder()
            .uri("/api/session")
            .header("host", "localhost:7480")
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let v: serde_json::Value =
            serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap()).unwrap();
        assert_eq!((v["role"].as_str(), v["open"].as_bool()), (Some("admin"), Some(true)));
        let csrf = v["csrf"].as_str().unwrap().to_owned();
        // ...but a page reaching it under another host name is not (DNS rebinding).
        let req = Request::builder()
            .uri("/api/graph")
            .header("host", "evil.example:7480")
            .body(Body::empty())
            .unwrap();
        assert_eq!(app.clone().oneshot(req).await.unwrap().status(), StatusCode::FORBIDDEN);
        // Changing state needs the token from /api/session.
        assert_eq!(send(&app, "POST", "/api/edges", &[], EDGE).await, 403);
        assert_eq!(
            send(&app, "POST", "/api/edges", &[("x-csrf-token", &csrf)], EDGE).await,
            201
        );
        // And there is nobody to log in as.
        assert_eq!(
            send(
                &app,
                "POST",
                "/api/login",
                &[("content-type", "application/json")],
                r#"{"name":"a","password":"b"}"#
            )
            .await,
            400
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn refuses_open_mode_on_a_non_loopback_address() {
    let cfg = framewire_web::WebConfig::new("0.0.0.0:0".parse().unwrap());
    let err = framewire_web::WebServer::bind(cfg, common::Fake::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no users configured") && err.contains("framewire user add"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (users, tokens) = common::users();
        let auth = format!("Bearer {}", tokens[2]);
        let app = router(common::Fake::new(), Users::from_file(users), false);
        let h = [("authorization", auth.as_str())];
        let cases = [
            ("POST", "/api/edges", "{}", 400),
            (
                "POST",
                "/api/edges",
                r#"{"from":"ghost","stream":"bars","to":"sink"}"#,
                404,
            ),
            ("PUT", "/api/wanted", r#"{"edges":[]}"#, 400),
            ("DELETE", "/api/edges/sink/ghost", "", 404),
            ("GET", "/api/nodes/ghost", "", 404),
            ("GET", "/ws/preview/cam/ghost", "", 404),
            ("GET", "/stream/cam/bars.jpg", "", 404),
            (
                "POST",
                "/api/users",
                r#"{"name":"x","role":"root","password":"password1"}"#,
                400,
            ),
            (
                "POST",
                "/api/users",
                r#"{"name":"ada","role":"admin","password":"password1"}"#,
                409,
            ),
            ("GET", "/nope", "", 404),
        ];
        for (m, p, b, want) in cases {
            assert_eq!(send(&app, m, p, &h, b).await, want, "{m} {p} {b}");
        }
        assert_eq!(
            send(&app, "GET", "/api/graph", &[("authorization", "Bearer fw_0_0")], "").await,
            401
        );
        assert_eq!(
            send(&app, "GET", "/api/graph", &[("authorization", "Basic abc")], "").await,
            401
        );
        // A TOML wanted graph is accepted with its content type.
        let toml = "[[edge]]\nfrom = \"cam\"\nstream = \"bars\"\nto = \"sink\"\n";
        assert_eq!(
            send(
                &app,
                "PUT",
                "/api/wanted",
                &[h[0], ("content-type", "application/toml")],
                toml
            )
            .await,
            200
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn v4l2_panel_data_has_a_widget_per_type() {
    let (users, tokens) = common::users();
    let auth = format!("Bearer {}", tokens[0]);
    let (status, body) = call(&users, "GET", "/api/nodes/cam/v4l2", "", &[("authorization", &auth)]).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let controls = v["devices"][0]["controls"].as_array().unwrap();
    let widgets: Vec<(&str, &str)> = controls
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["widget"].as_str().unwrap()))
        .collect();
    assert_eq!(
        widgets,
        [
            ("Brightness", "slider"),
            ("Mirror", "toggle"),
            ("Power line", "menu"),
            ("Reset", "button")
        ],
        "class markers are left out"
    );
    assert_eq!(controls[0]["value"], 128);
    assert_eq!(controls[2]["menu"][1]["name"], "50 Hz");
}

#[allow(dead_code)]
fn _assert_send(_: Arc<common::Fake>) {}

/// Two people edit the wanted graph: the second write, based on the version
/// before the first, is refused with 412 and the current version; nothing
/// changes. Without If-Match (or with `*`) a write goes through.
#[tokio::test]
async fn a_stale_write_of_the_wanted_graph_is_refused_with_the_current_version() {
    let (users, tokens) = common::users();
    let fake = common::Fake::new();
    let app = router(fake.clone(), Users::from_file(users), false);
    let bearer = format!("Bearer {}", tokens[1]);
    let call = |method: &str, if_match: Option<&str>, body: &str| {
        let mut req = Request::builder()
            .method(method)
            .uri("/api/wanted")
            .header("host", "127.0.0.1:7480")
            .header("authorization", bearer.as_str());
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        if let Some(v) = if_match {
            req = req.header("if-match", v);
        }
        let req = req.body(Body::from(body.to_owned())).unwrap();
        let app = app.clone();
        async move {
            let resp = tokio::time::timeout(Duration::from_secs(10), app.oneshot(req))
                .await
                .expect("answer in time")
                .unwrap();
            let status = resp.status().as_u16();
            let etag = resp.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
            let b = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            (
                status,
                etag,
                serde_json::from_slice::<serde_json::Value>(&b).unwrap_or_default(),
            )
        }
    };
    let (status, v0, _) = call("GET", None, "").await;
    assert_eq!(status, 200);
    let v0 = v0.expect("GET /api/wanted gives an ETag");
    let one = r#"{"edge":[{"from":"cam","stream":"bars","to":"sink"}]}"#;
    let two = r#"{"edge":[{"from":"cam","stream":"bars","to":"sink","local_name":"b2"}]}"#;
    // Alice writes on v0: accepted, with the new version.
    let (status, v1, body) = call("PUT", Some(&v0), one).await;
    assert_eq!(status, 200, "{body}");
    let v1 = v1.expect("PUT answers the new ETag");
    assert_ne!(v1, v0);
    assert_eq!(format!("\"{}\"", body["version"].as_str().unwrap()), v1);
    // Bob writes on v0 too: refused, told the current version; nothing changed.
    let (status, _, body) = call("PUT", Some(&v0), two).await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(format!("\"{}\"", body["version"].as_str().unwrap()), v1);
    assert!(
        body["error"].as_str().unwrap().contains("changed since version"),
        "{body}"
    );
    assert_eq!(fake.wanted.lock().unwrap().edges.len(), 1);
    assert_eq!(fake.wanted.lock().unwrap().edges[0].local_name, "");
    // On the current version, and with `*` or no If-Match, it goes through.
    let (status, v2, _) = call("PUT", Some(&v1), two).await;
    assert_eq!(status, 200);
    assert_eq!(call("GET", None, "").await.1, v2);
    assert_eq!(call("PUT", Some("*"), one).await.0, 200);
    assert_eq!(call("PUT", None, two).await.0, 200);
    assert_eq!(call("PUT", Some("not-quoted"), two).await.0, 400);
}

/// Forgetting a node: an offline one goes (once), an online one is refused
/// with 409, an unknown one is 404.
#[tokio::test]
async fn only_an_offline_node_can_be_forgotten() {
    let (users, tokens) = common::users();
    let app = router(common::Fake::new(), Users::from_file(users), false);
    let bearer = format!("Bearer {}", tokens[1]);
    let delete = |path: &'static str| {
        let req = Request::builder()
            .method("DELETE")
            .uri(path)
            .header("host", "127.0.0.1:7480")
            .header("authorization", bearer.as_str())
            .body(Body::empty())
            .unwrap();
        let app = app.clone();
        async move { app.oneshot(req).await.unwrap().status().as_u16() }
    };
    assert_eq!(delete("/api/nodes/gone").await, 200);
    assert_eq!(delete("/api/nodes/gone").await, 404);
    assert_eq!(delete("/api/nodes/cam").await, 409);
}

/// A WHEP offer that is not SDP, or too large, is refused with the reason;
/// the server goes on.
#[tokio::test]
async fn nonsense_whep_offers_are_refused_alone() {
    let (users, tokens) = common::users();
    let app = router(common::Fake::new(), Users::from_file(users.clone()), false);
    let post = |body: Vec<u8>| {
        Request::builder()
            .method("POST")
            .uri("/whep/cam/bars")
            .header("host", "127.0.0.1:7480")
            .header("authorization", format!("Bearer {}", tokens[0]))
            .header("content-type", "application/sdp")
            .body(Body::from(body))
            .unwrap()
    };
    for (body, status, says) in [
        (b"v=0\r\nnonsense\r\n".to_vec(), 400, "does not parse"),
        (vec![0xff, 0xfe, 0x00], 400, "not UTF-8"),
        (vec![b'a'; 70_000], 413, "too large"),
    ] {
        let resp = tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(post(body)))
            .await
            .expect("answer in time")
            .unwrap();
        assert_eq!(resp.status().as_u16(), status);
        let b = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        assert!(
            String::from_utf8_lossy(&b).contains(says),
            "{}",
            String::from_utf8_lossy(&b)
        );
    }
    let (status, _) = call(
        &users,
        "GET",
        "/api/session",
        "",
        &[("authorization", &format!("Bearer {}", tokens[0]))],
    )
    .await;
    assert_eq!(status, 200, "the server goes on");
}
