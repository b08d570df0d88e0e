//! Serving one TCP connection: the accept loop, HELLO (and AUTH), and the
//! reader that hands each message to the connection's command
//! [`Session`]; its writer is in [`crate::transport::writer`].
//!
//! Until HELLO (and AUTH) is done a peer may send only small messages
//! (`limits.max_handshake_payload`); its name must be a name (at most 255
//! bytes, no control characters), and it appears in logs only escaped. A
//! connection that holds no subscription and says nothing for
//! `limits.idle_timeout` is closed, and every socket has TCP keepalive, so
//! a peer that went away gives its place back.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_proto::control::{AuthScheme, Hello, HelloReply};
use framewire_proto::names::{self, NameKind};
use framewire_proto::{
    Command, ControlRequest, ControlResponse, Decoder, Message, PROTOCOL_VERSION, Request, Response, Status,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::auth;
use crate::error::NetError;
use crate::runtime::commands::{Services, Session};
use crate::runtime::core::NodeCore;
use crate::transport::framed::{FramedRead, write_message};
use crate::transport::stream::{self, ReadHalf, WriteHalf};
use crate::transport::writer::WriterQueue;

/// Peer addresses remembered for logging authentication refusals once.
const MAX_REFUSED_PEERS: usize = 1024;

/// Connections over the cap answered BUSY at once; beyond these a refused
/// connection is closed without an answer (a flood costs no more).
const MAX_BUSY_ANSWERS: usize = 32;

/// How long a refused connection has to send its HELLO for the BUSY answer.
const BUSY_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Who gets in on the main port: the cap on connections served at once
/// (held within the process's descriptors), and the log of refusals.
#[derive(Debug)]
pub(crate) struct Admission {
    cap: usize,
    /// Connections served now; the node waits for 0 when it stops.
    open: watch::Sender<usize>,
    /// When a connection over the cap was last logged (once a minute).
    full_logged: Mutex<Option<Instant>>,
    /// Peer addresses whose authentication was refused (logged once each).
    refused: Mutex<HashSet<IpAddr>>,
    /// Connections refused by authentication, for /metrics.
    auth_refusals: AtomicU64,
    /// Connections refused over the cap, for /metrics.
    busy_refusals: AtomicU64,
    /// Refused connections being answered BUSY now.
    answering: Arc<AtomicUsize>,
}

/// A place among the refused connections answered BUSY; freed on drop.
#[derive(Debug)]
struct Answering(Arc<AtomicUsize>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection counted by [`Admission`]; uncounted when dropped.
#[derive(Debug)]
pub(crate) struct Admitted(Arc<Admission>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Admission {
    pub(crate) fn new(cap: usize) -> Arc<Admission> {
        Arc::new(Admission {
            cap,
            open: watch::channel(0).0,
            full_logged: Mutex::new(None),
            refused: Mutex::new(HashSet::new()),
            auth_refusals: AtomicU64::new(0),
            busy_refusals: AtomicU64::new(0),
            answering: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// A place to answer a refused connection BUSY, while fewer than
    /// [`MAX_BUSY_ANSWERS`] are being answered.
    fn answer_slot(&self) -> Option<Answering> {
        let taken = self.answering.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < MAX_BUSY_ANSWERS).then_some(n + 1)
        });
        taken.ok().map(|_| Answering(self.answering.clone()))
    }

    /// Counts a new connection, or refuses it over the cap.
    fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Admitted> {
        let mut admitted = false;
        self.open.send_if_modified(|n| {
            admitted = *n < self.cap;
            if admitted {
                *n += 1;
            }
            admitted
        });
        if admitted {
            return Some(Admitted(self.clone()));
        }
        self.busy_refusals.fetch_add(1, Ordering::Relaxed);
        // Once a minute at most: a flood must not flood the log as well.
        let mut last = lock(&self.full_logged);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            warn!(%peer, limit = self.cap, "connection refused: too many connections (logged once a minute)");
        } else {
            debug!(%peer, "connection refused: too many connections");
        }
        None
    }

    /// Connections served now.
    pub(crate) fn open(&self) -> usize {
        *self.open.borrow()
    }

    /// Connections refused by authentication so far.
    pub(crate) fn auth_refusals(&self) -> u64 {
        self.auth_refusals.load(Ordering::Relaxed)
    }

    /// Connections refused over the cap so far.
    pub(crate) fn busy_refusals(&self) -> u64 {
        self.busy_refusals.load(Ordering::Relaxed)
    }

    /// Waits until no connection is served, at most until `deadline`.
    pub(crate) async fn drained(&self, deadline: tokio::time::Instant) {
        let mut rx = self.open.subscribe();
        let _ = tokio::time::timeout_at(deadline, rx.wait_for(|n| *n == 0)).await;
    }

    /// Logs an authentication refusal: at warn level the first time for a
    /// peer address, at debug level after that. Never logs the key.
    fn log_refusal(&self, peer: SocketAddr, reason: &str) {
        self.auth_refusals.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut seen = lock(&self.refused);
            // Bounded: a flood of addresses only makes the warnings repeat.
            if seen.len() >= MAX_REFUSED_PEERS {
                seen.clear();
            }
            seen.insert(peer.ip())
        };
        if first {
            warn!(%peer, %reason, "connection refused by authentication (further refusals of this address are logged at debug level)");
        } else {
            debug!(%peer, %reason, "connection refused by authentication");
        }
    }
}

/// What serving a connection needs: the commands' services and the admission.
#[derive(Debug, Clone)]
struct Env {
    services: Arc<Services>,
    admission: Arc<Admission>,
}

pub(crate) async fn accept_loop(services: Arc<Services>, admission: Arc<Admission>, listener: TcpListener) {
    let mut stop = services.core.shutdown_signal();
    let env = Env { services, admission };
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
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(admitted) = env.admission.admit(peer) else {
            if let Some(slot) = env.admission.answer_slot() {
                let env = env.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(BUSY_ANSWER_TIMEOUT, answer_busy(&env, sock)).await;
                    drop(slot);
                });
            }
            continue;
        };
        let env = env.clone();
        let span = info_span!("conn", %peer);
        tokio::spawn(
            async move {
                match serve(&env, sock, peer).await {
                    Ok(()) => debug!("closed"),
                    // Refusals were logged once per peer address already.
                    Err(e @ NetError::Auth(_)) => debug!(error = %e, "connection closed"),
                    Err(e) => info!(error = %e, "connection closed"),
                }
                drop(admitted);
            }
            .instrument(span),
        );
    }
}

/// Tells a connection over the cap why it is refused: its first request
/// (HELLO) is answered BUSY with the cap, and the connection closed. A peer
/// that starts TLS is only closed (the answer cannot be sent in the clear).
async fn answer_busy(env: &Env, sock: TcpStream) {
    let serves_tls = env
        .services
        .core
        .config
        .tls
        .as_ref()
        .is_some_and(|t| t.server.is_some());
    if serves_tls && stream::starts_tls(&sock).await.unwrap_or(true) {
        return;
    }
    let (r, mut w) = stream::plain(sock);
    let limits = &env.services.core.config.limits;
    let mut reader = FramedRead::new(r, Decoder::with_max_payload(limits.max_handshake_payload));
    let Ok(Some(Message::ControlRequest(req))) = reader.next().await else {
        return;
    };
    let msg = format!(
        "too many connections: this node serves at most {} at once (limits.max_connections); try again later",
        env.admission.cap
    );
    let resp = ControlResponse::error(req.channel, req.request_id, req.command, Status::Busy, &msg);
    let _ = write_message(&mut w, &Message::ControlResponse(resp)).await;
    let _ = w.shutdown().await;
}

/// The responder's side of HELLO and, with a key, AUTH. `Ok(None)`: the
/// peer closed before saying anything.
/// How a connection came in: over TLS or not, and whether the peer showed
/// a certificate of the deployment CA.
#[derive(Debug, Clone, Copy)]
struct Way {
    tls: bool,
    certified: bool,
}

/// The connection's halves, after the TLS handshake when the peer starts
/// one (and the node has a certificate).
async fn open(env: &Env, sock: TcpStream, peer: SocketAddr) -> Result<(ReadHalf, WriteHalf, Way), NetError> {
    let plain = Way {
        tls: false,
        certified: false,
    };
    let Some(server) = env.services.core.config.tls.as_ref().and_then(|t| t.server.clone()) else {
        let (r, w) = stream::plain(sock);
        return Ok((r, w, plain));
    };
    if !stream::starts_tls(&sock).await? {
        let (r, w) = stream::plain(sock);
        return Ok((r, w, plain));
    }
    match stream::accept_tls(sock, server, peer).await {
        Ok((r, w, a)) => Ok((
            r,
            w,
            Way {
                tls: true,
                certified: a.certified,
            },
        )),
        Err(e) => {
            env.admission.log_refusal(peer, &e.to_string());
            Err(e)
        }
    }
}

async fn handshake(
    env: &Env,
    reader: &mut FramedRead<ReadHalf>,
    w: &mut WriteHalf,
    peer: SocketAddr,
    way: Way,
) -> Result<Option<Hello>, NetError> {
    let first = reader.next().await?;
    let (hello_req, hello) = match first {
        Some(Message::ControlRequest(req)) if req.command == Command::Hello => match Request::decode(&req)? {
            Request::Hello(h) => (req, h),
            _ => {
                return Err(NetError::Protocol {
                    peer: peer.to_string(),
                    message: "its HELLO did not parse".into(),
                });
            }
        },
        Some(Message::ControlRequest(req)) if env.services.core.config.key.is_some() => {
            let msg = "not authenticated: this node requires HELLO and AUTH with the deployment key first";
            return Err(deny(env, w, peer, &req, msg).await);
        }
        Some(other) => {
            return Err(NetError::Protocol {
                peer: peer.to_string(),
                message: format!("expected HELLO first, got {}", other.message_type()),
            });
        }
        None => return Ok(None),
    };
    // A name, not a payload: checked before it is shown anywhere.
    if let Err(e) = names::check(NameKind::Node, &hello.name) {
        let msg = format!(
            "{e} (a node's name is `namespace:instance`, at most {} bytes)",
            names::MAX_NAME_LEN
        );
        let resp = ControlResponse::error(0, hello_req.request_id, Command::Hello, Status::BadRequest, &msg);
        write_message(w, &Message::ControlResponse(resp)).await?;
        let _ = w.shutdown().await;
        return Err(NetError::Protocol {
            peer: peer.to_string(),
            message: format!("HELLO refused: {e}"),
        });
    }
    if hello.protocol_version != PROTOCOL_VERSION {
        let msg = format!(
            "protocol version {} not supported; this node speaks {PROTOCOL_VERSION}",
            hello.protocol_version
        );
        let resp = ControlResponse::error(0, hello_req.request_id, Command::Hello, Status::VersionMismatch, &msg);
        write_message(w, &Message::ControlResponse(resp)).await?;
        let _ = w.shutdown().await;
        return Err(NetError::Protocol {
            peer: format!("{peer} {}", names::display(&hello.name, names::MAX_NAME_LEN)),
            message: msg,
        });
    }
    let tls = env.services.core.config.tls.as_ref();
    if !way.tls && tls.is_some_and(|t| t.require) {
        let msg = "this node takes TLS connections only (tls.require): dial it with --tls-ca";
        return Err(deny(env, w, peer, &hello_req, msg).await);
    }
    if way.certified {
        // A certificate of the deployment CA: authenticated by TLS, whatever
        // key the peer holds (sites joined by certificates keep keys of their own).
        debug!(name = %hello.name, "authenticated by its certificate");
        let reply = Response::Hello(HelloReply {
            hello: own_hello(&env.services.core, AuthScheme::None, Bytes::new()),
            proof: Bytes::new(),
        });
        write_message(w, &Message::ControlResponse(reply.to_message(0, hello_req.request_id)?)).await?;
        return Ok(Some(hello));
    }
    if env.services.core.config.key.is_none() && tls.is_some_and(|t| t.peer_certs) {
        let msg = "this node takes only peers that show a certificate of its deployment CA \
                   (TLS with --tls-cert and --tls-key, issued by `framewire cert issue`)";
        return Err(deny(env, w, peer, &hello_req, msg).await);
    }
    let Some(key) = &env.services.core.config.key else {
        if hello.auth_scheme != AuthScheme::None {
            let msg = "this node has no deployment key configured and cannot authenticate; \
                       start it with --key-file, or connect without a key";
            return Err(deny(env, w, peer, &hello_req, msg).await);
        }
        let reply = Response::Hello(HelloReply {
            hello: own_hello(&env.services.core, AuthScheme::None, Bytes::new()),
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
        return Err(deny(env, w, peer, &hello_req, &msg).await);
    }
    let my_nonce = auth::nonce()?;
    let proof = key.responder_proof(&hello.nonce, &my_nonce);
    let reply = Response::Hello(HelloReply {
        hello: own_hello(&env.services.core, AuthScheme::HmacSha256, my_nonce.clone()),
        proof,
    });
    write_message(w, &Message::ControlResponse(reply.to_message(0, hello_req.request_id)?)).await?;
    let next = match reader.next().await? {
        Some(m) => m,
        None => {
            let reason = "closed the connection before AUTH (does it hold another deployment key?)";
            env.admission.log_refusal(peer, reason);
            return Err(NetError::Auth(format!("{peer} ({}) {reason}", hello.name)));
        }
    };
    let req = match next {
        Message::ControlRequest(req) => req,
        other => {
            let reason = format!("sent {} before AUTH", other.message_type());
            env.admission.log_refusal(peer, &reason);
            let _ = w.shutdown().await;
            return Err(NetError::Auth(format!("{peer}: {reason}")));
        }
    };
    let proof = match Request::decode(&req) {
        Ok(Request::Auth(a)) => a.proof,
        _ => {
            let msg = "not authenticated: AUTH must follow HELLO on a node with a deployment key";
            return Err(deny(env, w, peer, &req, msg).await);
        }
    };
    if !key.verify_requester(&hello.nonce, &my_nonce, &proof) {
        let msg = "authentication failed: the proof does not match this node's deployment key";
        return Err(deny(env, w, peer, &req, msg).await);
    }
    let ok = Response::Auth.to_message(req.channel, req.request_id)?;
    write_message(w, &Message::ControlResponse(ok)).await?;
    debug!(name = %hello.name, "authenticated");
    Ok(Some(hello))
}

/// Answers `req` with permission-denied, logs the refusal (once per peer
/// address at warn level), and closes the write side.
async fn deny(env: &Env, w: &mut WriteHalf, peer: SocketAddr, req: &ControlRequest, msg: &str) -> NetError {
    env.admission.log_refusal(peer, msg);
    let resp = ControlResponse::error(req.channel, req.request_id, req.command, Status::PermissionDenied, msg);
    if let Err(e) = write_message(w, &Message::ControlResponse(resp)).await {
        return e;
    }
    let _ = w.shutdown().await;
    NetError::Auth(format!("{peer} refused: {msg}"))
}

/// This node's HELLO.
fn own_hello(core: &NodeCore, auth_scheme: AuthScheme, nonce: Bytes) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        name: core.config.name.clone(),
        site_id: core.config.site_id,
        function_flags: core.config.function_flags(),
        features: core.features(),
        auth_scheme,
        nonce,
    }
}

async fn serve(env: &Env, sock: TcpStream, peer: SocketAddr) -> Result<(), NetError> {
    let core = &env.services.core;
    sock.set_nodelay(true)?;
    crate::transport::socket::tune(&sock, &core.config.limits);
    let local_peer = sock
        .local_addr()
        .is_ok_and(|l| crate::transport::socket::same_host(peer, l));
    let limits = core.config.limits.clone();
    // TLS (when the peer starts it), HELLO (and AUTH with a key) first,
    // all within the timeout.
    let timeout = limits.hello_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let (r, mut w, way) = match tokio::time::timeout_at(deadline, open(env, sock, peer)).await {
        Ok(opened) => opened?,
        Err(_) => return Err(NetError::Timeout(timeout, "HELLO or a TLS handshake")),
    };
    // Before HELLO (and AUTH) a peer may send only small messages.
    let mut reader = FramedRead::new(r, Decoder::with_max_payload(limits.max_handshake_payload));
    let hello = match tokio::time::timeout_at(deadline, handshake(env, &mut reader, &mut w, peer, way)).await {
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            let what = if env.services.core.config.key.is_some() {
                "HELLO and AUTH"
            } else {
                "HELLO"
            };
            return Err(NetError::Timeout(timeout, what));
        }
    };
    reader.set_max_payload(limits.max_payload);
    debug!(name = %hello.name, "hello");
    let mut stop = core.shutdown_signal();
    // The first request may ask a gateway for a tunnel.
    let first = tokio::select! {
        m = reader.next() => m?,
        _ = stop.changed() => return Ok(()),
        () = tokio::time::sleep(limits.idle_timeout) => {
            debug!(after = ?limits.idle_timeout, "idle connection closed");
            return Ok(());
        }
    };
    let Some(first) = first else { return Ok(()) };
    if let Message::ControlRequest(req) = &first
        && req.command == Command::Tunnel
    {
        return tunnel(env, reader, w, req, &hello).await;
    }

    let queue = WriterQueue::new(limits.writer_queue_bytes);
    let writer = tokio::spawn(
        crate::transport::writer::writer_loop(core.clone(), w, queue.clone(), env.services.links.for_peer(peer.ip()))
            .instrument(tracing::Span::current()),
    );
    let mut session = Session::new(
        env.services.clone(),
        format!("{peer} {}", hello.name),
        queue.clone(),
        local_peer,
    );
    let mut last_heard = tokio::time::Instant::now();
    let mut first = Some(first);
    let result = loop {
        if let Some(msg) = first.take() {
            if let Err(e) = session.handle(msg).await {
                break Err(e);
            }
            continue;
        }
        let idle_at = last_heard + limits.idle_timeout;
        let next = tokio::select! {
            m = reader.next() => m,
            _ = stop.changed() => break Ok(()),
            () = tokio::time::sleep_until(idle_at), if session.is_idle() => {
                debug!(after = ?limits.idle_timeout, "idle connection closed");
                break Ok(());
            }
        };
        last_heard = tokio::time::Instant::now();
        match next {
            Ok(Some(msg)) => {
                if let Err(e) = session.handle(msg).await {
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
    drop(session);
    queue.close();
    if shutting_down {
        let grace = core.config.shutdown_grace;
        let _ = tokio::time::timeout(grace, writer).await;
    } else {
        writer.abort();
    }
    result
}

/// A TUNNEL request, on a gateway: dial the far node, answer with its
/// HELLO, then carry messages both ways (transport/tunnel.rs). Anywhere
/// else, or when the far node cannot be reached, the answer says why and
/// the connection closes.
async fn tunnel(
    env: &Env,
    reader: FramedRead<ReadHalf>,
    mut w: WriteHalf,
    req: &ControlRequest,
    hello: &Hello,
) -> Result<(), NetError> {
    let refuse = |status: Status, msg: &str| {
        Message::ControlResponse(ControlResponse::error(
            req.channel,
            req.request_id,
            req.command,
            status,
            msg,
        ))
    };
    let Some(gateway) = &env.services.gateway else {
        let msg = refuse(Status::NotFound, "this node is not a site gateway: it has no tunnels");
        return write_message(&mut w, &msg).await;
    };
    let node = match Request::decode(req) {
        Ok(Request::Tunnel(n)) => n.name,
        _ => return write_message(&mut w, &refuse(Status::BadRequest, "its TUNNEL did not parse")).await,
    };
    let (client, far) = match gateway.tunnel_to(&node).await {
        Ok(c) => c,
        Err(e) => {
            info!(node = %names::display(&node, names::MAX_NAME_LEN), from = %hello.name, reason = %e.message, "tunnel refused");
            return write_message(&mut w, &refuse(e.status, &e.message)).await;
        }
    };
    let ok = Response::Tunnel(far).to_message(req.channel, req.request_id)?;
    write_message(&mut w, &Message::ControlResponse(ok)).await?;
    let (far_r, far_w, pending) = client.into_parts();
    let ends = crate::transport::tunnel::Ends {
        near: (reader, w),
        far: (far_r, far_w, pending),
    };
    let r = crate::transport::tunnel::splice(ends, gateway.tunnel_rule(), env.services.core.shutdown_signal()).await;
    debug!(node = %node, "tunnel closed");
    r
}
