//! RTP packets of H.264 (RFC 6184, packetization mode 1) and H.265
//! (RFC 7798) access units: a NAL unit that fits goes whole in one
//! packet, a larger one in fragmentation units; the last packet of an
//! access unit has the marker bit. JPEG images (RFC 2435) go as their
//! scan in fragments, each behind the format's own header.

use framewire_codec::h26x::{Codec, nal_units};

use crate::conn::Encoding;
use crate::jpeg::JpegParts;

/// Most payload bytes in one RTP packet (with the 12-byte RTP header and
/// IP/UDP headers, under a 1500-byte Ethernet MTU).
pub const MAX_PAYLOAD: usize = 1400;

/// The RTP header's fixed length (no CSRC, no extension).
const HEADER: usize = 12;

/// Makes the RTP packets of one stream (one SSRC, one sequence).
#[derive(Debug, Clone)]
pub struct Packetizer {
    encoding: Encoding,
    payload_type: u8,
    ssrc: u32,
    seq: u16,
    max_payload: usize,
    packet: Vec<u8>,
}

impl Packetizer {
    /// A stream of `codec` with RTP payload type `payload_type`, SSRC
    /// `ssrc`, its first packet numbered `first_seq`.
    pub fn new(codec: Codec, payload_type: u8, ssrc: u32, first_seq: u16) -> Packetizer {
        Packetizer::of(Encoding::H26x(codec), payload_type, ssrc, first_seq)
    }

    /// The same for any encoding.
    pub fn of(encoding: Encoding, payload_type: u8, ssrc: u32, first_seq: u16) -> Packetizer {
        Packetizer {
            encoding,
            payload_type: payload_type & 0x7f,
            ssrc,
            seq: first_seq,
            max_payload: MAX_PAYLOAD,
            packet: Vec::with_capacity(HEADER + MAX_PAYLOAD),
        }
    }

    /// Packets of at most `n` payload bytes (at least 16).
    pub fn with_max_payload(mut self, n: usize) -> Packetizer {
        self.max_payload = n.max(16);
        self
    }

    /// The sequence number of the next packet.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// The SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Hands `out` the packets of `au` (Annex B) at RTP time `rtp_time`, in
    /// order; returns how many. An access unit without NAL units makes none.
    pub fn packetize(&mut self, au: &[u8], rtp_time: u32, mut out: impl FnMut(&[u8])) -> usize {
        let nals: Vec<&[u8]> = nal_units(au).collect();
        let mut packet = std::mem::take(&mut self.packet);
        let n = self.packetize_parts(&nals, rtp_time, |head, payload| {
            packet.clear();
            packet.extend_from_slice(head);
            packet.extend_from_slice(payload);
            out(&packet);
        });
        self.packet = packet;
        n
    }

    /// The same for an access unit already split into its NAL units
    /// (without start codes), each packet handed over in two parts: its
    /// headers (RTP, and the FU's), and its payload, a slice of a NAL unit
    /// (so one split serves many clients, and nothing is copied here).
    pub fn packetize_parts(&mut self, nals: &[&[u8]], rtp_time: u32, mut out: impl FnMut(&[u8], &[u8])) -> usize {
        let Encoding::H26x(codec) = self.encoding else {
            return 0;
        };
        let mut n = 0;
        for (i, nal) in nals.iter().enumerate() {
            let last_nal = i + 1 == nals.len();
            if nal.len() <= self.max_payload {
                let head = self.header(rtp_time, last_nal);
                out(&head, nal);
                n += 1;
                continue;
            }
            // Fragmentation units: the NAL header's fields move into the
            // FU's own headers; the rest goes in pieces.
            let (fu, fu_len, kind, body): ([u8; 3], usize, u8, &[u8]) = match codec {
                Codec::H264 => ([(nal[0] & 0xe0) | 28, 0, 0], 2, nal[0] & 0x1f, &nal[1..]),
                Codec::H265 => (
                    [(nal[0] & 0x81) | (49 << 1), nal[1], 0],
                    3,
                    (nal[0] >> 1) & 0x3f,
                    &nal[2..],
                ),
            };
            let room = self.max_payload - fu_len;
            let pieces = body.len().div_ceil(room);
            for (k, piece) in body.chunks(room).enumerate() {
                let flags = match (k == 0, k + 1 == pieces) {
                    (true, _) => 0x80,
                    (_, true) => 0x40,
                    _ => 0,
                };
                let mut head = [0u8; HEADER + 3];
                head[..HEADER].copy_from_slice(&self.header(rtp_time, last_nal && k + 1 == pieces));
                head[HEADER..HEADER + fu_len].copy_from_slice(&fu[..fu_len]);
                head[HEADER + fu_len - 1] = flags | kind;
                out(&head[..HEADER + fu_len], piece);
                n += 1;
            }
        }
        n
    }

    /// The packets of a JPEG image whose parts are `parts`, `scan` being
    /// its entropy-coded data, each handed over as its headers (RTP,
    /// RFC 2435's, and with the first, the quantization tables) and a
    /// slice of `scan`; returns how many. Nothing for another encoding.
    pub fn packetize_jpeg(
        &mut self,
        parts: &JpegParts,
        scan: &[u8],
        rtp_time: u32,
        mut out: impl FnMut(&[u8], &[u8]),
    ) -> usize {
        if self.encoding != Encoding::Jpeg {
            return 0;
        }
        let restart = parts.kind >= 64;
        let mut n = 0;
        let mut offset = 0usize;
        while offset < scan.len() {
            let mut head = Vec::with_capacity(HEADER + 8 + 4 + 4 + 128);
            head.extend_from_slice(&[0; HEADER]);
            // Type-specific 0, fragment offset (24 bits), type, Q 255 (tables
            // in-band), width and height in 8-pixel units.
            let off = (offset as u32).to_be_bytes();
            head.extend_from_slice(&[0, off[1], off[2], off[3], parts.kind, 255, parts.width8, parts.height8]);
            if restart {
                // Interval; F and L set, count 0x3fff: fragments are not
                // aligned to restart intervals.
                head.extend_from_slice(&parts.restart_interval.to_be_bytes());
                head.extend_from_slice(&[0xff, 0xff]);
            }
            if offset == 0 {
                // MBZ, precision 0 (8-bit), length, luma then chroma.
                head.extend_from_slice(&[0, 0, 0, 128]);
                head.extend_from_slice(&parts.qtables);
            }
            let room = self.max_payload.saturating_sub(head.len() - HEADER).max(16);
            let take = room.min(scan.len() - offset);
            let last = offset + take == scan.len();
            let h = self.header(rtp_time, last);
            head[..HEADER].copy_from_slice(&h);
            out(&head, &scan[offset..offset + take]);
            offset += take;
            n += 1;
        }
        n
    }

    /// The next packet's RTP header.
    fn header(&mut self, rtp_time: u32, marker: bool) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[0] = 0x80;
        h[1] = u8::from(marker) << 7 | self.payload_type;
        h[2..4].copy_from_slice(&self.seq.to_be_bytes());
        h[4..8].copy_from_slice(&rtp_time.to_be_bytes());
        h[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(p: &mut Packetizer, au: &[u8], ts: u32) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        p.packetize(au, ts, |b| v.push(b.to_vec()));
        v
    }

    /// Puts the NAL units of `pkts` back together as RFC 6184 and 7798
    /// receivers do (single NAL units and FUs only).
    fn depacketize(codec: Codec, pkts: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut cur: Vec<u8> = Vec::new();
        for p in pkts {
            let pl = &p[HEADER..];
            let fu = match codec {
                Codec::H264 => pl[0] & 0x1f == 28,
                Codec::H265 => (pl[0] >> 1) & 0x3f == 49,
            };
            if !fu {
                nals.push(pl.to_vec());
                continue;
            }
            let (h, body) = match codec {
                Codec::H264 => (pl[1], &pl[2..]),
                Codec::H265 => (pl[2], &pl[3..]),
            };
            if h & 0x80 != 0 {
                cur = match codec {
                    Codec::H264 => vec![(pl[0] & 0xe0) | (h & 0x1f)],
                    Codec::H265 => vec![(pl[0] & 0x81) | ((h & 0x3f) << 1), pl[1]],
                };
            }
            cur.extend_from_slice(body);
            if h & 0x40 != 0 {
                nals.push(std::mem::take(&mut cur));
            }
        }
        nals
    }

    fn annexb(nals: &[Vec<u8>]) -> Vec<u8> {
        nals.iter().flat_map(|n| [&[0, 0, 0, 1][..], n].concat()).collect()
    }

    #[test]
    fn small_nal_units_go_whole_and_large_ones_in_fragments_of_either_codec() {
        for codec in [Codec::H264, Codec::H265] {
            let (sps, big) = match codec {
                Codec::H264 => (vec![0x67, 1, 2, 3], {
                    let mut v = vec![0x65];
                    v.extend((0..5000u32).map(|i| (i % 251) as u8 | 0x02));
                    v
                }),
                Codec::H265 => (vec![33 << 1, 1, 2, 3], {
                    let mut v = vec![19 << 1, 1];
                    v.extend((0..5000u32).map(|i| (i % 251) as u8 | 0x02));
                    v
                }),
            };
            let mut p = Packetizer::new(codec, 96, 0x1234_5678, 65534);
            let pkts = packets(&mut p, &annexb(&[sps.clone(), big.clone()]), 9000);
            // 5000+ bytes at 1400 a packet: 4 fragments, after the SPS.
            assert_eq!(pkts.len(), 5, "{codec:?}");
            assert!(pkts.iter().all(|p| p.len() <= HEADER + MAX_PAYLOAD));
            let seqs: Vec<u16> = pkts.iter().map(|p| u16::from_be_bytes([p[2], p[3]])).collect();
            assert_eq!(seqs, [65534, 65535, 0, 1, 2]);
            let markers: Vec<bool> = pkts.iter().map(|p| p[1] & 0x80 != 0).collect();
            assert_eq!(markers, [false, false, false, false, true]);
            assert!(pkts.iter().all(|p| p[0] == 0x80 && p[1] & 0x7f == 96));
            assert!(pkts.iter().all(|p| p[4..8] == 9000u32.to_be_bytes()));
            assert!(pkts.iter().all(|p| p[8..12] == 0x1234_5678u32.to_be_bytes()));
            assert_eq!(depacketize(codec, &pkts), [sps, big]);
            assert_eq!(p.next_seq(), 3);
        }
    }

    #[test]
    fn nothing_for_an_access_unit_without_nal_units() {
        let mut p = Packetizer::new(Codec::H264, 96, 1, 0);
        assert_eq!(packets(&mut p, &[0, 0, 0, 1], 0).len(), 0);
        assert_eq!(packets(&mut p, &[], 0).len(), 0);
        assert_eq!(p.next_seq(), 0);
    }
}
