//! Viewers' input: the keyboard and mouse events viewers send back on a
//! subscription, for every stream (docs/x11.md). Each is counted per
//! stream and kind (GET_STATS) and logged (at most 10 a second per
//! stream); for a pulled stream it goes upstream on the edge's
//! subscription; for an `x11` source configured with `inject = true` it
//! is replayed into that display through XTEST.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use framewire_proto::control::{InputEventStats, InputKindCount};
use framewire_proto::{InputEvent, InputKind, Message};
use tokio::sync::mpsc;
use tracing::{debug, info};

/// Where a stream's input events go: the display of the source that
/// grabs it (events are replayed there only when `inject` is on).
#[derive(Debug, Clone)]
pub(crate) struct InputTarget {
    #[cfg_attr(not(feature = "x11"), allow(dead_code))]
    pub(crate) display: Option<String>,
    #[cfg_attr(not(feature = "x11"), allow(dead_code))]
    pub(crate) screen: usize,
    /// Top-left of the grabbed rectangle on its screen.
    #[cfg_attr(not(feature = "x11"), allow(dead_code))]
    pub(crate) origin: (i32, i32),
    #[cfg_attr(not(feature = "x11"), allow(dead_code))]
    pub(crate) inject: bool,
}

/// Counters of one stream's input events.
#[derive(Debug, Default, Clone)]
pub(crate) struct InputCounts {
    received: u64,
    injected: u64,
    forwarded: u64,
    /// Received, by kind (`kind - 1`; unknown kinds are not counted here).
    kinds: [u64; 6],
}

/// Counters shared with the injector thread.
pub(crate) type SharedCounts = std::sync::Arc<Mutex<BTreeMap<String, InputCounts>>>;

/// Input events received by this node, per stream: counted, logged, and
/// either injected (an `x11` source with injection on) or passed upstream
/// (a pulled edge).
#[derive(Debug, Default)]
pub(crate) struct InputRegistry {
    targets: Mutex<HashMap<String, InputTarget>>,
    counts: SharedCounts,
    /// Where to pass a pulled stream's events upstream: the edge session's
    /// outbox and its channel there.
    forwarders: Mutex<HashMap<String, (mpsc::Sender<Message>, u16)>>,
    #[cfg(feature = "x11")]
    injector: Mutex<Option<std::sync::mpsc::Sender<framewire_media::x11::inject::Injection>>>,
    /// Per stream: the log lines left in this second, and events not logged.
    log_budget: Mutex<HashMap<String, LogBudget>>,
}

/// Input events logged per stream and second; the rest are counted and
/// the count shows on the next line logged (a viewer cannot flood the log).
const INPUT_LOG_PER_SECOND: u32 = 10;

#[derive(Debug)]
struct LogBudget {
    window: std::time::Instant,
    left: u32,
    suppressed: u64,
}

impl LogBudget {
    /// Whether to log one more event now; if so, how many were not logged before it.
    fn take(&mut self, now: std::time::Instant) -> Option<u64> {
        if now.duration_since(self.window) >= std::time::Duration::from_secs(1) {
            self.window = now;
            self.left = INPUT_LOG_PER_SECOND;
        }
        if self.left == 0 {
            self.suppressed += 1;
            return None;
        }
        self.left -= 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Events queued for an upstream; more are dropped (a stalled upstream
/// must not make the node hold viewers' input without limit).
pub(crate) const FORWARD_QUEUE: usize = 256;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl InputRegistry {
    #[cfg_attr(not(feature = "x11"), allow(dead_code))]
    pub(crate) fn set_target(&self, stream: &str, t: InputTarget) {
        lock(&self.targets).insert(stream.to_owned(), t);
    }

    /// Passes events for `stream` upstream through `tx`, as INPUT_EVENTs
    /// on `channel`, from now on.
    pub(crate) fn set_forwarder(&self, stream: &str, tx: mpsc::Sender<Message>, channel: u16) {
        lock(&self.forwarders).insert(stream.to_owned(), (tx, channel));
    }

    /// Where `stream`'s messages go upstream (the edge session's outbox and
    /// its channel there), if it is pulled.
    pub(crate) fn forwarder(&self, stream: &str) -> Option<(mpsc::Sender<Message>, u16)> {
        lock(&self.forwarders).get(stream).cloned()
    }

    /// Stops passing events for `stream` upstream, if `tx` is still the way.
    pub(crate) fn clear_forwarder(&self, stream: &str, tx: &mpsc::Sender<Message>) {
        let mut f = lock(&self.forwarders);
        if f.get(stream).is_some_and(|(t, _)| t.same_channel(tx)) {
            f.remove(stream);
        }
    }

    /// Forgets a stream that is gone: its counters, target and forwarder.
    pub(crate) fn forget(&self, stream: &str) {
        lock(&self.counts).remove(stream);
        lock(&self.targets).remove(stream);
        lock(&self.forwarders).remove(stream);
    }

    /// Handles one input event a viewer sent on a subscription to `stream`.
    pub(crate) fn event(&self, stream: &str, event: InputEvent) {
        {
            let mut c = lock(&self.counts);
            let e = c.entry(stream.to_owned()).or_default();
            e.received += 1;
            if let Some(k) = usize::from(event.kind.to_raw()).checked_sub(1)
                && k < e.kinds.len()
            {
                e.kinds[k] += 1;
            }
        }
        let now = std::time::Instant::now();
        let logged = lock(&self.log_budget)
            .entry(stream.to_owned())
            .or_insert(LogBudget {
                window: now,
                left: INPUT_LOG_PER_SECOND,
                suppressed: 0,
            })
            .take(now);
        if let Some(not_logged) = logged {
            info!(
            stream,
            kind = %event.kind,
            x = event.x,
            y = event.y,
            button = event.button,
            keysym = event.keysym,
            wheel_y = event.wheel_y,
            modifiers = event.modifiers.0,
            // Since the viewer saw it (meaningful when both clocks agree).
            age_ms = crate::clock::now_ns().saturating_sub(event.timestamp_ns) as f64 / 1e6,
            not_logged,
            "input event"
            );
        }
        let forwarder = lock(&self.forwarders).get(stream).cloned();
        if let Some((tx, channel)) = forwarder {
            if tx.try_send(Message::InputEvent { channel, event }).is_ok() {
                lock(&self.counts).entry(stream.to_owned()).or_default().forwarded += 1;
            } else {
                debug!(stream, "input event not forwarded: the upstream's queue is full");
            }
        } else {
            self.inject(stream, event);
        }
    }

    /// Replays the event into the display of an `x11` source that asked for it.
    #[cfg(feature = "x11")]
    fn inject(&self, stream: &str, event: InputEvent) {
        let target = lock(&self.targets).get(stream).cloned();
        if let Some(target) = target.filter(|t| t.inject) {
            let mut inj = lock(&self.injector);
            if inj.is_none() {
                let counts = self.counts.clone();
                *inj = framewire_media::x11::inject::start(move |stream| {
                    lock(&counts).entry(stream.to_owned()).or_default().injected += 1;
                })
                .ok();
            }
            let job = framewire_media::x11::inject::Injection {
                stream: stream.to_owned(),
                display: target.display,
                screen: target.screen,
                origin: target.origin,
                event,
            };
            if let Some(tx) = inj.as_ref()
                && tx.send(job).is_err()
            {
                *inj = None;
            }
        }
    }

    /// Without X11 support nothing is replayed.
    #[cfg(not(feature = "x11"))]
    #[allow(clippy::unused_self)]
    fn inject(&self, _stream: &str, _event: InputEvent) {}

    /// Counters for GET_STATS (of one stream, or all when `only` is empty).
    pub(crate) fn stats(&self, only: &str) -> Vec<InputEventStats> {
        lock(&self.counts)
            .iter()
            .filter(|(name, _)| only.is_empty() || name.as_str() == only)
            .map(|(name, c)| InputEventStats {
                stream: name.clone(),
                received: c.received,
                injected: c.injected,
                forwarded: c.forwarded,
                kinds: c
                    .kinds
                    .iter()
                    .zip(1u8..)
                    .filter(|(n, _)| **n > 0)
                    .map(|(n, k)| InputKindCount {
                        kind: InputKind::from_raw(k),
                        count: *n,
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use framewire_proto::{InputEvent, InputKind, Message, Modifiers};
    use tokio::sync::mpsc;

    use super::{FORWARD_QUEUE, InputRegistry};

    fn ev(kind: InputKind) -> InputEvent {
        InputEvent {
            kind,
            timestamp_ns: 1,
            modifiers: Modifiers(0),
            keysym: 0x61,
            scancode: 30,
            button: 1,
            x: 10,
            y: 20,
            wheel_x: 0,
            wheel_y: 120,
        }
    }

    #[test]
    fn counts_per_stream_and_kind() {
        let r = InputRegistry::default();
        for k in [
            InputKind::KeyDown,
            InputKind::KeyDown,
            InputKind::Wheel,
            InputKind::Unknown(99),
        ] {
            r.event("a", ev(k));
        }
        r.event("b", ev(InputKind::MouseMove));
        let all = r.stats("");
        assert_eq!(all.len(), 2);
        let a = &r.stats("a")[0];
        assert_eq!((a.stream.as_str(), a.received, a.injected, a.forwarded), ("a", 4, 0, 0));
        let kinds: Vec<(InputKind, u64)> = a.kinds.iter().map(|k| (k.kind, k.count)).collect();
        assert_eq!(kinds, vec![(InputKind::KeyDown, 2), (InputKind::Wheel, 1)]);
        assert!(r.stats("c").is_empty());
    }

    #[test]
    fn forwards_to_the_upstream_until_cleared() {
        let r = InputRegistry::default();
        let (tx, mut rx) = mpsc::channel(FORWARD_QUEUE);
        r.set_forwarder("s", tx.clone(), 7);
        r.event("s", ev(InputKind::ButtonDown));
        assert_eq!(
            rx.try_recv().unwrap(),
            Message::InputEvent {
                channel: 7,
                event: ev(InputKind::ButtonDown)
            }
        );
        assert_eq!(r.stats("s")[0].forwarded, 1);
        // Another session's sender does not clear this one.
        let (other, _orx) = mpsc::channel(1);
        r.clear_forwarder("s", &other);
        r.event("s", ev(InputKind::ButtonUp));
        assert!(rx.try_recv().is_ok());
        r.clear_forwarder("s", &tx);
        r.event("s", ev(InputKind::ButtonUp));
        assert!(rx.try_recv().is_err());
        let s = &r.stats("s")[0];
        assert_eq!((s.received, s.forwarded), (3, 2));
    }

    #[test]
    fn a_full_upstream_queue_drops_and_does_not_count() {
        let r = InputRegistry::default();
        let (tx, _rx) = mpsc::channel(2);
        r.set_forwarder("s", tx, 1);
        for _ in 0..5 {
            r.event("s", ev(InputKind::MouseMove));
        }
        let s = &r.stats("s")[0];
        assert_eq!((s.received, s.forwarded), (5, 2));
        r.forget("s");
        assert!(r.stats("").is_empty());
    }
}
