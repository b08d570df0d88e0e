use framewire_codec::{EncodeSpec, PixelBuffer, PixelLayout, Registry};

use super::*;
use crate::testpattern::{TestPattern, TestPatternConfig};

/// Frame `seq` of a test pattern, captured at `ts`, as a picture.
fn pattern(w: u32, h: u32, seq: u64, ts: u64) -> PixelBuffer {
    TestPattern::new(TestPatternConfig {
        name: "t".into(),
        width: w,
        height: h,
        fps_num: 30,
        fps_den: 1,
        encode: EncodeSpec::raw(framewire_proto::PixelFormat::Bgra),
    })
    .unwrap()
    .render(seq, ts)
}

/// A grey picture scaled down by `f` (box filter), as a reader would see
/// a smaller window or a browser tile.
fn shrink(pic: &PixelBuffer, f: usize) -> (Vec<u8>, usize, usize) {
    let i420 = pic.convert(PixelLayout::I420).unwrap();
    let (w, h) = (pic.width() as usize, pic.height() as usize);
    let (sw, sh) = (w / f, h / f);
    let mut out = vec![0u8; sw * sh];
    for y in 0..sh {
        for x in 0..sw {
            let mut sum = 0u32;
            for dy in 0..f {
                sum += i420.row(0, y * f + dy)[x * f..x * f + f]
                    .iter()
                    .map(|&v| u32::from(v))
                    .sum::<u32>();
            }
            out[y * sw + x] = (sum / (f * f) as u32) as u8;
        }
    }
    (out, sw, sh)
}

const TS: u64 = 1_796_000_000_123_456_789;

#[test]
fn the_test_pattern_carries_its_capture_time_and_sequence() {
    for (w, h) in [(320, 240), (640, 360), (1920, 1080)] {
        for seq in [0, 1, 65_535, 65_536, 1_000_003] {
            let pic = pattern(w, h, seq, TS + seq * 33_333_333);
            let code = read(&pic).unwrap_or_else(|| panic!("{w}x{h} #{seq}: no code"));
            assert_eq!(code, TimeCode::new(seq, TS + seq * 33_333_333));
            // As a screen grab shows it: BGRA.
            let stride = pic.plane(0).stride;
            let bgra = read_bgra(pic.data(), w as usize, h as usize, stride);
            assert_eq!(bgra, Some(code), "{w}x{h} #{seq} from BGRA");
        }
    }
}

#[test]
fn the_capture_time_is_resolved_against_the_readers_clock() {
    let code = TimeCode::new(7, TS);
    let at = TS / 1_000 * 1_000;
    // Read 40 ms later, or 5 days later: the time is the one before.
    assert_eq!(code.capture_ns(TS + 40_000_000), at);
    assert_eq!(code.capture_ns(TS + 5 * 86_400_000_000_000), at);
    // Read at the very moment.
    assert_eq!(code.capture_ns(at), at);
}

#[test]
fn a_picture_without_a_code_reads_as_none() {
    assert_eq!(read_luma(&vec![128u8; 640 * 480], 640, 480, 640), None);
    // A flipped bit fails the checksum.
    let pic = pattern(640, 480, 5, TS);
    let mut i420 = pic.convert(PixelLayout::I420).unwrap().data().to_vec();
    let (x0, x1, y0, y1) = cell(640, 480, 1, 20);
    for y in y0..y1 {
        for v in &mut i420[y * 640 + x0..y * 640 + x1] {
            *v = 255 - *v;
        }
    }
    assert_eq!(read_luma(&i420, 640, 480, 640), None);
    // Too small to hold it.
    assert_eq!(read_luma(&[0u8; 40 * 20], 40, 20, 40), None);
}

#[test]
fn the_code_survives_jpeg_and_a_quarter_of_the_size() {
    let registry = Registry::builtin();
    for quality in [50, 75, 90] {
        let mut enc = registry.encoder(&EncodeSpec::mjpeg(quality)).unwrap();
        let open = enc.stream_open(1920, 1080, 30, 1, "t");
        let mut dec = registry.negotiate(&open).unwrap();
        for seq in 0..4u64 {
            let ts = TS + seq * 33_333_333;
            let jpeg = enc.encode(&pattern(1920, 1080, seq, ts)).unwrap();
            let pic = dec.decode(&jpeg).unwrap();
            assert_eq!(read(&pic), Some(TimeCode::new(seq, ts)), "quality {quality}, full size");
            let (small, sw, sh) = shrink(&pic, 4);
            assert_eq!(
                read_luma(&small, sw, sh, sw),
                Some(TimeCode::new(seq, ts)),
                "quality {quality}, a quarter of the size"
            );
        }
    }
}

#[test]
fn the_code_survives_h264_and_a_quarter_of_the_size() {
    let registry = Registry::builtin();
    // About 4 Mbit/s at 30 fps for 1080p, a keyframe every 30 frames.
    let mut enc = registry.encoder(&EncodeSpec::h264(4_000_000, 30)).unwrap();
    let mut open = enc.stream_open(1920, 1080, 30, 1, "t");
    let mut dec = None;
    for seq in 0..12u64 {
        let ts = TS + seq * 33_333_333;
        let au = enc.encode(&pattern(1920, 1080, seq, ts)).unwrap();
        if enc.keyframe() {
            open.codec_config = enc.codec_config();
        }
        let dec = dec.get_or_insert_with(|| registry.negotiate(&open).unwrap());
        let pic = dec.decode(&au).unwrap();
        assert_eq!(read(&pic), Some(TimeCode::new(seq, ts)), "frame {seq}, full size");
        let (small, sw, sh) = shrink(&pic, 4);
        assert_eq!(
            read_luma(&small, sw, sh, sw),
            Some(TimeCode::new(seq, ts)),
            "frame {seq}, a quarter"
        );
    }
}

#[test]
fn the_overlay_is_drawn_in_every_layout_and_read_back() {
    // A picture that is not the test pattern: a noisy gradient, odd sizes.
    for (w, h) in [(640u32, 360u32), (642, 362), (1920, 1080)] {
        let mut bgra = vec![0u8; (w * h * 4) as usize];
        for (i, p) in bgra.chunks_exact_mut(4).enumerate() {
            let v = (i * 7 % 251) as u8;
            p.copy_from_slice(&[v, v.wrapping_mul(3), 255 - v, 255]);
        }
        let src = PixelBuffer::new(PixelLayout::Bgra, w, h, bgra).unwrap();
        assert_eq!(read(&src), None, "{w}x{h}: no code before");
        for layout in [
            PixelLayout::Bgra,
            PixelLayout::Rgba,
            PixelLayout::Bgr,
            PixelLayout::Rgb,
            PixelLayout::I420,
            PixelLayout::Yuyv,
        ] {
            let pic = src.convert(layout).unwrap();
            let code = TimeCode::new(w as u64 + 9, TS);
            let out = overlay(&pic, code);
            assert_eq!((out.layout(), out.width(), out.height()), (layout, w, h));
            assert_eq!(read(&out), Some(code), "{w}x{h} {layout:?}");
            // And through JPEG, as a source encoding it would send it.
            let mut enc = Registry::builtin().encoder(&EncodeSpec::mjpeg(75)).unwrap();
            let open = enc.stream_open(w, h, 30, 1, "t");
            let jpeg = enc.encode(&out).unwrap();
            let back = Registry::builtin().negotiate(&open).unwrap().decode(&jpeg).unwrap();
            assert_eq!(read(&back), Some(code), "{w}x{h} {layout:?} after JPEG");
        }
    }
}
