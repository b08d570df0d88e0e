//! Messages a node passes through without interpreting them: audio frames
//! (0x0006) and message types it does not know, arriving on a pulled
//! stream's channel. They go to every subscriber connection of the stream
//! unchanged (docs/protocol.md), counted here per stream and type.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use framewire_proto::control::PassThroughStats;
use framewire_proto::{Message, MessageType};
use tracing::warn;

/// Distinct (stream, type) counters kept; a peer inventing types beyond
/// this is passed through but not counted by type.
const MAX_COUNTERS: usize = 256;

/// The message of type `message_type` with `payload` on `channel`.
pub(crate) fn on_channel(message_type: u16, channel: u16, payload: Bytes) -> Message {
    if message_type == MessageType::AudioFrame.to_raw() {
        Message::AudioFrame { channel, payload }
    } else {
        Message::Unknown {
            message_type,
            channel,
            payload,
        }
    }
}

/// The type and payload of a message a node passes through; `None` for
/// the messages it interprets.
pub(crate) fn passable(msg: &Message) -> Option<(u16, &Bytes)> {
    match msg {
        Message::AudioFrame { payload, .. } => Some((MessageType::AudioFrame.to_raw(), payload)),
        Message::Unknown {
            message_type, payload, ..
        } => Some((*message_type, payload)),
        _ => None,
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    messages: u64,
    bytes: u64,
    dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    by_type: BTreeMap<(String, u16), Count>,
    /// Whether the bound was reported.
    warned: bool,
}

/// The per-stream, per-type counters of GET_STATS's `pass_through` list.
#[derive(Debug, Default)]
pub(crate) struct PassedCounts {
    counts: Mutex<Counters>,
}

impl PassedCounts {
    /// One message of `message_type` and `len` payload bytes arrived on
    /// `stream`; `dropped` copies of it did not fit a subscriber's queue.
    pub(crate) fn count(&self, stream: &str, message_type: u16, len: usize, dropped: u64) {
        let mut g = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Counters { by_type: map, warned } = &mut *g;
        let key = (stream.to_owned(), message_type);
        if !map.contains_key(&key) && map.len() >= MAX_COUNTERS {
            if !*warned {
                *warned = true;
                warn!(
                    stream,
                    message_type, "too many message types passed through to count each"
                );
            }
            return;
        }
        let c = map.entry(key).or_default();
        c.messages += 1;
        c.bytes += len as u64;
        c.dropped += dropped;
    }

    /// The counters of every stream, or of `only` when not empty.
    pub(crate) fn stats(&self, only: &str) -> Vec<PassThroughStats> {
        let g = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.by_type
            .iter()
            .filter(|((s, _), _)| only.is_empty() || s == only)
            .map(|((stream, message_type), c)| PassThroughStats {
                stream: stream.clone(),
                message_type: *message_type,
                messages: c.messages,
                bytes: c.bytes,
                dropped: c.dropped,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_stream_and_type_within_a_bound() {
        let p = PassedCounts::default();
        p.count("cam", 6, 100, 0);
        p.count("cam", 6, 50, 1);
        p.count("cam", 0x0109, 7, 0);
        p.count("other", 6, 1, 0);
        let s = p.stats("cam");
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].message_type, s[0].messages, s[0].bytes, s[0].dropped),
            (6, 2, 150, 1)
        );
        assert_eq!((s[1].message_type, s[1].messages), (0x0109, 1));
        assert_eq!(p.stats("").len(), 3);
        for t in 0..1000u16 {
            p.count("flood", 0x1000 + t, 1, 0);
        }
        assert_eq!(p.stats("").len(), MAX_COUNTERS);
    }

    #[test]
    fn audio_stays_audio_and_unknown_types_keep_their_code() {
        let payload = Bytes::from_static(b"pcm");
        let m = on_channel(6, 3, payload.clone());
        assert_eq!(
            m,
            Message::AudioFrame {
                channel: 3,
                payload: payload.clone()
            }
        );
        assert_eq!(passable(&m), Some((6, &payload)));
        let u = on_channel(0x0109, 4, payload.clone());
        assert_eq!(passable(&u), Some((0x0109, &payload)));
        assert_eq!(u.channel(), 4);
    }
}
