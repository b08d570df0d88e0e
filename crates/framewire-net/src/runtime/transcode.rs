//! Transcoding on an output: a subscriber that asks for `STREAM~FORMAT`
//! (`bars~mjpeg`, `bars~mjpeg-q70`, `bars~qoi`, `bars~raw-bgra`,
//! `bars~raw-zstd`, `bars~h264`, `bars~h264-2Mbit-g30`) gets STREAM in that
//! format. The first such
//! subscription starts one transcoder, which serves a derived stream of
//! that name; every later subscriber of the same name shares it, so a
//! stream is converted once per distinct format asked for, whatever the
//! number of subscribers. The transcoder takes the newest frame of STREAM
//! (low-latency: a slow encoder skips frames, it never queues them),
//! converts it off the async threads, and pushes the result. It stops, and
//! the derived stream goes, 5 s after its last subscriber left or at once
//! when STREAM goes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use framewire_codec::{
    DEFAULT_JPEG_QUALITY, DEFAULT_KEYFRAME_INTERVAL, DEFAULT_ZSTD_LEVEL, EncodeSpec, Registry, Transcoder,
};
use framewire_proto::control::StreamState;
use framewire_proto::{
    DeliveryMode, DropPolicy, EventReason, FrameFlags, PixelFormat, Status, StreamEvent, StreamOpen, SubscribeParams,
    TransportMode,
};
use framewire_relay::Frame;
use tracing::{info, warn};

use crate::api::SinkHost;
use crate::error::CommandError;
use crate::runtime::core::NodeCore;
use crate::runtime::keyframes::KeyframeFlag;

/// Frames of an inter-coded input that may wait for the transcoder.
const INTER_CODED_QUEUE: u32 = 60;

/// How long a derived stream outlives its last subscriber.
const IDLE: Duration = Duration::from_secs(5);

/// `BASE~FORMAT` → the base stream's name and what to encode to (the
/// error says why FORMAT is not one); `None` for a plain name. The
/// controller validates wanted edges with it too.
pub fn parse_derived(name: &str) -> Option<(&str, Result<EncodeSpec, String>)> {
    let (base, format) = name.rsplit_once('~')?;
    if base.is_empty() {
        return None;
    }
    let pixel = |s: Option<&str>| -> Result<PixelFormat, String> {
        match s {
            None => Ok(PixelFormat::Bgra),
            Some(p) => PixelFormat::from_label(p)
                .filter(|p| *p != PixelFormat::None)
                .ok_or_else(|| format!("unknown pixel format `{p}` (bgra, rgba, bgr, yuv420p, yuyv422)")),
        }
    };
    let spec = if let Some(rest) = format.strip_prefix("raw-zstd") {
        pixel(rest.strip_prefix('-')).map(|p| EncodeSpec::raw_zstd(p, DEFAULT_ZSTD_LEVEL))
    } else if let Some(rest) = format.strip_prefix("raw") {
        pixel(rest.strip_prefix('-')).map(EncodeSpec::raw)
    } else if let Some(rest) = format.strip_prefix("h264") {
        h264_spec(format, rest)
    } else if format == "qoi" {
        Ok(EncodeSpec::qoi())
    } else if let Some(rest) = format.strip_prefix("mjpeg") {
        match rest.strip_prefix("-q") {
            None if rest.is_empty() => Ok(EncodeSpec::mjpeg(DEFAULT_JPEG_QUALITY)),
            Some(q) => q
                .parse::<u8>()
                .ok()
                .filter(|q| (1..=100).contains(q))
                .map(EncodeSpec::mjpeg)
                .ok_or_else(|| format!("`{format}`: the quality is 1 to 100 (mjpeg-q70)")),
            None => Err(format!(
                "`{format}` is not a format (mjpeg, mjpeg-qN, qoi, raw[-PIXFMT], raw-zstd[-PIXFMT], h264[-RATE][-gFRAMES])"
            )),
        }
    } else {
        Err(format!(
            "`{format}` is not a format (mjpeg, mjpeg-qN, qoi, raw[-PIXFMT], raw-zstd[-PIXFMT], h264[-RATE][-gFRAMES])"
        ))
    };
    Some((base, spec))
}

/// `h264[-RATE][-gFRAMES]`: a bit rate (`2Mbit`, `500kbit`, or bytes per
/// second as `--link` takes them) and a keyframe interval in frames.
fn h264_spec(format: &str, rest: &str) -> Result<EncodeSpec, String> {
    let mut spec = EncodeSpec::h264(0, DEFAULT_KEYFRAME_INTERVAL);
    if rest.is_empty() {
        return Ok(spec);
    }
    let Some(options) = rest.strip_prefix('-') else {
        return Err(format!("`{format}` is not a format (h264, h264-2Mbit, h264-2Mbit-g30)"));
    };
    for o in options.split('-') {
        if let Some(g) = o.strip_prefix('g') {
            spec.keyframe_interval = g
                .parse::<u32>()
                .ok()
                .filter(|g| (1..=3600).contains(g))
                .ok_or_else(|| format!("`{format}`: the keyframe interval is 1 to 3600 frames (h264-g30)"))?;
        } else {
            let bytes = crate::config::parse_rate(o).map_err(|e| format!("`{format}`: {e}"))?;
            spec.bitrate = u32::try_from(bytes.saturating_mul(8))
                .ok()
                .filter(|b| (10_000..=200_000_000).contains(b))
                .ok_or_else(|| format!("`{format}`: the bit rate is 10kbit to 200Mbit"))?;
        }
    }
    Ok(spec)
}

/// The STREAM_OPEN of `stream`, if the node serves it.
pub(crate) fn open_of(core: &NodeCore, stream: &str) -> Option<StreamOpen> {
    core.with_state(|st| st.stream(stream).map(|e| e.open.clone()))
}

/// Before a subscription to `name`: when it is `BASE~FORMAT`, BASE exists
/// and `name` does not yet, starts the transcoder that serves it. Refused
/// when the format is not one, or BASE cannot be converted to it.
pub(crate) fn ensure(core: &Arc<NodeCore>, name: &str) -> Result<(), CommandError> {
    if core.has_stream(name) {
        return Ok(());
    }
    let Some((base, spec)) = parse_derived(name) else {
        return Ok(());
    };
    let Some(open) = open_of(core, base) else { return Ok(()) };
    let spec = spec.map_err(|e| CommandError::new(Status::BadRequest, e))?;
    let t = Transcoder::new(&Registry::builtin(), &open, &spec).map_err(|e| {
        CommandError::new(
            Status::UnsupportedFormat,
            format!("cannot give `{base}` ({}) as `{name}`: {}", open.format, e.reason),
        )
    })?;
    let mut derived = t.output_open().clone();
    derived.name = name.to_owned();
    match core.add_stream(derived, format!("transcode:{base}"), StreamState::Live) {
        Ok(_) => {}
        // Another subscription started it meanwhile.
        Err(_) if core.has_stream(name) => return Ok(()),
        Err(e) => return Err(CommandError::new(Status::Internal, e.to_string())),
    }
    info!(stream = %base, derived = %name, to = %spec.format, "transcoder started");
    tokio::spawn(run(core.clone(), base.to_owned(), name.to_owned(), spec, t));
    Ok(())
}

async fn run(core: Arc<NodeCore>, base: String, name: String, spec: EncodeSpec, mut t: Transcoder) {
    // Newest frame wins, except that an inter-coded input is decoded frame
    // by frame (each needs the ones before it): taken for completeness (the
    // cached group of pictures whole, then every frame), with a budget past
    // which the relay drops and starts again at the next keyframe.
    let inter = open_of(&core, &base).is_some_and(|o| o.format.is_inter_coded());
    let host = SinkHost {
        node: core.clone(),
        stream: base.clone(),
        params: SubscribeParams {
            mode: if inter {
                DeliveryMode::Completeness
            } else {
                DeliveryMode::LowLatency
            },
            max_frames: if inter { INTER_CODED_QUEUE } else { 1 },
            max_bytes: 0,
            drop_policy: DropPolicy::DropOldest,
            priority: 128,
            transport: TransportMode::Encapsulated,
        },
        label: format!("transcode:{name}"),
    };
    let mut stop = host.stopping();
    // Keyframe requests for the derived stream reach this encoder.
    let flag = core.keyframes.register(&name);
    let _registered = Registered(core.clone(), name.clone(), flag.clone());
    let Some(input) = host.attach().await else {
        core.remove_stream(&name, EventReason::Shutdown, "node shutting down");
        return;
    };
    let mut source_open = input.open().clone();
    let mut announced = t.output_open().clone();
    announced.name = name.clone();
    let mut idle_since: Option<Instant> = None;
    let mut failures = 0u64;
    loop {
        if !input.attached() {
            core.remove_stream(&name, EventReason::UpstreamLost, "the stream it transcodes went away");
            info!(derived = %name, "transcoder stopped: its stream went away");
            return;
        }
        if core.subscribers(&name) == 0 {
            if idle_since.get_or_insert_with(Instant::now).elapsed() >= IDLE {
                core.remove_stream(&name, EventReason::Unsubscribed, "nobody takes it");
                info!(derived = %name, "transcoder stopped: no subscriber left");
                return;
            }
        } else {
            idle_since = None;
        }
        let Some(tx) = input.poll() else {
            tokio::select! {
                () = input.ready(Duration::from_millis(200)) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
            continue;
        };
        let frame = tx.frame.clone();
        input.sent();
        if flag.take(Instant::now()) {
            t.force_keyframe();
        }
        let job = tokio::task::spawn_blocking(move || {
            let r = t.transcode(&frame.data);
            (t, frame, r)
        });
        let Ok((back, frame, result)) = job.await else {
            warn!(derived = %name, "transcoder failed; stream removed");
            core.remove_stream(&name, EventReason::Error, "the transcoder failed");
            return;
        };
        t = back;
        match result {
            Ok(data) => {
                // An encoder learns its parameter sets with its first keyframe.
                if t.output_open().codec_config != announced.codec_config {
                    announced = t.output_open().clone();
                    announced.name = name.clone();
                    core.stream_event(&name, StreamEvent::FormatChanged(announced.clone()));
                }
                let mut flags = if t.keyframe() {
                    FrameFlags::KEYFRAME
                } else {
                    FrameFlags::default()
                };
                if frame.flags.is_discontinuity() {
                    flags = flags.with(FrameFlags::DISCONTINUITY);
                }
                core.push(
                    &name,
                    Frame {
                        data,
                        sequence: frame.sequence,
                        timestamp_ns: frame.timestamp_ns,
                        flags,
                    },
                );
            }
            Err(e) => {
                // The stream may have changed format: follow it.
                if let Some(now) = open_of(&core, &base).filter(|o| *o != source_open) {
                    match Transcoder::new(&Registry::builtin(), &now, &spec) {
                        Ok(fresh) => {
                            let mut derived = fresh.output_open().clone();
                            derived.name = name.clone();
                            core.stream_event(&name, StreamEvent::FormatChanged(derived.clone()));
                            announced = derived;
                            t = fresh;
                            source_open = now;
                            continue;
                        }
                        Err(r) => {
                            core.remove_stream(&name, EventReason::Error, &r.reason);
                            return;
                        }
                    }
                }
                failures += 1;
                if failures.is_power_of_two() {
                    warn!(derived = %name, error = %e, failures, "a frame does not transcode; skipped");
                }
            }
        }
    }
}

/// A derived stream's encoder registered for keyframe requests; undone
/// when the transcoder ends.
struct Registered(Arc<NodeCore>, String, Arc<KeyframeFlag>);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.keyframes.unregister(&self.1, &self.2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use framewire_proto::Format;

    #[test]
    fn names_ask_for_formats() {
        let f =
            |n: &str| parse_derived(n).map(|(b, s)| (b.to_owned(), s.map(|s| (s.format, s.pixel_format, s.quality))));
        assert_eq!(f("bars"), None);
        assert_eq!(f("~mjpeg"), None);
        assert_eq!(
            f("bars~mjpeg").unwrap().1,
            Ok((Format::Mjpeg, PixelFormat::None, DEFAULT_JPEG_QUALITY))
        );
        assert_eq!(f("cam~mjpeg-q70").unwrap().1.unwrap().2, 70);
        assert_eq!(f("a~b~qoi").unwrap().0, "a~b");
        assert_eq!(f("x~raw").unwrap().1.unwrap().1, PixelFormat::Bgra);
        assert_eq!(f("x~raw-yuv420p").unwrap().1.unwrap().1, PixelFormat::Yuv420p);
        assert_eq!(f("x~raw-zstd-bgr").unwrap().1.unwrap().0, Format::RawZstd);
        let h = |n: &str| f(n).unwrap().1.map(|_| parse_derived(n).unwrap().1.unwrap());
        let spec = h("x~h264").unwrap();
        assert_eq!(
            (spec.format, spec.bitrate, spec.keyframe_interval),
            (Format::H264, 0, 60)
        );
        let spec = h("x~h264-2Mbit-g30").unwrap();
        assert_eq!((spec.bitrate, spec.keyframe_interval), (2_000_000, 30));
        assert!(h("x~h264-g0").unwrap_err().contains("keyframe interval"));
        assert!(h("x~h264-fast").unwrap_err().contains("not a rate"));
        assert!(h("x~h2645").is_err());
        assert!(f("x~mjpeg-q0").unwrap().1.is_err());
        assert!(f("x~raw-cmyk").unwrap().1.is_err());
    }
}
