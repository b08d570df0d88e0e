//! The `rtsp` source: an IP camera (or any RTSP server) read with the
//! `retina` client, its H.264, H.265 or MJPEG video passed through
//! untouched.
//!
//! ```toml
//! [[source]]
//! kind = "rtsp"
//! name = "door"
//! url = "rtsp://192.168.1.20:554/stream1"   # credentials may be in the URL
//! # codec = "h264"            # what the camera sends: h264 (default), h265, mjpeg
//! # transport = "tcp"         # tcp (default: RTP interleaved on the RTSP connection) or udp
//! # credentials = "/etc/framewire/door.cred"  # a file with one line `user:password`
//! # stall = 10                # seconds without a frame before the session is started again
//! ```
//!
//! The session: DESCRIBE (Digest or Basic authentication when the camera
//! asks), SETUP of the first video stream in `codec`, PLAY; frames come
//! as Annex B access units with the parameter sets in front of every
//! keyframe (an RTSP camera may send them only in its SDP). The first
//! frames of a session, and those after lost packets, wait for a keyframe,
//! so a decoder is never handed a picture whose reference is missing.
//!
//! Camera time ([`clock`]): each frame's RTP timestamp, mapped onto the
//! node's clock, is its capture time, so frames keep the camera's spacing
//! whatever the network's jitter did to them.
//!
//! Every byte the server sends passes a [`guard`] that bounds the RTSP
//! messages the client would otherwise buffer whole (a hostile or broken
//! server announcing a huge SDP). A session that fails, ends or stalls is
//! started again with backoff (100 ms doubling to 5 s); subscribers get
//! *interrupted* with the reason, then *resumed*, and the first frame after
//! carries the discontinuity flag.

pub(crate) mod clock;
pub(crate) mod guard;
mod proxy;
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

/// An RTSP source, configured.
#[derive(Clone)]
pub(crate) struct RtspConfig {
    pub(crate) name: String,
    /// The camera's URL, without credentials.
    pub(crate) url: url::Url,
    /// User and password, from the URL or the credentials file.
    pub(crate) creds: Option<(String, String)>,
    pub(crate) payload: Payload,
    pub(crate) udp: bool,
    pub(crate) stall: Duration,
}

impl std::fmt::Debug for RtspConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspConfig")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .field("user", &self.creds.as_ref().map(|c| &c.0))
            .field("payload", &self.payload)
            .field("udp", &self.udp)
            .field("stall", &self.stall)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    name: String,
    url: String,
    #[serde(default = "default_codec")]
    codec: String,
    #[serde(default = "default_transport")]
    transport: String,
    credentials: Option<PathBuf>,
    #[serde(default = "default_stall")]
    stall: f64,
}

fn default_codec() -> String {
    "h264".into()
}
fn default_transport() -> String {
    "tcp".into()
}
fn default_stall() -> f64 {
    10.0
}

/// `kind = "rtsp"`: its keys → the source.
pub(super) fn from_table(table: toml::Table) -> Result<SourceConfig, ConfigError> {
    let k: Keys = keys("rtsp", table)?;
    let mut url = url::Url::parse(&k.url)
        .map_err(|e| ConfigError::new(format!("rtsp source: url `{}`: {e}", redacted(&k.url))))?;
    if url.scheme() != "rtsp" {
        return Err(ConfigError::new(format!(
            "rtsp source: url `{}` is not rtsp://",
            redacted(&k.url)
        )));
    }
    if url.host().is_none() {
        return Err(ConfigError::new("rtsp source: the url names no host"));
    }
    let mut creds = None;
    if !url.username().is_empty() {
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| ConfigError::new("rtsp source: the url's credentials are not valid UTF-8"))
        };
        creds = Some((decode(url.username())?, decode(url.password().unwrap_or(""))?));
        // Cannot fail for a URL with a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    if let Some(path) = &k.credentials {
        if creds.is_some() {
            return Err(ConfigError::new(
                "rtsp source: credentials come from the url or from `credentials`, not both",
            ));
        }
        creds = Some(read_credentials(path)?);
    }
    let payload = match k.codec.as_str() {
        "h264" => Payload::Video(Codec::H264),
        "h265" | "hevc" => Payload::Video(Codec::H265),
        "mjpeg" | "jpeg" => Payload::Jpeg,
        other => {
            return Err(ConfigError::new(format!(
                "rtsp source: codec `{other}` is not one of h264, h265, mjpeg"
            )));
        }
    };
    let udp = match k.transport.as_str() {
        "tcp" => false,
        "udp" => true,
        other => {
            return Err(ConfigError::new(format!(
                "rtsp source: transport `{other}` is not one of tcp, udp"
            )));
        }
    };
    if !(0.5..=3600.0).contains(&k.stall) {
        return Err(ConfigError::new(format!(
            "rtsp source: stall {} s is out of range (0.5 to 3600)",
            k.stall
        )));
    }
    Ok(SourceConfig::new(RtspConfig {
        name: k.name,
        url,
        creds,
        payload,
        udp,
        stall: Duration::from_secs_f64(k.stall),
    }))
}

/// `user:password` from the first line of a file.
fn read_credentials(path: &std::path::Path) -> Result<(String, String), ConfigError> {
    let bytes = super::read_bounded(path, 64 << 10)
        .map_err(|e| ConfigError::new(format!("rtsp source: credentials {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    let (user, pass) = line.split_once(':').ok_or_else(|| {
        ConfigError::new(format!(
            "rtsp source: credentials {}: the first line is not `user:password`",
            path.display()
        ))
    })?;
    Ok((user.to_owned(), pass.to_owned()))
}

/// A URL for messages: its password replaced.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl SourceSpec for RtspConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "rtsp"
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

    fn parse(s: &str) -> Result<RtspConfig, String> {
        let cfg = from_table(table(s)).map_err(|e| e.to_string())?;
        Ok(cfg.downcast_ref::<RtspConfig>().expect("an rtsp source").clone())
    }

    #[test]
    fn keys_are_checked_with_the_reason() {
        for (t, want) in [
            ("name = \"a\"\nurl = \"http://cam/\"", "not rtsp://"),
            ("name = \"a\"\nurl = \"not a url\"", "url `not a url`"),
            (
                "name = \"a\"\nurl = \"rtsp://cam/\"\ncodec = \"vp9\"",
                "h264, h265, mjpeg",
            ),
            ("name = \"a\"\nurl = \"rtsp://cam/\"\ntransport = \"quic\"", "tcp, udp"),
            ("name = \"a\"\nurl = \"rtsp://cam/\"\nstall = 0", "stall"),
            ("name = \"a\"\nurl = \"rtsp://cam/\"\nbogus = 1", "bogus"),
            (
                "name = \"a\"\nurl = \"rtsp://cam/\"\ncredentials = \"/nonexistent/cred\"",
                "/nonexistent/cred",
            ),
            (
                "name = \"a\"\nurl = \"rtsp://u:p@cam/\"\ncredentials = \"/x\"",
                "not both",
            ),
        ] {
            let e = parse(t).unwrap_err();
            assert!(e.contains(want), "{t}: {e}");
        }
    }

    #[test]
    fn credentials_leave_the_url_and_never_reach_a_message() {
        let c = parse("name = \"a\"\nurl = \"rtsp://ad%40min:s3cr%3At@cam:8554/live?x=1\"").unwrap();
        assert_eq!(c.url.as_str(), "rtsp://cam:8554/live?x=1");
        assert_eq!(c.creds, Some(("ad@min".into(), "s3cr:t".into())));
        assert!(!format!("{c:?}").contains("s3cr"));
        assert_eq!(redacted("rtsp://u:secret@cam/"), "rtsp://u:***@cam/");

        let dir = std::env::temp_dir().join(format!("fw-rtsp-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cred");
        std::fs::write(&file, "viewer:pa:ss\n").unwrap();
        let c = parse(&format!(
            "name = \"a\"\nurl = \"rtsp://cam/\"\ncredentials = \"{}\"",
            file.display()
        ))
        .unwrap();
        assert_eq!(c.creds, Some(("viewer".into(), "pa:ss".into())));
        std::fs::write(&file, "no colon\n").unwrap();
        let e = parse(&format!(
            "name = \"a\"\nurl = \"rtsp://cam/\"\ncredentials = \"{}\"",
            file.display()
        ))
        .unwrap_err();
        assert!(e.contains("user:password"), "{e}");
        // A device is not read for ever.
        let e = parse("name = \"a\"\nurl = \"rtsp://cam/\"\ncredentials = \"/dev/zero\"").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
