//! `framewire ring`: shared-memory rings written by `--sink ring:STREAM`
//! (docs/shm.md). `ring read PATH` follows one and prints what it sees;
//! `ring header` prints the C header of the layout.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use framewire_shm::{RingRead, RingReader};

/// The C view of the ring's layout, as installed with the project.
const C_HEADER: &str = include_str!("../../../../include/framewire/fw_ring.h");

/// Shared-memory rings: `ring read PATH`, `ring header`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: RingCmd,
}

#[derive(Debug, clap::Subcommand)]
enum RingCmd {
    /// Follow a ring and print, every second, frames per second, frames
    /// skipped (the reader fell more than the ring behind) and frame sizes.
    #[command(
        after_help = "Example:\n  framewire node --source test-pattern:bars --sink ring:bars &\n  framewire ring read /dev/shm/framewire-ring-bars --seconds 5"
    )]
    Read {
        /// The ring file.
        path: PathBuf,
        /// Stop after this many seconds [default: until the ring closes].
        #[arg(long)]
        seconds: Option<f64>,
        /// Stop after this many frames.
        #[arg(long)]
        frames: Option<u64>,
        /// Start from the oldest frame still in the ring, not the newest.
        #[arg(long)]
        from_start: bool,
    },
    /// Print the C header of the ring's layout (fw_ring.h).
    Header,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        RingCmd::Header => {
            print!("{C_HEADER}");
            Ok(())
        }
        RingCmd::Read {
            path,
            seconds,
            frames,
            from_start,
        } => {
            let limit = seconds
                .map(Duration::try_from_secs_f64)
                .transpose()
                .context("--seconds")?;
            tokio::task::spawn_blocking(move || read(&path, limit, frames, from_start))
                .await
                .context("the reader stopped")?
        }
    }
}

#[derive(Debug, Default)]
struct Window {
    frames: u64,
    skipped: u64,
    bytes: u64,
    min: Option<usize>,
    max: usize,
}

impl Window {
    fn add(&mut self, len: usize, lost: u64) {
        self.frames += 1;
        self.skipped += lost;
        self.bytes += len as u64;
        self.min = Some(self.min.map_or(len, |m| m.min(len)));
        self.max = self.max.max(len);
    }
    fn line(&self, label: &str, secs: f64) -> String {
        let avg = self.bytes.checked_div(self.frames).unwrap_or(0);
        format!(
            "{label:>8} {:>8.1} fps  {:>6} skipped  size min/avg/max {}/{}/{} bytes  {} frames",
            self.frames as f64 / secs.max(1e-9),
            self.skipped,
            self.min.unwrap_or(0),
            avg,
            self.max,
            self.frames
        )
    }
}

fn read(
    path: &std::path::Path,
    limit: Option<Duration>,
    max_frames: Option<u64>,
    from_start: bool,
) -> anyhow::Result<()> {
    let mut r = RingReader::open(path).with_context(|| format!("cannot read the ring {}", path.display()))?;
    if from_start {
        r.seek(0);
    }
    let g = r.geometry();
    println!("{}: {} slots of up to {} bytes", path.display(), g.slots, g.max_frame());
    let start = Instant::now();
    let (mut window, mut total) = (Window::default(), Window::default());
    let mut window_start = start;
    let mut last_seq: Option<u64> = None;
    let mut closed = false;
    loop {
        if limit.is_some_and(|l| start.elapsed() >= l) || max_frames.is_some_and(|m| total.frames >= m) {
            break;
        }
        match r.read(Duration::from_millis(200)) {
            RingRead::Frame(f) => {
                window.add(f.data.len(), f.lost);
                total.add(f.data.len(), f.lost);
                last_seq = Some(f.meta.sequence);
            }
            RingRead::Timeout => {}
            RingRead::Closed => {
                closed = true;
                break;
            }
        }
        if window_start.elapsed() >= Duration::from_secs(1) {
            println!("{}", window.line("", window_start.elapsed().as_secs_f64()));
            window = Window::default();
            window_start = Instant::now();
        }
    }
    println!("{}", total.line("total", start.elapsed().as_secs_f64()));
    if let Some(s) = last_seq {
        println!("last source sequence {s}");
    }
    if closed {
        println!("the writer closed the ring");
    }
    Ok(())
}
