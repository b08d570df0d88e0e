//! Pulled edges: this node dials an upstream node, subscribes to one of its
//! streams, and serves it under a local name (DESIGN decision 3).
//!
//! The local stream outlives the connection: when the upstream goes away its
//! subscribers stay attached, receive *interrupted*, and receive *resumed*
//! when frames flow again (the first one flagged as a discontinuity).
//! Reconnection starts after 100 ms and backs off to 250 ms between tries;
//! after 30 s without success the edge is reported *failed* and retried
//! every 2 s for as long as it exists.
//!
//! An upstream that stays connected but goes silent (its process stopped,
//! its host frozen) is *stalled*: no frame for max(2 s, 10 frame
//! intervals) of a live stream. Its subscribers get *interrupted* with
//! reason `stalled` and the edge reconnects. While the upstream says its
//! stream is interrupted (or frames come by shared memory), the edge asks
//! DESCRIBE each such window instead, and a window without an answer is a
//! stall too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use framewire_proto::control::{ShmOffer, StreamState};
use framewire_proto::{
    Command, EventInfo, EventReason, Features, FrameFlags, Message, Request, Status, StreamEvent, TransportMode,
};
use framewire_relay::Frame;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{EdgeConfig, EdgeTransport};
use crate::error::NetError;
use crate::node::{Shared, now_ns};
use crate::transport::client::{Client, ClientIdentity, DEFAULT_TIMEOUT};

/// How long a live stream may go without a frame before its upstream is
/// stalled: 10 frame intervals, at least 2 s.
const STALL_MIN: std::time::Duration = std::time::Duration::from_secs(2);
/// The same for a stream of unknown rate, or before STREAM_OPEN.
const STALL_UNKNOWN_RATE: std::time::Duration = std::time::Duration::from_secs(10);
/// The request id of the DESCRIBE a quiet edge sends as a ping.
const PING_REQUEST: u16 = 0xfff0;

/// What a silence means: fine, time to ask for a sign of life, or stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Fine,
    Ping,
    Stalled(std::time::Duration),
}

/// The liveness of one session, sans IO: fed what was heard and when,
/// asked what a silence means.
#[derive(Debug)]
struct Liveness {
    window: std::time::Duration,
    /// The upstream says its stream is live: frames are due.
    live: bool,
    last_heard: std::time::Instant,
    pinged_at: Option<std::time::Instant>,
}

impl Liveness {
    fn new(now: std::time::Instant) -> Liveness {
        Liveness {
            window: STALL_UNKNOWN_RATE,
            live: false,
            last_heard: now,
            pinged_at: None,
        }
    }

    /// The stream opened: frames are due, at most `window` apart.
    fn live(&mut self, window: std::time::Duration) {
        self.window = window;
        self.live = true;
    }

    /// The upstream said its stream is interrupted: no frames are due.
    fn quiet(&mut self) {
        self.live = false;
    }

    fn resumed(&mut self) {
        self.live = true;
    }

    fn heard(&mut self, now: std::time::Instant) {
        self.last_heard = now;
        self.pinged_at = None;
    }

    /// How often to look (a quarter window, at least 100 ms).
    fn check_every(&self) -> std::time::Duration {
        (self.window / 4).max(std::time::Duration::from_millis(100))
    }

    fn check(&mut self, now: std::time::Instant) -> Check {
        let silent = now.saturating_duration_since(self.last_heard);
        if let Some(at) = self.pinged_at {
            if now.saturating_duration_since(at) >= self.window {
                return Check::Stalled(silent);
            }
            return Check::Fine;
        }
        if silent < self.window {
            return Check::Fine;
        }
        if self.live {
            return Check::Stalled(silent);
        }
        self.pinged_at = Some(now);
        Check::Ping
    }
}

fn stall_window(open: &framewire_proto::StreamOpen) -> std::time::Duration {
    if open.fps_num == 0 || open.fps_den == 0 {
        return STALL_UNKNOWN_RATE;
    }
    let interval = f64::from(open.fps_den) / f64::from(open.fps_num);
    std::time::Duration::from_secs_f64((10.0 * interval).min(3600.0)).max(STALL_MIN)
}

/// How a session with the upstream ended.
struct SessionEnd {
    /// The upstream answered with its STREAM_OPEN in this session.
    was_live: bool,
    error: Option<NetError>,
}

pub(crate) async fn run(shared: Arc<Shared>, cfg: EdgeConfig, mut stop: watch::Receiver<bool>) {
    let local = cfg.local_name();
    let mut shutdown = shared.shutdown.subscribe();
    let mut lost_since: Option<tokio::time::Instant> = None;
    let policy = shared.config.reconnect;
    let mut delay = policy.first;
    let mut failed_reported = false;
    loop {
        let end = tokio::select! {
            e = session(&shared, &cfg, &local) => e,
            _ = stop.changed() => break,
            _ = shutdown.changed() => break,
        };
        let reason = match &end.error {
            Some(e) => e.to_string(),
            None => "upstream closed the stream".to_owned(),
        };
        if end.was_live {
            lost_since = None;
            delay = policy.first;
            failed_reported = false;
            warn!(%reason, "upstream lost; reconnecting");
            let why = match end.error {
                Some(NetError::Stalled(_)) => EventReason::Stalled,
                _ => EventReason::UpstreamLost,
            };
            shared.stream_event(
                &local,
                StreamEvent::Interrupted(EventInfo {
                    timestamp_ns: now_ns(),
                    reason: why,
                    message: reason.clone(),
                }),
            );
        } else if lost_since.is_none() && !is_auth_failure(end.error.as_ref()) {
            info!(%reason, "upstream not reachable yet; retrying");
        }
        let since = *lost_since.get_or_insert_with(tokio::time::Instant::now);
        if is_auth_failure(end.error.as_ref()) {
            // Another key will not appear by retrying quickly: failed at once.
            if !failed_reported {
                warn!(%reason, "edge failed: authentication with the upstream failed; retrying every {:?}", policy.slow);
                failed_reported = true;
            }
            delay = policy.slow;
        } else if since.elapsed() >= policy.window {
            if !failed_reported {
                warn!(
                    "edge failed: no upstream for {:?}; retrying every {:?}",
                    policy.window, policy.slow
                );
                failed_reported = true;
            }
            delay = policy.slow;
        }
        let state = if failed_reported {
            StreamState::Failed
        } else {
            StreamState::Interrupted
        };
        shared.set_edge_state(&local, state, !end.was_live);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => break,
            _ = shutdown.changed() => break,
        }
        if !failed_reported {
            delay = (delay * 2).min(policy.max);
        }
    }
    shared.remove_stream(&local, EventReason::Unsubscribed, "edge disconnected");
}

/// Whether a session ended because the two ends could not authenticate.
fn is_auth_failure(e: Option<&NetError>) -> bool {
    matches!(
        e,
        Some(
            NetError::Auth(_)
                | NetError::Remote {
                    status: Status::PermissionDenied,
                    ..
                }
        )
    )
}

/// One connection to the upstream: connect, subscribe, relay frames.
async fn session(shared: &Arc<Shared>, cfg: &EdgeConfig, local: &str) -> SessionEnd {
    let mut was_live = false;
    let error = session_inner(shared, cfg, local, &mut was_live).await.err();
    SessionEnd { was_live, error }
}

async fn session_inner(
    shared: &Arc<Shared>,
    cfg: &EdgeConfig,
    local: &str,
    was_live: &mut bool,
) -> Result<(), NetError> {
    let who = ClientIdentity {
        name: shared.config.name.clone(),
        function_flags: shared.config.function_flags(),
        site_id: shared.config.site_id,
        key: shared.config.key.clone(),
        features: shared.features(),
    };
    let mut client = Client::connect(&cfg.upstream, &who, DEFAULT_TIMEOUT).await?;
    // Frames have no reason to come before the answer to SUBSCRIBE.
    client.set_pending_limit(shared.config.limits.client_pending_bytes);
    let mut params = cfg.params;
    let offered = client.peer().features.0 & Features::SHM.0 != 0;
    params.transport = match cfg.transport {
        EdgeTransport::Tcp => TransportMode::Encapsulated,
        EdgeTransport::Shm => TransportMode::Shm,
        EdgeTransport::Auto if offered && client.is_local() && shared.shm.get().is_some() => TransportMode::Shm,
        EdgeTransport::Auto => TransportMode::Encapsulated,
    };
    let reply = client.subscribe_full(&cfg.stream, params).await?;
    let channel = reply.channel;
    if params.transport != TransportMode::Shm && reply.shm.is_some() {
        return Err(NetError::Protocol(
            "the upstream offered shared memory for a subscription over TCP; not taken".into(),
        ));
    }
    if params.transport == TransportMode::Shm && reply.shm.is_none() {
        return Err(NetError::Protocol(
            "the upstream granted shared memory but named no socket".into(),
        ));
    }
    let upstream_label = format!("{}/{}", cfg.upstream, cfg.stream);
    // Viewers' input events for the local stream go upstream on this
    // subscription's channel while the session lasts (docs/x11.md).
    let _input = crate::runtime::input::Forwarding::start(shared, local, channel, &mut client);
    // The first frame after (re)connecting carries the discontinuity flag.
    let mut first = true;
    // Shared memory: frames arrive on a consumer thread once the stream is open.
    let mut shm: Option<ShmReceiver> = None;
    let mut shm_offer = reply.shm;
    // Liveness: how long the upstream may stay silent, and whether frames
    // are expected on this connection (else a DESCRIBE asks for a sign).
    let mut alive = Liveness::new(tokio::time::Instant::now().into_std());
    // Frames that come by shared memory count as signs of life too.
    let shm_seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut shm_count = 0;
    loop {
        let next = async {
            match &mut shm {
                Some(rx) => tokio::select! {
                    m = client.next_message() => m.map(Some),
                    end = &mut rx.end => {
                        let why = end.unwrap_or_else(|_| Err("shared-memory consumer stopped".into()));
                        match why {
                            Ok(()) => Ok(None),
                            Err(e) => Err(NetError::Closed(format!("{} ({e})", cfg.upstream))),
                        }
                    }
                },
                None => client.next_message().await.map(Some),
            }
        };
        let msg = match tokio::time::timeout(alive.check_every(), next).await {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let now = std::time::Instant::now();
                let seen = shm_seen.load(Ordering::Relaxed);
                if seen != shm_count {
                    shm_count = seen;
                    alive.heard(now);
                }
                match alive.check(now) {
                    Check::Fine => {}
                    Check::Ping => {
                        let ping = Message::ControlRequest(Request::Describe.to_message(0, PING_REQUEST)?);
                        client.send(&ping).await?;
                    }
                    Check::Stalled(after) => return Err(NetError::Stalled(after)),
                }
                continue;
            }
        };
        alive.heard(std::time::Instant::now());
        let Some(msg) = msg else {
            return Ok(());
        };
        match msg {
            Message::VideoFrame(f) if f.channel == channel => {
                let mut frame = Frame::from(f);
                if first {
                    frame.flags = frame.flags.with(FrameFlags::DISCONTINUITY);
                    first = false;
                }
                shared.push(local, frame);
            }
            Message::ControlRequest(req) if req.command == Command::StreamOpen && req.channel == channel => {
                let Ok(Request::StreamOpen(mut open)) = Request::decode(&req) else {
                    client
                        .refuse(&req, Status::BadRequest, "STREAM_OPEN did not parse")
                        .await?;
                    return Err(NetError::Protocol("STREAM_OPEN did not parse".into()));
                };
                let accept = &shared.config.accept_formats;
                if !accept.is_empty() && !accept.contains(&open.format) {
                    let list: Vec<String> = accept.iter().map(ToString::to_string).collect();
                    let msg = format!(
                        "this node accepts only {} on pulled edges, not {}",
                        list.join(", "),
                        open.format
                    );
                    client.refuse(&req, Status::UnsupportedFormat, &msg).await?;
                    return Err(NetError::Refused(msg));
                }
                open.name = local.to_owned();
                alive.live(stall_window(&open));
                client.ack(&req).await?;
                open_local(shared, local, open, &upstream_label);
                shared.set_edge_state(local, StreamState::Live, false);
                *was_live = true;
                if let Some(offer) = shm_offer.take() {
                    shm = Some(ShmReceiver::start(
                        shared.clone(),
                        local.to_owned(),
                        offer,
                        shm_seen.clone(),
                    ));
                }
            }
            Message::ControlRequest(req) => {
                let msg = format!("unknown command {}", req.command);
                client.refuse(&req, Status::UnknownCommand, &msg).await?;
            }
            Message::StreamEvent { channel: c, event } if c == channel => match event {
                StreamEvent::Interrupted(info) => {
                    // No frames until it resumes: ask for a sign of life instead.
                    alive.quiet();
                    shared.stream_event(local, StreamEvent::Interrupted(info));
                }
                StreamEvent::Resumed(info) => {
                    alive.resumed();
                    shared.stream_event(local, StreamEvent::Resumed(info));
                }
                StreamEvent::Closed(info) => {
                    return Err(NetError::Closed(format!(
                        "{} (stream closed: {})",
                        cfg.upstream, info.reason
                    )));
                }
                StreamEvent::FormatChanged(mut open) => {
                    open.name = local.to_owned();
                    shared.stream_event(local, StreamEvent::FormatChanged(open));
                }
                other => shared.stream_event(local, other),
            },
            _ => {}
        }
    }
}

/// The consumer thread of a shared-memory edge; stopped when dropped.
struct ShmReceiver {
    stop: Arc<AtomicBool>,
    end: tokio::sync::oneshot::Receiver<Result<(), String>>,
}

impl ShmReceiver {
    fn start(
        shared: Arc<Shared>,
        local: String,
        offer: ShmOffer,
        seen: Arc<std::sync::atomic::AtomicU64>,
    ) -> ShmReceiver {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, end) = tokio::sync::oneshot::channel();
        let stop2 = stop.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("shm-edge {local}"))
            .spawn(move || {
                let mut first = true;
                let path = std::path::PathBuf::from(&offer.path);
                let r = crate::transport::shm_edge::consume(&path, offer.token, &stop2, |mut f| {
                    if first {
                        f.flags = f.flags.with(FrameFlags::DISCONTINUITY);
                        first = false;
                    }
                    shared.push(&local, f);
                    seen.fetch_add(1, Ordering::Relaxed);
                });
                let _ = tx.send(r);
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start the shared-memory consumer");
        }
        ShmReceiver { stop, end }
    }
}

impl Drop for ShmReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Creates the local stream on the first STREAM_OPEN, or brings it back
/// (resumed, and format-changed if the format differs) on a later one.
fn open_local(shared: &Arc<Shared>, local: &str, open: framewire_proto::StreamOpen, upstream: &str) {
    let existing = shared.reconnected(local);
    match existing {
        None => {
            if let Err(e) = shared.add_stream(open, upstream.to_owned(), StreamState::Live) {
                warn!(error = %e, "cannot serve the pulled stream");
            } else {
                info!("upstream connected; serving");
            }
        }
        Some((state, old)) => {
            if old != open {
                shared.stream_event(local, StreamEvent::FormatChanged(open));
            }
            if state != StreamState::Live {
                info!("upstream back; resumed");
                shared.stream_event(
                    local,
                    StreamEvent::Resumed(EventInfo {
                        timestamp_ns: now_ns(),
                        reason: EventReason::Unspecified,
                        message: String::new(),
                    }),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_live_stream_is_stalled_after_its_window_a_quiet_one_after_an_unanswered_ping() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        l.live(Duration::from_secs(2));
        assert_eq!(l.check_every(), Duration::from_millis(500));
        l.heard(t0 + Duration::from_secs(1));
        assert_eq!(l.check(t0 + Duration::from_millis(2900)), Check::Fine);
        assert_eq!(
            l.check(t0 + Duration::from_secs(3)),
            Check::Stalled(Duration::from_secs(2))
        );
        // Quiet (the upstream said interrupted): a ping first, then a window for the answer.
        l.quiet();
        l.heard(t0);
        assert_eq!(l.check(t0 + Duration::from_secs(2)), Check::Ping);
        assert_eq!(l.check(t0 + Duration::from_secs(3)), Check::Fine);
        assert!(matches!(l.check(t0 + Duration::from_secs(4)), Check::Stalled(_)));
        // An answer clears the ping.
        l.heard(t0 + Duration::from_secs(4));
        assert_eq!(l.check(t0 + Duration::from_secs(5)), Check::Fine);
    }

    #[test]
    fn the_window_is_ten_frames_and_at_least_two_seconds() {
        let mut o = framewire_proto::StreamOpen {
            format: framewire_proto::Format::Mjpeg,
            pixel_format: framewire_proto::PixelFormat::None,
            origin: framewire_proto::Origin::LibjpegTurbo,
            width: 1,
            height: 1,
            fps_num: 10,
            fps_den: 1,
            name: "s".into(),
        };
        assert_eq!(stall_window(&o), Duration::from_secs(2));
        o.fps_num = 1;
        assert_eq!(stall_window(&o), Duration::from_secs(10));
        o.fps_num = 0;
        assert_eq!(stall_window(&o), STALL_UNKNOWN_RATE);
    }
}
