//! The ffmpeg child of a mux output: started, fed, restarted.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framewire_proto::{StreamEvent, StreamOpen};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{MuxSink, STALL};
use crate::api::{SinkHost, SinkInput};

/// Lines of ffmpeg's stderr kept for the reason it gives.
const TAIL: usize = 4;
/// First wait before ffmpeg is started again; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// A run this long resets the backoff.
const HEALTHY: Duration = Duration::from_secs(30);
/// How long a stopping node lets ffmpeg finish its output.
const CLOSE: Duration = Duration::from_secs(2);

/// How one run of ffmpeg ended.
enum End {
    /// The node stops.
    Stopped,
    /// Start again at once (the stream's format changed).
    Again(String),
    /// Start again after the backoff.
    Failed(String),
}

pub(super) async fn run(sink: MuxSink, host: SinkHost) {
    let mut stop = host.stopping();
    let mut backoff = RETRY_MIN;
    loop {
        let Some(name) = choose(&sink, &host, &mut stop).await else {
            return;
        };
        let via = SinkHost {
            node: host.node.clone(),
            stream: name.clone(),
            params: host.params,
            label: host.label.clone(),
        };
        let Some(input) = via.attach().await else {
            return;
        };
        info!(sink = %host.label, stream = %name, "output attached");
        let started = Instant::now();
        let end = one_run(&sink, &host.label, &input, &mut stop).await;
        drop(input);
        if started.elapsed() >= HEALTHY {
            backoff = RETRY_MIN;
        }
        let wait = match end {
            End::Stopped => return,
            End::Again(why) => {
                info!(sink = %host.label, "{why}; ffmpeg started again");
                Duration::ZERO
            }
            End::Failed(why) => {
                warn!(sink = %host.label, retry_in = ?backoff, "{why}");
                let w = backoff;
                backoff = (backoff * 2).min(RETRY_MAX);
                w
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The stream to take: the configured one if the output carries its
/// format, else its H.264 transcoding output. `None` when the node stops
/// first.
async fn choose(sink: &MuxSink, host: &SinkHost, stop: &mut watch::Receiver<bool>) -> Option<String> {
    let base = host.stream();
    if base.contains('~') {
        return Some(base.to_owned());
    }
    let mut changes = host.node.changes();
    loop {
        changes.mark_unchanged();
        if let Some(open) = host.node.stream_open(base) {
            return Some(if sink.target.carries(open.format) {
                base.to_owned()
            } else {
                format!("{base}~h264")
            });
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { return None },
            _ = stop.wait_for(|s| *s) => return None,
        }
    }
}

/// A running ffmpeg: the child, its input, the last lines it said.
struct Running {
    child: Child,
    stdin: ChildStdin,
    tail: Arc<Mutex<VecDeque<String>>>,
}

fn spawn(sink: &MuxSink, open: &StreamOpen) -> std::io::Result<Running> {
    let fps = if open.fps_num > 0 && open.fps_den > 0 {
        f64::from(open.fps_num) / f64::from(open.fps_den)
    } else {
        30.0
    };
    let mut cmd = Command::new(&sink.ffmpeg);
    cmd.args(sink.target.args(open.format, fps))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no
    // memory of the parent; it runs in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(err) = child.stderr.take() {
        let (tail, target) = (tail.clone(), sink.target.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // ffmpeg names its output: never with a key or passphrase.
                let line = target.redact(&line);
                debug!("ffmpeg: {line}");
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                if t.len() == TAIL {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
    }
    Ok(Running { child, stdin, tail })
}

fn said(tail: &Mutex<VecDeque<String>>) -> String {
    let t = tail.lock().unwrap_or_else(|p| p.into_inner());
    t.iter().cloned().collect::<Vec<_>>().join(" | ")
}

/// Waits for ffmpeg to exit, or forever if none runs.
async fn exit_of(ff: &mut Option<Running>) -> String {
    match ff {
        Some(r) => {
            let s = r.child.wait().await;
            exited(s, &r.tail)
        }
        None => std::future::pending().await,
    }
}

/// Runs ffmpeg once, started at the first keyframe and fed the output's
/// frames from there.
async fn one_run(sink: &MuxSink, label: &str, input: &SinkInput, stop: &mut watch::Receiver<bool>) -> End {
    if let super::MuxTarget::Hls { dir, .. } = &sink.target
        && let Err(e) = tokio::fs::create_dir_all(dir).await
    {
        return End::Failed(format!("cannot create {}: {e}", dir.display()));
    }
    let mut open = input.open().clone();
    let mut ff: Option<Running> = None;
    let mut keyed = false;
    let limit = if sink.target.waits_for_peer() {
        Duration::MAX
    } else {
        STALL
    };
    let end = 'run: loop {
        // The events before each frame: a format change comes before the
        // first frame of its format (which goes to a new ffmpeg).
        for ev in input.events() {
            if let StreamEvent::FormatChanged(o) = ev {
                if ff.is_some() || !sink.target.carries(o.format) {
                    break 'run End::Again("the stream's format changed".into());
                }
                open = o;
            }
        }
        let Some(tx) = input.poll() else {
            if !input.attached() {
                break End::Again("the stream went away".into());
            }
            tokio::select! {
                () = input.ready(Duration::from_millis(200)) => {}
                why = exit_of(&mut ff) => break End::Failed(why),
                _ = stop.wait_for(|s| *s) => break End::Stopped,
            }
            continue;
        };
        // After a loss, here or upstream, the next keyframe: no picture
        // goes without its reference.
        let key = tx.frame.flags.is_keyframe();
        if (tx.lost > 0 || tx.frame.flags.is_discontinuity()) && !key {
            keyed = false;
        }
        keyed |= key;
        if !keyed {
            input.sent();
            continue;
        }
        if ff.is_none() {
            match spawn(sink, &open) {
                Ok(r) => ff = Some(r),
                Err(e) => break End::Failed(format!("cannot run {}: {e}", sink.ffmpeg.display())),
            }
            input.set_label(format!("{label} (running)"));
        }
        let Some(r) = ff.as_mut() else {
            unreachable!("started above")
        };
        let r = tokio::select! {
            w = tokio::time::timeout(limit, r.stdin.write_all(&tx.frame.data)) => w,
            s = r.child.wait() => break End::Failed(exited(s, &r.tail)),
            _ = stop.wait_for(|s| *s) => break End::Stopped,
        };
        input.sent();
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let tail = ff.as_ref().map(|r| said(&r.tail)).unwrap_or_default();
                break End::Failed(format!("ffmpeg stopped reading ({e}): {tail}"));
            }
            Err(_) => break End::Failed(format!("ffmpeg took no input for {STALL:?}: restarted")),
        }
    };
    // Let ffmpeg finish what it writes (an HLS playlist), then make sure.
    if let Some(Running { mut child, stdin, .. }) = ff {
        drop(stdin);
        if tokio::time::timeout(CLOSE, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
    end
}

fn exited(status: std::io::Result<std::process::ExitStatus>, tail: &Mutex<VecDeque<String>>) -> String {
    let how = match status {
        Ok(s) => format!("ffmpeg exited ({s})"),
        Err(e) => format!("ffmpeg: {e}"),
    };
    match said(tail) {
        t if t.is_empty() => how,
        t => format!("{how}: {t}"),
    }
}
