//! The sources of a running node: those of its configuration and those
//! added, changed or removed at run time (SOURCE_ADD, SOURCE_SET,
//! SOURCE_REMOVE). Each runs on a thread of its own with its own stop
//! flag; this module starts, swaps and stops them.
//!
//! A change keeps the stream and its subscribers: they get *interrupted*
//! (reason `reconfigured`), then *format-changed* if the new settings
//! produce another format, then *resumed*. A change whose new settings do
//! not start (a bad key, a busy device) puts the old source back and is
//! refused. A removal closes the stream (reason `source-removed`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use framewire_proto::names::{self, NameKind};
use framewire_proto::{EventInfo, EventReason, Status, StreamEvent};
use tracing::{info, warn};

use crate::api::{SourceHost, StopSignal, UpdateSlot};
use crate::clock::now_ns;
use crate::config::SourceConfig;
use crate::error::{CommandError, NetError};
use crate::runtime::core::NodeCore;

/// Sources a node runs at most (the configuration's and those added).
pub(crate) const MAX_SOURCES: usize = 64;
/// How long a source has to stop when it is changed or removed.
const STOP_WAIT: Duration = Duration::from_secs(5);

struct Running {
    spec: SourceConfig,
    stop: StopSignal,
    thread: Option<JoinHandle<()>>,
    /// Set by a source that takes changes in place.
    updates: Arc<UpdateSlot>,
}

/// The node's sources, by stream name.
pub(crate) struct Sources {
    core: Arc<NodeCore>,
    running: Mutex<HashMap<String, Running>>,
    /// Names being changed or removed right now.
    busy: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").field("running", &self.lock().len()).finish()
    }
}

fn refused(status: Status, message: impl Into<String>) -> CommandError {
    CommandError::new(status, message)
}

/// The status a source's start error is answered with.
fn start_error(e: &NetError) -> CommandError {
    let status = match e {
        NetError::Io(io) if io.kind() == std::io::ErrorKind::ResourceBusy => Status::Busy,
        NetError::Source { reason, .. } if reason.contains("busy") => Status::Busy,
        _ => Status::BadRequest,
    };
    refused(status, e.to_string())
}

/// A source from the TOML text of its table (as `[[source]]` holds it).
pub(crate) fn parse(table: &str) -> Result<SourceConfig, CommandError> {
    let t: toml::Table =
        toml::from_str(table).map_err(|e| refused(Status::BadRequest, format!("the source spec is not TOML: {e}")))?;
    let kind = t.get("kind").and_then(toml::Value::as_str).unwrap_or_default();
    if crate::sources::KINDS.iter().any(|k| k.name == kind && !k.at_run_time) {
        let allowed: Vec<&str> = crate::sources::KINDS
            .iter()
            .filter(|k| k.at_run_time)
            .map(|k| k.name)
            .collect();
        return Err(refused(
            Status::PermissionDenied,
            format!(
                "a `{kind}` source cannot be added at run time, only in the node's configuration (at run time: {})",
                allowed.join(", ")
            ),
        ));
    }
    let spec = crate::sources::from_table(t).map_err(|e| refused(Status::BadRequest, e.to_string()))?;
    names::check(NameKind::Stream, spec.name()).map_err(|e| refused(Status::BadRequest, e.to_string()))?;
    Ok(spec)
}

/// `not-found` for `name`, naming the sources there are.
fn not_found(running: &HashMap<String, Running>, name: &str) -> CommandError {
    let mut known: Vec<String> = running.keys().cloned().collect();
    known.sort();
    refused(
        Status::NotFound,
        format!(
            "no source named `{name}` on this node (sources: {})",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ),
    )
}

impl Sources {
    pub(crate) fn new(core: Arc<NodeCore>) -> Sources {
        Sources {
            core,
            running: Mutex::new(HashMap::new()),
            busy: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn launch(&self, spec: &SourceConfig, replacing: bool) -> Result<Running, NetError> {
        let stop = StopSignal::default();
        let updates = Arc::new(UpdateSlot::default());
        let host = SourceHost {
            node: self.core.clone(),
            stop: stop.clone(),
            replacing,
            updates: updates.clone(),
        };
        let thread = spec.spec().start(host)?;
        Ok(Running {
            spec: spec.clone(),
            stop,
            thread: Some(thread),
            updates,
        })
    }

    /// Starts a source of the node's configuration (an error refuses the
    /// node's start).
    pub(crate) fn start_configured(&self, spec: &SourceConfig) -> Result<(), NetError> {
        let r = self.launch(spec, false)?;
        self.lock().insert(spec.name().to_owned(), r);
        Ok(())
    }

    /// SOURCE_ADD: starts a source; refused if its stream's name is taken.
    pub(crate) fn add(&self, spec: SourceConfig) -> Result<String, CommandError> {
        let name = spec.name().to_owned();
        if self.lock().len() >= MAX_SOURCES {
            return Err(refused(
                Status::Busy,
                format!("this node runs {MAX_SOURCES} sources, its limit"),
            ));
        }
        if self.core.has_stream(&name) || self.lock().contains_key(&name) {
            return Err(refused(
                Status::BadRequest,
                format!("a stream named `{name}` exists on this node: remove it first or choose another name"),
            ));
        }
        let r = self.launch(&spec, false).map_err(|e| start_error(&e))?;
        self.lock().insert(name.clone(), r);
        info!(stream = %name, kind = spec.kind(), "source added");
        self.core.changed();
        Ok(name)
    }

    /// Claims `name` for a change or a removal, or says why not.
    fn claim(&self, name: &str) -> Result<Running, CommandError> {
        let mut busy = self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if busy.iter().any(|b| b == name) {
            return Err(refused(
                Status::Busy,
                format!("source `{name}` is being changed; try again"),
            ));
        }
        let mut running = self.lock();
        let Some(r) = running.remove(name) else {
            return Err(not_found(&running, name));
        };
        drop(running);
        busy.push(name.to_owned());
        Ok(r)
    }

    /// SOURCE_GET: the table a running source was made from, its
    /// secrets masked.
    pub(crate) fn get(&self, name: &str) -> Result<String, CommandError> {
        let running = self.lock();
        let Some(r) = running.get(name) else {
            return Err(not_found(&running, name));
        };
        let table = r
            .spec
            .table()
            .ok_or_else(|| refused(Status::NotFound, format!("source `{name}` was not made from a table")))?;
        toml::to_string(&crate::config::masked(table)).map_err(|e| refused(Status::Internal, e.to_string()))
    }

    fn release(&self, name: &str) {
        self.busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|b| b != name);
    }

    /// SOURCE_SET: swaps a running source's settings, keeping its stream.
    pub(crate) async fn set(&self, spec: SourceConfig) -> Result<String, CommandError> {
        let name = spec.name().to_owned();
        let mut old = self.claim(&name)?;
        // The table it runs: nothing to change (a controller sets every
        // source it wants after it starts).
        if old.spec.table().is_some() && old.spec.table() == spec.table() {
            self.lock().insert(name.clone(), old);
            self.release(&name);
            return Ok(name);
        }
        // A source that takes changes in place keeps running: no gap.
        let offered = (old.spec.kind() == spec.kind())
            .then(|| old.updates.offer(spec.clone()))
            .flatten();
        let r = match offered {
            Some(answer) => {
                let r = match tokio::time::timeout(STOP_WAIT, answer).await {
                    Ok(Ok(Ok(()))) => {
                        info!(stream = %name, kind = spec.kind(), "source changed in place");
                        old.spec = spec;
                        Ok(name.clone())
                    }
                    Ok(Ok(Err(why))) => Err(refused(Status::BadRequest, format!("{why}; nothing changed"))),
                    _ => Err(refused(Status::Busy, "the source did not answer; nothing changed")),
                };
                self.lock().insert(name.clone(), old);
                r
            }
            None => self.swap(&name, old, spec).await,
        };
        self.release(&name);
        self.core.changed();
        r
    }

    async fn swap(&self, name: &str, old: Running, spec: SourceConfig) -> Result<String, CommandError> {
        let event = |reason, message: &str| EventInfo {
            timestamp_ns: now_ns(),
            reason,
            message: message.to_owned(),
        };
        self.core.stream_event(
            name,
            StreamEvent::Interrupted(event(EventReason::Reconfigured, "the source is being changed")),
        );
        let old_spec = old.spec.clone();
        if let Err(e) = stop(old).await {
            // The old thread still runs: it keeps the stream (and the name).
            warn!(stream = %name, "{e}");
            return Err(refused(Status::Busy, e));
        }
        let (result, running) = match self.launch(&spec, true) {
            Ok(r) => (Ok(name.to_owned()), r),
            Err(e) => {
                let why = start_error(&e);
                match self.launch(&old_spec, true) {
                    Ok(r) => (
                        Err(refused(
                            why.status,
                            format!(
                                "{}; nothing changed: the source runs with its old settings",
                                why.message
                            ),
                        )),
                        r,
                    ),
                    Err(e2) => {
                        warn!(stream = %name, error = %e2, "the old source does not start again either; stream removed");
                        self.core.remove_stream(name, EventReason::Error, &e2.to_string());
                        return Err(refused(
                            why.status,
                            format!(
                                "{}; the old settings do not start again either ({e2}): the source is gone",
                                why.message
                            ),
                        ));
                    }
                }
            }
        };
        self.lock().insert(name.to_owned(), running);
        self.core
            .stream_event(name, StreamEvent::Resumed(event(EventReason::Reconfigured, "")));
        if result.is_ok() {
            info!(stream = %name, kind = spec.kind(), "source changed");
        }
        result
    }

    /// SOURCE_REMOVE: stops a source; its stream closes.
    pub(crate) async fn remove(&self, name: &str) -> Result<(), CommandError> {
        let old = self.claim(name)?;
        let r = match stop(old).await {
            Ok(()) => {
                self.core
                    .remove_stream(name, EventReason::SourceRemoved, "the source was removed");
                info!(stream = %name, "source removed");
                Ok(())
            }
            Err(e) => Err(refused(Status::Busy, e)),
        };
        self.release(name);
        self.core.changed();
        r
    }

    /// Asks every source to stop (the node stops).
    pub(crate) fn stop_all(&self) {
        for r in self.lock().values() {
            r.stop.raise();
        }
    }

    /// Waits for every source's thread (after [`Sources::stop_all`]).
    pub(crate) fn join_all(&self) {
        let threads: Vec<JoinHandle<()>> = self.lock().values_mut().filter_map(|r| r.thread.take()).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Stops a source's thread and waits for it, at most [`STOP_WAIT`].
async fn stop(mut r: Running) -> Result<(), String> {
    r.stop.raise();
    let Some(t) = r.thread.take() else { return Ok(()) };
    let name = r.spec.name().to_owned();
    let join = tokio::task::spawn_blocking(move || t.join());
    match tokio::time::timeout(STOP_WAIT, join).await {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("source `{name}` did not stop within {STOP_WAIT:?}")),
    }
}
