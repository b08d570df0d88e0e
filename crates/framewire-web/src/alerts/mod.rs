//! Alerts for the people watching: the engine ([`engine`]) fed by a task
//! that follows the controller's graph and the supervisor's status file,
//! the list pushed to every page on `/ws/state`, and the routes to read
//! and acknowledge it.

pub mod engine;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::ws::Utf8Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::{ApiError, App, Role};
use engine::{Alerts, HostNode};

/// How often the supervisor's status file is read again.
const HOST_POLL: Duration = Duration::from_secs(1);

/// The alerts and the message every page gets when they change.
#[derive(Debug)]
pub(crate) struct Hub {
    alerts: Mutex<Alerts>,
    tx: watch::Sender<Utf8Bytes>,
}

impl Default for Hub {
    fn default() -> Hub {
        let alerts = Alerts::default();
        let (tx, _) = watch::channel(message(&alerts));
        Hub {
            alerts: Mutex::new(alerts),
            tx,
        }
    }
}

/// `{"type":"alerts","version":N,"alerts":[...]}`, newest first.
fn message(a: &Alerts) -> Utf8Bytes {
    json!({ "type": "alerts", "version": a.version(), "alerts": list_json(a) })
        .to_string()
        .into()
}

fn list_json(a: &Alerts) -> Vec<Value> {
    let mut v: Vec<Value> = a.list().map(|a| json!(a)).collect();
    v.reverse();
    v
}

impl Hub {
    /// The pushed message, waking on every change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Utf8Bytes> {
        self.tx.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Alerts> {
        self.alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn changed(&self, a: &Alerts) {
        self.tx.send_replace(message(a));
    }
}

/// Wall-clock ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Follows the graph (every change at once) and the supervisor's status
/// (every second) until the server stops or the controller goes.
pub(crate) async fn watch(app: Arc<App>) {
    let mut graph = app.backend.graph();
    let mut tick = tokio::time::interval(HOST_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut host: Option<Vec<HostNode>> = None;
    let mut logged = 0;
    loop {
        let g = graph.borrow_and_update().clone();
        {
            let mut a = app.alerts.lock();
            if a.observe(&g, host.as_deref(), now_ms()) {
                let since = logged;
                for al in a.list().filter(|al| al.id > since) {
                    tracing::warn!(id = al.id, kind = ?al.kind, message = %al.message, "alert");
                    logged = al.id;
                }
                app.alerts.changed(&a);
            }
        }
        tokio::select! {
            _ = app.stopped() => return,
            changed = graph.changed() => if changed.is_err() { return },
            _ = tick.tick() => {
                host = match &app.up_status {
                    Some(path) => crate::api::read_up_status(path).await.ok().map(|v| host_nodes(&v)),
                    None => None,
                };
            }
        }
    }
}

/// The supervised nodes of a status file, or none when the supervisor is
/// not running (then nothing it said holds).
fn host_nodes(v: &Value) -> Vec<HostNode> {
    if !v["running"].as_bool().unwrap_or(false) {
        return Vec::new();
    }
    v["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| HostNode {
                    name: n["name"].as_str().unwrap_or_default().to_owned(),
                    state: n["state"].as_str().unwrap_or_default().to_owned(),
                    reason: n["reason"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// GET /api/alerts (viewer): `{version, alerts: [{id, kind, subject,
/// message, raised_ms, active, cleared_ms, acked_by, acked_ms}]}`, newest first.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.allow(&method, &headers, Role::Viewer)?;
    let a = app.alerts.lock();
    Ok(Json(json!({ "version": a.version(), "alerts": list_json(&a) })))
}

/// POST /api/alerts/{id}/ack (operator): the alert, acknowledged by the caller.
pub(crate) async fn ack(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let who = app.allow(&method, &headers, Role::Operator)?;
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, format!("alert id {id:?} is not a number")))?;
    let mut a = app.alerts.lock();
    let alert = a
        .ack(id, &who.user, now_ms())
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no alert {id}")))?;
    tracing::info!(id, user = %who.user, subject = %alert.subject, "alert acknowledged");
    app.alerts.changed(&a);
    Ok(Json(json!(alert)))
}
