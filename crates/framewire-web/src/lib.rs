//! framewire's controller web server: the browser UI, the JSON and
//! WebSocket API, MJPEG over HTTP, and the users, roles and sessions that
//! guard them. docs/web.md documents every route.
//!
//! The server talks to the controller only through [`Backend`], which
//! [`framewire_controller::ControllerHandle`] implements.
//!
//! ```text
//! browser ──HTTP/JSON──► /api/...           ─┐
//!         ──WebSocket──► /ws/state  (graph)  ├─► Backend (the controller)
//!         ──WebSocket──► /ws/preview/N/S     │   (wire messages: STREAM_OPEN, video frames)
//! <img>/ffplay ────────► /stream/N/S.mjpeg  ─┤
//! <img>/curl ──────────► /snapshot/N/S.jpg  ─┘
//! ```
//!
//! # Access
//!
//! With users configured, every route but the page, its assets and
//! `/api/login` needs a session cookie or a bearer token whose role is at
//! least the route's role (docs/web.md lists them). With no users the
//! server runs *open*: everyone on this machine is admin; [`WebServer::bind`]
//! then refuses any address other than loopback, and requests whose `Host`
//! is not a loopback name are refused. In both modes state-changing
//! requests from a browser carry the CSRF token that `/api/session` gives
//! (header `x-csrf-token`), a `Host` must be `localhost`, an address
//! literal or a name given with `--web-host` (against DNS rebinding), and
//! requests a browser makes for a page of another site are refused.
//!
//! # Limits
//!
//! [`WebLimits`]: connections in all and per address, a header timeout, a
//! stalled-writer timeout, live streams in all and per user, WebSocket
//! message size, password checks at once and the backoff after failed
//! logins. docs/security.md has the table.

#![forbid(unsafe_code)]

mod access;
pub mod alerts;
mod api;
mod assets;
pub mod auth;
pub mod backend;
pub mod client;
mod hls;
pub mod latency;
mod limits;
mod login;
mod recordings;
mod server;
mod snapshot;
mod stream;
mod thumbs;
mod whep;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;

pub use auth::{Role, Users};
pub use backend::Backend;
pub use limits::WebLimits;

/// The web port a controller node listens on by default (127.0.0.1).
pub const DEFAULT_WEB_PORT: u16 = 7480;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "fw_session";

/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the web server runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebConfig {
    /// Where to listen [default: 127.0.0.1:7480].
    pub listen: SocketAddr,
    /// The controller's state directory; `users.json` lives there. `None`:
    /// no users file (the server runs open, loopback only).
    pub state_dir: Option<PathBuf>,
    /// Mark the session cookie `Secure` (set it when a TLS proxy fronts the server).
    pub secure_cookies: bool,
    /// Host names (besides `localhost` and address literals) that browsers
    /// may use to reach the server: a guard against DNS rebinding.
    pub hosts: Vec<String>,
    /// Connection, stream and login limits.
    pub limits: WebLimits,
    /// A directory of `hls` sink outputs (DIR/NAME/index.m3u8), served at
    /// `/hls/NAME/index.m3u8` to viewers and above; `None`: not served.
    pub hls_dir: Option<PathBuf>,
    /// The status file of the `framewire up` this server's node runs
    /// under (`FRAMEWIRE_UP_STATUS`), served at `/api/host`; `None`: not
    /// supervised.
    pub up_status: Option<PathBuf>,
    /// Serve HTTPS with this TLS configuration (its certificate and key:
    /// `framewire_tls::server_config`); the session cookie is then `Secure`.
    pub tls: Option<Arc<framewire_tls::rustls::ServerConfig>>,
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_WEB_PORT)),
            state_dir: None,
            secure_cookies: false,
            hosts: Vec::new(),
            limits: WebLimits::default(),
            hls_dir: None,
            up_status: None,
            tls: None,
        }
    }
}

impl WebConfig {
    /// The defaults, listening on `listen`.
    pub fn new(listen: SocketAddr) -> WebConfig {
        WebConfig {
            listen,
            ..WebConfig::default()
        }
    }
}

/// What can stop the web server from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// A non-loopback address with nobody to log in.
    #[error(
        "refusing to serve the web UI on {0} with no users configured: anyone who can reach it would be admin. Add a user first (framewire user add NAME --role admin) or listen on 127.0.0.1"
    )]
    OpenNonLoopback(SocketAddr),
    /// The users file.
    #[error(transparent)]
    Users(#[from] auth::AuthError),
    /// Binding the socket (the cause is the error's source).
    #[error("cannot listen on {addr}")]
    Bind {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The shared state of every request.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) users: Users,
    pub(crate) sessions: auth::Sessions,
    pub(crate) secure_cookies: bool,
    /// The CSRF token of open mode (no users): the page reads it from /api/session.
    pub(crate) open_csrf: String,
    /// Whether open mode (no users) may apply: only on a loopback address.
    /// A server on another address whose users were all removed lets nobody in.
    pub(crate) allow_open: bool,
    /// Host names allowed besides localhost and address literals.
    pub(crate) hosts: Vec<String>,
    pub(crate) limits: WebLimits,
    /// Where `/hls/` is served from.
    pub(crate) hls_dir: Option<PathBuf>,
    pub(crate) up_status: Option<PathBuf>,
    /// The address the server listens on (WebRTC's UDP binds its IP).
    pub(crate) listen: std::net::SocketAddr,
    /// Running WebRTC (WHEP) sessions.
    pub(crate) whep: whep::Sessions,
    /// What the browsers report of the pictures they draw.
    pub(crate) latency: latency::Paths,
    /// Live previews and MJPEG streams, per user.
    pub(crate) streams: Arc<limits::Streams>,
    /// Password hashing, off the async workers and bounded.
    pub(crate) checker: login::Checker,
    /// Failed logins per user and per address.
    pub(crate) backoff: login::Backoff,
    /// Turns true when the server stops: long-lived answers end.
    pub(crate) stopping: watch::Receiver<bool>,
    /// The last graph pushed and its JSON message.
    pub(crate) graph_cache:
        std::sync::Mutex<Option<(Arc<framewire_controller::CurrentGraph>, axum::extract::ws::Utf8Bytes)>>,
    /// The alerts, pushed on `/ws/state` beside the graph.
    pub(crate) alerts: alerts::Hub,
    /// The newest thumbnail of each stream.
    pub(crate) thumbs: thumbs::Thumbs,
    /// Snapshots and thumbnails being made, one at a time.
    pub(crate) pictures: snapshot::Pictures,
    /// Recordings being played back, per user.
    pub(crate) playbacks: recordings::Playbacks,
}

impl App {
    /// Resolves when the server stops (never, for a router without a server).
    pub(crate) async fn stopped(&self) {
        let mut rx = self.stopping.clone();
        if rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl std::fmt::Debug for dyn Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Backend")
    }
}

/// An API error: a status and a JSON body `{"error": "..."}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) extra: Option<serde_json::Value>,
    /// Seconds for a `Retry-After` header.
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            extra: None,
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message });
        if let (Some(extra), Some(obj)) = (self.extra, body.as_object_mut())
            && let Some(e) = extra.as_object()
        {
            obj.extend(e.clone());
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

impl From<framewire_controller::ControllerError> for ApiError {
    fn from(e: framewire_controller::ControllerError) -> ApiError {
        use framewire_controller::ControllerError as E;
        let status = match &e {
            E::UnknownNode(_) | E::UnknownStream(..) | E::UnknownEdge(_) => StatusCode::NOT_FOUND,
            E::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            E::Node { .. } => StatusCode::BAD_GATEWAY,
            E::Offline(_) => StatusCode::SERVICE_UNAVAILABLE,
            E::Online(_) => StatusCode::CONFLICT,
            E::Stale { .. } => StatusCode::PRECONDITION_FAILED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let extra = match &e {
            E::Refused(r) => Some(serde_json::json!({ "refusals": r })),
            E::Stale { current, .. } => Some(serde_json::json!({ "version": current })),
            _ => None,
        };
        let mut a = ApiError::new(status, e.to_string());
        a.extra = extra;
        a
    }
}

impl App {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        users: Users,
        config: &WebConfig,
        allow_open: bool,
        stopping: watch::Receiver<bool>,
    ) -> App {
        let l = &config.limits;
        App {
            allow_open,
            backend,
            users,
            sessions: auth::Sessions::default(),
            // Over HTTPS the cookie never travels in the clear.
            secure_cookies: config.secure_cookies || config.tls.is_some(),
            open_csrf: auth::random_csrf(),
            hosts: config.hosts.clone(),
            streams: limits::Streams::new(l.max_streams, l.max_streams_per_user),
            checker: login::Checker::new(l.login_workers, l.login_queue),
            backoff: login::Backoff::new(l.clone()),
            limits: l.clone(),
            hls_dir: config.hls_dir.clone(),
            up_status: config.up_status.clone(),
            listen: config.listen,
            whep: whep::Sessions::default(),
            latency: latency::Paths::default(),
            stopping,
            graph_cache: std::sync::Mutex::new(None),
            alerts: alerts::Hub::default(),
            thumbs: thumbs::Thumbs::default(),
            pictures: snapshot::Pictures::default(),
            playbacks: recordings::Playbacks::default(),
        }
    }
}

/// The whole HTTP service, for a backend and a user store, as served on a
/// loopback address (open mode allowed when there are no users), with the
/// default limits.
pub fn router(backend: Arc<dyn Backend>, users: Users, secure_cookies: bool) -> Router {
    let config = WebConfig {
        secure_cookies,
        ..WebConfig::default()
    };
    // Never stopped: the receiver outlives its sender as "not stopping".
    let (_, stopping) = watch::channel(false);
    routes(App::new(backend, users, &config, true, stopping))
}

fn routes(app: App) -> Router {
    let app = Arc::new(app);
    // The alerts follow the graph from the start, whoever watches.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(alerts::watch(app.clone()));
    }
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::file))
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/session", get(api::session))
        .route("/api/graph", get(api::graph))
        .route("/api/wanted", get(api::wanted).put(api::apply))
        .route("/api/edges", post(api::add_edge))
        .route("/api/edges/{*id}", axum::routing::delete(api::remove_edge))
        .route("/api/nodes/{node}", get(api::describe).delete(api::forget_node))
        .route("/api/nodes/{node}/v4l2", get(api::v4l2_list).post(api::v4l2_set))
        .route("/api/nodes/{node}/monitors", get(api::monitors))
        .route(
            "/api/nodes/{node}/sources/{name}",
            get(api::source).delete(api::remove_source),
        )
        .route("/api/nodes/{node}/shutdown", post(snapshot::shutdown))
        .route("/api/nodes/{node}/archives", get(recordings::list))
        .route("/api/nodes/{node}/archives/{stream}/play", post(recordings::play))
        .route("/api/nodes/{node}/archives/{stream}/export", get(recordings::export))
        .route(
            "/api/nodes/{node}/archives/{stream}/recording",
            post(recordings::set_recording),
        )
        .route(
            "/api/nodes/{node}/playbacks/{name}",
            axum::routing::delete(recordings::stop),
        )
        .route("/api/users", get(api::users).post(api::add_user))
        .route(
            "/api/users/{name}",
            axum::routing::delete(api::remove_user).put(api::change_user),
        )
        .route("/api/tokens", get(api::tokens).post(api::add_token))
        .route("/api/tokens/{id}", axum::routing::delete(api::remove_token))
        .route("/api/latency", get(latency::list).post(latency::report))
        .route("/api/host", get(api::host))
        .route("/api/alerts", get(alerts::list))
        .route("/api/alerts/{id}/ack", post(alerts::ack))
        .route("/ws/state", get(stream::state_ws))
        .route("/ws/preview/{node}/{stream}", get(stream::preview_ws))
        .route("/stream/{node}/{file}", get(stream::mjpeg))
        .route("/snapshot/{node}/{file}", get(snapshot::snapshot))
        .route("/thumb/{node}/{file}", get(thumbs::thumbnail))
        .route("/hls/{name}/{file}", get(hls::file))
        .route("/whep/{node}/{stream}", post(whep::offer))
        .route("/whep/{node}/{stream}/{id}", axum::routing::delete(whep::delete))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(axum::middleware::from_fn_with_state(app.clone(), access::guard))
        .with_state(app)
}

/// A running web server.
#[derive(Debug)]
pub struct WebServer {
    addr: SocketAddr,
    https: bool,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WebServer {
    /// Loads the users, checks the bind rule, listens and serves. Fails
    /// when the address cannot be bound (never serves without telling).
    pub async fn bind(config: WebConfig, backend: Arc<dyn Backend>) -> Result<WebServer, WebError> {
        let users = Users::open(config.state_dir.as_ref().map(|d| d.join(auth::USERS_FILE)))?;
        if users.is_empty() && !config.listen.ip().is_loopback() {
            return Err(WebError::OpenNonLoopback(config.listen));
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| WebError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| WebError::Bind {
            addr: config.listen,
            source,
        })?;
        let mut limits = config.limits.clone();
        // Leave half the process's descriptors to the rest of the node.
        if let Some(fds) = limits::descriptor_limit() {
            limits.max_connections = limits.max_connections.min((fds / 2).max(16));
        }
        let (stop, stopping) = watch::channel(false);
        let router = routes(App::new(
            backend,
            users,
            &config,
            config.listen.ip().is_loopback(),
            stopping.clone(),
        ));
        let conns = limits::Connections::new(limits.max_connections, limits.max_connections_per_address);
        tracing::info!(
            %addr,
            max_connections = limits.max_connections,
            per_address = limits.max_connections_per_address,
            "web UI listening"
        );
        let tls = config.tls.clone().map(framewire_tls::TlsAcceptor::from);
        let task = tokio::spawn(server::serve(listener, router, limits, conns, tls, stopping));
        Ok(WebServer {
            addr,
            https: config.tls.is_some(),
            stop,
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to open in a browser.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/", self.addr)
    }

    /// Stops serving: no new connections, open ones finish their answer
    /// and close, WebSockets and MJPEG streams end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
        self.task.abort();
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BoxFut;
    use framewire_controller::{ControllerError, CurrentGraph, Preview, WantedEdge, WantedGraph};
    use framewire_proto::control::{Request, Response};

    /// Identity checks never reach the backend.
    struct NoBackend;
    impl Backend for NoBackend {
        fn graph(&self) -> tokio::sync::watch::Receiver<Arc<CurrentGraph>> {
            tokio::sync::watch::channel(Arc::new(CurrentGraph::default())).1
        }
        fn wanted(&self) -> BoxFut<'_, WantedGraph> {
            Box::pin(async { WantedGraph::default() })
        }
        fn apply(&self, _: WantedGraph, _: Option<String>) -> BoxFut<'_, Result<String, ControllerError>> {
            Box::pin(async { Ok(String::new()) })
        }
        fn forget_node<'a>(&'a self, n: &'a str) -> BoxFut<'a, Result<(), ControllerError>> {
            Box::pin(async move { Err(ControllerError::UnknownNode(n.into())) })
        }
        fn add_edge(&self, _: WantedEdge) -> BoxFut<'_, Result<String, ControllerError>> {
            Box::pin(async { Err(ControllerError::Other("none".into())) })
        }
        fn remove_edge<'a>(&'a self, _: &'a str) -> BoxFut<'a, Result<(), ControllerError>> {
            Box::pin(async { Ok(()) })
        }
        fn request<'a>(&'a self, n: &'a str, _: Request) -> BoxFut<'a, Result<Response, ControllerError>> {
            Box::pin(async move { Err(ControllerError::UnknownNode(n.into())) })
        }
        fn preview<'a>(
            &'a self,
            n: &'a str,
            _: &'a str,
            _: &'a [framewire_proto::Format],
        ) -> BoxFut<'a, Result<Preview, ControllerError>> {
            Box::pin(async move { Err(ControllerError::UnknownNode(n.into())) })
        }
    }

    fn headers(host: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        h
    }

    fn app(allow_open: bool) -> App {
        let (_, stopping) = watch::channel(false);
        App::new(
            Arc::new(NoBackend),
            Users::from_file(auth::UsersFile::default()),
            &WebConfig::default(),
            allow_open,
            stopping,
        )
    }

    #[test]
    fn open_mode_only_where_allowed() {
        let public = app(false);
        let e = public.identify(&headers("127.0.0.1:7480")).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{}", e.message);
        let local = app(true);
        assert_eq!(local.identify(&headers("127.0.0.1:7480")).unwrap().role, Role::Admin);
        assert_eq!(local.identify(&headers("[::1]:7480")).unwrap().role, Role::Admin);
        assert_eq!(local.identify(&headers("localhost")).unwrap().role, Role::Admin);
        for host in ["evil.example", "10.0.0.1:7480", "127.0.0.1.evil.example:80"] {
            assert_eq!(
                local.identify(&headers(host)).unwrap_err().status,
                StatusCode::FORBIDDEN,
                "{host}"
            );
        }
    }
}
