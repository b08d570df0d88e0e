//! Keyframe requests (REQUEST_KEYFRAME): a subscriber — a decoder after a
//! loss, a new viewer — asks for a keyframe of an inter-coded stream. The
//! node that encodes it (a transcoding output) makes the next frame one; a
//! node that pulls it passes the request upstream on its own subscription,
//! so it reaches the encoder through any number of relays.
//!
//! Requests are coalesced: while one is pending, more change nothing, and
//! an encoder makes at most one forced keyframe per [`MIN_INTERVAL`] (a
//! subscriber asking in a loop cannot turn a stream into keyframes only);
//! a relay passes at most one request upstream per [`MIN_INTERVAL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use framewire_proto::control::Name;
use framewire_proto::{Message, Request, Status};
use tracing::debug;

pub(crate) use crate::api::{KeyframeFlag, MIN_KEYFRAME_INTERVAL as MIN_INTERVAL};
use crate::error::CommandError;
use crate::runtime::core::NodeCore;

/// The request id of REQUEST_KEYFRAME passed upstream on an edge (its
/// answer is not waited for).
pub(crate) const UPSTREAM_REQUEST_ID: u16 = 0xfff2;

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The stream's encoder here makes the next frame a keyframe.
    Encoder,
    /// Passed upstream (or coalesced with one just passed).
    Upstream,
    /// Every frame of the stream is a keyframe already.
    IntraOnly,
}

/// The node's encoders that take requests, and the last request passed
/// upstream per stream.
#[derive(Debug, Default)]
pub(crate) struct KeyframeRequests {
    encoders: Mutex<HashMap<String, Arc<KeyframeFlag>>>,
    passed: Mutex<HashMap<String, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl KeyframeRequests {
    /// `stream`'s encoder takes requests through the flag returned.
    pub(crate) fn register(&self, stream: &str) -> Arc<KeyframeFlag> {
        let flag = Arc::new(KeyframeFlag::default());
        lock(&self.encoders).insert(stream.to_owned(), flag.clone());
        flag
    }

    /// `stream`'s encoder (the one `flag` was given to) is gone.
    pub(crate) fn unregister(&self, stream: &str, flag: &Arc<KeyframeFlag>) {
        let mut encoders = lock(&self.encoders);
        if encoders.get(stream).is_some_and(|f| Arc::ptr_eq(f, flag)) {
            encoders.remove(stream);
        }
    }

    /// A request for a keyframe of `stream`.
    pub(crate) fn request(&self, core: &NodeCore, stream: &str) -> Result<Outcome, CommandError> {
        let Some(format) = core.with_state(|st| st.stream(stream).map(|e| e.open.format)) else {
            return Err(CommandError::new(Status::NotFound, format!("no stream `{stream}`")));
        };
        if !format.is_inter_coded() {
            return Ok(Outcome::IntraOnly);
        }
        if let Some(flag) = lock(&self.encoders).get(stream) {
            flag.request();
            return Ok(Outcome::Encoder);
        }
        if let Some((tx, channel)) = core.input.forwarder(stream) {
            let now = Instant::now();
            let mut passed = lock(&self.passed);
            if passed
                .get(stream)
                .is_some_and(|t| now.duration_since(*t) < MIN_INTERVAL)
            {
                return Ok(Outcome::Upstream);
            }
            let req = Request::RequestKeyframe(Name { name: String::new() })
                .to_message(channel, UPSTREAM_REQUEST_ID)
                .map_err(|e| CommandError::new(Status::Internal, e.to_string()))?;
            if tx.try_send(Message::ControlRequest(req)).is_ok() {
                if passed.len() >= 1024 {
                    passed.retain(|_, t| now.duration_since(*t) < MIN_INTERVAL);
                }
                passed.insert(stream.to_owned(), now);
                return Ok(Outcome::Upstream);
            }
            debug!(stream, "keyframe request not passed upstream: its queue is full");
            return Err(CommandError::new(
                Status::Busy,
                format!("`{stream}`'s upstream is not taking requests now"),
            ));
        }
        Err(CommandError::new(
            Status::UnsupportedFormat,
            format!(
                "`{stream}` is {format} from a source that sends keyframes on its own schedule \
                 (ask for `{stream}~h264` to have this node encode it)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_coalesce_and_forced_keyframes_keep_their_distance() {
        let f = KeyframeFlag::default();
        let t0 = Instant::now();
        assert!(!f.take(t0), "nothing pending");
        f.request();
        f.request();
        assert!(f.take(t0));
        assert!(!f.take(t0), "two requests, one keyframe");
        f.request();
        assert!(!f.take(t0 + MIN_INTERVAL / 2), "too soon: stays pending");
        assert!(f.take(t0 + MIN_INTERVAL));
    }
}
