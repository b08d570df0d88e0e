use super::*;

const SC: [u8; 4] = [0, 0, 0, 1];

fn annexb(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nals {
        out.extend_from_slice(&SC);
        out.extend_from_slice(n);
    }
    out
}

// H.264 NAL units: header byte, then a payload byte whose top bit is
// first_mb_in_slice == 0 for slices.
const AUD: &[u8] = &[0x09, 0xf0];
const SPS: &[u8] = &[0x67, 0x42, 0x00, 0x1e, 0xab];
const PPS: &[u8] = &[0x68, 0xce, 0x38, 0x80];
const SEI: &[u8] = &[0x06, 0x05, 0x01, 0x80];
const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x21];
const IDR2: &[u8] = &[0x65, 0x40, 0x84, 0x00, 0x21]; // a second slice of the same picture
const P: &[u8] = &[0x41, 0x9a, 0x02, 0x03];

#[test]
fn nal_units_are_found_between_start_codes_of_either_length() {
    let mut data = vec![0xff, 0x00, 0x12]; // garbage
    data.extend_from_slice(&[0, 0, 1]);
    data.extend_from_slice(SPS);
    data.extend_from_slice(&[0, 0, 0, 1]);
    data.extend_from_slice(PPS);
    data.extend_from_slice(&[0, 0, 1]);
    data.extend_from_slice(IDR);
    data.extend_from_slice(&[0, 0]); // trailing zeros
    let nals: Vec<&[u8]> = nal_units(&data).collect();
    assert_eq!(nals, [SPS, PPS, IDR]);
    assert_eq!(nal_units(&[0, 0, 0]).count(), 0);
    assert_eq!(nal_units(&[]).count(), 0);
}

#[test]
fn kinds_of_both_codecs() {
    assert_eq!(Codec::H264.kind(IDR), Some(NalKind::KeySlice));
    assert_eq!(Codec::H264.kind(P), Some(NalKind::Slice));
    assert_eq!(Codec::H264.kind(SPS), Some(NalKind::Sps));
    assert_eq!(Codec::H264.kind(AUD), Some(NalKind::Aud));
    assert_eq!(Codec::H264.kind(&[]), None);
    // H.265: type in bits 1..7 of the first of two header bytes.
    let h265 = |t: u8| [t << 1, 0x01, 0x80];
    assert_eq!(Codec::H265.kind(&h265(19)), Some(NalKind::KeySlice)); // IDR_W_RADL
    assert_eq!(Codec::H265.kind(&h265(21)), Some(NalKind::KeySlice)); // CRA
    assert_eq!(Codec::H265.kind(&h265(1)), Some(NalKind::Slice)); // TRAIL_R
    assert_eq!(Codec::H265.kind(&h265(32)), Some(NalKind::Vps));
    assert_eq!(Codec::H265.kind(&h265(33)), Some(NalKind::Sps));
    assert_eq!(Codec::H265.kind(&h265(34)), Some(NalKind::Pps));
    assert_eq!(Codec::H265.kind(&h265(35)), Some(NalKind::Aud));
    assert_eq!(Codec::H265.kind(&h265(39)), Some(NalKind::Sei));
    assert_eq!(Codec::H265.kind(&[0x26]), None);
    assert!(Codec::H265.first_slice(&h265(19)));
    assert!(!Codec::H265.first_slice(&[19 << 1, 0x01, 0x40]));
}

fn split_all(codec: Codec, stream: &[u8], piece: usize) -> (Vec<Bytes>, SplitterStats) {
    let mut s = AuSplitter::new(codec, 1 << 20);
    let mut out = Vec::new();
    for chunk in stream.chunks(piece) {
        s.push(chunk);
        while let Some(u) = s.next_unit() {
            out.push(u);
        }
    }
    out.extend(s.finish());
    (out, s.stats())
}

#[test]
fn delimiters_cut_exactly_whatever_the_pieces() {
    let units = [
        annexb(&[AUD, SPS, PPS, IDR, IDR2]),
        annexb(&[AUD, P]),
        annexb(&[AUD, SEI, P]),
    ];
    let stream: Vec<u8> = units.concat();
    for piece in [1, 2, 3, 7, 1000] {
        let (got, stats) = split_all(Codec::H264, &stream, piece);
        let got: Vec<&[u8]> = got.iter().map(|b| &b[..]).collect();
        let want: Vec<&[u8]> = units.iter().map(|u| &u[..]).collect();
        assert_eq!(got, want, "pieces of {piece}");
        assert_eq!(stats.units, 3);
        assert_eq!((stats.skipped_bytes, stats.discarded), (0, 0));
    }
}

#[test]
fn without_delimiters_the_first_slice_and_parameter_sets_cut() {
    let units = [
        annexb(&[SPS, PPS, IDR, IDR2]),
        annexb(&[P]),
        annexb(&[SEI, P]),
        annexb(&[SPS, PPS, IDR]),
    ];
    let mut stream = vec![0x47, 0x11]; // garbage first
    stream.extend(units.concat());
    let (got, stats) = split_all(Codec::H264, &stream, 5);
    let got: Vec<&[u8]> = got.iter().map(|b| &b[..]).collect();
    let want: Vec<&[u8]> = units.iter().map(|u| &u[..]).collect();
    assert_eq!(got, want);
    assert_eq!(stats.skipped_bytes, 2);
    let keys: Vec<bool> = units.iter().map(|u| AccessUnit::of(Codec::H264, u).keyframe).collect();
    assert_eq!(keys, [true, false, false, true]);
}

#[test]
fn an_oversized_unit_is_dropped_and_the_next_one_found() {
    let big = [&[0x41u8, 0x9a][..], &[0x55; 300][..]].concat();
    let units = [annexb(&[AUD, &big]), annexb(&[AUD, P]), annexb(&[AUD, P])];
    let mut s = AuSplitter::new(Codec::H264, 100);
    let mut out = Vec::new();
    for chunk in units.concat().chunks(16) {
        s.push(chunk);
        while let Some(u) = s.next_unit() {
            out.push(u);
        }
    }
    out.extend(s.finish());
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|u| u[..] == units[1][..]));
    assert_eq!(s.stats().discarded, 1);
}

#[test]
fn a_keyframe_without_parameter_sets_gets_them_after_its_delimiter() {
    let mut ps = ParamSets::default();
    assert!(ps.update(Codec::H264, &annexb(&[AUD, SPS, PPS, IDR])));
    assert!(!ps.update(Codec::H264, &annexb(&[SPS, PPS])), "the same sets again");
    assert!(ps.is_complete(Codec::H264));
    assert_eq!(&ps.config()[..], &annexb(&[SPS, PPS])[..]);
    let bare = Bytes::from(annexb(&[AUD, IDR]));
    assert_eq!(&ps.complete(Codec::H264, bare)[..], &annexb(&[AUD, SPS, PPS, IDR])[..]);
    let bare = Bytes::from(annexb(&[IDR]));
    assert_eq!(&ps.complete(Codec::H264, bare)[..], &annexb(&[SPS, PPS, IDR])[..]);
    // Not a keyframe, or already complete: the same buffer back.
    for au in [annexb(&[AUD, P]), annexb(&[SPS, PPS, IDR])] {
        let b = Bytes::from(au);
        let ptr = b.as_ptr();
        assert_eq!(ps.complete(Codec::H264, b).as_ptr(), ptr);
    }
    // H.265 needs its VPS too.
    let mut ps = ParamSets::default();
    ps.update(Codec::H264, &annexb(&[SPS, PPS]));
    assert!(!ps.is_complete(Codec::H265));
}

/// Writes bits MSB first, with Exp-Golomb codes, for synthetic SPSs.
#[derive(Default)]
struct Writer {
    bytes: Vec<u8>,
    n: usize,
}

impl Writer {
    fn bit(&mut self, b: u32) {
        if self.n.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if b != 0 {
            *self.bytes.last_mut().unwrap() |= 0x80 >> (self.n % 8);
        }
        self.n += 1;
    }
    fn bits(&mut self, v: u32, n: u32) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1);
        }
    }
    fn ue(&mut self, v: u32) {
        let x = v + 1;
        let len = 32 - x.leading_zeros();
        self.bits(0, len - 1);
        self.bits(x, len);
    }
    fn done(mut self) -> Vec<u8> {
        self.bit(1); // rbsp stop bit
        self.bytes
    }
}

#[test]
fn sps_sizes_with_cropping_for_both_codecs() {
    // H.264 High 4:2:0, 1920x1080: 120x68 macroblocks, 8 rows cropped.
    let mut w = Writer::default();
    w.bits(100, 8); // profile_idc High
    w.bits(0, 8);
    w.bits(40, 8);
    w.ue(0); // sps id
    w.ue(1); // chroma 4:2:0
    w.ue(0);
    w.ue(0);
    w.bit(0);
    w.bit(1); // scaling matrix present
    w.bit(1); // list 0 present: 16 deltas
    for _ in 0..16 {
        w.ue(0); // se(0)
    }
    for _ in 1..8 {
        w.bit(0);
    }
    w.ue(0); // log2_max_frame_num_minus4
    w.ue(0); // poc type 0
    w.ue(2);
    w.ue(4); // max_num_ref_frames
    w.bit(0);
    w.ue(119);
    w.ue(67);
    w.bit(1); // frame_mbs_only
    w.bit(1); // direct_8x8
    w.bit(1); // cropping
    w.ue(0);
    w.ue(0);
    w.ue(0);
    w.ue(4); // bottom: 4 × 2 rows
    let mut nal = vec![0x67];
    nal.extend(w.done());
    assert_eq!(sps_size(Codec::H264, &nal), Some((1920, 1080)));
    assert_eq!(sps_size(Codec::H264, &nal[..4]), None, "truncated");

    // H.265 Main, 1920x1080 coded as 1920x1088 with a conformance window.
    let mut w = Writer::default();
    w.bits(0, 4); // vps id
    w.bits(1, 3); // one sub-layer above the base
    w.bit(1);
    w.bits(0, 32);
    w.bits(0, 32);
    w.bits(0, 24);
    w.bits(93, 8); // general_level_idc
    w.bit(1); // sub-layer profile present
    w.bit(0); // sub-layer level absent
    w.bits(0, 2 * 7); // reserved
    w.bits(0, 32);
    w.bits(0, 32);
    w.bits(0, 24); // sub-layer profile: 88 bits
    w.ue(0); // sps id
    w.ue(1); // 4:2:0
    w.ue(1920);
    w.ue(1088);
    w.bit(1);
    w.ue(0);
    w.ue(0);
    w.ue(0);
    w.ue(4);
    let mut nal = vec![33 << 1, 0x01];
    nal.extend(w.done());
    assert_eq!(sps_size(Codec::H265, &nal), Some((1920, 1080)));
}

#[test]
fn emulation_prevention_bytes_are_not_part_of_the_sps() {
    // pic_width_in_mbs_minus1 = 0 etc. give runs of zero bytes that an
    // encoder must escape with 03.
    let mut w = Writer::default();
    w.bits(66, 8); // Baseline
    w.bits(0, 16);
    w.ue(0);
    w.ue(0);
    w.ue(2); // poc type 2
    w.ue(0);
    w.bit(0);
    w.ue(0); // 1 MB wide
    w.ue(0); // 1 map unit high
    w.bit(1);
    w.bit(0);
    w.bit(0);
    let raw = w.done();
    let mut nal = vec![0x67];
    let mut zeros = 0;
    for b in raw {
        if zeros == 2 && b <= 3 {
            nal.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        nal.push(b);
    }
    assert_eq!(sps_size(Codec::H264, &nal), Some((16, 16)));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut x = 0x1234_5678u32;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for round in 0..200 {
        let len = (next() % 400) as usize;
        let data: Vec<u8> = (0..len)
            .map(|i| {
                if i % 5 == 0 {
                    0
                } else {
                    next() as u8 & if round % 2 == 0 { 0xff } else { 0x03 }
                }
            })
            .collect();
        for codec in [Codec::H264, Codec::H265] {
            let _ = split_all(codec, &data, 1 + round % 9);
            let _ = AccessUnit::of(codec, &data);
            for nal in nal_units(&data) {
                let _ = sps_size(codec, nal);
            }
            let mut ps = ParamSets::default();
            ps.update(codec, &data);
            let _ = ps.complete(codec, Bytes::from(data.clone()));
        }
    }
}

#[test]
fn parameter_sets_ahead_of_the_first_delimiter_stay_with_the_picture() {
    // A stream header (ffmpeg writes the extradata first), then units.
    let units = [annexb(&[SPS, PPS, AUD, IDR]), annexb(&[AUD, P])];
    let (got, stats) = split_all(Codec::H264, &units.concat(), 3);
    let got: Vec<&[u8]> = got.iter().map(|b| &b[..]).collect();
    assert_eq!(got, [&units[0][..], &units[1][..]]);
    assert_eq!(stats.discarded, 0);
    assert!(AccessUnit::of(Codec::H264, got[0]).has_sps);
}

#[test]
fn start_codes_are_found_next_to_ones_that_are_not() {
    // `01` bytes without two zeros before them, zeros without a `01`, a
    // start code at the very end, and one split by the buffer's start.
    let mut data = vec![1, 0, 1, 0, 0, 2, 1];
    data.extend_from_slice(&[0, 0, 1]);
    data.extend_from_slice(&[0x41, 1, 1, 0, 1, 0, 0, 0, 0]);
    data.extend_from_slice(&[0, 0, 0, 1]);
    data.extend_from_slice(SPS);
    data.extend_from_slice(&[0, 0, 1]);
    let nals: Vec<&[u8]> = nal_units(&data).collect();
    assert_eq!(nals, [&[0x41, 1, 1, 0, 1][..], SPS]);
    assert_eq!(find_start(&[0, 1], 0), None);
    assert_eq!(find_start(&[0, 0, 1], 0), Some((0, 3)));
}

#[test]
fn one_scan_finds_what_the_access_unit_holds_and_its_parameter_sets() {
    for au in [
        annexb(&[AUD, SPS, PPS, SEI, IDR, IDR2]),
        annexb(&[AUD, P]),
        annexb(&[PPS, P]),
    ] {
        let mut one = ParamSets::default();
        let mut two = ParamSets::default();
        let (a, changed) = one.scan(Codec::H264, &au);
        assert_eq!(a, AccessUnit::of(Codec::H264, &au));
        assert_eq!(changed, two.update(Codec::H264, &au));
        assert_eq!(one, two);
        let au = Bytes::from(au);
        assert_eq!(
            one.complete_as(Codec::H264, au.clone(), a),
            one.complete(Codec::H264, au)
        );
    }
}
