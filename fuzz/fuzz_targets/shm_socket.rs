//! The shared-memory socket with another process's bytes on it, from both
//! ends. A consumer fed any packets (greetings, buffers with real sealed
//! memfds of any size and any announced size, frames pointing anywhere,
//! ends, garbage) either yields frames whose every byte can be read (no
//! SIGBUS, planes inside the frame) or stops with an error; it never
//! panics. A producer whose consumer sends anything (releases of buffers it
//! never had, twice, stale generations, garbage) drops that consumer or
//! carries on, keeps its pool within bounds, and never panics.
#![no_main]

use std::os::fd::AsRawFd;
use std::time::Duration;

use framewire_shm::mem::MemBuf;
use framewire_shm::sock::{self, Recv};
use framewire_shm::wire::{MAX_MESSAGE, Msg};
use framewire_shm::{Consumer, Event, FrameMeta, Plane, Producer, ProducerConfig};
use libfuzzer_sys::fuzz_target;

include!("input_common.rs");

fn meta(b: &mut Input) -> FrameMeta {
    let planes = (0..b.u8() % 6)
        .map(|_| Plane {
            offset: u32::from(b.u16()),
            pitch: u32::from(b.u8()),
        })
        .collect();
    FrameMeta {
        sequence: u64::from(b.u16()),
        timestamp_ns: 0,
        flags: u32::from(b.u8()),
        planes,
    }
}

/// Packets a hostile producer sends, then what the consumer makes of them.
fn consumer_side(b: &mut Input) {
    let (ours, theirs) = sock::pair().expect("socketpair");
    let hello = if b.u8() % 4 == 0 {
        let n = usize::from(b.u8()) % (MAX_MESSAGE + 8);
        b.bytes(n)
    } else {
        Msg::Hello {
            consumer: u16::from(b.u8()),
            max_held: u16::from(b.u8() % 5),
        }
        .encode()
    };
    if sock::send(ours.as_raw_fd(), &hello, &[], true).is_err() {
        return;
    }
    // Buffers are kept alive until the consumer is done with them.
    let mut bufs = Vec::new();
    for _ in 0..48 {
        if b.0.is_empty() {
            break;
        }
        let (packet, fd) = match b.u8() % 6 {
            0 => {
                let n = usize::from(b.u8()) % (MAX_MESSAGE + 8);
                (b.bytes(n), None)
            }
            1 | 2 => {
                let size = usize::from(b.u16()) % 20_000;
                let announced = if b.u8() % 4 == 0 {
                    u64::from(b.u16())
                } else {
                    size as u64
                };
                let Ok(buf) = MemBuf::create("fuzz", size.max(1)) else {
                    continue;
                };
                let msg = Msg::Buffer {
                    index: u16::from(b.u8() % 8),
                    generation: u32::from(b.u8() % 3),
                    size: announced,
                };
                bufs.push(buf);
                (msg.encode(), bufs.last().map(|m: &MemBuf| m.fd.as_raw_fd()))
            }
            3 | 4 => {
                let msg = Msg::Frame {
                    index: u16::from(b.u8() % 8),
                    generation: u32::from(b.u8() % 3),
                    len: u64::from(b.u16()),
                    lost: u64::from(b.u8()),
                    meta: meta(b),
                };
                (msg.encode(), None)
            }
            _ => (Msg::End.encode(), None),
        };
        let fds: Vec<_> = fd.into_iter().collect();
        if sock::send(ours.as_raw_fd(), &packet, &fds, true).is_err() {
            break;
        }
    }
    // Some producers crash, some stay.
    let ours = (b.u8() % 2 == 0).then_some(ours);
    let Ok(mut consumer) = Consumer::on_socket(theirs) else {
        return;
    };
    let mut held = Vec::new();
    for _ in 0..64 {
        match consumer.recv(Some(Duration::ZERO)) {
            Ok(Event::Frame(f)) => {
                // Every byte of a frame is readable.
                let sum: u64 = f.data.iter().map(|&x| u64::from(x)).sum();
                std::hint::black_box(sum);
                assert!(f.meta.planes.iter().all(|p| p.offset as usize <= f.data.len()));
                if b.u8() % 2 == 0 {
                    held.push(f);
                }
            }
            Ok(Event::End | Event::Timeout) | Err(_) => break,
        }
    }
    drop(held);
    drop(ours);
}

/// A producer publishing while a hostile consumer sends what it likes.
fn producer_side(b: &mut Input) {
    let mut producer = Producer::unbound(ProducerConfig {
        max_held: u16::from(b.u8() % 5),
        max_buffers: usize::from(b.u8() % 9),
        max_consumers: usize::from(b.u8() % 3),
    });
    let (ours, theirs) = sock::pair().expect("socketpair");
    let Ok(Some(_slot)) = producer.attach(theirs) else {
        return;
    };
    // What the consumer end received: (index, generation) of frames.
    let mut got: Vec<(u16, u32)> = Vec::new();
    for _ in 0..96 {
        if b.0.is_empty() {
            break;
        }
        match b.u8() % 5 {
            0 => {
                let len = usize::from(b.u16()) % 30_000;
                let m = meta(b);
                let _ = producer.publish(&m, &vec![7u8; len]);
            }
            1 => {
                // A release, right or wrong.
                let (index, generation) = match (got.is_empty(), b.u8() % 3) {
                    (false, 0) => got.remove(usize::from(b.u8()) % got.len()),
                    (false, 1) => got[usize::from(b.u8()) % got.len()],
                    _ => (u16::from(b.u8() % 10), u32::from(b.u8() % 3)),
                };
                let _ = sock::send(
                    ours.as_raw_fd(),
                    &Msg::Release { index, generation }.encode(),
                    &[],
                    true,
                );
            }
            2 => {
                let n = usize::from(b.u8()) % (MAX_MESSAGE + 8);
                let _ = sock::send(ours.as_raw_fd(), &b.bytes(n), &[], true);
            }
            3 => {
                while let Ok(Recv::Packet(p, _fds)) = sock::recv(ours.as_raw_fd(), Some(Duration::ZERO)) {
                    if let Ok(Msg::Frame { index, generation, .. }) = Msg::decode(&p) {
                        got.push((index, generation));
                    }
                }
            }
            _ => {
                let _ = producer.service();
            }
        }
        let stats = producer.stats();
        assert!(producer.held_buffers() <= stats.buffers);
        assert!(stats.buffers <= 8.max(1));
        assert!(producer.consumers() <= 1);
    }
    // The consumer goes; the producer ends without waiting for it.
    drop(ours);
    producer.end_within(Duration::from_millis(50));
}

fuzz_target!(|data: &[u8]| {
    let mut b = Input(data);
    if b.u8() % 2 == 0 {
        consumer_side(&mut b);
    } else {
        producer_side(&mut b);
    }
});
