//! Control commands on one connection, after HELLO: the dispatch of every
//! request, the connection's subscriptions and the channels they use.
//!
//! A [`Session`] is fed the messages its connection's reader decodes and
//! answers through the connection's [`WriterQueue`]. It touches no socket:
//! it is the same whether the peer is a node, a controller or a fuzzer.

use std::sync::Arc;

use framewire_proto::control::{EdgeOrigin, Name, ShmOffer, SourceTable, Subscribe, SubscribeReply};
use framewire_proto::{
    ControlRequest, ControlResponse, EventReason, Message, Request, Response, Status, StreamOpen, TransportMode,
};
use framewire_relay::OutputId;
use tracing::{debug, info, warn};

use crate::config::{EdgeConfig, EdgeTransport};
use crate::error::{CommandError, NetError};
use crate::runtime::core::{NodeCore, OutputEntry, closed};
use crate::runtime::devices::Devices;
use crate::runtime::edges::Edges;
use crate::runtime::gateway::Gateway;
use crate::runtime::sources::{self, Sources};
use crate::transport::shm_edge::ShmServer;
use crate::transport::writer::{Item, QueueError, Served, WriterQueue};

/// STREAM_OPEN requests remembered while their answers are awaited.
const PENDING_OPENS: usize = 64;

/// What commands reach: the node gives each connection's session these.
#[derive(Debug)]
pub(crate) struct Services {
    pub(crate) core: Arc<NodeCore>,
    pub(crate) edges: Arc<Edges>,
    /// The device families that answer commands (V4L2 controls, monitors).
    pub(crate) devices: Devices,
    /// Shared-memory subscriptions, when on.
    pub(crate) shm: Option<Arc<ShmServer>>,
    /// Other sites' streams, on a site gateway.
    pub(crate) gateway: Option<Gateway>,
    /// The node's sources (added, changed, removed at run time).
    pub(crate) sources: Arc<Sources>,
    /// How subscriptions to peers share their paths.
    pub(crate) links: crate::runtime::links::Links,
}

/// One connection's command state.
#[derive(Debug)]
pub(crate) struct Session {
    services: Arc<Services>,
    core: Arc<NodeCore>,
    /// `address name`, for stats and logs.
    peer: String,
    queue: Arc<WriterQueue>,
    /// Output of each channel this connection serves.
    channels: Vec<(u16, OutputId)>,
    next_channel: u16,
    next_request: u16,
    /// STREAM_OPEN requests we sent and the channel they announce.
    pending_opens: Vec<(u16, u16)>,
    opaque: bool,
    /// The peer is on this host (loopback, or our own address): it may
    /// subscribe over shared memory.
    local_peer: bool,
    /// The status push task (WATCH_STATUS), if asked for.
    status: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(t) = self.status.take() {
            t.abort();
        }
        for (_, id) in std::mem::take(&mut self.channels) {
            self.core.remove_output(id);
        }
    }
}

impl Session {
    pub(crate) fn new(services: Arc<Services>, peer: String, queue: Arc<WriterQueue>, local_peer: bool) -> Session {
        Session {
            core: services.core.clone(),
            services,
            peer,
            queue,
            channels: Vec::new(),
            next_channel: 1,
            next_request: 1,
            pending_opens: Vec::new(),
            opaque: false,
            local_peer,
            status: None,
        }
    }

    /// Whether the connection holds nothing: no subscription, no status
    /// watch (an idle connection may be closed).
    pub(crate) fn is_idle(&self) -> bool {
        self.channels.is_empty() && self.status.is_none()
    }

    async fn queue(&self, item: Item) -> Result<(), NetError> {
        self.queue
            .push(item)
            .await
            .map_err(|_: QueueError| NetError::Closed(self.peer.clone()))
    }

    async fn respond(&self, req: &ControlRequest, resp: Result<Response, CommandError>) -> Result<(), NetError> {
        let msg = match resp.and_then(|r| {
            r.to_message(req.channel, req.request_id)
                .map_err(|e| CommandError::new(Status::Internal, format!("the answer does not encode: {e}")))
        }) {
            Ok(m) => Message::ControlResponse(m),
            Err(e) => {
                debug!(command = %req.command, status = %e.status, message = %e.message, "request refused");
                Message::ControlResponse(ControlResponse::error(
                    req.channel,
                    req.request_id,
                    req.command,
                    e.status,
                    &e.message,
                ))
            }
        };
        self.queue(Item::msg(&msg)?).await
    }

    /// Handles one message from the peer.
    pub(crate) async fn handle(&mut self, msg: Message) -> Result<(), NetError> {
        match msg {
            Message::ControlRequest(req) => self.request(req).await,
            Message::ControlResponse(resp) => {
                if let Some(i) = self.pending_opens.iter().position(|(id, _)| *id == resp.request_id) {
                    let (_, channel) = self.pending_opens.swap_remove(i);
                    if resp.status != Status::Ok {
                        warn!(
                            channel,
                            reason = %resp.error_message().unwrap_or_default(),
                            "subscriber refused the stream; dropping the subscription"
                        );
                        self.drop_channel(channel, EventReason::Error, "refused by the subscriber")
                            .await?;
                    }
                }
                Ok(())
            }
            Message::InputEvent { channel, event } => {
                tracing::trace!(channel, ?event, "input event from viewer");
                let id = self.channels.iter().find(|(c, _)| *c == channel).map(|(_, id)| *id);
                if let Some(stream) = id.and_then(|id| self.core.output_stream(id)) {
                    self.core.input.event(&stream, event);
                }
                Ok(())
            }
            // Frames, events and unknown types pushed at a server are ignored:
            // edges are pulled, so nothing is expected here.
            other => {
                debug!(kind = %other.message_type(), "ignored message");
                Ok(())
            }
        }
    }

    async fn request(&mut self, req: ControlRequest) -> Result<(), NetError> {
        if self.opaque {
            return Ok(());
        }
        let typed = match Request::decode(&req) {
            Ok(t) => t,
            Err(e) => {
                return self
                    .respond(&req, Err(CommandError::new(Status::BadRequest, e.to_string())))
                    .await;
            }
        };
        let (core, services) = (self.core.clone(), self.services.clone());
        let bad = |m: &str| Err(CommandError::new(Status::BadRequest, m));
        let resp: Result<Response, CommandError> = match typed {
            Request::Hello(_) => bad("HELLO was already exchanged"),
            Request::Auth(_) => bad(match core.config.key {
                Some(_) => "AUTH was already exchanged",
                None => "this node has no deployment key configured",
            }),
            Request::ListStreams => Ok(Response::ListStreams(core.stream_infos())),
            Request::Subscribe(sub) => return self.subscribe(&req, &sub).await,
            Request::Unsubscribe => return self.unsubscribe(&req).await,
            Request::UpdateSubscription(params) => match self.channels.iter().find(|(c, _)| *c == req.channel) {
                Some((_, id)) => core
                    .update_output(*id, &params)
                    .map(|p| {
                        info!(
                            channel = req.channel,
                            max_frames = p.max_frames,
                            max_bytes = p.max_bytes,
                            "subscription budgets changed"
                        );
                        Response::UpdateSubscription
                    })
                    .map_err(CommandError::from),
                None => Err(CommandError::new(
                    Status::NotFound,
                    format!("no subscription on channel {}", req.channel),
                )),
            },
            Request::RequestKeyframe(Name { name }) => {
                let stream = if name.is_empty() {
                    let id = self.channels.iter().find(|(c, _)| *c == req.channel).map(|(_, id)| *id);
                    id.and_then(|id| core.output_stream(id))
                } else {
                    Some(name)
                };
                match stream {
                    Some(stream) => core.keyframes.request(&core, &stream).map(|outcome| {
                        debug!(stream, ?outcome, "keyframe requested");
                        Response::RequestKeyframe
                    }),
                    None => Err(CommandError::new(
                        Status::NotFound,
                        format!("no stream named, and no subscription on channel {}", req.channel),
                    )),
                }
            }
            Request::StreamOpen(_) => bad("this node does not accept pushed streams: edges are pulled (use CONNECT)"),
            Request::GetStats(Name { name }) => Ok(Response::GetStats(core.stats(&name))),
            Request::Connect(c) => {
                let cfg = EdgeConfig {
                    upstream: c.upstream,
                    stream: c.stream,
                    local_name: c.local_name,
                    // transport_mode 2 asks for shared memory; else the edge
                    // picks it when both nodes offer it (auto).
                    transport: match c.params.transport {
                        TransportMode::Shm => EdgeTransport::Shm,
                        _ => EdgeTransport::Auto,
                    },
                    params: c.params,
                    weight: c.weight.max(1),
                    max_rate: c.max_rate,
                    tls: None,
                };
                match services.edges.update(&cfg) {
                    Some(local) => Ok(Response::Connect(Name { name: local })),
                    None => services
                        .edges
                        .start(cfg, EdgeOrigin::Connect)
                        .map(|local| Response::Connect(Name { name: local }))
                        .map_err(CommandError::from),
                }
            }
            Request::Disconnect(Name { name }) => services
                .edges
                .stop(&name)
                .map(|()| Response::Disconnect)
                .map_err(CommandError::from),
            Request::Describe => Ok(Response::Describe(core.describe())),
            Request::SourceAdd(t) => sources::parse(&t.table)
                .and_then(|spec| services.sources.add(spec))
                .map(|name| Response::SourceAdd(Name { name })),
            Request::SourceSet(t) => match sources::parse(&t.table) {
                Ok(spec) => services
                    .sources
                    .set(spec)
                    .await
                    .map(|name| Response::SourceSet(Name { name })),
                Err(e) => Err(e),
            },
            Request::SourceGet(Name { name }) => services
                .sources
                .get(&name)
                .map(|table| Response::SourceGet(SourceTable { table })),
            Request::SourceRemove(Name { name }) => {
                services.sources.remove(&name).await.map(|()| Response::SourceRemove)
            }
            Request::Snapshot(Name { name }) => return self.snapshot(&req, &name).await,
            Request::Shutdown(_) => {
                self.respond(&req, Ok(Response::Shutdown)).await?;
                core.begin_shutdown();
                return Ok(());
            }
            Request::WatchStatus(w) => {
                self.respond(&req, Ok(Response::WatchStatus)).await?;
                if let Some(t) = self.status.take() {
                    t.abort();
                }
                self.status = Some(crate::runtime::status::start(
                    core.clone(),
                    self.queue.clone(),
                    w.interval_ms,
                ));
                return Ok(());
            }
            // A report pushed at us (request id 0) is never answered.
            Request::StatusReport(_) => return Ok(()),
            other => match services.devices.handle(other).await {
                Some(r) => r,
                None => Err(CommandError::new(
                    Status::UnknownCommand,
                    format!("unknown command {}", req.command),
                )),
            },
        };
        self.respond(&req, resp).await
    }

    /// SNAPSHOT: the latest frame, its bytes shared with the stream; one
    /// answer at a time may wait to be written on a connection.
    async fn snapshot(&mut self, req: &ControlRequest, name: &str) -> Result<(), NetError> {
        let Some(snap) = self.core.snapshot(name) else {
            let msg = format!(
                "no frame of a stream named `{}` yet",
                framewire_proto::names::display(name, framewire_proto::names::MAX_NAME_LEN)
            );
            return self.respond(req, Err(CommandError::new(Status::NotFound, msg))).await;
        };
        if !self.queue.claim_snapshot() {
            let msg = "a snapshot is still being sent on this connection: read it first";
            return self.respond(req, Err(CommandError::new(Status::Busy, msg))).await;
        }
        let encoded = match snap.encode_response(req.channel, req.request_id) {
            Ok(e) => e,
            Err(e) => {
                self.queue.release_snapshot();
                return self
                    .respond(req, Err(CommandError::new(Status::Internal, e.to_string())))
                    .await;
            }
        };
        let r = self.queue(Item::Snapshot(encoded)).await;
        if r.is_err() {
            self.queue.release_snapshot();
        }
        r
    }

    async fn unsubscribe(&mut self, req: &ControlRequest) -> Result<(), NetError> {
        if self.channels.iter().any(|(c, _)| *c == req.channel) {
            self.respond(req, Ok(Response::Unsubscribe)).await?;
            self.drop_channel(req.channel, EventReason::Unsubscribed, "").await
        } else {
            let msg = format!("no subscription on channel {}", req.channel);
            self.respond(req, Err(CommandError::new(Status::NotFound, msg))).await
        }
    }

    async fn subscribe(&mut self, req: &ControlRequest, sub: &Subscribe) -> Result<(), NetError> {
        let (stream, params) = (sub.stream.as_str(), sub.params);
        let refuse = |status, msg: String| Err(CommandError::new(status, msg));
        let limit = self.core.config.limits.max_subscriptions_per_connection;
        if self.channels.len() >= limit {
            let msg = format!(
                "this connection has {limit} subscriptions, the limit per connection (limits.max_subscriptions_per_connection)"
            );
            return self.respond(req, refuse(Status::Busy, msg)).await;
        }
        if self.next_channel == u16::MAX {
            return self
                .respond(req, refuse(Status::Busy, "no channel left on this connection".into()))
                .await;
        }
        let opaque = params.transport == TransportMode::Opaque;
        if opaque && !self.channels.is_empty() {
            let msg = "an opaque subscription must be the only one on its connection".to_owned();
            return self.respond(req, refuse(Status::BadRequest, msg)).await;
        }
        let channel = self.next_channel;
        let mut params = params;
        if params.transport == TransportMode::Shm && self.services.shm.is_some() && self.local_peer {
            // A stream's shared memory serves at most MAX_CONSUMERS; past
            // that the subscription is served over this connection (the
            // answer names no socket) rather than refused.
            let taken = self
                .core
                .stats(stream)
                .outputs
                .iter()
                .filter(|o| o.stream == stream && o.transport == TransportMode::Shm)
                .count();
            if taken >= framewire_shm::MAX_CONSUMERS {
                info!(
                    stream,
                    taken, "shared memory of this stream is full: serving the subscription over TCP"
                );
                params.transport = TransportMode::Encapsulated;
            }
        }
        let shm = params.transport == TransportMode::Shm;
        let server = match (shm, self.services.shm.as_ref()) {
            (false, _) => None,
            (true, None) => {
                let msg = "this node has shared memory off (shm = false); subscribe over TCP".to_owned();
                return self.respond(req, refuse(Status::BadRequest, msg)).await;
            }
            (true, Some(_)) if !self.local_peer => {
                let msg = "shared memory needs the subscriber on this host; subscribe over TCP".to_owned();
                return self.respond(req, refuse(Status::BadRequest, msg)).await;
            }
            (true, Some(s)) => Some(s.clone()),
        };
        if let Some(g) = &self.services.gateway
            && let Err(e) = g.remote_stream(stream, params).await
        {
            return self.respond(req, Err(e)).await;
        }
        // `STREAM~FORMAT`: a transcoder serves it (started by the first).
        if let Err(e) = crate::runtime::transcode::ensure(&self.core, stream) {
            return self.respond(req, Err(e)).await;
        }
        let exists = self.core.has_stream(stream);
        let waker = match &server {
            Some(s) if exists => s.hub_for(&self.core, stream),
            _ => self.queue.wake.clone(),
        };
        let entry = OutputEntry {
            stream: stream.to_owned(),
            channel,
            peer: self.peer.clone(),
            waker,
            events: if opaque {
                None
            } else {
                Some(self.queue.clone() as Arc<dyn crate::runtime::core::OutputEvents>)
            },
        };
        let (id, open) = match self.core.add_output(stream, &params, entry) {
            Ok(x) => x,
            Err(e) => return self.respond(req, Err(e.into())).await,
        };
        self.next_channel += 1;
        self.channels.push((channel, id));
        let offer = server.map(|s| ShmOffer {
            path: s.path().display().to_string(),
            token: s.expect(stream, id),
        });
        self.respond(req, Ok(Response::Subscribe(SubscribeReply { channel, shm: offer })))
            .await?;
        if shm {
            // Frames go through the stream's shared-memory hub, not this writer.
            self.send_stream_open(channel, open).await?;
            info!(stream, channel, mode = %params.mode, transport = "shm", "subscribed");
            return Ok(());
        }
        if opaque {
            self.opaque = true;
            self.queue(Item::Opaque).await?;
        } else {
            self.send_stream_open(channel, open).await?;
        }
        info!(stream, channel, mode = %params.mode, transport = %params.transport, "subscribed");
        self.queue(Item::AddOutput(Served {
            id,
            channel,
            priority: params.priority,
            weight: sub.weight.max(1),
            max_rate: sub.max_rate,
        }))
        .await
    }

    async fn send_stream_open(&mut self, channel: u16, open: StreamOpen) -> Result<(), NetError> {
        let id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        self.pending_opens.push((id, channel));
        if self.pending_opens.len() > PENDING_OPENS {
            self.pending_opens.remove(0);
        }
        let msg = Message::ControlRequest(Request::StreamOpen(open).to_message(channel, id)?);
        self.queue(Item::msg(&msg)?).await
    }

    async fn drop_channel(&mut self, channel: u16, reason: EventReason, message: &str) -> Result<(), NetError> {
        if let Some(i) = self.channels.iter().position(|(c, _)| *c == channel) {
            let (_, id) = self.channels.swap_remove(i);
            self.core.remove_output(id);
            self.queue(Item::RemoveOutput(id)).await?;
            let ev = Message::StreamEvent {
                channel,
                event: closed(reason, message),
            };
            self.queue(Item::msg(&ev)?).await?;
        }
        Ok(())
    }
}
