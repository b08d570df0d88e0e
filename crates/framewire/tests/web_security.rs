//! The controller's web server as an attacker meets it, against the real
//! binary (docs/security.md, "The web server"): a flood of wrong logins,
//! names that are paths, a user reset under a live cookie, state files
//! with something planted beside them, tokens on the command line, a web
//! port someone else holds, and the security log.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{NodeProc, eventually, free_port, spawn_node, temp_dir};
use framewire_web::client::{HttpResponse, request};

const BIN: &str = env!("CARGO_BIN_EXE_framewire");

fn framewire(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(BIN)
        .args(args)
        .env_remove("FRAMEWIRE_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let exited = eventually(Duration::from_secs(60), || c.try_wait().unwrap());
    assert!(exited.is_some(), "framewire {args:?} hangs");
    let o = c.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn add_user(dir: &Path, name: &str, role: &str, password: &str) {
    let (code, _, err) = framewire(
        &[
            "user",
            "add",
            name,
            "--role",
            role,
            "--state-dir",
            dir.to_str().unwrap(),
        ],
        &format!("{password}\n"),
        &[],
    );
    assert_eq!(code, 0, "{err}");
}

/// A controller node with a test pattern and its web UI on a free port.
fn controller(dir: &Path) -> (NodeProc, String) {
    let web = format!("127.0.0.1:{}", free_port());
    let node = spawn_node(&[
        "--name",
        "t:ctl",
        "--controller",
        "--discovery",
        "off",
        "--web",
        &web,
        "--state-dir",
        dir.to_str().unwrap(),
        "--source",
        "test-pattern:bars,size=160x120,fps=10",
    ]);
    (node, format!("http://{web}"))
}

async fn post(base: &str, path: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    request(base, "POST", path, &h, body.as_bytes(), Duration::from_secs(30))
        .await
        .unwrap()
}

async fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    request(base, "GET", path, headers, b"", Duration::from_secs(30))
        .await
        .unwrap()
}

/// Logs in; the cookie and the CSRF token.
async fn login(base: &str, name: &str, password: &str) -> (String, String) {
    let r = post(
        base,
        "/api/login",
        &[],
        &format!(r#"{{"name":"{name}","password":"{password}"}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "login {name}: {}", r.text());
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    (cookie, v["csrf"].as_str().unwrap().to_owned())
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_logins_is_throttled_with_bounded_memory() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = temp_dir("websec-flood");
        add_user(&dir, "ada", "admin", "ada-password");
        let (node, base) = controller(&dir);
        let pid = node.child.id();
        // The server is up, then the figure at rest.
        assert_eq!(get(&base, "/", &[]).await.status, 200);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = (0..5).map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            rss_kb(pid)
        });
        let idle = idle.max().unwrap();
        let peak = Arc::new(AtomicU64::new(idle));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kb(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let mut tasks = Vec::new();
        for i in 0..64 {
            let base = base.clone();
            tasks.push(tokio::spawn(async move {
                let body = format!(r#"{{"name":"ada","password":"wrong-{i}"}}"#);
                post(&base, "/api/login", &[], &body).await
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            let r = t.await.unwrap();
            if r.status == 429 {
                assert!(r.header("retry-after").is_some(), "a 429 says when to retry");
            }
            statuses.push(r.status);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        sampler.join().unwrap();
        let grown_mb = (peak.load(Ordering::Relaxed).saturating_sub(idle)) as f64 / 1024.0;
        let refused = statuses.iter().filter(|s| **s == 429).count();
        eprintln!("64 wrong logins: {refused} answered 429, RSS +{grown_mb:.1} MB above idle");
        assert!(statuses.iter().all(|s| matches!(s, 401 | 429)), "{statuses:?}");
        assert!(refused > 0, "no 429 in {statuses:?}");
        assert!(grown_mb <= 100.0, "RSS grew {grown_mb:.1} MB");
        // The address is backing off now: even the right password waits.
        let r = post(&base, "/api/login", &[], r#"{"name":"ada","password":"ada-password"}"#).await;
        assert_eq!(r.status, 429, "{}", r.text());
        // Failures are in the log, with the address.
        assert!(node.wait_log("login failed", Duration::from_secs(5)), "{}", node.log());
        let log = node.log();
        let line = log.lines().find(|l| l.contains("login failed")).unwrap();
        assert!(line.contains("127.0.0.1") && line.contains("\"ada\""), "{line}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_paths_are_refused_so_an_unwire_cannot_become_a_delete() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = temp_dir("websec-names");
        add_user(&dir, "ada", "admin", "ada-password");
        add_user(&dir, "otto", "operator", "otto-password");
        add_user(&dir, "alice", "viewer", "alice-password");
        let (_node, base) = controller(&dir);
        let (cookie, csrf) = login(&base, "otto", "otto-password").await;
        let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
        for (field, value) in [
            ("local_name", "../../users/alice"),
            ("local_name", "../../tokens/abc"),
            ("stream", "bars/../../x"),
            ("local_name", "line\nbreak"),
        ] {
            let mut edge = serde_json::json!({"from": "t:ctl", "stream": "bars", "to": "t:ctl", "local_name": "copy"});
            edge[field] = value.into();
            let r = post(&base, "/api/edges", &h, &edge.to_string()).await;
            assert_eq!(r.status, 422, "{field} {value:?}: {}", r.text());
            assert!(r.text().contains(field), "the refusal names the field: {}", r.text());
        }
        // An edge id goes as one encoded path segment, so at worst it names no edge.
        let r = request(
            &base,
            "DELETE",
            "/api/edges/..%2F..%2Fusers%2Falice",
            &h,
            b"",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 404, "{}", r.text());
        let (admin, _) = login(&base, "ada", "ada-password").await;
        let users = get(&base, "/api/users", &[("cookie", &admin)]).await;
        assert!(users.text().contains("\"alice\""), "alice survives: {}", users.text());
        // The node refuses such a name on CONNECT as well.
        let node_addr = _node.addr.to_string();
        let (code, _, err) = framewire(
            &["connect", &node_addr, &format!("{node_addr}/bars"), "--as", "../x"],
            "",
            &[],
        );
        assert_ne!(code, 0);
        assert!(err.contains("not paths"), "{err}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_users_old_cookie_does_not_come_back_as_admin() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = temp_dir("websec-reset");
        let d = dir.to_str().unwrap();
        add_user(&dir, "ada", "admin", "ada-password");
        add_user(&dir, "vw", "viewer", "vw-password");
        let (_node, base) = controller(&dir);
        let (cookie, _) = login(&base, "vw", "vw-password").await;
        assert_eq!(get(&base, "/api/session", &[("cookie", &cookie)]).await.status, 200);
        let (code, _, err) = framewire(&["user", "remove", "vw", "--state-dir", d], "", &[]);
        assert_eq!(code, 0, "{err}");
        add_user(&dir, "vw", "admin", "another-password");
        let r = get(&base, "/api/users", &[("cookie", &cookie)]).await;
        assert_eq!(
            r.status,
            401,
            "the old viewer cookie acts as the new admin: {}",
            r.text()
        );
        // framewire user passwd ends a session and the user's tokens.
        let (admin, _) = login(&base, "ada", "ada-password").await;
        let (code, token, err) = framewire(&["user", "token", "ada", "--state-dir", d], "", &[]);
        assert_eq!(code, 0, "{err}");
        let bearer = format!("Bearer {}", token.trim());
        assert_eq!(
            get(&base, "/api/users", &[("authorization", &bearer)]).await.status,
            200
        );
        let (code, _, err) = framewire(&["user", "passwd", "ada", "--state-dir", d], "ada-new-password\n", &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(get(&base, "/api/users", &[("cookie", &admin)]).await.status, 401);
        assert_eq!(
            get(&base, "/api/users", &[("authorization", &bearer)]).await.status,
            401
        );
        login(&base, "ada", "ada-new-password").await;
    })
    .await
    .unwrap();
}

#[test]
fn the_users_file_stays_private_whatever_was_planted_beside_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("websec-files");
    let stale = dir.join("users.json.tmp");
    std::fs::write(&stale, "{}").unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join(".users.json.tmp")).unwrap();
    add_user(&dir, "ada", "admin", "ada-password");
    add_user(&dir, "bob", "viewer", "bob-password");
    let mode = std::fs::metadata(dir.join("users.json")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_come_from_a_file_or_the_environment_never_the_command_line() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = temp_dir("websec-token");
        let d = dir.to_str().unwrap();
        add_user(&dir, "ada", "admin", "ada-password");
        let (_node, base) = controller(&dir);
        let (code, token, err) = framewire(&["user", "token", "ada", "--state-dir", d, "--expires", "1h"], "", &[]);
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = framewire(&["graph", "export", "--url", &base, "--token", token.trim()], "", &[]);
        assert_eq!(code, 2, "a token in argv is refused: {err}");
        let file = dir.join("token");
        std::fs::write(&file, &token).unwrap();
        let (code, out, err) = framewire(
            &[
                "graph",
                "export",
                "--url",
                &base,
                "--token-file",
                file.to_str().unwrap(),
            ],
            "",
            &[],
        );
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("can be read by other users"),
            "a world-readable token file is warned about: {err}"
        );
        assert!(out.is_empty() || out.contains("edge") || out.trim().is_empty(), "{out}");
        let (code, _, err) = framewire(
            &["graph", "export", "--url", &base],
            "",
            &[("FRAMEWIRE_TOKEN", token.trim())],
        );
        assert_eq!(code, 0, "{err}");
    })
    .await
    .unwrap();
}

#[test]
fn a_web_port_held_by_another_process_stops_the_controller() {
    let dir = temp_dir("websec-port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web = taken.local_addr().unwrap().to_string();
    let mut c = Command::new(BIN)
        .args([
            "node",
            "--name",
            "t:ctl",
            "--listen",
            "127.0.0.1:0",
            "--controller",
            "--discovery",
            "off",
        ])
        .args(["--web", &web, "--state-dir", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if eventually(Duration::from_secs(20), || c.try_wait().unwrap()).is_none() {
        let _ = c.kill();
        panic!("the controller ran on without its web UI");
    }
    let o = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("cannot start the web UI") && err.contains(&web), "{err}");
}

#[test]
fn a_node_raises_its_descriptor_limit_to_the_hard_limit() {
    let mut cmd = Command::new("prlimit");
    cmd.args([
        "--nofile=256:4096",
        BIN,
        "node",
        "--name",
        "t:fds",
        "--listen",
        "127.0.0.1:0",
        "--discovery",
        "off",
    ]);
    let node = common::spawn_command(cmd, Duration::from_secs(20));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", node.child.id())).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let soft: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&soft[3..5], ["4096", "4096"], "{line}");
}
