use super::*;

type Sizes<'a> = &'a [(u32, u32, &'a [(u32, u32)])];

fn fmt(code: u32, sizes: Sizes<'_>) -> V4l2Format {
    V4l2Format {
        fourcc: code,
        description: fourcc_str(code),
        flags: 0,
        sizes: sizes
            .iter()
            .map(|&(w, h, iv)| V4l2FrameSize {
                kind: 0,
                width: w,
                height: h,
                max_width: w,
                max_height: h,
                step_width: 0,
                step_height: 0,
                intervals: iv.to_vec(),
            })
            .collect(),
    }
}

fn webcam() -> Vec<V4l2Format> {
    let iv: &[(u32, u32)] = &[(1, 30), (1, 25), (1, 5)];
    vec![
        fmt(YUYV, &[(640, 480, iv), (1280, 720, &[(1, 10)])]),
        fmt(fourcc(b"Y10 "), &[(640, 480, iv)]),
        fmt(MJPG, &[(1280, 720, iv)]),
    ]
}

#[test]
fn negotiation_picks_what_is_offered() {
    let f = webcam();
    let c = negotiate(
        &f,
        &Want {
            fourcc: None,
            size: None,
            fps: None,
        },
    )
    .unwrap();
    assert_eq!((c.fourcc, c.width, c.height, c.interval), (YUYV, 640, 480, None));
    // auto prefers MJPEG when it has the size
    let c = negotiate(
        &f,
        &Want {
            fourcc: None,
            size: Some((1280, 720)),
            fps: Some(25.0),
        },
    )
    .unwrap();
    assert_eq!((c.fourcc, c.interval), (MJPG, Some((1, 25))));
    let c = negotiate(
        &f,
        &Want {
            fourcc: Some(YUYV),
            size: Some((1280, 720)),
            fps: Some(10.0),
        },
    )
    .unwrap();
    assert_eq!(c.interval, Some((1, 10)));
}

#[test]
fn negotiation_errors_list_the_offer() {
    let f = webcam();
    let e = negotiate(
        &f,
        &Want {
            fourcc: Some(NV12),
            size: None,
            fps: None,
        },
    )
    .unwrap_err();
    assert!(e.contains("does not offer NV12"), "{e}");
    assert!(e.contains("YUYV: 640x480 @ 30/25/5 fps, 1280x720 @ 10 fps"), "{e}");
    assert!(e.contains("not capturable here: Y10"), "{e}");
    let e = negotiate(
        &f,
        &Want {
            fourcc: Some(YUYV),
            size: Some((800, 600)),
            fps: None,
        },
    )
    .unwrap_err();
    assert!(e.contains("800x600 is not offered in YUYV"), "{e}");
    let e = negotiate(
        &f,
        &Want {
            fourcc: Some(YUYV),
            size: Some((1280, 720)),
            fps: Some(30.0),
        },
    )
    .unwrap_err();
    assert!(e.contains("30 fps is not offered for YUYV 1280x720"), "{e}");
    let e = negotiate(
        &f,
        &Want {
            fourcc: Some(fourcc(b"Y10 ")),
            size: None,
            fps: None,
        },
    )
    .unwrap_err();
    assert!(e.contains("not one framewire captures"), "{e}");
}

#[test]
fn stepwise_sizes_and_ranges() {
    let f = vec![V4l2Format {
        fourcc: YUYV,
        description: String::new(),
        flags: 0,
        sizes: vec![V4l2FrameSize {
            kind: 1,
            width: 16,
            height: 16,
            max_width: 1920,
            max_height: 1080,
            step_width: 16,
            step_height: 8,
            intervals: vec![(1, 60), (1, 1)],
        }],
    }];
    let c = negotiate(
        &f,
        &Want {
            fourcc: None,
            size: Some((640, 480)),
            fps: Some(30.0),
        },
    )
    .unwrap();
    assert_eq!(c.interval, Some((1000, 30000)));
    assert!(
        negotiate(
            &f,
            &Want {
                fourcc: None,
                size: Some((641, 480)),
                fps: None
            }
        )
        .is_err()
    );
    assert!(
        negotiate(
            &f,
            &Want {
                fourcc: None,
                size: Some((640, 480)),
                fps: Some(120.0)
            }
        )
        .is_err()
    );
}

#[test]
fn timestamps_map_monotonic_to_realtime() {
    // A frame captured 5 ms ago on the monotonic clock is 5 ms old on the wall clock.
    assert_eq!(
        monotonic_to_realtime(95_000_000, 100_000_000, 1_700_000_000_000_000_000),
        1_699_999_999_995_000_000
    );
    assert_eq!(
        monotonic_to_realtime(200, 100, 1000),
        1000,
        "a stamp from the future is now"
    );
    let (m, r) = clocks_now();
    assert!(m > 0 && r > 1_600_000_000_000_000_000);
}

fn pix(code: u32, w: u32, h: u32, bpl: u32) -> PixFormat {
    PixFormat {
        fourcc: code,
        width: w,
        height: h,
        bytesperline: bpl,
        sizeimage: bpl * h,
    }
}

#[test]
fn raw_buffers_are_packed_tight() {
    // YUYV 4x2 with 4 bytes of padding per row.
    let mut data = Vec::new();
    for y in 0..2u8 {
        data.extend_from_slice(&[y; 8]);
        data.extend_from_slice(&[0xee; 4]);
    }
    let mut m = FrameMaker::new(pix(YUYV, 4, 2, 12), (25, 1), WireFormat::Native, false, "cam").unwrap();
    assert_eq!(m.stream_open().format, Format::Raw);
    assert_eq!(m.stream_open().pixel_format, PixelFormat::Yuv422Packed);
    assert_eq!(m.stream_open().origin, Origin::DeviceNative);
    let out = m.process(&data).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0][..], &[0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
}

#[test]
fn nv12_becomes_i420() {
    let (w, h) = (4u32, 2u32);
    let mut data = vec![10u8; 8]; // Y
    data.extend_from_slice(&[1, 2, 3, 4]); // UVUV
    let mut m = FrameMaker::new(pix(NV12, w, h, 4), (0, 1), WireFormat::Raw, false, "cam").unwrap();
    assert_eq!(m.stream_open().pixel_format, PixelFormat::Yuv420p);
    let out = m.process(&data).unwrap();
    assert_eq!(&out[0][..], &[10, 10, 10, 10, 10, 10, 10, 10, 1, 3, 2, 4]);
}

#[test]
fn raw_to_mjpeg_and_zstd_decode_back() {
    let pic = framewire_codec::testkit::screen_like(64, 48, 3)
        .convert(PixelLayout::Yuyv)
        .unwrap();
    let data = pic.tight_bytes();
    let reg = Registry::builtin();
    let mut m = FrameMaker::new(pix(YUYV, 64, 48, 128), (25, 1), WireFormat::Mjpeg(80), false, "cam").unwrap();
    assert_eq!(m.stream_open().format, Format::Mjpeg);
    assert_eq!(m.stream_open().origin, Origin::LibjpegTurbo);
    let jpeg = m.process(&data).unwrap().remove(0);
    let mut d = reg.negotiate(m.stream_open()).unwrap();
    let back = d.decode(&jpeg).unwrap();
    assert_eq!((back.width(), back.height()), (64, 48));
    let mut z = FrameMaker::new(pix(YUYV, 64, 48, 128), (25, 1), WireFormat::RawZstd(1), false, "cam").unwrap();
    assert_eq!(z.stream_open().format, Format::RawZstd);
    let packed = z.process(&data).unwrap().remove(0);
    let mut d = reg.negotiate(z.stream_open()).unwrap();
    assert!(d.decode(&packed).unwrap().pixels_eq(&pic));
}

#[test]
fn mjpeg_devices_refuse_raw_output() {
    let e = FrameMaker::new(pix(MJPG, 64, 48, 0), (30, 1), WireFormat::Raw, false, "cam").unwrap_err();
    assert!(e.contains("raw output needs a raw device format"), "{e}");
}

#[test]
fn the_time_code_is_drawn_into_raw_and_encoded_frames() {
    use crate::timecode::{TimeCode, read};
    let (w, h) = (640u32, 360u32);
    // A camera's picture: a gradient, as YUYV.
    let mut bgra = vec![0u8; (w * h * 4) as usize];
    for (i, p) in bgra.chunks_exact_mut(4).enumerate() {
        let v = (i % 640 * 255 / 640) as u8;
        p.copy_from_slice(&[v, v, v, 255]);
    }
    let yuyv = PixelBuffer::new(PixelLayout::Bgra, w, h, bgra)
        .unwrap()
        .convert(PixelLayout::Yuyv)
        .unwrap()
        .tight_bytes();
    let reg = Registry::builtin();
    let ts = 1_796_000_000_123_456_000;
    for out in [WireFormat::Mjpeg(80), WireFormat::Raw] {
        let mut m = FrameMaker::new(pix(YUYV, w, h, w * 2), (30, 1), out, false, "cam").unwrap();
        let plain = m.process_at(&yuyv, 7, ts).unwrap().remove(0);
        let mut d = reg.negotiate(m.stream_open()).unwrap();
        assert_eq!(read(&d.decode(&plain).unwrap()), None, "{out:?}: off by default");
        m.overlay_timecode(true).unwrap();
        let coded = m.process_at(&yuyv, 7, ts).unwrap().remove(0);
        assert_eq!(read(&d.decode(&coded).unwrap()), Some(TimeCode::new(7, ts)), "{out:?}");
    }
    // Passed-through MJPEG has no pictures to draw into.
    let mut m = FrameMaker::new(pix(MJPG, 64, 48, 0), (30, 1), WireFormat::Native, false, "cam").unwrap();
    let e = m.overlay_timecode(true).unwrap_err();
    assert!(e.contains("needs a raw device format"), "{e}");
}
