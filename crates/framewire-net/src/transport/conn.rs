//! Serving one TCP connection: a reader that handles requests, a writer
//! that owns the socket's write half.
//!
//! The writer is the only task that writes to the socket. It takes, in
//! order, control messages from its queue (responses, STREAM_OPEN, stream
//! events, and commands to add or drop an output), then frames from the
//! relay outputs of this connection, one per output in turn. A frame handed
//! to it is written whole (header and shared payload in one vectored write)
//! before anything else. A peer that stops reading stalls only this writer:
//! its outputs fill to their budgets and drop, and nothing else waits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use framewire_proto::control::{AuthScheme, Hello, HelloReply, Name, ShmOffer, SubscribeReply};
use framewire_proto::{
    Command, ControlRequest, ControlResponse, Decoder, EventReason, Message, PROTOCOL_VERSION, Request, Response,
    Status, StreamOpen, TransportMode, VideoFrame,
};
use framewire_relay::OutputId;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::auth;
use crate::config::EdgeConfig;
use crate::error::NetError;
use crate::node::{OutputEntry, Shared, closed};
use crate::transport::framed::{FramedRead, write_all_vectored, write_frame, write_message};

/// Messages queued for a connection's writer.
#[derive(Debug)]
pub(crate) enum WriterCmd {
    /// Write this message.
    Msg(Message),
    /// Start serving this output on this channel.
    AddOutput(OutputId, u16),
    /// Stop serving this output.
    RemoveOutput(OutputId),
    /// From now on write frame bytes only (opaque subscription).
    Opaque,
}

/// Depth of a connection's control queue.
const CONTROL_QUEUE: usize = 256;
/// Status push period when WATCH_STATUS asks for 0.
const DEFAULT_STATUS_INTERVAL_MS: u32 = 1000;
/// Shortest status push period honoured.
const MIN_STATUS_INTERVAL_MS: u32 = 50;
/// How long a status push waits after a change for related changes.
const STATUS_COALESCE: Duration = Duration::from_millis(5);

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut stop = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (sock, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors or similar: back off briefly, keep serving.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let n = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        if n > shared.config.limits.max_connections {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            warn!(%peer, limit = shared.config.limits.max_connections, "connection refused: too many connections");
            drop(sock);
            continue;
        }
        let shared2 = shared.clone();
        let span = info_span!("conn", %peer);
        tokio::spawn(
            async move {
                match serve(shared2.clone(), sock, peer).await {
                    Ok(()) => debug!("closed"),
                    // Refusals were logged once per peer address already.
                    Err(e @ NetError::Auth(_)) => debug!(error = %e, "connection closed"),
                    Err(e) => info!(error = %e, "connection closed"),
                }
                shared2.connections.fetch_sub(1, Ordering::SeqCst);
            }
            .instrument(span),
        );
    }
}

/// The responder's side of HELLO and, with a key, AUTH. `Ok(None)`: the
/// peer closed before saying anything.
async fn handshake(
    shared: &Shared,
    reader: &mut FramedRead<OwnedReadHalf>,
    w: &mut OwnedWriteHalf,
    peer: SocketAddr,
) -> Result<Option<Hello>, NetError> {
    let first = reader.next().await?;
    let (hello_req, hello) = match first {
        Some(Message::ControlRequest(req)) if req.command == Command::Hello => match Request::decode(&req)? {
            Request::Hello(h) => (req, h),
            _ => return Err(NetError::Protocol("HELLO did not parse".into())),
        },
        Some(Message::ControlRequest(req)) if shared.config.key.is_some() => {
            let msg = "not authenticated: this node requires HELLO and AUTH with the deployment key first";
            return Err(deny(shared, w, peer, &req, msg).await);
        }
        Some(other) => {
            return Err(NetError::Protocol(format!(
                "expected HELLO first, got {}",
                other.message_type()
            )));
        }
        None => return Ok(None),
    };
    if hello.protocol_version != PROTOCOL_VERSION {
        let msg = format!(
            "protocol version {} not supported; this node speaks {PROTOCOL_VERSION}",
            hello.protocol_version
        );
        let resp = ControlResponse::error(0, hello_req.request_id, Command::Hello, Status::VersionMismatch, &msg);
        write_message(w, &Message::ControlResponse(resp)).await?;
        let _ = w.shutdown().await;
        return Err(NetError::Protocol(format!("{} ({}): {msg}", hello.name, peer)));
    }
    let Some(key) = &shared.config.key else {
        if hello.auth_scheme != AuthScheme::None {
            let msg = "this node has no deployment key configured and cannot authenticate; \
                       start it with --key-file, or connect without a key";
            return Err(deny(shared, w, peer, &hello_req, msg).await);
        }
        let reply = Response::Hello(HelloReply {
            hello: own_hello(shared, AuthScheme::None, Bytes::new()),
            proof: Bytes::new(),
        });
        write_message(w, &Message::ControlResponse(reply.to_message(0, hello_req.request_id)?)).await?;
        return Ok(Some(hello));
    };
    if hello.auth_scheme != AuthScheme::HmacSha256 || hello.nonce.len() != auth::NONCE_LEN {
        let msg = if hello.auth_scheme == AuthScheme::None {
            "this node requires authentication with the deployment key; \
             pass --key-file or set FRAMEWIRE_KEY_FILE"
                .to_owned()
        } else {
            format!(
                "unsupported authentication (scheme {}, nonce of {} bytes); \
                 this node requires HMAC-SHA-256 (scheme 1) with a {}-byte nonce",
                hello.auth_scheme.to_raw(),
                hello.nonce.len(),
                auth::NONCE_LEN
            )
        };
        return Err(deny(shared, w, peer, &hello_req, &msg).await);
    }
    let my_nonce = auth::nonce()?;
    let proof = key.responder_proof(&hello.nonce, &my_nonce);
    let reply = Response::Hello(HelloReply {
        hello: own_hello(shared, AuthScheme::HmacSha256, my_nonce.clone()),
        proof,
    });
    write_message(w, &Message::ControlResponse(reply.to_message(0, hello_req.request_id)?)).await?;
    let next = match reader.next().await? {
        Some(m) => m,
        None => {
            let reason = "closed the connection before AUTH (does it hold another deployment key?)";
            shared.log_refusal(peer, reason);
            return Err(NetError::Auth(format!("{peer} ({}) {reason}", hello.name)));
        }
    };
    let req = match next {
        Message::ControlRequest(req) => req,
        other => {
            let reason = format!("sent {} before AUTH", other.message_type());
            shared.log_refusal(peer, &reason);
            let _ = w.shutdown().await;
            return Err(NetError::Auth(format!("{peer}: {reason}")));
        }
    };
    let proof = match Request::decode(&req) {
        Ok(Request::Auth(a)) => a.proof,
        _ => {
            let msg = "not authenticated: AUTH must follow HELLO on a node with a deployment key";
            return Err(deny(shared, w, peer, &req, msg).await);
        }
    };
    if !key.verify_requester(&hello.nonce, &my_nonce, &proof) {
        let msg = "authentication failed: the proof does not match this node's deployment key";
        return Err(deny(shared, w, peer, &req, msg).await);
    }
    let ok = Response::Auth.to_message(req.channel, req.request_id)?;
    write_message(w, &Message::ControlResponse(ok)).await?;
    debug!(name = %hello.name, "authenticated");
    Ok(Some(hello))
}

/// Answers `req` with permission-denied, logs the refusal (once per peer
/// address at warn level), and closes the write side.
async fn deny(shared: &Shared, w: &mut OwnedWriteHalf, peer: SocketAddr, req: &ControlRequest, msg: &str) -> NetError {
    shared.log_refusal(peer, msg);
    let resp = ControlResponse::error(req.channel, req.request_id, req.command, Status::PermissionDenied, msg);
    if let Err(e) = write_message(w, &Message::ControlResponse(resp)).await {
        return e;
    }
    let _ = w.shutdown().await;
    NetError::Auth(format!("{peer} refused: {msg}"))
}

/// This node's HELLO.
fn own_hello(shared: &Shared, auth_scheme: AuthScheme, nonce: Bytes) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        name: shared.config.name.clone(),
        site_id: shared.config.site_id,
        function_flags: shared.config.function_flags(),
        features: shared.features(),
        auth_scheme,
        nonce,
    }
}

struct Conn {
    shared: Arc<Shared>,
    peer: String,
    ctrl: mpsc::Sender<WriterCmd>,
    notify: Arc<Notify>,
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

impl Drop for Conn {
    fn drop(&mut self) {
        // The push task holds a sender of the writer's queue: stop it so
        // the writer sees the queue close.
        if let Some(t) = self.status.take() {
            t.abort();
        }
    }
}

async fn serve(shared: Arc<Shared>, sock: TcpStream, peer: SocketAddr) -> Result<(), NetError> {
    sock.set_nodelay(true)?;
    let local_peer = sock
        .local_addr()
        .is_ok_and(|l| crate::transport::shm_edge::same_host(peer, l));
    let (r, mut w) = sock.into_split();
    let mut reader = FramedRead::new(r, Decoder::with_max_payload(shared.config.limits.max_payload));

    // HELLO (and AUTH with a key) first, all within the timeout.
    let timeout = shared.config.limits.hello_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let hello = match tokio::time::timeout_at(deadline, handshake(&shared, &mut reader, &mut w, peer)).await {
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            let what = if shared.config.key.is_some() {
                "HELLO and AUTH"
            } else {
                "HELLO"
            };
            return Err(NetError::Timeout(timeout, what));
        }
    };
    debug!(name = %hello.name, "hello");

    let (ctrl, ctrl_rx) = mpsc::channel(CONTROL_QUEUE);
    let notify = Arc::new(Notify::new());
    let writer =
        tokio::spawn(writer_loop(shared.clone(), w, ctrl_rx, notify.clone()).instrument(tracing::Span::current()));
    let mut conn = Conn {
        shared: shared.clone(),
        peer: format!("{peer} {}", hello.name),
        ctrl,
        notify,
        channels: Vec::new(),
        next_channel: 1,
        next_request: 1,
        pending_opens: Vec::new(),
        opaque: false,
        local_peer,
        status: None,
    };
    let mut stop = shared.shutdown.subscribe();
    let result = loop {
        let next = tokio::select! {
            m = reader.next() => m,
            _ = stop.changed() => break Ok(()),
        };
        match next {
            Ok(Some(msg)) => {
                if let Err(e) = conn.handle(msg).await {
                    break Err(e);
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    // Closing. On shutdown, *closed* events are already queued (Node::shutdown);
    // the writer finishes the frame in flight, writes them, and closes.
    let shutting_down = *stop.borrow();
    for (_, id) in std::mem::take(&mut conn.channels) {
        conn.shared.remove_output(id);
        let _ = conn.ctrl.try_send(WriterCmd::RemoveOutput(id));
    }
    drop(conn);
    if shutting_down {
        let grace = shared.config.shutdown_grace;
        let _ = tokio::time::timeout(grace, writer).await;
    } else {
        writer.abort();
    }
    result
}

impl Conn {
    async fn queue(&self, cmd: WriterCmd) -> Result<(), NetError> {
        self.ctrl
            .send(cmd)
            .await
            .map_err(|_| NetError::Closed(self.peer.clone()))
    }

    async fn respond(&self, req: &ControlRequest, resp: Result<Response, (Status, String)>) -> Result<(), NetError> {
        let msg = match resp {
            Ok(r) => Message::ControlResponse(r.to_message(req.channel, req.request_id)?),
            Err((status, message)) => {
                debug!(command = %req.command, %status, %message, "request refused");
                Message::ControlResponse(ControlResponse::error(
                    req.channel,
                    req.request_id,
                    req.command,
                    status,
                    &message,
                ))
            }
        };
        self.queue(WriterCmd::Msg(msg)).await
    }

    async fn handle(&mut self, msg: Message) -> Result<(), NetError> {
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
                debug!(channel, ?event, "input event from viewer");
                let id = self.channels.iter().find(|(c, _)| *c == channel).map(|(_, id)| *id);
                let stream = id.and_then(|id| self.shared.output_stream(id));
                if let Some(stream) = stream {
                    self.shared.input.event(&stream, event);
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
            Err(e) => return self.respond(&req, Err((Status::BadRequest, e.to_string()))).await,
        };
        let shared = self.shared.clone();
        let resp: Result<Response, (Status, String)> = match typed {
            Request::Hello(_) => Err((Status::BadRequest, "HELLO was already exchanged".into())),
            Request::Auth(_) => Err((
                Status::BadRequest,
                match shared.config.key {
                    Some(_) => "AUTH was already exchanged",
                    None => "this node has no deployment key configured",
                }
                .into(),
            )),
            Request::ListStreams => Ok(Response::ListStreams(shared.stream_infos())),
            Request::Subscribe(sub) => return self.subscribe(&req, &sub.stream, sub.params).await,
            Request::Unsubscribe => {
                return match self.channels.iter().position(|(c, _)| *c == req.channel) {
                    Some(_) => {
                        self.respond(&req, Ok(Response::Unsubscribe)).await?;
                        self.drop_channel(req.channel, EventReason::Unsubscribed, "").await
                    }
                    None => {
                        let msg = format!("no subscription on channel {}", req.channel);
                        self.respond(&req, Err((Status::NotFound, msg))).await
                    }
                };
            }
            Request::StreamOpen(_) => Err((
                Status::BadRequest,
                "this node does not accept pushed streams: edges are pulled (use CONNECT)".into(),
            )),
            Request::GetStats(Name { name }) => Ok(Response::GetStats(shared.stats(&name))),
            Request::Connect(c) => {
                let cfg = EdgeConfig {
                    upstream: c.upstream,
                    stream: c.stream,
                    local_name: c.local_name,
                    // transport_mode 2 asks for shared memory; else the edge
                    // picks it when both nodes offer it (auto).
                    transport: match c.params.transport {
                        TransportMode::Shm => crate::EdgeTransport::Shm,
                        _ => crate::EdgeTransport::Auto,
                    },
                    params: c.params,
                };
                match shared.start_edge(cfg, framewire_proto::control::EdgeOrigin::Connect) {
                    Ok(local) => Ok(Response::Connect(Name { name: local })),
                    Err(e) => Err((Status::Busy, e.to_string())),
                }
            }
            Request::Disconnect(Name { name }) => match shared.stop_edge(&name) {
                Ok(()) => Ok(Response::Disconnect),
                Err(e) => Err((Status::NotFound, e.to_string())),
            },
            Request::Describe => Ok(Response::Describe(shared.describe())),
            Request::Snapshot(Name { name }) => match shared.snapshot(&name) {
                Some(s) => Ok(Response::Snapshot(s)),
                None => Err((Status::NotFound, format!("no frame of a stream named `{name}` yet"))),
            },
            Request::Shutdown(_) => {
                self.respond(&req, Ok(Response::Shutdown)).await?;
                shared.begin_shutdown();
                return Ok(());
            }
            r @ (Request::V4l2ListDevices
            | Request::V4l2ListControls(_)
            | Request::V4l2GetControls(_)
            | Request::V4l2SetControls(_)) => crate::v4l2::handle(shared.clone(), r).await,
            Request::ListMonitors => {
                let display = shared.config.sources.iter().find_map(|s| match s {
                    crate::SourceConfig::X11(x) => x.display.clone(),
                    _ => None,
                });
                match tokio::task::spawn_blocking(move || crate::x11::list_monitors(display.as_deref())).await {
                    Ok(Ok(m)) => Ok(Response::ListMonitors(m)),
                    Ok(Err(e)) => Err((Status::NotFound, e)),
                    Err(e) => Err((Status::Internal, e.to_string())),
                }
            }
            Request::WatchStatus(w) => {
                self.respond(&req, Ok(Response::WatchStatus)).await?;
                self.watch_status(w.interval_ms);
                return Ok(());
            }
            // A report pushed at us (request id 0) is never answered.
            Request::StatusReport(_) => return Ok(()),
            _ => Err((Status::UnknownCommand, format!("unknown command {}", req.command))),
        };
        self.respond(&req, resp).await
    }

    /// Starts (or restarts) the status push on this connection: a report at
    /// once, then every `interval_ms` and soon after every change.
    fn watch_status(&mut self, interval_ms: u32) {
        let interval = Duration::from_millis(u64::from(if interval_ms == 0 {
            DEFAULT_STATUS_INTERVAL_MS
        } else {
            interval_ms.max(MIN_STATUS_INTERVAL_MS)
        }));
        if let Some(t) = self.status.take() {
            t.abort();
        }
        let shared = self.shared.clone();
        let ctrl = self.ctrl.clone();
        let mut changes = shared.changes.subscribe();
        self.status = Some(tokio::spawn(
            async move {
                let mut sequence: u32 = 0;
                loop {
                    changes.mark_unchanged();
                    let report = shared.status_report(sequence);
                    sequence = sequence.wrapping_add(1);
                    let msg = match Request::StatusReport(Box::new(report)).to_message(0, 0) {
                        Ok(m) => Message::ControlRequest(m),
                        Err(e) => {
                            warn!(error = %e, "status report does not encode; status push stopped");
                            return;
                        }
                    };
                    if ctrl.send(WriterCmd::Msg(msg)).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        r = changes.changed() => {
                            if r.is_err() {
                                return;
                            }
                            // Let a burst of changes (an edge and its stream) settle into one report.
                            tokio::time::sleep(STATUS_COALESCE).await;
                        }
                    }
                }
            }
            .instrument(tracing::Span::current()),
        ));
    }

    async fn subscribe(
        &mut self,
        req: &ControlRequest,
        stream: &str,
        params: framewire_proto::SubscribeParams,
    ) -> Result<(), NetError> {
        if self.next_channel == u16::MAX {
            return self
                .respond(req, Err((Status::Busy, "no channel left on this connection".into())))
                .await;
        }
        let opaque = params.transport == TransportMode::Opaque;
        if opaque && !self.channels.is_empty() {
            let msg = "an opaque subscription must be the only one on its connection".to_owned();
            return self.respond(req, Err((Status::BadRequest, msg))).await;
        }
        let channel = self.next_channel;
        let shm = params.transport == TransportMode::Shm;
        let server = match (shm, self.shared.shm.get()) {
            (false, _) => None,
            (true, None) => {
                let msg = "this node has shared memory off (shm = false); subscribe over TCP".to_owned();
                return self.respond(req, Err((Status::BadRequest, msg))).await;
            }
            (true, Some(_)) if !self.local_peer => {
                let msg = "shared memory needs the subscriber on this host; subscribe over TCP".to_owned();
                return self.respond(req, Err((Status::BadRequest, msg))).await;
            }
            (true, Some(s)) => Some(s.clone()),
        };
        crate::transport::discovery::remote_stream(&self.shared, stream, params).await;
        let exists = self.shared.has_stream(stream);
        let waker = match &server {
            Some(s) if exists => s.hub_for(&self.shared, stream),
            _ => self.notify.clone(),
        };
        let entry = OutputEntry {
            stream: stream.to_owned(),
            channel,
            peer: self.peer.clone(),
            waker,
            events: if opaque { None } else { Some(self.ctrl.clone()) },
        };
        let (id, open) = match self.shared.add_output(stream, &params, entry) {
            Ok(x) => x,
            Err(e) => return self.respond(req, Err(e)).await,
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
            self.queue(WriterCmd::Opaque).await?;
        } else {
            self.send_stream_open(channel, open).await?;
        }
        info!(stream, channel, mode = %params.mode, transport = %params.transport, "subscribed");
        self.queue(WriterCmd::AddOutput(id, channel)).await
    }

    async fn send_stream_open(&mut self, channel: u16, open: StreamOpen) -> Result<(), NetError> {
        let id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        self.pending_opens.push((id, channel));
        if self.pending_opens.len() > 64 {
            self.pending_opens.remove(0);
        }
        let msg = Message::ControlRequest(Request::StreamOpen(open).to_message(channel, id)?);
        self.queue(WriterCmd::Msg(msg)).await
    }

    async fn drop_channel(&mut self, channel: u16, reason: EventReason, message: &str) -> Result<(), NetError> {
        if let Some(i) = self.channels.iter().position(|(c, _)| *c == channel) {
            let (_, id) = self.channels.swap_remove(i);
            self.shared.remove_output(id);
            self.queue(WriterCmd::RemoveOutput(id)).await?;
            let ev = Message::StreamEvent {
                channel,
                event: closed(reason, message),
            };
            self.queue(WriterCmd::Msg(ev)).await?;
        }
        Ok(())
    }
}

async fn writer_loop(
    shared: Arc<Shared>,
    mut w: OwnedWriteHalf,
    mut ctrl: mpsc::Receiver<WriterCmd>,
    notify: Arc<Notify>,
) -> Result<(), NetError> {
    let mut outputs: Vec<(OutputId, u16)> = Vec::new();
    let mut opaque = false;
    let mut turn = 0usize;
    loop {
        // Control messages first, in order.
        loop {
            match ctrl.try_recv() {
                Ok(cmd) => apply(&mut w, cmd, &mut outputs, &mut opaque).await?,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    let _ = w.shutdown().await;
                    return Ok(());
                }
            }
        }
        // Then one frame per output, taking turns. A frame written is
        // reported sent in the same lock that takes the next one.
        let mut sent = false;
        let mut written: Option<OutputId> = None;
        let n = outputs.len();
        for k in 0..n {
            let (id, channel) = outputs[(turn + k) % n];
            let tx = shared.sent_then_poll(written.take(), id);
            let Some(tx) = tx else { continue };
            if tx.encapsulated {
                let f = VideoFrame {
                    channel,
                    sequence: tx.frame.sequence,
                    timestamp_ns: tx.frame.timestamp_ns,
                    flags: tx.frame.flags,
                    data: tx.frame.data,
                };
                write_frame(&mut w, &f).await?;
            } else {
                write_all_vectored(&mut w, &[&tx.frame.data]).await?;
            }
            written = Some(id);
            sent = true;
        }
        if let Some(prev) = written {
            shared.sent(prev);
        }
        turn = turn.wrapping_add(1);
        if !sent {
            tokio::select! {
                biased;
                cmd = ctrl.recv() => match cmd {
                    Some(cmd) => apply(&mut w, cmd, &mut outputs, &mut opaque).await?,
                    None => {
                        let _ = w.shutdown().await;
                        return Ok(());
                    }
                },
                () = notify.notified() => {}
            }
        }
    }
}

async fn apply(
    w: &mut OwnedWriteHalf,
    cmd: WriterCmd,
    outputs: &mut Vec<(OutputId, u16)>,
    opaque: &mut bool,
) -> Result<(), NetError> {
    match cmd {
        WriterCmd::Msg(m) => {
            if !*opaque {
                write_message(w, &m).await?;
            }
        }
        WriterCmd::AddOutput(id, ch) => outputs.push((id, ch)),
        WriterCmd::RemoveOutput(id) => outputs.retain(|(o, _)| *o != id),
        WriterCmd::Opaque => *opaque = true,
    }
    Ok(())
}
