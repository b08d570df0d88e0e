//! Hostile headers are refused before the decoder allocates for them: a
//! counting allocator records the largest single allocation made while
//! decoding.
// With some codec features off, helpers for them go unused.
#![cfg_attr(not(all(feature = "jpeg", feature = "qoi", feature = "zstd")), allow(unused))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use framewire_codec::{EncodeSpec, Registry, testkit};
use framewire_proto::{Format, Origin, PixelFormat, StreamOpen};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn open(format: Format, pixel_format: PixelFormat, width: u32, height: u32) -> StreamOpen {
    StreamOpen {
        format,
        pixel_format,
        origin: Origin::Unspecified,
        width,
        height,
        fps_num: 0,
        fps_den: 1,
        name: "x".into(),
        codec_config: Default::default(),
    }
}

/// Largest allocation made while running `f`.
fn largest_during(f: impl FnOnce()) -> usize {
    LARGEST.store(0, Ordering::Relaxed);
    f();
    LARGEST.load(Ordering::Relaxed)
}

// One test function: the counter is global, tests in parallel would mix.
#[test]
fn decoders_allocate_no_more_than_the_checked_size() {
    let r = Registry::builtin();
    const MIB: usize = 1 << 20;
    #[cfg(feature = "jpeg")]
    {
        let mut enc = r.encoder(&EncodeSpec::mjpeg(80)).unwrap();
        let mut jpeg = enc.encode(&testkit::natural(16, 16, 1)).unwrap().to_vec();
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]); // 60000 x 60000
        let mut dec = r.negotiate(&open(Format::Mjpeg, PixelFormat::None, 0, 0)).unwrap();
        let jpeg = Bytes::from(jpeg);
        let most = largest_during(|| assert!(dec.decode(&jpeg).is_err()));
        assert!(most < MIB, "JPEG 60000x60000: allocated {most} bytes");
    }
    #[cfg(feature = "qoi")]
    {
        let mut qoi = b"qoif".to_vec();
        qoi.extend_from_slice(&[0, 0, 0xEA, 0x60, 0, 0, 0xEA, 0x60, 4, 0]);
        qoi.extend_from_slice(&[0xFD; 64]);
        qoi.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        let mut dec = r.negotiate(&open(Format::Qoi, PixelFormat::None, 0, 0)).unwrap();
        let qoi = Bytes::from(qoi);
        let most = largest_during(|| assert!(dec.decode(&qoi).is_err()));
        assert!(most < MIB, "QOI 60000x60000: allocated {most} bytes");
    }
    #[cfg(feature = "zstd")]
    {
        // 64 MiB of zeros in a few KiB, for a stream declaring 64x64 RGBA.
        let big = ::zstd::bulk::compress(&vec![0u8; 64 * MIB], 3).unwrap();
        let mut dec = r.negotiate(&open(Format::RawZstd, PixelFormat::Rgba, 64, 64)).unwrap();
        let big = Bytes::from(big);
        let most = largest_during(|| assert!(dec.decode(&big).is_err()));
        assert!(most <= 64 * 64 * 4, "zstd bomb: allocated {most} bytes");
    }
}
