//! The session description a DESCRIBE answers with: one video stream, its
//! payload format and its parameter sets (RFC 6184 `sprop-parameter-sets`,
//! RFC 7798 `sprop-vps/sps/pps`), so a client can decode from the first
//! keyframe whether or not it carries them in-band.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use framewire_codec::h26x::{Codec, NalKind, nal_units};

use crate::conn::{Encoding, StreamDesc};

/// The RTP payload type of an H.264 or H.265 stream (dynamic).
pub(crate) const PAYLOAD_TYPE: u8 = 96;

/// The RTP payload type of JPEG (static, RFC 3551).
pub(crate) const JPEG_PAYLOAD_TYPE: u8 = 26;

/// The payload type of a stream of `encoding`.
pub(crate) fn payload_type(encoding: Encoding) -> u8 {
    match encoding {
        Encoding::H26x(_) => PAYLOAD_TYPE,
        Encoding::Jpeg => JPEG_PAYLOAD_TYPE,
    }
}

/// The control URL of the one stream, relative to the Content-Base.
pub(crate) const TRACK: &str = "trackID=0";

/// The SDP of `desc`, for session `session_id` served from `host` (an IP
/// address as text).
pub fn sdp(desc: &StreamDesc, session_id: u64, host: &str) -> String {
    let family = if host.contains(':') { "IP6" } else { "IP4" };
    let mut s = String::new();
    let _ = write!(
        s,
        "v=0\r\no=- {session_id} 1 IN {family} {host}\r\ns={}\r\nc=IN {family} {}\r\nt=0 0\r\n\
         a=tool:framewire\r\na=range:npt=now-\r\na=control:*\r\n",
        desc.name,
        if family == "IP6" { "::" } else { "0.0.0.0" },
    );
    let codec = match desc.encoding {
        Encoding::H26x(c) => c,
        Encoding::Jpeg => {
            let _ = write!(
                s,
                "m=video 0 RTP/AVP {JPEG_PAYLOAD_TYPE}\r\na=rtpmap:{JPEG_PAYLOAD_TYPE} JPEG/90000\r\n"
            );
            return tail(s, desc);
        }
    };
    let _ = write!(s, "m=video 0 RTP/AVP {PAYLOAD_TYPE}\r\n");
    let (vps, sps, pps) = parameter_sets(codec, &desc.config);
    let b64 = |n: &[u8]| STANDARD.encode(n);
    match codec {
        Codec::H264 => {
            let _ = write!(s, "a=rtpmap:{PAYLOAD_TYPE} H264/90000\r\n");
            let _ = write!(s, "a=fmtp:{PAYLOAD_TYPE} packetization-mode=1");
            if let Some(sps) = sps.filter(|s| s.len() >= 4) {
                let _ = write!(s, ";profile-level-id={:02X}{:02X}{:02X}", sps[1], sps[2], sps[3]);
            }
            if let (Some(sps), Some(pps)) = (sps, pps) {
                let _ = write!(s, ";sprop-parameter-sets={},{}", b64(sps), b64(pps));
            }
            s.push_str("\r\n");
        }
        Codec::H265 => {
            let _ = write!(s, "a=rtpmap:{PAYLOAD_TYPE} H265/90000\r\n");
            if let (Some(vps), Some(sps), Some(pps)) = (vps, sps, pps) {
                let _ = write!(
                    s,
                    "a=fmtp:{PAYLOAD_TYPE} sprop-vps={};sprop-sps={};sprop-pps={}\r\n",
                    b64(vps),
                    b64(sps),
                    b64(pps)
                );
            }
        }
    }
    tail(s, desc)
}

/// The rate and control lines every stream's description ends with.
fn tail(mut s: String, desc: &StreamDesc) -> String {
    if let Some((num, den)) = desc.fps.filter(|(n, d)| *n > 0 && *d > 0) {
        let fps = f64::from(num) / f64::from(den);
        let _ = write!(s, "a=framerate:{}\r\n", (fps * 1000.0).round() / 1000.0);
    }
    let _ = write!(s, "a=control:{TRACK}\r\n");
    s
}

/// A VPS, SPS and PPS, each if known.
type Sets<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, Option<&'a [u8]>);

/// The first VPS, SPS and PPS of `config` (Annex B).
fn parameter_sets(codec: Codec, config: &[u8]) -> Sets<'_> {
    let (mut vps, mut sps, mut pps) = (None, None, None);
    for nal in nal_units(config) {
        match codec.kind(nal) {
            Some(NalKind::Vps) => vps = vps.or(Some(nal)),
            Some(NalKind::Sps) => sps = sps.or(Some(nal)),
            Some(NalKind::Pps) => pps = pps.or(Some(nal)),
            _ => {}
        }
    }
    (vps, sps, pps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn h264_with_its_parameter_sets_and_profile() {
        let mut d = StreamDesc::new("cam", Codec::H264);
        d.config = Bytes::from_static(&[
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xab, 0, 0, 0, 1, 0x68, 0xce, 0x38, 0x80,
        ]);
        d.fps = Some((30, 1));
        let s = sdp(&d, 42, "127.0.0.1");
        assert!(s.starts_with("v=0\r\no=- 42 1 IN IP4 127.0.0.1\r\ns=cam\r\n"), "{s}");
        assert!(s.contains("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"), "{s}");
        assert!(
            s.contains(
                "a=fmtp:96 packetization-mode=1;profile-level-id=42C01E;sprop-parameter-sets=Z0LAHqs=,aM44gA==\r\n"
            ),
            "{s}"
        );
        assert!(
            s.contains("a=framerate:30\r\n") && s.ends_with("a=control:trackID=0\r\n"),
            "{s}"
        );
    }

    #[test]
    fn h265_with_its_three_sets_and_none_without_them() {
        let mut d = StreamDesc::new("cam", Codec::H265);
        d.config = Bytes::from_static(&[
            0, 0, 1, 0x40, 0x01, 0x0c, 0, 0, 1, 0x42, 0x01, 0x01, 0, 0, 1, 0x44, 0x01, 0xc1,
        ]);
        let s = sdp(&d, 1, "::1");
        assert!(
            s.contains("IN IP6 ::1\r\n") && s.contains("a=rtpmap:96 H265/90000\r\n"),
            "{s}"
        );
        assert!(
            s.contains("a=fmtp:96 sprop-vps=QAEM;sprop-sps=QgEB;sprop-pps=RAHB\r\n"),
            "{s}"
        );
        d.config = Bytes::new();
        assert!(!sdp(&d, 1, "::1").contains("fmtp"));
    }
}
