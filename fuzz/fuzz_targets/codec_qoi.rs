//! QOI decoder on arbitrary and mutated QOI images.
//!
//! Properties: never panics; whatever decodes re-encodes and decodes to the
//! same pixels.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use framewire_codec::qoi::{QoiDecoder, QoiEncoder};
use framewire_codec::{Decoder, Encoder, testkit};
use framewire_proto::{Format, PixelFormat};
use libfuzzer_sys::fuzz_target;

include!("codec_common.rs");

fn seed() -> &'static [u8] {
    static SEED: OnceLock<Vec<u8>> = OnceLock::new();
    SEED.get_or_init(|| {
        QoiEncoder::new()
            .encode(&testkit::screen_like(48, 32, 1))
            .expect("encode")
            .to_vec()
    })
}

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::from(payload_from(data, seed()));
    let o = open(Format::Qoi, PixelFormat::None, 0, 0);
    let mut dec = QoiDecoder::new(&o, &small_limits()).expect("decoder");
    if let Ok(pic) = dec.decode(&payload) {
        let again = QoiEncoder::new().encode(&pic).expect("re-encode");
        let back = dec.decode(&again).expect("decode our own output");
        assert!(back.pixels_eq(&pic));
    }
});
