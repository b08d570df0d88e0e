//! Pixel buffers: validated construction and layout conversions.

use bytes::Bytes;
use framewire_codec::{CodecError, PixelBuffer, PixelLayout, Plane, testkit};
use proptest::prelude::*;

#[test]
fn construction_checks_sizes() {
    let l = PixelLayout::Bgra;
    assert!(matches!(
        PixelBuffer::new(l, 0, 4, vec![]),
        Err(CodecError::ZeroDimension { .. })
    ));
    assert!(matches!(
        PixelBuffer::new(l, 4, 4, vec![0; 63]),
        Err(CodecError::BufferLength { expected: 64, got: 63 })
    ));
    assert!(matches!(
        PixelBuffer::new(l, 4, 4, vec![0; 65]),
        Err(CodecError::BufferLength { .. })
    ));
    assert!(PixelBuffer::new(l, 4, 4, vec![0; 64]).is_ok());
    assert!(matches!(
        PixelBuffer::new(PixelLayout::Yuyv, 3, 2, vec![0; 12]),
        Err(CodecError::OddWidth { width: 3, .. })
    ));
    // I420 with odd sizes rounds chroma up: 3x3 luma + 2 * 2x2 chroma.
    assert_eq!(PixelLayout::I420.frame_size(3, 3).unwrap(), 9 + 8);
    assert!(PixelBuffer::new(PixelLayout::I420, 3, 3, vec![0; 17]).is_ok());
    assert!(matches!(
        PixelBuffer::with_stride(l, 4, 2, 15, vec![0; 64]),
        Err(CodecError::StrideTooSmall {
            plane: 0,
            stride: 15,
            min: 16
        })
    ));
    // Last row may be short of a full stride, but must hold its pixels.
    assert!(PixelBuffer::with_stride(l, 4, 2, 20, vec![0; 36]).is_ok());
    assert!(matches!(
        PixelBuffer::with_stride(l, 4, 2, 20, vec![0; 35]),
        Err(CodecError::DataTooShort { needed: 36, got: 35 })
    ));
    assert!(matches!(
        PixelBuffer::with_planes(PixelLayout::I420, 4, 4, &[Plane { offset: 0, stride: 4 }], vec![0; 24]),
        Err(CodecError::PlaneCount {
            expected: 3,
            got: 1,
            ..
        })
    ));
    // Sizes that overflow are refused, not wrapped.
    let huge = PixelBuffer::with_planes(
        l,
        u32::MAX,
        u32::MAX,
        &[Plane {
            offset: usize::MAX,
            stride: usize::MAX,
        }],
        vec![],
    );
    assert!(huge.is_err());
}

#[test]
fn padded_planes_read_back_and_pack_tightly() {
    // 2x2 I420 with every plane padded and stored in reverse order.
    let mut data = vec![0xEEu8; 64];
    data[40..42].copy_from_slice(&[1, 2]); // Y row 0 (stride 8)
    data[48..50].copy_from_slice(&[3, 4]); // Y row 1
    data[20] = 5; // U
    data[0] = 6; // V
    let planes = [
        Plane { offset: 40, stride: 8 },
        Plane { offset: 20, stride: 3 },
        Plane { offset: 0, stride: 7 },
    ];
    let b = PixelBuffer::with_planes(PixelLayout::I420, 2, 2, &planes, data).unwrap();
    assert!(!b.is_tight());
    assert_eq!(b.row(0, 1), &[3, 4]);
    assert_eq!(&b.tight_bytes()[..], &[1, 2, 3, 4, 5, 6]);
    let t = b.to_tight();
    assert!(t.is_tight() && t.pixels_eq(&b));
}

#[test]
fn tight_bytes_are_shared_not_copied() {
    let data = Bytes::from(vec![7u8; 16]);
    let b = PixelBuffer::new(PixelLayout::Rgba, 2, 2, data.clone()).unwrap();
    assert_eq!(b.tight_bytes().as_ptr(), data.as_ptr());
}

fn one_pixel(layout: PixelLayout, rgb: [u8; 3]) -> PixelBuffer {
    PixelBuffer::new(PixelLayout::Rgb, 2, 2, rgb.repeat(4))
        .unwrap()
        .convert(layout)
        .unwrap()
}

#[test]
fn bt601_limited_range_known_values() {
    // (R, G, B) -> (Y, U, V), BT.601 studio range.
    let cases: [([u8; 3], [u8; 3]); 5] = [
        ([0, 0, 0], [16, 128, 128]),
        ([255, 255, 255], [235, 128, 128]),
        ([255, 0, 0], [82, 90, 240]),
        ([0, 255, 0], [145, 54, 34]),
        ([0, 0, 255], [41, 240, 110]),
    ];
    for (rgb, yuv) in cases {
        let i420 = one_pixel(PixelLayout::I420, rgb);
        let got = [i420.row(0, 0)[0], i420.row(1, 0)[0], i420.row(2, 0)[0]];
        for c in 0..3 {
            assert!(
                (i32::from(got[c]) - i32::from(yuv[c])).abs() <= 1,
                "{rgb:?} -> {got:?}, want {yuv:?}"
            );
        }
        let yuyv = one_pixel(PixelLayout::Yuyv, rgb);
        assert_eq!(&yuyv.row(0, 0)[..4], &[got[0], got[1], got[0], got[2]]);
        // And back, within rounding.
        let back = i420.convert(PixelLayout::Rgb).unwrap();
        for c in 0..3 {
            assert!(
                (i32::from(back.row(0, 0)[c]) - i32::from(rgb[c])).abs() <= 2,
                "{rgb:?} came back {back:?}"
            );
        }
    }
}

#[test]
fn rgb_family_swizzles_exactly() {
    let src = testkit::screen_like(64, 40, 3);
    let rgba = src.convert(PixelLayout::Rgba).unwrap();
    for (b, r) in src.data().chunks_exact(4).zip(rgba.data().chunks_exact(4)) {
        assert_eq!([b[2], b[1], b[0], b[3]], [r[0], r[1], r[2], r[3]]);
    }
    assert!(rgba.convert(PixelLayout::Bgra).unwrap().pixels_eq(&src));
    let bgr = src.convert(PixelLayout::Bgr).unwrap();
    let rgb = bgr.convert(PixelLayout::Rgb).unwrap();
    let back = rgb.convert(PixelLayout::Bgra).unwrap();
    assert!(
        back.pixels_eq(&src),
        "alpha is 255 in the source, so BGRA -> BGR -> RGB -> BGRA is exact"
    );
}

#[test]
fn yuv_round_trips_keep_quality() {
    let src = testkit::natural(160, 90, 9);
    for layout in [PixelLayout::I420, PixelLayout::Yuyv] {
        let yuv = src.convert(layout).unwrap();
        let back = yuv.convert(PixelLayout::Bgra).unwrap();
        let db = testkit::psnr(&src, &back).unwrap();
        assert!(db > 35.0, "{layout}: {db:.1} dB");
    }
    // YUYV -> I420 -> YUYV keeps luma exactly; I420 -> YUYV -> I420 is exact.
    let i420 = src.convert(PixelLayout::I420).unwrap();
    let again = i420
        .convert(PixelLayout::Yuyv)
        .unwrap()
        .convert(PixelLayout::I420)
        .unwrap();
    assert!(again.pixels_eq(&i420));
    let yuyv = src.convert(PixelLayout::Yuyv).unwrap();
    let via = yuyv
        .convert(PixelLayout::I420)
        .unwrap()
        .convert(PixelLayout::Yuyv)
        .unwrap();
    let luma = |b: &PixelBuffer| b.data().iter().step_by(2).copied().collect::<Vec<u8>>();
    assert_eq!(luma(&via), luma(&yuyv));
}

#[test]
fn odd_width_cannot_become_yuyv() {
    let src = testkit::natural(5, 3, 1);
    assert!(matches!(
        src.convert(PixelLayout::Yuyv),
        Err(CodecError::OddWidth { .. })
    ));
    let i420 = src.convert(PixelLayout::I420).unwrap();
    assert_eq!(i420.data().len(), 15 + 2 * 3 * 2);
}

fn layout_strategy() -> impl Strategy<Value = PixelLayout> {
    proptest::sample::select(PixelLayout::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any layout to any layout: never panics, keeps the size, and a
    /// 4-channel swizzle round-trips exactly.
    #[test]
    fn convert_any_to_any(w in 1u32..24, h in 1u32..24, pad in 0usize..9, from in layout_strategy(), to in layout_strategy(), seed: u64) {
        let w = if from == PixelLayout::Yuyv { w * 2 } else { w };
        let mut rng = testkit::Rng::new(seed);
        let mut planes = Vec::new();
        let mut offset = 0;
        for p in 0..from.plane_count() {
            let stride = from.row_bytes(p, w).unwrap() + pad;
            planes.push(Plane { offset, stride });
            offset += stride * from.plane_rows(p, h);
        }
        let data: Vec<u8> = (0..offset).map(|_| rng.next_u64() as u8).collect();
        let src = PixelBuffer::with_planes(from, w, h, &planes, data).unwrap();
        match src.convert(to) {
            Ok(out) => {
                prop_assert_eq!((out.width(), out.height(), out.layout()), (w, h, to));
                prop_assert!(out.is_tight());
                if from.has_alpha() && to.has_alpha() {
                    prop_assert!(out.convert(from).unwrap().pixels_eq(&src));
                }
            }
            Err(e) => prop_assert!(to == PixelLayout::Yuyv && w % 2 == 1, "unexpected {e}"),
        }
    }
}
