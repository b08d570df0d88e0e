//! Each codec: round trips, quality, and hostile input.

// test-runner: alone (it encodes and decodes on both cores; scripts/run-tests.py)

// With some codec features off, helpers for them go unused.
#![cfg_attr(not(all(feature = "jpeg", feature = "qoi", feature = "zstd")), allow(unused))]

use std::time::Instant;

use bytes::Bytes;
use framewire_codec::{
    ChromaSubsampling, CodecError, DecodeOptions, Decoder, EncodeSpec, Encoder, Limits, PixelBuffer, PixelLayout,
    Registry, testkit,
};
use framewire_proto::{Format, Origin, PixelFormat, StreamOpen};

fn open(format: Format, pixel_format: PixelFormat, width: u32, height: u32) -> StreamOpen {
    StreamOpen {
        format,
        pixel_format,
        origin: Origin::Software,
        width,
        height,
        fps_num: 30,
        fps_den: 1,
        name: "test".into(),
        codec_config: Default::default(),
    }
}

fn codec_pair(spec: &EncodeSpec, width: u32, height: u32) -> (Box<dyn Encoder>, Box<dyn Decoder>) {
    let registry = Registry::builtin();
    let encoder = registry.encoder(spec).unwrap();
    let open = encoder.stream_open(width, height, 30, 1, "test");
    let decoder = registry.negotiate(&open).unwrap();
    (encoder, decoder)
}

/// Lossless formats at 1920x1080 on both kinds of content, bit-exact.
fn lossless_1080p(spec: EncodeSpec) {
    let t0 = Instant::now();
    for (kind, frame) in [
        ("screen", testkit::screen_like(1920, 1080, 1)),
        ("camera", testkit::camera_like(1920, 1080, 2)),
    ] {
        let (mut enc, mut dec) = codec_pair(&spec, 1920, 1080);
        let payload = enc.encode(&frame).unwrap();
        let back = dec.decode(&payload).unwrap();
        let back = back.convert(frame.layout()).unwrap();
        assert!(back.pixels_eq(&frame), "{} {kind}: not bit-exact", spec.format);
        eprintln!(
            "{} {kind}: {} -> {} bytes",
            spec.format,
            frame.frame_size(),
            payload.len()
        );
    }
    assert!(t0.elapsed().as_secs() < 120, "took {:?}", t0.elapsed());
}

#[cfg(feature = "qoi")]
#[test]
fn qoi_is_lossless_at_1080p() {
    lossless_1080p(EncodeSpec::qoi());
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_is_lossless_at_1080p() {
    lossless_1080p(EncodeSpec::raw_zstd(PixelFormat::Bgra, 1));
}

#[test]
fn raw_is_lossless_at_1080p() {
    lossless_1080p(EncodeSpec::raw(PixelFormat::Bgra));
}

#[test]
fn raw_formats_round_trip_in_every_pixel_format() {
    let src = testkit::camera_like(64, 36, 5);
    let mut formats = vec![Format::Raw];
    if cfg!(feature = "zstd") {
        formats.push(Format::RawZstd);
    }
    for format in formats {
        for pf in [
            PixelFormat::Bgra,
            PixelFormat::Rgba,
            PixelFormat::Bgr,
            PixelFormat::Yuv420p,
            PixelFormat::Yuv422Packed,
        ] {
            let spec = EncodeSpec {
                format,
                pixel_format: pf,
                ..EncodeSpec::raw(pf)
            };
            let (mut enc, mut dec) = codec_pair(&spec, 64, 36);
            assert_eq!(enc.pixel_format(), pf);
            // The encoder converts to the wire layout; decoding gives exactly that.
            let expected = src.convert(PixelLayout::from_wire(pf).unwrap()).unwrap();
            let back = dec.decode(&enc.encode(&src).unwrap()).unwrap();
            assert!(back.pixels_eq(&expected), "{format} {pf}");
        }
    }
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_level_is_configurable_and_checked() {
    let frame = testkit::screen_like(320, 200, 4);
    let (mut fast, _) = codec_pair(&EncodeSpec::raw_zstd(PixelFormat::Bgra, 1), 320, 200);
    let (mut slow, _) = codec_pair(&EncodeSpec::raw_zstd(PixelFormat::Bgra, 19), 320, 200);
    let (a, b) = (fast.encode(&frame).unwrap(), slow.encode(&frame).unwrap());
    assert!(
        b.len() < a.len(),
        "level 19 ({}) should beat level 1 ({})",
        b.len(),
        a.len()
    );
    assert!(
        Registry::builtin()
            .encoder(&EncodeSpec::raw_zstd(PixelFormat::Bgra, 99))
            .is_err()
    );
    assert_eq!(framewire_codec::DEFAULT_ZSTD_LEVEL, 1);
    // The frame header carries the content size.
    let size = ::zstd::zstd_safe::get_frame_content_size(&a).unwrap();
    assert_eq!(size, Some(320 * 200 * 4));
}

#[cfg(feature = "jpeg")]
mod jpeg {
    use super::*;
    use framewire_codec::mjpeg::MjpegDecoder;

    #[test]
    fn mjpeg_q85_keeps_psnr_above_35db() {
        let frame = testkit::natural(1920, 1080, 7);
        let (mut enc, mut dec) = codec_pair(&EncodeSpec::mjpeg(85), 1920, 1080);
        assert_eq!(enc.origin(), Origin::LibjpegTurbo);
        let payload = enc.encode(&frame).unwrap();
        let back = dec.decode(&payload).unwrap();
        let db = testkit::psnr(&frame, &back).unwrap();
        eprintln!("MJPEG q85 4:2:0 natural 1920x1080: {db:.2} dB, {} bytes", payload.len());
        assert!(db > 35.0, "PSNR {db:.2} dB");
        // Quality is a real knob: q30 is smaller and worse.
        let (mut low, _) = codec_pair(&EncodeSpec::mjpeg(30), 1920, 1080);
        let low_payload = low.encode(&frame).unwrap();
        let low_db = testkit::psnr(&frame, &dec.decode(&low_payload).unwrap()).unwrap();
        assert!(
            low_payload.len() < payload.len() && low_db < db,
            "q30: {low_db:.2} dB, {} bytes",
            low_payload.len()
        );
    }

    #[test]
    fn every_input_layout_encodes_and_output_layout_is_configurable() {
        let src = testkit::natural(96, 64, 3);
        let registry = Registry::builtin();
        for layout in PixelLayout::ALL {
            let mut enc = registry.encoder(&EncodeSpec::mjpeg(90)).unwrap();
            let payload = enc.encode(&src.convert(*layout).unwrap()).unwrap();
            for out in [PixelLayout::Rgba, PixelLayout::Bgra, PixelLayout::Rgb, PixelLayout::Bgr] {
                let opts = DecodeOptions {
                    rgb_layout: out,
                    ..DecodeOptions::default()
                };
                let mut dec = registry
                    .clone()
                    .with_options(opts)
                    .negotiate(&enc.stream_open(96, 64, 0, 1, "x"))
                    .unwrap();
                let back = dec.decode(&payload).unwrap();
                assert_eq!(back.layout(), out);
                let db = testkit::psnr(&src, &back).unwrap();
                assert!(db > 33.0, "{layout} -> {out}: {db:.1} dB");
            }
        }
    }

    #[test]
    fn padded_rows_encode_like_tight_ones() {
        let src = testkit::natural(50, 20, 1);
        let mut padded = Vec::new();
        for y in 0..20 {
            padded.extend_from_slice(src.row(0, y));
            padded.extend_from_slice(&[0xAB; 24]);
        }
        let strided = PixelBuffer::with_stride(PixelLayout::Bgra, 50, 20, 224, padded).unwrap();
        let (mut enc, _) = codec_pair(&EncodeSpec::mjpeg(85), 50, 20);
        assert_eq!(enc.encode(&src).unwrap(), enc.encode(&strided).unwrap());
    }

    fn full_range_to_rgb(y: u8, cb: u8, cr: u8) -> [f64; 3] {
        let (y, cb, cr) = (f64::from(y), f64::from(cb) - 128.0, f64::from(cr) - 128.0);
        [y + 1.402 * cr, y - 0.344_136 * cb - 0.714_136 * cr, y + 1.772 * cb]
    }

    #[test]
    fn subsampling_is_configurable_and_planes_decode_directly() {
        let src = testkit::natural(66, 34, 8); // not a multiple of the MCU size
        let cases = [
            (ChromaSubsampling::S444, (66, 34)),
            (ChromaSubsampling::S422, (33, 34)),
            (ChromaSubsampling::S420, (33, 17)),
        ];
        for (sub, chroma) in cases {
            let (mut enc, mut dec) = codec_pair(&EncodeSpec::mjpeg(92).with_subsampling(sub), 66, 34);
            let payload = enc.encode(&src).unwrap();
            let rgb = dec.decode(&payload).unwrap().convert(PixelLayout::Rgb).unwrap();
            let mut planes_dec =
                MjpegDecoder::new(&enc.stream_open(66, 34, 0, 1, "x"), &DecodeOptions::default()).unwrap();
            let planes = planes_dec.decode_planes(&payload).unwrap();
            assert_eq!(planes.subsampling, sub);
            assert_eq!(planes.chroma_size, chroma, "{sub:?}");
            assert_eq!((planes.width, planes.height), (66, 34));
            // The planes, converted by hand (full-range BT.601), match the RGB decode.
            let (sx, sy) = (66 / chroma.0, 34 / chroma.1);
            let mut worst = 0f64;
            for y in 0..34 {
                for x in 0..66 {
                    let yv = planes.y()[y * planes.y_size.0 + x];
                    let ci = (y / sy) * planes.chroma_size.0 + x / sx;
                    let want = full_range_to_rgb(yv, planes.cb()[ci], planes.cr()[ci]);
                    if sub == ChromaSubsampling::S444 {
                        for (c, w) in want.iter().enumerate() {
                            worst = worst.max((w.clamp(0.0, 255.0) - f64::from(rgb.row(0, y)[x * 3 + c])).abs());
                        }
                    }
                }
            }
            assert!(worst <= 2.0, "{sub:?}: plane conversion differs by {worst}");
        }
        let (mut gray, mut dec) = codec_pair(&EncodeSpec::mjpeg(90).with_subsampling(ChromaSubsampling::Gray), 66, 34);
        let payload = gray.encode(&src).unwrap();
        let back = dec.decode(&payload).unwrap();
        assert!(
            back.data().chunks_exact(4).all(|p| p[0] == p[1] && p[1] == p[2]),
            "gray decodes to R = G = B"
        );
    }

    /// A JPEG whose SOF header says `width` x `height`.
    fn jpeg_with_size(width: u16, height: u16) -> Vec<u8> {
        let (mut enc, _) = codec_pair(&EncodeSpec::mjpeg(80), 16, 16);
        let mut jpeg = enc.encode(&testkit::natural(16, 16, 1)).unwrap().to_vec();
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline SOF0");
        jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
        jpeg
    }

    #[test]
    fn huge_header_is_refused_before_allocation() {
        let registry = Registry::builtin();
        let mut dec = registry
            .negotiate(&open(Format::Mjpeg, PixelFormat::None, 0, 0))
            .unwrap();
        let err = dec.decode(&Bytes::from(jpeg_with_size(60000, 60000))).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::TooLarge {
                    width: 60000,
                    height: 60000,
                    ..
                }
            ),
            "{err}"
        );
        // A lower limit applies too.
        let small = registry.clone().with_options(DecodeOptions {
            limits: Limits { max_pixels: 100 },
            ..Default::default()
        });
        let mut dec = small.negotiate(&open(Format::Mjpeg, PixelFormat::None, 0, 0)).unwrap();
        assert!(matches!(
            dec.decode(&Bytes::from(jpeg_with_size(16, 16))),
            Err(CodecError::TooLarge { .. })
        ));
        // A stream that declares no size gets no picture over UHD (8192x8192
        // would be 268 MB of pixels), one that declares its size up to it.
        let mut undeclared = registry
            .negotiate(&open(Format::Mjpeg, PixelFormat::None, 0, 0))
            .unwrap();
        assert!(matches!(
            undeclared.decode(&Bytes::from(jpeg_with_size(8192, 8192))),
            Err(CodecError::TooLarge { .. })
        ));
        assert_eq!(framewire_codec::UNDECLARED_MAX_PIXELS, 3840 * 2160);
        // And a declared size must match.
        let mut dec = registry
            .negotiate(&open(Format::Mjpeg, PixelFormat::None, 640, 480))
            .unwrap();
        assert!(matches!(
            dec.decode(&Bytes::from(jpeg_with_size(16, 16))),
            Err(CodecError::DimensionMismatch { .. })
        ));
    }

    #[test]
    fn truncated_and_corrupt_jpeg_are_errors() {
        let (mut enc, mut dec) = codec_pair(&EncodeSpec::mjpeg(85), 64, 48);
        let good = enc.encode(&testkit::natural(64, 48, 2)).unwrap();
        assert!(dec.decode(&good).is_ok());
        let mut errors = 0;
        for cut in (0..good.len()).step_by(7) {
            if dec.decode(&good.slice(..cut)).is_err() {
                errors += 1;
            }
        }
        assert_eq!(errors, good.len().div_ceil(7), "every truncation is reported");
        let mut rng = testkit::Rng::new(11);
        for _ in 0..300 {
            let mut bad = good.to_vec();
            for _ in 0..4 {
                let i = rng.below(bad.len() as u32) as usize;
                bad[i] = rng.next_u64() as u8;
            }
            let _ = dec.decode(&Bytes::from(bad)); // must not panic
        }
        assert!(matches!(
            dec.decode(&Bytes::from_static(b"not a jpeg")),
            Err(CodecError::Corrupt { .. })
        ));
        let again = dec.decode(&good);
        assert!(again.is_ok(), "still usable after errors: {again:?}");
    }
}

#[cfg(feature = "qoi")]
mod qoi_input {
    use super::*;

    fn qoi_header(width: u32, height: u32, channels: u8) -> Vec<u8> {
        let mut h = b"qoif".to_vec();
        h.extend_from_slice(&width.to_be_bytes());
        h.extend_from_slice(&height.to_be_bytes());
        h.extend_from_slice(&[channels, 0]);
        h
    }

    #[test]
    fn huge_or_impossible_headers_are_refused_before_allocation() {
        let mut dec = Registry::builtin()
            .negotiate(&open(Format::Qoi, PixelFormat::None, 0, 0))
            .unwrap();
        let mut huge = qoi_header(60000, 60000, 4);
        huge.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(matches!(
            dec.decode(&Bytes::from(huge)),
            Err(CodecError::TooLarge { .. })
        ));
        // 3000x2000 is within limits (a stream of no declared size may
        // carry up to UHD), but 100 bytes cannot encode it.
        let mut short = qoi_header(3000, 2000, 4);
        short.extend_from_slice(&[0xFD; 92]);
        short.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(matches!(
            dec.decode(&Bytes::from(short)),
            Err(CodecError::Corrupt { .. })
        ));
    }

    #[test]
    fn truncated_and_corrupt_qoi_are_errors() {
        let (mut enc, mut dec) = codec_pair(&EncodeSpec::qoi(), 64, 48);
        let good = enc.encode(&testkit::screen_like(64, 48, 2)).unwrap();
        for cut in 0..good.len() {
            assert!(dec.decode(&good.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut rng = testkit::Rng::new(12);
        for _ in 0..300 {
            let mut bad = good.to_vec();
            let i = rng.below(bad.len() as u32) as usize;
            bad[i] = rng.next_u64() as u8;
            let _ = dec.decode(&Bytes::from(bad));
        }
        let mut wrong_magic = good.to_vec();
        wrong_magic[0] = b'x';
        assert!(matches!(
            dec.decode(&Bytes::from(wrong_magic)),
            Err(CodecError::Corrupt { .. })
        ));
        let mut dec = Registry::builtin()
            .negotiate(&open(Format::Qoi, PixelFormat::None, 32, 32))
            .unwrap();
        assert!(matches!(dec.decode(&good), Err(CodecError::DimensionMismatch { .. })));
    }

    #[test]
    fn bgra_is_stored_as_rgba() {
        let px = PixelBuffer::new(PixelLayout::Bgra, 1, 1, vec![10, 20, 30, 40]).unwrap();
        let (mut enc, _) = codec_pair(&EncodeSpec::qoi(), 1, 1);
        let payload = enc.encode(&px).unwrap();
        let (header, rgba) = ::qoi::decode_to_vec(&payload).unwrap();
        assert_eq!(header.channels, ::qoi::Channels::Rgba);
        assert_eq!(rgba, vec![30, 20, 10, 40]);
        let bgr = PixelBuffer::new(PixelLayout::Bgr, 1, 1, vec![10, 20, 30]).unwrap();
        let (header, rgb) = ::qoi::decode_to_vec(enc.encode(&bgr).unwrap()).unwrap();
        assert_eq!((header.channels, rgb), (::qoi::Channels::Rgb, vec![30, 20, 10]));
    }
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_input_is_bounded_by_the_declared_size() {
    let (mut enc, mut dec) = codec_pair(&EncodeSpec::raw_zstd(PixelFormat::Rgba, 1), 64, 48);
    let good = enc.encode(&testkit::screen_like(64, 48, 2)).unwrap();
    assert!(dec.decode(&good).is_ok());
    // A frame for another size, with its content size in the header.
    let other = ::zstd::bulk::compress(&vec![0u8; 64 * 48 * 4 + 4], 1).unwrap();
    assert!(matches!(
        dec.decode(&Bytes::from(other)),
        Err(CodecError::SizeMismatch { .. })
    ));
    // A bomb without a content size: 256 MiB of zeros, refused once it
    // passes the declared 12 KiB.
    let mut bomb = Vec::new();
    {
        let mut w = ::zstd::stream::write::Encoder::new(&mut bomb, 19).unwrap();
        w.include_contentsize(false).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            std::io::Write::write_all(&mut w, &zeros).unwrap();
        }
        w.finish().unwrap();
    }
    assert_eq!(::zstd::zstd_safe::get_frame_content_size(&bomb).unwrap(), None);
    let t0 = Instant::now();
    assert!(dec.decode(&Bytes::from(bomb)).is_err());
    assert!(
        t0.elapsed().as_millis() < 2000,
        "stopped early, took {:?}",
        t0.elapsed()
    );
    // Short frames: declared size not reached.
    let short = ::zstd::bulk::compress(&[0u8; 100], 1).unwrap();
    assert!(matches!(
        dec.decode(&Bytes::from(short)),
        Err(CodecError::SizeMismatch { .. })
    ));
    for cut in 0..good.len() {
        assert!(dec.decode(&good.slice(..cut)).is_err(), "cut at {cut}");
    }
    assert!(matches!(
        dec.decode(&Bytes::from_static(b"garbage!")),
        Err(CodecError::Corrupt { .. })
    ));
}

#[test]
fn raw_payload_must_have_the_declared_size() {
    let mut dec = Registry::builtin()
        .negotiate(&open(Format::Raw, PixelFormat::Bgr, 4, 4))
        .unwrap();
    assert!(dec.decode(&Bytes::from(vec![0u8; 48])).is_ok());
    assert!(matches!(
        dec.decode(&Bytes::from(vec![0u8; 47])),
        Err(CodecError::SizeMismatch {
            expected: 48,
            got: 47,
            ..
        })
    ));
    assert!(dec.decode(&Bytes::from(vec![0u8; 49])).is_err());
}

/// A snapshot is a JPEG whatever the stream carries: MJPEG as it came,
/// raw and QOI decoded and encoded; a frame that does not decode is an
/// error, not a picture.
#[cfg(all(feature = "jpeg", feature = "qoi"))]
#[test]
fn any_frame_becomes_a_jpeg_picture() {
    use framewire_codec::{JpegError, frame_to_jpeg};
    let registry = Registry::builtin();
    let picture = testkit::camera_like(64, 48, 7);
    for spec in [
        EncodeSpec::raw(PixelFormat::Bgr),
        EncodeSpec::qoi(),
        EncodeSpec::mjpeg(90),
    ] {
        let (mut enc, _) = codec_pair(&spec, 64, 48);
        let announced = enc.stream_open(64, 48, 30, 1, "test");
        let payload = enc.encode(&picture.convert(PixelLayout::Bgr).unwrap()).unwrap();
        let jpeg = frame_to_jpeg(&registry, &announced, &payload, 80).unwrap();
        assert_eq!(&jpeg[..3], &[0xff, 0xd8, 0xff], "{}: not a JPEG", spec.format);
        if spec.format == Format::Mjpeg {
            assert_eq!(jpeg, payload, "MJPEG must pass as it came");
        }
        let back = registry
            .negotiate(&open(Format::Mjpeg, PixelFormat::None, 64, 48))
            .unwrap()
            .decode(&jpeg)
            .unwrap();
        assert_eq!((back.width(), back.height()), (64, 48), "{}", spec.format);
    }
    let raw = open(Format::Raw, PixelFormat::Bgr, 64, 48);
    assert!(matches!(
        frame_to_jpeg(&registry, &raw, &Bytes::from(vec![0u8; 10]), 80),
        Err(JpegError::Codec(_))
    ));
}

/// A thumbnail is a JPEG decoded at a reduced size: the smallest DCT scale
/// at least as wide as asked, whatever the stream's format; a picture too
/// small to scale comes as it is.
#[cfg(all(feature = "jpeg", feature = "qoi"))]
#[test]
fn a_thumbnail_is_decoded_at_a_reduced_size() {
    use framewire_codec::frame_to_thumbnail;
    let registry = Registry::builtin();
    let picture = testkit::camera_like(1280, 720, 7);
    // Size 0x0: any size the picture has.
    let jpeg_open = open(Format::Mjpeg, PixelFormat::None, 0, 0);
    let full = frame_to_jpeg_len(&registry, &picture);
    for spec in [EncodeSpec::mjpeg(85), EncodeSpec::qoi()] {
        let (mut enc, _) = codec_pair(&spec, 1280, 720);
        let announced = enc.stream_open(1280, 720, 30, 1, "test");
        let payload = enc.encode(&picture.convert(PixelLayout::Bgr).unwrap()).unwrap();
        for (width, want) in [
            (160, (160, 90)),
            (200, (320, 180)),
            (640, (640, 360)),
            (1000, (1280, 720)),
        ] {
            let thumb = frame_to_thumbnail(&registry, &announced, &payload, width, 70).unwrap();
            let back = registry.negotiate(&jpeg_open).unwrap().decode(&thumb).unwrap();
            assert_eq!((back.width(), back.height()), want, "{} at width {width}", spec.format);
            if want.0 == 160 {
                assert!(
                    thumb.len() * 10 < full,
                    "{}: {} bytes of {full}",
                    spec.format,
                    thumb.len()
                );
            }
        }
    }
}

/// Bytes of `picture` as a JPEG at quality 70.
#[cfg(feature = "jpeg")]
fn frame_to_jpeg_len(_: &Registry, picture: &framewire_codec::PixelBuffer) -> usize {
    let (mut enc, _) = codec_pair(&EncodeSpec::mjpeg(70), picture.width(), picture.height());
    enc.encode(picture).unwrap().len()
}

#[test]
fn mjpeg_decodes_scaled_down_for_a_small_tile() {
    use framewire_codec::mjpeg::MjpegDecoder;
    let (mut enc, _) = codec_pair(&EncodeSpec::mjpeg(85), 1280, 720);
    let pic = testkit::camera_like(1280, 720, 7);
    let jpeg = enc.encode(&pic).unwrap();
    let o = open(Format::Mjpeg, PixelFormat::None, 1280, 720);
    let mut d = MjpegDecoder::new(&o, &framewire_codec::DecodeOptions::default()).unwrap();
    for ((min_w, min_h), want) in [
        ((150, 80), (160, 90)),
        ((320, 180), (320, 180)),
        ((321, 180), (640, 360)),
        ((700, 400), (1280, 720)),
        ((2000, 2000), (1280, 720)),
    ] {
        let small = d.decode_at_least(&jpeg, min_w, min_h).unwrap();
        assert_eq!((small.width(), small.height()), want, "at least {min_w}x{min_h}");
    }
    // Full size again afterwards, and like the scaled one in content.
    let full = d.decode(&jpeg).unwrap();
    assert_eq!((full.width(), full.height()), (1280, 720));
    let quarter = d.decode_at_least(&jpeg, 320, 180).unwrap();
    let ratio = testkit::psnr(&full, &pic).unwrap();
    assert!(ratio > 30.0, "full-size PSNR {ratio}");
    assert_eq!(quarter.layout(), full.layout());
}

#[test]
fn mjpeg_encodes_i420_from_its_planes_as_well_as_from_rgb() {
    let spec = EncodeSpec::mjpeg(85).with_subsampling(ChromaSubsampling::S420);
    let (mut enc, mut dec) = codec_pair(&spec, 640, 480);
    let rgb = testkit::camera_like(640, 480, 3);
    let i420 = rgb.convert(PixelLayout::I420).unwrap();
    let from_planes = dec.decode(&enc.encode(&i420).unwrap()).unwrap();
    let from_rgb = dec.decode(&enc.encode(&rgb).unwrap()).unwrap();
    let (a, b) = (
        testkit::psnr(&from_planes, &rgb).unwrap(),
        testkit::psnr(&from_rgb, &rgb).unwrap(),
    );
    println!("PSNR from I420 planes {a:.1} dB, from RGB {b:.1} dB");
    assert!(
        a > 30.0 && (a - b).abs() < 1.5,
        "from planes {a:.1} dB, from RGB {b:.1} dB"
    );
    // Black and white stay black and white (the range is stretched).
    for v in [0u8, 255] {
        let flat = PixelBuffer::new(PixelLayout::Bgra, 64, 64, vec![v; 64 * 64 * 4]).unwrap();
        let (mut e, mut d) = codec_pair(&spec, 64, 64);
        let back = d
            .decode(&e.encode(&flat.convert(PixelLayout::I420).unwrap()).unwrap())
            .unwrap();
        let px = back.data()[back.plane(0).offset];
        assert!(px.abs_diff(v) <= 2, "{v} came back as {px}");
    }
}

#[test]
fn mjpeg_decodes_to_i420_planes_like_through_rgb() {
    use framewire_codec::mjpeg::MjpegDecoder;
    for sub in [
        ChromaSubsampling::S420,
        ChromaSubsampling::S422,
        ChromaSubsampling::S444,
    ] {
        let spec = EncodeSpec::mjpeg(90).with_subsampling(sub);
        let (mut enc, _) = codec_pair(&spec, 1280, 720);
        let pic = testkit::camera_like(1280, 720, 11);
        let jpeg = enc.encode(&pic).unwrap();
        let o = open(Format::Mjpeg, PixelFormat::None, 1280, 720);
        let mut d = MjpegDecoder::new(&o, &DecodeOptions::default()).unwrap();
        for (min, size) in [((640, 360), (640, 360)), ((1280, 720), (1280, 720))] {
            let planes = d.decode_i420_at_least(&jpeg, min.0, min.1).unwrap();
            assert_eq!(planes.layout(), PixelLayout::I420);
            assert_eq!((planes.width(), planes.height()), size, "{sub:?}");
            let via_rgb = d
                .decode_at_least(&jpeg, min.0, min.1)
                .unwrap()
                .convert(PixelLayout::I420)
                .unwrap();
            let db = testkit::psnr(&planes, &via_rgb).unwrap();
            assert!(
                db > 38.0,
                "{sub:?} at {size:?}: planes and RGB paths differ, {db:.1} dB"
            );
        }
    }
}
