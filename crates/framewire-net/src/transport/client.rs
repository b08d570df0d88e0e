//! A connection to a node from the side that dials: HELLO, requests with
//! matching responses, and the messages (frames, events) that arrive in
//! between.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use framewire_proto::control::{Auth, AuthScheme, Hello, HelloReply, Name, Subscribe};
use framewire_proto::{
    ControlResponse, Decoder, Features, FunctionFlags, Message, PROTOCOL_VERSION, Request, Response, Status,
    SubscribeParams,
};
use framewire_tls::rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::auth::{self, DeploymentKey};
use crate::error::NetError;
use crate::transport::framed::{FramedRead, write_message};
use crate::transport::stream::{self, ReadHalf, WriteHalf};

/// How long to wait for a TCP connection or a response by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes of other messages a client keeps while it waits for an answer,
/// unless told otherwise ([`Client::set_pending_limit`]).
pub const DEFAULT_PENDING_LIMIT: usize = 64 << 20;

/// About the bytes a message holds.
fn weight(m: &Message) -> usize {
    64 + match m {
        Message::VideoFrame(f) => f.data.len(),
        Message::ControlRequest(r) => r.body.len(),
        Message::ControlResponse(r) => r.body.len(),
        Message::AudioFrame { payload, .. } | Message::Unknown { payload, .. } => payload.len(),
        _ => 0,
    }
}

/// A client connection to a node.
pub struct Client {
    reader: FramedRead<ReadHalf>,
    writer: WriteHalf,
    next_id: u16,
    peer: HelloReply,
    addr: String,
    /// The peer is on this host (its address is loopback or our own).
    local: bool,
    /// Messages that arrived while a response was awaited, and their bytes.
    pending: VecDeque<Message>,
    pending_bytes: usize,
    /// The most bytes `pending` may hold.
    pending_limit: usize,
    timeout: Duration,
    /// Messages to write while [`Client::next_message`] waits.
    outbox: Option<mpsc::Receiver<Message>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("peer", &self.peer.hello.name)
            .field("local", &self.local)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// Identity a client presents in HELLO.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// `namespace:instance`.
    pub name: String,
    /// What the client does.
    pub function_flags: FunctionFlags,
    /// Site id.
    pub site_id: u16,
    /// Deployment key: when set, the connection authenticates both ends
    /// and refuses a node that cannot (see [`crate::auth`]).
    pub key: Option<DeploymentKey>,
    /// Features offered in HELLO (`Features::SHM` from a node that can
    /// take a shared-memory subscription).
    pub features: Features,
    /// TLS: dial over TLS, trusting the CA of this configuration (and
    /// showing its certificate to a node that asks). None: plain TCP.
    pub tls: Option<Arc<ClientConfig>>,
}

impl ClientIdentity {
    /// A tool or sink called `name`.
    pub fn tool(name: &str) -> ClientIdentity {
        ClientIdentity {
            name: name.to_owned(),
            function_flags: FunctionFlags::SINK,
            site_id: 0,
            key: None,
            features: Features(0),
            tls: None,
        }
    }

    /// The same identity, authenticating with `key` (none: no auth).
    pub fn with_key(mut self, key: Option<DeploymentKey>) -> ClientIdentity {
        self.key = key;
        self
    }

    /// The same identity, dialling over TLS with `tls` (none: plain TCP).
    pub fn with_tls(mut self, tls: Option<Arc<ClientConfig>>) -> ClientIdentity {
        self.tls = tls;
        self
    }
}

impl Client {
    /// Dials `addr`, says HELLO, and checks the answer. With a key in
    /// `who`, both ends then prove they hold it (HELLO's proofs and AUTH)
    /// before this returns; a node that offers no authentication, or whose
    /// proof does not match, is refused with [`NetError::Auth`]. With TLS
    /// in `who`, all of it goes over TLS, and a node whose certificate the
    /// CA did not issue, or issued for another name, is refused with
    /// [`NetError::Tls`].
    ///
    /// `addr` is `host:port`, or `SITE:NAMESPACE:INSTANCE@host:port` for a
    /// node of another site through the gateway at `host:port`
    /// ([`Client::tunnel`]).
    pub async fn connect(addr: &str, who: &ClientIdentity, timeout: Duration) -> Result<Client, NetError> {
        match addr.rsplit_once('@') {
            Some((node, gateway)) => Client::tunnel(gateway, node, who, timeout).await,
            None => Client::direct(addr, who, timeout).await,
        }
    }

    /// Connects to `node` (`SITE:NAMESPACE:INSTANCE`, as the gateway's
    /// peer table lists it) through the gateway at `gateway`: the gateway
    /// authenticates us, dials the node (or the next gateway), and from
    /// then on carries every message both ways. [`Client::peer`] is the
    /// node's HELLO, with its site as the gateway sees it.
    pub async fn tunnel(
        gateway: &str,
        node: &str,
        who: &ClientIdentity,
        timeout: Duration,
    ) -> Result<Client, NetError> {
        let mut client = Client::direct(gateway, who, timeout).await?;
        let req = Request::Tunnel(Name { name: node.to_owned() });
        match client.request(req).await? {
            Response::Tunnel(hello) => {
                client.peer = HelloReply {
                    hello,
                    proof: bytes::Bytes::new(),
                };
                client.addr = format!("{node}@{gateway}");
                client.local = false;
                Ok(client)
            }
            other => Err(NetError::Protocol {
                peer: gateway.to_owned(),
                message: format!("expected a TUNNEL response, got {}", other.command()),
            }),
        }
    }

    async fn direct(addr: &str, who: &ClientIdentity, timeout: Duration) -> Result<Client, NetError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
            .await
            .map_err(|_| NetError::Timeout(timeout, "the TCP connection"))??;
        stream.set_nodelay(true)?;
        let local = match (stream.peer_addr(), stream.local_addr()) {
            (Ok(p), Ok(l)) => crate::transport::socket::same_host(p, l),
            _ => false,
        };
        let (r, w) = match &who.tls {
            Some(tls) => tokio::time::timeout_at(deadline, stream::dial_tls(stream, tls.clone(), addr))
                .await
                .map_err(|_| NetError::Timeout(timeout, "the TLS handshake"))??,
            None => stream::plain(stream),
        };
        let mut client = Client {
            reader: FramedRead::new(r, Decoder::new()),
            writer: w,
            next_id: 1,
            peer: HelloReply {
                hello: Hello {
                    protocol_version: 0,
                    name: String::new(),
                    site_id: 0,
                    function_flags: FunctionFlags(0),
                    features: Features(0),
                    auth_scheme: AuthScheme::None,
                    nonce: bytes::Bytes::new(),
                },
                proof: bytes::Bytes::new(),
            },
            addr: addr.to_owned(),
            local,
            pending: VecDeque::new(),
            pending_bytes: 0,
            pending_limit: DEFAULT_PENDING_LIMIT,
            timeout,
            outbox: None,
        };
        let (auth_scheme, my_nonce) = match &who.key {
            Some(_) => (AuthScheme::HmacSha256, auth::nonce()?),
            None => (AuthScheme::None, bytes::Bytes::new()),
        };
        let hello = Request::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            name: who.name.clone(),
            site_id: who.site_id,
            function_flags: who.function_flags,
            features: who.features,
            auth_scheme,
            nonce: my_nonce.clone(),
        });
        // TLS 1.3: the node checks our certificate after our side of the
        // handshake is done, so its refusal arrives as we read HELLO's answer.
        let answer = client.request(hello).await.map_err(|e| match e {
            NetError::Io(io) if who.tls.is_some() => stream::tls_error(addr, &io),
            e => e,
        });
        match answer? {
            Response::Hello(reply) => client.peer = reply,
            other => {
                return Err(NetError::Protocol {
                    peer: client.addr.clone(),
                    message: format!("expected a HELLO response, got {}", other.command()),
                });
            }
        }
        // Over TLS the node's certificate has proved it; a node that took
        // ours as our proof answers without HMAC, and no AUTH follows.
        let by_certificate = who.tls.is_some() && client.peer.hello.auth_scheme == AuthScheme::None;
        if let Some(key) = who.key.as_ref().filter(|_| !by_certificate) {
            client.authenticate(key, &my_nonce).await?;
        }
        Ok(client)
    }

    /// The requester's half of the handshake: check the node's proof, then
    /// send ours. Nothing else is sent before the node's proof checks out.
    async fn authenticate(&mut self, key: &DeploymentKey, my_nonce: &[u8]) -> Result<(), NetError> {
        let peer = &self.peer;
        if peer.hello.auth_scheme != AuthScheme::HmacSha256 {
            return Err(NetError::Auth(format!(
                "the node at {} ({}) offers no authentication but a deployment key is configured here; \
                 refusing to talk to it unauthenticated",
                self.addr, peer.hello.name
            )));
        }
        if peer.hello.nonce.len() != auth::NONCE_LEN || !key.verify_responder(my_nonce, &peer.hello.nonce, &peer.proof)
        {
            return Err(NetError::Auth(format!(
                "the node at {} ({}) could not prove it holds our deployment key: the two ends have different keys",
                self.addr, peer.hello.name
            )));
        }
        let proof = key.requester_proof(my_nonce, &peer.hello.nonce);
        match self.request(Request::Auth(Auth { proof })).await {
            Ok(_) => Ok(()),
            Err(NetError::Remote { message, .. }) => Err(NetError::Auth(format!(
                "the node at {} refused our authentication: {message}",
                self.addr
            ))),
            Err(e) => Err(e),
        }
    }

    /// Whether the peer is on this host.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The peer's HELLO.
    pub fn peer(&self) -> &Hello {
        &self.peer.hello
    }

    /// The address dialled.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `req` on channel 0 and waits for its response.
    pub async fn request(&mut self, req: Request) -> Result<Response, NetError> {
        self.request_on(0, req).await
    }

    /// Sends `req` on `channel` and waits for its response. Messages that
    /// arrive meanwhile are kept for [`Client::next_message`].
    pub async fn request_on(&mut self, channel: u16, req: Request) -> Result<Response, NetError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let command = req.command();
        let msg = Message::ControlRequest(req.to_message(channel, id)?);
        write_message(&mut self.writer, &msg).await?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.reader.next())
                .await
                .map_err(|_| NetError::Timeout(self.timeout, "a response"))??;
            match next {
                None => return Err(NetError::Closed(self.addr.clone())),
                Some(Message::ControlResponse(r)) if r.request_id == id => {
                    if r.status != Status::Ok {
                        return Err(NetError::Remote {
                            command,
                            status: r.status,
                            message: r.error_message().unwrap_or_default(),
                        });
                    }
                    return Ok(Response::decode(&r)?);
                }
                Some(other) => {
                    self.pending_bytes += weight(&other);
                    if self.pending_bytes > self.pending_limit {
                        return Err(NetError::Flooded {
                            addr: self.addr.clone(),
                            limit: self.pending_limit,
                        });
                    }
                    self.pending.push_back(other);
                }
            }
        }
    }

    /// Subscribes to `stream`; returns the channel it will arrive on.
    pub async fn subscribe(&mut self, stream: &str, params: SubscribeParams) -> Result<u16, NetError> {
        Ok(self.subscribe_full(stream, params).await?.channel)
    }

    /// Subscribes to `stream`; returns the whole answer (with, for a
    /// shared-memory subscription, where to attach).
    pub async fn subscribe_full(
        &mut self,
        stream: &str,
        params: SubscribeParams,
    ) -> Result<framewire_proto::control::SubscribeReply, NetError> {
        self.subscribe_with(Subscribe::new(stream, params)).await
    }

    /// Sends this SUBSCRIBE (with its weight); returns the whole answer.
    pub async fn subscribe_with(
        &mut self,
        sub: Subscribe,
    ) -> Result<framewire_proto::control::SubscribeReply, NetError> {
        match self.request(Request::Subscribe(sub)).await? {
            Response::Subscribe(r) => Ok(r),
            other => Err(NetError::Protocol {
                peer: self.addr.clone(),
                message: format!("expected a SUBSCRIBE response, got {}", other.command()),
            }),
        }
    }

    /// The next message that is not a response to one of our requests
    /// (frames, stream events, requests from the peer such as STREAM_OPEN).
    /// `Ok(None)` when the peer closed the connection cleanly.
    pub async fn next_message(&mut self) -> Result<Option<Message>, NetError> {
        if let Some(m) = self.pending.pop_front() {
            self.pending_bytes = self.pending_bytes.saturating_sub(weight(&m));
            return Ok(Some(m));
        }
        loop {
            let Some(outbox) = self.outbox.as_mut() else {
                return self.reader.next().await;
            };
            // Reading is cancel-safe: a message half read stays buffered.
            let out = tokio::select! {
                m = self.reader.next() => return m,
                out = outbox.recv() => out,
            };
            match out {
                Some(msg) => write_message(&mut self.writer, &msg).await?,
                None => self.outbox = None,
            }
        }
    }

    /// From now on, messages sent into `outbox` are written to the peer, in
    /// order, while [`Client::next_message`] waits (a relay passes viewers'
    /// input events upstream this way). Replaces an earlier outbox.
    pub fn send_while_waiting(&mut self, outbox: mpsc::Receiver<Message>) {
        self.outbox = Some(outbox);
    }

    /// Sends a message (e.g. the answer to the peer's STREAM_OPEN).
    pub async fn send(&mut self, msg: &Message) -> Result<(), NetError> {
        write_message(&mut self.writer, msg).await
    }

    /// Answers a request of the peer with ok and no fields.
    pub async fn ack(&mut self, req: &framewire_proto::ControlRequest) -> Result<(), NetError> {
        let resp = Message::ControlResponse(ControlResponse {
            channel: req.channel,
            request_id: req.request_id,
            status: Status::Ok,
            command: req.command,
            body: bytes::Bytes::new(),
        });
        self.send(&resp).await
    }

    /// Answers a request of the peer with an error.
    pub async fn refuse(
        &mut self,
        req: &framewire_proto::ControlRequest,
        status: Status,
        message: &str,
    ) -> Result<(), NetError> {
        let resp = Message::ControlResponse(ControlResponse::error(
            req.channel,
            req.request_id,
            req.command,
            status,
            message,
        ));
        self.send(&resp).await
    }

    /// The most bytes of other messages kept while an answer is awaited;
    /// more is an error ([`NetError::Flooded`]).
    pub fn set_pending_limit(&mut self, bytes: usize) {
        self.pending_limit = bytes;
    }

    /// Bytes of a partial message held (the connection is mid-frame).
    pub fn partial_bytes(&self) -> usize {
        self.reader.buffered()
    }

    /// The connection's halves and the messages that arrived while a
    /// response was awaited (a gateway carries them on, in order).
    pub(crate) fn into_parts(self) -> (FramedRead<ReadHalf>, WriteHalf, VecDeque<Message>) {
        (self.reader, self.writer, self.pending)
    }
}
