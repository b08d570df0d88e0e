//! `framewire up HOST.toml` with real node processes: a node killed is
//! started again, one that keeps failing is marked failed, a reload
//! restarts only what changed, SIGTERM stops every node gracefully, and
//! the nodes die with a killed supervisor (docs/operations.md).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually_every, free_port, temp_dir};

/// Whether a process runs (a zombie does not).
fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

fn signal(pid: u64, sig: i32) {
    // SAFETY: sending a signal has no memory effects here.
    unsafe {
        libc::kill(i32::try_from(pid).unwrap(), sig);
    }
}

struct Up {
    child: Child,
    state: PathBuf,
}

impl Up {
    fn start(host: &Path, state: &Path) -> Up {
        let child = Command::new(env!("CARGO_BIN_EXE_framewire"))
            .args(["--log", "info", "up"])
            .arg(host)
            .arg("--state-dir")
            .arg(state)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("framewire up runs");
        Up {
            child,
            state: state.to_owned(),
        }
    }

    fn status(&self) -> serde_json::Value {
        std::fs::read_to_string(self.state.join("up.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    fn node(&self, name: &str) -> serde_json::Value {
        self.status()["nodes"]
            .as_array()
            .and_then(|a| a.iter().find(|n| n["name"] == name).cloned())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Waits (at most `limit`) until `ok` holds of the status.
    fn until(&self, limit: Duration, what: &str, ok: impl Fn(&Up) -> bool) {
        let held = eventually_every(limit, Duration::from_millis(50), || ok(self).then_some(()));
        assert!(
            held.is_some(),
            "{what}: not within {limit:?}; status {:#}",
            self.status()
        );
    }

    fn pid_of(&self, name: &str) -> u64 {
        self.node(name)["pid"].as_u64().unwrap_or(0)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pattern(name: &str, port: u16) -> String {
    format!(
        "[[node]]\nname = \"{name}\"\nargs = [\"--name\", \"up:{name}\", \"--listen\", \"127.0.0.1:{port}\", \
         \"--discovery\", \"off\", \"--no-shm\", \"--source\", \"test-pattern:bars,size=64x48,fps=5\"]\n"
    )
}

const FAST: &str = "backoff_ms = 100\ncrash_limit = 3\ngrace = 5\n";

fn listens(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn nodes_are_restarted_failed_reloaded_and_stopped() {
    let dir = temp_dir("up-supervise");
    let host = dir.join("host.toml");
    let (pa, pc) = (free_port(), free_port());
    let bad = "[[node]]\nname = \"bad\"\nargs = [\"--discovery\", \"off\", \"--source\", \"nope:x\"]\n";
    std::fs::write(&host, format!("{FAST}{}{bad}", pattern("a", pa))).unwrap();
    let up = Up::start(&host, &dir.join("state"));
    up.until(Duration::from_secs(20), "a running", |u| {
        u.node("a")["state"] == "running" && listens(pa)
    });
    // A node that cannot start: tried crash_limit times, then failed with
    // what it said.
    up.until(Duration::from_secs(20), "bad failed", |u| {
        u.node("bad")["state"] == "failed"
    });
    // A node with no --state-dir of its own gets one under the supervisor's.
    let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", up.pid_of("a"))).unwrap();
    let state = dir.join("state/nodes/a");
    assert!(cmdline.split('\0').any(|a| Path::new(a) == state), "{cmdline:?}");
    let reason = up.node("bad")["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("ended 3 times") && reason.contains("nope"), "{reason}");

    // Killed: started again, on its port.
    let first = up.pid_of("a");
    signal(first, libc::SIGKILL);
    up.until(Duration::from_secs(10), "a back", |u| {
        u.node("a")["state"] == "running" && u.pid_of("a") != first && listens(pa)
    });
    assert_eq!(up.node("a")["restarts"], 1);
    assert!(up.node("a")["last_exit"].as_str().unwrap().contains("signal 9"));

    // The status from the command line.
    let out = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .arg("up")
        .arg(&host)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("(running, pid") && text.lines().any(|l| l.starts_with("bad") && l.contains("failed")),
        "{text}"
    );

    // Reload: `a` as it was, `bad` gone, `c` new.
    let a_pid = up.pid_of("a");
    std::fs::write(&host, format!("{FAST}{}{}", pattern("a", pa), pattern("c", pc))).unwrap();
    signal(u64::from(up.child.id()), libc::SIGHUP);
    up.until(Duration::from_secs(20), "c running, bad gone", |u| {
        u.node("c")["state"] == "running" && u.node("bad").is_null() && listens(pc)
    });
    assert_eq!(up.pid_of("a"), a_pid, "an unchanged node is left alone");
    // A changed node restarts; the other stays.
    std::fs::write(
        &host,
        format!(
            "{FAST}{}{}",
            pattern("a", pa),
            pattern("c", pc).replace("fps=5", "fps=10")
        ),
    )
    .unwrap();
    let c_pid = up.pid_of("c");
    signal(u64::from(up.child.id()), libc::SIGHUP);
    up.until(Duration::from_secs(20), "c restarted", |u| {
        u.node("c")["state"] == "running" && u.pid_of("c") != c_pid && listens(pc)
    });
    assert_eq!(up.pid_of("a"), a_pid);
    assert_eq!(up.node("c")["restarts"], 0, "a change is not a crash");

    // SIGTERM: every node stops gracefully, then the supervisor.
    let pids = [up.pid_of("a"), up.pid_of("c")];
    let mut up = up;
    signal(u64::from(up.child.id()), libc::SIGTERM);
    let status = eventually_every(Duration::from_secs(15), Duration::from_millis(50), || {
        up.child.try_wait().unwrap()
    })
    .expect("the supervisor did not stop");
    assert!(status.success(), "{status:?}");
    assert!(pids.iter().all(|p| !running(*p)), "every node ended");
    let last = up.status();
    assert_eq!(last["running"], false);
    for n in last["nodes"].as_array().unwrap() {
        assert_eq!(n["state"], "stopped", "{n}");
        assert!(
            n["last_exit"].as_str().unwrap().starts_with("exit code 0"),
            "a graceful stop: {n}"
        );
    }
}

#[test]
fn the_nodes_die_with_a_killed_supervisor() {
    let dir = temp_dir("up-orphans");
    let host = dir.join("host.toml");
    let (pa, pb) = (free_port(), free_port());
    std::fs::write(&host, format!("{FAST}{}{}", pattern("a", pa), pattern("b", pb))).unwrap();
    let mut up = Up::start(&host, &dir.join("state"));
    up.until(Duration::from_secs(20), "both running", |u| {
        u.pid_of("a") > 0 && u.pid_of("b") > 0 && listens(pa) && listens(pb)
    });
    let pids = [up.pid_of("a"), up.pid_of("b")];
    up.child.kill().unwrap();
    up.child.wait().unwrap();
    let ended = eventually_every(Duration::from_secs(10), Duration::from_millis(50), || {
        (!pids.iter().any(|p| running(*p))).then_some(())
    });
    assert!(ended.is_some(), "nodes outlived their supervisor");
}

/// An archive's ffmpeg does not outlive its node: killed with SIGKILL,
/// the node takes it along.
#[test]
fn an_archives_ffmpeg_dies_with_its_node() {
    use common::archive::{children, recording_pid, segments, sink, wait_for};
    let dir = temp_dir("up-archive-orphan");
    let mut node = common::spawn_node(&[
        "--name",
        "test:orphan",
        "--discovery",
        "off",
        "--source",
        "test-pattern:cam,size=320x240,fps=10,format=raw,pixel-format=bgra",
        "--sink",
        &sink("cam", &dir, "ffv1", ",segment=60"),
    ]);
    let node_pid = node.child.id();
    assert!(wait_for(Duration::from_secs(20), || recording_pid(&dir)
        .is_some_and(|p| children(node_pid).contains(&p))
        && segments(&dir)[0].frames >= 5));
    let ffmpeg = u64::from(recording_pid(&dir).unwrap());
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    let ended = eventually_every(Duration::from_secs(5), Duration::from_millis(50), || {
        (!running(ffmpeg)).then_some(())
    });
    assert!(ended.is_some(), "ffmpeg {ffmpeg} outlived its node");
}
