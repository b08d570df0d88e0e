//! Previews: a low-latency subscription to one stream, delivered as JPEG.
//!
//! MJPEG frames pass through untouched. An inter-coded stream (H.264) is
//! taken as `STREAM~mjpeg`, decoded in order and encoded by its node.
//! Other formats (QOI, raw, raw+zstd) are decoded and encoded to JPEG on
//! the blocking pool, one
//! frame at a time: while a frame is being transcoded, newer arrivals
//! replace the one waiting, so the preview always shows the newest frame
//! and a slow encoder or browser never holds the source back (the
//! subscription itself is low-latency: the node keeps one frame for us).

use std::time::Duration;

use bytes::Bytes;
use framewire_codec::{DEFAULT_JPEG_QUALITY, EncodeSpec, Registry, Transcoder};
use framewire_net::{Client, ClientIdentity};
use framewire_proto::{
    Command, DeliveryMode, Format, Message, Origin, PixelFormat, Request, Status, StreamEvent, StreamOpen,
    SubscribeParams, TransportMode, VideoFrame,
};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info_span, warn};

use crate::handle::{ControllerError, Preview, PreviewFrame};

/// The request id of a passthrough preview's keyframe requests.
const KEYFRAME_REQUEST_ID: u16 = 0x4b46;

/// Frames waiting in the preview's channel: one, so what the reader takes
/// is at most one frame older than the newest one ready.
const PREVIEW_QUEUE: usize = 1;

/// Frames of a passthrough preview that may wait for its reader (a new
/// subscriber first gets the whole cached group of pictures at once); past
/// that, frames are dropped up to the next keyframe.
const PASSTHROUGH_QUEUE: usize = 256;

/// A passthrough preview: every frame as it came, in order, until the
/// reader falls [`PASSTHROUGH_QUEUE`] frames behind; then frames are
/// dropped up to the next keyframe, so what the reader decodes never lacks
/// a reference.
async fn pass(mut client: Client, channel: u16, tx: mpsc::Sender<PreviewFrame>, mut keyframes: mpsc::Receiver<()>) {
    let mut skipping = false;
    loop {
        tokio::select! {
            () = tx.closed() => {
                let _ = client.request_on(channel, Request::Unsubscribe).await;
                return;
            }
            Some(()) = keyframes.recv() => {
                // Sent without waiting: the answer comes among the frames.
                let req = Request::RequestKeyframe(framewire_proto::control::Name { name: String::new() });
                if let Ok(m) = req.to_message(channel, KEYFRAME_REQUEST_ID)
                    && client.send(&Message::ControlRequest(m)).await.is_err()
                {
                    return;
                }
            }
            m = client.next_message() => match m {
                Ok(Some(Message::VideoFrame(f))) if f.channel == channel => {
                    if skipping && !f.flags.is_keyframe() {
                        continue;
                    }
                    skipping = tx.try_send(preview_frame(&f, f.data.clone())).is_err();
                }
                Ok(Some(Message::StreamEvent { channel: c, event: StreamEvent::Closed(_) })) if c == channel => return,
                Ok(Some(Message::ControlRequest(req))) => {
                    let _ = client.refuse(&req, Status::UnsupportedFormat, "a preview does not change format").await;
                    if req.command == Command::StreamOpen {
                        return;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            },
        }
    }
}

/// The STREAM_OPEN a preview announces: the source's, as MJPEG.
pub(crate) fn preview_open(src: &StreamOpen) -> StreamOpen {
    if src.format == Format::Mjpeg {
        return src.clone();
    }
    StreamOpen {
        format: Format::Mjpeg,
        pixel_format: PixelFormat::None,
        origin: Origin::LibjpegTurbo,
        codec_config: Default::default(),
        ..src.clone()
    }
}

pub(crate) async fn start(
    addr: &str,
    node: &str,
    stream: &str,
    who: &ClientIdentity,
    timeout: Duration,
    passthrough: &[Format],
) -> Result<Preview, ControllerError> {
    let other = |e: framewire_net::NetError| ControllerError::Other(format!("preview of {node}/{stream}: {e}"));
    let mut client = Client::connect(addr, who, timeout).await.map_err(other)?;
    let params = SubscribeParams {
        mode: DeliveryMode::LowLatency,
        max_frames: 1,
        max_bytes: 0,
        drop_policy: framewire_proto::DropPolicy::DropOldest,
        priority: 0,
        transport: TransportMode::Encapsulated,
    };
    let channel = client.subscribe(stream, params).await.map_err(|e| match e {
        framewire_net::NetError::Remote {
            status: Status::NotFound,
            ..
        } => ControllerError::UnknownStream(node.to_owned(), stream.to_owned()),
        e => other(e),
    })?;
    let open = stream_open(&mut client, channel, addr, timeout)
        .await
        .map_err(|_| ControllerError::Other(format!("preview of {node}/{stream}: no STREAM_OPEN within {timeout:?}")))?
        .map_err(other)?;
    if passthrough.contains(&open.format) {
        // Every frame counts: subscribed again for completeness, so the
        // cached group of pictures comes whole and a busy connection does
        // not have the node skip to the next keyframe.
        client.request_on(channel, Request::Unsubscribe).await.map_err(other)?;
        let every = SubscribeParams {
            mode: DeliveryMode::Completeness,
            max_frames: 120,
            ..params
        };
        let channel = client.subscribe(stream, every).await.map_err(other)?;
        let open = stream_open(&mut client, channel, addr, timeout)
            .await
            .map_err(|_| {
                ControllerError::Other(format!("preview of {node}/{stream}: no STREAM_OPEN within {timeout:?}"))
            })?
            .map_err(other)?;
        let (tx, rx) = mpsc::channel(PASSTHROUGH_QUEUE);
        let (ktx, krx) = mpsc::channel(1);
        let span = info_span!("preview", node = %node, stream = %stream);
        tokio::spawn(pass(client, channel, tx, krx).instrument(span));
        return Ok(Preview {
            open,
            frames: rx,
            keyframes: Some(ktx),
        });
    }
    if open.format.is_inter_coded() && !stream.contains('~') {
        // Each frame needs the ones before it, which a newest-wins preview
        // skips: the node decodes the stream in order and sends JPEG.
        drop(client);
        return Box::pin(start(addr, node, &format!("{stream}~mjpeg"), who, timeout, &[])).await;
    }
    let transcoder = if open.format == Format::Mjpeg {
        None
    } else {
        let t =
            Transcoder::new(&Registry::builtin(), &open, &EncodeSpec::mjpeg(DEFAULT_JPEG_QUALITY)).map_err(|e| {
                ControllerError::Other(format!(
                    "preview of {node}/{stream}: cannot transcode {}: {e}",
                    open.format
                ))
            })?;
        Some(t)
    };
    let (tx, rx) = mpsc::channel(PREVIEW_QUEUE);
    let span = info_span!("preview", node = %node, stream = %stream);
    tokio::spawn(run(client, channel, transcoder, tx).instrument(span));
    Ok(Preview {
        open: preview_open(&open),
        frames: rx,
        keyframes: None,
    })
}

/// The STREAM_OPEN of the subscription on `channel`, which comes before
/// its first frame (acknowledged), within `timeout`.
async fn stream_open(
    client: &mut Client,
    channel: u16,
    addr: &str,
    timeout: Duration,
) -> Result<Result<StreamOpen, framewire_net::NetError>, tokio::time::error::Elapsed> {
    tokio::time::timeout(timeout, async {
        loop {
            match client.next_message().await? {
                None => return Err(framewire_net::NetError::Closed(addr.to_owned())),
                Some(Message::ControlRequest(req)) if req.command == Command::StreamOpen && req.channel == channel => {
                    if let Ok(Request::StreamOpen(open)) = Request::decode(&req) {
                        client.ack(&req).await?;
                        return Ok(open);
                    }
                    client
                        .refuse(&req, Status::BadRequest, "STREAM_OPEN did not parse")
                        .await?;
                    return Err(framewire_net::NetError::Protocol {
                        peer: addr.to_owned(),
                        message: "its STREAM_OPEN did not parse".into(),
                    });
                }
                Some(_) => {}
            }
        }
    })
    .await
}

fn preview_frame(f: &VideoFrame, data: Bytes) -> PreviewFrame {
    PreviewFrame {
        sequence: f.sequence,
        timestamp_ns: f.timestamp_ns,
        flags: f.flags.0,
        data,
    }
}

type Job = tokio::task::JoinHandle<(Transcoder, VideoFrame, Result<Bytes, framewire_codec::CodecError>)>;

/// The preview loop. Three slots, each holding at most one frame and each
/// replaced by a newer one: `waiting` (received, not yet transcoded), the
/// transcoder's job, and `ready` (JPEG, not yet in the reader's channel).
/// The transcoder always works on the newest frame received, whether or not
/// the reader keeps up, so when the reader comes back after a pause it gets
/// the frame queued when it stopped and then a fresh one, never a backlog.
async fn run(mut client: Client, channel: u16, mut transcoder: Option<Transcoder>, tx: mpsc::Sender<PreviewFrame>) {
    let mut waiting: Option<VideoFrame> = None;
    let mut job: Option<Job> = None;
    let mut ready: Option<PreviewFrame> = None;
    loop {
        tokio::select! {
            () = tx.closed() => {
                debug!("preview dropped: unsubscribing");
                let _ = client.request_on(channel, Request::Unsubscribe).await;
                return;
            }
            permit = tx.reserve(), if ready.is_some() => match permit {
                Ok(p) => {
                    if let Some(f) = ready.take() {
                        p.send(f);
                    }
                }
                Err(_) => return,
            },
            done = async { job.as_mut().expect("guarded by is_some").await }, if job.is_some() => {
                job = None;
                match done {
                    Ok((t, f, Ok(jpeg))) => {
                        transcoder = Some(t);
                        ready = Some(preview_frame(&f, jpeg));
                    }
                    Ok((t, f, Err(e))) => {
                        transcoder = Some(t);
                        warn!(sequence = f.sequence, error = %e, "preview frame does not transcode; skipped");
                    }
                    Err(e) => {
                        warn!(error = %e, "preview transcoder failed; preview ends");
                        return;
                    }
                }
            }
            m = client.next_message() => match m {
                Ok(Some(Message::VideoFrame(f))) if f.channel == channel => {
                    if transcoder.is_none() && job.is_none() {
                        // MJPEG: as it came.
                        let data = f.data.clone();
                        ready = Some(preview_frame(&f, data));
                    } else {
                        waiting = Some(f); // replaces an older waiting frame
                    }
                }
                Ok(Some(Message::StreamEvent { channel: c, event: StreamEvent::Closed(info) })) if c == channel => {
                    debug!(reason = %info.reason, "previewed stream closed");
                    return;
                }
                Ok(Some(Message::ControlRequest(req))) => {
                    // A format change on a live preview is not followed: end it.
                    let _ = client.refuse(&req, Status::UnsupportedFormat, "a preview does not change format").await;
                    if req.command == Command::StreamOpen {
                        return;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            },
        }
        if job.is_none()
            && let Some(f) = waiting.take()
            && let Some(mut t) = transcoder.take()
        {
            job = Some(tokio::task::spawn_blocking(move || {
                let r = t.transcode(&f.data);
                (t, f, r)
            }));
        }
    }
}
