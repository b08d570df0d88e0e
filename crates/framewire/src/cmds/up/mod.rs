//! `framewire up HOST.toml`: the nodes of a host as child processes,
//! supervised (docs/operations.md). The state machine is `engine`; this
//! is its driver: processes, signals, the status file.

mod engine;
mod host;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use engine::{Action, ChildStatus, Exit, Supervisor};
use host::{CONFIG_MARK, Host};

/// Run a host's nodes as child processes, supervised: a crashed node starts
/// again after a growing wait, one that keeps crashing is marked failed,
/// SIGHUP reloads HOST.toml (only the nodes it changes restart), SIGTERM
/// stops every node gracefully. The nodes die with it.
#[derive(Debug, clap::Args)]
#[command(after_help = "HOST.toml (docs/operations.md):\n  \
[[node]]\n  \
name = \"cam\"                      # unique on this host\n  \
config = \"cam.toml\"               # a node configuration (docs/config.md), relative to HOST.toml\n  \
args = [\"--source\", \"v4l2:cam\"]   # more `framewire node` arguments\n  \
restart = \"on-failure\"            # on-failure (default), always, never\n\n\
Top-level keys: state_dir, grace (s, default 10), backoff_ms (500), max_backoff (s, 30),\n\
crash_limit (5), crash_window (s, 60).\n\n\
Examples:\n  \
framewire up /etc/framewire/host.toml\n  \
framewire up /etc/framewire/host.toml --status\n  \
systemctl reload framewire      # SIGHUP: reads HOST.toml again")]
pub struct Args {
    /// The host's configuration.
    host: PathBuf,
    /// Where the status is kept [default: the host file's `state_dir`,
    /// else $STATE_DIRECTORY, else ~/.local/state/framewire].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Print the status of the running supervisor and exit.
    #[arg(long)]
    status: bool,
    /// With --status: one JSON object.
    #[arg(long, requires = "status")]
    json: bool,
    /// Check HOST.toml and every node's configuration (`framewire node
    /// --check`), print what is wrong, and exit (1 if anything is).
    #[arg(long, conflicts_with = "status")]
    check: bool,
}

/// The status file.
#[derive(Debug, Serialize, Deserialize)]
struct StatusFile {
    host: PathBuf,
    pid: u32,
    /// Whether the supervisor still runs (false once it stopped).
    running: bool,
    updated_unix_ms: u64,
    nodes: Vec<NodeLine>,
}

#[derive(Debug, Serialize, Deserialize)]
struct NodeLine {
    name: String,
    state: String,
    pid: Option<u32>,
    uptime_s: Option<f64>,
    restarts: u32,
    last_exit: Option<String>,
    reason: Option<String>,
}

impl From<ChildStatus> for NodeLine {
    fn from(c: ChildStatus) -> NodeLine {
        NodeLine {
            name: c.name,
            state: c.state.into(),
            pid: c.pid,
            uptime_s: c.uptime_s,
            restarts: c.restarts,
            last_exit: c.last_exit,
            reason: c.reason,
        }
    }
}

fn state_dir(args: &Args, host: Option<&Host>) -> PathBuf {
    if let Some(d) = &args.state_dir {
        return d.clone();
    }
    if let Some(d) = host.and_then(|h| h.state_dir.clone()) {
        return d;
    }
    if let Some(d) = std::env::var_os("STATE_DIRECTORY") {
        return PathBuf::from(d);
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state/framewire"),
        None => PathBuf::from("/var/lib/framewire"),
    }
}

/// The status file of a host file in `dir`.
fn status_path(dir: &Path) -> PathBuf {
    dir.join("up.json")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: sending a signal has no memory effects here.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

static TERM: AtomicBool = AtomicBool::new(false);
static HUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        HUP.store(true, Ordering::SeqCst);
    } else {
        TERM.store(true, Ordering::SeqCst);
    }
}

fn install_signals() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to atomics, which is
        // async-signal-safe; the sigaction struct is zeroed and filled.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// A node process and the last line it said.
struct Running {
    child: Child,
    said: Arc<Mutex<Option<String>>>,
}

fn spawn(e: &host::NodeEntry, status: &Path) -> anyhow::Result<Running> {
    let exe = std::env::current_exe().context("cannot find this program")?;
    let mut cmd = Command::new(exe);
    cmd.arg("node");
    if let Some(c) = &e.config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(e.args.iter().filter(|a| !a.starts_with(CONFIG_MARK)));
    // Its own state directory (camera controls set remotely are kept
    // there) unless its arguments name one.
    if !e
        .args
        .iter()
        .any(|a| a == "--state-dir" || a.starts_with("--state-dir="))
    {
        let dir = status.parent().unwrap_or(Path::new(".")).join("nodes").join(&e.name);
        cmd.arg("--state-dir").arg(dir);
    }
    cmd.env("FRAMEWIRE_UP_STATUS", status)
        .env("FRAMEWIRE_UP_NODE", &e.name)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        // Its own group: a Ctrl-C meant for the supervisor reaches the
        // nodes through it, in order.
        .process_group(0);
    let parent = std::process::id();
    // SAFETY: getppid, prctl and raise are async-signal-safe; they run in
    // the child before exec and touch no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            // The node stops (gracefully) when the supervisor dies.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                libc::raise(libc::SIGTERM);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start `framewire node`")?;
    let said = Arc::new(Mutex::new(None));
    if let Some(err) = child.stderr.take() {
        let (said, name) = (said.clone(), e.name.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(std::io::stderr(), "[{name}] {line}");
                if !line.trim().is_empty() {
                    *said.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(line);
                }
            }
        });
    }
    Ok(Running { child, said })
}

fn write_status(path: &Path, host: &Path, running: bool, nodes: Vec<ChildStatus>) {
    let file = StatusFile {
        host: host.to_owned(),
        pid: std::process::id(),
        running,
        updated_unix_ms: now_ms(),
        nodes: nodes.into_iter().map(NodeLine::from).collect(),
    };
    let Ok(text) = serde_json::to_string_pretty(&file) else {
        return;
    };
    let tmp = path.with_extension("json.tmp");
    if std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .is_err()
    {
        tracing::warn!(path = %path.display(), "cannot write the status");
    }
}

fn show_status(path: &Path, json: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "no status at {} (is `framewire up` running with this state directory?)",
            path.display()
        )
    })?;
    let mut s: StatusFile = serde_json::from_str(&text).context("the status file does not parse")?;
    s.running = s.running && alive(s.pid);
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!(
        "framewire up {} ({}, pid {})",
        s.host.display(),
        if s.running { "running" } else { "not running" },
        s.pid
    );
    println!(
        "{:<16} {:<11} {:>8} {:>10} {:>8}  last exit / reason",
        "node", "state", "pid", "uptime", "restarts"
    );
    for n in &s.nodes {
        println!(
            "{:<16} {:<11} {:>8} {:>10} {:>8}  {}",
            n.name,
            n.state,
            n.pid.map_or_else(|| "-".into(), |p| p.to_string()),
            n.uptime_s.map_or_else(|| "-".into(), |u| format!("{u:.0} s")),
            n.restarts,
            n.reason.as_deref().or(n.last_exit.as_deref()).unwrap_or("")
        );
    }
    Ok(())
}

/// `--check`: the host file, then each node's configuration as the node
/// itself reads it.
fn check(args: &Args) -> anyhow::Result<()> {
    let host = Host::load(&args.host)?;
    let exe = std::env::current_exe().context("cannot find this program")?;
    let mut bad = 0;
    for e in &host.nodes {
        let mut cmd = Command::new(&exe);
        cmd.arg("node");
        if let Some(c) = &e.config {
            cmd.arg("--config").arg(c);
        }
        let out = cmd
            .args(&e.args)
            .arg("--check")
            .stdin(Stdio::null())
            .output()
            .context("cannot run `framewire node --check`")?;
        if out.status.success() {
            println!("{}: ok ({})", e.name, String::from_utf8_lossy(&out.stdout).trim());
        } else {
            bad += 1;
            let err = String::from_utf8_lossy(&out.stderr);
            println!("{}: {}", e.name, err.trim().trim_start_matches("framewire: "));
        }
    }
    if bad > 0 {
        bail!("{bad} of {} nodes are not configured right", host.nodes.len());
    }
    println!("{}: {} nodes, all ok", args.host.display(), host.nodes.len());
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.check {
        return check(args);
    }
    if args.status {
        let host = Host::load(&args.host).ok();
        return show_status(&status_path(&state_dir(args, host.as_ref())), args.json);
    }
    let mut host = Host::load(&args.host)?;
    if host.nodes.is_empty() {
        bail!("{} lists no [[node]]", args.host.display());
    }
    let dir = state_dir(args, Some(&host));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot make the state directory {}", dir.display()))?;
    let status = status_path(&dir);
    install_signals();
    tracing::info!(host = %args.host.display(), nodes = host.nodes.len(), status = %status.display(), "framewire up");
    let mut sup = Supervisor::new(host.policy);
    let mut actions = sup.set_entries(&host.entries(), host.policy, Instant::now());
    let mut procs: HashMap<String, Running> = HashMap::new();
    let mut stopping = false;
    let mut last_write = Instant::now() - Duration::from_secs(10);
    loop {
        let now = Instant::now();
        if TERM.swap(false, Ordering::SeqCst) && !stopping {
            tracing::info!("stopping every node");
            stopping = true;
            actions.extend(sup.stop_all(now));
        }
        if HUP.swap(false, Ordering::SeqCst) && !stopping {
            match Host::load(&args.host) {
                Ok(h) => {
                    tracing::info!(nodes = h.nodes.len(), "reloaded");
                    host = h;
                    actions.extend(sup.set_entries(&host.entries(), host.policy, now));
                }
                Err(e) => tracing::error!("reload refused, the nodes stay as they are: {e:#}"),
            }
        }
        let mut changed = !actions.is_empty();
        procs.retain(|name, p| match p.child.try_wait() {
            Ok(Some(st)) => {
                let exit = st.signal().map_or(Exit::Code(st.code().unwrap_or(-1)), Exit::Signal);
                let said = p.said.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                tracing::info!(node = %name, %exit, "node ended");
                sup.exited(name, &exit, said.as_deref(), now);
                changed = true;
                false
            }
            _ => true,
        });
        actions.extend(sup.poll(now));
        for a in std::mem::take(&mut actions) {
            match a {
                Action::Start(e) => match spawn(&e, &status) {
                    Ok(r) => {
                        tracing::info!(node = %e.name, pid = r.child.id(), "node started");
                        sup.started(&e.name, r.child.id(), now);
                        procs.insert(e.name.clone(), r);
                    }
                    Err(err) => {
                        tracing::error!(node = %e.name, "{err:#}");
                        sup.start_failed(&e.name, &format!("{err:#}"), now);
                    }
                },
                Action::Term { pid, .. } => signal(pid, libc::SIGTERM),
                Action::Kill { name, pid } => {
                    tracing::warn!(node = %name, "did not stop in time: killed");
                    signal(pid, libc::SIGKILL);
                }
            }
            changed = true;
        }
        if changed || last_write.elapsed() >= Duration::from_secs(1) {
            write_status(&status, &args.host, true, sup.status(now));
            last_write = Instant::now();
        }
        if stopping && sup.all_stopped() && procs.is_empty() {
            break;
        }
        let wait = sup
            .next_deadline()
            .map_or(engine::IDLE, |d| d.saturating_duration_since(Instant::now()))
            .min(engine::IDLE);
        std::thread::sleep(wait);
    }
    write_status(&status, &args.host, false, sup.status(Instant::now()));
    tracing::info!("every node stopped");
    Ok(())
}
