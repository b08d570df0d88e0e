//! The compositor's thread: each input taken as an output of this node
//! (remote ones first pulled as the node's own edges), newest frame wins;
//! every tick the canvas is drawn, encoded and pushed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire_codec::mjpeg::MjpegDecoder;
use framewire_codec::{CodecError, DecodeOptions, Decoder, Encoder, PixelBuffer, Registry};
use framewire_media::compose::{Compositor, InputState};
use framewire_proto::EventInfo;
use framewire_proto::{DeliveryMode, Format, StreamEvent, StreamOpen, SubscribeParams};
use framewire_relay::OutputId;
use tokio::sync::{Notify, oneshot};
use tracing::{info, warn};

use super::{ComposeConfig, InputSpec};
use crate::api::{EventQueue, NodePort, SourceHost, StreamOut};
use crate::clock::now_ns;
use crate::config::EdgeConfig;
use crate::error::NetError;
use crate::runtime::edges::EdgePort;
use crate::sources::{frame, paced, rate, spawn_thread};

/// An input with no new picture for this long shows as lost.
const STALE: Duration = Duration::from_secs(2);

/// A slate's words for a stream event's reason.
fn reason_text(info: &EventInfo) -> String {
    if info.message.is_empty() {
        info.reason.to_string()
    } else {
        format!("{}: {}", info.reason, info.message)
    }
}

/// A decoder; JPEG kept as itself, to decode at the size shown.
enum Dec {
    Jpeg(Box<MjpegDecoder>),
    Other(Box<dyn Decoder>),
}

impl Dec {
    fn for_stream(open: &StreamOpen) -> Option<Dec> {
        if open.format == Format::Mjpeg {
            return MjpegDecoder::new(open, &DecodeOptions::default())
                .ok()
                .map(|d| Dec::Jpeg(Box::new(d)));
        }
        Registry::builtin().negotiate(open).ok().map(Dec::Other)
    }

    /// A picture at least `need` in size where the codec can make a
    /// smaller one (JPEG: 1/2, 1/4, 1/8).
    fn decode(&mut self, data: &Bytes, need: (u32, u32)) -> Result<PixelBuffer, CodecError> {
        match self {
            Dec::Jpeg(d) => d.decode_i420_at_least(data, need.0, need.1),
            Dec::Other(d) => d.decode(data),
        }
    }
}

/// An output of this node the compositor reads.
struct Attached {
    id: OutputId,
    events: Arc<EventQueue>,
    decoder: Option<Dec>,
}

/// One input's state between ticks.
struct Input {
    name: String,
    /// The stream of this node it reads (a pulled one for a remote input).
    stream: String,
    /// `ADDR/STREAM` of a remote input, as the slate names it.
    pulled: Option<String>,
    attached: Option<Attached>,
    picture: Option<PixelBuffer>,
    /// Why there is no live picture (`None`: live).
    lost: Option<String>,
    last_frame: Instant,
}

impl Input {
    fn new(name: String, stream: String, pulled: Option<String>) -> Input {
        Input {
            name,
            stream,
            pulled,
            attached: None,
            picture: None,
            lost: Some("waiting for the stream".into()),
            last_frame: Instant::now(),
        }
    }

    /// Takes what arrived since the last tick: events, and the newest frame
    /// (older ones are only consumed), decoded at least `need` in size, or
    /// not at all when no tile shows it (`None`).
    fn update(&mut self, node: &dyn NodePort, label: &str, need: Option<(u32, u32)>) {
        if self.attached.as_ref().is_some_and(|a| !node.has_output(a.id)) {
            self.attached = None;
            self.lost = Some("the stream went".into());
        }
        if self.attached.is_none() {
            let params = SubscribeParams {
                mode: DeliveryMode::LowLatency,
                max_frames: 1,
                ..SubscribeParams::default()
            };
            let events = Arc::new(EventQueue::default());
            match node.add_output(
                &self.stream,
                &params,
                label.to_owned(),
                Arc::new(Notify::new()),
                events.clone(),
            ) {
                Ok((id, open)) => {
                    let decoder = Dec::for_stream(&open);
                    if decoder.is_none() {
                        self.lost = Some(format!("cannot decode {}", open.format));
                    }
                    self.attached = Some(Attached { id, events, decoder });
                    self.last_frame = Instant::now();
                }
                Err(e) => {
                    // A pulled stream is there once its upstream answers.
                    let why = match &self.pulled {
                        Some(from) => format!("no connection to {from}"),
                        None => e.to_string(),
                    };
                    if self.lost.as_deref() != Some(why.as_str()) && self.picture.is_some() {
                        info!(input = %self.name, reason = %why, "compose: input lost");
                    }
                    self.lost = Some(why);
                    return;
                }
            }
        }
        let Some(a) = self.attached.as_mut() else { return };
        for ev in a.events.take() {
            match ev {
                StreamEvent::Interrupted(i) | StreamEvent::Closed(i) => self.lost = Some(reason_text(&i)),
                StreamEvent::FormatChanged(o) => {
                    a.decoder = Dec::for_stream(&o);
                    if a.decoder.is_none() {
                        self.lost = Some(format!("cannot decode {}", o.format));
                    }
                }
                _ => {}
            }
        }
        let mut newest = None;
        while let Some(t) = node.poll_transmit(a.id) {
            node.sent(a.id);
            newest = Some(t);
        }
        if let (Some(t), Some(dec), Some(need)) = (newest, a.decoder.as_mut(), need) {
            match dec.decode(&t.frame.data, need) {
                Ok(pic) => {
                    self.picture = Some(pic);
                    self.lost = None;
                    self.last_frame = Instant::now();
                }
                Err(e) => warn!(input = %self.name, error = %e, "compose: frame not decoded"),
            }
        }
        if self.lost.is_none() && self.last_frame.elapsed() > STALE {
            self.lost = Some(format!("no picture for {} s", STALE.as_secs()));
        }
    }

    fn state(&self) -> InputState<'_> {
        match (&self.lost, &self.picture) {
            (None, Some(p)) => InputState::Live(p),
            (lost, last) => InputState::Lost {
                reason: lost.as_deref().unwrap_or("waiting for the first picture"),
                last: last.as_ref(),
            },
        }
    }
}

/// The compositor's state on its thread.
struct Composer {
    cfg: ComposeConfig,
    node: Arc<dyn NodePort>,
    edges: Option<Arc<EdgePort>>,
    inputs: Vec<Input>,
    compositor: Compositor,
    label: String,
    /// Times each input name was pulled.
    pulls: std::collections::HashMap<String, u32>,
}

impl Composer {
    /// An input of `spec`: a remote one pulled as this node's edge, served
    /// as `SOURCE.INPUT` (`SOURCE.INPUT-2` and on when pulled again: the
    /// stream of an edge just stopped goes only when its task ends).
    fn input(&mut self, spec: &InputSpec) -> Result<Input, String> {
        let Some(addr) = &spec.addr else {
            return Ok(Input::new(spec.name.clone(), spec.stream.clone(), None));
        };
        let n = self.pulls.entry(spec.name.clone()).or_insert(0);
        *n += 1;
        let mut e = EdgeConfig::new(addr.clone(), spec.stream.clone());
        e.local_name = if *n == 1 {
            format!("{}.{}", self.cfg.name, spec.name)
        } else {
            format!("{}.{}-{n}", self.cfg.name, spec.name)
        };
        e.params = SubscribeParams {
            mode: DeliveryMode::LowLatency,
            max_frames: 1,
            ..SubscribeParams::default()
        };
        let edges = self.edges.as_ref().ok_or("this node pulls no edges")?;
        let local = edges
            .start(e)
            .map_err(|why| format!("input `{}` ({addr}/{}): {why}", spec.name, spec.stream))?;
        Ok(Input::new(
            spec.name.clone(),
            local,
            Some(format!("{addr}/{}", spec.stream)),
        ))
    }

    /// Lets go of an input: its output here, and its edge if it pulled one.
    fn drop_input(&self, input: &Input) {
        if let Some(a) = &input.attached {
            self.node.remove_output(a.id);
        }
        if input.pulled.is_some()
            && let Some(p) = &self.edges
        {
            p.stop(&input.stream);
        }
    }

    /// A changed spec (same size, rate and format), from the next frame
    /// on: inputs kept, added or let go, and the layout. An input whose
    /// address or stream changed is let go first, so its new edge may
    /// take the same name. Refused with the reason when an input cannot
    /// be pulled: the spec in use is put back (what was let go is pulled
    /// again).
    fn apply(&mut self, next: ComposeConfig) -> Result<(), String> {
        let names: Vec<String> = next.inputs.iter().map(|i| i.name.clone()).collect();
        next.layout
            .check(self.cfg.width, self.cfg.height, &names)
            .map_err(|e| e.to_string())?;
        let mut old: Vec<Option<Input>> = std::mem::take(&mut self.inputs).into_iter().map(Some).collect();
        for (i, spec) in self.cfg.inputs.iter().enumerate() {
            if !next.inputs.contains(spec)
                && let Some(gone) = old[i].take()
            {
                self.drop_input(&gone);
            }
        }
        let mut inputs = Vec::new();
        for spec in &next.inputs {
            let kept = self
                .cfg
                .inputs
                .iter()
                .position(|o| o == spec)
                .and_then(|i| old[i].take());
            match kept.map_or_else(|| self.input(spec), Ok) {
                Ok(input) => inputs.push(input),
                Err(why) => {
                    self.restore(inputs, old);
                    return Err(why);
                }
            }
        }
        self.compositor
            .set_inputs(names, next.layout.clone())
            .map_err(|e| e.to_string())?;
        self.inputs = inputs;
        info!(stream = %self.cfg.name, inputs = self.inputs.len(), tiles = next.layout.tiles.len(), "compose: changed");
        self.cfg = next;
        Ok(())
    }

    /// After a refused change: the inputs of the spec in use again, those
    /// kept as they were, those let go pulled again, the new ones let go.
    fn restore(&mut self, mut tried: Vec<Input>, mut old: Vec<Option<Input>>) {
        let specs = self.cfg.inputs.clone();
        for (i, spec) in specs.iter().enumerate() {
            let kept = old[i].take().or_else(|| {
                // The same input: same name, and same source.
                let from = spec.addr.as_ref().map(|a| format!("{a}/{}", spec.stream));
                let pos = tried.iter().position(|t| {
                    t.name == spec.name && t.pulled == from && (from.is_some() || t.stream == spec.stream)
                })?;
                Some(tried.remove(pos))
            });
            let input = match kept {
                Some(input) => input,
                None => self.input(spec).unwrap_or_else(|why| {
                    warn!(input = %spec.name, reason = %why, "compose: an input could not be pulled again");
                    let mut lost = Input::new(spec.name.clone(), String::new(), None);
                    lost.lost = Some(why);
                    lost
                }),
            };
            self.inputs.push(input);
        }
        for new in &tried {
            self.drop_input(new);
        }
    }

    /// One frame of the canvas.
    fn draw(&mut self) -> PixelBuffer {
        let tiles = &self.compositor.layout().tiles;
        for i in &mut self.inputs {
            // The largest size any of its tiles shows its whole picture at.
            let need = tiles
                .iter()
                .filter(|t| t.input == i.name)
                .fold(None, |acc: Option<(u32, u32)>, t| {
                    // A tile's size over a crop share: a picture size.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let (w, h) = (
                        (f64::from(t.rect.w) / t.crop.w.max(1e-3)).ceil() as u32,
                        (f64::from(t.rect.h) / t.crop.h.max(1e-3)).ceil() as u32,
                    );
                    Some(acc.map_or((w, h), |(aw, ah)| (aw.max(w), ah.max(h))))
                });
            i.update(&*self.node, &self.label, need);
        }
        let inputs = &self.inputs;
        self.compositor.compose(|name| {
            inputs.iter().find(|i| i.name == name).map_or(
                InputState::Lost {
                    reason: "no such input",
                    last: None,
                },
                Input::state,
            )
        })
    }
}

/// A change for the thread, and where its outcome goes.
type Change = (ComposeConfig, oneshot::Sender<Result<(), String>>);

/// Pulls the remote inputs and starts the thread.
pub(super) fn start(
    cfg: ComposeConfig,
    host: SourceHost,
    out: StreamOut,
    compositor: Compositor,
    mut encoder: Box<dyn Encoder>,
) -> Result<std::thread::JoinHandle<()>, NetError> {
    let mut c = Composer {
        node: host.node.clone(),
        edges: host.extension::<EdgePort>(),
        inputs: Vec::new(),
        compositor,
        label: format!("compose {}", cfg.name),
        pulls: std::collections::HashMap::new(),
        cfg: cfg.clone(),
    };
    for spec in &cfg.inputs {
        match c.input(spec) {
            Ok(i) => c.inputs.push(i),
            Err(reason) => {
                for i in &c.inputs {
                    c.drop_input(i);
                }
                return Err(NetError::Source {
                    kind: "compose",
                    stream: cfg.name.clone(),
                    reason,
                });
            }
        }
    }
    info!(
        stream = %cfg.name,
        width = cfg.width,
        height = cfg.height,
        inputs = c.inputs.len(),
        format = %cfg.encode.format,
        "compositor"
    );
    // SOURCE_SET of the same size, rate and format is taken in place.
    let (tx, changes) = std::sync::mpsc::channel::<Change>();
    let fixed = (cfg.width, cfg.height, cfg.fps_num, cfg.fps_den, cfg.encode);
    host.take_updates(Box::new(move |spec| {
        let next = spec.downcast_ref::<ComposeConfig>()?;
        if (next.width, next.height, next.fps_num, next.fps_den, next.encode) != fixed {
            return None;
        }
        let (reply, answer) = oneshot::channel();
        tx.send((next.clone(), reply)).ok()?;
        Some(answer)
    }));
    let stop = host.stop_flag();
    let thread = cfg.name.clone();
    spawn_thread(&thread, move || {
        // An inter-coded output makes a keyframe when a subscriber asks,
        // and announces its parameter sets once its encoder has them.
        let requests = cfg.encode.format.is_inter_coded().then(|| out.keyframe_requests());
        let mut announced = encoder.codec_config();
        paced(
            rate(cfg.fps_num, cfg.fps_den),
            &stop,
            |_| true,
            |seq| {
                while let Ok((next, reply)) = changes.try_recv() {
                    let _ = reply.send(c.apply(next));
                }
                let pic = c.draw();
                let ts = now_ns();
                if requests.as_ref().is_some_and(|r| r.take()) {
                    encoder.force_keyframe();
                }
                match encoder.encode(&pic) {
                    Ok(data) => {
                        if encoder.codec_config() != announced {
                            announced = encoder.codec_config();
                            let open = encoder.stream_open(cfg.width, cfg.height, cfg.fps_num, cfg.fps_den, &cfg.name);
                            out.event(StreamEvent::FormatChanged(open));
                        }
                        let mut f = frame(data, seq, ts);
                        if !encoder.keyframe() {
                            f.flags = framewire_proto::FrameFlags::default();
                        }
                        out.push(f);
                    }
                    Err(e) => warn!(stream = %cfg.name, error = %e, "compose: frame not encoded"),
                }
                true
            },
        );
        for i in &c.inputs {
            c.drop_input(i);
        }
    })
}
