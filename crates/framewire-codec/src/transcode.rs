//! Transcoding: decode with one codec, encode with another.
//!
//! A relay output that must "define the stream" for its consumers (say, turn
//! a raw or QOI screen grab into MJPEG for a browser) puts a [`Transcoder`]
//! between its input and its output. The transcoder announces the new
//! stream with [`Transcoder::output_open`] and turns every input payload
//! into an output payload with [`Transcoder::transcode`].

use bytes::Bytes;
use framewire_proto::StreamOpen;

use crate::{CodecError, Decoder, EncodeSpec, Encoder, Registry, Rejection};

/// A decoder and an encoder joined, for one stream.
#[derive(Debug)]
pub struct Transcoder {
    decoder: Box<dyn Decoder>,
    encoder: Box<dyn Encoder>,
    output_open: StreamOpen,
}

impl Transcoder {
    /// A transcoder from the stream `input` announces to `output`.
    ///
    /// Fails like [`Registry::negotiate`] when the input cannot be decoded,
    /// and with [`Registry::encoder`]'s rejection when the output cannot be
    /// encoded.
    pub fn new(registry: &Registry, input: &StreamOpen, output: &EncodeSpec) -> Result<Self, Rejection> {
        let decoder = registry.negotiate(input)?;
        let encoder = registry.encoder(output)?;
        let output_open = encoder.stream_open(input.width, input.height, input.fps_num, input.fps_den, &input.name);
        Ok(Transcoder {
            decoder,
            encoder,
            output_open,
        })
    }

    /// The STREAM_OPEN to send downstream before the first output frame.
    pub fn output_open(&self) -> &StreamOpen {
        &self.output_open
    }

    /// One input frame payload in, one output frame payload out. When the
    /// encoder learns its codec configuration (H.264's parameter sets, with
    /// the first keyframe), [`Transcoder::output_open`] carries it.
    pub fn transcode(&mut self, payload: &Bytes) -> Result<Bytes, CodecError> {
        let picture = self.decoder.decode(payload)?;
        let out = self.encoder.encode(&picture)?;
        if self.encoder.keyframe() {
            let config = self.encoder.codec_config();
            if config != self.output_open.codec_config {
                self.output_open.codec_config = config;
            }
        }
        Ok(out)
    }

    /// Whether the payload [`Transcoder::transcode`] returned last is one a
    /// decoder can start at.
    pub fn keyframe(&self) -> bool {
        self.encoder.keyframe()
    }

    /// Makes the next output payload a keyframe.
    pub fn force_keyframe(&mut self) {
        self.encoder.force_keyframe();
    }
}

/// Why a frame cannot be made a JPEG picture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JpegError {
    /// The stream's format cannot be decoded here (or JPEG not encoded).
    #[error("cannot make a JPEG of this stream: {0}")]
    Rejected(Rejection),
    /// The frame does not decode or the picture does not encode.
    #[error("cannot make a JPEG of this frame: {0}")]
    Codec(#[from] CodecError),
}

/// One frame of the stream `open` announces as a JPEG picture, whatever
/// the stream's format: an MJPEG frame as it came, any other decoded and
/// encoded at `quality` (a snapshot, a thumbnail).
pub fn frame_to_jpeg(registry: &Registry, open: &StreamOpen, payload: &Bytes, quality: u8) -> Result<Bytes, JpegError> {
    if open.format == framewire_proto::Format::Mjpeg {
        return Ok(payload.clone());
    }
    let mut t = Transcoder::new(registry, open, &EncodeSpec::mjpeg(quality)).map_err(JpegError::Rejected)?;
    Ok(t.transcode(payload)?)
}

/// One frame as a small JPEG picture at least `width` pixels wide (a
/// thumbnail): the frame as a JPEG ([`frame_to_jpeg`]), decoded at 1/8,
/// 1/4 or 1/2 of its size inside libjpeg-turbo's inverse DCT (the smallest
/// still that wide) and encoded again at `quality`. A picture no scale
/// makes smaller comes as it is.
#[cfg(feature = "jpeg")]
pub fn frame_to_thumbnail(
    registry: &Registry,
    open: &StreamOpen,
    payload: &Bytes,
    width: u32,
    quality: u8,
) -> Result<Bytes, JpegError> {
    use crate::mjpeg::{MjpegDecoder, MjpegEncoder};
    let jpeg = frame_to_jpeg(registry, open, payload, quality)?;
    let mut as_jpeg = open.clone();
    as_jpeg.format = framewire_proto::Format::Mjpeg;
    as_jpeg.pixel_format = framewire_proto::PixelFormat::None;
    let height = if open.width == 0 {
        0
    } else {
        u32::try_from(u64::from(width) * u64::from(open.height) / u64::from(open.width)).unwrap_or(u32::MAX)
    };
    let mut decoder = MjpegDecoder::new(&as_jpeg, registry.options())?;
    let small = decoder.decode_at_least(&jpeg, width, height)?;
    if open.width != 0 && small.width() >= open.width {
        return Ok(jpeg);
    }
    Ok(MjpegEncoder::new(&EncodeSpec::mjpeg(quality))?.encode(&small)?)
}
