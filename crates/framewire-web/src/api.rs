//! The JSON API handlers. Each one names its role on its first line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use framewire_controller::{WantedEdge, WantedGraph};
use framewire_proto::control::{ControlValue, GetControls, Name, Request, Response as NodeResponse, SetControls};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::{Peer, too_many};
use crate::auth::Role;
use crate::{ApiError, App, SESSION_COOKIE};

type Result<T> = std::result::Result<T, ApiError>;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| bad(format!("bad JSON: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    name: String,
    password: String,
}

/// POST /api/login (public): `{name, password}` → cookie + `{user, role, csrf}`.
///
/// Throttled (docs/security.md): 429 with `Retry-After` while the name or
/// the address is backing off after failures, or when too many password
/// checks wait already.
pub(crate) async fn login(
    State(app): State<Arc<App>>,
    Peer(addr): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    // A JSON content type cannot be sent cross-site without a CORS preflight,
    // which this server never grants: no logging a browser in from another site.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the login as Content-Type: application/json",
        ));
    }
    let l: Login = parse_json(&body)?;
    if app.users.is_empty() {
        return Err(bad(
            "no users are configured: this server is open on loopback, no login needed",
        ));
    }
    if let Some(wait) = app.backoff.locked(&l.name, addr, Instant::now()) {
        tracing::debug!(user = ?l.name, ?addr, "login refused while backing off");
        return Err(too_many(
            "too many failed logins for this name or from this address: wait, then try again",
            wait,
        ));
    }
    let app2 = app.clone();
    let (name, password) = (l.name.clone(), l.password);
    // argon2 is slow and large on purpose: a few threads of its own.
    let checked = app
        .checker
        .run(move || app2.users.login(&name, &password))
        .await
        .map_err(|_| too_many("too many logins at once: try again", Duration::from_secs(1)))?;
    let Some((role, epoch)) = checked else {
        let (by_name, by_addr) = app.backoff.fail(&l.name, addr, Instant::now());
        tracing::warn!(user = ?l.name, ?addr, failures_of_name = by_name, failures_from_address = by_addr, "login failed");
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong user name or password"));
    };
    app.backoff.succeed(&l.name, addr);
    tracing::info!(user = ?l.name, ?addr, %role, "logged in");
    let (sid, s) = app.sessions.create(&l.name, &epoch);
    let secure = if app.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        crate::auth::SESSION_TTL.as_secs()
    );
    let mut resp = Json(json!({"user": l.name, "role": role, "csrf": s.csrf, "open": false})).into_response();
    // The cookie is built from hex and fixed text only.
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("ascii cookie"),
    );
    Ok(resp)
}

/// POST /api/logout (viewer).
pub(crate) async fn logout(State(app): State<Arc<App>>, method: Method, headers: HeaderMap) -> Result<Response> {
    app.allow(&method, &headers, Role::Viewer)?;
    if let Some(sid) = crate::access::cookie(&headers, SESSION_COOKIE) {
        app.sessions.remove(&sid);
    }
    let mut resp = Json(json!({"ok": true})).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("fw_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(resp)
}

/// GET /api/session (viewer): who am I, and the CSRF token to send.
pub(crate) async fn session(State(app): State<Arc<App>>, method: Method, headers: HeaderMap) -> Result<Json<Value>> {
    let who = app.allow(&method, &headers, Role::Viewer)?;
    Ok(Json(
        json!({"user": who.user, "role": who.role, "csrf": who.csrf, "open": who.open}),
    ))
}

/// GET /api/graph (viewer): the current graph.
pub(crate) async fn graph(State(app): State<Arc<App>>, method: Method, headers: HeaderMap) -> Result<Response> {
    app.allow(&method, &headers, Role::Viewer)?;
    let g = app.backend.graph().borrow().clone();
    Ok(Json(&*g).into_response())
}

/// GET /api/wanted (viewer): the wanted graph, JSON; TOML with `Accept: application/toml`.
pub(crate) async fn wanted(State(app): State<Arc<App>>, method: Method, headers: HeaderMap) -> Result<Response> {
    app.allow(&method, &headers, Role::Viewer)?;
    let w = app.backend.wanted().await;
    let etag = etag(&w.version());
    let toml = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("toml"));
    if toml {
        let text = toml::to_string(&w).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        return Ok((
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/toml")),
                (header::ETAG, etag),
            ],
            text,
        )
            .into_response());
    }
    Ok(([(header::ETAG, etag)], Json(w)).into_response())
}

/// A version as an entity tag: `"0123456789abcdef"`.
fn etag(version: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// The version an `If-Match` header asks for: `None` without one or with
/// `*`; a weak tag compares by its value.
fn if_match(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| bad("If-Match is not text"))?.trim();
    if v == "*" {
        return Ok(None);
    }
    let tag = v.strip_prefix("W/").unwrap_or(v);
    let tag = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| bad("If-Match takes one entity tag, \"VERSION\", as GET /api/wanted gives it in ETag"))?;
    Ok(Some(tag.to_owned()))
}

/// Parses a wanted graph from JSON or TOML (by Content-Type).
pub(crate) fn parse_wanted(headers: &HeaderMap, body: &[u8]) -> Result<WantedGraph> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.contains("toml") {
        let text = std::str::from_utf8(body).map_err(|_| bad("TOML body is not UTF-8"))?;
        toml::from_str(text).map_err(|e| bad(format!("bad TOML: {e}")))
    } else {
        parse_json(body)
    }
}

/// PUT /api/wanted (operator): replace the wanted graph, all or nothing.
pub(crate) async fn apply(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let who = app.allow(&method, &headers, Role::Operator)?;
    let expected = if_match(&headers)?;
    let w = parse_wanted(&headers, &body)?;
    let n = w.edges.len();
    let version = app.backend.apply(w, expected).await?;
    tracing::info!(user = ?who.user, edges = n, %version, "wanted graph applied");
    Ok((
        [(header::ETAG, etag(&version))],
        Json(json!({"ok": true, "edges": n, "version": version})),
    )
        .into_response())
}

/// DELETE /api/nodes/{node} (operator): forget an offline node; 409 while
/// it is online.
pub(crate) async fn forget_node(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(node): Path<String>,
) -> Result<Json<Value>> {
    let who = app.allow(&method, &headers, Role::Operator)?;
    app.backend.forget_node(&node).await?;
    tracing::info!(user = ?who.user, node = %node, "offline node forgotten");
    Ok(Json(json!({"ok": true})))
}

/// POST /api/edges (operator): add one wanted edge; answers `{id}`.
pub(crate) async fn add_edge(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let who = app.allow(&method, &headers, Role::Operator)?;
    let e: WantedEdge = parse_json(&body)?;
    let id = app.backend.add_edge(e).await?;
    tracing::info!(user = ?who.user, ?id, "edge wired");
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

/// DELETE /api/edges/{id} (operator): remove a wanted edge.
pub(crate) async fn remove_edge(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let who = app.allow(&method, &headers, Role::Operator)?;
    app.backend.remove_edge(&id).await?;
    tracing::info!(user = ?who.user, ?id, "edge unwired");
    Ok(Json(json!({"ok": true})))
}

fn unexpected(r: NodeResponse) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        format!("node answered {} to the wrong command", r.command()),
    )
}

/// GET /api/nodes/{node} (viewer): the node's DESCRIBE.
pub(crate) async fn describe(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(node): Path<String>,
) -> Result<Json<Value>> {
    app.allow(&method, &headers, Role::Viewer)?;
    let d = match app.backend.request(&node, Request::Describe).await? {
        NodeResponse::Describe(d) => d,
        r => return Err(unexpected(r)),
    };
    // Functions and features by name, as `framewire describe --json`.
    Ok(Json(framewire_proto::json::description(&d)))
}

/// GET /api/nodes/{node}/monitors (viewer): the node's X11 monitors (LIST_MONITORS).
pub(crate) async fn monitors(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(node): Path<String>,
) -> Result<Json<Value>> {
    app.allow(&method, &headers, Role::Viewer)?;
    let ms = match app.backend.request(&node, Request::ListMonitors).await? {
        NodeResponse::ListMonitors(m) => m,
        r => return Err(unexpected(r)),
    };
    Ok(Json(json!({
        "monitors": ms.iter().map(framewire_proto::json::monitor).collect::<Vec<_>>()
    })))
}

/// GET /api/nodes/{node}/sources/{name} (viewer): the table a running
/// source was made from (SOURCE_GET, secrets masked), as JSON:
/// `{node, name, table}`. The layout editor reads a compose source's
/// table here and writes it back through the wanted graph.
pub(crate) async fn source(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((node, name)): Path<(String, String)>,
) -> Result<Json<Value>> {
    app.allow(&method, &headers, Role::Viewer)?;
    let req = Request::SourceGet(Name { name: name.clone() });
    let text = match app.backend.request(&node, req).await? {
        NodeResponse::SourceGet(t) => t.table,
        r => return Err(unexpected(r)),
    };
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, format!("the node's table does not parse: {e}")))?;
    Ok(Json(json!({ "node": node, "name": name, "table": table })))
}

/// DELETE /api/nodes/{node}/sources/{name} (operator): stops a source of
/// the node and removes its stream (SOURCE_REMOVE), a source of the node's
/// own configuration too. A source the wanted graph still holds is started
/// again by the controller: the page takes it out of the wanted graph first.
pub(crate) async fn remove_source(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path((node, name)): Path<(String, String)>,
) -> Result<Json<Value>> {
    app.allow(&method, &headers, Role::Operator)?;
    match app
        .backend
        .request(&node, Request::SourceRemove(Name { name: name.clone() }))
        .await?
    {
        NodeResponse::SourceRemove => Ok(Json(json!({ "ok": true, "node": node, "name": name }))),
        r => Err(unexpected(r)),
    }
}

/// A supervisor writes its status every second: older than this, it is gone.
const UP_STALE_MS: u64 = 5_000;

/// GET /api/host (viewer): the `framewire up` this server's node runs
/// under, as its status file says (docs/operations.md): `{supervised:
/// false}`, or `{supervised: true, host, pid, running, updated_unix_ms,
/// nodes: [{name, state, pid, uptime_s, restarts, last_exit, reason}]}`.
pub(crate) async fn host(State(app): State<Arc<App>>, method: Method, headers: HeaderMap) -> Result<Json<Value>> {
    app.allow(&method, &headers, Role::Viewer)?;
    let Some(path) = &app.up_status else {
        return Ok(Json(json!({ "supervised": false })));
    };
    let mut v = read_up_status(path)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e))?;
    v["supervised"] = Value::Bool(true);
    Ok(Json(v))
}

/// The supervisor's status file, with `running` false when it is stale.
pub(crate) async fn read_up_status(path: &std::path::Path) -> std::result::Result<Value, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("the supervisor's status: {e}"))?;
    let mut v: Value =
        serde_json::from_str(&text).map_err(|e| format!("the supervisor's status does not parse: {e}"))?;
    let fresh = v["updated_unix_ms"]
        .as_u64()
        .is_some_and(|t| crate::alerts::now_ms().saturating_sub(t) < UP_STALE_MS);
    v["running"] = Value::Bool(v["running"].as_bool().unwrap_or(false) && fresh);
    Ok(v)
}

/// The widget the UI draws for a control type.
fn widget(t: framewire_proto::ControlType) -> &'static str {
    use framewire_proto::ControlType as T;
    match t {
        T::Integer | T::Integer64 => "slider",
        T::Boolean => "toggle",
        T::Menu | T::IntegerMenu => "menu",
        T::Button => "button",
        _ => "readonly",
    }
}

/// GET /api/nodes/{node}/v4l2 (viewer): devices, their controls and current values.
pub(crate) async fn v4l2_list(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(node): Path<String>,
) -> Result<Json<Value>> {
    app.allow(&method, &headers, Role::Viewer)?;
    let devices = match app.backend.request(&node, Request::V4l2ListDevices).await? {
        NodeResponse::V4l2ListDevices(d) => d,
        r => return Err(unexpected(r)),
    };
    let mut out = Vec::new();
    for d in devices {
        let controls = match app
            .backend
            .request(&node, Request::V4l2ListControls(Name { name: d.path.clone() }))
            .await?
        {
            NodeResponse::V4l2ListControls(c) => c,
            r => return Err(unexpected(r)),
        };
        let values = match app
            .backend
            .request(
                &node,
                Request::V4l2GetControls(GetControls {
                    device: d.path.clone(),
                    ids: Vec::new(),
                }),
            )
            .await?
        {
            NodeResponse::V4l2GetControls(v) => v,
            r => return Err(unexpected(r)),
        };
        let controls: Vec<Value> = controls
            .iter()
            .filter(|c| c.ctrl_type != framewire_proto::ControlType::CtrlClass)
            .map(|c| {
                let mut v =
                    framewire_proto::json::v4l2_control(c, values.iter().find(|v| v.id == c.id).map(|v| v.value));
                // What the page draws for it, beside the control itself.
                v["widget"] = json!(widget(c.ctrl_type));
                v
            })
            .collect();
        let mut device = framewire_proto::json::v4l2_device(&d);
        device["controls"] = json!(controls);
        out.push(device);
    }
    Ok(Json(json!({"devices": out})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetBody {
    device: String,
    values: Vec<SetValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetValue {
    id: u32,
    value: i64,
}

/// POST /api/nodes/{node}/v4l2 (operator): `{device, values: [{id, value}]}` → values as applied.
pub(crate) async fn v4l2_set(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(node): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    let who = app.allow(&method, &headers, Role::Operator)?;
    let b: SetBody = parse_json(&body)?;
    let req = Request::V4l2SetControls(SetControls {
        device: b.device,
        values: b
            .values
            .iter()
            .map(|v| ControlValue {
                id: v.id,
                value: v.value,
            })
            .collect(),
    });
    let applied = match app.backend.request(&node, req).await? {
        NodeResponse::V4l2SetControls(v) => v,
        r => return Err(unexpected(r)),
    };
    tracing::info!(user = ?who.user, ?node, "camera controls set");
    Ok(Json(json!({
        "values": applied.iter().map(framewire_proto::json::control_value).collect::<Vec<_>>()
    })))
}

fn auth_err(e: crate::auth::AuthError) -> ApiError {
    use crate::auth::AuthError as E;
    let status = match e {
        E::NoUser(_) | E::NoToken(_) => StatusCode::NOT_FOUND,
        E::Exists(_) => StatusCode::CONFLICT,
        E::BadName(_) | E::BadRole(_) | E::ShortPassword => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

/// GET /api/users (admin): names and roles.
pub(crate) async fn users(State(app): State<Arc<App>>, method: Method, headers: HeaderMap) -> Result<Json<Value>> {
    app.allow(&method, &headers, Role::Admin)?;
    let f = app.users.snapshot();
    Ok(Json(json!({
        "users": f.users.iter().map(|u| json!({"name": u.name, "role": u.role})).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    name: String,
    role: Role,
    password: String,
}

/// POST /api/users (admin): `{name, role, password}`.
pub(crate) async fn add_user(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let who = app.allow(&method, &headers, Role::Admin)?;
    if who.open {
        return Err(bad(
            "the server runs open (no users): add the first admin with `framewire user add NAME --role admin` and restart",
        ));
    }
    let u: NewUser = parse_json(&body)?;
    let app2 = app.clone();
    let (name, role) = (u.name.clone(), u.role);
    hashing(&app, move || {
        app2.users.modify(|f| f.add_user(&u.name, u.role, &u.password))
    })
    .await?;
    tracing::info!(by = ?who.user, user = ?name, %role, "user added");
    Ok((StatusCode::CREATED, Json(json!({"ok": true}))).into_response())
}

/// DELETE /api/users/{name} (admin).
pub(crate) async fn remove_user(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let who = app.allow(&method, &headers, Role::Admin)?;
    if who.user == name {
        return Err(bad("you cannot remove yourself"));
    }
    app.users.modify(|f| f.remove_user(&name)).map_err(auth_err)?;
    app.sessions.remove_user(&name);
    tracing::info!(by = ?who.user, user = ?name, "user removed (with its sessions and tokens)");
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChange {
    role: Option<Role>,
    password: Option<String>,
}

/// Runs a change of the users that hashes a password on the password
/// checkers (at most two at once, a short queue: 429 beyond it).
async fn hashing(
    app: &App,
    change: impl FnOnce() -> std::result::Result<(), crate::auth::AuthError> + Send + 'static,
) -> Result<()> {
    app.checker
        .run(change)
        .await
        .map_err(|_| {
            too_many(
                "the server is busy checking passwords: try again",
                Duration::from_secs(1),
            )
        })?
        .map_err(auth_err)
}

/// PUT /api/users/{name} (admin): `{role?, password?}`. Either change ends
/// the user's sessions and tokens; RTSP access stays as it was. An admin
/// cannot change their own role, and the last admin stays an admin.
pub(crate) async fn change_user(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    let who = app.allow(&method, &headers, Role::Admin)?;
    let c: UserChange = parse_json(&body)?;
    if c.role.is_none() && c.password.is_none() {
        return Err(bad("nothing to change: give `role`, `password` or both"));
    }
    if let Some(role) = c.role {
        if who.user == name && role != Role::Admin {
            return Err(bad("you cannot take your own admin role: another admin can"));
        }
        let f = app.users.snapshot();
        let admins = f.users.iter().filter(|u| u.role == Role::Admin).count();
        let is_admin = f.users.iter().any(|u| u.name == name && u.role == Role::Admin);
        if is_admin && admins == 1 && role != Role::Admin {
            return Err(bad(format!("{name} is the last admin: make another admin first")));
        }
    }
    let app2 = app.clone();
    let (user, role, password) = (name.clone(), c.role, c.password);
    let changed_password = password.is_some();
    hashing(&app, move || {
        app2.users.modify(|f| {
            if let Some(p) = &password {
                let rtsp = f.users.iter().any(|u| u.name == user && u.rtsp_ha1.is_some());
                f.set_password_with(&user, p, rtsp)?;
            }
            if let Some(r) = role {
                f.set_role(&user, r)?;
            }
            Ok(())
        })
    })
    .await?;
    app.sessions.remove_user(&name);
    tracing::info!(by = ?who.user, user = ?name, role = ?c.role, changed_password, "user changed (its sessions and tokens end)");
    Ok(Json(json!({"ok": true})))
}

/// GET /api/tokens (admin): token ids and users (never the secrets).
pub(crate) async fn tokens(State(app): State<Arc<App>>, method: Method, headers: HeaderMap) -> Result<Json<Value>> {
    app.allow(&method, &headers, Role::Admin)?;
    let f = app.users.snapshot();
    Ok(Json(json!({
        "tokens": f.tokens.iter().map(|t| json!({"id": t.id, "user": t.user, "created_ms": t.created_ms, "expires_ms": t.expires_ms})).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    user: String,
    /// Seconds until the token stops working (none: until revoked).
    #[serde(default)]
    expires_in: Option<u64>,
}

/// POST /api/tokens (admin): `{user, expires_in?}` → `{token}` (shown once).
pub(crate) async fn add_token(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let who = app.allow(&method, &headers, Role::Admin)?;
    let t: NewToken = parse_json(&body)?;
    let ttl = t.expires_in.map(Duration::from_secs);
    let token = app.users.modify(|f| f.add_token(&t.user, ttl)).map_err(auth_err)?;
    let id = token.split('_').nth(1).unwrap_or("");
    tracing::info!(by = ?who.user, user = ?t.user, id, expires_in_s = t.expires_in, "API token created");
    Ok((StatusCode::CREATED, Json(json!({"token": token}))).into_response())
}

/// DELETE /api/tokens/{id} (admin).
pub(crate) async fn remove_token(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let who = app.allow(&method, &headers, Role::Admin)?;
    app.users.modify(|f| f.remove_token(&id)).map_err(auth_err)?;
    tracing::info!(by = ?who.user, ?id, "API token revoked");
    Ok(Json(json!({"ok": true})))
}
