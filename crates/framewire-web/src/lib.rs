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
//! <img>/ffplay ────────► /stream/N/S.mjpeg  ─┘
//! ```
//!
//! # Access
//!
//! With users configured, every route but the page, its assets and
//! `/api/login` needs a session cookie or a bearer token whose role is at
//! least the route's role (docs/web.md lists them). With no users the
//! server runs *open*: everyone on this machine is admin; [`WebServer::bind`]
//! then refuses any address other than loopback, and requests whose `Host`
//! is not a loopback name are refused (a DNS-rebinding guard). In both modes
//! state-changing requests from a browser carry the CSRF token that
//! `/api/session` gives (header `x-csrf-token`).

mod api;
mod assets;
pub mod auth;
pub mod backend;
pub mod client;
mod stream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::oneshot;

pub use auth::{Role, Users};
pub use backend::Backend;

/// The web port a controller node listens on by default (127.0.0.1).
pub const DEFAULT_WEB_PORT: u16 = 7480;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "fw_session";

/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the web server runs.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where to listen [default: 127.0.0.1:7480].
    pub listen: SocketAddr,
    /// The controller's state directory; `users.json` lives there. `None`:
    /// no users file (the server runs open, loopback only).
    pub state_dir: Option<PathBuf>,
    /// Mark the session cookie `Secure` (set it when a TLS proxy fronts the server).
    pub secure_cookies: bool,
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_WEB_PORT)),
            state_dir: None,
            secure_cookies: false,
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
    /// Binding the socket.
    #[error("cannot listen on {addr}: {source}")]
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
    /// The last graph pushed and its JSON message.
    pub(crate) graph_cache:
        std::sync::Mutex<Option<(Arc<framewire_controller::CurrentGraph>, axum::extract::ws::Utf8Bytes)>>,
}

impl std::fmt::Debug for dyn Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Backend")
    }
}

/// Who is asking, after authentication.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) user: String,
    pub(crate) role: Role,
    /// The CSRF token to expect (cookie sessions and open mode), `None` for bearer tokens.
    pub(crate) csrf: Option<String>,
    pub(crate) open: bool,
}

/// An API error: a status and a JSON body `{"error": "..."}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) extra: Option<serde_json::Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            extra: None,
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
        (self.status, axum::Json(body)).into_response()
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
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let extra = match &e {
            E::Refused(r) => Some(serde_json::json!({ "refusals": r })),
            _ => None,
        };
        ApiError {
            status,
            message: e.to_string(),
            extra,
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Whether a `Host` header names this machine.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        // HTTP/1.1 requires Host; its absence is not a browser.
        return true;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

impl App {
    pub(crate) fn new(backend: Arc<dyn Backend>, users: Users, secure_cookies: bool, allow_open: bool) -> App {
        App {
            allow_open,
            backend,
            users,
            sessions: auth::Sessions::default(),
            secure_cookies,
            open_csrf: auth::random_csrf(),
            graph_cache: std::sync::Mutex::new(None),
        }
    }

    /// Who is asking, or 401.
    pub(crate) fn identify(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        self.users.refresh();
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            let token = auth
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Authorization must be 'Bearer TOKEN'"))?;
            let (user, role) = self
                .users
                .token(token.trim())
                .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown or revoked API token"))?;
            return Ok(Principal {
                user,
                role,
                csrf: None,
                open: false,
            });
        }
        if self.users.is_empty() {
            if !self.allow_open {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "no users are configured and this server is not on loopback: add one (framewire user add NAME --role admin)",
                ));
            }
            if !loopback_host(headers) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "open mode (no users) answers only to loopback host names",
                ));
            }
            return Ok(Principal {
                user: "local".into(),
                role: Role::Admin,
                csrf: Some(self.open_csrf.clone()),
                open: true,
            });
        }
        let sid =
            cookie(headers, SESSION_COOKIE).ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "log in first"))?;
        let s = self
            .sessions
            .get(&sid)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "session expired: log in again"))?;
        let role = self
            .users
            .role_of(&s.user)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "user no longer exists"))?;
        Ok(Principal {
            user: s.user,
            role,
            csrf: Some(s.csrf),
            open: false,
        })
    }

    /// Authenticates, checks the role, and for state-changing methods the CSRF token.
    pub(crate) fn allow(&self, method: &Method, headers: &HeaderMap, role: Role) -> Result<Principal, ApiError> {
        let who = self.identify(headers)?;
        if who.role < role {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("{} is {}; this needs {}", who.user, who.role, role),
            ));
        }
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && let Some(expected) = &who.csrf {
            let got = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !auth::tokens_equal(got, expected) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "missing or wrong x-csrf-token header",
                ));
            }
        }
        Ok(who)
    }

    /// For WebSocket upgrades: a browser's `Origin` must be this server.
    pub(crate) fn same_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
            return Ok(()); // not a browser
        };
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
        if origin_host.eq_ignore_ascii_case(host) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("cross-origin WebSocket from {origin} refused"),
            ))
        }
    }
}

/// The whole HTTP service, for a backend and a user store, as served on a
/// loopback address (open mode allowed when there are no users).
pub fn router(backend: Arc<dyn Backend>, users: Users, secure_cookies: bool) -> Router {
    routes(App::new(backend, users, secure_cookies, true))
}

fn routes(app: App) -> Router {
    let app = Arc::new(app);
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
        .route("/api/nodes/{node}", get(api::describe))
        .route("/api/nodes/{node}/v4l2", get(api::v4l2_list).post(api::v4l2_set))
        .route("/api/nodes/{node}/monitors", get(api::monitors))
        .route("/api/users", get(api::users).post(api::add_user))
        .route("/api/users/{name}", axum::routing::delete(api::remove_user))
        .route("/api/tokens", get(api::tokens).post(api::add_token))
        .route("/api/tokens/{id}", axum::routing::delete(api::remove_token))
        .route("/ws/state", get(stream::state_ws))
        .route("/ws/preview/{node}/{stream}", get(stream::preview_ws))
        .route("/stream/{node}/{file}", get(stream::mjpeg))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .with_state(app)
}

/// A running web server.
#[derive(Debug)]
pub struct WebServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebServer {
    /// Loads the users, checks the bind rule, listens and serves.
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
        let router = routes(App::new(
            backend,
            users,
            config.secure_cookies,
            config.listen.ip().is_loopback(),
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "web server stopped");
            }
        });
        tracing::info!(%addr, "web UI listening");
        Ok(WebServer {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to open in a browser.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops serving (open WebSockets end) and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
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
        fn apply(&self, _: WantedGraph) -> BoxFut<'_, Result<(), ControllerError>> {
            Box::pin(async { Ok(()) })
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
        fn preview<'a>(&'a self, n: &'a str, _: &'a str) -> BoxFut<'a, Result<Preview, ControllerError>> {
            Box::pin(async move { Err(ControllerError::UnknownNode(n.into())) })
        }
    }

    fn headers(host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        h
    }

    #[test]
    fn open_mode_only_where_allowed() {
        let public = App::new(
            Arc::new(NoBackend),
            Users::from_file(auth::UsersFile::default()),
            false,
            false,
        );
        let e = public.identify(&headers("127.0.0.1:7480")).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{}", e.message);
        let local = App::new(
            Arc::new(NoBackend),
            Users::from_file(auth::UsersFile::default()),
            false,
            true,
        );
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

    #[test]
    fn cookies_are_parsed_from_any_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; fw_session=abc".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
