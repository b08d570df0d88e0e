//! The relay engine: framewire's data plane, without I/O.
//!
//! A [`Relay`] takes complete frames from its *inputs* and offers each one
//! to every *output* the input feeds. An output is one subscription: it has
//! a delivery mode, hard budgets, a drop policy and a scheduler, and it
//! hands frames to its transport one at a time. The engine opens no sockets,
//! starts no threads and never reads a clock: every call that needs the time
//! takes `now`, and the caller moves the bytes.
//!
//! # The run loop
//!
//! A driver does three things, and nothing else:
//!
//! 1. **Feed input.** For each frame read from an upstream, call
//!    [`Relay::push`] (or [`begin_frame`](Relay::begin_frame) /
//!    [`append`](Relay::append) / [`finish`](Relay::finish) for a frame that
//!    arrives in pieces). `push` returns the outputs that just went from
//!    "nothing to do" to "a frame is ready": wake exactly those writers.
//! 2. **Drain output.** A writer whose socket is writable calls
//!    [`Relay::poll_transmit`]. `None` means "wait until woken". `Some`
//!    hands over one [`Transmit`]: the frame is now *in flight*.
//! 3. **Report sent.** When the whole frame is written, the writer calls
//!    [`Relay::sent`], which records the send latency, releases the frame
//!    and says whether another one is ready. Then back to 2.
//!
//! When an upstream goes away mid-frame, call [`Relay::abandon`] (or
//! [`Relay::remove_input`]). When a subscriber goes away, call
//! [`Relay::remove_output`]. [`Relay::snapshot`] reads every counter.
//!
//! Nothing in the engine waits or has a deadline of its own: source
//! suppression measures drop rates over time, but it does so when frames
//! arrive, so there is no timer to drive.
//!
//! ## Behind a mutex
//!
//! Every call is short: `push` is O(outputs of that input × their inputs),
//! `poll_transmit` and `sent` are O(inputs of that output), and none
//! allocates in the steady state. A node can therefore share one `Relay`
//! between a reader task and one writer task per subscriber through a
//! `std::sync::Mutex`, never holding the lock across an `.await`:
//!
//! ```text
//! reader:  let woken = relay.lock().push(input, frame, now)?;  // notify each woken writer
//! writer:  loop {
//!            let t = relay.lock().poll_transmit(output, now);   // lock released here
//!            match t { None => notified().await, Some(t) => { write_all(t).await?;
//!                      relay.lock().sent(output, Instant::now())?; } }
//!          }
//! ```
//!
//! Use a wake-up that keeps a permit when nobody is waiting yet (such as
//! `tokio::sync::Notify::notify_one`): a push can land between a writer's
//! `None` and its `.await`.
//!
//! # Invariants
//!
//! - **One allocation per frame.** A frame's payload is a [`bytes::Bytes`];
//!   every output that holds it holds a clone of the same buffer, and the
//!   [`Transmit`] hands out that buffer again. No payload is ever copied
//!   (except the pieces of a partial frame, copied once into its buffer).
//! - **Budgets are hard and per output.** `max_frames` and `max_bytes`
//!   bound everything an output holds, its queue *and* its frame in flight.
//!   A frame longer than the whole byte budget is dropped (`Oversize`); it
//!   never wedges the queue. Only a shrinking [`Relay::set_budget`] can
//!   leave an output over budget, and only by its in-flight frame, until
//!   that frame is sent.
//! - **The input never blocks.** `push` never waits and never fails because
//!   an output is slow: the output drops and counts.
//! - **In flight is final.** A frame handed out by `poll_transmit` is never
//!   cut, replaced or dropped. An output has at most one frame in flight.
//! - **Order.** On each output, the frames of one input leave in the order
//!   they were pushed, each at most once.
//! - **Accounting balances.** For every output, `frames_in = frames_sent +
//!   drops + held`, and everything held returns to zero once drained.
//! - **Keyframes.** On an inter-coded input ([`InputConfig::inter_coded`]),
//!   an output that loses a frame (any drop, or an abandoned partial frame)
//!   drops the frames that depended on it and sends nothing more of that
//!   input until its next keyframe (`WaitingKeyframe` drops). The first
//!   frame after any loss carries [`FrameFlags::DISCONTINUITY`](framewire_proto::FrameFlags)
//!   and the number lost in [`Transmit::lost`]. A new output of an
//!   inter-coded input starts at a keyframe, since a decoder cannot start
//!   anywhere else: the input's cached group of pictures
//!   ([`RelayConfig::gop_cache_bytes`]) at once, or else its next keyframe.
//!
//! # Delivery modes
//!
//! - *Low-latency*: one slot per input. A newer frame replaces the unsent
//!   one (`Replaced`); the frame budget is structural (one per input plus
//!   the one in flight, and while a new output catches up on a cached
//!   group of pictures, the frames it holds beyond its one), the byte
//!   budget applies as configured.
//! - *Completeness*: a queue bounded by both budgets. At a limit,
//!   drop-oldest gives up queued frames (the scheduler's
//!   [`victim`](Scheduler::victim)), drop-newest gives up the arriving one.
//! - *Opaque* (a transport mode, with either delivery mode): the transport
//!   writes payload bytes only, so the consumer sees no boundaries and no
//!   drop signal. The engine still works in whole frames, and since a
//!   started frame cannot be cut, congestion only ever removes frames that
//!   were not started: the byte stream is always a sequence of whole frames
//!   of one input, in order. An opaque output has exactly one input.
//!
//! # Schedulers
//!
//! When several inputs feed one output, its [`Scheduler`] picks whose frame
//! goes next: [`StrictPriority`], [`RoundRobin`], [`WeightedRoundRobin`],
//! [`DeficitRoundRobin`] (byte-fair) or [`SourceSuppression`], chosen by
//! [`SchedulerKind`]. The [`sched`] module states the contract.
//!
//! # Links
//!
//! When several outputs leave over one path, a [`Link`] decides which of
//! them sends next, with the same schedulers over [`LaneView`]s of its
//! members, and caps the path's rate with a token bucket if asked. It holds
//! no frames: what waits stays in the outputs, under their budgets. The
//! [`link`] module has the details.
//!
//! # Errors and panics
//!
//! Calls on unknown handles or out of order (a `sent` with nothing in
//! flight, a `push` during a partial frame) return [`RelayError`]. Nothing
//! a peer sends can make the engine panic.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! use bytes::Bytes;
//! use framewire_proto::control::DropReason;
//! use framewire_proto::FrameFlags;
//! use framewire_relay::{Frame, InputConfig, LaneConfig, OutputConfig, Relay, RelayConfig};
//!
//! let mut relay = Relay::new(RelayConfig::default());
//! let camera = relay.add_input(InputConfig { inter_coded: false });
//! let preview = relay.add_output(OutputConfig::low_latency(), &[LaneConfig::new(camera)])?;
//! let archive = relay.add_output(OutputConfig::completeness(8, 1 << 20), &[LaneConfig::new(camera)])?;
//!
//! let t0 = Instant::now(); // the driver's clock; the engine never reads one
//! let frame = |seq: u64| Frame {
//!     data: Bytes::from(vec![seq as u8; 1000]),
//!     sequence: seq,
//!     timestamp_ns: 0,
//!     flags: FrameFlags::KEYFRAME,
//! };
//!
//! // Feed input: both outputs were idle, so both writers are woken.
//! let woken = relay.push(camera, frame(1), t0)?;
//! assert_eq!(woken, &[preview, archive][..]);
//!
//! // Drain output: the preview writer takes frame 1 (now in flight)...
//! let t = relay.poll_transmit(preview, t0).expect("a frame is ready");
//! assert_eq!(t.frame.sequence, 1);
//! // ...while two more frames arrive. The preview slot keeps the newest.
//! relay.push(camera, frame(2), t0)?;
//! relay.push(camera, frame(3), t0)?;
//!
//! // Report sent, and go round again.
//! let more = relay.sent(preview, t0 + Duration::from_millis(4))?;
//! assert!(more);
//! assert_eq!(relay.poll_transmit(preview, t0).map(|t| t.frame.sequence), Some(3));
//! relay.sent(preview, t0 + Duration::from_millis(5))?;
//!
//! // The archive keeps everything, in order.
//! let mut archived = Vec::new();
//! while let Some(t) = relay.poll_transmit(archive, t0) {
//!     archived.push(t.frame.sequence);
//!     relay.sent(archive, t0)?;
//! }
//! assert_eq!(archived, [1, 2, 3]);
//!
//! let stats = relay.snapshot(t0);
//! let p = &stats.outputs[0];
//! assert_eq!((p.frames_in, p.frames_sent, p.drops.get(DropReason::Replaced)), (3, 2, 1));
//! assert_eq!(p.latency.max, Duration::from_millis(5));
//! assert_eq!(stats.held_bytes(), 0);
//! # Ok::<(), framewire_relay::RelayError>(())
//! ```

#![forbid(unsafe_code)]

mod config;
mod error;
mod frame;
mod id;
mod lane;
pub mod link;
mod output;
mod relay;
pub mod sched;
mod stats;

pub use config::{
    Budget, DEFAULT_DRR_QUANTUM, DEFAULT_GOP_CACHE_BYTES, DEFAULT_MAX_BYTES, DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_FRAMES, DEFAULT_PRIORITY, InputConfig, LaneConfig, OutputConfig, RelayConfig, SchedulerKind,
    SuppressionConfig,
};
pub use error::RelayError;
pub use frame::{Frame, FrameMeta, Transmit};
pub use id::{InputId, OutputId};
pub use lane::Lane;
pub use link::{Link, LinkConfig, LinkPoll, MemberId, MemberSnapshot, Offer};
pub use relay::Relay;
pub use sched::{
    DeficitRoundRobin, LaneView, RoundRobin, Scheduler, SourceSuppression, StrictPriority, WeightedRoundRobin,
};
pub use stats::{
    DropCounts, InputLabels, InputSnapshot, LaneSnapshot, LatencyHistogram, LatencySummary, OutputLabels,
    OutputSnapshot, Snapshot,
};
