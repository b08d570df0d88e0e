//! What the controller does about an edge in alert, when the wanted edge
//! names a policy (`on_alert`): shrink its queue (halved, down to one
//! frame; changed in place), switch it to low-latency, or lower the
//! quality of its transcode (`STREAM~mjpeg-qN`, 20 lower down to 20).
//!
//! The stored wanted graph stays as the user wrote it; the controller
//! keeps an adjustment per edge that the reconciler applies on top
//! ([`Core::effective`]), and the edge's view says what it did. A step is
//! taken when the alert is raised, and again while it stays raised a
//! whole alert window after the last step (so the window measures the
//! new settings). The adjustment stays when the alert clears, until the
//! wanted edge changes.

use std::borrow::Cow;
use std::time::Instant;

use super::*;

/// The policies `on_alert` names.
pub(crate) const POLICIES: [&str; 3] = ["shrink", "low-latency", "lower-quality"];

/// A queue is not shrunk below this many frames.
const MIN_FRAMES: u32 = 1;
/// A transcode's quality is not lowered below this.
const MIN_QUALITY: u8 = 20;
/// How much one step lowers it.
const QUALITY_STEP: u8 = 20;
/// The queue a shrink starts from when the edge asked for the upstream's
/// default (0): the relay's default frame budget.
const DEFAULT_FRAMES: u32 = 8;

/// What the policy changed on one edge.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Adjustment {
    max_frames: Option<u32>,
    low_latency: bool,
    quality: Option<u8>,
    /// When the last step was taken.
    at: Instant,
    /// For people: what the controller did.
    pub(crate) note: String,
}

/// Checks `on_alert` of a wanted edge: a known policy, and a transcoded
/// MJPEG stream for `lower-quality`.
pub(crate) fn check(e: &WantedEdge) -> Result<(), String> {
    match e.on_alert.as_str() {
        "" | "shrink" | "low-latency" => Ok(()),
        "lower-quality" if quality_of(&e.stream).is_some() => Ok(()),
        "lower-quality" => Err(format!(
            "on_alert = \"lower-quality\" needs a transcoded MJPEG stream (`{}~mjpeg-q80`), not `{}`",
            e.stream.split('~').next().unwrap_or(&e.stream),
            e.stream
        )),
        other => Err(format!(
            "on_alert {other:?} is not one of {} (or empty: none)",
            POLICIES.join(", ")
        )),
    }
}

/// The JPEG quality of a transcoded stream name (`cam~mjpeg` is 85).
fn quality_of(stream: &str) -> Option<u8> {
    let (_, format) = stream.rsplit_once('~')?;
    let rest = format.strip_prefix("mjpeg")?;
    if rest.is_empty() {
        return Some(framewire_codec::DEFAULT_JPEG_QUALITY);
    }
    rest.strip_prefix("-q")?.parse().ok().filter(|q| (1..=100).contains(q))
}

fn with_quality(stream: &str, q: u8) -> String {
    let base = stream.rsplit_once('~').map_or(stream, |(b, _)| b);
    format!("{base}~mjpeg-q{q}")
}

impl Core {
    /// The wanted edge as the reconciler makes it: with the policy's
    /// adjustment, if any (its local name and so its id unchanged).
    pub(crate) fn effective<'a>(&self, w: &'a WantedEdge) -> Cow<'a, WantedEdge> {
        let Some(a) = self.adjusted.get(&edge_id(&w.to, local_name(w))) else {
            return Cow::Borrowed(w);
        };
        let mut e = w.clone();
        e.local_name = local_name(w).to_owned();
        if let Some(n) = a.max_frames {
            e.max_frames = n;
        }
        if a.low_latency {
            e.mode = "low-latency".into();
        }
        if let Some(q) = a.quality {
            e.stream = with_quality(&w.stream, q);
        }
        Cow::Owned(e)
    }

    /// What a policy did to the edge `id`, for its view.
    pub(crate) fn adjustment_note(&self, id: &str) -> Option<&str> {
        self.adjusted.get(id).map(|a| a.note.as_str())
    }

    /// Drops the adjustments of edges `wanted` no longer has as they were.
    pub(crate) fn keep_adjustments(&mut self, wanted: &WantedGraph) {
        self.adjusted.retain(|id, _| {
            let old = self.wanted.edges.iter().find(|w| edge_id(&w.to, local_name(w)) == *id);
            old.is_some_and(|o| wanted.edges.contains(o))
        });
    }

    /// Takes a policy step on every wanted edge in alert that names one
    /// and is due; returns what it did, for the log.
    pub(crate) fn apply_policies(&mut self, now: Instant) -> Vec<String> {
        let alerted: Vec<String> = self
            .graph()
            .edges
            .into_iter()
            .filter(|e| e.alert.is_some())
            .map(|e| e.id)
            .collect();
        let mut done = Vec::new();
        for id in alerted {
            let Some(w) = self.wanted_by_id(&id).cloned() else {
                continue;
            };
            if w.on_alert.is_empty() {
                continue;
            }
            let prev = self.adjusted.get(&id);
            if prev.is_some_and(|a| now.saturating_duration_since(a.at) < self.alerts.window) {
                continue;
            }
            let eff = self.effective(&w).into_owned();
            let mut a = prev.cloned().unwrap_or(Adjustment {
                max_frames: None,
                low_latency: false,
                quality: None,
                at: now,
                note: String::new(),
            });
            let step = match w.on_alert.as_str() {
                "shrink" => {
                    let from = if eff.max_frames == 0 {
                        DEFAULT_FRAMES
                    } else {
                        eff.max_frames
                    };
                    let to = (from / 2).max(MIN_FRAMES);
                    (to < from || a.max_frames.is_none()).then(|| {
                        a.max_frames = Some(to);
                        format!("queue shrunk to {to} frame(s)")
                    })
                }
                "low-latency" => (!a.low_latency && eff.mode != "low-latency").then(|| {
                    a.low_latency = true;
                    "switched to low-latency".to_owned()
                }),
                "lower-quality" => quality_of(&eff.stream).and_then(|q| {
                    let to = q.saturating_sub(QUALITY_STEP).max(MIN_QUALITY);
                    (to < q).then(|| {
                        a.quality = Some(to);
                        format!("transcode quality lowered to {to}")
                    })
                }),
                _ => None,
            };
            let Some(what) = step else { continue };
            a.at = now;
            a.note = format!("on alert: {what}");
            done.push(format!("{}: {}", edge_label(&w), a.note));
            self.adjusted.insert(id.clone(), a);
            self.pending.remove(&id);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_checked_and_qualities_read() {
        let mut e = WantedEdge::new("a", "cam~mjpeg-q70", "b");
        e.on_alert = "lower-quality".into();
        assert_eq!(check(&e), Ok(()));
        e.stream = "cam".into();
        assert!(check(&e).unwrap_err().contains("cam~mjpeg-q80"));
        e.on_alert = "panic".into();
        assert!(check(&e).unwrap_err().contains("shrink, low-latency, lower-quality"));
        assert_eq!(quality_of("cam~mjpeg"), Some(85));
        assert_eq!(quality_of("cam~qoi"), None);
        assert_eq!(with_quality("cam~mjpeg", 65), "cam~mjpeg-q65");
    }
}
