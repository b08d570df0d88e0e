//! `framewire archive`: read an archive's index, export a time range, and
//! measure the archiver's CPU cost.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use framewire_archive::time::{parse_time, rfc3339};
use framewire_archive::{GapRow, Index, SegmentRow};

/// Recordings kept by archive sinks (`--sink archive:STREAM,dir=DIR,format=F`).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// List streams, segments and gaps from an archive's index.
    Ls(LsArgs),
    /// Write one file with a stream's recording between two times (ffmpeg
    /// concat demuxer, no re-encode).
    Export(ExportArgs),
    /// Measure the archiver's CPU per stream (archiving node + its ffmpeg),
    /// loopback only.
    Bench(BenchArgs),
}

/// `framewire archive ls`.
#[derive(Debug, clap::Args)]
struct LsArgs {
    /// The archive directory (holds index.sqlite).
    #[arg(long)]
    dir: PathBuf,
    /// Only this stream.
    #[arg(long)]
    stream: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// `framewire archive export`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Times: unix seconds (1763731680, 1763731680.5) or RFC 3339 \
(2026-11-21T13:28:00Z, 2026-11-21T14:28:00+01:00).\n\
Without --from and --to: everything recorded; with one of them, from the start or to the end.\n\
The output container follows OUT's extension (.mkv holds every archive format).")]
struct ExportArgs {
    /// The archive directory.
    #[arg(long)]
    dir: PathBuf,
    /// The stream.
    #[arg(long)]
    stream: String,
    /// Start of the range [default: the first recording].
    #[arg(long)]
    from: Option<String>,
    /// End of the range [default: the end of the last recording].
    #[arg(long)]
    to: Option<String>,
    /// The file to write.
    out: PathBuf,
    /// The ffmpeg program.
    #[arg(long, default_value = "ffmpeg")]
    ffmpeg: PathBuf,
}

/// `framewire archive bench`.
#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Archive formats to measure (repeatable).
    #[arg(long = "format", default_values = ["passthrough", "ffv1"])]
    formats: Vec<String>,
    /// Picture size of the MJPEG test stream.
    #[arg(long, default_value = "1920x1080")]
    size: String,
    /// Frame rate of the test stream.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Seconds measured per format (after 3 s of warm-up).
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Sub::Ls(a) => tokio::task::spawn_blocking(move || ls(&a)).await?,
        Sub::Export(a) => tokio::task::spawn_blocking(move || export(&a)).await?,
        Sub::Bench(a) => tokio::task::spawn_blocking(move || bench(&a)).await?,
    }
}

fn end_label(g: &GapRow) -> String {
    g.end_ns.map_or_else(|| "(ongoing)".to_owned(), rfc3339)
}

fn ls(a: &LsArgs) -> anyhow::Result<()> {
    let index = Index::open_existing(&a.dir)?;
    let stream = a.stream.as_deref();
    let streams: Vec<_> = index
        .streams()?
        .into_iter()
        .filter(|s| stream.is_none_or(|n| n == s.name))
        .collect();
    let segments = index.segments(stream)?;
    let gaps = index.gaps(stream)?;
    if a.json {
        let seg = |s: &SegmentRow| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["start"] = rfc3339(s.start_ns).into();
            v["end"] = rfc3339(s.end_ns).into();
            v
        };
        let gap = |g: &GapRow| {
            let mut v = serde_json::to_value(g).unwrap_or_default();
            v["start"] = rfc3339(g.start_ns).into();
            v["end"] = g.end_ns.map(rfc3339).into();
            v
        };
        let out = serde_json::json!({
            "dir": a.dir,
            "streams": streams,
            "segments": segments.iter().map(seg).collect::<Vec<_>>(),
            "gaps": gaps.iter().map(gap).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {:<10} {:<20} {:<12} STATE",
        "STREAM", "RECEIVED", "SIZE", "ARCHIVED AS", "ORIGIN"
    );
    for s in &streams {
        println!(
            "{:<20} {:<10} {:<10} {:<20} {:<12} {}",
            s.name,
            s.format,
            format!("{}x{}", s.width, s.height),
            format!("{} ({})", s.archive_format, s.encoder),
            s.origin,
            s.state
        );
    }
    println!(
        "\n{:<24} {:<24} {:>7} {:>10} {:<7} {:<10} PATH",
        "START", "END", "FRAMES", "BYTES", "CODEC", "STATE"
    );
    for s in &segments {
        println!(
            "{:<24} {:<24} {:>7} {:>10} {:<7} {:<10} {}{}",
            rfc3339(s.start_ns),
            rfc3339(s.end_ns),
            s.frames,
            s.bytes,
            s.codec,
            s.state,
            s.path,
            if s.note.is_empty() {
                String::new()
            } else {
                format!("  ({})", s.note)
            }
        );
    }
    if !gaps.is_empty() {
        println!(
            "\n{:<24} {:<24} {:<15} {:>7} DETAIL",
            "GAP START", "END", "REASON", "FRAMES"
        );
        for g in &gaps {
            println!(
                "{:<24} {:<24} {:<15} {:>7} {}",
                rfc3339(g.start_ns),
                end_label(g),
                g.reason,
                g.frames,
                g.detail
            );
        }
    }
    let total: u64 = segments.iter().map(|s| s.bytes).sum();
    println!("\n{} segments, {total} bytes", segments.len());
    Ok(())
}

fn export(a: &ExportArgs) -> anyhow::Result<()> {
    let time = |t: &Option<String>, default: u64| -> anyhow::Result<u64> {
        t.as_deref()
            .map_or(Ok(default), |t| parse_time(t).map_err(anyhow::Error::msg))
    };
    let from = time(&a.from, 0)?;
    let to = time(&a.to, u64::MAX)?;
    if to <= from {
        bail!("--to must be after --from");
    }
    let index = Index::open_existing(&a.dir)?;
    let segs = framewire_archive::export::range_segments(&index, &a.stream, from, to)?;
    if segs.is_empty() {
        let range = match (&a.from, &a.to) {
            (None, None) => String::new(),
            (Some(_), None) => format!(" after {}", rfc3339(from)),
            (None, Some(_)) => format!(" before {}", rfc3339(to)),
            (Some(_), Some(_)) => format!(" between {} and {}", rfc3339(from), rfc3339(to)),
        };
        bail!(
            "no recording of `{}`{range} in {} (see `framewire archive ls --dir {}`)",
            a.stream,
            a.dir.display(),
            a.dir.display()
        );
    }
    let list = framewire_archive::export::concat_list(&a.dir, &segs, from, to).map_err(anyhow::Error::msg)?;
    framewire_archive::export::join(&a.ffmpeg, &list, &a.out, None).map_err(anyhow::Error::msg)?;
    eprintln!(
        "framewire: wrote {} from {} segment(s), {} to {}",
        a.out.display(),
        segs.len(),
        rfc3339(from.max(segs[0].start_ns)),
        rfc3339(to.min(segs[segs.len() - 1].end_ns))
    );
    Ok(())
}

/// A `framewire node` child, stopped (SIGTERM, then SIGKILL) when dropped.
struct NodeChild {
    child: Child,
    addr: String,
}

impl NodeChild {
    fn spawn(args: &[String]) -> anyhow::Result<NodeChild> {
        let exe = std::env::current_exe().context("cannot find the framewire executable")?;
        let mut child = Command::new(exe)
            .arg("node")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start a node")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split(" listening on ").nth(1)
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(rest.trim().to_owned());
                } else if (line.contains("WARN") || line.contains("ERROR"))
                    && ["archive", "ffmpeg", "segment"].iter().any(|w| line.contains(w))
                {
                    eprintln!("  node: {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .context("the node did not start within 20 s")?;
        Ok(NodeChild { child, addr })
    }
}

impl Drop for NodeChild {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own, unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Direct children of a process.
fn children(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.filter_map(Result::ok) {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                v.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    v
}

/// Total frames in an archive's index for a stream.
fn archived_frames(dir: &Path, stream: &str) -> u64 {
    Index::open_existing(dir)
        .and_then(|i| i.segments(Some(stream)))
        .map(|s| s.iter().map(|r| r.frames).sum())
        .unwrap_or(0)
}

fn bench(a: &BenchArgs) -> anyhow::Result<()> {
    let clk = {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 { t as f64 } else { 100.0 }
    };
    let src = NodeChild::spawn(&[
        "--name".into(),
        "bench:source".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--source".into(),
        format!("test-pattern:cam,size={},fps={},format=mjpeg,quality=85", a.size, a.fps),
    ])?;
    if !a.json {
        println!(
            "archiver CPU, one {} MJPEG stream at {} fps from a separate source node; {} s per format",
            a.size, a.fps, a.seconds
        );
        println!(
            "{:<12} {:>10} {:>10} {:>10} {:>12}",
            "FORMAT", "NODE %", "FFMPEG %", "TOTAL %", "ARCHIVED FPS"
        );
    }
    for f in &a.formats {
        if framewire_archive::ArchiveFormat::from_label(f).is_none() {
            bail!("unknown archive format `{f}`");
        }
        let dir = std::env::temp_dir().join(format!("framewire-archive-bench-{}-{f}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let node = NodeChild::spawn(&[
            "--name".into(),
            "bench:archive".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--upstream".into(),
            format!("{}/cam,mode=completeness,max-frames=120", src.addr),
            "--sink".into(),
            format!("archive:cam,dir={},format={f},segment=3600", dir.display()),
        ])?;
        let pid = node.child.id();
        // Warm up until ffmpeg runs and frames reach the index.
        let warm_end = Instant::now() + Duration::from_secs(20);
        while (children(pid).is_empty() || archived_frames(&dir, "cam") == 0) && Instant::now() < warm_end {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(3));
        let kids = children(pid);
        if kids.is_empty() {
            bail!("{f}: the archiving node started no ffmpeg");
        }
        let sample = || {
            (
                cpu_ticks(pid).unwrap_or(0),
                kids.iter().filter_map(|k| cpu_ticks(*k)).sum::<u64>(),
                archived_frames(&dir, "cam"),
                Instant::now(),
            )
        };
        let (n0, f0, a0, t0) = sample();
        std::thread::sleep(Duration::from_secs(a.seconds));
        let (n1, f1, a1, t1) = sample();
        let secs = t1.duration_since(t0).as_secs_f64();
        let node_pct = (n1 - n0) as f64 / clk / secs * 100.0;
        let ff_pct = (f1.saturating_sub(f0)) as f64 / clk / secs * 100.0;
        // Frames reach the index once a second: the rate is over the window.
        let fps = a1.saturating_sub(a0) as f64 / secs;
        if a.json {
            println!(
                "{}",
                serde_json::json!({"format": f, "size": a.size, "fps": a.fps, "seconds": secs,
                    "node_cpu_pct": node_pct, "ffmpeg_cpu_pct": ff_pct, "total_cpu_pct": node_pct + ff_pct,
                    "archived_fps": fps})
            );
        } else {
            println!(
                "{:<12} {:>10.1} {:>10.1} {:>10.1} {:>12.1}",
                f,
                node_pct,
                ff_pct,
                node_pct + ff_pct,
                fps
            );
        }
        drop(node);
        let _ = std::fs::remove_dir_all(&dir);
    }
    drop(src);
    Ok(())
}
