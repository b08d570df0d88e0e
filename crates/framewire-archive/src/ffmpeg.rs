//! The ffmpeg subprocess: frames in on stdin, a Matroska file out.
//!
//! A watchdog thread kills the process when a write has been blocked for
//! longer than the stall timeout (ffmpeg stopped reading); a reader thread
//! keeps the last lines of its stderr for the log.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use framewire_codec::PixelLayout;
use tracing::debug;

use crate::config::ArchiveFormat;

/// Lines of stderr kept for the log.
const TAIL_LINES: usize = 12;

/// What goes into ffmpeg's stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// Concatenated JPEG images, as they came.
    Mjpeg,
    /// H.264 access units (Annex B), as they came.
    H264,
    /// H.265 access units (Annex B), as they came.
    H265,
    /// Tightly packed pictures of one layout and size.
    Raw {
        layout: PixelLayout,
        width: u32,
        height: u32,
    },
}

/// The command line that encodes `input` at `rate` (`num/den`) into `out`.
pub(crate) fn encode_args(format: ArchiveFormat, input: InputKind, rate: &str, out: &Path) -> Vec<OsString> {
    let mut a: Vec<String> = ["-hide_banner", "-nostats", "-v", "warning", "-y"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    match input {
        InputKind::Mjpeg => a.extend(["-f", "mjpeg", "-framerate", rate].map(String::from)),
        InputKind::H264 => a.extend(["-f", "h264", "-framerate", rate].map(String::from)),
        InputKind::H265 => a.extend(["-f", "hevc", "-framerate", rate].map(String::from)),
        InputKind::Raw { layout, width, height } => {
            a.extend(["-f", "rawvideo", "-pix_fmt", layout.label()].map(String::from));
            a.extend(["-s".to_owned(), format!("{width}x{height}")]);
            a.extend(["-framerate", rate].map(String::from));
        }
    }
    a.extend(["-i", "pipe:0", "-map", "0:v"].map(String::from));
    let enc: &[&str] = match format {
        ArchiveFormat::H264 => &[
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
        ],
        ArchiveFormat::H265 => &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-crf",
            "28",
            "-pix_fmt",
            "yuv420p",
            "-x265-params",
            "log-level=error",
        ],
        ArchiveFormat::Av1 => &[
            "-c:v",
            "libsvtav1",
            "-preset",
            "12",
            "-crf",
            "35",
            "-pix_fmt",
            "yuv420p",
        ],
        ArchiveFormat::Ffv1 => &["-c:v", "ffv1", "-level", "3", "-g", "1", "-slicecrc", "1"],
        ArchiveFormat::ProRes => &["-c:v", "prores_ks", "-profile:v", "2", "-pix_fmt", "yuv422p10le"],
        ArchiveFormat::Passthrough => &["-c:v", "copy"],
    };
    a.extend(enc.iter().map(|s| (*s).to_owned()));
    // Clusters of at most 1 s, flushed as written: what ffmpeg wrote
    // before it died is on disk and can be repaired.
    a.extend(
        [
            "-f",
            "matroska",
            "-cluster_time_limit",
            "1000",
            "-cluster_size_limit",
            "4M",
            "-flush_packets",
            "1",
        ]
        .map(String::from),
    );
    let mut v: Vec<OsString> = a.into_iter().map(OsString::from).collect();
    v.push(out.as_os_str().to_owned());
    v
}

/// How a process ended.
#[derive(Debug)]
pub(crate) struct Ended {
    /// Its exit status (after a kill if it had to be killed).
    pub(crate) status: Option<ExitStatus>,
    /// Whether it exited by itself with status 0.
    pub(crate) clean: bool,
    /// Whether the watchdog killed it for not reading.
    pub(crate) stalled: bool,
    /// The last lines it wrote to stderr.
    pub(crate) tail: String,
    /// The last line of stderr that reads as an error (not a warning).
    pub(crate) error: Option<String>,
}

impl Ended {
    /// Why it ended, for people and the index: its exit status or signal,
    /// and its last error line.
    pub(crate) fn reason(&self) -> String {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "status unknown".to_owned(),
        };
        match &self.error {
            Some(e) => format!("{status}; ffmpeg said: {e}"),
            None => status,
        }
    }
}

/// Whether an ffmpeg stderr line reports an error (rather than a warning
/// about pixel formats or the like).
pub(crate) fn is_error_line(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    !l.contains("deprecated")
        && [
            "error",
            "no space",
            "failed",
            "invalid",
            "could not",
            "cannot",
            "denied",
            "read-only",
            "input/output",
            "broken pipe",
        ]
        .iter()
        .any(|w| l.contains(w))
}

/// A running ffmpeg.
#[derive(Debug)]
pub(crate) struct Ffmpeg {
    child: Child,
    stdin: Option<ChildStdin>,
    tail: Arc<Mutex<VecDeque<String>>>,
    error: Arc<Mutex<Option<String>>>,
    /// Milliseconds since `epoch` + 1 at which the current write began; 0 when idle.
    busy_since: Arc<AtomicU64>,
    stalled: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    epoch: Instant,
    threads: Vec<JoinHandle<()>>,
}

impl Ffmpeg {
    /// Starts `program args`, in its own process group (a Ctrl-C meant for
    /// the node does not reach it: the node closes its input instead).
    pub(crate) fn spawn(program: &Path, args: &[OsString], stall_timeout: Duration) -> io::Result<Ffmpeg> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("SVT_LOG", "1")
            .process_group(0);
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        let stderr = child.stderr.take();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let error = Arc::new(Mutex::new(None));
        let busy_since = Arc::new(AtomicU64::new(0));
        let stalled = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now();
        let mut threads = Vec::new();
        if let Some(stderr) = stderr {
            let (tail, error) = (tail.clone(), error.clone());
            let pid = child.id();
            threads.push(std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    debug!(pid, "ffmpeg: {line}");
                    if is_error_line(&line) {
                        *error.lock().unwrap_or_else(|p| p.into_inner()) = Some(line.clone());
                    }
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if t.len() == TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }));
        }
        {
            let (busy, stalled, done) = (busy_since.clone(), stalled.clone(), done.clone());
            let pid = child.id();
            let limit = u64::try_from(stall_timeout.as_millis()).unwrap_or(u64::MAX);
            threads.push(std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                    let since = busy.load(Ordering::SeqCst);
                    let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
                    if since > 0 && now.saturating_sub(since) > limit && !done.load(Ordering::SeqCst) {
                        stalled.store(true, Ordering::SeqCst);
                        kill(pid);
                        break;
                    }
                }
            }));
        }
        Ok(Ffmpeg {
            child,
            stdin,
            tail,
            error,
            busy_since,
            stalled,
            done,
            epoch,
            threads,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one frame's bytes; an error means ffmpeg died or stalled.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "input closed"));
        };
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        self.busy_since.store(now, Ordering::SeqCst);
        let r = stdin.write_all(data);
        self.busy_since.store(0, Ordering::SeqCst);
        r
    }

    /// Whether the process has exited (it should not while recording).
    pub(crate) fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// The last error line of stderr so far.
    pub(crate) fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last lines of stderr, joined.
    pub(crate) fn tail(&self) -> String {
        let t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join(" | ")
    }

    /// Closes stdin and waits up to `timeout` for ffmpeg to finish the
    /// file; kills it after that.
    pub(crate) fn close(mut self, timeout: Duration) -> Ended {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        let mut status = None;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        let clean = status.is_some_and(|s| s.success());
        if status.is_none() {
            let _ = self.child.kill();
            status = self.child.wait().ok();
        }
        self.finish(status, clean)
    }

    /// Kills ffmpeg (if still running) and reaps it.
    pub(crate) fn kill(mut self) -> Ended {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        self.finish(status, false)
    }

    fn finish(mut self, status: Option<ExitStatus>, clean: bool) -> Ended {
        self.done.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        Ended {
            status,
            clean,
            stalled: self.stalled.load(Ordering::SeqCst),
            tail: self.tail(),
            error: self.error(),
        }
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        // Only reached without close()/kill() on a panic path: closing stdin
        // lets ffmpeg finish the file on its own.
        self.done.store(true, Ordering::SeqCst);
    }
}

fn kill(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our
        // own child, not yet reaped (only the thread that writes reaps it,
        // and it is blocked in that write).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// ffprobe beside the configured ffmpeg.
pub(crate) fn ffprobe_for(ffmpeg: &Path) -> PathBuf {
    match ffmpeg.file_name().and_then(|n| n.to_str()) {
        Some(n) if n.contains("ffmpeg") => ffmpeg.with_file_name(n.replace("ffmpeg", "ffprobe")),
        _ => PathBuf::from("ffprobe"),
    }
}

/// Runs a program to its end within `timeout`; its stdout, or why not.
pub(crate) fn run_bounded(program: &Path, args: &[OsString], timeout: Duration) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let out = out_t.join().unwrap_or_default();
    let err = err_t.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(out),
        Some(s) => Err(format!("{} failed ({s}): {}", program.display(), last_lines(&err))),
        None => Err(format!("{} took longer than {timeout:?}", program.display())),
    }
}

fn last_lines(s: &str) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(4)..].join(" | ")
}

/// What ffprobe says of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Codec of the first video stream.
    pub codec: String,
    /// Frames decoded.
    pub frames: u64,
    /// Container duration in seconds.
    pub duration_s: f64,
}

/// Counts a file's frames and reads its duration with ffprobe.
pub fn probe(ffprobe: &Path, file: &Path) -> Result<Probe, String> {
    let mut args: Vec<OsString> = [
        "-v",
        "error",
        "-count_frames",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=codec_name,nb_read_frames:format=duration",
        "-of",
        "default=noprint_wrappers=1",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push(file.as_os_str().to_owned());
    let out = run_bounded(ffprobe, &args, Duration::from_secs(120))?;
    let mut p = Probe {
        codec: String::new(),
        frames: 0,
        duration_s: 0.0,
    };
    let mut saw_frames = false;
    for line in out.lines() {
        match line.split_once('=') {
            Some(("codec_name", v)) => v.clone_into(&mut p.codec),
            Some(("nb_read_frames", v)) => {
                p.frames = v.trim().parse().unwrap_or(0);
                saw_frames = true;
            }
            Some(("duration", v)) => p.duration_s = v.trim().parse().unwrap_or(0.0),
            _ => {}
        }
    }
    if !saw_frames {
        return Err(format!("{}: ffprobe found no video stream", file.display()));
    }
    Ok(p)
}

/// Rewrites a file that ffmpeg did not finish (killed, crashed, node
/// killed) into a complete Matroska file with the frames that made it.
pub(crate) fn remux(ffmpeg: &Path, src: &Path, dst: &Path) -> Result<(), String> {
    let mut args: Vec<OsString> = ["-hide_banner", "-nostdin", "-v", "error", "-y", "-i"]
        .iter()
        .map(OsString::from)
        .collect();
    args.push(src.as_os_str().to_owned());
    args.extend(
        ["-map", "0:v", "-c", "copy", "-f", "matroska"]
            .iter()
            .map(OsString::from),
    );
    args.push(dst.as_os_str().to_owned());
    run_bounded(ffmpeg, &args, Duration::from_secs(120)).map(|_| ())
}

/// Whether `ffmpeg` runs.
pub fn available(ffmpeg: &Path) -> bool {
    run_bounded(ffmpeg, &[OsString::from("-version")], Duration::from_secs(10)).is_ok()
}
