//! The access-unit splitter and SPS reader against real encoders: ffmpeg's
//! libx264 and libx265 write Annex B streams (with and without access unit
//! delimiters, at a size that needs cropping), and every picture they
//! encoded must come out as one access unit, keyframes where they put them.
//! ffmpeg is a test dependency (scripts/setup.sh); without it these fail.

// test-runner: alone (it encodes and decodes with ffmpeg on both cores; scripts/run-tests.py)

use std::process::Command;

use framewire_media::h26x::{AccessUnit, AuSplitter, Codec, NalKind, ParamSets, nal_units, sps_size};

/// `frames` pictures of 1920x1080 at 30 fps, a keyframe every `gop`.
fn encode(codec: Codec, frames: u32, gop: u32, aud: bool) -> Vec<u8> {
    let (encoder, bsf, format) = match codec {
        Codec::H264 => ("libx264", "h264_metadata=aud=insert", "h264"),
        Codec::H265 => ("libx265", "hevc_metadata=aud=insert", "hevc"),
    };
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size=1920x1080:rate=30:duration={}",
            f64::from(frames) / 30.0
        ))
        .args([
            "-c:v",
            encoder,
            "-preset",
            "ultrafast",
            "-g",
            &gop.to_string(),
            "-bf",
            "0",
        ]);
    if codec == Codec::H265 {
        cmd.args(["-x265-params", "log-level=error"]);
    }
    if aud {
        cmd.args(["-bsf:v", bsf]);
    }
    let out = cmd
        .args(["-f", format, "-"])
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn split(codec: Codec, stream: &[u8], piece: usize) -> Vec<bytes::Bytes> {
    let mut s = AuSplitter::new(codec, 8 << 20);
    let mut units = Vec::new();
    for chunk in stream.chunks(piece) {
        s.push(chunk);
        while let Some(u) = s.next_unit() {
            units.push(u);
        }
    }
    units.extend(s.finish());
    assert_eq!(s.stats().discarded, 0);
    assert_eq!(s.stats().skipped_bytes, 0);
    units
}

fn check(codec: Codec, aud: bool) {
    let stream = encode(codec, 45, 15, aud);
    for piece in [997, 65536] {
        let units = split(codec, &stream, piece);
        assert_eq!(units.len(), 45, "{codec:?} aud={aud} pieces of {piece}");
        // Nothing lost or added: the units are the stream.
        assert_eq!(units.concat(), stream);
        let keys: Vec<usize> = (0..units.len())
            .filter(|&i| AccessUnit::of(codec, &units[i]).keyframe)
            .collect();
        assert_eq!(keys, [0, 15, 30], "{codec:?} aud={aud}");
        for u in &units {
            let slices = nal_units(u)
                .filter(|n| codec.kind(n).is_some_and(NalKind::is_slice))
                .count();
            assert!(slices >= 1, "a unit without a picture");
        }
    }
    let mut ps = ParamSets::default();
    ps.update(codec, &stream);
    assert!(ps.is_complete(codec));
    let sps = ps.sps.as_ref().expect("an SPS");
    assert_eq!(sps_size(codec, sps), Some((1920, 1080)), "{codec:?}");
}

#[test]
fn libx264_with_and_without_delimiters() {
    check(Codec::H264, true);
    check(Codec::H264, false);
}

#[test]
fn libx265_with_and_without_delimiters() {
    check(Codec::H265, true);
    check(Codec::H265, false);
}
