//! `framewire demo` and the `framewire` command for the web tests.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_framewire");

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `framewire demo` on loopback, recording into its state directory;
/// stopped with Ctrl-C when dropped (killed if it has not stopped in 10 s).
pub struct Demo {
    pub child: Child,
    pub url: String,
    pub out: Arc<Mutex<String>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        // As a person stops it: the demo stops its nodes, which remove
        // their temporary files.
        let _ = Command::new("kill")
            .args(["-s", "INT", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn demo(state_dir: &Path) -> Demo {
    demo_with(state_dir, &[])
}

/// [`demo`] with `env` added to its environment (a display to grab).
pub fn demo_with(state_dir: &Path, env: &[(&str, &str)]) -> Demo {
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--size",
            "320x240",
            "--fps",
            "15",
            "--view-port",
            "0",
            "--web",
            "127.0.0.1:0",
        ])
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--archive-dir")
        .arg(state_dir.join("archive"))
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let out = Arc::new(Mutex::new(String::new()));
    let out2 = out.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.trim().strip_prefix("web UI:")
                && let Some(t) = tx.take()
            {
                let _ = t.send(url.trim().to_owned());
            }
            out2.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_str(&format!("{line}\n"));
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("the demo printed no web UI URL:\n{}", out.lock().unwrap()));
    Demo { child, url, out }
}

pub fn framewire(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let exited = super::eventually(Duration::from_secs(60), || c.try_wait().unwrap());
    assert!(exited.is_some(), "framewire {args:?} hangs");
    let o = c.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn add_user(dir: &Path, name: &str, role: &str) {
    let d = dir.to_str().unwrap();
    let (code, _, err) = framewire(
        &["user", "add", name, "--role", role, "--state-dir", d],
        &format!("{name}-password\n"),
        &[],
    );
    assert_eq!(code, 0, "{err}");
}
