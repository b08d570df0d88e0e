use super::*;
use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};

/// A w×h picture of colour bars as JPEG.
fn jpeg(w: usize, h: usize, subsamp: Subsamp, optimize: bool) -> Vec<u8> {
    let pixels: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let bar = (i % w) * 8 / w;
            [(bar * 37) as u8, (255 - bar * 30) as u8, (bar * 90 % 256) as u8]
        })
        .collect();
    let mut c = Compressor::new().unwrap();
    c.set_quality(80).unwrap();
    c.set_subsamp(subsamp).unwrap();
    c.set_optimize(optimize).unwrap();
    let image = Image {
        pixels: pixels.as_slice(),
        width: w,
        pitch: w * 3,
        height: h,
        format: PixelFormat::RGB,
    };
    c.compress_to_vec(image).unwrap()
}

#[test]
fn baseline_420_and_422_with_standard_tables_go_as_they_are() {
    for (subsamp, kind) in [(Subsamp::Sub2x2, 1), (Subsamp::Sub2x1, 0)] {
        let j = jpeg(320, 240, subsamp, false);
        let p = parse(&j).unwrap();
        assert_eq!((p.kind, p.width8, p.height8, p.restart_interval), (kind, 40, 30, 0));
        // The scan runs from after SOS to before EOI.
        assert_eq!(p.scan.end, j.len() - 2);
        assert_eq!(&j[p.scan.start - 14..p.scan.start - 12], &[0xff, 0xda]);
        // The tables are the image's own: DQT's bytes.
        let dqt = j.windows(2).position(|w| w == [0xff, 0xdb]).unwrap();
        assert_eq!(&p.qtables[..64], &j[dqt + 5..dqt + 69]);
    }
    // At the limit.
    assert_eq!(parse(&jpeg(2040, 16, Subsamp::Sub2x2, false)).unwrap().width8, 255);
}

#[test]
fn what_rfc_2435_cannot_carry_is_refused_with_the_reason() {
    assert_eq!(
        parse(&jpeg(2048, 16, Subsamp::Sub2x2, false)),
        Err(NotRfc2435::Size(2048, 16))
    );
    assert_eq!(
        parse(&jpeg(100, 64, Subsamp::Sub2x2, false)),
        Err(NotRfc2435::Size(100, 64))
    );
    assert_eq!(parse(&jpeg(64, 64, Subsamp::None, false)), Err(NotRfc2435::Sampling));
    assert_eq!(parse(&jpeg(64, 64, Subsamp::Sub2x2, true)), Err(NotRfc2435::Huffman));
    // Progressive: the same image with SOF2 in place of SOF0.
    let mut j = jpeg(64, 64, Subsamp::Sub2x2, false);
    let sof = j.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    j[sof + 1] = 0xc2;
    assert_eq!(parse(&j), Err(NotRfc2435::NotBaseline));
    assert!(matches!(parse(b"\xff\xd8\xff\xdb\x00"), Err(NotRfc2435::Malformed(_))));
    assert!(matches!(parse(b"not a jpeg"), Err(NotRfc2435::Malformed(_))));
    // Every prefix of a good image fails cleanly, never panics.
    let j = jpeg(64, 64, Subsamp::Sub2x2, false);
    for n in 0..j.len() {
        let _ = parse(&j[..n]);
    }
}

#[test]
fn fragments_carry_the_whole_scan_with_offsets_tables_first_and_marker_last() {
    use crate::{Encoding, Packetizer};
    let j = jpeg(640, 480, Subsamp::Sub2x2, false);
    let p = parse(&j).unwrap();
    let scan = &j[p.scan.clone()];
    let mut pk = Packetizer::of(Encoding::Jpeg, 26, 7, 100).with_max_payload(1000);
    let mut got = Vec::new();
    let mut pkts = Vec::new();
    pk.packetize_jpeg(&p, scan, 9000, |head, payload| {
        pkts.push((head.to_vec(), payload.to_vec()))
    });
    assert!(pkts.len() > 2, "{} packets", pkts.len());
    for (i, (head, payload)) in pkts.iter().enumerate() {
        assert_eq!(head[1] & 0x7f, 26);
        assert_eq!(head[1] >> 7 == 1, i + 1 == pkts.len(), "marker on the last only");
        let jh = &head[12..20];
        let offset = u32::from_be_bytes([0, jh[1], jh[2], jh[3]]) as usize;
        assert_eq!(offset, got.len(), "fragment {i} continues the one before");
        assert_eq!(&jh[4..], &[1, 255, 80, 60]);
        let tables = if i == 0 { 4 + 128 } else { 0 };
        assert_eq!(head.len(), 20 + tables);
        if i == 0 {
            assert_eq!(&head[20..24], &[0, 0, 0, 128]);
            assert_eq!(&head[24..], &p.qtables[..]);
        }
        assert!(head.len() - 12 + payload.len() <= 1000);
        got.extend_from_slice(payload);
    }
    assert_eq!(got, scan);
    // Another encoding's packetizer makes no JPEG packets.
    let mut h264 = Packetizer::new(framewire_codec::h26x::Codec::H264, 96, 7, 0);
    assert_eq!(h264.packetize_jpeg(&p, scan, 0, |_, _| panic!("a packet")), 0);
}
