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
    Command, EventInfo, EventReason, Features, FrameFlags, Message, Request, Status, StreamEvent, SubscribeParams,
    TransportMode,
};
use framewire_relay::Frame;
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use crate::clock::now_ns;
use crate::config::{EdgeConfig, EdgeTransport};
use crate::error::{CommandError, NetError};
use crate::runtime::core::NodeCore;
use crate::runtime::input::{FORWARD_QUEUE, InputRegistry};
use crate::runtime::passthrough::passable;
use crate::state::liveness::{Check, Liveness, PING_REQUEST, stall_window};
use crate::transport::client::{Client, ClientIdentity, DEFAULT_TIMEOUT};
use crate::transport::shm_edge::FormatGate;

/// How a session with the upstream ended.
struct SessionEnd {
    /// The upstream answered with its STREAM_OPEN in this session.
    was_live: bool,
    error: Option<NetError>,
}

/// Runs a pulled edge until it is stopped or the node stops. When
/// `refusal` is given, the upstream's refusal of the first subscription
/// (its status and message) is sent there, so that whoever asked for the
/// edge can pass it on; it is dropped once the stream is live.
/// The request id of an edge's UPDATE_SUBSCRIPTION (its answer is read
/// in the frame loop, not awaited).
const UPDATE_REQUEST: u16 = 0xfff1;

pub(crate) async fn run(
    core: Arc<NodeCore>,
    cfg: EdgeConfig,
    mut stop: watch::Receiver<bool>,
    mut params: watch::Receiver<SubscribeParams>,
    mut refusal: Option<oneshot::Sender<CommandError>>,
) {
    let local = cfg.local_name();
    let mut shutdown = core.shutdown_signal();
    let mut lost_since: Option<tokio::time::Instant> = None;
    let policy = core.config.reconnect;
    let mut delay = policy.first;
    let mut failed_reported = false;
    loop {
        let end = tokio::select! {
            e = session(&core, &cfg, &local, &mut params) => e,
            _ = stop.changed() => break,
            _ = shutdown.changed() => break,
        };
        if let Some(tx) = refusal.take() {
            match &end.error {
                _ if end.was_live => {}
                Some(NetError::Remote { status, message, .. }) => {
                    let _ = tx.send(CommandError::new(*status, message.clone()));
                }
                _ => refusal = Some(tx),
            }
        }
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
            core.stream_event(
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
        core.set_edge_state(&local, state, !end.was_live);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => break,
            _ = shutdown.changed() => break,
        }
        if !failed_reported {
            delay = (delay * 2).min(policy.max);
        }
    }
    core.remove_stream(&local, EventReason::Unsubscribed, "edge disconnected");
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

/// The TLS an edge dials with: as it asks, else as the node's rule says.
fn edge_tls(
    core: &NodeCore,
    cfg: &EdgeConfig,
) -> Result<Option<std::sync::Arc<framewire_tls::rustls::ClientConfig>>, NetError> {
    let tls = core.config.tls.as_ref();
    match cfg.tls {
        Some(true) => match tls.and_then(|t| t.client.clone()) {
            Some(c) => Ok(Some(c)),
            None => Err(NetError::Tls {
                peer: cfg.upstream.clone(),
                reason: "the edge asks for TLS but this node has no deployment CA (tls.ca)".into(),
            }),
        },
        Some(false) => Ok(None),
        None => Ok(tls.and_then(|t| t.for_dial(false))),
    }
}

/// One connection to the upstream: connect, subscribe, relay frames.
async fn session(
    core: &Arc<NodeCore>,
    cfg: &EdgeConfig,
    local: &str,
    budgets: &mut watch::Receiver<SubscribeParams>,
) -> SessionEnd {
    let mut was_live = false;
    let error = session_inner(core, cfg, local, budgets, &mut was_live).await.err();
    SessionEnd { was_live, error }
}

async fn session_inner(
    core: &Arc<NodeCore>,
    cfg: &EdgeConfig,
    local: &str,
    budgets: &mut watch::Receiver<SubscribeParams>,
    was_live: &mut bool,
) -> Result<(), NetError> {
    let who = ClientIdentity {
        name: core.config.name.clone(),
        function_flags: core.config.function_flags(),
        site_id: core.config.site_id,
        key: core.config.key.clone(),
        features: core.features(),
        tls: edge_tls(core, cfg)?,
    };
    let mut client = Client::connect(&cfg.upstream, &who, DEFAULT_TIMEOUT).await?;
    // Frames have no reason to come before the answer to SUBSCRIBE.
    client.set_pending_limit(core.config.limits.client_pending_bytes);
    // The latest budgets (CONNECT may have changed them since the edge began).
    let mut params = *budgets.borrow_and_update();
    let offered = client.peer().features.0 & Features::SHM.0 != 0;
    params.transport = match cfg.transport {
        EdgeTransport::Tcp => TransportMode::Encapsulated,
        EdgeTransport::Shm => TransportMode::Shm,
        EdgeTransport::Auto if offered && client.is_local() && core.features().0 & Features::SHM.0 != 0 => {
            TransportMode::Shm
        }
        EdgeTransport::Auto => TransportMode::Encapsulated,
    };
    let reply = client
        .subscribe_with(framewire_proto::control::Subscribe {
            weight: cfg.weight,
            max_rate: cfg.max_rate,
            ..framewire_proto::control::Subscribe::new(cfg.stream.as_str(), params)
        })
        .await?;
    let channel = reply.channel;
    if params.transport == TransportMode::Shm && reply.shm.is_none() {
        // The upstream's shared memory for this stream is full: it serves
        // us over this connection instead.
        info!(upstream = %cfg.upstream, stream = %cfg.stream, "upstream serves this edge over TCP (its shared memory is full)");
        params.transport = TransportMode::Encapsulated;
    }
    if params.transport != TransportMode::Shm && reply.shm.is_some() {
        return Err(NetError::Protocol {
            peer: cfg.upstream.clone(),
            message: "it offered shared memory for a subscription over TCP; not taken".into(),
        });
    }
    let upstream_label = format!("{}/{}", cfg.upstream, cfg.stream);
    // Viewers' input events for the local stream go upstream on this
    // subscription's channel while the session lasts (docs/x11.md).
    let _input = Forwarding::start(&core.input, local, channel, &mut client);
    // The first frame after (re)connecting carries the discontinuity flag.
    let mut first = true;
    // NodeCore memory: frames arrive on a consumer thread once the stream is open.
    let mut shm: Option<ShmReceiver> = None;
    let mut shm_offer = reply.shm;
    // Liveness: how long the upstream may stay silent, and whether frames
    // are expected on this connection (else a DESCRIBE asks for a sign).
    let mut alive = Liveness::new(tokio::time::Instant::now().into_std());
    // Frames that come by shared memory count as signs of life too.
    let shm_seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut shm_count = 0;
    // Format changes applied, which frames by shared memory wait for.
    let formats = Arc::new(FormatGate::default());
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
        let got = tokio::select! {
            r = tokio::time::timeout(alive.check_every(), next) => Some(r),
            Ok(()) = budgets.changed() => None,
        };
        let Some(got) = got else {
            // New budgets for this subscription: changed in place upstream.
            let mut p = *budgets.borrow_and_update();
            p.transport = params.transport;
            let req = Request::UpdateSubscription(p).to_message(channel, UPDATE_REQUEST)?;
            client.send(&Message::ControlRequest(req)).await?;
            info!(
                max_frames = p.max_frames,
                max_bytes = p.max_bytes,
                "asked the upstream for new budgets"
            );
            continue;
        };
        let msg = match got {
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
        // Audio and types this build does not know, on the stream's
        // channel: passed to the subscribers unchanged.
        if msg.channel() == channel
            && let Some((message_type, payload)) = passable(&msg)
        {
            core.pass_through(local, message_type, payload);
            continue;
        }
        match msg {
            Message::ControlResponse(r) if r.request_id == UPDATE_REQUEST && r.status != Status::Ok => {
                warn!(
                    reason = %r.error_message().unwrap_or_default(),
                    "the upstream refused the new budgets; the subscription keeps its old ones"
                );
            }
            Message::VideoFrame(f) if f.channel == channel => {
                let mut frame = Frame::from(f);
                if first {
                    frame.flags = frame.flags.with(FrameFlags::DISCONTINUITY);
                    first = false;
                }
                core.push(local, frame);
            }
            Message::ControlRequest(req) if req.command == Command::StreamOpen && req.channel == channel => {
                let Ok(Request::StreamOpen(mut open)) = Request::decode(&req) else {
                    client
                        .refuse(&req, Status::BadRequest, "STREAM_OPEN did not parse")
                        .await?;
                    return Err(NetError::Protocol {
                        peer: cfg.upstream.clone(),
                        message: "its STREAM_OPEN did not parse".into(),
                    });
                };
                let accept = &core.config.accept_formats;
                if !accept.is_empty() && !accept.contains(&open.format) {
                    let list: Vec<String> = accept.iter().map(ToString::to_string).collect();
                    let e = NetError::FormatRefused {
                        stream: local.to_owned(),
                        format: open.format,
                        accepted: list.join(", "),
                    };
                    client.refuse(&req, Status::UnsupportedFormat, &e.to_string()).await?;
                    return Err(e);
                }
                open.name = local.to_owned();
                alive.live(stall_window(&open));
                client.ack(&req).await?;
                open_local(core, local, open, &upstream_label);
                core.set_edge_state(local, StreamState::Live, false);
                *was_live = true;
                if let Some(offer) = shm_offer.take() {
                    shm = Some(ShmReceiver::start(
                        core.clone(),
                        local.to_owned(),
                        offer,
                        shm_seen.clone(),
                        formats.clone(),
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
                    core.stream_event(local, StreamEvent::Interrupted(info));
                }
                StreamEvent::Resumed(info) => {
                    alive.resumed();
                    core.stream_event(local, StreamEvent::Resumed(info));
                }
                StreamEvent::Closed(info) => {
                    return Err(NetError::Closed(format!(
                        "{} (stream closed: {})",
                        cfg.upstream, info.reason
                    )));
                }
                StreamEvent::FormatChanged(mut open) => {
                    open.name = local.to_owned();
                    core.stream_event(local, StreamEvent::FormatChanged(open));
                    formats.applied();
                }
                other => core.stream_event(local, other),
            },
            _ => {}
        }
    }
}

/// A pulled stream's input events going upstream for one edge session:
/// set up when the session subscribes, undone when it ends (dropped).
pub(crate) struct Forwarding {
    registry: Arc<InputRegistry>,
    stream: String,
    tx: tokio::sync::mpsc::Sender<Message>,
}

impl Forwarding {
    /// Events for `stream` go out on `client` (the session's connection to
    /// the upstream) on `channel` while the session reads it.
    pub(crate) fn start(registry: &Arc<InputRegistry>, stream: &str, channel: u16, client: &mut Client) -> Forwarding {
        let (tx, rx) = tokio::sync::mpsc::channel(FORWARD_QUEUE);
        client.send_while_waiting(rx);
        registry.set_forwarder(stream, tx.clone(), channel);
        Forwarding {
            registry: registry.clone(),
            stream: stream.to_owned(),
            tx,
        }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        self.registry.clear_forwarder(&self.stream, &self.tx);
    }
}

/// The consumer thread of a shared-memory edge; stopped when dropped.
struct ShmReceiver {
    stop: Arc<AtomicBool>,
    end: tokio::sync::oneshot::Receiver<Result<(), String>>,
}

impl ShmReceiver {
    fn start(
        core: Arc<NodeCore>,
        local: String,
        offer: ShmOffer,
        seen: Arc<std::sync::atomic::AtomicU64>,
        formats: Arc<FormatGate>,
    ) -> ShmReceiver {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, end) = tokio::sync::oneshot::channel();
        let stop2 = stop.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("shm-edge {local}"))
            .spawn(move || {
                let mut first = true;
                let path = std::path::PathBuf::from(&offer.path);
                let r = crate::transport::shm_edge::consume(&path, offer.token, &stop2, &formats, |mut f| {
                    if first {
                        f.flags = f.flags.with(FrameFlags::DISCONTINUITY);
                        first = false;
                    }
                    core.push(&local, f);
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
fn open_local(core: &Arc<NodeCore>, local: &str, open: framewire_proto::StreamOpen, upstream: &str) {
    let existing = core.reconnected(local);
    match existing {
        None => {
            if let Err(e) = core.add_stream(open, upstream.to_owned(), StreamState::Live) {
                warn!(error = %e, "cannot serve the pulled stream");
            } else {
                info!("upstream connected; serving");
            }
        }
        Some((state, old)) => {
            if old != open {
                core.stream_event(local, StreamEvent::FormatChanged(open));
            }
            if state != StreamState::Live {
                info!("upstream back; resumed");
                core.stream_event(
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
