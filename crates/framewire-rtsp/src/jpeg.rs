//! JPEG over RTP (RFC 2435): which JPEG images the format can carry, and
//! the parts of one that go on the wire.
//!
//! The format sends only a picture's entropy-coded scan and a few fields;
//! the receiver rebuilds the headers with the standard Huffman tables of
//! ITU T.81 Annex K. So an image goes as it is only if it is baseline,
//! three 8-bit components with 4:2:2 or 4:2:0 sampling, Huffman tables
//! that are the standard ones (or none, as many cameras send), a size of
//! multiples of 8 up to 2040×2040. Anything else is refused here, and a
//! server serves such a stream re-encoded rather than broken.

/// Why an image cannot go as RFC 2435 JPEG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotRfc2435 {
    /// Not a whole JPEG image.
    #[error("not a JPEG image: {0}")]
    Malformed(&'static str),
    /// Progressive, lossless, arithmetic-coded or 12-bit.
    #[error("not baseline JPEG")]
    NotBaseline,
    /// Another layout of components.
    #[error("components or sampling other than YUV 4:2:2 or 4:2:0")]
    Sampling,
    /// Huffman tables other than the standard ones.
    #[error("Huffman tables other than the standard ones")]
    Huffman,
    /// Too large, or not a multiple of 8.
    #[error("size {0}x{1}: at most 2040x2040, in multiples of 8")]
    Size(u16, u16),
}

/// What of a JPEG image goes in its RTP packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegParts {
    /// RFC 2435 type: 0 (4:2:2) or 1 (4:2:0), plus 64 with restart markers.
    pub kind: u8,
    /// Width and height in 8-pixel units.
    pub width8: u8,
    pub height8: u8,
    /// The luma and chroma quantization tables, 64 bytes each, as the
    /// image's DQT has them (zig-zag order).
    pub qtables: [u8; 128],
    /// The restart interval (DRI), 0 if none.
    pub restart_interval: u16,
    /// Where the entropy-coded scan is in the image (without EOI).
    pub scan: std::ops::Range<usize>,
}

/// The standard table of `class_id` (built once).
fn standard_table(class_id: u8) -> Option<&'static [u8]> {
    static TABLES: std::sync::OnceLock<[Vec<u8>; 4]> = std::sync::OnceLock::new();
    let t = TABLES.get_or_init(|| [0x00, 0x01, 0x10, 0x11].map(|c| build_standard_table(c).expect("a standard table")));
    let i = match class_id {
        0x00 => 0,
        0x01 => 1,
        0x10 => 2,
        0x11 => 3,
        _ => return None,
    };
    Some(&t[i])
}

/// ITU T.81 Annex K.3: the standard Huffman tables, as a DHT segment
/// holds each: class and id, 16 code counts, the symbols.
fn build_standard_table(class_id: u8) -> Option<Vec<u8>> {
    let hex = |s: &str| -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("a hex byte"))
            .collect()
    };
    let (counts, symbols) = match class_id {
        0x00 => (
            "00 01 05 01 01 01 01 01 01 00 00 00 00 00 00 00",
            "00 01 02 03 04 05 06 07 08 09 0a 0b",
        ),
        0x01 => (
            "00 03 01 01 01 01 01 01 01 01 01 00 00 00 00 00",
            "00 01 02 03 04 05 06 07 08 09 0a 0b",
        ),
        0x10 => (
            "00 02 01 03 03 02 04 03 05 05 04 04 00 00 01 7d",
            "01 02 03 00 04 11 05 12 21 31 41 06 13 51 61 07 22 71 14 32 81 91 a1 08 \
             23 42 b1 c1 15 52 d1 f0 24 33 62 72 82 09 0a 16 17 18 19 1a 25 26 27 28 29 2a \
             34 35 36 37 38 39 3a 43 44 45 46 47 48 49 4a 53 54 55 56 57 58 59 5a \
             63 64 65 66 67 68 69 6a 73 74 75 76 77 78 79 7a 83 84 85 86 87 88 89 8a \
             92 93 94 95 96 97 98 99 9a a2 a3 a4 a5 a6 a7 a8 a9 aa b2 b3 b4 b5 b6 b7 b8 b9 ba \
             c2 c3 c4 c5 c6 c7 c8 c9 ca d2 d3 d4 d5 d6 d7 d8 d9 da e1 e2 e3 e4 e5 e6 e7 e8 e9 ea \
             f1 f2 f3 f4 f5 f6 f7 f8 f9 fa",
        ),
        0x11 => (
            "00 02 01 02 04 04 03 04 07 05 04 04 00 01 02 77",
            "00 01 02 03 11 04 05 21 31 06 12 41 51 07 61 71 13 22 32 81 08 14 42 91 \
             a1 b1 c1 09 23 33 52 f0 15 62 72 d1 0a 16 24 34 e1 25 f1 17 18 19 1a 26 \
             27 28 29 2a 35 36 37 38 39 3a 43 44 45 46 47 48 49 4a 53 54 55 56 57 58 59 5a \
             63 64 65 66 67 68 69 6a 73 74 75 76 77 78 79 7a 82 83 84 85 86 87 88 89 8a \
             92 93 94 95 96 97 98 99 9a a2 a3 a4 a5 a6 a7 a8 a9 aa b2 b3 b4 b5 b6 b7 b8 b9 ba \
             c2 c3 c4 c5 c6 c7 c8 c9 ca d2 d3 d4 d5 d6 d7 d8 d9 da e2 e3 e4 e5 e6 e7 e8 e9 ea \
             f2 f3 f4 f5 f6 f7 f8 f9 fa",
        ),
        _ => return None,
    };
    let mut t = vec![class_id];
    t.extend(hex(counts));
    t.extend(hex(symbols));
    Some(t)
}

/// Reads a big-endian u16 at `at`.
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The parts of `jpeg` RFC 2435 sends, or why it cannot send them.
pub fn parse(jpeg: &[u8]) -> Result<JpegParts, NotRfc2435> {
    use NotRfc2435 as E;
    if !jpeg.starts_with(&[0xff, 0xd8]) {
        return Err(E::Malformed("no SOI"));
    }
    let mut tables: [Option<[u8; 64]>; 4] = [None; 4];
    let mut frame: Option<(u16, u16, u8, u8, u8)> = None; // w, h, type, luma table, chroma table
    let mut restart_interval = 0u16;
    let mut at = 2;
    loop {
        // Markers may be padded with 0xff.
        while jpeg.get(at) == Some(&0xff) && jpeg.get(at + 1) == Some(&0xff) {
            at += 1;
        }
        if jpeg.get(at) != Some(&0xff) {
            return Err(E::Malformed("a marker expected"));
        }
        let marker = *jpeg.get(at + 1).ok_or(E::Malformed("cut in a marker"))?;
        let len = usize::from(u16_at(jpeg, at + 2).ok_or(E::Malformed("cut in a segment"))?);
        let body = jpeg
            .get(at + 4..at + 2 + len)
            .ok_or(E::Malformed("a segment past the end"))?;
        if len < 2 {
            return Err(E::Malformed("a segment shorter than its length"));
        }
        match marker {
            0xdb => {
                let mut d = body;
                while !d.is_empty() {
                    if d[0] >> 4 != 0 {
                        return Err(E::NotBaseline); // 16-bit tables
                    }
                    let t = d.get(1..65).ok_or(E::Malformed("a short DQT"))?;
                    tables[usize::from(d[0] & 3)] = Some(t.try_into().expect("64 bytes"));
                    d = &d[65..];
                }
            }
            0xc4 => {
                let mut d = body;
                while !d.is_empty() {
                    let n: usize = d
                        .get(1..17)
                        .ok_or(E::Malformed("a short DHT"))?
                        .iter()
                        .map(|&c| usize::from(c))
                        .sum();
                    let t = d.get(..17 + n).ok_or(E::Malformed("a short DHT"))?;
                    if standard_table(t[0]) != Some(t) {
                        return Err(E::Huffman);
                    }
                    d = &d[17 + n..];
                }
            }
            0xc0 => {
                if body.len() < 15 || body[0] != 8 || body[5] != 3 {
                    return Err(if body.get(5) == Some(&3) {
                        E::NotBaseline
                    } else {
                        E::Sampling
                    });
                }
                let (h, w) = (u16_at(body, 1).unwrap_or(0), u16_at(body, 3).unwrap_or(0));
                let c = |i: usize| (body[6 + 3 * i + 1], body[6 + 3 * i + 2]);
                let ((y, ty), (cb, tcb), (cr, tcr)) = (c(0), c(1), c(2));
                let kind = match y {
                    0x21 => 0,
                    0x22 => 1,
                    _ => return Err(E::Sampling),
                };
                if cb != 0x11 || cr != 0x11 || tcb != tcr || ty > 3 || tcb > 3 {
                    return Err(E::Sampling);
                }
                if w == 0 || h == 0 || w > 2040 || h > 2040 || w % 8 != 0 || h % 8 != 0 {
                    return Err(E::Size(w, h));
                }
                frame = Some((w, h, kind, ty, tcb));
            }
            0xc1..=0xcf => return Err(E::NotBaseline),
            0xdd => restart_interval = u16_at(body, 0).ok_or(E::Malformed("a short DRI"))?,
            0xda => {
                let (w, h, kind, ty, tc) = frame.ok_or(E::Malformed("a scan before its frame header"))?;
                // One scan of the three components, tables 0 for Y and 1 for chroma.
                if body.first() != Some(&3) || body.len() < 10 || body[2] != 0x00 || body[4] != 0x11 || body[6] != 0x11
                {
                    return Err(E::Huffman);
                }
                let mut qtables = [0u8; 128];
                qtables[..64].copy_from_slice(&tables[usize::from(ty)].ok_or(E::Malformed("no luma DQT"))?);
                qtables[64..].copy_from_slice(&tables[usize::from(tc)].ok_or(E::Malformed("no chroma DQT"))?);
                let start = at + 2 + len;
                let end = if jpeg.ends_with(&[0xff, 0xd9]) {
                    jpeg.len() - 2
                } else {
                    jpeg.len()
                };
                if start >= end {
                    return Err(E::Malformed("an empty scan"));
                }
                // The fragment offset has 24 bits.
                if end - start >= 1 << 24 {
                    return Err(E::Malformed("a scan of 16 MiB or more"));
                }
                return Ok(JpegParts {
                    kind: kind + if restart_interval > 0 { 64 } else { 0 },
                    width8: (w / 8) as u8,
                    height8: (h / 8) as u8,
                    qtables,
                    restart_interval,
                    scan: start..end,
                });
            }
            _ => {}
        }
        at += 2 + len;
    }
}

#[cfg(test)]
mod tests;
