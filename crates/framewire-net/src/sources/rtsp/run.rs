//! Running an RTSP session for a source: connect, describe, set up, play,
//! frames into the ingest; a session that fails, ends or stalls is
//! started again with backoff. Runs on the source's own thread, in a
//! single-threaded runtime of its own.

use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_media::h26x::Codec;
use framewire_proto::EventReason;
use framewire_proto::control::StreamState;
use futures_util::StreamExt;
use retina::client::{Credentials, PlayOptions, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat};
use tracing::{info, warn};

use super::RtspConfig;
use super::clock::CameraClock;
use super::proxy;
use crate::api::{SourceHost, StopSignal};
use crate::clock::now_ns;
use crate::error::NetError;
use crate::sources::handoff::Handoff;
use crate::sources::ingest::{Ingest, Payload};
use crate::sources::spawn_thread;

/// First wait before a session is started again; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// A session that delivered frames this long starts the backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(10);
/// Connect, DESCRIBE, SETUP and PLAY each finish within this.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn start(cfg: RtspConfig, host: SourceHost) -> Result<std::thread::JoinHandle<()>, NetError> {
    let ingest = Ingest::new(&cfg.name, cfg.payload);
    let out = host.open(ingest.placeholder(), StreamState::Interrupted)?;
    let stop = host.stop_signal();
    info!(stream = %cfg.name, url = %cfg.url, "rtsp source");
    let name = cfg.name.clone();
    let session = Session {
        cfg,
        ingest,
        handoff: Handoff::new(out, "rtsp source"),
        stop,
    };
    // On the node's runtime when there is one: a frame pushed from one of
    // its workers wakes the subscribers' writers on that worker, with no
    // other thread to wake. The source's thread only waits for it.
    if let Ok(rt) = tokio::runtime::Handle::try_current()
        && rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    {
        let task = rt.spawn(session.run());
        return spawn_thread(&name, move || {
            let _ = rt.block_on(task);
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    spawn_thread(&name, move || runtime.block_on(session.run()))
}

struct Session {
    cfg: RtspConfig,
    ingest: Ingest,
    handoff: Handoff,
    stop: StopSignal,
}

/// How a session ended.
struct End {
    message: String,
    reason: EventReason,
    frames: u64,
}

impl End {
    fn error(message: String) -> End {
        End {
            message,
            reason: EventReason::Error,
            frames: 0,
        }
    }
}

impl Session {
    async fn run(mut self) {
        let mut backoff = RETRY_FIRST;
        while !self.stop.is_raised() {
            let started = Instant::now();
            let stop = self.stop.clone();
            let end = tokio::select! {
                end = self.one_session() => end,
                () = stop.raised() => break,
            };
            warn!(stream = %self.cfg.name, reason = %end.message, frames = end.frames, retry_in = ?backoff, "rtsp source: session ended");
            self.handoff.interrupted(end.reason, end.message);
            self.ingest.restart();
            if end.frames > 0 && started.elapsed() >= HEALTHY_RUN {
                backoff = RETRY_FIRST;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.raised() => break,
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }

    /// One session, until it fails, ends or stalls.
    async fn one_session(&mut self) -> End {
        let relayed = match step("connect", proxy::start(&self.cfg.url)).await {
            Ok(r) => r,
            Err(e) => return End::error(format!("cannot connect to {}: {e}", self.cfg.url)),
        };
        let mut end = self.play(&relayed.url).await;
        if let Some(e) = relayed.refused.lock().unwrap_or_else(|p| p.into_inner()).take() {
            end.message = e.to_string();
            end.reason = EventReason::Error;
        }
        end
    }

    async fn play(&mut self, url: &url::Url) -> End {
        let creds = self.cfg.creds.as_ref().map(|(u, p)| Credentials {
            username: u.clone(),
            password: p.clone(),
        });
        let options = SessionOptions::default()
            .creds(creds)
            .user_agent(format!("framewire/{}", env!("CARGO_PKG_VERSION")));
        let mut session = match step("DESCRIBE", retina::client::Session::describe(url.clone(), options)).await {
            Ok(s) => s,
            Err(e) => return End::error(e),
        };
        let want = match self.cfg.payload {
            Payload::Video(Codec::H264) => "h264",
            Payload::Video(Codec::H265) => "h265",
            Payload::Jpeg => "jpeg",
        };
        let Some(index) = session
            .streams()
            .iter()
            .position(|s| matches!(s.media(), "video" | "image") && s.encoding_name() == want)
        else {
            let offered: Vec<String> = session
                .streams()
                .iter()
                .map(|s| format!("{} {}", s.media(), s.encoding_name()))
                .collect();
            return End::error(format!(
                "the camera offers no {want} video (it offers: {}); set codec= to what it sends",
                offered.join(", ")
            ));
        };
        let transport = if self.cfg.udp {
            Transport::Udp(retina::client::UdpTransportOptions::default())
        } else {
            Transport::Tcp(retina::client::TcpTransportOptions::default())
        };
        let setup = SetupOptions::default()
            .transport(transport)
            .frame_format(FrameFormat::SIMPLE);
        if let Err(e) = step("SETUP", session.setup(index, setup)).await {
            return End::error(e);
        }
        let playing = match step("PLAY", session.play(PlayOptions::default())).await {
            Ok(p) => p,
            Err(e) => return End::error(e),
        };
        let mut frames = match playing.demuxed() {
            Ok(d) => d,
            Err(e) => return End::error(e.to_string()),
        };
        let mut clock = CameraClock::default();
        let mut delivered = 0u64;
        // One timer for the stall, moved on only when it fires, rather than
        // one set and cancelled for every frame.
        let mut last = tokio::time::Instant::now();
        let stall = tokio::time::sleep(self.cfg.stall);
        tokio::pin!(stall);
        loop {
            let next = tokio::select! {
                biased;
                next = frames.next() => next,
                () = &mut stall => {
                    if last.elapsed() < self.cfg.stall {
                        stall.as_mut().reset(last + self.cfg.stall);
                        continue;
                    }
                    return End {
                        message: format!(
                            "no frame from the camera for {:?}: session started again",
                            self.cfg.stall
                        ),
                        reason: EventReason::Stalled,
                        frames: delivered,
                    };
                }
            };
            last = tokio::time::Instant::now();
            let item = match next {
                None => {
                    return End {
                        message: "the camera ended the session".into(),
                        reason: EventReason::UpstreamLost,
                        frames: delivered,
                    };
                }
                Some(Err(e)) => {
                    return End {
                        message: e.to_string(),
                        reason: EventReason::UpstreamLost,
                        frames: delivered,
                    };
                }
                Some(Ok(item)) => item,
            };
            let CodecItem::VideoFrame(f) = item else {
                continue;
            };
            if f.loss() > 0 {
                // A picture's reference may be gone: wait for a keyframe.
                warn!(stream = %self.cfg.name, packets = f.loss(), "rtsp source: packets lost; waiting for a keyframe");
                self.ingest.restart();
                self.handoff.gap();
            }
            let ts = f.timestamp();
            let at = clock.map(ts.elapsed(), ts.clock_rate().get(), now_ns());
            let items = self.ingest.unit(Bytes::from(f.into_data()));
            delivered += self.handoff.hand_on(items, || at);
        }
    }
}

/// `what` within [`STEP_TIMEOUT`], its error as text.
async fn step<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(STEP_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {STEP_TIMEOUT:?}")),
    }
}
