// Shared by the codec fuzz targets (included with `include!`).

/// Either the input itself, or (first byte odd) a valid `seed` payload
/// truncated and with bytes overwritten as the input says: that reaches deep
/// into a decoder without a corpus.
fn payload_from(data: &[u8], seed: &[u8]) -> Vec<u8> {
    let Some((&mode, rest)) = data.split_first() else {
        return Vec::new();
    };
    if mode & 1 == 0 {
        return rest.to_vec();
    }
    let mut out = seed.to_vec();
    let mut it = rest.chunks_exact(3);
    if let Some(cut) = it.next() {
        let keep = usize::from(u16::from_le_bytes([cut[0], cut[1]]));
        if cut[2] & 1 == 1 && keep < out.len() {
            out.truncate(keep);
        }
    }
    for edit in it {
        if out.is_empty() {
            break;
        }
        let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % out.len();
        out[at] = edit[2];
    }
    out
}

fn small_limits() -> framewire_codec::DecodeOptions {
    framewire_codec::DecodeOptions {
        limits: framewire_codec::Limits { max_pixels: 1 << 20 },
        ..Default::default()
    }
}

fn open(
    format: framewire_proto::Format,
    pixel_format: framewire_proto::PixelFormat,
    w: u32,
    h: u32,
) -> framewire_proto::StreamOpen {
    framewire_proto::StreamOpen {
        format,
        pixel_format,
        origin: framewire_proto::Origin::Unspecified,
        width: w,
        height: h,
        fps_num: 0,
        fps_den: 1,
        name: String::new(),
        codec_config: Default::default(),
    }
}
