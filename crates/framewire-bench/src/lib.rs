//! `framewire bench`: measurements on this machine, on loopback only,
//! each beside the peer a user would pick instead, measured in the same
//! run (docs/benchmarks.md has the methods).
//!
//! - [`relay`]: a framewire relay over TCP beside a GStreamer relay and
//!   the loopback TCP ceiling (iperf3): throughput, CPU, memory, per-hop
//!   latency, a stalled subscriber.
//! - [`shm`]: the shared-memory edge beside loopback TCP and GStreamer's
//!   `shmsink`/`shmsrc`.
//! - [`transcode`]: CPU per stream transcoded on a node's output, beside
//!   ffmpeg encoding the same.
//! - [`rtsp_out`]: one camera restreamed over RTSP to many clients, beside
//!   GStreamer's RTSP server.
//! - [`soak`]: a small deployment for a long time, judged at the end.
//! - [`scale`]: how far one node and one controller go, and how they refuse
//!   past that.
//!
//! Every process is a real process of the `framewire` binary: the
//! benchmarks start it (`std::env::current_exe`) as source, relay and
//! subscribers; its hidden `bench source` and `bench sub` commands are the
//! pieces, and [`report::Report`] is what a subscriber prints.

#![forbid(unsafe_code)]

pub mod compose;
mod compose_latency;
pub mod encode;
pub mod frames;
mod gst;
pub mod ingest;
pub mod latency;
mod latency_browser;
mod procs;
pub mod relay;
pub mod report;
pub mod rtsp_out;
pub mod scale;
pub mod shm;
pub mod soak;
pub mod transcode;

/// Wall-clock time in nanoseconds since the epoch (frames carry it).
fn now_ns() -> u64 {
    framewire_net::now_ns()
}
