//! `framewire bench`: measurements on this machine, on loopback only.
//!
//! `bench relay` runs real processes of this binary (a source node, a relay
//! node, measuring subscribers) and, when installed, the same workload
//! through a GStreamer relay and an iperf3 loopback run, and prints one
//! table. The other subcommands are the pieces it starts; they are hidden.

//! The measuring and orchestrating code is in the `framewire-bench` crate;
//! the pieces that are nodes and subscribers of this binary are here.

mod source;
mod sub;

use framewire_bench::{compose, encode, ingest, latency, relay, rtsp_out, scale, shm, soak, transcode};

/// Benchmarks, on 127.0.0.1 only.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: BenchCmd,
}

#[derive(Debug, clap::Subcommand)]
enum BenchCmd {
    /// Relay throughput, CPU, memory and per-hop latency over TCP, beside
    /// GStreamer and the loopback TCP ceiling (iperf3), in one run.
    Relay(relay::Args),
    /// Shared-memory edge against loopback TCP and GStreamer shmsink/shmsrc:
    /// raw 1080p BGRA to 1, 4 and 16 consumer processes, in one run.
    Shm(shm::Args),
    /// CPU per 1080p30 stream transcoded on a node's output (STREAM~FORMAT),
    /// beside ffmpeg encoding the same, in one run.
    Transcode(transcode::Args),
    /// H.264 encoders by CPU per 1080p30 stream and encoder delay: OpenH264
    /// in process (what STREAM~h264 uses) beside libx264 through ffmpeg,
    /// and on a node's output, in one run.
    Encode(encode::Args),
    /// RTSP cameras passed through and relayed (CPU and memory per camera)
    /// beside GStreamer and ffmpeg, and a new subscriber's first picture
    /// with and without the GOP cache, in one run.
    Ingest(ingest::Args),
    /// One 1080p30 H.264 camera restreamed over RTSP to 1, 10 and 100 TCP
    /// clients by a node's RTSP server, beside GStreamer's RTSP server, in
    /// one run (CPU, memory per client, rate per client).
    Rtsp(rtsp_out::Args),
    /// Capture to shown on a viewer window through a relay (1080p30
    /// MJPEG), beside GStreamer doing the same, read off the screen by the
    /// same reader, in one run (needs Xvfb and GStreamer).
    Latency(latency::Args),
    /// CPU of a compositor drawing N MJPEG streams into a 1080p grid,
    /// beside ffmpeg's xstack and GStreamer's compositor, in one run.
    Compose(compose::Args),
    /// A small deployment run for a long time (default 1 hour) with
    /// subscribers, web clients and RTSP players joining and leaving all
    /// the time: memory, descriptors, threads, latency and lost frames
    /// judged at the end (docs/reliability.md).
    Soak(soak::Args),
    /// How far one node and one controller go on this machine: idle
    /// connections, one stream to many subscribers, a large discovery
    /// table, many nodes, edges and web clients; each then pushed until it
    /// refuses (docs/reliability.md).
    Scale(scale::Args),
    /// (internal) The test pattern as raw BGRA on stdout, paced.
    #[command(hide = true)]
    Pattern(latency::PatternArgs),
    /// (internal) The producer of `bench shm`; prints a JSON report.
    #[command(hide = true)]
    ShmProducer(shm::ProducerArgs),
    /// (internal) A consumer of `bench shm`; prints a JSON report.
    #[command(hide = true)]
    ShmConsumer(shm::ConsumerArgs),
    /// (internal) A source node replaying prepared frames.
    #[command(hide = true)]
    Source(source::Args),
    /// (internal) A measuring subscriber; prints a JSON report.
    #[command(hide = true)]
    Sub(sub::Args),
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        BenchCmd::Relay(a) => relay::run(a).await,
        BenchCmd::Shm(a) => shm::run(a).await,
        BenchCmd::Transcode(a) => transcode::run(a).await,
        BenchCmd::Encode(a) => encode::run(a).await,
        BenchCmd::Ingest(a) => ingest::run(a).await,
        BenchCmd::Rtsp(a) => rtsp_out::run(a).await,
        BenchCmd::Latency(a) => latency::run(a).await,
        BenchCmd::Compose(a) => compose::run(a).await,
        BenchCmd::Soak(a) => soak::run(a).await,
        BenchCmd::Scale(a) => scale::run(a).await,
        BenchCmd::Pattern(a) => latency::run_pattern(&a),
        BenchCmd::ShmProducer(a) => shm::run_producer(a),
        BenchCmd::ShmConsumer(a) => shm::run_consumer(a),
        BenchCmd::Source(a) => source::run(a).await,
        BenchCmd::Sub(a) => sub::run(a).await,
    }
}

/// Wall-clock time in nanoseconds since the epoch (frames carry it).
fn now_ns() -> u64 {
    framewire_net::now_ns()
}
