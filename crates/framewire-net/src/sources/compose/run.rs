//! The compositor's thread: each input taken as an output of this node
//! (remote ones first pulled as the node's own edges), newest frame wins;
//! every tick the canvas is drawn, encoded and pushed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use framewire_codec::{Decoder, Encoder, PixelBuffer, Registry};
use framewire_media::compose::{Compositor, InputState};
use framewire_proto::EventInfo;
use framewire_proto::{DeliveryMode, StreamEvent, SubscribeParams};
use framewire_relay::OutputId;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::ComposeConfig;
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

/// An output of this node the compositor reads.
struct Attached {
    id: OutputId,
    events: Arc<EventQueue>,
    decoder: Option<Box<dyn Decoder>>,
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
    /// (decoded; older ones are only consumed).
    fn update(&mut self, node: &dyn NodePort, label: &str) {
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
                    let decoder = Registry::builtin().negotiate(&open).ok();
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
                    a.decoder = Registry::builtin().negotiate(&o).ok();
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
        if let (Some(t), Some(dec)) = (newest, a.decoder.as_mut()) {
            match dec.decode(&t.frame.data) {
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

/// Pulls the remote inputs and starts the thread.
pub(super) fn start(
    cfg: ComposeConfig,
    host: SourceHost,
    out: StreamOut,
    mut compositor: Compositor,
    mut encoder: Box<dyn Encoder>,
) -> Result<std::thread::JoinHandle<()>, NetError> {
    let node = host.node.clone();
    let edges = host.extension::<EdgePort>();
    let stop = host.stop_flag();
    let mut inputs = Vec::new();
    for spec in &cfg.inputs {
        let stream = match &spec.addr {
            Some(addr) => {
                let mut e = EdgeConfig::new(addr.clone(), spec.stream.clone());
                e.local_name = format!("{}.{}", cfg.name, spec.name);
                e.params = SubscribeParams {
                    mode: DeliveryMode::LowLatency,
                    max_frames: 1,
                    ..SubscribeParams::default()
                };
                let pulled = edges.as_ref().ok_or_else(|| "this node pulls no edges".to_owned());
                match pulled.and_then(|p| p.start(e)) {
                    Ok(local) => local,
                    Err(reason) => {
                        for i in &inputs {
                            stop_input(&edges, i);
                        }
                        return Err(NetError::Source {
                            kind: "compose",
                            stream: cfg.name.clone(),
                            reason: format!("input `{}` ({addr}/{}): {reason}", spec.name, spec.stream),
                        });
                    }
                }
            }
            None => spec.stream.clone(),
        };
        let from = spec.addr.as_ref().map(|a| format!("{a}/{}", spec.stream));
        inputs.push(Input::new(spec.name.clone(), stream, from));
    }
    info!(
        stream = %cfg.name,
        width = cfg.width,
        height = cfg.height,
        inputs = inputs.len(),
        format = %cfg.encode.format,
        "compositor"
    );
    let label = format!("compose {}", cfg.name);
    let thread = cfg.name.clone();
    spawn_thread(&thread, move || {
        paced(
            rate(cfg.fps_num, cfg.fps_den),
            &stop,
            |_| true,
            |seq| {
                for i in &mut inputs {
                    i.update(&*node, &label);
                }
                let pic = compositor.compose(|name| {
                    inputs.iter().find(|i| i.name == name).map_or(
                        InputState::Lost {
                            reason: "no such input",
                            last: None,
                        },
                        Input::state,
                    )
                });
                let ts = now_ns();
                match encoder.encode(&pic) {
                    Ok(data) => out.push(frame(data, seq, ts)),
                    Err(e) => warn!(stream = %cfg.name, error = %e, "compose: frame not encoded"),
                }
                true
            },
        );
        for i in &inputs {
            if let Some(a) = &i.attached {
                node.remove_output(a.id);
            }
            stop_input(&edges, i);
        }
    })
}

/// Stops the edge a remote input pulled.
fn stop_input(edges: &Option<Arc<EdgePort>>, input: &Input) {
    if input.pulled.is_some()
        && let Some(p) = edges
    {
        p.stop(&input.stream);
    }
}
