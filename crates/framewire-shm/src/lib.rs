//! Zero-copy frame passing between processes on one host.
//!
//! A [`Producer`] writes each frame once into a buffer from a pool of
//! memfd-backed, sealed (F_SEAL_SHRINK | F_SEAL_GROW) buffers and announces
//! it to up to 16 [`Consumer`]s on a `SOCK_SEQPACKET` Unix socket: a buffer's
//! fd travels once by SCM_RIGHTS, then frames name it by index. A consumer
//! maps buffers read-only and gets each frame as [`bytes::Bytes`] whose drop
//! returns the buffer. The producer never reuses a held buffer and never
//! waits: a consumer that holds its budget is skipped and told, with its
//! next frame, how many it missed. `docs/shm.md` has the message table.
#![cfg(target_os = "linux")]

pub mod consumer;
pub mod mem;
pub mod producer;
pub mod ring;
pub mod sock;
pub mod wire;

pub use consumer::{Consumer, Event, ShmError, ShmFrame};
pub use producer::{ConsumerStats, MAX_CONSUMERS, Producer, ProducerConfig, ProducerStats};
pub use ring::{RingFrame, RingGeometry, RingRead, RingReader, RingWriter};
pub use wire::{FrameMeta, Plane};
