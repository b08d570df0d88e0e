//! Child processes of a benchmark, and what `/proc` says about them.
//!
//! Every child is registered here the moment it is spawned and killed by
//! PID (SIGKILL, then reaped) by [`kill_all`], which the benchmark calls on
//! success, on error, on Ctrl-C / SIGTERM, and from a drop guard on panic.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::now_ns;

static CHILDREN: Mutex<Vec<(String, Child)>> = Mutex::new(Vec::new());
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Refuses further children and kills those running (Ctrl-C, SIGTERM, end).
pub(crate) fn stop_all() {
    STOPPING.store(true, Ordering::SeqCst);
    kill_all();
}

/// Whether [`stop_all`] was called.
pub(crate) fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Kills every registered child on drop (for panics and early returns).
#[derive(Debug)]
pub(crate) struct KillGuard;

impl Drop for KillGuard {
    fn drop(&mut self) {
        kill_all();
    }
}

fn children() -> std::sync::MutexGuard<'static, Vec<(String, Child)>> {
    CHILDREN.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running child: its PID and the readers of its output.
#[derive(Debug)]
pub(crate) struct Proc {
    /// Label for messages.
    pub label: String,
    /// Process id.
    pub pid: u32,
    /// Collects stdout (whole text) when asked for.
    stdout: Option<JoinHandle<String>>,
    /// Collects stdout lines with their arrival time when asked for.
    lines: Option<JoinHandle<Vec<(u64, String)>>>,
}

/// What to do with a child's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Capture {
    /// Discard it.
    Nothing,
    /// Keep it all, returned by [`Proc::output`].
    Text,
    /// Keep lines containing `rendered:` with their wall-clock arrival
    /// time, returned by [`Proc::timed_lines`].
    TimedLines,
}

/// Spawns `cmd` (stdin closed, stderr to `log` when given, else discarded)
/// and registers it.
pub(crate) fn spawn(
    label: &str,
    cmd: &mut Command,
    capture: Capture,
    log: Option<&std::path::Path>,
) -> anyhow::Result<Proc> {
    if stopping() {
        bail!("stopping: {label} not started");
    }
    cmd.stdin(Stdio::null());
    cmd.stdout(if capture == Capture::Nothing {
        Stdio::null()
    } else {
        Stdio::piped()
    });
    match log {
        Some(p) => {
            let f = std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
            cmd.stderr(f);
        }
        None => {
            cmd.stderr(Stdio::null());
        }
    }
    let mut child = cmd.spawn().with_context(|| format!("cannot start {label} ({cmd:?})"))?;
    let pid = child.id();
    let out = child.stdout.take();
    children().push((label.to_owned(), child));
    let (stdout, lines) = match (capture, out) {
        (Capture::Text, Some(mut o)) => (
            Some(std::thread::spawn(move || {
                let mut s = String::new();
                let _ = o.read_to_string(&mut s);
                s
            })),
            None,
        ),
        (Capture::TimedLines, Some(o)) => (
            None,
            Some(std::thread::spawn(move || {
                let mut v = Vec::new();
                for line in BufReader::new(o).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("rendered:") {
                        v.push((now_ns(), line));
                    }
                }
                v
            })),
        ),
        _ => (None, None),
    };
    Ok(Proc {
        label: label.to_owned(),
        pid,
        stdout,
        lines,
    })
}

impl Proc {
    /// Waits up to `timeout` for the child to exit by itself, then kills
    /// it; returns its stdout.
    pub(crate) fn output(mut self, timeout: Duration) -> String {
        wait_or_kill(self.pid, timeout);
        self.stdout.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }

    /// Kills the child and returns its timed stdout lines.
    pub(crate) fn timed_lines(mut self) -> Vec<(u64, String)> {
        kill(self.pid);
        self.lines.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }

    /// Whether the child still runs.
    pub(crate) fn alive(&self) -> bool {
        let mut list = children();
        list.iter_mut()
            .find(|(_, c)| c.id() == self.pid)
            .is_some_and(|(_, c)| matches!(c.try_wait(), Ok(None)))
    }
}

/// Waits for `pid` to exit for at most `timeout`, then kills it.
pub(crate) fn wait_or_kill(pid: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let done = {
            let mut list = children();
            match list.iter_mut().position(|(_, c)| c.id() == pid) {
                None => true,
                Some(i) => {
                    if matches!(list[i].1.try_wait(), Ok(Some(_)) | Err(_)) {
                        list.swap_remove(i);
                        true
                    } else {
                        false
                    }
                }
            }
        };
        if done {
            return;
        }
        if Instant::now() >= deadline {
            kill(pid);
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills (SIGKILL) and reaps one registered child.
pub(crate) fn kill(pid: u32) {
    let taken = {
        let mut list = children();
        list.iter()
            .position(|(_, c)| c.id() == pid)
            .map(|i| list.swap_remove(i))
    };
    if let Some((_, mut c)) = taken {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Registers a child spawned elsewhere (killed with the others).
pub(crate) fn adopt(label: &str, child: Child) {
    children().push((label.to_owned(), child));
}

/// Kills (SIGKILL) the process group `pid` leads (a child started in its
/// own group, e.g. a shell pipeline), then reaps the child.
pub(crate) fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
    kill(pid);
}

/// Kills and reaps every registered child.
pub(crate) fn kill_all() {
    let all: Vec<(String, Child)> = std::mem::take(&mut *children());
    for (_, mut c) in all {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// CPU time (user + system) of `pid` in seconds, from /proc/PID/stat.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
            .filter(|v| *v > 0.0)
            .unwrap_or(100.0)
    })
}

/// VmRSS and VmHWM of `pid` in bytes.
pub(crate) fn rss(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = s.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The 1-minute load average.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// A port that was free on 127.0.0.1 a moment ago.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind(("127.0.0.1", 0)).context("no free port on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

/// Whether something listens on 127.0.0.1:`port`, from /proc/net/tcp
/// (without connecting: a connection would count as a client or an input).
pub(crate) fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|s| {
        s.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&want.as_str()) && f.get(3) == Some(&"0A")
        })
    })
}

/// Waits until 127.0.0.1:`port` listens, or fails after `timeout`.
pub(crate) fn wait_listening(port: u16, timeout: Duration, who: &Proc) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !listening(port) {
        if !who.alive() {
            bail!("{} exited before listening on port {port}", who.label);
        }
        if Instant::now() >= deadline {
            bail!("{} did not listen on port {port} within {timeout:?}", who.label);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
