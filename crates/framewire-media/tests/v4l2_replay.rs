//! The MJPEG capture path without a device: recorded MJPEG buffers (as a
//! UVC camera fills them: one JPEG per buffer, padding after `bytesused`)
//! replayed through the same per-buffer code the live capture uses, and
//! `mjpeg_scan` on captures that split and join frames.
#![cfg(all(feature = "v4l2", target_os = "linux"))]

use bytes::Bytes;
use framewire_codec::{EncodeSpec, Registry, testkit};
use framewire_media::v4l2::frame::{FrameMaker, MJPG, WireFormat};
use framewire_media::v4l2::{PixFormat, negotiate};
use framewire_proto::control::{V4l2Format, V4l2FrameSize};
use framewire_proto::{Format, Origin};

const W: u32 = 320;
const H: u32 = 240;

/// Ten "recorded" JPEGs, as a camera would produce them.
fn recording() -> Vec<Bytes> {
    let mut enc = Registry::builtin().encoder(&EncodeSpec::mjpeg(75)).unwrap();
    (0..10)
        .map(|i| enc.encode(&testkit::camera_like(W, H, i)).unwrap())
        .collect()
}

/// Driver buffers: each holds one JPEG followed by stale bytes up to the
/// buffer's length (`sizeimage`); `bytesused` says where the JPEG ends.
fn buffers(jpegs: &[Bytes], sizeimage: usize) -> Vec<(Vec<u8>, usize)> {
    jpegs
        .iter()
        .map(|j| {
            let mut b = j.to_vec();
            b.resize(sizeimage, 0xa5);
            (b, j.len())
        })
        .collect()
}

fn mjpeg_format() -> PixFormat {
    PixFormat {
        fourcc: MJPG,
        width: W,
        height: H,
        bytesperline: 0,
        sizeimage: W * H * 2,
    }
}

#[test]
fn mjpeg_buffers_pass_through_as_is() {
    let jpegs = recording();
    // Negotiation picks MJPEG first when the device offers it.
    let offer = vec![V4l2Format {
        fourcc: MJPG,
        description: "Motion-JPEG".into(),
        flags: 1,
        sizes: vec![V4l2FrameSize {
            kind: 0,
            width: W,
            height: H,
            max_width: W,
            max_height: H,
            step_width: 0,
            step_height: 0,
            intervals: vec![(1, 30)],
        }],
    }];
    let choice = negotiate(
        &offer,
        &framewire_media::v4l2::Want {
            fourcc: None,
            size: Some((W, H)),
            fps: Some(30.0),
        },
    )
    .unwrap();
    assert_eq!(choice.fourcc, MJPG);
    for output in [WireFormat::Native, WireFormat::Mjpeg(50)] {
        let mut m = FrameMaker::new(mjpeg_format(), (30, 1), output, false, "cam").unwrap();
        let open = m.stream_open().clone();
        assert_eq!(
            (open.format, open.origin),
            (Format::Mjpeg, Origin::DeviceNative),
            "no re-encode"
        );
        assert_eq!((open.width, open.height, open.fps_num, open.fps_den), (W, H, 30, 1));
        let mut dec = Registry::builtin().negotiate(&open).unwrap();
        for ((buf, used), jpeg) in buffers(&jpegs, mjpeg_format().sizeimage as usize).iter().zip(&jpegs) {
            let out = m.process(&buf[..*used]).unwrap();
            assert_eq!(out.len(), 1, "one buffer, one frame");
            assert_eq!(&out[0], jpeg, "the bytes as the device gave them");
            let pic = dec.decode(&out[0]).unwrap();
            assert_eq!((pic.width(), pic.height()), (W, H));
        }
    }
}

#[test]
fn mjpeg_scan_recovers_split_frames() {
    let jpegs = recording();
    let mut m = FrameMaker::new(mjpeg_format(), (30, 1), WireFormat::Native, true, "cam").unwrap();
    let all: Vec<u8> = jpegs.iter().flat_map(|j| j.iter().copied()).collect();
    // A device that hands out each frame in 3 to 4 pieces of 1 KiB.
    let mut out = Vec::new();
    for piece in all.chunks(1024) {
        out.extend(m.process(piece).unwrap());
    }
    assert_eq!(out, jpegs, "every frame whole, in order");
    let s = m.scan_stats().unwrap();
    assert_eq!((s.images, s.discarded_images, s.skipped_bytes), (10, 0, 0));
}

#[test]
fn mjpeg_scan_recovers_joined_frames_and_drops_a_cut_one() {
    let jpegs = recording();
    let mut m = FrameMaker::new(mjpeg_format(), (30, 1), WireFormat::Native, true, "cam").unwrap();
    // Buffer 1: two and a half frames, then padding junk before the next SOI.
    let mut b1 = Vec::new();
    b1.extend_from_slice(&jpegs[0]);
    b1.extend_from_slice(&jpegs[1]);
    b1.extend_from_slice(&jpegs[2][..jpegs[2].len() / 2]);
    let out = m.process(&b1).unwrap();
    assert_eq!(out, vec![jpegs[0].clone(), jpegs[1].clone()]);
    // Buffer 2: the rest of frame 2, junk, frame 3.
    let mut b2 = jpegs[2][jpegs[2].len() / 2..].to_vec();
    b2.extend_from_slice(&[0u8; 100]);
    b2.extend_from_slice(&jpegs[3]);
    let out = m.process(&b2).unwrap();
    assert_eq!(out, vec![jpegs[2].clone(), jpegs[3].clone()]);
    // Buffer 3: half of frame 4, then the device is lost: reset drops it.
    assert!(m.process(&jpegs[4][..500]).unwrap().is_empty());
    assert!(m.reset(), "a partial frame was dropped");
    // After the reset: the tail of the cut frame is skipped, frame 5 is whole.
    let mut b4 = jpegs[4][500..].to_vec();
    b4.extend_from_slice(&jpegs[5]);
    let out = m.process(&b4).unwrap();
    assert_eq!(out, vec![jpegs[5].clone()]);
    let s = m.scan_stats().unwrap();
    assert_eq!(s.images, 5);
    assert_eq!(s.discarded_images, 1);
    assert!(s.skipped_bytes >= 100);
}

#[test]
fn without_mjpeg_scan_a_joined_buffer_is_one_frame() {
    // Off by default: the buffer is sent as the device framed it.
    let jpegs = recording();
    let mut m = FrameMaker::new(mjpeg_format(), (30, 1), WireFormat::Native, false, "cam").unwrap();
    let joined: Vec<u8> = [jpegs[0].clone(), jpegs[1].clone()].concat();
    assert_eq!(m.process(&joined).unwrap().len(), 1);
    assert!(m.scan_stats().is_none());
}
