//! The browser tests (web-tests/, headless Chromium, playwright-core)
//! against real processes: the whole UI on `framewire demo` as each role,
//! and the host view of a controller under `framewire up`.

// test-runner: alone (Chromium and a demo graph keep more than a core busy; scripts/run-tests.py)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::demo::{BIN, add_user, demo_with, root};
use common::eventually_every;

/// One Chromium at a time on two cores.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The browser tests (web-tests/ui.test.mjs) in headless Chromium against
/// `framewire demo` with an operator and a viewer. Screenshots go to
/// target/browser-artifacts/.
/// Chromium and the browser tests' driver, or `None` (a skip outside CI;
/// in CI a missing piece is a failure).
fn browser_ready() -> Option<(String, PathBuf)> {
    let web_tests = root().join("web-tests");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<&str> = [
        (Command::new("node").arg("--version").output().is_err(), "node"),
        (!Path::new(&chromium).exists(), "chromium"),
        (
            !web_tests.join("node_modules/playwright-core").exists(),
            "web-tests/node_modules (npm ci --prefix web-tests)",
        ),
    ]
    .into_iter()
    .filter_map(|(gone, what)| gone.then_some(what))
    .collect();
    if !missing.is_empty() {
        // In CI (scripts/setup.sh ran) a missing piece is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "browser tests need {} in CI; scripts/setup.sh installs them",
            missing.join(", ")
        );
        eprintln!(
            "\n!!!!! SKIPPED: browser tests need {}; run scripts/setup.sh !!!!!\n",
            missing.join(", ")
        );
        return None;
    }
    Some((chromium, web_tests))
}

#[test]
fn browser_ui() {
    let _alone = HEAVY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some((chromium, web_tests)) = browser_ready() else {
        return;
    };
    let dir = common::temp_dir("web-browser");
    add_user(&dir, "otto", "operator");
    add_user(&dir, "vera", "viewer");
    add_user(&dir, "ada", "admin");
    // A display the demo's nodes can grab (the monitors in a node's panel).
    let x = common::xvfb::Xvfb::start(&["1280x720x24"]).expect("Xvfb for the monitors");
    let d = demo_with(&dir, &[("DISPLAY", &x.display)]);
    let artifacts = root().join("target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let run = |files: &[&str], limit: Duration| {
        let mut child = Command::new("node")
            .arg("--test")
            .arg("--test-timeout=150000")
            .arg("--test-concurrency=1")
            .args(files.iter().map(|f| web_tests.join(f)))
            .current_dir(&web_tests)
            .env("FW_URL", &d.url)
            .env("FW_OPERATOR", "otto:otto-password")
            .env("FW_VIEWER", "vera:vera-password")
            .env("FW_ADMIN", "ada:ada-password")
            .env("FW_ARTIFACTS", &artifacts)
            .env("CHROMIUM", &chromium)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let every = Duration::from_millis(100);
        if eventually_every(limit, every, || child.try_wait().unwrap()).is_none() {
            let _ = child.kill();
            panic!("browser tests {files:?} took over {limit:?}");
        }
        let o = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        println!("{text}");
        assert!(
            o.status.success()
                && text.contains("# fail 0")
                && text.contains("# skipped 0")
                && text.contains("# cancelled 0"),
            "browser tests failed:\n{text}\n{}\ndemo output:\n{}",
            String::from_utf8_lossy(&o.stderr),
            d.out.lock().unwrap()
        );
    };
    // node runs the files in the order of their names.
    run(
        &[
            "ui.test.mjs",
            "multiview.test.mjs",
            "graph.test.mjs",
            "admin.test.mjs",
            "recordings.test.mjs",
        ],
        Duration::from_secs(240),
    );
    // Alone and after the rest: it shuts the demo's viewer node down.
    run(&["shutdown.test.mjs"], Duration::from_secs(60));
    assert!(artifacts.join("controller.png").exists());
}

/// Waits up to 30 s for the web UI on 127.0.0.1:`port` to accept.
fn wait_for_web(port: u16) {
    let up = eventually_every(Duration::from_secs(30), Duration::from_millis(100), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(up.is_some(), "the web UI did not come up");
}

/// `framewire up` of `host` (a host file's text, `{web}` standing for the
/// web port, `{state}` for the controller's state directory `dir/state`),
/// once its web UI answers.
fn up_with_web(dir: &Path, host: &str) -> (std::process::Child, u16) {
    let web = common::free_port();
    let file = dir.join("host.toml");
    let state = dir.join("state");
    std::fs::write(
        &file,
        host.replace("{web}", &web.to_string())
            .replace("{state}", &state.display().to_string()),
    )
    .unwrap();
    let up = Command::new(BIN)
        .arg("up")
        .arg(&file)
        .arg("--state-dir")
        .arg(dir.join("up"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_web(web);
    (up, web)
}

/// Runs one web-tests/ file with `node --test` against `url`, `env` added,
/// killing it past `limit`; its stdout when every test passed.
fn run_web_test(file: &str, url: &str, env: &[(&str, &str)], limit: Duration, up: &mut std::process::Child) -> String {
    let (chromium, web_tests) = browser_ready().expect("checked by the caller");
    let artifacts = root().join("target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let mut child = Command::new("node")
        .arg("--test")
        .arg(format!("--test-timeout={}", limit.as_millis()))
        .arg(web_tests.join(file))
        .current_dir(&web_tests)
        .env("FW_URL", url)
        .env("FW_ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let every = Duration::from_millis(100);
    if eventually_every(limit + Duration::from_secs(10), every, || child.try_wait().unwrap()).is_none() {
        let _ = child.kill();
        let _ = up.kill();
        panic!("{file} took over {limit:?}");
    }
    let o = child.wait_with_output().unwrap();
    let _ = up.kill();
    let _ = up.wait();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success() && text.contains("# fail 0") && !text.contains("# pass 0"),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    text
}

/// The page's host view (web-tests/host.test.mjs) of a controller that
/// `framewire up` supervises beside a node that cannot start.
#[test]
fn browser_host_view_of_a_supervised_controller() {
    let _alone = HEAVY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if browser_ready().is_none() {
        return;
    }
    let dir = common::temp_dir("web-host");
    let (mut up, web) = up_with_web(
        &dir,
        "backoff_ms = 100\ncrash_limit = 2\n\
         [[node]]\nname = \"main\"\nargs = [\"--name\", \"host:main\", \"--listen\", \"127.0.0.1:0\", \"--discovery\", \"off\", \
         \"--controller\", \"--web\", \"127.0.0.1:{web}\", \"--state-dir\", \"{state}\"]\n\
         [[node]]\nname = \"broken\"\nargs = [\"--discovery\", \"off\", \"--source\", \"nope:x\"]\n",
    );
    let text = run_web_test(
        "host.test.mjs",
        &format!("http://127.0.0.1:{web}/"),
        &[],
        Duration::from_secs(60),
        &mut up,
    );
    assert!(text.contains("# pass 1"), "{text}");
}

/// Alerts (web-tests/alerts.test.mjs), each kind from a real cause: a
/// supervised camera node killed (node offline, and the camera another
/// node took from it over RTSP lost) shows within a second; a node that
/// cannot start as a failed one; an archive's disk filled up; an edge
/// through a link slower than its stream. An operator acknowledges, a
/// viewer sees them and cannot.
#[test]
fn browser_alerts_pushed_and_acknowledged() {
    let _alone = HEAVY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if browser_ready().is_none() {
        return;
    }
    let dir = common::temp_dir("web-alerts");
    let state = dir.join("state");
    add_user(&state, "otto", "operator");
    add_user(&state, "vera", "viewer");
    // The archive's disk: a small tmpfs the page's test fills up.
    let disk = common::tmpfs::Tmpfs::mount_at(&dir.join("disk"), 16);
    let [cam, rtsp, door, rec, fast] = [(); 5].map(|()| common::free_port());
    let nodes: String = [cam, door, rec, fast]
        .iter()
        .map(|p| format!("\"--controller-node\", \"127.0.0.1:{p}\", "))
        .collect();
    let (mut up, web) = up_with_web(
        &dir,
        &format!(
            "backoff_ms = 3000\ncrash_limit = 2\n\
             [[node]]\nname = \"main\"\nargs = [\"--name\", \"host:main\", \"--listen\", \"127.0.0.1:0\", \"--discovery\", \"off\", \
             \"--controller\", {nodes}\"--web\", \"127.0.0.1:{{web}}\", \"--state-dir\", \"{{state}}\"]\n\
             [[node]]\nname = \"cam\"\nargs = [\"--name\", \"host:cam\", \"--listen\", \"127.0.0.1:{cam}\", \"--discovery\", \"off\", \
             \"--source\", \"test-pattern:bars,size=160x120,fps=10\", \"--rtsp\", \"127.0.0.1:{rtsp}\"]\n\
             [[node]]\nname = \"door\"\nargs = [\"--name\", \"host:door\", \"--listen\", \"127.0.0.1:{door}\", \"--discovery\", \"off\", \
             \"--source\", \"rtsp:door,url=rtsp://127.0.0.1:{rtsp}/bars,codec=mjpeg,transport=tcp\"]\n\
             [[node]]\nname = \"rec\"\nargs = [\"--name\", \"host:rec\", \"--listen\", \"127.0.0.1:{rec}\", \"--discovery\", \"off\", \
             \"--source\", \"test-pattern:rec,size=160x120,fps=10\", \"--sink\", \"archive:rec,dir={disk},format=passthrough,segment=2\"]\n\
             [[node]]\nname = \"fast\"\nargs = [\"--name\", \"host:fast\", \"--listen\", \"127.0.0.1:{fast}\", \"--discovery\", \"off\", \
             \"--no-shm\", \"--source\", \"test-pattern:fast,size=160x120,fps=30\", \"--link\", \"*,max-rate=40kbit\"]\n\
             [[node]]\nname = \"broken\"\nargs = [\"--discovery\", \"off\", \"--source\", \"nope:x\"]\n",
            disk = disk.0.display(),
        ),
    );
    let text = run_web_test(
        "alerts.test.mjs",
        &format!("http://127.0.0.1:{web}/"),
        &[
            ("FW_OPERATOR", "otto:otto-password"),
            ("FW_VIEWER", "vera:vera-password"),
            ("FW_ARCHIVE_DIR", &disk.0.display().to_string()),
        ],
        Duration::from_secs(150),
        &mut up,
    );
    println!("{text}");
}

/// The page over HTTPS (web-tests/https.test.mjs): a controller with a
/// test pattern serving its web UI with a certificate `framewire cert`
/// made; Chromium trusts that certificate's key.
#[test]
fn browser_https() {
    let _alone = HEAVY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if browser_ready().is_none() {
        return;
    }
    let dir = common::temp_dir("web-https");
    let ca = dir.join("ca");
    let d = ca.to_str().unwrap();
    for args in [
        vec!["cert", "init", "--dir", d],
        vec!["cert", "issue", "tls:cam", "--dir", d, "--host", "127.0.0.1"],
    ] {
        let o = Command::new(BIN).args(&args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // Chromium's SPKI pin: base64 of the SHA-256 of the certificate's public key.
    let spki = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in {d}/tls_cam.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"
        ))
        .output()
        .unwrap();
    let spki = String::from_utf8_lossy(&spki.stdout).trim().to_owned();
    assert_eq!(spki.len(), 44, "openssl gave no SPKI hash");
    let web = common::free_port();
    let mut node = Command::new(BIN)
        .args([
            "node",
            "--name",
            "tls:cam",
            "--listen",
            "127.0.0.1:0",
            "--discovery",
            "off",
            "--controller",
        ])
        .args(["--source", "test-pattern:bars,size=320x240,fps=15"])
        .args(["--web", &format!("127.0.0.1:{web}")])
        .args([
            "--web-tls-cert",
            &format!("{d}/tls_cam.pem"),
            "--web-tls-key",
            &format!("{d}/tls_cam.key"),
        ])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_web(web);
    run_web_test(
        "https.test.mjs",
        &format!("https://127.0.0.1:{web}/"),
        &[("FW_CA_SPKI", &spki)],
        Duration::from_secs(60),
        &mut node,
    );
}
