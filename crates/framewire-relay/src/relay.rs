//! The engine: inputs, outputs, and the calls a driver makes.

use std::time::Instant;

use bytes::BytesMut;

use crate::config::{Budget, InputConfig, LaneConfig, OutputConfig, RelayConfig};
use crate::error::RelayError;
use crate::frame::{Frame, FrameMeta, Transmit};
use crate::id::{InputId, OutputId, Slab};
use crate::lane::Lane;
use crate::output::Output;
use crate::stats::{InputSnapshot, OutputSnapshot, Snapshot};

/// A partial frame being assembled.
#[derive(Debug)]
struct Assembly {
    meta: FrameMeta,
    declared: usize,
    buf: BytesMut,
}

#[derive(Debug)]
struct Input {
    config: InputConfig,
    outputs: Vec<OutputId>,
    frames_in: u64,
    bytes_in: u64,
    frames_abandoned: u64,
    assembly: Option<Assembly>,
    /// Inter-coded: the frames since the last keyframe, with their arrival.
    gop: Vec<(Frame, Instant)>,
    gop_bytes: usize,
}

impl Input {
    /// Keeps `frame` in the group of pictures a new output starts with.
    fn cache(&mut self, frame: &Frame, now: Instant, max: usize) {
        let len = frame.data.len();
        if frame.flags.is_keyframe() {
            self.gop.clear();
            self.gop_bytes = 0;
        } else if self.gop.is_empty() {
            return;
        } else if frame.flags.is_discontinuity()
            || self.gop.last().is_some_and(|(f, _)| frame.sequence != f.sequence + 1)
        {
            // Frames of the group never reached this input: what follows
            // cannot be decoded from the cache. Nothing until the next
            // keyframe.
            self.gop.clear();
            self.gop_bytes = 0;
            return;
        }
        if self.gop_bytes + len > max {
            // Too long to keep whole: nothing until the next keyframe.
            self.gop.clear();
            self.gop_bytes = 0;
            return;
        }
        self.gop.push((frame.clone(), now));
        self.gop_bytes += len;
    }
}

/// The sans-IO relay engine. See the [crate docs](crate) for the run loop.
#[derive(Debug)]
pub struct Relay {
    config: RelayConfig,
    inputs: Slab<InputId, Input>,
    outputs: Slab<OutputId, Output>,
    /// Outputs woken by the last push; reused so pushing never allocates
    /// once it has grown to the fan-out.
    woken: Vec<OutputId>,
    /// Frames the outputs dropped as frames were pushed, in all.
    dropped: u64,
}

impl Default for Relay {
    fn default() -> Self {
        Relay::new(RelayConfig::default())
    }
}

impl Relay {
    /// An empty relay.
    pub fn new(config: RelayConfig) -> Self {
        Relay {
            config,
            inputs: Slab::new(),
            outputs: Slab::new(),
            woken: Vec::new(),
            dropped: 0,
        }
    }

    /// Frames the outputs dropped as frames were pushed (budgets, newer
    /// frames replacing older, waiting for a keyframe, …), in all since the
    /// relay was made: a cheap way for a driver to notice that dropping
    /// began, without reading every output's counters.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The relay-wide settings.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Adds an input (a stream frames are pushed into).
    pub fn add_input(&mut self, config: InputConfig) -> InputId {
        self.inputs.insert(Input {
            config,
            outputs: Vec::new(),
            frames_in: 0,
            bytes_in: 0,
            frames_abandoned: 0,
            assembly: None,
            gop: Vec::new(),
            gop_bytes: 0,
        })
    }

    /// Removes an input. A partial frame is abandoned (see [`abandon`](Self::abandon)).
    /// Complete frames already queued on outputs still drain; those lanes
    /// disappear once empty.
    pub fn remove_input(&mut self, input: InputId, now: Instant) -> Result<(), RelayError> {
        self.abandon(input, now)?;
        let inp = self.inputs.remove(input).ok_or(RelayError::UnknownInput(input))?;
        for oid in inp.outputs {
            // Invariant: an input lists only outputs that exist and that
            // have a live lane for it (both sides are updated together).
            if let Some(out) = self.outputs.get_mut(oid)
                && let Some(li) = out.lane_of(input)
            {
                out.detach(li);
            }
        }
        Ok(())
    }

    /// Adds an output fed by `lanes` (at least one input; exactly one for
    /// an opaque output).
    pub fn add_output(&mut self, config: OutputConfig, lanes: &[LaneConfig]) -> Result<OutputId, RelayError> {
        if lanes.is_empty() {
            return Err(RelayError::InvalidConfig("an output needs at least one input"));
        }
        for (i, l) in lanes.iter().enumerate() {
            if self.inputs.get(l.input).is_none() {
                return Err(RelayError::UnknownInput(l.input));
            }
            if lanes[..i].iter().any(|p| p.input == l.input) {
                return Err(RelayError::InvalidConfig("an input listed twice"));
            }
        }
        let mut out = Output::new(config, &self.config)?;
        for l in lanes {
            out.add_lane(self.new_lane(l))?;
        }
        for (li, l) in lanes.iter().enumerate() {
            if let Some(inp) = self.inputs.get(l.input) {
                out.seed(li, &inp.gop);
            }
        }
        let id = self.outputs.insert(out);
        for l in lanes {
            if let Some(inp) = self.inputs.get_mut(l.input) {
                inp.outputs.push(id);
            }
        }
        Ok(id)
    }

    fn new_lane(&self, l: &LaneConfig) -> Lane {
        let inter = self.inputs.get(l.input).is_some_and(|i| i.config.inter_coded);
        Lane::new(l.input, l.priority, l.weight, inter)
    }

    /// Removes an output and releases everything it holds, including a
    /// frame in flight. Returns its final counters.
    pub fn remove_output(&mut self, output: OutputId, now: Instant) -> Result<OutputSnapshot, RelayError> {
        let out = self.outputs.remove(output).ok_or(RelayError::UnknownOutput(output))?;
        for input in out.inputs() {
            if let Some(inp) = self.inputs.get_mut(input) {
                inp.outputs.retain(|o| *o != output);
            }
        }
        Ok(out.snapshot(output, now))
    }

    /// Adds one more input to an existing output. A lane of the same input
    /// detached from this output earlier that still drains stays a lane
    /// of its own: a frame queued there may also come through the new lane
    /// (seeded from the input's group of pictures), so a driver keeps the
    /// two apart (another channel), as it would two subscriptions.
    pub fn attach(&mut self, output: OutputId, lane: LaneConfig) -> Result<(), RelayError> {
        if self.inputs.get(lane.input).is_none() {
            return Err(RelayError::UnknownInput(lane.input));
        }
        let new = self.new_lane(&lane);
        let out = self.outputs.get_mut(output).ok_or(RelayError::UnknownOutput(output))?;
        if out.lane_of(lane.input).is_some() {
            return Err(RelayError::AlreadyAttached {
                input: lane.input,
                output,
            });
        }
        out.add_lane(new)?;
        if let (Some(li), Some(inp)) = (out.lane_of(lane.input), self.inputs.get(lane.input)) {
            out.seed(li, &inp.gop);
        }
        if let Some(inp) = self.inputs.get_mut(lane.input) {
            inp.outputs.push(output);
        }
        Ok(())
    }

    /// Stops feeding `output` from `input`; frames already queued still drain.
    pub fn detach(&mut self, output: OutputId, input: InputId) -> Result<(), RelayError> {
        let out = self.outputs.get_mut(output).ok_or(RelayError::UnknownOutput(output))?;
        let li = out.lane_of(input).ok_or(RelayError::NotAttached { input, output })?;
        out.detach(li);
        if let Some(inp) = self.inputs.get_mut(input) {
            inp.outputs.retain(|o| *o != output);
        }
        Ok(())
    }

    /// Changes an output's budget at run time. Shrinking drops queued
    /// frames (counted as over budget) until the output fits; the frame in
    /// flight is never dropped, so it alone may exceed the new budget until
    /// it is sent.
    pub fn set_budget(&mut self, output: OutputId, budget: Budget, now: Instant) -> Result<(), RelayError> {
        let out = self.outputs.get_mut(output).ok_or(RelayError::UnknownOutput(output))?;
        out.set_budget(budget, &self.config, now);
        Ok(())
    }

    /// Pushes a complete frame into `input` and offers it to every output
    /// the input feeds. O(outputs); never waits; a slow output drops and
    /// counts, it never makes this fail.
    ///
    /// Returns the outputs that went from not ready to ready (a frame queued
    /// and none in flight): exactly those whose writer must be woken. An
    /// output with a frame in flight is never listed; its writer polls
    /// again after `sent`. The slice is reused: no allocation per push.
    pub fn push(&mut self, input: InputId, frame: Frame, now: Instant) -> Result<&[OutputId], RelayError> {
        let inp = self.inputs.get_mut(input).ok_or(RelayError::UnknownInput(input))?;
        if inp.assembly.is_some() {
            return Err(RelayError::AssemblyInProgress(input));
        }
        if frame.data.len() > self.config.max_frame_bytes {
            return Err(RelayError::FrameTooLarge {
                input,
                len: frame.data.len(),
                max: self.config.max_frame_bytes,
            });
        }
        inp.frames_in += 1;
        inp.bytes_in += frame.data.len() as u64;
        if inp.config.inter_coded && self.config.gop_cache_bytes > 0 {
            inp.cache(&frame, now, self.config.gop_cache_bytes);
        }
        self.woken.clear();
        for &oid in &inp.outputs {
            let Some(out) = self.outputs.get_mut(oid) else { continue };
            let Some(li) = out.lane_of(input) else { continue };
            let was_ready = out.ready();
            let before = out.drops_total();
            out.offer(li, &frame, now);
            self.dropped += out.drops_total() - before;
            if !was_ready && out.ready() {
                self.woken.push(oid);
            }
        }
        Ok(&self.woken)
    }

    /// Starts a frame that will arrive in pieces, reserving `declared_len`
    /// bytes. Follow with [`append`](Self::append) calls and one
    /// [`finish`](Self::finish), or [`abandon`](Self::abandon) if the input
    /// goes away first. Outputs see nothing until `finish`.
    pub fn begin_frame(&mut self, input: InputId, meta: FrameMeta, declared_len: usize) -> Result<(), RelayError> {
        let max = self.config.max_frame_bytes;
        let inp = self.inputs.get_mut(input).ok_or(RelayError::UnknownInput(input))?;
        if inp.assembly.is_some() {
            return Err(RelayError::AssemblyInProgress(input));
        }
        if declared_len > max {
            return Err(RelayError::FrameTooLarge {
                input,
                len: declared_len,
                max,
            });
        }
        inp.assembly = Some(Assembly {
            meta,
            declared: declared_len,
            buf: BytesMut::with_capacity(declared_len),
        });
        Ok(())
    }

    /// Appends the next piece of the partial frame.
    pub fn append(&mut self, input: InputId, piece: &[u8]) -> Result<(), RelayError> {
        let inp = self.inputs.get_mut(input).ok_or(RelayError::UnknownInput(input))?;
        let a = inp.assembly.as_mut().ok_or(RelayError::NoAssembly(input))?;
        let got = a.buf.len() + piece.len();
        if got > a.declared {
            return Err(RelayError::AssemblyOverrun {
                input,
                declared: a.declared,
                got,
            });
        }
        a.buf.extend_from_slice(piece);
        Ok(())
    }

    /// Completes the partial frame (all declared bytes must have arrived)
    /// and pushes it, as [`push`](Self::push) does.
    pub fn finish(&mut self, input: InputId, now: Instant) -> Result<&[OutputId], RelayError> {
        let inp = self.inputs.get_mut(input).ok_or(RelayError::UnknownInput(input))?;
        let a = inp.assembly.as_ref().ok_or(RelayError::NoAssembly(input))?;
        if a.buf.len() != a.declared {
            return Err(RelayError::AssemblyIncomplete {
                input,
                declared: a.declared,
                got: a.buf.len(),
            });
        }
        // Checked just above that it is Some.
        let Some(a) = inp.assembly.take() else {
            return Err(RelayError::NoAssembly(input));
        };
        let frame = Frame {
            data: a.buf.freeze(),
            sequence: a.meta.sequence,
            timestamp_ns: a.meta.timestamp_ns,
            flags: a.meta.flags,
        };
        self.push(input, frame, now)
    }

    /// Abandons the partial frame of `input`, if any: its memory and
    /// reservation are released at once, and every output the input feeds
    /// counts it as offered and dropped (`Abandoned`); an inter-coded input's
    /// outputs then wait for its next keyframe. Returns whether there was one.
    pub fn abandon(&mut self, input: InputId, now: Instant) -> Result<bool, RelayError> {
        let inp = self.inputs.get_mut(input).ok_or(RelayError::UnknownInput(input))?;
        if inp.assembly.take().is_none() {
            return Ok(false);
        }
        inp.frames_abandoned += 1;
        // The frames after a lost one depend on it: the group is broken.
        inp.gop.clear();
        inp.gop_bytes = 0;
        for &oid in &inp.outputs {
            if let Some(out) = self.outputs.get_mut(oid)
                && let Some(li) = out.lane_of(input)
            {
                out.abandoned(li, now);
            }
        }
        Ok(true)
    }

    /// Hands the output's next frame to the transport, or `None` when there
    /// is nothing to send or a frame is already in flight. The frame is in
    /// flight until [`sent`](Self::sent); it is never cut or replaced.
    pub fn poll_transmit(&mut self, output: OutputId, now: Instant) -> Option<Transmit> {
        self.outputs.get_mut(output)?.poll_transmit(now)
    }

    /// The transport finished writing the frame in flight. Records its send
    /// latency (arrival to now) and releases it. Returns whether the output
    /// has another frame ready.
    pub fn sent(&mut self, output: OutputId, now: Instant) -> Result<bool, RelayError> {
        self.outputs
            .get_mut(output)
            .ok_or(RelayError::UnknownOutput(output))?
            .sent(output, now)
    }

    /// Whether the output has a frame to send and none in flight.
    pub fn is_ready(&self, output: OutputId) -> bool {
        self.outputs.get(output).is_some_and(Output::ready)
    }

    /// The length of the frame [`poll_transmit`](Self::poll_transmit)
    /// would hand out next (exact for a one-input output; for several, the
    /// one that waited longest) and a tag that changes when that frame
    /// does, or `None` when the output is not ready. A [`Link`](crate::Link)
    /// asks this before it lets an output send.
    pub fn next_head(&self, output: OutputId) -> Option<(usize, u64)> {
        self.outputs.get(output)?.next_head()
    }

    /// Drops the frame [`next_head`](Self::next_head) describes, counted as
    /// suppressed: a link's source suppression refused it. Returns whether
    /// there was one.
    pub fn suppress_next(&mut self, output: OutputId, now: Instant) -> bool {
        self.outputs.get_mut(output).is_some_and(|o| o.suppress_next(now))
    }

    /// The keyframe the input's cached group of pictures starts with (an
    /// inter-coded input with a cache; see [`RelayConfig::gop_cache_bytes`]).
    pub fn last_keyframe(&self, input: InputId) -> Option<&Frame> {
        self.inputs.get(input)?.gop.first().map(|(f, _)| f)
    }

    /// Inputs currently present.
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    /// Outputs currently present.
    pub fn output_count(&self) -> usize {
        self.outputs.len()
    }

    /// Counters of one output.
    pub fn output_snapshot(&self, output: OutputId, now: Instant) -> Option<OutputSnapshot> {
        self.outputs.get(output).map(|o| o.snapshot(output, now))
    }

    /// Counters of one input.
    pub fn input_snapshot(&self, input: InputId) -> Option<InputSnapshot> {
        self.inputs.get(input).map(|i| input_snapshot(input, i))
    }

    /// Counters of everything. O(inputs + outputs × lanes); allocates.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        Snapshot {
            inputs: self.inputs.iter().map(|(id, i)| input_snapshot(id, i)).collect(),
            outputs: self.outputs.iter().map(|(id, o)| o.snapshot(id, now)).collect(),
        }
    }
}

fn input_snapshot(id: InputId, i: &Input) -> InputSnapshot {
    InputSnapshot {
        id,
        inter_coded: i.config.inter_coded,
        frames_in: i.frames_in,
        bytes_in: i.bytes_in,
        frames_abandoned: i.frames_abandoned,
        assembling_bytes: i
            .assembly
            .as_ref()
            .map_or(0, |a| a.buf.capacity().max(a.declared) as u64),
        outputs: u32::try_from(i.outputs.len()).unwrap_or(u32::MAX),
    }
}
