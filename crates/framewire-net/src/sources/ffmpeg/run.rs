//! Running ffmpeg for a source: the child and its output read into the
//! ingest, its end or its stall, and restarts with backoff.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framewire_proto::EventReason;
use framewire_proto::control::StreamState;
use tracing::{info, warn};

use super::FfmpegConfig;
use crate::api::SourceHost;
use crate::clock::now_ns;
use crate::error::NetError;
use crate::sources::handoff::Handoff;
use crate::sources::ingest::Ingest;
use crate::sources::spawn_thread;

/// First wait before ffmpeg is started again; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// A run that delivered frames this long starts the backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(10);
/// Lines of ffmpeg's stderr kept for the reason it gives.
const STDERR_LINES: usize = 8;

pub(super) fn start(cfg: FfmpegConfig, host: SourceHost) -> Result<std::thread::JoinHandle<()>, NetError> {
    let ingest = Ingest::new(&cfg.name, cfg.payload);
    let out = host.open(ingest.placeholder(), StreamState::Interrupted)?;
    let stop = host.stop_flag();
    info!(stream = %cfg.name, input = %cfg.input, "ffmpeg source");
    let name = cfg.name.clone();
    let runner = Runner {
        cfg,
        ingest,
        handoff: Handoff::new(out, "ffmpeg source"),
        stop,
    };
    spawn_thread(&name, move || runner.run())
}

struct Runner {
    cfg: FfmpegConfig,
    ingest: Ingest,
    handoff: Handoff,
    stop: Arc<AtomicBool>,
}

/// How a run of ffmpeg ended.
struct End {
    /// Why, for the event and the log.
    message: String,
    reason: EventReason,
    /// Frames it delivered.
    frames: u64,
}

impl Runner {
    fn run(mut self) {
        let mut backoff = RETRY_FIRST;
        while !self.stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let end = self.one_run();
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            warn!(stream = %self.cfg.name, reason = %end.message, frames = end.frames, retry_in = ?backoff, "ffmpeg source: input ended");
            self.handoff.interrupted(end.reason, end.message);
            self.ingest.restart();
            if end.frames > 0 && started.elapsed() >= HEALTHY_RUN {
                backoff = RETRY_FIRST;
            }
            let until = Instant::now() + backoff;
            while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }

    /// Runs ffmpeg once, until its output ends, it stalls, or the node stops.
    fn one_run(&mut self) -> End {
        let mut cmd = Command::new(&self.cfg.ffmpeg);
        cmd.args(self.cfg.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches
        // no memory of the parent; it runs in the child before exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return End {
                    message: format!("cannot run {}: {e}", self.cfg.ffmpeg.display()),
                    reason: EventReason::Error,
                    frames: 0,
                };
            }
        };
        let pid = child.id();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr = child.stderr.take().map(|e| {
            let tail = tail.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(e).lines().map_while(Result::ok) {
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if t.len() == STDERR_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            })
        });
        // The watchdog: kills the child when the node stops, or when bytes
        // flowed and then none came for `stall`.
        let epoch = Instant::now();
        let last_byte = Arc::new(AtomicU64::new(0));
        let (done, stalled) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let watchdog = {
            let (last_byte, done, stalled, stop) =
                (last_byte.clone(), done.clone(), stalled.clone(), self.stop.clone());
            let limit = self.cfg.stall;
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    let last = last_byte.load(Ordering::Relaxed);
                    let silent = last > 0 && epoch.elapsed().saturating_sub(Duration::from_millis(last)) > limit;
                    if stop.load(Ordering::Relaxed) || silent {
                        stalled.store(silent, Ordering::Relaxed);
                        kill(pid);
                        break;
                    }
                }
            })
        };
        let mut frames = 0u64;
        if let Some(mut stdout) = child.stdout.take() {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
                        last_byte.store(ms, Ordering::Relaxed);
                        self.ingest.push(&buf[..n]);
                        while let Some(items) = self.ingest.next() {
                            frames += self.handoff.hand_on(items, now_ns);
                        }
                    }
                }
            }
            let items = self.ingest.finish();
            frames += self.handoff.hand_on(items, now_ns);
        }
        // Before the wait: once reaped, the pid is not ours to kill.
        done.store(true, Ordering::Relaxed);
        let _ = watchdog.join();
        let status = child.wait();
        if let Some(t) = stderr {
            let _ = t.join();
        }
        let last = tail.lock().unwrap_or_else(|p| p.into_inner()).back().cloned();
        let (message, reason) = if stalled.load(Ordering::Relaxed) {
            (
                format!("no data from the input for {:?}: ffmpeg restarted", self.cfg.stall),
                EventReason::Stalled,
            )
        } else {
            let how = match status {
                Ok(s) if s.success() => "ffmpeg ended (end of input)".to_owned(),
                Ok(s) => format!("ffmpeg exited ({s})"),
                Err(e) => format!("ffmpeg: {e}"),
            };
            let message = match last {
                Some(l) => format!("{how}: {l}"),
                None => how,
            };
            (message, EventReason::UpstreamLost)
        };
        End {
            message,
            reason,
            frames,
        }
    }
}

fn kill(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions; the child is
        // not reaped before the watchdog ends (the reader waits for it).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}
