//! H.264 with OpenH264, in process: an encoder set for low latency, and a
//! decoder for receivers (viewers, snapshots, transcoding to MJPEG).
//!
//! One picture in, one access unit out (Annex B, SPS and PPS in front of
//! every keyframe): the baseline profile has no B-frames, the encoder has
//! no look-ahead, and frame skipping is off, so the encoder's delay is the
//! time one `encode` call takes. A keyframe comes every
//! [`EncodeSpec::keyframe_interval`] frames, and at once on
//! [`Encoder::force_keyframe`]. Rate control aims at
//! [`EncodeSpec::bitrate`] (from the picture size when 0).
//!
//! Chosen by measurement over libx264 through an ffmpeg child
//! (docs/codecs.md, "Encoding"): at 1080p30 OpenH264 costs about as much
//! CPU, and in process it needs no framing of a child's byte stream (which
//! would add a frame of delay) and answers a keyframe request on the next
//! frame.

use bytes::Bytes;
use framewire_proto::{Format, Origin, PixelFormat};
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder as OpenH264, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode, UsageType,
};
use openh264::formats::YUVSlices;

use crate::codec::{DecodeOptions, Decoder, Encoder, check_decoded_size};
use crate::h26x::{Codec, NalKind, nal_units, sps_size};
use crate::{CodecError, EncodeSpec, PixelBuffer, PixelLayout};
use framewire_proto::StreamOpen;

/// The frame rate rate control assumes when the stream does not say.
const ASSUMED_FPS: f32 = 30.0;

/// An H.264 encoder.
pub struct H264Encoder {
    spec: EncodeSpec,
    /// Made on the first picture (its size sets the bit rate).
    inner: Option<(OpenH264, (u32, u32))>,
    keyframe: bool,
    force: bool,
    config: Bytes,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("spec", &self.spec)
            .field("size", &self.inner.as_ref().map(|i| i.1))
            .finish_non_exhaustive()
    }
}

impl H264Encoder {
    /// An encoder for `spec` (its bit rate and keyframe interval).
    pub fn new(spec: &EncodeSpec) -> Result<H264Encoder, CodecError> {
        if spec.keyframe_interval == 0 {
            return Err(CodecError::Unsupported("an H.264 keyframe interval of 0 frames".into()));
        }
        Ok(H264Encoder {
            spec: *spec,
            inner: None,
            keyframe: false,
            force: false,
            config: Bytes::new(),
        })
    }

    fn error(detail: impl std::fmt::Display) -> CodecError {
        CodecError::Encode {
            format: Format::H264,
            detail: detail.to_string(),
        }
    }

    fn make(&self, width: u32, height: u32) -> Result<OpenH264, CodecError> {
        let bitrate = if self.spec.bitrate > 0 {
            self.spec.bitrate
        } else {
            // About 2 bits per pixel per second: 4 Mbit/s at 1080p.
            width
                .saturating_mul(height)
                .saturating_mul(2)
                .clamp(100_000, 50_000_000)
        };
        let config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(ASSUMED_FPS))
            .skip_frames(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(self.spec.keyframe_interval));
        OpenH264::with_api_config(OpenH264API::from_source(), config).map_err(Self::error)
    }
}

impl Encoder for H264Encoder {
    fn format(&self) -> Format {
        Format::H264
    }

    fn pixel_format(&self) -> PixelFormat {
        PixelFormat::None
    }

    fn origin(&self) -> Origin {
        Origin::Unspecified
    }

    fn encode(&mut self, frame: &PixelBuffer) -> Result<Bytes, CodecError> {
        let (w, h) = (frame.width(), frame.height());
        if !w.is_multiple_of(2) || !h.is_multiple_of(2) {
            return Err(CodecError::Unsupported(format!(
                "H.264 needs an even width and height, got {w}x{h}"
            )));
        }
        let i420 = frame.convert(PixelLayout::I420)?;
        if self.inner.as_ref().is_none_or(|i| i.1 != (w, h)) {
            self.inner = Some((self.make(w, h)?, (w, h)));
            self.config = Bytes::new();
        }
        let Some((enc, _)) = self.inner.as_mut() else {
            return Err(Self::error("no encoder"));
        };
        if std::mem::take(&mut self.force) {
            enc.force_intra_frame();
        }
        let (uw, uh) = (w as usize, h as usize);
        let data = i420.data();
        let (y, rest) = data.split_at(uw * uh);
        let (u, v) = rest.split_at((uw / 2) * (uh / 2));
        let slices = YUVSlices::new((y, u, &v[..(uw / 2) * (uh / 2)]), (uw, uh), (uw, uw / 2, uw / 2));
        let out = enc.encode(&slices).map_err(Self::error)?;
        self.keyframe = matches!(out.frame_type(), FrameType::IDR | FrameType::I);
        let au = out.to_vec();
        if au.is_empty() {
            return Err(Self::error("the encoder made no picture"));
        }
        if self.keyframe {
            let config = parameter_sets(&au);
            if !config.is_empty() {
                self.config = Bytes::from(config);
            }
        }
        Ok(Bytes::from(au))
    }

    fn keyframe(&self) -> bool {
        self.keyframe
    }

    fn force_keyframe(&mut self) {
        self.force = true;
    }

    fn codec_config(&self) -> Bytes {
        self.config.clone()
    }
}

/// An H.264 decoder for one stream.
///
/// Frames are decoded in order, each against the pictures before it: a
/// frame whose references the decoder never saw (before the first
/// keyframe) is an error, not a picture. Every SPS is read before the
/// library sees it, and a picture over [`crate::Limits::max_pixels`] (or
/// other than the stream's declared size) is refused before any picture
/// memory is allocated for it. Pictures come out in the registry's RGB
/// layout ([`DecodeOptions::rgb_layout`]).
pub struct H264Decoder {
    inner: openh264::decoder::Decoder,
    declared: (u32, u32),
    options: DecodeOptions,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder")
            .field("declared", &self.declared)
            .finish_non_exhaustive()
    }
}

impl H264Decoder {
    /// A decoder for the stream `open` announces.
    pub fn new(open: &StreamOpen, options: &DecodeOptions) -> Result<H264Decoder, CodecError> {
        if open.width != 0 || open.height != 0 {
            options.limits.check(u64::from(open.width), u64::from(open.height))?;
        }
        let inner = openh264::decoder::Decoder::new().map_err(|e| CodecError::Corrupt {
            format: Format::H264,
            detail: format!("the decoder did not start: {e}"),
        })?;
        let mut d = H264Decoder {
            inner,
            declared: (open.width, open.height),
            options: *options,
        };
        if !open.codec_config.is_empty() {
            // The parameter sets, checked like any others; no picture yet.
            d.check_sps(&open.codec_config)?;
            let _ = d.inner.decode(&open.codec_config);
        }
        Ok(d)
    }

    fn check_sps(&self, payload: &[u8]) -> Result<(), CodecError> {
        for nal in nal_units(payload) {
            if Codec::H264.kind(nal) == Some(NalKind::Sps) {
                let (w, h) = sps_size(Codec::H264, nal).ok_or_else(|| CodecError::Corrupt {
                    format: Format::H264,
                    detail: "a sequence parameter set that does not parse".into(),
                })?;
                check_decoded_size(
                    Format::H264,
                    u64::from(w),
                    u64::from(h),
                    &self.options.limits,
                    self.declared,
                )?;
            }
        }
        Ok(())
    }
}

impl Decoder for H264Decoder {
    fn format(&self) -> Format {
        Format::H264
    }

    fn decode(&mut self, payload: &Bytes) -> Result<PixelBuffer, CodecError> {
        self.check_sps(payload)?;
        let corrupt = |detail: String| CodecError::Corrupt {
            format: Format::H264,
            detail,
        };
        let yuv = self
            .inner
            .decode(payload)
            .map_err(|e| corrupt(e.to_string()))?
            .ok_or_else(|| corrupt("no picture (its references are missing: wait for a keyframe)".into()))?;
        use openh264::formats::YUVSource;
        let (w, h) = yuv.dimensions();
        let (sy, su, sv) = yuv.strides();
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut out = Vec::with_capacity(w * h + 2 * cw * ch);
        for (plane, stride, pw, rows) in [(yuv.y(), sy, w, h), (yuv.u(), su, cw, ch), (yuv.v(), sv, cw, ch)] {
            for r in 0..rows {
                let row = plane
                    .get(r * stride..r * stride + pw)
                    .ok_or_else(|| corrupt("a decoded plane shorter than its picture".into()))?;
                out.extend_from_slice(row);
            }
        }
        let (w, h) = (
            u32::try_from(w).map_err(|_| corrupt("picture too wide".into()))?,
            u32::try_from(h).map_err(|_| corrupt("picture too tall".into()))?,
        );
        PixelBuffer::new(PixelLayout::I420, w, h, out)?.convert(self.options.rgb_layout)
    }
}

/// The SPS and PPS NAL units of an Annex B access unit, with start codes.
fn parameter_sets(au: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nal_units(au) {
        if matches!(nal.first().map(|b| b & 0x1f), Some(7 | 8)) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::screen_like;

    #[test]
    fn one_unit_per_picture_keyframes_on_schedule_and_on_request() {
        let mut e = H264Encoder::new(&EncodeSpec::h264(500_000, 10)).unwrap();
        assert!(e.codec_config().is_empty(), "unknown before the first picture");
        let mut keys = Vec::new();
        for i in 0..25 {
            if i == 13 {
                e.force_keyframe();
            }
            let au = e.encode(&screen_like(320, 240, i)).unwrap();
            assert!(!au.is_empty());
            keys.push(e.keyframe());
            if e.keyframe() {
                let types: Vec<u8> = nal_units(&au).map(|n| n[0] & 0x1f).collect();
                assert!(
                    types.contains(&7) && types.contains(&8) && types.contains(&5),
                    "{types:?}"
                );
            }
        }
        let at: Vec<usize> = keys.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i).collect();
        assert_eq!(at[0], 0, "the first picture is a keyframe");
        assert!(at.contains(&13), "a keyframe on request: {at:?}");
        assert!(at.contains(&10), "every 10 frames: {at:?}");
        let config = e.codec_config();
        let types: Vec<u8> = nal_units(&config).map(|n| n[0] & 0x1f).collect();
        assert_eq!(types, [7, 8]);
    }

    #[test]
    fn what_is_encoded_decodes_to_the_same_size_and_close_pixels() {
        let mut e = H264Encoder::new(&EncodeSpec::h264(2_000_000, 30)).unwrap();
        let open = StreamOpen {
            width: 320,
            height: 240,
            ..e.stream_open(320, 240, 30, 1, "t")
        };
        let mut d = H264Decoder::new(&open, &DecodeOptions::default()).unwrap();
        for i in 0..10 {
            let src = screen_like(320, 240, i);
            let au = e.encode(&src).unwrap();
            let pic = d.decode(&au).unwrap();
            assert_eq!((pic.width(), pic.height(), pic.layout()), (320, 240, PixelLayout::Rgba));
            // Lossy, but the same picture: mean absolute error per channel.
            let a = src.convert(PixelLayout::Rgba).unwrap();
            let diff: u64 = a
                .data()
                .iter()
                .zip(pic.data().iter())
                .map(|(x, y)| u64::from(x.abs_diff(*y)))
                .sum();
            let mean = diff as f64 / a.data().len() as f64;
            assert!(mean < 12.0, "frame {i}: mean error {mean:.1}");
        }
    }

    #[test]
    fn a_picture_over_the_limit_or_before_a_keyframe_is_refused() {
        let mut e = H264Encoder::new(&EncodeSpec::h264(0, 30)).unwrap();
        let key = e.encode(&screen_like(320, 240, 0)).unwrap();
        let p = e.encode(&screen_like(320, 240, 1)).unwrap();
        let with_config = e.stream_open(0, 0, 30, 1, "t");
        let open = StreamOpen {
            codec_config: Bytes::new(),
            ..with_config.clone()
        };
        let small = DecodeOptions {
            limits: crate::Limits { max_pixels: 160 * 120 },
            ..DecodeOptions::default()
        };
        // The parameter sets of STREAM_OPEN are checked at once.
        assert!(matches!(
            H264Decoder::new(&with_config, &small),
            Err(CodecError::TooLarge { .. })
        ));
        let mut d = H264Decoder::new(&open, &small).unwrap();
        assert!(matches!(d.decode(&key), Err(CodecError::TooLarge { .. })));
        // A declared size that the SPS contradicts.
        let declared = StreamOpen {
            width: 640,
            height: 480,
            ..open.clone()
        };
        let mut d = H264Decoder::new(&declared, &DecodeOptions::default()).unwrap();
        assert!(matches!(d.decode(&key), Err(CodecError::DimensionMismatch { .. })));
        // A P-frame first: no picture, an error that says why.
        let mut d = H264Decoder::new(&open, &DecodeOptions::default()).unwrap();
        let err = d.decode(&p).unwrap_err();
        assert!(matches!(err, CodecError::Corrupt { .. }), "{err}");
        // Garbage: an error, never a panic.
        let mut d = H264Decoder::new(&open, &DecodeOptions::default()).unwrap();
        for junk in [&[0u8, 0, 0, 1, 0x67, 0xff][..], &[0, 0, 1, 0x65, 1, 2, 3], &[0xff; 64]] {
            assert!(d.decode(&Bytes::copy_from_slice(junk)).is_err());
        }
    }

    #[test]
    fn odd_sizes_and_a_zero_interval_are_refused() {
        assert!(H264Encoder::new(&EncodeSpec::h264(0, 0)).is_err());
        let mut e = H264Encoder::new(&EncodeSpec::h264(0, 30)).unwrap();
        let err = e.encode(&screen_like(321, 240, 0)).unwrap_err();
        assert!(err.to_string().contains("even"), "{err}");
    }
}
