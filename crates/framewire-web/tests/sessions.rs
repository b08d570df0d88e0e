//! Logins, sessions and tokens over time: the backoff after failed logins,
//! sessions and tokens that end when their user's credential changes, and
//! tokens that expire.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use framewire_web::auth::{Role, USERS_FILE, Users, UsersFile};
use framewire_web::router;
use tempfile::TempDir;
use tower::ServiceExt;

/// A users file in a scratch directory (removed when the test ends).
fn users_file(tag: &str) -> (TempDir, PathBuf) {
    let d = tempfile::Builder::new()
        .prefix(&format!("fw-web-sessions-{tag}-"))
        .tempdir()
        .unwrap();
    let path = d.path().join(USERS_FILE);
    common::users().0.save(&path).unwrap();
    (d, path)
}

/// (status, headers, body) of one request.
async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, axum::http::HeaderMap, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:7480");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(20),
        app.clone().oneshot(req.body(Body::from(body.to_owned())).unwrap()),
    )
    .await
    .expect("an answer in time")
    .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let b = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8_lossy(&b).into_owned())
}

async fn login(app: &axum::Router, name: &str, password: &str) -> (u16, Option<String>, axum::http::HeaderMap) {
    let body = format!(r#"{{"name":"{name}","password":"{password}"}}"#);
    let (status, headers, _) = call(
        app,
        "POST",
        "/api/login",
        &[("content-type", "application/json")],
        &body,
    )
    .await;
    let cookie = headers
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned());
    (status, cookie, headers)
}

fn change(path: &Path, f: impl FnOnce(&mut UsersFile)) {
    let mut file = UsersFile::load(path).unwrap();
    f(&mut file);
    file.save(path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_or_changed_users_sessions_and_tokens_end() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (_dir, path) = users_file("reset");
        let app = router(common::Fake::new(), Users::open(Some(path.clone())).unwrap(), false);
        // vera (viewer) logs in; then she is removed and added again as an
        // admin with another password (framewire user remove / add).
        let (status, cookie, _) = login(&app, "vera", "vera-password").await;
        assert_eq!(status, 200);
        let vera = cookie.unwrap();
        assert_eq!(call(&app, "GET", "/api/session", &[("cookie", &vera)], "").await.0, 200);
        change(&path, |f| {
            f.remove_user("vera").unwrap();
            f.add_user("vera", Role::Admin, "a-new-password").unwrap();
        });
        let (status, _, body) = call(&app, "GET", "/api/session", &[("cookie", &vera)], "").await;
        assert_eq!(
            status, 401,
            "the old viewer cookie must not act as the new admin: {body}"
        );
        assert_eq!(call(&app, "GET", "/api/users", &[("cookie", &vera)], "").await.0, 401);

        // otto's password changes (framewire user passwd): his session and token end.
        let (_, cookie, _) = login(&app, "otto", "otto-password").await;
        let otto = cookie.unwrap();
        let token = {
            let mut t = None;
            change(&path, |f| t = Some(f.add_token("otto", None).unwrap()));
            format!("Bearer {}", t.unwrap())
        };
        assert_eq!(
            call(&app, "GET", "/api/graph", &[("authorization", &token)], "")
                .await
                .0,
            200
        );
        change(&path, |f| f.set_password("otto", "otto-new-password").unwrap());
        assert_eq!(call(&app, "GET", "/api/graph", &[("cookie", &otto)], "").await.0, 401);
        assert_eq!(
            call(&app, "GET", "/api/graph", &[("authorization", &token)], "")
                .await
                .0,
            401
        );
        assert_eq!(login(&app, "otto", "otto-new-password").await.0, 200);

        // ada's role changes: her session ends too.
        let (_, cookie, _) = login(&app, "ada", "ada-password").await;
        let ada = cookie.unwrap();
        change(&path, |f| f.set_role("ada", Role::Viewer).unwrap());
        assert_eq!(call(&app, "GET", "/api/session", &[("cookie", &ada)], "").await.0, 401);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_can_expire() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (_dir, path) = users_file("expiry");
        let mut token = None;
        change(&path, |f| {
            token = Some(f.add_token("vera", Some(Duration::from_millis(1500))).unwrap())
        });
        let auth = format!("Bearer {}", token.unwrap());
        let app = router(common::Fake::new(), Users::open(Some(path.clone())).unwrap(), false);
        assert_eq!(
            call(&app, "GET", "/api/graph", &[("authorization", &auth)], "").await.0,
            200
        );
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let (status, _, body) = call(&app, "GET", "/api/graph", &[("authorization", &auth)], "").await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("expired"), "{body}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_back_off_and_a_right_password_after_the_wait_clears_it() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (_dir, path) = users_file("backoff");
        let app = router(common::Fake::new(), Users::open(Some(path)).unwrap(), false);
        // Three free failures, then the fourth starts a 1 s backoff.
        for _ in 0..4 {
            assert_eq!(login(&app, "vera", "wrong-password").await.0, 401);
        }
        let (status, _, headers) = login(&app, "vera", "vera-password").await;
        assert_eq!(status, 429, "even the right password waits while backing off");
        assert_eq!(headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        // One more failure doubles the wait.
        assert_eq!(login(&app, "vera", "wrong-password").await.0, 401);
        let (status, _, headers) = login(&app, "vera", "vera-password").await;
        assert_eq!(status, 429);
        assert_eq!(headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("2"));
        tokio::time::sleep(Duration::from_millis(2100)).await;
        // The right password after the wait logs in and clears the count.
        assert_eq!(login(&app, "vera", "vera-password").await.0, 200);
        for _ in 0..3 {
            assert_eq!(login(&app, "vera", "wrong-password").await.0, 401);
        }
        assert_eq!(
            login(&app, "vera", "vera-password").await.0,
            200,
            "three free failures again"
        );
    })
    .await
    .unwrap();
}

/// An admin changes a user in the page: another role or a new password
/// ends the user's sessions and tokens; an admin's own role and the last
/// admin's are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_changes_a_users_role_and_password() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (_dir, path) = users_file("change");
        let (file, tokens) = common::users();
        file.save(&path).unwrap();
        let app = router(common::Fake::new(), Users::open(Some(path.clone())).unwrap(), false);
        let admin = format!("Bearer {}", tokens[2]);
        let put = |who: String, user: &'static str, body: &'static str| {
            let app = app.clone();
            async move {
                let h = [("authorization", who.as_str()), ("content-type", "application/json")];
                call(&app, "PUT", &format!("/api/users/{user}"), &h, body).await
            }
        };
        let (_, vera_cookie, _) = login(&app, "vera", "vera-password").await;
        let vera_cookie = vera_cookie.unwrap();
        let (s, _, _) = call(&app, "GET", "/api/graph", &[("cookie", &vera_cookie)], "").await;
        assert_eq!(s, 200);

        let (s, _, body) = put(admin.clone(), "vera", r#"{"role":"operator"}"#).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(
            UsersFile::load(&path)
                .unwrap()
                .users
                .iter()
                .find(|u| u.name == "vera")
                .unwrap()
                .role,
            Role::Operator
        );
        let (s, _, _) = call(&app, "GET", "/api/graph", &[("cookie", &vera_cookie)], "").await;
        assert_eq!(s, 401, "her session ended with the old role");
        let vera_token = format!("Bearer {}", tokens[0]);
        let (s, _, _) = call(&app, "GET", "/api/graph", &[("authorization", &vera_token)], "").await;
        assert_eq!(s, 401, "her token ended too");

        let (s, _, body) = put(admin.clone(), "vera", r#"{"password":"new-vera-password"}"#).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(login(&app, "vera", "new-vera-password").await.0, 200);

        let (s, _, body) = put(admin.clone(), "ada", r#"{"role":"viewer"}"#).await;
        assert_eq!(s, 400);
        assert!(body.contains("your own admin role"), "{body}");
        let (s, _, body) = put(admin.clone(), "nobody", r#"{"role":"viewer"}"#).await;
        assert_eq!(s, 404, "{body}");
        let (s, _, body) = put(admin.clone(), "vera", "{}").await;
        assert_eq!(s, 400);
        assert!(body.contains("nothing to change"), "{body}");
        // An operator may not.
        let otto = format!("Bearer {}", tokens[1]);
        assert_eq!(put(otto, "vera", r#"{"role":"admin"}"#).await.0, 403);
    })
    .await
    .expect("within 60 s");
}
