//! What becomes of compressed video a source takes in, without I/O:
//! access units (or JPEG images) cut from a byte stream (an ffmpeg child's
//! output) or taken whole (an RTSP client's frames), the stream's format
//! learned from its first picture, parameter sets kept and put in front of
//! every keyframe, and nothing handed on before the first keyframe of a run
//! (or after a loss).

use bytes::Bytes;
use framewire_media::h26x::{AuSplitter, Codec, ParamSets, sps_size};
use framewire_media::jpeg_split::{DEFAULT_MAX_IMAGE, JpegSplitter};
use framewire_proto::{Format, Origin, PixelFormat, StreamOpen};

use crate::sources::file::jpeg_size;

/// Largest access unit taken (a 4K intra picture at a high rate fits).
const MAX_UNIT: usize = 32 * 1024 * 1024;

/// What the payloads are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payload {
    /// H.264 or H.265 access units, as the input carries them.
    Video(Codec),
    /// JPEG images (the input's own, or encoded by ffmpeg).
    Jpeg,
}

impl Payload {
    pub(crate) fn format(self) -> Format {
        match self {
            Payload::Video(Codec::H264) => Format::H264,
            Payload::Video(Codec::H265) => Format::H265,
            Payload::Jpeg => Format::Mjpeg,
        }
    }
}

#[derive(Debug)]
enum Splitter {
    Video(AuSplitter),
    Jpeg(JpegSplitter),
}

/// What the ingest hands on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ingested {
    /// The stream's format is (now) known, or changed.
    Open(StreamOpen),
    /// A frame: its payload and whether a decoder can start at it.
    Frame { data: Bytes, keyframe: bool },
}

/// The ingest of one source, across runs of its input.
#[derive(Debug)]
pub(crate) struct Ingest {
    name: String,
    payload: Payload,
    splitter: Splitter,
    params: ParamSets,
    open: Option<StreamOpen>,
    /// Nothing is handed on before the run's first keyframe.
    keyed: bool,
    /// Frames dropped while waiting for a keyframe.
    pub(crate) skipped: u64,
}

impl Ingest {
    pub(crate) fn new(name: &str, payload: Payload) -> Ingest {
        Ingest {
            name: name.to_owned(),
            payload,
            splitter: Ingest::splitter(payload),
            params: ParamSets::default(),
            open: None,
            keyed: false,
            skipped: 0,
        }
    }

    fn splitter(payload: Payload) -> Splitter {
        match payload {
            Payload::Video(c) => Splitter::Video(AuSplitter::new(c, MAX_UNIT)),
            Payload::Jpeg => Splitter::Jpeg(JpegSplitter::new(DEFAULT_MAX_IMAGE)),
        }
    }

    /// The STREAM_OPEN before anything is known: the format, no size.
    pub(crate) fn placeholder(&self) -> StreamOpen {
        StreamOpen {
            format: self.payload.format(),
            pixel_format: PixelFormat::None,
            origin: Origin::Unspecified,
            width: 0,
            height: 0,
            fps_num: 0,
            fps_den: 1,
            name: self.name.clone(),
            codec_config: Bytes::new(),
        }
    }

    /// A new run of the input (or frames were lost): what was partial is
    /// dropped, and frames wait for the next keyframe.
    pub(crate) fn restart(&mut self) {
        self.splitter = Ingest::splitter(self.payload);
        self.keyed = false;
    }

    /// Bytes of a byte-stream input (what ffmpeg wrote).
    pub(crate) fn push(&mut self, data: &[u8]) {
        match &mut self.splitter {
            Splitter::Video(s) => s.push(data),
            Splitter::Jpeg(s) => s.push(data),
        }
    }

    /// The byte stream ended: the last access unit is complete.
    pub(crate) fn finish(&mut self) -> Vec<Ingested> {
        let last = match &mut self.splitter {
            Splitter::Video(s) => s.finish(),
            Splitter::Jpeg(_) => None,
        };
        let mut out = Vec::new();
        if let Some(u) = last {
            self.take(u, &mut out);
        }
        out
    }

    /// What the bytes so far make: at most one new format and one frame
    /// per call; `None` when more bytes are needed.
    pub(crate) fn next(&mut self) -> Option<Vec<Ingested>> {
        let unit = match &mut self.splitter {
            Splitter::Video(s) => s.next_unit()?,
            Splitter::Jpeg(s) => s.next_frame()?,
        };
        let mut out = Vec::new();
        self.take(unit, &mut out);
        Some(out)
    }

    /// One whole access unit (or JPEG image), from an input that frames
    /// them itself.
    #[cfg_attr(not(feature = "rtsp"), allow(dead_code))]
    pub(crate) fn unit(&mut self, unit: Bytes) -> Vec<Ingested> {
        let mut out = Vec::new();
        self.take(unit, &mut out);
        out
    }

    fn take(&mut self, unit: Bytes, out: &mut Vec<Ingested>) {
        match self.payload {
            Payload::Jpeg => {
                if let Some((w, h)) = jpeg_size(&unit) {
                    self.announce(w, h, Bytes::new(), out);
                }
                if self.open.is_some() {
                    self.keyed = true;
                    out.push(Ingested::Frame {
                        data: unit,
                        keyframe: true,
                    });
                }
            }
            Payload::Video(codec) => {
                let (au, changed) = self.params.scan(codec, &unit);
                if changed
                    && self.params.is_complete(codec)
                    && let Some((w, h)) = self.params.sps.as_ref().and_then(|s| sps_size(codec, s))
                {
                    self.announce(w, h, self.params.config(), out);
                }
                if au.keyframe && self.open.is_some() && self.params.is_complete(codec) {
                    self.keyed = true;
                }
                if !self.keyed {
                    self.skipped += 1;
                    return;
                }
                out.push(Ingested::Frame {
                    data: self.params.complete_as(codec, unit, au),
                    keyframe: au.keyframe,
                });
            }
        }
    }

    fn announce(&mut self, width: u32, height: u32, config: Bytes, out: &mut Vec<Ingested>) {
        let open = StreamOpen {
            width,
            height,
            codec_config: config,
            ..self.placeholder()
        };
        if self.open.as_ref() != Some(&open) {
            self.open = Some(open.clone());
            out.push(Ingested::Open(open));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter().flat_map(|n| [&[0u8, 0, 0, 1][..], n].concat()).collect()
    }

    // A real 1920x1080 SPS (libx264), its PPS, and made-up slices.
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x28, 0xda, 0x01, 0xe0, 0x08, 0x9f, 0x97, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
        0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x2a,
    ];
    const PPS: &[u8] = &[0x68, 0xce, 0x0f, 0xc8];
    const AUD: &[u8] = &[0x09, 0xf0];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x21];
    const P: &[u8] = &[0x41, 0x9a, 0x02];

    fn drain(i: &mut Ingest) -> Vec<Ingested> {
        let mut all = Vec::new();
        while let Some(v) = i.next() {
            all.extend(v);
        }
        all
    }

    #[test]
    fn frames_wait_for_a_keyframe_and_the_format_comes_first() {
        let mut i = Ingest::new("cam", Payload::Video(Codec::H264));
        assert_eq!(i.placeholder().format, Format::H264);
        let stream = [
            annexb(&[AUD, P]), // before any keyframe: skipped
            annexb(&[AUD, SPS, PPS, IDR]),
            annexb(&[AUD, P]),
            annexb(&[AUD, IDR]), // a keyframe without its parameter sets
            annexb(&[AUD, P]),
        ]
        .concat();
        i.push(&stream);
        let mut got = drain(&mut i);
        got.extend(i.finish());
        let Ingested::Open(open) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!((open.width, open.height), (1920, 1080));
        assert_eq!(&open.codec_config[..], &annexb(&[SPS, PPS])[..]);
        let frames: Vec<(bool, Bytes)> = got[1..]
            .iter()
            .map(|g| match g {
                Ingested::Frame { data, keyframe } => (*keyframe, data.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(frames.len(), 4);
        assert_eq!(i.skipped, 1);
        assert_eq!(
            frames.iter().map(|f| f.0).collect::<Vec<_>>(),
            [true, false, true, false]
        );
        // The bare keyframe went out with its parameter sets.
        assert_eq!(&frames[2].1[..], &annexb(&[AUD, SPS, PPS, IDR])[..]);

        // After a restart, frames wait for a keyframe again; the format
        // is not announced again while it stays the same.
        i.restart();
        i.push(&[annexb(&[AUD, P]), annexb(&[AUD, IDR]), annexb(&[AUD, P])].concat());
        let got = drain(&mut i);
        assert!(matches!(&got[..], [Ingested::Frame { keyframe: true, .. }]), "{got:?}");
        assert_eq!(i.skipped, 2);
    }

    #[test]
    fn jpeg_images_are_keyframes_with_their_size() {
        let registry = framewire_codec::Registry::builtin();
        let spec = framewire_codec::EncodeSpec::mjpeg(80);
        let mut enc = registry.encoder(&spec).unwrap();
        let jpeg = enc.encode(&framewire_codec::testkit::screen_like(64, 48, 1)).unwrap();
        let mut i = Ingest::new("cam", Payload::Jpeg);
        i.push(&[&jpeg[..], &jpeg[..]].concat());
        let got = drain(&mut i);
        assert!(
            matches!(&got[0], Ingested::Open(o) if (o.width, o.height) == (64, 48)),
            "{got:?}"
        );
        assert_eq!(got.len(), 3);
    }
}
