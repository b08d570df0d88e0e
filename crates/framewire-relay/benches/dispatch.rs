//! Dispatch cost: one frame pushed into an input that feeds N outputs, then
//! drained from every output (`poll_transmit` + `sent`). Divide the time
//! per iteration by N for the cost per output per frame.

use std::time::{Duration, Instant};

use bytes::Bytes;
use divan::Bencher;
use framewire_proto::FrameFlags;
use framewire_relay::{Frame, InputConfig, InputId, LaneConfig, OutputConfig, OutputId, Relay};

fn main() {
    divan::main();
}

const FANOUT: &[usize] = &[1, 4, 16, 64];

fn setup(n: usize, config: OutputConfig) -> (Relay, InputId, Vec<OutputId>) {
    let mut relay = Relay::default();
    let input = relay.add_input(InputConfig { inter_coded: true });
    let outputs = (0..n)
        .map(|_| relay.add_output(config, &[LaneConfig::new(input)]))
        .collect::<Result<Vec<_>, _>>()
        .expect("valid output config");
    (relay, input, outputs)
}

fn run(bencher: Bencher<'_, '_>, n: usize, config: OutputConfig) {
    let (mut relay, input, outputs) = setup(n, config);
    let payload = Bytes::from(vec![0u8; 64 * 1024]);
    let t0 = Instant::now();
    let mut seq = 0u64;
    bencher.counter(divan::counter::ItemsCount::new(n)).bench_local(|| {
        seq += 1;
        let now = t0 + Duration::from_micros(seq);
        let frame = Frame {
            data: payload.clone(),
            sequence: seq,
            timestamp_ns: seq,
            flags: if seq % 30 == 1 {
                FrameFlags::KEYFRAME
            } else {
                FrameFlags(0)
            },
        };
        let woken = relay.push(input, frame, now).expect("input exists").len();
        divan::black_box(woken);
        for &o in &outputs {
            let t = relay.poll_transmit(o, now);
            divan::black_box(&t);
            if t.is_some() {
                relay.sent(o, now).expect("frame in flight");
            }
        }
    });
}

/// Low-latency outputs (single slot), each frame sent before the next.
#[divan::bench(args = FANOUT)]
fn low_latency(bencher: Bencher<'_, '_>, n: usize) {
    run(bencher, n, OutputConfig::low_latency());
}

/// Completeness outputs (bounded queue), each frame sent before the next.
#[divan::bench(args = FANOUT)]
fn completeness(bencher: Bencher<'_, '_>, n: usize) {
    run(bencher, n, OutputConfig::completeness(64, 16 << 20));
}

/// Completeness outputs kept full and never drained: every push drops the
/// oldest queued frame of every output (the congested case). Push only.
#[divan::bench(args = FANOUT)]
fn push_congested(bencher: Bencher<'_, '_>, n: usize) {
    let (mut relay, input, _outputs) = setup(n, OutputConfig::completeness(8, 16 << 20));
    let payload = Bytes::from(vec![0u8; 64 * 1024]);
    let t0 = Instant::now();
    let mut seq = 0u64;
    bencher.counter(divan::counter::ItemsCount::new(n)).bench_local(|| {
        seq += 1;
        let f = Frame {
            data: payload.clone(),
            sequence: seq,
            timestamp_ns: seq,
            // Every frame a keyframe, so each push drops exactly one.
            flags: FrameFlags::KEYFRAME,
        };
        let now = t0 + Duration::from_micros(seq);
        divan::black_box(relay.push(input, f, now).expect("input exists").len());
    });
}
