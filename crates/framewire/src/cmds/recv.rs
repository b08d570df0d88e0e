//! `framewire recv ADDR STREAM`: a one-shot sink.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use framewire_proto::{Command, Message, Request, StreamEvent};

use crate::util::{self, DeliveryArgs};

/// Subscribe to a stream and write its frames' bytes to a file or stdout
/// (an MJPEG stream's bytes make a `.mjpeg` file players open). A summary
/// goes to stderr.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire recv 127.0.0.1 bars --frames 100 --out bars.mjpeg\n  \
framewire recv 127.0.0.1 raw --out - | ffmpeg -f rawvideo -pix_fmt bgra -s 1280x720 -i - out.mkv")]
pub struct Args {
    /// The node, HOST[:PORT].
    addr: String,
    /// The stream.
    stream: String,
    /// Stop after this many frames [default: run until the stream closes or Ctrl-C].
    #[arg(long)]
    frames: Option<u64>,
    /// Where to write frames: a file, or `-` for stdout [default: count only].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Give up if no frame arrives for this many seconds.
    #[arg(long, default_value_t = 10.0)]
    idle_timeout: f64,
    /// Print one line per frame and per event to stderr.
    #[arg(long, short)]
    verbose: bool,
    #[command(flatten)]
    delivery: DeliveryArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut out: Option<Box<dyn Write + Send>> = match &args.out {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::BufWriter::new(std::io::stdout()))),
        Some(p) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ))),
    };
    let mut client = util::connect(&args.addr, Duration::from_secs(5)).await?;
    let sub = framewire_proto::control::Subscribe {
        weight: args.delivery.weight,
        max_rate: args.delivery.max_rate.unwrap_or(0),
        ..framewire_proto::control::Subscribe::new(args.stream.as_str(), args.delivery.params())
    };
    let channel = client.subscribe_with(sub).await?.channel;
    let idle = Duration::from_secs_f64(args.idle_timeout.max(0.1));
    let start = Instant::now();
    let (mut frames, mut bytes, mut gaps, mut lost) = (0u64, 0u64, 0u64, 0u64);
    let mut last_seq: Option<u64> = None;
    let mut lat_ms: Vec<f64> = Vec::new();
    let result: anyhow::Result<()> = async {
        loop {
            if args.frames.is_some_and(|n| frames >= n) {
                return Ok(());
            }
            let next = tokio::select! {
                m = tokio::time::timeout(idle, client.next_message()) => m,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            let msg = next.map_err(|_| anyhow::anyhow!("no frame for {idle:?}"))??;
            let Some(msg) = msg else {
                eprintln!("framewire: the node closed the connection");
                return Ok(());
            };
            match msg {
                Message::VideoFrame(f) if f.channel == channel => {
                    if let Some(prev) = last_seq
                        && f.sequence != prev + 1
                    {
                        gaps += 1;
                        lost += f.sequence.saturating_sub(prev + 1);
                    }
                    last_seq = Some(f.sequence);
                    frames += 1;
                    bytes += f.data.len() as u64;
                    let age_ns = framewire_net::now_ns().saturating_sub(f.timestamp_ns);
                    lat_ms.push(age_ns as f64 / 1e6);
                    if args.verbose {
                        eprintln!(
                            "frame seq={} bytes={} flags={:#x} age={:.3}ms",
                            f.sequence,
                            f.data.len(),
                            f.flags.0,
                            age_ns as f64 / 1e6
                        );
                    }
                    if let Some(w) = out.as_mut() {
                        w.write_all(&f.data).context("writing a frame")?;
                    }
                }
                Message::ControlRequest(req) if req.command == Command::StreamOpen => {
                    if let Ok(Request::StreamOpen(o)) = Request::decode(&req) {
                        eprintln!(
                            "framewire: {} is {} {} {}x{} at {}/{} fps",
                            o.name, o.format, o.pixel_format, o.width, o.height, o.fps_num, o.fps_den
                        );
                    }
                    client.ack(&req).await?;
                }
                Message::StreamEvent { event, .. } => {
                    eprintln!("framewire: stream event: {}", describe_event(&event));
                    if matches!(event, StreamEvent::Closed(_)) {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }
    .await;
    if let Some(w) = out.as_mut() {
        w.flush().context("flushing the output")?;
    }
    let secs = start.elapsed().as_secs_f64();
    lat_ms.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        lat_ms
            .get(((lat_ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    eprintln!(
        "framewire: {frames} frames, {} in {secs:.1} s ({:.1} fps); {gaps} gaps, {lost} frames lost upstream; \
         capture-to-arrival latency p50 {:.2} ms, p99 {:.2} ms",
        util::human_bytes(bytes as f64),
        frames as f64 / secs.max(1e-9),
        pct(0.5),
        pct(0.99)
    );
    result
}

/// One line describing a stream event.
pub fn describe_event(e: &StreamEvent) -> String {
    match e {
        StreamEvent::Interrupted(i) => format!("interrupted ({}) {}", i.reason, i.message),
        StreamEvent::Resumed(i) => format!("resumed {}", i.message),
        StreamEvent::Closed(i) => format!("closed ({}) {}", i.reason, i.message),
        StreamEvent::FormatChanged(o) => format!("format changed: {} {}x{}", o.format, o.width, o.height),
        StreamEvent::Unknown { code, .. } => format!("unknown event 0x{code:02x}"),
    }
}
