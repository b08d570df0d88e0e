//! Replay: prepared frames sent in a loop (the `file` source, and the
//! benchmarks' sources).

use bytes::Bytes;
use framewire_proto::StreamOpen;
use framewire_proto::control::StreamState;
use tracing::info;

use super::{frame, paced, spawn_thread};
use crate::api::{SourceHost, SourceSpec};
use crate::clock::now_ns;
use crate::config::SourceConfig;
use crate::error::NetError;

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

impl From<ReplayConfig> for SourceConfig {
    fn from(c: ReplayConfig) -> SourceConfig {
        SourceConfig::new(c)
    }
}

impl SourceSpec for ReplayConfig {
    fn name(&self) -> &str {
        &self.open.name
    }

    fn kind(&self) -> &'static str {
        "file"
    }

    fn start(&self, host: SourceHost) -> Result<std::thread::JoinHandle<()>, NetError> {
        if self.frames.is_empty() {
            return Err(NetError::Source {
                kind: "replay",
                stream: self.open.name.clone(),
                reason: "it has no frames".into(),
            });
        }
        let out = host.open(self.open.clone(), StreamState::Live)?;
        info!(stream = %self.open.name, frames = self.frames.len(), fps = self.fps, "replay source");
        let r = self.clone();
        let stop = host.stop_flag();
        spawn_thread(&self.open.name, move || {
            let n = r.frames.len() as u64;
            // Cannot truncate: the index is below frames.len().
            #[allow(clippy::cast_possible_truncation)]
            let len_of = |seq: u64| r.frames[((seq - 1) % n) as usize].len();
            paced(
                r.fps,
                &stop,
                |seq| out.wait_room(len_of(seq), &stop),
                |seq| {
                    let i = (seq - 1) % n;
                    if !r.looped && seq > n {
                        return false;
                    }
                    // Cannot truncate: i < n = frames.len().
                    #[allow(clippy::cast_possible_truncation)]
                    let data = r.frames[i as usize].clone();
                    out.push(frame(data, seq, now_ns()));
                    true
                },
            );
        })
    }
}
