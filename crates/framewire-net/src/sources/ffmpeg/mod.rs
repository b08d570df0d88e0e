//! The `ffmpeg` source: any input ffmpeg opens (SRT as caller or listener,
//! RTMP from a pushing encoder, HLS, MPEG-TS over UDP, files), its video
//! passed through without re-encoding, or decoded to MJPEG.
//!
//! ```toml
//! [[source]]
//! kind = "ffmpeg"
//! name = "feed"
//! input = "srt://0.0.0.0:9000?mode=listener"
//! codec = "h264"        # what the input carries: h264 (default), h265, mjpeg
//! # format = "mjpeg"    # decode and send JPEG instead of passing through
//! # listen = true       # wait for a pushing client (RTMP, HTTP): ffmpeg's -listen 1
//! # realtime = true     # read a file at its own rate (-re); default false
//! # loop = true         # start a file again at its end; default false
//! # stall = 10          # seconds without a byte (once data flowed) before ffmpeg is restarted
//! # rtsp_transport = "tcp"  # for rtsp:// inputs: tcp or udp (default: ffmpeg's, UDP then TCP)
//! ```
//!
//! The child writes Annex B access units with delimiters and the input's
//! parameter sets in front of every keyframe (`-c:v copy -bsf:v
//! h264_mp4toannexb,dump_extra=freq=keyframe,h264_metadata=aud=insert -f
//! h264`: an RTSP camera may send them only in its SDP), cut exactly at each
//! delimiter ([`ingest`](crate::sources::ingest)); a looped file has no
//! delimiters (see [`FfmpegConfig::args`]) and is cut where the next
//! picture's first slice begins. The first frames wait for a keyframe, whose
//! parameter sets announce the size (a *format-changed* event) and are put
//! in front of every later keyframe that lacks them. An access unit is
//! complete when the next one's delimiter arrives: the ingest adds one
//! frame interval of delay.
//!
//! The child runs in its own process group, is killed when the node stops
//! or the node process dies (`PR_SET_PDEATHSIG`), and is restarted with
//! backoff (100 ms doubling to 5 s) when it exits or stalls; subscribers
//! get *interrupted* with ffmpeg's last error line, then *resumed*, and the
//! first frame after carries the discontinuity flag.

mod run;

use std::path::PathBuf;
use std::time::Duration;

use framewire_media::h26x::Codec;
use serde::Deserialize;

use super::keys;
use crate::api::{SourceHost, SourceSpec};
use crate::config::{ConfigError, SourceConfig};
use crate::error::NetError;
use crate::sources::ingest::Payload;

/// An ffmpeg source, configured.
#[derive(Debug, Clone)]
pub(crate) struct FfmpegConfig {
    pub(crate) name: String,
    /// What ffmpeg opens (`-i`).
    pub(crate) input: String,
    /// ffmpeg's demuxer for it (`-f` before `-i`), when it cannot guess.
    pub(crate) input_format: Option<String>,
    /// What the frames carry.
    pub(crate) payload: Payload,
    /// Decode and encode (MJPEG) rather than copy.
    pub(crate) decode: bool,
    /// JPEG quality (ffmpeg's `-q:v`, 2 best to 31) when decoding.
    pub(crate) qscale: u8,
    pub(crate) listen: bool,
    pub(crate) realtime: bool,
    pub(crate) looped: bool,
    pub(crate) stall: Duration,
    pub(crate) ffmpeg: PathBuf,
    /// `-rtsp_transport` for an RTSP input.
    pub(crate) rtsp_transport: Option<String>,
    /// More input options, before `-i` (set by other sources built on this
    /// one, never from a peer's table).
    pub(crate) input_options: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    name: String,
    input: String,
    input_format: Option<String>,
    #[serde(default = "default_codec")]
    codec: String,
    #[serde(default = "default_copy")]
    format: String,
    #[serde(default = "default_quality")]
    quality: u8,
    #[serde(default)]
    listen: bool,
    #[serde(default)]
    realtime: bool,
    #[serde(default, rename = "loop")]
    looped: bool,
    #[serde(default = "default_stall")]
    stall: f64,
    #[serde(default = "default_ffmpeg")]
    ffmpeg: PathBuf,
    rtsp_transport: Option<String>,
}

fn default_codec() -> String {
    "h264".into()
}
fn default_copy() -> String {
    "copy".into()
}
fn default_quality() -> u8 {
    85
}
fn default_stall() -> f64 {
    10.0
}
fn default_ffmpeg() -> PathBuf {
    PathBuf::from("ffmpeg")
}

/// `kind = "ffmpeg"`: its keys → the source.
pub(super) fn from_table(table: toml::Table) -> Result<SourceConfig, ConfigError> {
    let k: Keys = keys("ffmpeg", table)?;
    if k.input.trim().is_empty() {
        return Err(ConfigError::new("ffmpeg source: `input` is empty"));
    }
    let payload = match k.codec.as_str() {
        "h264" => Payload::Video(Codec::H264),
        "h265" | "hevc" => Payload::Video(Codec::H265),
        "mjpeg" => Payload::Jpeg,
        other => {
            return Err(ConfigError::new(format!(
                "ffmpeg source: codec `{other}` is not one of h264, h265, mjpeg"
            )));
        }
    };
    let (payload, decode) = match k.format.as_str() {
        "copy" | "native" => (payload, false),
        "mjpeg" => (Payload::Jpeg, true),
        other => {
            return Err(ConfigError::new(format!(
                "ffmpeg source: format `{other}` is not one of copy (pass the input's video through), mjpeg (decode and encode JPEG)"
            )));
        }
    };
    if let Some(t) = &k.rtsp_transport
        && !matches!(t.as_str(), "tcp" | "udp")
    {
        return Err(ConfigError::new(format!(
            "ffmpeg source: rtsp_transport `{t}` is not one of tcp, udp"
        )));
    }
    if !(1..=100).contains(&k.quality) {
        return Err(ConfigError::new(format!(
            "ffmpeg source: quality {} is out of range (1-100)",
            k.quality
        )));
    }
    if !(0.5..=3600.0).contains(&k.stall) {
        return Err(ConfigError::new(format!(
            "ffmpeg source: stall {} s is out of range (0.5 to 3600)",
            k.stall
        )));
    }
    Ok(SourceConfig::new(FfmpegConfig {
        name: k.name,
        input: k.input,
        input_format: k.input_format,
        payload,
        decode,
        qscale: jpeg_qscale(k.quality),
        listen: k.listen,
        realtime: k.realtime,
        looped: k.looped,
        stall: Duration::from_secs_f64(k.stall),
        ffmpeg: k.ffmpeg,
        rtsp_transport: k.rtsp_transport,
        input_options: Vec::new(),
    }))
}

/// A JPEG quality (1-100) as ffmpeg's `-q:v` (2 best, 31 worst).
fn jpeg_qscale(quality: u8) -> u8 {
    let q = 31 - (u32::from(quality) * 29 / 100);
    u8::try_from(q.clamp(2, 31)).unwrap_or(31)
}

impl FfmpegConfig {
    /// ffmpeg's arguments.
    pub(crate) fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        a.extend(["-fflags", "nobuffer"].map(String::from));
        if self.realtime {
            a.push("-re".into());
        }
        if self.looped {
            a.extend(["-stream_loop", "-1"].map(String::from));
        }
        if self.listen {
            a.extend(["-listen", "1"].map(String::from));
        }
        if let Some(t) = &self.rtsp_transport {
            a.extend(["-rtsp_transport".to_owned(), t.clone()]);
        }
        a.extend(self.input_options.iter().cloned());
        if let Some(f) = &self.input_format {
            a.extend(["-f".to_owned(), f.clone()]);
        }
        a.extend(["-i".to_owned(), self.input.clone()]);
        a.extend(["-map", "0:v:0", "-an", "-sn", "-dn"].map(String::from));
        if self.decode {
            a.extend([
                "-c:v".to_owned(),
                "mjpeg".to_owned(),
                "-q:v".to_owned(),
                self.qscale.to_string(),
            ]);
            a.extend(["-pix_fmt", "yuvj420p", "-f", "mjpeg"].map(String::from));
        } else {
            match self.payload {
                Payload::Video(codec) => {
                    let (bsf, muxer) = match codec {
                        Codec::H264 => (
                            "h264_mp4toannexb,dump_extra=freq=keyframe,h264_metadata=aud=insert",
                            "h264",
                        ),
                        Codec::H265 => (
                            "hevc_mp4toannexb,dump_extra=freq=keyframe,hevc_metadata=aud=insert",
                            "hevc",
                        ),
                    };
                    a.extend(["-c:v", "copy"].map(String::from));
                    // ffmpeg 5.1 ends a stream's own bitstream filters at the
                    // first loop point (every later packet is refused), so a
                    // looped file keeps only what the muxer inserts itself
                    // (Annex B, parameter sets at keyframes): the ingest cuts
                    // access units without delimiters and completes keyframes.
                    if !self.looped {
                        a.extend(["-bsf:v".to_owned(), bsf.to_owned()]);
                    }
                    a.extend(["-f".to_owned(), muxer.to_owned()]);
                }
                Payload::Jpeg => a.extend(["-c:v", "copy", "-f", "mjpeg"].map(String::from)),
            }
        }
        a.extend(["-flush_packets", "1", "pipe:1"].map(String::from));
        a
    }
}

impl SourceSpec for FfmpegConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "ffmpeg"
    }

    fn start(&self, host: SourceHost) -> Result<std::thread::JoinHandle<()>, NetError> {
        run::start(self.clone(), host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn keys_are_checked_with_the_reason() {
        for (t, want) in [
            ("name = \"a\"\ninput = \"\"", "`input` is empty"),
            ("name = \"a\"\ninput = \"x\"\ncodec = \"vp9\"", "h264, h265, mjpeg"),
            ("name = \"a\"\ninput = \"x\"\nformat = \"raw\"", "copy"),
            ("name = \"a\"\ninput = \"x\"\nstall = 0", "stall"),
            ("name = \"a\"\ninput = \"x\"\nbogus = 1", "bogus"),
        ] {
            let e = from_table(table(t)).unwrap_err().to_string();
            assert!(e.contains(want), "{t}: {e}");
        }
        assert!(from_table(table("name = \"a\"\ninput = \"srt://127.0.0.1:9000\"")).is_ok());
    }

    #[test]
    fn quality_maps_onto_ffmpeg_qscale() {
        assert_eq!(jpeg_qscale(100), 2);
        assert_eq!(jpeg_qscale(85), 7);
        assert_eq!(jpeg_qscale(1), 31);
    }
}
