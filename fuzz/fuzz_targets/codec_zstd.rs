//! Raw + zstd decoder on arbitrary and mutated payloads, for streams of
//! arbitrary small sizes and every raw pixel format.
//!
//! Properties: never panics; a decoded picture has exactly the declared
//! size and layout, and re-encodes and decodes to the same pixels.
#![no_main]

use bytes::Bytes;
use framewire_codec::zstd::{ZstdDecoder, ZstdEncoder};
use framewire_codec::{Decoder, EncodeSpec, Encoder, PixelLayout, testkit};
use framewire_proto::{Format, PixelFormat};
use libfuzzer_sys::fuzz_target;

include!("codec_common.rs");

const FORMATS: [PixelFormat; 5] = [
    PixelFormat::Bgra,
    PixelFormat::Rgba,
    PixelFormat::Bgr,
    PixelFormat::Yuv420p,
    PixelFormat::Yuv422Packed,
];

fuzz_target!(|data: &[u8]| {
    let Some((geometry, rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let pf = FORMATS[usize::from(geometry[0]) % FORMATS.len()];
    let (w, h) = (u32::from(geometry[1] % 64) * 2 + 2, u32::from(geometry[2] % 64) + 1);
    let spec = EncodeSpec::raw_zstd(pf, 1);
    let o = open(Format::RawZstd, pf, w, h);
    let Ok(mut dec) = ZstdDecoder::new(&o, &small_limits()) else {
        return;
    };
    let mut enc = ZstdEncoder::new(&spec).expect("encoder");
    let seed = enc.encode(&testkit::screen_like(w, h, 1)).expect("encode");
    let payload = Bytes::from(payload_from(rest, &seed));
    if let Ok(pic) = dec.decode(&payload) {
        assert_eq!((pic.width(), pic.height()), (w, h));
        assert_eq!(Some(pic.layout()), PixelLayout::from_wire(pf));
        let back = dec
            .decode(&enc.encode(&pic).expect("re-encode"))
            .expect("decode our own output");
        assert!(back.pixels_eq(&pic));
    }
});
