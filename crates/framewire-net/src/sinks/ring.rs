//! The `ring` sink: writes a stream into a shared-memory ring of frame
//! slots (120 by default, docs/shm.md) that programs outside framewire
//! read without the protocol: open the file, map it, follow the write
//! cursor (the C layout is `include/framewire/fw_ring.h`;
//! `framewire ring read PATH` is a reader).
//!
//! The ring is sized from the stream's STREAM_OPEN: a raw frame's exact
//! size, or for compressed formats one byte per pixel (at least 256 KiB),
//! unless `max-frame` says otherwise; a frame larger than a slot is
//! skipped and counted. A stream that comes back with another size gets a
//! new ring at the same path. The file is removed when the node stops.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use framewire_codec::PixelLayout;
use framewire_proto::{Format, StreamOpen};
use framewire_shm::{FrameMeta, RingGeometry, RingWriter};
use serde::Deserialize;
use tracing::{info, warn};

use crate::api::{SinkHost, SinkSpec};
use crate::config::{ConfigError, SinkKind};

/// Slots of a ring unless `slots` says otherwise (seed 001).
pub(crate) const DEFAULT_RING_SLOTS: u32 = framewire_shm::ring::DEFAULT_SLOTS;
/// Smallest slot for a compressed stream.
const MIN_COMPRESSED_SLOT: usize = 256 * 1024;
/// Largest ring the sink makes (slots × slot size).
const MAX_RING_BYTES: u64 = 4 << 30;

/// Writes a stream into a ring file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingSink {
    /// The ring file [default: `/dev/shm/framewire-ring-STREAM`].
    pub path: PathBuf,
    /// Slots in the ring.
    pub slots: u32,
    /// Bytes a slot holds [default: from the stream's format and size].
    pub max_frame: Option<usize>,
}

impl SinkKind {
    /// A sink that writes `stream` into a ring at `path`.
    pub fn ring(path: impl Into<PathBuf>) -> SinkKind {
        SinkKind::new(RingSink {
            path: path.into(),
            slots: DEFAULT_RING_SLOTS,
            max_frame: None,
        })
    }
}

/// Where a stream's ring goes by default.
pub fn default_ring_path(stream: &str) -> PathBuf {
    let name: String = stream
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(format!("/dev/shm/framewire-ring-{name}"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    path: Option<PathBuf>,
    slots: Option<u32>,
    max_frame: Option<usize>,
}

pub(super) fn from_table(stream: &str, table: toml::Table) -> Result<SinkKind, ConfigError> {
    let k: Keys = table
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::new(format!("sink of `{stream}`: {}", e.message())))?;
    let slots = k.slots.unwrap_or(DEFAULT_RING_SLOTS);
    if !(2..=100_000).contains(&slots) {
        return Err(ConfigError::new(format!(
            "sink of `{stream}`: slots = {slots}: a ring has 2 to 100000 slots"
        )));
    }
    if k.max_frame == Some(0) {
        return Err(ConfigError::new(format!(
            "sink of `{stream}`: max-frame must be above 0"
        )));
    }
    Ok(SinkKind::new(RingSink {
        path: k.path.unwrap_or_else(|| default_ring_path(stream)),
        slots,
        max_frame: k.max_frame,
    }))
}

/// Bytes a slot must hold for frames of `open`.
fn slot_bytes(open: &StreamOpen) -> usize {
    let pixels = open.width as usize * open.height as usize;
    match open.format {
        Format::Raw => PixelLayout::from_wire(open.pixel_format)
            .and_then(|l| l.frame_size(open.width, open.height).ok())
            .unwrap_or(pixels * 4),
        _ => pixels.max(MIN_COMPRESSED_SLOT),
    }
}

impl RingSink {
    fn geometry(&self, open: &StreamOpen) -> Result<RingGeometry, String> {
        let geo = RingGeometry::for_frames(self.slots, self.max_frame.unwrap_or_else(|| slot_bytes(open)));
        let total = u64::from(geo.slots) * u64::from(geo.slot_size);
        if total > MAX_RING_BYTES {
            return Err(format!(
                "a ring of {} slots of {} bytes is {} MiB, above the {} MiB a ring sink makes: lower slots or max-frame",
                geo.slots,
                geo.slot_size,
                total >> 20,
                MAX_RING_BYTES >> 20
            ));
        }
        Ok(geo)
    }
}

impl SinkSpec for RingSink {
    fn kind(&self) -> &'static str {
        "ring"
    }

    fn label(&self) -> String {
        format!("sink:ring:{}", self.path.display())
    }

    fn run(&self, host: SinkHost) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let sink = self.clone();
        Box::pin(async move { sink.write(host).await })
    }
}

impl RingSink {
    async fn write(self, host: SinkHost) {
        let mut stop = host.stopping();
        let mut ring: Option<RingWriter> = None;
        let mut oversize = 0u64;
        while let Some(input) = host.attach().await {
            let geo = match self.geometry(input.open()) {
                Ok(g) => g,
                Err(e) => {
                    warn!(stream = %host.stream(), path = %self.path.display(), "{e}; ring sink not started");
                    return;
                }
            };
            if ring.as_ref().is_none_or(|r| r.geometry() != geo) {
                drop(ring.take()); // closes the old ring and removes its file
                match create(&self.path, geo) {
                    Ok(r) => ring = Some(r),
                    Err(e) => {
                        warn!(path = %self.path.display(), error = %e, "ring sink cannot create its ring; not started");
                        return;
                    }
                }
                info!(
                    stream = %host.stream(),
                    path = %self.path.display(),
                    slots = geo.slots,
                    max_frame = geo.max_frame(),
                    "ring sink writing"
                );
            }
            let Some(r) = ring.as_mut() else { return };
            loop {
                match input.poll() {
                    Some(tx) => {
                        let meta = FrameMeta {
                            sequence: tx.frame.sequence,
                            timestamp_ns: tx.frame.timestamp_ns,
                            flags: tx.frame.flags.0,
                            planes: vec![],
                        };
                        if r.write(&meta, &tx.frame.data).is_err() {
                            oversize += 1;
                            if oversize.is_power_of_two() {
                                warn!(
                                    path = %self.path.display(),
                                    len = tx.frame.data.len(),
                                    max = geo.max_frame(),
                                    skipped = oversize,
                                    "frame larger than a ring slot: skipped (set max-frame)"
                                );
                            }
                        }
                        input.sent();
                    }
                    None => {
                        if !input.attached() {
                            break; // the stream went away; wait for it again
                        }
                        tokio::select! {
                            () = input.ready(Duration::from_millis(200)) => {}
                            _ = stop.changed() => {}
                        }
                        if *stop.borrow() {
                            return; // dropping the ring closes it and removes the file
                        }
                    }
                }
            }
        }
    }
}

fn create(path: &Path, geo: RingGeometry) -> std::io::Result<RingWriter> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    RingWriter::create(path, geo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use framewire_proto::{Origin, PixelFormat};

    fn open(format: Format, pixel_format: PixelFormat, w: u32, h: u32) -> StreamOpen {
        StreamOpen {
            format,
            pixel_format,
            origin: Origin::Software,
            width: w,
            height: h,
            fps_num: 30,
            fps_den: 1,
            name: "x".into(),
            codec_config: Default::default(),
        }
    }

    #[test]
    fn slots_fit_the_stream() {
        assert_eq!(
            slot_bytes(&open(Format::Raw, PixelFormat::Bgra, 640, 480)),
            640 * 480 * 4
        );
        assert_eq!(
            slot_bytes(&open(Format::Raw, PixelFormat::Yuv420p, 640, 480)),
            640 * 480 * 3 / 2
        );
        assert_eq!(
            slot_bytes(&open(Format::Mjpeg, PixelFormat::None, 1920, 1080)),
            1920 * 1080
        );
        assert_eq!(
            slot_bytes(&open(Format::Mjpeg, PixelFormat::None, 64, 48)),
            MIN_COMPRESSED_SLOT
        );
        let huge = RingSink {
            path: "/dev/shm/x".into(),
            slots: 120,
            max_frame: None,
        };
        assert!(
            huge.geometry(&open(Format::Raw, PixelFormat::Bgra, 7680, 4320))
                .is_err()
        );
    }

    #[test]
    fn keys_are_checked() {
        let t = |s: &str| -> toml::Table { toml::from_str(s).unwrap() };
        assert!(from_table("cam", t("slots = 1")).is_err());
        assert!(from_table("cam", t("max_frame = 0")).is_err());
        assert!(from_table("cam", t("colour = 1")).is_err());
        let k = from_table("lab:cam", t("")).unwrap();
        let r = k.downcast_ref::<RingSink>().unwrap();
        assert_eq!(r.path, PathBuf::from("/dev/shm/framewire-ring-lab_cam"));
    }
}
