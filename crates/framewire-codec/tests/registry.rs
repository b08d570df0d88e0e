//! Registry, negotiation and transcoding.
// With some codec features off, helpers for them go unused.
#![cfg_attr(not(all(feature = "jpeg", feature = "qoi", feature = "zstd")), allow(unused))]

use framewire_codec::{
    CodecEntry, CodecError, DecodeOptions, EncodeSpec, Limits, PixelLayout, Registry, Transcoder, enabled_features,
    testkit,
};
use framewire_proto::{Format, Origin, PixelFormat, Status, StreamOpen};

fn open(format: Format, pixel_format: PixelFormat, width: u32, height: u32) -> StreamOpen {
    StreamOpen {
        format,
        pixel_format,
        origin: Origin::Unspecified,
        width,
        height,
        fps_num: 25,
        fps_den: 1,
        name: "cam".into(),
        codec_config: Default::default(),
    }
}

/// Every codec whose feature is on is in the registry, both ways; every
/// codec whose feature is off is absent.
#[test]
fn feature_gated_codecs_match_the_registry() {
    let r = Registry::builtin();
    let gated = [
        (Format::Mjpeg, "jpeg", cfg!(feature = "jpeg")),
        (Format::Qoi, "qoi", cfg!(feature = "qoi")),
        (Format::RawZstd, "zstd", cfg!(feature = "zstd")),
    ];
    for (format, feature, on) in gated {
        assert_eq!(r.can_decode(format), on, "{format} decode vs feature {feature}");
        assert_eq!(r.can_encode(format), on, "{format} encode vs feature {feature}");
        assert_eq!(enabled_features().contains(&feature), on);
        if on {
            assert_eq!(r.entry(format).unwrap().provider, feature);
        }
    }
    // H.264 both ways with OpenH264.
    assert_eq!(r.can_encode(Format::H264), cfg!(feature = "h264"));
    assert_eq!(r.can_decode(Format::H264), cfg!(feature = "h264"));
    assert_eq!(enabled_features().contains(&"h264"), cfg!(feature = "h264"));
    assert!(
        r.can_decode(Format::Raw) && r.can_encode(Format::Raw),
        "raw is always there"
    );
    for format in [
        Format::H265,
        Format::Av1,
        Format::Ffv1,
        Format::ProRes,
        Format::Unknown(0x77),
    ] {
        assert!(!r.can_decode(format) && !r.can_encode(format), "{format}");
    }
    let mut expected = vec![];
    if cfg!(feature = "jpeg") {
        expected.push(Format::Mjpeg);
    }
    if cfg!(feature = "qoi") {
        expected.push(Format::Qoi);
    }
    expected.push(Format::Raw);
    if cfg!(feature = "zstd") {
        expected.push(Format::RawZstd);
    }
    if cfg!(feature = "h264") {
        expected.push(Format::H264);
        expected.sort_by_key(|f| f.to_raw());
    }
    assert_eq!(r.decodable(), expected);
    assert_eq!(r.encodable(), expected);
}

#[test]
fn unsupported_formats_are_rejected_with_a_reason() {
    let r = Registry::builtin();
    let features = match enabled_features().join(", ") {
        f if f.is_empty() => "none".to_owned(),
        f => f,
    };
    let rej = r
        .negotiate(&open(Format::H265, PixelFormat::None, 1920, 1080))
        .unwrap_err();
    assert_eq!(rej.status, Status::UnsupportedFormat);
    assert_eq!(
        rej.reason,
        format!("no decoder for h265 in this build (features: {features})")
    );
    let rej = r
        .negotiate(&open(Format::Unknown(0x77), PixelFormat::None, 0, 0))
        .unwrap_err();
    assert_eq!(rej.status, Status::UnsupportedFormat);
    assert!(rej.reason.starts_with("no decoder for unknown(0x77)"), "{}", rej.reason);
    let rej = r
        .encoder(&EncodeSpec {
            format: Format::Av1,
            ..EncodeSpec::qoi()
        })
        .unwrap_err();
    assert!(rej.reason.starts_with("no encoder for av1"), "{}", rej.reason);
    assert_eq!(
        Registry::empty()
            .negotiate(&open(Format::Raw, PixelFormat::Bgra, 4, 4))
            .unwrap_err()
            .status,
        Status::UnsupportedFormat
    );
}

#[test]
fn raw_streams_need_a_pixel_format_and_a_sane_size() {
    let r = Registry::builtin();
    let rej = r
        .negotiate(&open(Format::Raw, PixelFormat::None, 640, 480))
        .unwrap_err();
    assert_eq!(rej.status, Status::UnsupportedFormat);
    assert!(rej.reason.contains("pixel format"), "{}", rej.reason);
    let rej = r
        .negotiate(&open(Format::Raw, PixelFormat::Unknown(9), 640, 480))
        .unwrap_err();
    assert_eq!(rej.status, Status::UnsupportedFormat);
    let rej = r.negotiate(&open(Format::Raw, PixelFormat::Bgra, 0, 480)).unwrap_err();
    assert_eq!(rej.status, Status::BadRequest);
    let rej = r
        .negotiate(&open(Format::Raw, PixelFormat::Bgra, 60000, 60000))
        .unwrap_err();
    assert_eq!(rej.status, Status::BadRequest);
    assert!(rej.reason.contains("exceeds the limit"), "{}", rej.reason);
    let rej = r
        .negotiate(&open(Format::Raw, PixelFormat::Yuv422Packed, 641, 480))
        .unwrap_err();
    assert!(rej.reason.contains("even width"), "{}", rej.reason);
    let tight = r.clone().with_options(DecodeOptions {
        limits: Limits { max_pixels: 640 * 480 },
        ..Default::default()
    });
    assert!(tight.negotiate(&open(Format::Raw, PixelFormat::Bgra, 640, 480)).is_ok());
    assert!(
        tight
            .negotiate(&open(Format::Raw, PixelFormat::Bgra, 641, 480))
            .is_err()
    );
    if cfg!(feature = "zstd") {
        assert!(
            r.negotiate(&open(Format::RawZstd, PixelFormat::None, 640, 480))
                .is_err()
        );
        assert!(
            r.negotiate(&open(Format::RawZstd, PixelFormat::Yuv420p, 640, 480))
                .is_ok()
        );
    }
}

#[test]
fn registry_can_be_extended() {
    let mut r = Registry::empty();
    assert!(!r.can_decode(Format::Ffv1));
    r.register(CodecEntry {
        format: Format::Ffv1,
        provider: "test",
        decoder: Some(|_, _| Err(CodecError::Unsupported("test decoder".into()))),
        encoder: None,
    });
    assert!(r.can_decode(Format::Ffv1) && !r.can_encode(Format::Ffv1));
    let rej = r.negotiate(&open(Format::Ffv1, PixelFormat::None, 4, 4)).unwrap_err();
    assert_eq!(
        (rej.status, rej.reason.as_str()),
        (Status::UnsupportedFormat, "ffv1: unsupported: test decoder")
    );
}

#[test]
fn encoders_describe_their_stream() {
    let r = Registry::builtin();
    let enc = r.encoder(&EncodeSpec::raw(PixelFormat::Yuv420p)).unwrap();
    let o = enc.stream_open(1280, 720, 30000, 1001, "desk");
    assert_eq!(
        o,
        StreamOpen {
            format: Format::Raw,
            pixel_format: PixelFormat::Yuv420p,
            origin: Origin::Software,
            width: 1280,
            height: 720,
            fps_num: 30000,
            fps_den: 1001,
            name: "desk".into(),
            codec_config: Default::default(),
        }
    );
    assert!(r.negotiate(&o).is_ok());
}

#[cfg(feature = "jpeg")]
#[test]
fn transcode_raw_to_mjpeg() {
    let r = Registry::builtin();
    let frame = testkit::natural(320, 240, 3);
    let input = open(Format::Raw, PixelFormat::Bgra, 320, 240);
    let mut t = Transcoder::new(&r, &input, &EncodeSpec::mjpeg(85)).unwrap();
    let out = t.output_open().clone();
    assert_eq!(
        (out.format, out.pixel_format, out.origin),
        (Format::Mjpeg, PixelFormat::None, Origin::LibjpegTurbo)
    );
    assert_eq!(
        (out.width, out.height, out.fps_num, out.fps_den, out.name.as_str()),
        (320, 240, 25, 1, "cam")
    );
    let payload = t.transcode(&frame.tight_bytes()).unwrap();
    assert_eq!(&payload[..2], &[0xFF, 0xD8], "a JPEG");
    let back = r.negotiate(&out).unwrap().decode(&payload).unwrap();
    assert!(testkit::psnr(&frame, &back).unwrap() > 35.0);
    // A bad input frame is an error, not a panic, and the next one works.
    assert!(t.transcode(&bytes::Bytes::from_static(b"short")).is_err());
    assert!(t.transcode(&frame.tight_bytes()).is_ok());
}

#[cfg(all(feature = "jpeg", feature = "qoi"))]
#[test]
fn transcode_qoi_to_mjpeg_and_mjpeg_to_qoi() {
    let r = Registry::builtin();
    let frame = testkit::screen_like(320, 240, 3);
    let mut qoi = r.encoder(&EncodeSpec::qoi()).unwrap();
    let qoi_open = qoi.stream_open(320, 240, 60, 1, "screen");
    let mut to_jpeg = Transcoder::new(&r, &qoi_open, &EncodeSpec::mjpeg(90)).unwrap();
    let jpeg = to_jpeg.transcode(&qoi.encode(&frame).unwrap()).unwrap();
    let mut to_qoi = Transcoder::new(&r, to_jpeg.output_open(), &EncodeSpec::qoi()).unwrap();
    assert_eq!(to_qoi.output_open().format, Format::Qoi);
    let qoi_again = to_qoi.transcode(&jpeg).unwrap();
    let mut dec = r.negotiate(to_qoi.output_open()).unwrap();
    let back = dec.decode(&qoi_again).unwrap();
    let db = testkit::psnr(&frame, &back).unwrap();
    assert!(db > 25.0, "screen content through JPEG q90 and back: {db:.1} dB");
    assert_eq!(back.layout(), PixelLayout::Rgba);
}

#[test]
fn transcode_rejects_what_it_cannot_do() {
    let r = Registry::builtin();
    let err = Transcoder::new(
        &r,
        &open(Format::H265, PixelFormat::None, 64, 64),
        &EncodeSpec::raw(PixelFormat::Bgra),
    );
    assert_eq!(err.unwrap_err().status, Status::UnsupportedFormat);
    let err = Transcoder::new(
        &r,
        &open(Format::Raw, PixelFormat::Bgra, 64, 64),
        &EncodeSpec::raw(PixelFormat::None),
    );
    assert_eq!(err.unwrap_err().status, Status::UnsupportedFormat);
    // Raw BGRA to raw YUV 4:2:0: a pixel-format conversion step.
    let mut t = Transcoder::new(
        &r,
        &open(Format::Raw, PixelFormat::Bgra, 64, 64),
        &EncodeSpec::raw(PixelFormat::Yuv420p),
    )
    .unwrap();
    let out = t.transcode(&testkit::natural(64, 64, 1).tight_bytes()).unwrap();
    assert_eq!(out.len(), 64 * 64 * 3 / 2);
}
