//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_proto::FrameFlags;
use framewire_relay::{Frame, InputId, OutputId, Relay, Transmit};

/// A frame of `len` bytes whose content names its sequence.
pub fn frame(seq: u64, len: usize, key: bool) -> Frame {
    Frame {
        data: Bytes::from(vec![(seq % 251) as u8; len]),
        sequence: seq,
        timestamp_ns: 1_700_000_000_000_000_000 + seq,
        flags: if key { FrameFlags::KEYFRAME } else { FrameFlags(0) },
    }
}

pub fn ms(t0: Instant, n: u64) -> Instant {
    t0 + Duration::from_millis(n)
}

/// Polls and finishes frames until the output has nothing left; returns
/// every transmit in order.
pub fn drain(relay: &mut Relay, out: OutputId, now: Instant) -> Vec<Transmit> {
    let mut got = Vec::new();
    while let Some(t) = relay.poll_transmit(out, now) {
        relay.sent(out, now).expect("a frame is in flight");
        got.push(t);
    }
    got
}

/// (input, sequence) of each transmit.
pub fn order(ts: &[Transmit]) -> Vec<(InputId, u64)> {
    ts.iter().map(|t| (t.input, t.frame.sequence)).collect()
}

pub fn seqs(ts: &[Transmit]) -> Vec<u64> {
    ts.iter().map(|t| t.frame.sequence).collect()
}
