//! `framewire bench sub` (internal): a measuring subscriber.
//!
//! Subscribes to a stream and counts the frames that arrive inside a
//! wall-clock window, with their capture-to-arrival latency
//! (`CLOCK_REALTIME` at arrival minus the frame's `timestamp_ns`), then
//! prints one JSON report on stdout. With `--stall` it subscribes and never
//! reads again: a stalled subscriber.

use std::time::Duration;

use anyhow::Context;
use framewire_bench::report::{Report, pct};
use framewire_net::NetError;
use framewire_proto::{Command, Message, Status, StreamEvent};

use super::now_ns;
use crate::util::{self, DeliveryArgs};

/// A subscriber that measures (used by `bench relay`; prints JSON).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node, HOST:PORT.
    addr: String,
    /// The stream.
    stream: String,
    /// Count frames arriving at or after this wall-clock time (ns since the epoch).
    #[arg(long)]
    start_ns: u64,
    /// Count frames arriving before this wall-clock time, then exit.
    #[arg(long)]
    end_ns: u64,
    /// Subscribe, then never read (a stalled subscriber).
    #[arg(long)]
    stall: bool,
    /// Also report (sequence, capture ns, arrival ns) of every counted frame.
    #[arg(long)]
    records: bool,
    /// Width of the arrival histogram buckets, milliseconds.
    #[arg(long, default_value_t = 100)]
    bucket_ms: u64,
    #[command(flatten)]
    delivery: DeliveryArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut report = Report {
        bucket_ms: args.bucket_ms.max(1),
        ..Report::default()
    };
    if let Err(e) = measure(&args, &mut report).await {
        report.error = Some(format!("{e:#}"));
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn until(ns: u64) -> Duration {
    Duration::from_nanos(ns.saturating_sub(now_ns()))
}

async fn measure(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let mut client = util::connect(&args.addr, Duration::from_secs(5)).await?;
    // The relay's stream appears once its edge is up: retry a little.
    let mut tries = 0;
    let channel = loop {
        match client.subscribe(&args.stream, args.delivery.params()).await {
            Ok(c) => break c,
            Err(NetError::Remote {
                status: Status::NotFound,
                ..
            }) if tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e).context("subscribe"),
        }
    };
    if args.stall {
        tokio::time::sleep(until(args.end_ns)).await;
        return Ok(());
    }
    let bucket_ns = report.bucket_ms * 1_000_000;
    let window = args.end_ns.saturating_sub(args.start_ns);
    report.buckets = vec![(0, 0); usize::try_from(window.div_ceil(bucket_ns)).unwrap_or(0)];
    let mut lat: Vec<u64> = Vec::new();
    let mut last_seq: Option<u64> = None;
    let deadline = tokio::time::sleep(until(args.end_ns));
    tokio::pin!(deadline);
    loop {
        let msg = tokio::select! {
            biased;
            () = &mut deadline => break,
            m = client.next_message() => m?,
        };
        let Some(msg) = msg else { break };
        match msg {
            Message::VideoFrame(f) if f.channel == channel => {
                let now = now_ns();
                if now >= args.end_ns {
                    break;
                }
                if let Some(prev) = last_seq
                    && f.sequence != prev + 1
                {
                    report.gaps += 1;
                    report.lost += f.sequence.saturating_sub(prev + 1);
                }
                last_seq = Some(f.sequence);
                if now < args.start_ns {
                    continue;
                }
                let len = f.data.len() as u64;
                report.frames += 1;
                report.bytes += len;
                if let Some(b) = usize::try_from((now - args.start_ns) / bucket_ns)
                    .ok()
                    .and_then(|i| report.buckets.get_mut(i))
                {
                    b.0 += 1;
                    b.1 += len;
                }
                lat.push(now.saturating_sub(f.timestamp_ns));
                if args.records {
                    report.records.push((f.sequence, f.timestamp_ns, now));
                }
            }
            Message::ControlRequest(req) if req.command == Command::StreamOpen => client.ack(&req).await?,
            Message::StreamEvent {
                event: StreamEvent::Closed(_),
                ..
            } => break,
            _ => {}
        }
    }
    lat.sort_unstable();
    report.lat_us = [pct(&lat, 0.5), pct(&lat, 0.99), pct(&lat, 1.0)].map(|ns| ns as f64 / 1e3);
    Ok(())
}
