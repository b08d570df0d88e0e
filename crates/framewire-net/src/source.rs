//! Sources that run inside a node: the test pattern, and replay of a list
//! of frames (a file of JPEGs, or pictures prepared for a benchmark).
//!
//! Each runs on a thread of its own (encoding is CPU work that must not
//! stall the network tasks) and paces itself against the wall clock: frame
//! `n` is due at `start + n / rate`; a source that falls behind sends the
//! next frame at once rather than bunching up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_media::testpattern::{TestPattern, TestPatternConfig};
use framewire_proto::control::StreamState;
use framewire_proto::{FrameFlags, StreamOpen};
use framewire_relay::Frame;
use tracing::{error, info};

use crate::error::NetError;
use crate::node::{Shared, now_ns};

/// A stream produced inside the node.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// Moving colour bars with frame number and time.
    TestPattern(TestPatternConfig),
    /// Frames replayed in a loop.
    Replay(ReplayConfig),
    /// A V4L2 capture device (docs/v4l2.md).
    V4l2(crate::v4l2::V4l2SourceConfig),
    /// An X11 screen grab (docs/x11.md).
    X11(crate::x11::X11SourceConfig),
}

/// Replays prepared frames.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// The stream's STREAM_OPEN (its `name` is the stream name).
    pub open: StreamOpen,
    /// The frames, each sent as is.
    pub frames: Vec<Bytes>,
    /// Frames per second; 0 = as fast as the fastest subscriber takes them
    /// (no frame is made while every output of the stream is full).
    pub fps: f64,
    /// Start again at the first frame after the last.
    pub looped: bool,
}

pub(crate) fn spawn(
    shared: Arc<Shared>,
    cfg: SourceConfig,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, NetError> {
    match cfg {
        SourceConfig::V4l2(v) => crate::v4l2::spawn(shared, v, stop),
        SourceConfig::X11(x) => crate::x11::spawn(shared, x, stop),
        SourceConfig::TestPattern(tp) => {
            let mut pattern = TestPattern::new(tp.clone()).map_err(|e| NetError::Refused(e.to_string()))?;
            let open = pattern.stream_open().clone();
            let name = open.name.clone();
            shared.add_stream(open, String::new(), StreamState::Live)?;
            let fps = rate(tp.fps_num, tp.fps_den);
            info!(stream = %name, width = tp.width, height = tp.height, fps, format = %tp.encode.format, "test pattern");
            spawn_thread(&name.clone(), move || {
                // The next frame's size is not known before it is encoded:
                // the last one's stands in for it.
                let last_len = std::cell::Cell::new(0usize);
                paced(
                    fps,
                    &stop,
                    |_| has_room(&shared, &name, last_len.get()),
                    |seq| {
                        let ts = now_ns();
                        match pattern.frame(seq, ts) {
                            Ok(data) => {
                                last_len.set(data.len());
                                shared.push(&name, frame(data, seq, ts));
                                true
                            }
                            Err(e) => {
                                error!(stream = %name, error = %e, "test pattern stopped");
                                false
                            }
                        }
                    },
                );
            })
        }
        SourceConfig::Replay(r) => {
            if r.frames.is_empty() {
                return Err(NetError::Refused(format!(
                    "replay source `{}` has no frames",
                    r.open.name
                )));
            }
            let name = r.open.name.clone();
            shared.add_stream(r.open.clone(), String::new(), StreamState::Live)?;
            info!(stream = %name, frames = r.frames.len(), fps = r.fps, "replay source");
            spawn_thread(&name.clone(), move || {
                let n = r.frames.len() as u64;
                // Cannot truncate: the index is below frames.len().
                #[allow(clippy::cast_possible_truncation)]
                let len_of = |seq: u64| r.frames[((seq - 1) % n) as usize].len();
                paced(
                    r.fps,
                    &stop,
                    |seq| has_room(&shared, &name, len_of(seq)),
                    |seq| {
                        let i = (seq - 1) % n;
                        if !r.looped && seq > n {
                            return false;
                        }
                        // Cannot truncate: i < n = frames.len().
                        #[allow(clippy::cast_possible_truncation)]
                        let data = r.frames[i as usize].clone();
                        shared.push(&name, frame(data, seq, now_ns()));
                        true
                    },
                );
            })
        }
    }
}

fn rate(num: u32, den: u32) -> f64 {
    if den == 0 { 0.0 } else { f64::from(num) / f64::from(den) }
}

fn frame(data: Bytes, sequence: u64, timestamp_ns: u64) -> Frame {
    Frame {
        data,
        sequence,
        timestamp_ns,
        flags: FrameFlags::KEYFRAME,
    }
}

fn spawn_thread(name: &str, f: impl FnOnce() + Send + 'static) -> Result<std::thread::JoinHandle<()>, NetError> {
    Ok(std::thread::Builder::new().name(format!("src:{name}")).spawn(f)?)
}

/// How long a source at rate 0 sleeps while no output has room.
pub(crate) const IDLE_NAP: Duration = Duration::from_micros(50);

/// Whether at least one output of `stream` can take a frame of `len` bytes
/// without dropping one: a low-latency output with nothing pending, a
/// completeness output below its frame budget with `len` bytes left in its
/// byte budget. False with no outputs.
fn has_room(shared: &Shared, stream: &str, len: usize) -> bool {
    shared.has_room(stream, len)
}

/// Calls `produce(seq)` for seq = 1, 2, ... at `fps` until it returns false
/// or `stop` is set. At `fps` 0 frame `seq` is made as soon as
/// `ready(seq)` says an output has room for it, napping [`IDLE_NAP`] while
/// it does not.
fn paced(fps: f64, stop: &AtomicBool, ready: impl Fn(u64) -> bool, mut produce: impl FnMut(u64) -> bool) {
    let start = Instant::now();
    let period = if fps > 0.0 {
        Some(Duration::from_secs_f64(1.0 / fps))
    } else {
        None
    };
    let mut seq = 1u64;
    while !stop.load(Ordering::Relaxed) {
        if period.is_none() && !ready(seq) {
            std::thread::sleep(IDLE_NAP);
            continue;
        }
        if !produce(seq) {
            return;
        }
        if let Some(p) = period {
            // Due time of the next frame; u32 frames at >= 1 fps is years.
            let due = start + p.mul_f64(seq as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        seq += 1;
    }
}
