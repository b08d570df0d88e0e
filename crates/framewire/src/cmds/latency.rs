//! `framewire latency ADDR STREAM`: how old each picture of a stream is
//! once it is decoded here, read from the time code the test pattern draws
//! into every picture (its capture time and sequence number;
//! `framewire_media::timecode`). Unlike the frame's capture timestamp,
//! the code travels inside the picture: through a transcoding output, an
//! RTSP camera relayed on, or any path that re-stamps frames, it still
//! tells when the light was captured (docs/latency.md).

use std::time::{Duration, Instant};

use anyhow::Context;
use framewire_codec::{Decoder, Registry};
use framewire_media::timecode;
use framewire_proto::{Command, Message, Request, StreamEvent};

use crate::util::{self, DeliveryArgs};

/// Measure capture-to-decoded latency of a stream from the time code in
/// its pictures (the test pattern's; docs/latency.md). Prints p50, p95,
/// p99 and a histogram.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
framewire node --source test-pattern:cam,size=1920x1080,fps=30 &\n  \
framewire latency 127.0.0.1 cam --frames 300\n  \
framewire latency 127.0.0.1:7401 cam~h264 --json\n  \
framewire view 127.0.0.1 cam --size 1280x720 --position 0,0 &\n  \
framewire latency --x11 :0 --rect 0,0,1280,720        # capture to shown on the screen")]
pub struct Args {
    /// The node, HOST[:PORT].
    #[arg(required_unless_present = "x11")]
    addr: Option<String>,
    /// The stream (its pictures must carry the time code).
    #[arg(required_unless_present = "x11")]
    stream: Option<String>,
    /// Read the pictures off an X display instead (a viewer window
    /// showing the stream): grabbed with MIT-SHM as fast as the display
    /// gives them; each new picture counts once. DISPLAY: `:0`, or empty
    /// for $DISPLAY.
    #[arg(long, value_name = "DISPLAY", num_args = 0..=1, default_missing_value = "", conflicts_with_all = ["addr", "stream"])]
    x11: Option<String>,
    /// With --x11: the rectangle the picture fills, X,Y,W,H [default: the
    /// first monitor].
    #[arg(long, value_name = "X,Y,W,H", requires = "x11", value_parser = parse_rect)]
    rect: Option<(i32, i32, u32, u32)>,
    /// Pictures to read.
    #[arg(long, default_value_t = 300)]
    frames: u64,
    /// Seconds from the first picture during which nothing is counted: a
    /// new subscriber of an H.264 stream first gets the group of pictures
    /// so far (up to a keyframe interval old), then live pictures.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Give up if no frame arrives for this many seconds.
    #[arg(long, default_value_t = 10.0)]
    idle_timeout: f64,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    delivery: DeliveryArgs,
}

/// Latencies in milliseconds, and what could not be read.
#[derive(Debug, Default)]
pub struct Samples {
    ms: Vec<f64>,
    /// Pictures decoded without a readable code.
    pub no_code: u64,
    /// Frames that did not decode.
    pub undecodable: u64,
}

/// Where the time of a picture read at a node goes (p50s in the report).
#[derive(Debug, Default)]
pub struct Stages {
    /// Capture to the frame's arrival here: drawing and encoding at the
    /// source, the relays and the network.
    arrived: Samples,
    /// Decoding here.
    decode: Samples,
}

impl Samples {
    /// One picture's latency.
    pub fn add(&mut self, ms: f64) {
        self.ms.push(ms);
    }

    /// How many were read.
    pub fn len(&self) -> usize {
        self.ms.len()
    }

    /// Whether none were.
    pub fn is_empty(&self) -> bool {
        self.ms.is_empty()
    }

    /// The `q` quantile (0..=1), nearest rank.
    pub fn quantile(&self, q: f64) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        // Rounded rank of a share of the length: in range.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = ((v.len().saturating_sub(1)) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        v.get(i).copied().unwrap_or(f64::NAN)
    }

    /// Counts per bucket of `width` ms, from 0 to the largest sample.
    pub fn histogram(&self, width: f64) -> Vec<(f64, u64)> {
        let max = self.ms.iter().copied().fold(0.0f64, f64::max);
        // Bucket indexes of finite, non-negative values.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let mut counts = vec![0u64; (max / width) as usize + 1];
        for &m in &self.ms {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let i = ((m.max(0.0) / width) as usize).min(counts.len() - 1);
            counts[i] += 1;
        }
        counts
            .into_iter()
            .enumerate()
            .map(|(i, n)| (i as f64 * width, n))
            .collect()
    }
}

/// `X,Y,W,H`.
fn parse_rect(s: &str) -> Result<(i32, i32, u32, u32), String> {
    let v: Vec<&str> = s.split(',').collect();
    let bad = || format!("`{s}` is not X,Y,W,H");
    let [x, y, w, h] = v[..] else { return Err(bad()) };
    Ok((
        x.trim().parse().map_err(|_| bad())?,
        y.trim().parse().map_err(|_| bad())?,
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    ))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(display) = args.x11.clone() {
        let target = framewire_media::x11::Target {
            display: (!display.is_empty()).then_some(display),
            rect: args.rect,
            ..Default::default()
        };
        let (frames, warmup, idle) = (args.frames, args.warmup, args.idle_timeout);
        let (samples, took) = tokio::task::spawn_blocking(move || from_screen(&target, frames, warmup, idle)).await??;
        return report(&args, &samples, None, took);
    }
    let (Some(addr), Some(stream)) = (&args.addr, &args.stream) else {
        anyhow::bail!("give ADDR and STREAM, or --x11");
    };
    let mut client = util::connect(addr, Duration::from_secs(5)).await?;
    let sub = framewire_proto::control::Subscribe {
        weight: args.delivery.weight,
        max_rate: args.delivery.max_rate.unwrap_or(0),
        ..framewire_proto::control::Subscribe::new(stream.as_str(), args.delivery.params())
    };
    let channel = client.subscribe_with(sub).await?.channel;
    let idle = Duration::from_secs_f64(args.idle_timeout.max(0.1));
    let mut decoder: Option<Box<dyn Decoder>> = None;
    let mut samples = Samples::default();
    let mut stages = Stages::default();
    let mut start: Option<Instant> = None;
    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let mut seen = 0u64;
    while seen < args.frames {
        let next = tokio::select! {
            m = tokio::time::timeout(idle, client.next_message()) => m,
            _ = tokio::signal::ctrl_c() => break,
        };
        let msg = next.map_err(|_| anyhow::anyhow!("no frame of {stream} for {idle:?}"))??;
        let Some(msg) = msg else {
            eprintln!("framewire: the node closed the connection");
            break;
        };
        match msg {
            Message::VideoFrame(f) if f.channel == channel => {
                let Some(dec) = decoder.as_mut() else { continue };
                let counted = start.get_or_insert_with(Instant::now).elapsed() >= warmup;
                let arrived = framewire_net::now_ns();
                let decoded = dec.decode(&f.data);
                if !counted {
                    continue;
                }
                seen += 1;
                let Ok(pic) = decoded else {
                    samples.undecodable += 1;
                    continue;
                };
                // Decoded now: reading the code is the meter's own time.
                let now = framewire_net::now_ns();
                match timecode::read(&pic) {
                    Some(code) => {
                        let captured = code.capture_ns(now);
                        samples.add(now.saturating_sub(captured) as f64 / 1e6);
                        stages.arrived.add(arrived.saturating_sub(captured) as f64 / 1e6);
                        stages.decode.add(now.saturating_sub(arrived) as f64 / 1e6);
                    }
                    None => samples.no_code += 1,
                }
            }
            Message::ControlRequest(req) if req.command == Command::StreamOpen => {
                if let Ok(Request::StreamOpen(o)) = Request::decode(&req) {
                    decoder = Some(
                        Registry::builtin()
                            .negotiate(&o)
                            .map_err(|r| anyhow::anyhow!("cannot decode {} ({}): {r}", o.name, o.format))?,
                    );
                }
                client.ack(&req).await?;
            }
            Message::StreamEvent { event, .. } => {
                if matches!(event, StreamEvent::Closed(_)) {
                    eprintln!("framewire: {}", super::recv::describe_event(&event));
                    break;
                }
            }
            _ => {}
        }
    }
    let took = start.map_or(Duration::ZERO, |s| s.elapsed().saturating_sub(warmup));
    report(&args, &samples, Some(&stages), took)
}

/// Grabs the screen until `frames` new pictures with a code were seen
/// (after `warmup` seconds); each counts at the grab that first shows it.
fn from_screen(
    target: &framewire_media::x11::Target,
    frames: u64,
    warmup: f64,
    idle: f64,
) -> anyhow::Result<(Samples, Duration)> {
    let mut grabber = framewire_media::x11::Grabber::open(target).map_err(|e| anyhow::anyhow!(e))?;
    let mut samples = Samples::default();
    let start = Instant::now();
    let warmup = Duration::from_secs_f64(warmup.max(0.0));
    let idle = Duration::from_secs_f64(idle.max(0.1));
    let (mut last, mut last_new) = (None, Instant::now());
    let mut grabs = 0u64;
    while (samples.len() as u64) < frames {
        // The screen as it is when the grab is asked for.
        let now = framewire_net::now_ns();
        let pic = grabber.grab().map_err(|e| anyhow::anyhow!(e))?;
        grabs += 1;
        let p = pic.plane(0);
        let code = pic.data().get(p.offset..).and_then(|d| {
            framewire_media::timecode::read_bgra(d, pic.width() as usize, pic.height() as usize, p.stride)
        });
        match code {
            Some(c) if Some(c) != last => {
                last = Some(c);
                last_new = Instant::now();
                if start.elapsed() >= warmup {
                    samples.add(now.saturating_sub(c.capture_ns(now)) as f64 / 1e6);
                }
            }
            Some(_) => {}
            None => samples.no_code += 1,
        }
        if last_new.elapsed() > idle {
            anyhow::bail!("no new picture with a time code on the screen for {idle:?} ({grabs} grabs)");
        }
    }
    let took = start.elapsed().saturating_sub(warmup);
    eprintln!(
        "framewire: {grabs} grabs in {:.1} s ({:.0} a second)",
        start.elapsed().as_secs_f64(),
        grabs as f64 / start.elapsed().as_secs_f64().max(1e-9)
    );
    Ok((samples, took))
}

fn report(args: &Args, s: &Samples, stages: Option<&Stages>, took: Duration) -> anyhow::Result<()> {
    let what = match (&args.x11, &args.stream) {
        (Some(d), _) => format!("the screen of X display {}", if d.is_empty() { "$DISPLAY" } else { d }),
        (None, Some(stream)) => stream.clone(),
        (None, None) => String::new(),
    };
    if s.is_empty() {
        anyhow::bail!(
            "no picture of {what} carried a time code ({} without one, {} did not decode): \
             is it a test pattern, or made from one?",
            s.no_code,
            s.undecodable
        );
    }
    let (p50, p95, p99, max) = (s.quantile(0.5), s.quantile(0.95), s.quantile(0.99), s.quantile(1.0));
    if args.json {
        let mut v = serde_json::json!({
            "stream": what,
            "frames": s.len(),
            "no_code": s.no_code,
            "undecodable": s.undecodable,
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "max_ms": max,
            "seconds": took.as_secs_f64(),
        });
        if let Some(st) = stages {
            v["arrived_p50_ms"] = st.arrived.quantile(0.5).into();
            v["decode_p50_ms"] = st.decode.quantile(0.5).into();
        }
        println!("{v}");
        return Ok(());
    }
    let at = match (&args.x11, &args.addr) {
        (Some(_), _) => "capture to shown".to_owned(),
        (None, Some(addr)) => format!("at {addr}: capture to decoded here"),
        (None, None) => String::new(),
    };
    println!(
        "{what} {at}, {} pictures in {:.1} s ({} without a code, {} undecodable)",
        s.len(),
        took.as_secs_f64(),
        s.no_code,
        s.undecodable
    );
    println!("p50 {p50:.1} ms  p95 {p95:.1} ms  p99 {p99:.1} ms  max {max:.1} ms");
    if let Some(st) = stages {
        println!(
            "of which (p50): capture to arrived here {:.1} ms, decoding {:.1} ms",
            st.arrived.quantile(0.5),
            st.decode.quantile(0.5)
        );
    }
    let width = if max > 200.0 {
        20.0
    } else if max > 50.0 {
        5.0
    } else {
        1.0
    };
    let hist = s.histogram(width);
    let most = hist.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    for (from, n) in hist.iter().filter(|(_, n)| *n > 0) {
        // At most 50 marks a line.
        #[allow(clippy::cast_possible_truncation)]
        let bar = "#".repeat(((n * 50).div_ceil(most)) as usize);
        let range = format!("{from:.0}-{:.0} ms", from + width);
        println!("{range:>12} {n:>6} {bar}");
    }
    std::io::Write::flush(&mut std::io::stdout()).context("writing the report")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_histogram() {
        let mut s = Samples::default();
        for i in 1..=100 {
            s.add(f64::from(i));
        }
        assert_eq!(s.quantile(0.5), 51.0);
        assert_eq!(s.quantile(0.99), 99.0);
        assert_eq!(s.quantile(1.0), 100.0);
        let h = s.histogram(10.0);
        assert_eq!(h.len(), 11);
        assert_eq!(h[0], (0.0, 9));
        assert_eq!(h[1], (10.0, 10));
        assert_eq!(h.iter().map(|(_, n)| n).sum::<u64>(), 100);
        assert!(Samples::default().quantile(0.5).is_nan());
    }
}
