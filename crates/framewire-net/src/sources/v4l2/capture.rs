//! A V4L2 capture source's thread: on-demand open, format and controls,
//! buffers to frames, device loss and recovery.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use framewire_media::v4l2::device::{ControlInfo, control_key};
use framewire_media::v4l2::frame::{clocks_now, monotonic_to_realtime};
use framewire_media::v4l2::sys::fourcc_str;
use framewire_media::v4l2::{Capture, Device, FrameMaker, V4l2Error, Want, WireFormat, negotiate};
use framewire_proto::control::{ControlValue, StreamState};
use framewire_proto::{EventInfo, EventReason, FrameFlags, StreamEvent, StreamOpen};
use framewire_relay::Frame;
use tracing::{error, info, warn};

use super::{DeviceEntry, V4L2_RETRY_FIRST, V4l2Output, V4l2Registry, V4l2SourceConfig};
use crate::api::{SourceHost, StreamOut};
use crate::clock::now_ns;
use crate::error::NetError;

/// How long one wait for a buffer lasts (the loop checks stop,
/// subscribers and linger between waits).
const POLL: Duration = Duration::from_millis(100);

fn wire(o: V4l2Output) -> WireFormat {
    match o {
        V4l2Output::Native => WireFormat::Native,
        V4l2Output::Raw => WireFormat::Raw,
        V4l2Output::RawZstd(l) => WireFormat::RawZstd(l),
        V4l2Output::Mjpeg(q) => WireFormat::Mjpeg(q),
    }
}

/// An open, streaming device and what turns its buffers into frames.
struct Session {
    cap: Capture,
    maker: FrameMaker,
    last_driver_seq: Option<u32>,
    frames: u64,
    lost: u64,
    opened: Instant,
}

/// Opens, negotiates, sets format, rate and controls, starts streaming.
fn open_session(cfg: &V4l2SourceConfig, remembered: &[ControlValue]) -> Result<Session, V4l2Error> {
    let dev = Device::open(&cfg.device)?;
    let caps = dev.capabilities()?;
    if !caps.is_streaming_capture() {
        return Err(V4l2Error::Unsupported {
            path: cfg.device.display().to_string(),
            message: format!(
                "`{}` ({}) is not a video capture device with streaming I/O",
                caps.card, caps.driver
            ),
        });
    }
    let formats = dev.formats()?;
    let want = Want {
        fourcc: cfg.pixel_format,
        size: cfg.size,
        fps: cfg.fps,
    };
    let choice = negotiate(&formats, &want).map_err(|message| V4l2Error::Unsupported {
        path: cfg.device.display().to_string(),
        message,
    })?;
    let pix = dev.set_format(choice.fourcc, choice.width, choice.height)?;
    let interval = match choice.interval {
        Some((n, d)) => dev.set_interval(n, d)?,
        None => dev.set_interval(0, 0).ok().flatten(),
    };
    // Rate on the wire: frames per second = 1 / interval.
    let fps = interval
        .filter(|&(n, d)| n > 0 && d > 0)
        .map_or((0, 1), |(n, d)| (d, n));
    apply_controls(&dev, cfg, remembered);
    let maker = FrameMaker::new(pix, fps, wire(cfg.output), cfg.mjpeg_scan, &cfg.name)
        .and_then(|mut m| m.overlay_timecode(cfg.timecode).map(|()| m))
        .map_err(|message| V4l2Error::Unsupported {
            path: cfg.device.display().to_string(),
            message,
        })?;
    let cap = Capture::start(dev, cfg.buffers)?;
    info!(
        stream = %cfg.name,
        device = %cfg.device.display(),
        format = %fourcc_str(pix.fourcc),
        width = pix.width,
        height = pix.height,
        fps = ?fps,
        buffers = cap.buffer_count(),
        wire = %maker.stream_open().format,
        "v4l2 capture started"
    );
    Ok(Session {
        cap,
        maker,
        last_driver_seq: None,
        frames: 0,
        lost: 0,
        opened: Instant::now(),
    })
}

/// The configured controls (by name), then those set remotely (by id).
fn apply_controls(dev: &Device, cfg: &V4l2SourceConfig, remembered: &[ControlValue]) {
    if cfg.controls.is_empty() && remembered.is_empty() {
        return;
    }
    let infos = match dev.control_infos() {
        Ok(i) => i,
        Err(e) => {
            warn!(stream = %cfg.name, error = %e, "cannot list controls; not applying them");
            return;
        }
    };
    let mut values = Vec::new();
    for (name, value) in &cfg.controls {
        match find_control(&infos, name) {
            Some(c) => values.push(ControlValue {
                id: c.control.id,
                value: *value,
            }),
            None => warn!(stream = %cfg.name, control = %name, "no such control on the device"),
        }
    }
    values.extend_from_slice(remembered);
    for v in values {
        if let Err(e) = dev.set_controls(&[v]) {
            warn!(stream = %cfg.name, id = v.id, value = v.value, error = %e, "control not applied");
        }
    }
}

/// A control by name, case-insensitively, spaces and punctuation as `_`.
pub(crate) fn find_control<'a>(infos: &'a [ControlInfo], name: &str) -> Option<&'a ControlInfo> {
    let key = control_key(name);
    infos.iter().find(|c| control_key(&c.control.name) == key)
}

fn info_event(message: String) -> EventInfo {
    EventInfo {
        timestamp_ns: now_ns(),
        reason: EventReason::DeviceLost,
        message,
    }
}

fn refuse(cfg: &V4l2SourceConfig, reason: String) -> NetError {
    NetError::Source {
        kind: "v4l2",
        stream: cfg.name.clone(),
        reason,
    }
}

/// Starts a capture source: probes the device for its STREAM_OPEN (the
/// stream is listed before anyone subscribes), registers the stream,
/// and runs the capture loop on its own thread.
pub(crate) fn spawn(host: SourceHost, cfg: V4l2SourceConfig) -> Result<std::thread::JoinHandle<()>, NetError> {
    if let Some(fps) = cfg.fps
        && !(fps > 0.0 && fps <= 100_000.0)
    {
        return Err(refuse(&cfg, format!("fps {fps} is out of range")));
    }
    // Probe: negotiate now so that a wrong configuration fails at start
    // with what the device offers, and the stream has its real format.
    let (open, state) = match probe(&cfg) {
        Ok(open) => (open, StreamState::Idle),
        Err(e) if e.is_device_lost() => {
            warn!(stream = %cfg.name, error = %e, "device not there yet; will keep trying");
            (placeholder_open(&cfg), StreamState::Interrupted)
        }
        Err(e) => return Err(refuse(&cfg, e.to_string())),
    };
    let out = host.open(open.clone(), state)?;
    let registry = host
        .extension::<V4l2Registry>()
        .ok_or_else(|| refuse(&cfg, "this node has no V4L2 device registry".into()))?;
    // Values set remotely before (kept in the state directory) come back
    // at the device's next open.
    let kept = registry.kept(&cfg.device);
    registry.lock().insert(
        cfg.device.clone(),
        DeviceEntry {
            stream: cfg.name.clone(),
            remembered: kept,
        },
    );
    let name = cfg.name.clone();
    Ok(std::thread::Builder::new()
        .name(format!("v4l2:{name}"))
        .spawn(move || run(&out, &registry, &cfg, &host.stop_flag(), open, state))?)
}

fn probe(cfg: &V4l2SourceConfig) -> Result<StreamOpen, V4l2Error> {
    let s = open_session(cfg, &[])?;
    let open = s.maker.stream_open().clone();
    drop(s); // closes the device: on demand, it opens when a subscriber comes
    Ok(open)
}

fn placeholder_open(cfg: &V4l2SourceConfig) -> StreamOpen {
    let (w, h) = cfg.size.unwrap_or((640, 480));
    let format = match cfg.output {
        V4l2Output::Mjpeg(_) => framewire_proto::Format::Mjpeg,
        V4l2Output::RawZstd(_) => framewire_proto::Format::RawZstd,
        _ => framewire_proto::Format::Raw,
    };
    StreamOpen {
        format,
        pixel_format: framewire_proto::PixelFormat::None,
        origin: framewire_proto::Origin::DeviceNative,
        width: w,
        height: h,
        fps_num: 0,
        fps_den: 1,
        name: cfg.name.clone(),
        codec_config: Default::default(),
    }
}

/// The capture loop.
fn run(
    out: &StreamOut,
    registry: &V4l2Registry,
    cfg: &V4l2SourceConfig,
    stop: &AtomicBool,
    mut open: StreamOpen,
    initial: StreamState,
) {
    let name = cfg.name.as_str();
    let mut session: Option<Session> = None;
    let mut seq: u64 = 0;
    // When the device was lost (and not yet back), and the retry state.
    let mut lost_since: Option<Instant> = (initial == StreamState::Interrupted).then(Instant::now);
    let mut backoff = V4L2_RETRY_FIRST;
    let mut next_try = Instant::now();
    let mut failed = false;
    let mut last_error = String::new();
    let mut discontinuity = false;
    let mut unwanted_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let wanted = !cfg.on_demand || out.subscribers() > 0;
        if wanted {
            unwanted_since = None;
        } else if unwanted_since.is_none() {
            unwanted_since = Some(Instant::now());
        }
        let keep = wanted || unwanted_since.is_some_and(|t| t.elapsed() < cfg.linger);
        if !keep {
            if let Some(s) = session.take() {
                close(cfg, s, "no subscriber");
            }
            if lost_since.take().is_some() {
                info!(stream = %name, "no subscriber: stopped waiting for the device");
            }
            failed = false;
            out.set_state(StreamState::Idle);
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let Some(s) = session.as_mut() else {
            if !wanted {
                // Lingering with the device closed (lost): no need to reopen.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let now = Instant::now();
            if now < next_try {
                std::thread::sleep((next_try - now).min(Duration::from_millis(20)));
                continue;
            }
            let remembered = registry
                .lock()
                .get(&cfg.device)
                .map(|e| e.remembered.clone())
                .unwrap_or_default();
            match open_session(cfg, &remembered) {
                Ok(s) => {
                    let new_open = s.maker.stream_open().clone();
                    if new_open != open {
                        open = new_open.clone();
                        out.event(StreamEvent::FormatChanged(new_open));
                    }
                    if let Some(t) = lost_since.take() {
                        let ms = t.elapsed().as_millis();
                        info!(stream = %name, recovery_ms = ms as u64, "device back: stream resumed");
                        out.event(StreamEvent::Resumed(EventInfo {
                            timestamp_ns: now_ns(),
                            reason: EventReason::DeviceLost,
                            message: format!("device back after {ms} ms"),
                        }));
                        discontinuity = true;
                    } else {
                        out.set_state(StreamState::Live);
                    }
                    backoff = V4L2_RETRY_FIRST;
                    failed = false;
                    last_error.clear();
                    session = Some(s);
                }
                Err(e) => {
                    let msg = e.to_string();
                    if lost_since.is_none() {
                        // Could not open on demand: the device is missing.
                        lost_since = Some(Instant::now());
                        out.event(StreamEvent::Interrupted(info_event(msg.clone())));
                    }
                    if msg != last_error {
                        warn!(stream = %name, error = %msg, "cannot open the device; retrying");
                        last_error = msg;
                    }
                    if !failed && lost_since.is_some_and(|t| t.elapsed() >= cfg.fail_after) {
                        failed = true;
                        error!(
                            stream = %name,
                            device = %cfg.device.display(),
                            after_s = cfg.fail_after.as_secs_f64(),
                            "device did not come back: stream failed (still retrying)"
                        );
                        out.set_state(StreamState::Failed);
                    }
                    next_try = Instant::now() + backoff;
                    backoff = (backoff * 2).min(cfg.retry_max);
                }
            }
            continue;
        };
        match s.cap.dequeue(POLL) {
            Ok(None) => {}
            Ok(Some(d)) => {
                let gap = match s.last_driver_seq {
                    Some(l) => u64::from(d.sequence.wrapping_sub(l).max(1)),
                    None => 1,
                };
                s.lost += gap - 1;
                s.last_driver_seq = Some(d.sequence);
                seq += gap;
                if d.error {
                    s.lost += 1;
                    warn!(stream = %name, sequence = d.sequence, "the driver flagged a corrupted buffer; skipped");
                } else {
                    let timestamp_ns = if d.monotonic {
                        let (mono, real) = clocks_now();
                        monotonic_to_realtime(d.timestamp_ns, mono, real)
                    } else {
                        now_ns()
                    };
                    match s.maker.process_at(s.cap.data(&d), seq, timestamp_ns) {
                        Ok(frames) => {
                            for data in frames {
                                let mut flags = FrameFlags::KEYFRAME;
                                if discontinuity {
                                    flags = FrameFlags(flags.0 | FrameFlags::DISCONTINUITY.0);
                                    discontinuity = false;
                                }
                                s.frames += 1;
                                out.push(Frame {
                                    data,
                                    sequence: seq,
                                    timestamp_ns,
                                    flags,
                                });
                            }
                        }
                        Err(e) => warn!(stream = %name, error = %e, "buffer could not be made into a frame"),
                    }
                }
                if let Err(e) = s.cap.requeue(d.index) {
                    lose(out, cfg, &mut session, e, &mut lost_since, &mut next_try, &mut backoff);
                }
            }
            Err(e) => lose(out, cfg, &mut session, e, &mut lost_since, &mut next_try, &mut backoff),
        }
    }
    if let Some(s) = session.take() {
        close(cfg, s, "node stopping");
    }
}

fn close(cfg: &V4l2SourceConfig, mut s: Session, why: &str) {
    let dropped_partial = s.maker.reset();
    info!(
        stream = %cfg.name,
        why,
        frames = s.frames,
        lost_at_source = s.lost,
        open_s = s.opened.elapsed().as_secs_f64(),
        dropped_partial,
        "v4l2 capture closed"
    );
    drop(s); // STREAMOFF, munmap, REQBUFS 0, close
}

/// The device failed: tell subscribers, release it, schedule a retry.
fn lose(
    out: &StreamOut,
    cfg: &V4l2SourceConfig,
    session: &mut Option<Session>,
    e: V4l2Error,
    lost_since: &mut Option<Instant>,
    next_try: &mut Instant,
    backoff: &mut Duration,
) {
    let lost = e.is_device_lost();
    warn!(stream = %cfg.name, error = %e, device_lost = lost, "capture failed: releasing the device");
    out.event(StreamEvent::Interrupted(info_event(e.to_string())));
    if let Some(s) = session.take() {
        close(cfg, s, "device lost");
    }
    *lost_since = Some(Instant::now());
    *backoff = V4L2_RETRY_FIRST;
    *next_try = Instant::now() + *backoff;
}

// ----- control commands -----
