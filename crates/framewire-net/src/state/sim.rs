//! Several nodes' states joined by simulated links, on a made-up clock: a
//! harness for what happens *between* nodes, deterministic and fast (a
//! minute of a chain's life takes milliseconds, and a seed repeats it
//! exactly). Tests assert on what happened and when, in simulated time,
//! never on a wall-clock sleep.
//!
//! What it stands in for, and how:
//! - a **writer** (transport/writer.rs) takes its output's next frame
//!   when the one before is written, writes it into the socket when the
//!   send buffer has room for it, and reports it sent then;
//! - a **link** drains its send buffer at its rate while it is up, and
//!   delivers each frame after its delay (plus jitter, never reordering:
//!   TCP); it stops draining while the receiver's window is full;
//! - a **pulled edge** (transport/edge.rs) pushes what arrives into its
//!   node's stream, and every `check_every` asks its [`Liveness`] what
//!   a silence means: a ping is answered a round trip later by a running
//!   upstream; a stall drops the connection and subscribes again;
//! - a **stopped node** (SIGSTOP) takes nothing from its links, writes
//!   nothing, answers nothing, and captures nothing;
//! - a **watcher** drains an output of the last node as fast as it comes.
//!
//! The relay engine, the registry and the liveness judge are the real
//! ones ([`NodeState`], [`Liveness`]); only the I/O around them is made up.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_proto::control::StreamState;
use framewire_proto::{Features, Format, FrameFlags, FunctionFlags, Origin, PixelFormat, StreamOpen, SubscribeParams};
use framewire_relay::{Frame, OutputId, RelayConfig, Transmit};

use super::liveness::{Check, Liveness, stall_window};
use super::{Identity, NodeState, OutputInfo};
use crate::config::Limits;

/// One simulated step.
pub(crate) const TICK: Duration = Duration::from_millis(1);
/// How long a pulled edge waits before it subscribes again after a stall
/// (its first backoff).
const RETRY_AFTER: Duration = Duration::from_millis(250);
/// A receiver's TCP window and a sender's socket buffer, bytes.
const WINDOW_BYTES: usize = 256 << 10;
/// The wall clock the simulation starts at (capture times, frame ages).
const WALL_START_NS: u64 = 1_800_000_000_000_000_000;

/// A node in the simulation.
pub(crate) struct SimNode {
    pub(crate) state: NodeState,
    /// Stopped (SIGSTOP): does nothing until continued.
    pub(crate) stopped: bool,
}

/// A camera: a source pushing frames into its node's stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Camera {
    pub(crate) fps: u32,
    /// Frames per group of pictures (1: every frame a keyframe).
    pub(crate) gop: u64,
    pub(crate) bytes: usize,
    pub(crate) format: Format,
}

/// The link under a pulled edge, upstream to downstream.
#[derive(Debug)]
pub(crate) struct Link {
    /// Bytes per second.
    pub(crate) rate: u64,
    pub(crate) delay: Duration,
    /// Up to this much more, per frame.
    pub(crate) jitter: Duration,
    /// Down: nothing crosses (the connection holds, as TCP's does).
    pub(crate) up: bool,
    writing: Option<Transmit>,
    sndbuf: VecDeque<(Frame, usize)>,
    sndbuf_bytes: usize,
    /// Bytes allowed to leave, carried between ticks.
    credit: f64,
    flight: VecDeque<(Instant, Frame)>,
    flight_bytes: usize,
    last_arrival: Option<Instant>,
}

impl Link {
    pub(crate) fn new(mbit: f64, delay: Duration, jitter: Duration) -> Link {
        Link {
            rate: (mbit * 1e6 / 8.0) as u64,
            delay,
            jitter,
            up: true,
            writing: None,
            sndbuf: VecDeque::new(),
            sndbuf_bytes: 0,
            credit: 0.0,
            flight: VecDeque::new(),
            flight_bytes: 0,
            last_arrival: None,
        }
    }

    fn clear(&mut self) {
        self.writing = None;
        self.sndbuf.clear();
        self.sndbuf_bytes = 0;
        self.flight.clear();
        self.flight_bytes = 0;
        self.credit = 0.0;
    }
}

/// A pulled edge: `stream` of `up` pulled into `down` over `link`.
pub(crate) struct Hop {
    pub(crate) up: usize,
    pub(crate) down: usize,
    pub(crate) stream: String,
    pub(crate) params: SubscribeParams,
    pub(crate) link: Link,
    /// The upstream's output for this edge (none while reconnecting).
    pub(crate) output: Option<OutputId>,
    liveness: Liveness,
    next_check: Instant,
    /// A ping's answer, due at.
    answer_at: Option<Instant>,
    ping_pending: bool,
    /// After a stall: when the edge tries again (its backoff).
    retry_at: Option<Instant>,
    /// The next frame is a session's first (the edge marks it).
    first: bool,
}

/// What happened, when (simulated time since the start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SimEvent {
    /// A hop's edge asked its upstream for a sign of life.
    Ping { hop: usize, at: Duration },
    /// A hop's edge judged its upstream stalled after `silent`.
    Stalled { hop: usize, at: Duration, silent: Duration },
    /// A hop subscribed again after a stall (and its backoff).
    Resubscribed { hop: usize, at: Duration },
}

/// A watcher of an output of a node: what arrived, in order.
pub(crate) struct Watcher {
    pub(crate) node: usize,
    pub(crate) output: OutputId,
    /// (sequence, arrival time since the start).
    pub(crate) seen: Vec<(u64, Duration)>,
}

struct Source {
    node: usize,
    stream: String,
    camera: Camera,
    next_at: Instant,
    sequence: u64,
    stopped: bool,
}

/// The simulation.
pub(crate) struct Sim {
    start: Instant,
    now: Instant,
    rng: u64,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) hops: Vec<Hop>,
    pub(crate) watchers: Vec<Watcher>,
    sources: Vec<Source>,
    pub(crate) events: Vec<SimEvent>,
}

impl Sim {
    pub(crate) fn new(seed: u64) -> Sim {
        let start = Instant::now();
        Sim {
            start,
            now: start,
            rng: seed,
            nodes: Vec::new(),
            hops: Vec::new(),
            watchers: Vec::new(),
            sources: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Simulated time since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn wall_ns(&self) -> u64 {
        WALL_START_NS + self.elapsed().as_nanos() as u64
    }

    fn random(&mut self, n: u64) -> u64 {
        let r = splitmix(&mut self.rng);
        if n == 0 { 0 } else { r % n }
    }

    /// Adds a node; its index.
    pub(crate) fn node(&mut self, name: &str) -> usize {
        let identity = Identity {
            name: name.into(),
            site_id: 0,
            function_flags: FunctionFlags::RELAY,
            features: Features(0),
            tcp_port: 7400,
            pid: 1,
            hostname: "sim".into(),
            accept_formats: Vec::new(),
        };
        self.nodes.push(SimNode {
            state: NodeState::new(RelayConfig::default(), Limits::default(), identity),
            stopped: false,
        });
        self.nodes.len() - 1
    }

    /// Adds a camera serving `stream` on `node`.
    pub(crate) fn camera(&mut self, node: usize, stream: &str, camera: Camera) {
        let open = open(stream, &camera);
        self.nodes[node]
            .state
            .add_stream(open, String::new(), StreamState::Live)
            .expect("a new stream");
        self.sources.push(Source {
            node,
            stream: stream.into(),
            camera,
            next_at: self.now,
            sequence: 0,
            stopped: false,
        });
    }

    /// Pulls `stream` of `up` into `down` over `link`; the hop's index.
    pub(crate) fn pull(&mut self, up: usize, down: usize, stream: &str, link: Link, params: SubscribeParams) -> usize {
        let open = self.nodes[up]
            .state
            .stream(stream)
            .expect("an upstream stream")
            .open
            .clone();
        let upstream = format!("sim-{up}/{stream}");
        self.nodes[down]
            .state
            .add_stream(open.clone(), upstream, StreamState::Live)
            .expect("a new stream downstream");
        let mut liveness = Liveness::new(self.now);
        liveness.live(stall_window(&open));
        self.hops.push(Hop {
            up,
            down,
            stream: stream.into(),
            params,
            link,
            output: None,
            next_check: self.now + liveness.check_every(),
            liveness,
            answer_at: None,
            ping_pending: false,
            retry_at: None,
            first: true,
        });
        let hop = self.hops.len() - 1;
        self.subscribe(hop);
        hop
    }

    fn subscribe(&mut self, hop: usize) {
        let h = &self.hops[hop];
        let info = OutputInfo {
            stream: h.stream.clone(),
            channel: 1,
            peer: format!("sim-{}", h.down),
            events: true,
            params: h.params,
            formats_told: 0,
        };
        let (id, _) = self.nodes[h.up]
            .state
            .add_output(&h.stream, &h.params, info)
            .expect("an output");
        self.hops[hop].output = Some(id);
    }

    /// Watches `stream` on `node` (a local subscriber); the watcher's index.
    pub(crate) fn watch(&mut self, node: usize, stream: &str) -> usize {
        let info = OutputInfo {
            stream: stream.into(),
            channel: 0,
            peer: "sim-watcher".into(),
            events: false,
            params: SubscribeParams::default(),
            formats_told: 0,
        };
        let (output, _) = self.nodes[node]
            .state
            .add_output(stream, &SubscribeParams::default(), info)
            .expect("an output");
        self.watchers.push(Watcher {
            node,
            output,
            seen: Vec::new(),
        });
        self.watchers.len() - 1
    }

    /// Stops the cameras (the rest runs on, to drain what is queued).
    pub(crate) fn stop_cameras(&mut self) {
        for s in &mut self.sources {
            s.stopped = true;
        }
    }

    /// Frames the cameras captured so far.
    pub(crate) fn captured(&self) -> u64 {
        self.sources.iter().map(|s| s.sequence).sum()
    }

    /// Drops counted by `node`'s output `id`, every reason.
    pub(crate) fn drops(&self, node: usize, id: OutputId) -> u64 {
        self.nodes[node]
            .state
            .output_snapshot(id, self.now)
            .map_or(0, |s| s.drops.total())
    }

    /// Runs for `d` of simulated time.
    pub(crate) fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
            self.now += TICK;
        }
    }

    fn step(&mut self) {
        self.capture();
        for h in 0..self.hops.len() {
            self.write(h);
            self.drain(h);
            self.deliver(h);
            self.judge(h);
        }
        for w in 0..self.watchers.len() {
            let (node, output) = (self.watchers[w].node, self.watchers[w].output);
            if self.nodes[node].stopped {
                continue;
            }
            let state = &mut self.nodes[node].state;
            while let Some(tx) = state.poll_transmit(output, self.now) {
                state.sent(output, self.now);
                let at = self.now - self.start;
                self.watchers[w].seen.push((tx.frame.sequence, at));
            }
        }
    }

    fn capture(&mut self) {
        let (now, wall) = (self.now, self.wall_ns());
        for s in &mut self.sources {
            if s.stopped || self.nodes[s.node].stopped {
                continue;
            }
            while s.next_at <= now {
                let keyframe = s.sequence % s.camera.gop.max(1) == 0;
                let frame = Frame {
                    data: Bytes::from(vec![s.sequence as u8; s.camera.bytes]),
                    sequence: s.sequence,
                    timestamp_ns: wall,
                    flags: if keyframe { FrameFlags::KEYFRAME } else { FrameFlags(0) },
                };
                self.nodes[s.node]
                    .state
                    .push(&s.stream, frame, now, wall)
                    .expect("a frame the relay takes");
                s.sequence += 1;
                s.next_at += Duration::from_secs(1) / s.camera.fps;
            }
        }
    }

    /// The upstream's writer: one frame at a time, into the send buffer.
    fn write(&mut self, hop: usize) {
        let now = self.now;
        let h = &mut self.hops[hop];
        let (Some(output), false) = (h.output, self.nodes[h.up].stopped) else {
            return;
        };
        let state = &mut self.nodes[h.up].state;
        loop {
            if h.link.writing.is_none() {
                h.link.writing = state.poll_transmit(output, now);
            }
            let Some(tx) = &h.link.writing else {
                return;
            };
            let len = tx.frame.data.len();
            if h.link.sndbuf_bytes > 0 && h.link.sndbuf_bytes + len > WINDOW_BYTES {
                return;
            }
            let tx = h.link.writing.take().expect("a frame being written");
            h.link.sndbuf_bytes += len;
            h.link.sndbuf.push_back((tx.frame, len));
            state.sent(output, now);
        }
    }

    /// The link: the send buffer drains at its rate into the wire.
    fn drain(&mut self, hop: usize) {
        let now = self.now;
        let jitter = self.hops[hop].link.jitter.as_micros() as u64;
        let extra = Duration::from_micros(self.random(jitter + 1));
        let l = &mut self.hops[hop].link;
        if !l.up {
            l.credit = 0.0;
            return;
        }
        l.credit += l.rate as f64 * TICK.as_secs_f64();
        while let Some((_, left)) = l.sndbuf.front_mut() {
            if l.flight_bytes >= WINDOW_BYTES || l.credit < 1.0 {
                break;
            }
            let n = (*left).min(l.credit as usize);
            *left -= n;
            l.credit -= n as f64;
            if *left > 0 {
                break;
            }
            let (frame, _) = l.sndbuf.pop_front().expect("the front");
            let len = frame.data.len();
            l.sndbuf_bytes -= len;
            l.flight_bytes += len;
            let at = (now + l.delay + extra).max(l.last_arrival.unwrap_or(now));
            l.last_arrival = Some(at);
            l.flight.push_back((at, frame));
        }
        if l.sndbuf.is_empty() {
            // An idle link saves no credit for a burst.
            l.credit = l.credit.min(l.rate as f64 * TICK.as_secs_f64());
        }
    }

    /// The downstream's edge: what arrived goes into its stream.
    fn deliver(&mut self, hop: usize) {
        let (now, wall) = (self.now, self.wall_ns());
        let h = &mut self.hops[hop];
        if self.nodes[h.down].stopped {
            return;
        }
        while h.link.flight.front().is_some_and(|(at, _)| *at <= now) {
            let (_, mut frame) = h.link.flight.pop_front().expect("the front");
            h.link.flight_bytes -= frame.data.len();
            if std::mem::take(&mut h.first) {
                frame.flags = frame.flags.with(FrameFlags::DISCONTINUITY);
            }
            h.liveness.heard(now);
            self.nodes[h.down]
                .state
                .push(&h.stream, frame, now, wall)
                .expect("a frame the relay takes");
        }
        if h.answer_at.is_some_and(|at| at <= now) {
            h.answer_at = None;
            h.liveness.heard(now);
        }
    }

    /// The edge's liveness check, every `check_every`; a stall drops the
    /// connection (what it held is gone) and subscribes again.
    fn judge(&mut self, hop: usize) {
        let now = self.now;
        let at = self.elapsed();
        let (up, down) = (self.hops[hop].up, self.hops[hop].down);
        // A ping reaches a running upstream, which answers a round trip on.
        if self.hops[hop].ping_pending && !self.nodes[up].stopped && self.hops[hop].link.up {
            let h = &mut self.hops[hop];
            h.ping_pending = false;
            h.answer_at = Some(now + 2 * h.link.delay);
        }
        if self.nodes[down].stopped {
            return;
        }
        if self.hops[hop].retry_at.is_some_and(|t| t <= now) && !self.nodes[up].stopped && self.hops[hop].link.up {
            self.resubscribe(hop);
            return;
        }
        if self.hops[hop].output.is_none() || now < self.hops[hop].next_check {
            return;
        }
        let h = &mut self.hops[hop];
        h.next_check = now + h.liveness.check_every();
        match h.liveness.check(now) {
            Check::Fine => {}
            Check::Ping => {
                h.ping_pending = true;
                self.events.push(SimEvent::Ping { hop, at });
            }
            Check::Stalled(silent) => {
                self.events.push(SimEvent::Stalled { hop, at, silent });
                h.link.clear();
                h.ping_pending = false;
                h.answer_at = None;
                h.retry_at = Some(now + RETRY_AFTER);
                if let Some(id) = h.output.take() {
                    self.nodes[up].state.remove_output(id, now);
                }
            }
        }
    }

    /// A new connection and subscription for a hop whose edge stalled.
    fn resubscribe(&mut self, hop: usize) {
        let (now, at) = (self.now, self.elapsed());
        let up = self.hops[hop].up;
        let open = self.nodes[up]
            .state
            .stream(&self.hops[hop].stream)
            .map(|s| s.open.clone());
        let h = &mut self.hops[hop];
        h.retry_at = None;
        h.first = true;
        h.liveness = Liveness::new(now);
        if let Some(open) = open {
            h.liveness.live(stall_window(&open));
        }
        h.next_check = now + h.liveness.check_every();
        self.subscribe(hop);
        self.events.push(SimEvent::Resubscribed { hop, at });
    }
}

/// The next of a splitmix64 sequence: well mixed from any seed.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The STREAM_OPEN of a camera's stream.
fn open(name: &str, c: &Camera) -> StreamOpen {
    StreamOpen {
        format: c.format,
        pixel_format: PixelFormat::None,
        origin: Origin::LibjpegTurbo,
        width: 1280,
        height: 720,
        fps_num: c.fps,
        fps_den: 1,
        name: name.into(),
        codec_config: Default::default(),
    }
}
