//! RTCP sender reports (RFC 3550 §6.4.1): the wall-clock time of an RTP
//! time, so a client can put the stream on a clock (and beside another
//! stream of the same node), with an SDES CNAME as every compound RTCP
//! packet needs.

/// Seconds from 1900 (NTP's epoch) to 1970 (Unix's).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// An SR and SDES compound packet: `ssrc` says RTP time `rtp_time` is
/// `unix_ns` (nanoseconds since 1970), after `packets` packets and
/// `octets` payload bytes.
pub fn sender_report(ssrc: u32, unix_ns: u64, rtp_time: u32, packets: u32, octets: u32, cname: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    // SR: V=2, no reports, PT 200, 6 words after the first.
    p.extend_from_slice(&[0x80, 200, 0, 6]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    let secs = unix_ns / 1_000_000_000 + NTP_UNIX_OFFSET;
    let frac = ((unix_ns % 1_000_000_000) << 32) / 1_000_000_000;
    p.extend_from_slice(&(secs as u32).to_be_bytes());
    p.extend_from_slice(&(frac as u32).to_be_bytes());
    p.extend_from_slice(&rtp_time.to_be_bytes());
    p.extend_from_slice(&packets.to_be_bytes());
    p.extend_from_slice(&octets.to_be_bytes());
    // SDES with one chunk: the SSRC, CNAME, the end, padding to a word.
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let start = p.len();
    p.extend_from_slice(&[0x81, 202, 0, 0]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.push(1);
    p.push(cname.len() as u8);
    p.extend_from_slice(cname);
    p.push(0);
    while !(p.len() - start).is_multiple_of(4) {
        p.push(0);
    }
    let words = ((p.len() - start) / 4 - 1) as u16;
    p[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_maps_rtp_time_to_ntp_time() {
        // 2026-01-01T00:00:00.5Z.
        let unix_ns = 1_767_225_600_500_000_000;
        let p = sender_report(0xdead_beef, unix_ns, 123_456, 10, 9000, "framewire@node");
        assert_eq!(&p[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&p[4..8], &0xdead_beefu32.to_be_bytes());
        let secs = u32::from_be_bytes(p[8..12].try_into().unwrap());
        assert_eq!(u64::from(secs), 1_767_225_600 + NTP_UNIX_OFFSET);
        let frac = u32::from_be_bytes(p[12..16].try_into().unwrap());
        assert_eq!(frac, 1 << 31, "half a second");
        assert_eq!(u32::from_be_bytes(p[16..20].try_into().unwrap()), 123_456);
        assert_eq!(u32::from_be_bytes(p[20..24].try_into().unwrap()), 10);
        assert_eq!(u32::from_be_bytes(p[24..28].try_into().unwrap()), 9000);
        // SDES: header, SSRC, CNAME item, end, padded; its length in words.
        let sdes = &p[28..];
        assert_eq!(&sdes[..2], &[0x81, 202]);
        assert_eq!(sdes.len() % 4, 0);
        assert_eq!(usize::from(u16::from_be_bytes([sdes[2], sdes[3]])), sdes.len() / 4 - 1);
        assert_eq!(&sdes[8..10], &[1, 14]);
        assert_eq!(&sdes[10..24], b"framewire@node");
        assert_eq!(sdes[24], 0);
    }
}
