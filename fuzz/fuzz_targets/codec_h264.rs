//! H.264 decoder (OpenH264) on arbitrary and mutated access units: a
//! keyframe of our own encoder, truncated and overwritten, then a P-frame
//! after it.
//!
//! Properties: never panics or crashes; a picture that decodes is within
//! the size limit.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use framewire_codec::h264::{H264Decoder, H264Encoder};
use framewire_codec::{Decoder, EncodeSpec, Encoder, testkit};
use framewire_proto::{Format, PixelFormat};
use libfuzzer_sys::fuzz_target;

include!("codec_common.rs");

/// A keyframe and the P-frame after it, 64x48.
fn seeds() -> &'static (Vec<u8>, Vec<u8>) {
    static SEEDS: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut e = H264Encoder::new(&EncodeSpec::h264(200_000, 30)).expect("encoder");
        let key = e.encode(&testkit::screen_like(64, 48, 1)).expect("encode").to_vec();
        let p = e.encode(&testkit::screen_like(64, 48, 2)).expect("encode").to_vec();
        (key, p)
    })
}

fuzz_target!(|data: &[u8]| {
    let (key, p) = seeds();
    let o = open(Format::H264, PixelFormat::None, 0, 0);
    let mut dec = H264Decoder::new(&o, &small_limits()).expect("decoder");
    let first = Bytes::from(payload_from(data, key));
    for payload in [first, Bytes::from(p.clone())] {
        if let Ok(pic) = dec.decode(&payload) {
            assert!(u64::from(pic.width()) * u64::from(pic.height()) <= 1 << 20);
        }
    }
});
