//! MJPEG decoder on arbitrary and mutated JPEGs.
//!
//! Properties: never panics; a decoded picture has the size the header
//! gave and is within limits; the planes decode agrees on the size.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use framewire_codec::mjpeg::MjpegDecoder;
use framewire_codec::{Decoder, EncodeSpec, Registry, testkit};
use framewire_proto::{Format, PixelFormat};
use libfuzzer_sys::fuzz_target;

include!("codec_common.rs");

fn seed() -> &'static [u8] {
    static SEED: OnceLock<Vec<u8>> = OnceLock::new();
    SEED.get_or_init(|| {
        let mut enc = Registry::builtin()
            .encoder(&EncodeSpec::mjpeg(75))
            .expect("jpeg encoder");
        enc.encode(&testkit::natural(40, 24, 1)).expect("encode").to_vec()
    })
}

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::from(payload_from(data, seed()));
    let o = open(Format::Mjpeg, PixelFormat::None, 0, 0);
    let mut dec = MjpegDecoder::new(&o, &small_limits()).expect("decoder");
    if let Ok(pic) = dec.decode(&payload) {
        assert!(u64::from(pic.width()) * u64::from(pic.height()) <= 1 << 20);
        if let Ok(planes) = dec.decode_planes(&payload) {
            assert_eq!((planes.width, planes.height), (pic.width(), pic.height()));
        }
    } else {
        let _ = dec.decode_planes(&payload);
    }
});
