//! The compositor's added latency: from an input frame's arrival at the
//! compose node to the output frame that first shows it, for the same
//! frames.
//!
//! **Method.** Two subscribers of the compose node, each on its own
//! connection: one of the input as the node serves it (`wall.c0`, the edge
//! it pulled), one of the output (`wall`). The first notes when each input
//! frame arrived, keyed by its capture time; the second decodes each output
//! frame, reads the time code the test pattern drew into the input
//! (`framewire_media::timecode`, found by proportion in the input's tile),
//! and takes its own arrival time minus the input's. Both stamps are taken
//! on arrival, before any decoding; both frames crossed the same loopback
//! from the same node, so the difference is what the compositor added
//! (waiting for its next tick, decoding, drawing, encoding). Each input
//! picture counts once, at the first output frame that shows it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use framewire_codec::{Decoder, Registry};
use framewire_media::timecode;
use framewire_net::{Client, ClientIdentity};
use framewire_proto::{Command, DeliveryMode, Message, Request, Status, SubscribeParams};

/// A rectangle of the output: X, Y, W, H.
pub(crate) type Rect = (u32, u32, u32, u32);

/// Input arrival times (ns, Unix) by capture time (µs, as the time code
/// keeps it).
type Arrivals = Arc<Mutex<HashMap<u64, u64>>>;

fn low_latency() -> SubscribeParams {
    SubscribeParams {
        mode: DeliveryMode::LowLatency,
        max_frames: 1,
        ..SubscribeParams::default()
    }
}

/// The time code's capture time of a frame stamped `timestamp_ns`.
fn code_us(timestamp_ns: u64) -> u64 {
    timecode::TimeCode::new(0, timestamp_ns).time_us
}

async fn connect(addr: &str) -> anyhow::Result<Client> {
    let who = ClientIdentity::tool("bench:compose-latency");
    Ok(Client::connect(addr, &who, Duration::from_secs(5)).await?)
}

/// Subscribes to `stream`, waiting up to 10 s for it to be there: the
/// node listens before the edges that bring its inputs are open.
async fn subscribe_when_there(c: &mut Client, stream: &str) -> anyhow::Result<u16> {
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        match c.subscribe(stream, low_latency()).await {
            Err(framewire_net::NetError::Remote {
                status: Status::NotFound,
                ..
            }) if Instant::now() < give_up => tokio::time::sleep(Duration::from_millis(100)).await,
            r => return r.with_context(|| format!("subscribe {stream}")),
        }
    }
}

/// Notes each input frame's arrival until `end`.
async fn inputs(addr: String, stream: String, arrivals: Arrivals, end: Instant) -> anyhow::Result<u64> {
    let mut c = connect(&addr).await?;
    let ch = subscribe_when_there(&mut c, &stream).await?;
    let mut n = 0;
    while Instant::now() < end {
        let Ok(m) = tokio::time::timeout(Duration::from_secs(3), c.next_message()).await else {
            bail!("no frames of {stream}");
        };
        match m? {
            Some(Message::VideoFrame(v)) if v.channel == ch => {
                let now = crate::now_ns();
                arrivals.lock().expect("arrivals").insert(code_us(v.timestamp_ns), now);
                n += 1;
            }
            Some(Message::ControlRequest(r)) => c.ack(&r).await?,
            Some(_) => {}
            None => bail!("the node closed"),
        }
    }
    Ok(n)
}

/// Added latencies (ms) of `input` shown in `tile` of `output` on the
/// compose node at `addr`, over `secs` after 1 s of warm-up.
pub(crate) async fn measure(addr: &str, input: &str, output: &str, tile: Rect, secs: f64) -> anyhow::Result<Vec<f64>> {
    let arrivals: Arrivals = Arc::default();
    let warm = Instant::now() + Duration::from_secs(1);
    let end = warm + Duration::from_secs_f64(secs);
    let fed = tokio::spawn(inputs(addr.into(), input.into(), arrivals.clone(), end));
    let mut c = connect(addr).await?;
    let ch = subscribe_when_there(&mut c, output).await?;
    let mut decoder: Option<Box<dyn Decoder>> = None;
    let mut last = None;
    let mut added = Vec::new();
    let mut unread = 0u32;
    while Instant::now() < end {
        let Ok(m) = tokio::time::timeout(Duration::from_secs(3), c.next_message()).await else {
            bail!("no frames of {output}");
        };
        match m? {
            Some(Message::VideoFrame(v)) if v.channel == ch => {
                let now = crate::now_ns();
                let Some(dec) = decoder.as_mut() else { continue };
                let Ok(pic) = dec.decode(&v.data) else {
                    unread += 1;
                    continue;
                };
                let Some(code) = timecode::read_in(&pic, tile.0, tile.1, tile.2, tile.3) else {
                    unread += 1;
                    continue;
                };
                if last == Some(code) || Instant::now() < warm {
                    last = Some(code);
                    continue;
                }
                last = Some(code);
                if let Some(at) = arrivals.lock().expect("arrivals").get(&code.time_us) {
                    added.push(now.saturating_sub(*at) as f64 / 1e6);
                }
            }
            Some(Message::ControlRequest(r)) => {
                if r.command == Command::StreamOpen
                    && let Ok(Request::StreamOpen(o)) = Request::decode(&r)
                {
                    decoder = Some(
                        Registry::builtin()
                            .negotiate(&o)
                            .map_err(|e| anyhow::anyhow!("cannot decode {output}: {e}"))?,
                    );
                }
                c.ack(&r).await?;
            }
            Some(_) => {}
            None => bail!("the node closed"),
        }
    }
    let n = fed.await??;
    if added.is_empty() {
        bail!(
            "no output frame showed an input frame seen arriving ({n} arrived, {unread} output frames without a code)"
        );
    }
    Ok(added)
}
