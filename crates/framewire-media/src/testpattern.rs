//! The test-pattern source: moving colour bars, a time code, and the frame
//! number and capture time drawn into the picture, so a person looking at a
//! viewer sees at once whether frames move, stall or arrive out of order,
//! and the same as a time code a machine reads back (crate::timecode).

use bytes::Bytes;
use framewire_codec::{CodecError, EncodeSpec, Encoder, PixelBuffer, PixelLayout, Registry};
use framewire_proto::StreamOpen;

use crate::font::{Canvas, draw_text, text_width};

/// The eight bars, left to right, as B, G, R, A.
const BARS: [[u8; 4]; 8] = [
    [235, 235, 235, 255], // white
    [16, 235, 235, 255],  // yellow
    [235, 235, 16, 255],  // cyan
    [16, 235, 16, 255],   // green
    [235, 16, 235, 255],  // magenta
    [16, 16, 235, 255],   // red
    [235, 16, 16, 255],   // blue
    [16, 16, 16, 255],    // black
];

/// What the test pattern produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPatternConfig {
    /// Stream name.
    pub name: String,
    /// Picture width (2..=16384, even).
    pub width: u32,
    /// Picture height (2..=16384, even).
    pub height: u32,
    /// Nominal rate numerator.
    pub fps_num: u32,
    /// Nominal rate denominator.
    pub fps_den: u32,
    /// How each picture is encoded for the wire.
    pub encode: EncodeSpec,
}

/// The test pattern could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestPatternError {
    /// Width or height out of range or odd.
    #[error("test pattern size {width}x{height} is not supported: both must be even, between 2 and 16384")]
    BadSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// The encoder is not available in this build or refused the spec.
    #[error("test pattern encoder: {0}")]
    Encoder(String),
    /// Encoding a picture failed.
    #[error("test pattern encode: {0}")]
    Codec(#[from] CodecError),
}

/// Draws and encodes test-pattern frames.
#[derive(Debug)]
pub struct TestPattern {
    config: TestPatternConfig,
    encoder: Box<dyn Encoder>,
    open: StreamOpen,
    /// One row of bars twice as wide as the picture, so scrolling is a copy.
    bar_row: Vec<u8>,
}

impl TestPattern {
    /// A test pattern as configured.
    pub fn new(config: TestPatternConfig) -> Result<TestPattern, TestPatternError> {
        let (w, h) = (config.width, config.height);
        if !(2..=16384).contains(&w) || !(2..=16384).contains(&h) || !w.is_multiple_of(2) || !h.is_multiple_of(2) {
            return Err(TestPatternError::BadSize { width: w, height: h });
        }
        let encoder = Registry::builtin()
            .encoder(&config.encode)
            .map_err(|r| TestPatternError::Encoder(r.to_string()))?;
        let open = encoder.stream_open(w, h, config.fps_num, config.fps_den, &config.name);
        let w = w as usize;
        let mut bar_row = Vec::with_capacity(w * 8);
        for x in 0..2 * w {
            bar_row.extend_from_slice(&BARS[(x % w) * 8 / w]);
        }
        Ok(TestPattern {
            config,
            encoder,
            open,
            bar_row,
        })
    }

    /// The STREAM_OPEN for this source's frames.
    pub fn stream_open(&self) -> &StreamOpen {
        &self.open
    }

    /// The configuration.
    pub fn config(&self) -> &TestPatternConfig {
        &self.config
    }

    /// Draws frame `sequence`, captured at `timestamp_ns`, as BGRA.
    pub fn render(&self, sequence: u64, timestamp_ns: u64) -> PixelBuffer {
        let (w, h) = (self.config.width as usize, self.config.height as usize);
        let mut px = vec![0u8; w * h * 4];
        let bars_end = h * 2 / 3;
        let code_end = h * 3 / 4;
        // Bars scroll by 1/120 of the width per frame.
        let step = (w / 120).max(1);
        let offset = usize::try_from(sequence % (w as u64)).unwrap_or(0) * step % w;
        let bar = &self.bar_row[offset * 4..(offset + w) * 4];
        for row in px.chunks_exact_mut(w * 4).take(bars_end) {
            row.copy_from_slice(bar);
        }
        // Between bars and text: the capture time and sequence as a code a
        // machine reads back (crate::timecode).
        crate::timecode::draw(&mut px, w, h, crate::timecode::TimeCode::new(sequence, timestamp_ns));
        // Text: frame number and UTC capture time, as large as fits.
        let secs = timestamp_ns / 1_000_000_000;
        let ms = (timestamp_ns / 1_000_000) % 1000;
        let (hh, mm, ss) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let counter = format!("#{sequence:08}");
        let clock = format!("{hh:02}:{mm:02}:{ss:02}.{ms:03}");
        let text_rows = h - code_end;
        // Both strings side by side with four characters between them.
        let both = text_width(&counter, 1) + text_width(&clock, 1) + text_width("    ", 1);
        let scale = (text_rows / 10).min(w / both).max(1);
        let y = code_end + (text_rows.saturating_sub(7 * scale)) / 2;
        let white = [255, 255, 255, 255];
        let cw = text_width(&clock, scale);
        let mut canvas = Canvas {
            pixels: &mut px,
            width: w,
            height: h,
        };
        draw_text(&mut canvas, (scale * 2, y), scale, &counter, white);
        draw_text(&mut canvas, (w.saturating_sub(cw + scale * 2), y), scale, &clock, white);
        // Cannot fail: the buffer is exactly w*h*4 bytes of a size checked in `new`.
        PixelBuffer::new(PixelLayout::Bgra, self.config.width, self.config.height, px)
            .expect("test pattern buffer matches its size")
    }

    /// Draws and encodes frame `sequence`, captured at `timestamp_ns`.
    pub fn frame(&mut self, sequence: u64, timestamp_ns: u64) -> Result<Bytes, TestPatternError> {
        let picture = self.render(sequence, timestamp_ns);
        let data = self.encoder.encode(&picture)?;
        if self.encoder.keyframe() {
            let config = self.encoder.codec_config();
            if config != self.open.codec_config {
                self.open.codec_config = config;
            }
        }
        Ok(data)
    }

    /// Whether the frame made last is one a decoder can start at (always,
    /// but for H.264).
    pub fn keyframe(&self) -> bool {
        self.encoder.keyframe()
    }

    /// Makes the next frame a keyframe.
    pub fn force_keyframe(&mut self) {
        self.encoder.force_keyframe();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use framewire_proto::{Format, PixelFormat};

    fn config(encode: EncodeSpec) -> TestPatternConfig {
        TestPatternConfig {
            name: "bars".into(),
            width: 320,
            height: 240,
            fps_num: 30,
            fps_den: 1,
            encode,
        }
    }

    #[test]
    fn frames_differ_and_decode() {
        let mut tp = TestPattern::new(config(EncodeSpec::mjpeg(80))).unwrap();
        assert_eq!(tp.stream_open().format, Format::Mjpeg);
        let a = tp.frame(1, 1_000_000_000).unwrap();
        let b = tp.frame(2, 1_033_000_000).unwrap();
        assert_ne!(a, b);
        assert_eq!(&a[..2], &[0xff, 0xd8]);
        let mut dec = Registry::builtin().negotiate(tp.stream_open()).unwrap();
        let pic = dec.decode(&a).unwrap();
        assert_eq!((pic.width(), pic.height()), (320, 240));
    }

    #[test]
    fn bars_scroll_and_text_is_drawn() {
        let tp = TestPattern::new(config(EncodeSpec::raw(PixelFormat::Bgra))).unwrap();
        let p0 = tp.render(0, 0);
        let p1 = tp.render(1, 0);
        // First row: leftmost pixel is white at frame 0 and moves on later.
        assert_eq!(&p0.row(0, 0)[..4], &BARS[0]);
        assert_ne!(p0.row(0, 0), p1.row(0, 0));
        // Some pixel in the text band is white.
        let white = (180..240).any(|y| p0.row(0, y).chunks(4).any(|p| p == [255, 255, 255, 255]));
        assert!(white, "no text drawn in the bottom band");
    }

    #[test]
    fn counter_and_clock_do_not_overlap() {
        for (w, h) in [(320u32, 240u32), (640, 360), (1280, 720), (1920, 1080)] {
            let mut c = config(EncodeSpec::raw(PixelFormat::Bgra));
            (c.width, c.height) = (w, h);
            let tp = TestPattern::new(c).unwrap();
            let p = tp.render(12_345_678, 86_399_999_000_000);
            // A column with no white in the text band separates the two strings.
            let band = (h * 3 / 4) as usize..h as usize;
            let white_in_column = |x: usize| {
                band.clone()
                    .any(|y| p.row(0, y)[x * 4..x * 4 + 4] == [255, 255, 255, 255])
            };
            let columns: Vec<bool> = (0..w as usize).map(white_in_column).collect();
            // Between the first and the last white column, the widest run of
            // columns without white is the space between the two strings: at
            // least three characters wide (18 columns at scale 1).
            let first = columns.iter().position(|c| *c).unwrap();
            let last = columns.iter().rposition(|c| *c).unwrap();
            let widest_gap = columns[first..=last]
                .split(|c| *c)
                .map(<[bool]>::len)
                .max()
                .unwrap_or(0);
            assert!(
                widest_gap >= 18,
                "{w}x{h}: counter and clock run together (gap {widest_gap})"
            );
        }
    }

    #[test]
    fn raw_output_is_the_picture() {
        let mut tp = TestPattern::new(config(EncodeSpec::raw(PixelFormat::Bgra))).unwrap();
        let data = tp.frame(5, 0).unwrap();
        assert_eq!(data.len(), 320 * 240 * 4);
        assert_eq!(&data[..], &tp.render(5, 0).tight_bytes()[..]);
    }

    #[test]
    fn odd_sizes_are_refused() {
        let mut c = config(EncodeSpec::qoi());
        c.width = 321;
        assert!(matches!(TestPattern::new(c), Err(TestPatternError::BadSize { .. })));
    }
}
