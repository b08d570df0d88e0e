//! The frames a benchmark replays, prepared once per run in a temp dir.
//!
//! MJPEG: test-pattern pictures (1920x1080 by default) with per-pixel noise
//! added before encoding, so that the JPEGs have the size of camera frames
//! rather than of flat colour bars (about 150-250 KB at quality 80). They
//! are written as one `.mjpeg` file (framewire's replay source) and as
//! numbered `.jpg` files (GStreamer's `multifilesrc`). Raw: a few I420 (or
//! BGRA) pictures back to back; GStreamer sends one picture repeated
//! (`imagefreeze`), which costs its source nothing, like our replay.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use framewire_codec::{ChromaSubsampling, EncodeSpec, PixelBuffer, PixelLayout, Registry};
use framewire_media::testpattern::{TestPattern, TestPatternConfig};

/// One kind of frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// JPEG pictures.
    Mjpeg,
    /// Raw I420 (yuv420p) 4:2:0 pictures.
    RawI420,
    /// Raw BGRA pictures.
    RawBgra,
}

impl Kind {
    /// Short name.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Mjpeg => "mjpeg",
            Kind::RawI420 => "raw-i420",
            Kind::RawBgra => "raw-bgra",
        }
    }

    /// Parses a label.
    pub fn parse(s: &str) -> Result<Kind, String> {
        match s {
            "mjpeg" => Ok(Kind::Mjpeg),
            "raw" | "raw-i420" | "i420" => Ok(Kind::RawI420),
            "bgra" | "raw-bgra" => Ok(Kind::RawBgra),
            _ => Err(format!("`{s}`: use mjpeg, raw (I420) or bgra")),
        }
    }
}

/// Prepared frames of one kind.
#[derive(Debug, Clone)]
pub struct Workload {
    /// What they are.
    pub kind: Kind,
    /// Width and height.
    pub size: (u32, u32),
    /// The frames back to back (an `.mjpeg` file for JPEGs).
    pub file: PathBuf,
    /// For JPEGs: a directory of `f00000.jpg`... for GStreamer.
    pub jpg_dir: Option<PathBuf>,
    /// Number of distinct frames.
    pub count: usize,
    /// Mean frame size in bytes.
    pub mean_bytes: f64,
    /// Size of each raw frame (0 for JPEGs).
    pub raw_frame_size: usize,
}

/// A xorshift generator: deterministic noise, no dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn pattern(w: u32, h: u32, encode: EncodeSpec) -> anyhow::Result<TestPattern> {
    TestPattern::new(TestPatternConfig {
        name: "bench".into(),
        width: w,
        height: h,
        fps_num: 30,
        fps_den: 1,
        encode,
    })
    .context("test pattern")
}

/// `count` JPEGs of `w`x`h` at `quality` with noise of +-`noise` levels.
pub fn mjpeg(dir: &Path, w: u32, h: u32, count: usize, quality: u8, noise: u8) -> anyhow::Result<Workload> {
    let tp = pattern(w, h, EncodeSpec::raw(framewire_proto::PixelFormat::Bgra))?;
    let mut enc = Registry::builtin()
        .encoder(&EncodeSpec::mjpeg(quality).with_subsampling(ChromaSubsampling::S420))
        .map_err(|r| anyhow::anyhow!("no JPEG encoder in this build: {r}"))?;
    let jpg_dir = dir.join("jpg");
    std::fs::create_dir_all(&jpg_dir)?;
    let file = dir.join("frames.mjpeg");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    let mut rng = Noise(0x9e37_79b9_7f4a_7c15);
    let span = u64::from(noise) * 2 + 1;
    let mut total = 0usize;
    for i in 0..count {
        let pic = tp.render(i as u64 + 1, 1_700_000_000_000_000_000 + i as u64 * 33_333_333);
        let mut px = pic.data().to_vec();
        if noise > 0 {
            for p in px.chunks_exact_mut(4) {
                let r = rng.next();
                for (k, c) in p.iter_mut().take(3).enumerate() {
                    let d = ((r >> (k * 16)) % span) as i16 - i16::from(noise);
                    *c = (i16::from(*c) + d).clamp(0, 255) as u8;
                }
            }
        }
        let pic = PixelBuffer::new(PixelLayout::Bgra, w, h, px)?;
        let jpeg = enc.encode(&pic)?;
        total += jpeg.len();
        out.write_all(&jpeg)?;
        std::fs::write(jpg_dir.join(format!("f{i:05}.jpg")), &jpeg)?;
    }
    out.flush()?;
    Ok(Workload {
        kind: Kind::Mjpeg,
        size: (w, h),
        file,
        jpg_dir: Some(jpg_dir),
        count,
        mean_bytes: total as f64 / count.max(1) as f64,
        raw_frame_size: 0,
    })
}

/// `count` raw pictures of `w`x`h`.
pub fn raw(dir: &Path, kind: Kind, w: u32, h: u32, count: usize) -> anyhow::Result<Workload> {
    let layout = if kind == Kind::RawBgra {
        PixelLayout::Bgra
    } else {
        PixelLayout::I420
    };
    let tp = pattern(w, h, EncodeSpec::raw(framewire_proto::PixelFormat::Bgra))?;
    let file = dir.join(format!("frames.{}", kind.label()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    let mut size = 0;
    for i in 0..count {
        let pic = tp.render(i as u64 + 1, 1_700_000_000_000_000_000).convert(layout)?;
        let bytes = pic.tight_bytes();
        size = bytes.len();
        out.write_all(&bytes)?;
    }
    out.flush()?;
    Ok(Workload {
        kind,
        size: (w, h),
        file,
        jpg_dir: None,
        count,
        mean_bytes: size as f64,
        raw_frame_size: size,
    })
}
